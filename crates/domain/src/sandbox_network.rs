//! The sandbox card network: answers authorization requests from the card
//! number alone, so that every outcome can be tested on purpose.
//!
//! | number | brand | outcome |
//! |---|---|---|
//! | `4242424242424242` | visa | approved |
//! | `5555555555554444` | mastercard | approved |
//! | `378282246310005` | american_express | approved |
//! | `4000000000000002` | visa | declined, `card_declined` |
//! | `4000000000009995` | visa | declined, `insufficient_funds` |
//! | `4000000000000069` | visa | declined, `expired_card` |
//! | `4000000000003220` | visa | 3-D Secure required, then approved |
//! | `4000000000003063` | visa | 3-D Secure required, then declined (`authentication_failed`) |
//!
//! Any other valid number is approved. A card that requires 3-D Secure,
//! charged without it, is declined with `authentication_required`; a
//! cardholder who fails the challenge is declined with
//! `authentication_failed` whatever the card. Asking for 3-D Secure on a card
//! that does not require it is allowed: after a passed challenge the card
//! gets its usual answer.
//!
//! Pure and deterministic: the same number always gets the same answer.

use crate::card::CardNumber;
use crate::card_payin::{DeclineReason, NetworkVerdict};

/// What a test card does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Approve,
    Decline(DeclineReason),
    /// The issuer requires 3-D Secure; after it, approve or fail.
    RequiresAuthentication {
        then_approve: bool,
    },
}

/// One documented test card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestCard {
    pub number: &'static str,
    pub behaviour: Behaviour,
}

/// Every test card with a special behaviour (see the module docs).
pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        number: "4242424242424242",
        behaviour: Behaviour::Approve,
    },
    TestCard {
        number: "5555555555554444",
        behaviour: Behaviour::Approve,
    },
    TestCard {
        number: "378282246310005",
        behaviour: Behaviour::Approve,
    },
    TestCard {
        number: "4000000000000002",
        behaviour: Behaviour::Decline(DeclineReason::CardDeclined),
    },
    TestCard {
        number: "4000000000009995",
        behaviour: Behaviour::Decline(DeclineReason::InsufficientFunds),
    },
    TestCard {
        number: "4000000000000069",
        behaviour: Behaviour::Decline(DeclineReason::ExpiredCard),
    },
    TestCard {
        number: "4000000000003220",
        behaviour: Behaviour::RequiresAuthentication { then_approve: true },
    },
    TestCard {
        number: "4000000000003063",
        behaviour: Behaviour::RequiresAuthentication { then_approve: false },
    },
];

/// Whether and how the cardholder authenticated before the authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// No 3-D Secure was asked for.
    NotAttempted,
    Passed,
    Failed,
}

/// The behaviour of `number` on the sandbox network.
pub fn behaviour(number: &CardNumber) -> Behaviour {
    TEST_CARDS
        .iter()
        .find(|card| card.number == number.digits())
        .map_or(Behaviour::Approve, |card| card.behaviour)
}

/// The sandbox network's answer for `number`.
pub fn authorize(number: &CardNumber, authentication: Authentication) -> NetworkVerdict {
    if authentication == Authentication::Failed {
        return NetworkVerdict::Declined(DeclineReason::AuthenticationFailed);
    }
    match (behaviour(number), authentication) {
        (Behaviour::Approve, _) => NetworkVerdict::Approved,
        (Behaviour::Decline(reason), _) => NetworkVerdict::Declined(reason),
        (Behaviour::RequiresAuthentication { .. }, Authentication::NotAttempted) => {
            NetworkVerdict::Declined(DeclineReason::AuthenticationRequired)
        }
        (Behaviour::RequiresAuthentication { then_approve: true }, _) => NetworkVerdict::Approved,
        (Behaviour::RequiresAuthentication { then_approve: false }, _) => {
            NetworkVerdict::Declined(DeclineReason::AuthenticationFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> CardNumber {
        match CardNumber::parse(text) {
            Ok(number) => number,
            Err(error) => panic!("{text} is not a valid test card: {error}"),
        }
    }

    #[test]
    fn every_test_card_is_a_valid_number() {
        for card in TEST_CARDS {
            number(card.number);
        }
    }

    #[test]
    fn documented_outcomes() {
        use Authentication::*;
        use NetworkVerdict::*;
        let cases = [
            ("4242424242424242", NotAttempted, Approved),
            ("4111111111111111", NotAttempted, Approved),
            ("4000000000000002", Passed, Declined(DeclineReason::CardDeclined)),
            (
                "4000000000009995",
                NotAttempted,
                Declined(DeclineReason::InsufficientFunds),
            ),
            (
                "4000000000000069",
                NotAttempted,
                Declined(DeclineReason::ExpiredCard),
            ),
            (
                "4000000000003220",
                NotAttempted,
                Declined(DeclineReason::AuthenticationRequired),
            ),
            ("4000000000003220", Passed, Approved),
            (
                "4000000000003063",
                Passed,
                Declined(DeclineReason::AuthenticationFailed),
            ),
            (
                "4242424242424242",
                Failed,
                Declined(DeclineReason::AuthenticationFailed),
            ),
            ("4242424242424242", Passed, Approved),
        ];
        for (digits, authentication, expected) in cases {
            assert_eq!(
                authorize(&number(digits), authentication),
                expected,
                "{digits} {authentication:?}"
            );
        }
    }
}
