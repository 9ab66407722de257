//! Proto ⇄ domain for bank payouts.

use paycore_domain::bank_payout::BankPayoutCommand;
use paycore_domain::bank_payout::{BankPayout, BankPayoutState, NewBankPayout, PayoutDestinationSource};
use paycore_domain::{AccountId, BankAccountId, BankPayoutId, Command, TransactionId, Violations};

use crate::convert::{Mask, concept, id, meta, meta_pb, money_pb, positive_money, timestamp};
use crate::pb;
use crate::services::bank_account::convert::{bank_account_info, bank_account_info_pb};

/// What a new payout needs besides its request: its IDs and where the
/// search for a free miniref starts (the domain has no randomness).
#[derive(Clone, Copy, Debug)]
pub struct PayoutIds {
    pub payout: BankPayoutId,
    pub transaction: TransactionId,
    pub miniref_entropy: [u8; 8],
}

fn payout_destination(
    destination: Option<&pb::create_bank_payout_request::Destination>,
    v: &mut Violations,
) -> Option<PayoutDestinationSource> {
    use pb::create_bank_payout_request::Destination;
    match destination {
        Some(Destination::BankAccountId(raw)) => {
            id::<BankAccountId>(raw, "bank_account_id", v).map(PayoutDestinationSource::BankAccount)
        }
        Some(Destination::BankAccountInfo(info)) => {
            bank_account_info(Some(info), "bank_account_info", v).map(PayoutDestinationSource::Info)
        }
        None => {
            v.add(
                "destination",
                "is required: give exactly one of bank_account_id or bank_account_info",
            );
            None
        }
    }
}

pub fn create_bank_payout(
    request: &pb::CreateBankPayoutRequest,
    ids: PayoutIds,
    v: &mut Violations,
) -> Option<Command> {
    let account_id = id::<AccountId>(&request.account_id, "account_id", v);
    let destination = payout_destination(request.destination.as_ref(), v);
    let concept = concept(&request.concept, "concept", v);
    let value = positive_money(request.value.as_ref(), "value", v);
    let meta = meta(&request.meta, "meta", v);
    Some(
        BankPayoutCommand::CreateBankPayout(NewBankPayout {
            id: ids.payout,
            account_id: account_id?,
            destination: destination?,
            concept: concept?,
            value: value?,
            meta: meta?,
            transaction_id: ids.transaction,
            miniref_entropy: ids.miniref_entropy,
        })
        .into(),
    )
}

pub fn update_bank_payout(request: &pb::UpdateBankPayoutRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<BankPayoutId>(&request.bank_payout_id, "bank_payout_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(BankPayoutCommand::UpdateBankPayout { id: id?, meta: meta? }.into())
}

pub fn bank_payout_state_pb(state: BankPayoutState) -> pb::BankPayoutState {
    match state {
        BankPayoutState::Processing => pb::BankPayoutState::Processing,
        BankPayoutState::Completed => pb::BankPayoutState::Completed,
        BankPayoutState::Failed => pb::BankPayoutState::Failed,
        BankPayoutState::Refunded => pb::BankPayoutState::Refunded,
    }
}

pub fn bank_payout_pb(payout: &BankPayout) -> pb::BankPayout {
    pb::BankPayout {
        id: payout.id.to_string(),
        created_at: Some(timestamp(payout.created_at)),
        project_id: payout.project_id.to_string(),
        account_id: payout.account_id.to_string(),
        bank_account_id: payout.bank_account_id.map(|id| id.to_string()),
        bank_account_info: Some(bank_account_info_pb(&payout.bank_account_info)),
        transaction_id: payout.transaction_id.to_string(),
        failure_transaction_id: payout.failure_transaction_id.map(|id| id.to_string()),
        state: bank_payout_state_pb(payout.state).into(),
        concept: payout.concept.to_string(),
        miniref: payout.miniref.to_string(),
        value: Some(money_pb(payout.value)),
        meta: meta_pb(&payout.meta),
    }
}

#[cfg(test)]
mod tests {
    use paycore_domain::{Currency, DomainError, Money};
    use uuid::Uuid;

    use super::*;

    const IBAN: &str = "ES9121000418450200051332";

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn info(iban: &str, name: &str) -> pb::BankAccountInfo {
        pb::BankAccountInfo {
            iban: iban.into(),
            beneficiary_name: name.into(),
        }
    }

    fn ids() -> PayoutIds {
        PayoutIds {
            payout: BankPayoutId::from_uuid(Uuid::from_u128(1)),
            transaction: TransactionId::from_uuid(Uuid::from_u128(2)),
            miniref_entropy: [7; 8],
        }
    }

    #[test]
    fn create_bank_payout_reports_every_problem_at_once() {
        let request = pb::CreateBankPayoutRequest {
            account_id: "cus_x".into(),
            destination: None,
            concept: "x".repeat(141),
            value: Some(pb::Money {
                currency: "EUR".into(),
                amount: 0,
            }),
            meta: Default::default(),
        };
        let mut v = Violations::new();
        assert!(create_bank_payout(&request, ids(), &mut v).is_none());
        assert_eq!(
            fields(v),
            ["account_id", "destination", "concept", "value.amount"]
        );
    }

    #[test]
    fn create_bank_payout_builds_the_command() {
        use pb::create_bank_payout_request::Destination;
        let account = AccountId::from_uuid(Uuid::from_u128(3));
        let request = pb::CreateBankPayoutRequest {
            account_id: account.to_string(),
            destination: Some(Destination::BankAccountInfo(info(IBAN, "Jane Doe"))),
            concept: "Invoice 42".into(),
            value: Some(pb::Money {
                currency: "EUR".into(),
                amount: 1250,
            }),
            meta: Default::default(),
        };
        let mut v = Violations::new();
        let Some(Command::BankPayout(BankPayoutCommand::CreateBankPayout(new))) =
            create_bank_payout(&request, ids(), &mut v)
        else {
            panic!("expected CreateBankPayout: {v:?}");
        };
        assert_eq!(new.account_id, account);
        assert_eq!(new.concept.as_str(), "Invoice 42");
        assert_eq!(new.value, Money::new(1250, Currency::EUR));
        assert_eq!(new.miniref_entropy, [7; 8]);
        assert!(matches!(new.destination, PayoutDestinationSource::Info(_)));

        let request = pb::CreateBankPayoutRequest {
            destination: Some(Destination::BankAccountId("ba_nope".into())),
            ..request
        };
        let mut v = Violations::new();
        assert!(create_bank_payout(&request, ids(), &mut v).is_none());
        assert_eq!(fields(v), ["bank_account_id"]);
    }
}
