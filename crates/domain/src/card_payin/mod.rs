//! The card payin family: card payins and their refunds (states, events,
//! deciders and evolve). Cards and tokens are the card family's.
//!
//! A card payin is `processing` when created and leaves it in the same
//! atomic append: `authorized` or `declined` on the card network's verdict,
//! or `authentication_pending` when 3-D Secure was asked for. The funds only
//! move at settlement (`card_payin` transaction). A refund takes its funds
//! when it is created (`card_payin_refund`) and gives them back if it fails
//! (`card_payin_refund_failure`); the payin's `refunded_value` follows both,
//! so it always equals the refunds that are processing or completed.
//!
//! The deciders never see a full card number: commands carry [`CardInfo`]
//! (masked number, brand, expiry, fingerprint) and, for payins, the network's
//! [`NetworkVerdict`], which the caller obtained with the number.

use serde::{Deserialize, Serialize};

mod command;
mod events;

pub use command::CardPayinCommand;
pub use events::{
    CardPayinAuthenticationRequested, CardPayinAuthorized, CardPayinCreated, CardPayinDeclined,
    CardPayinEvent, CardPayinRefundChanged, CardPayinRefundCompleted, CardPayinRefundCreated,
    CardPayinRefundFailed, CardPayinSettled,
};

use crate::account::{AccountEvent, TransactionKind};
use crate::card::{CardEvent, CardInfo, CardSource, TokenUse};
use crate::context::{Context, Decided, Owned, misapplied};
use crate::kernel::error::{DomainError, Refusal};
use crate::kernel::id::*;
use crate::kernel::meta::Meta;
use crate::kernel::money::Money;
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthenticationType {
    None,
    ThreeDSecure,
}

impl AuthenticationType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ThreeDSecure => "three_d_secure",
        }
    }
}

/// Why a card network declined a payin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeclineReason {
    /// The issuer declined without a more specific reason.
    CardDeclined,
    InsufficientFunds,
    /// The issuer considers the card expired.
    ExpiredCard,
    /// The issuer requires 3-D Secure and the payin was made without it.
    AuthenticationRequired,
    /// The cardholder did not pass 3-D Secure.
    AuthenticationFailed,
}

impl DeclineReason {
    pub const ALL: [Self; 5] = [
        Self::CardDeclined,
        Self::InsufficientFunds,
        Self::ExpiredCard,
        Self::AuthenticationRequired,
        Self::AuthenticationFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardDeclined => "card_declined",
            Self::InsufficientFunds => "insufficient_funds",
            Self::ExpiredCard => "expired_card",
            Self::AuthenticationRequired => "authentication_required",
            Self::AuthenticationFailed => "authentication_failed",
        }
    }
}

/// A card network's answer to an authorization request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkVerdict {
    Approved,
    Declined(DeclineReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CardPayinState {
    Processing,
    AuthenticationPending,
    Authorized,
    Declined,
    Settled,
}

impl CardPayinState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::AuthenticationPending => "authentication_pending",
            Self::Authorized => "authorized",
            Self::Declined => "declined",
            Self::Settled => "settled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefundState {
    Processing,
    Completed,
    Failed,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayin {
    pub id: CardPayinId,
    pub project_id: ProjectId,
    pub account_id: AccountId,
    pub card_id: Option<CardId>,
    pub card_token_id: Option<CardTokenId>,
    pub card_info: CardInfo,
    pub state: CardPayinState,
    pub decline_reason: Option<DeclineReason>,
    pub authentication_type: AuthenticationType,
    pub authentication_url: Option<String>,
    pub authentication_redirect_url: Option<String>,
    /// Set when settled: the transaction that credited the account.
    pub transaction_id: Option<TransactionId>,
    pub value: Money,
    /// Refunds processing or completed; never above `value`.
    pub refunded_value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

impl CardPayin {
    /// What can still be refunded.
    pub fn refundable(&self) -> Money {
        Money::new(
            self.value.amount - self.refunded_value.amount,
            self.value.currency,
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinRefund {
    pub id: CardPayinRefundId,
    pub project_id: ProjectId,
    pub card_payin_id: CardPayinId,
    pub account_id: AccountId,
    pub state: RefundState,
    pub transaction_id: TransactionId,
    pub failure_transaction_id: Option<TransactionId>,
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// How a new card payin is authorized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayinAuthorization {
    /// No 3-D Secure: the network's verdict, obtained by the caller.
    Direct(NetworkVerdict),
    /// 3-D Secure: the cardholder authenticates at `authentication_url`
    /// first; the network is asked afterwards.
    ThreeDSecure {
        authentication_url: String,
        redirect_url: Option<String>,
    },
}

impl Context<'_> {
    pub(crate) fn create_card_payin<E>(&self, new: &NewCardPayin) -> Result<Decided<E>, DomainError>
    where
        E: From<CardPayinEvent> + From<CardEvent>,
    {
        let project = self.project()?;
        let id = new.id;
        let stream = StreamRef::CardPayin(id);
        self.must_be_new(&stream, "card payin", id)?;
        if new.value.amount <= 0 {
            return Err(DomainError::invalid("value.amount", "must be positive"));
        }
        let account = self.account(new.account_id)?;
        if new.value.currency != account.currency() {
            return Err(DomainError::invalid(
                "value.currency",
                format!("must be the account's currency, {}", account.currency()),
            ));
        }
        let mut events = Vec::new();
        let (card_info, card_id, card_token_id) = match &new.source {
            CardSource::Info(info) => (info.clone(), None, None),
            CardSource::Token(token_id) => {
                let (info, used) = self.use_token(*token_id, TokenUse::CardPayin(id))?;
                events.push(used);
                (info, None, Some(*token_id))
            }
            CardSource::Card(card_id) => {
                let card = self.card(*card_id)?;
                (card.card_info.clone(), Some(*card_id), None)
            }
        };
        // A stored card or a token may have expired since it was checked;
        // the network would decline it, and no challenge can change that.
        let expired = card_info
            .expiry()
            .is_expired_at(crate::card::YearMonth::of(self.now()));
        let (authentication_type, redirect_url) = match &new.authorization {
            PayinAuthorization::Direct(_) => (AuthenticationType::None, None),
            PayinAuthorization::ThreeDSecure { redirect_url, .. } => {
                (AuthenticationType::ThreeDSecure, redirect_url.clone())
            }
        };
        let created = CardPayinEvent::CardPayinCreated(CardPayinCreated {
            id,
            project_id: project.id,
            account_id: account.id,
            card_id,
            card_token_id,
            card_info,
            value: new.value,
            authentication_type,
            authentication_redirect_url: redirect_url,
            meta: new.meta.clone(),
            created_at: self.now(),
        });
        events.insert(0, (stream.clone(), created.into()));
        let outcome = match &new.authorization {
            _ if expired => self.verdict_event(NetworkVerdict::Declined(DeclineReason::ExpiredCard)),
            PayinAuthorization::Direct(verdict) => self.verdict_event(*verdict),
            PayinAuthorization::ThreeDSecure {
                authentication_url, ..
            } => CardPayinEvent::CardPayinAuthenticationRequested(CardPayinAuthenticationRequested {
                authentication_url: authentication_url.clone(),
            }),
        };
        events.insert(1, (stream, outcome.into()));
        Ok((events, ResourceRef::CardPayin(id)))
    }

    fn verdict_event(&self, verdict: NetworkVerdict) -> CardPayinEvent {
        match verdict {
            NetworkVerdict::Approved => CardPayinEvent::CardPayinAuthorized(CardPayinAuthorized {
                authorized_at: self.now(),
            }),
            NetworkVerdict::Declined(reason) => CardPayinEvent::CardPayinDeclined(CardPayinDeclined {
                reason,
                declined_at: self.now(),
            }),
        }
    }

    fn card_payin(&self, id: CardPayinId) -> Result<&CardPayin, DomainError> {
        self.owned::<CardPayin>(&StreamRef::CardPayin(id))
            .ok_or_else(|| DomainError::not_found("card payin", id))
    }

    /// Sandbox: the cardholder finished 3-D Secure; `verdict` is the
    /// network's answer after it.
    pub(crate) fn complete_card_payin_authentication<E: From<CardPayinEvent>>(
        &self,
        id: CardPayinId,
        verdict: NetworkVerdict,
    ) -> Result<Decided<E>, DomainError> {
        self.require_sandbox("completing 3-D Secure by API")?;
        let payin = self.card_payin(id)?;
        if payin.state != CardPayinState::AuthenticationPending {
            return Err(DomainError::refused(
                Refusal::CardPayinNotAwaitingAuthentication,
                format!(
                    "card payin {id} is {}, not authentication_pending",
                    payin.state.as_str()
                ),
            ));
        }
        Ok((
            vec![(StreamRef::CardPayin(id), self.verdict_event(verdict).into())],
            ResourceRef::CardPayin(id),
        ))
    }

    /// Sandbox: the card network settled an authorized payin; its value is
    /// credited to the payin's account.
    pub(crate) fn settle_card_payin<E>(
        &self,
        id: CardPayinId,
        transaction_id: TransactionId,
    ) -> Result<Decided<E>, DomainError>
    where
        E: From<CardPayinEvent> + From<AccountEvent>,
    {
        self.require_sandbox("settling a card payin by API")?;
        let payin = self.card_payin(id)?;
        if payin.state != CardPayinState::Authorized {
            return Err(DomainError::refused(
                Refusal::CardPayinNotAuthorized,
                format!(
                    "card payin {id} is {}; only an authorized payin can be settled",
                    payin.state.as_str()
                ),
            ));
        }
        let account = self.account(payin.account_id)?;
        let mut events = vec![(
            StreamRef::CardPayin(id),
            CardPayinEvent::CardPayinSettled(CardPayinSettled {
                transaction_id,
                settled_at: self.now(),
            })
            .into(),
        )];
        events.extend(self.movement(
            account,
            TransactionKind::CardPayin(id),
            payin.value,
            transaction_id,
            true,
        )?);
        Ok((events, ResourceRef::CardPayin(id)))
    }

    pub(crate) fn create_refund<E>(&self, new: &NewRefund) -> Result<Decided<E>, DomainError>
    where
        E: From<CardPayinEvent> + From<AccountEvent>,
    {
        self.project()?;
        let id = new.id;
        let stream = StreamRef::CardPayinRefund(id);
        self.must_be_new(&stream, "card payin refund", id)?;
        let payin = self.card_payin(new.card_payin_id)?;
        if payin.state != CardPayinState::Settled {
            return Err(DomainError::refused(
                Refusal::CardPayinNotSettled,
                format!(
                    "card payin {} is {}; only a settled payin can be refunded",
                    payin.id,
                    payin.state.as_str()
                ),
            ));
        }
        let remaining = payin.refundable();
        let value = new.value.unwrap_or(remaining);
        if value.currency != payin.value.currency {
            return Err(DomainError::invalid(
                "value.currency",
                format!("must be the card payin's currency, {}", payin.value.currency),
            ));
        }
        if new.value.is_some() && value.amount <= 0 {
            return Err(DomainError::invalid("value.amount", "must be positive"));
        }
        if value.amount > remaining.amount || value.amount <= 0 {
            return Err(DomainError::refused(
                Refusal::RefundExceedsPayin,
                format!(
                    "card payin {} has {remaining} left to refund (value {}, already refunded {}); cannot refund {value}",
                    payin.id, payin.value, payin.refunded_value
                ),
            ));
        }
        let account = self.account(new.account_id.unwrap_or(payin.account_id))?;
        if account.currency() != value.currency {
            return Err(DomainError::invalid(
                "account_id",
                format!(
                    "must be an account in the card payin's currency, {}",
                    value.currency
                ),
            ));
        }
        let debit = value
            .checked_neg()
            .map_err(|_| crate::kernel::error::overflow())?;
        let refunded_after = payin
            .refunded_value
            .checked_add(value)
            .map_err(|_| crate::kernel::error::overflow())?;
        debug_assert!(refunded_after.amount <= payin.value.amount);
        let mut events = vec![
            (
                stream,
                CardPayinEvent::CardPayinRefundCreated(CardPayinRefundCreated {
                    id,
                    project_id: payin.project_id,
                    card_payin_id: payin.id,
                    account_id: account.id,
                    transaction_id: new.transaction_id,
                    value,
                    meta: new.meta.clone(),
                    created_at: self.now(),
                })
                .into(),
            ),
            (
                StreamRef::CardPayin(payin.id),
                CardPayinEvent::CardPayinRefundChanged(CardPayinRefundChanged {
                    refund_id: id,
                    delta: value,
                    refunded_value_after: refunded_after,
                })
                .into(),
            ),
        ];
        events.extend(self.movement(
            account,
            TransactionKind::CardPayinRefund(id),
            debit,
            new.transaction_id,
            true,
        )?);
        Ok((events, ResourceRef::CardPayinRefund(id)))
    }

    fn refund(&self, id: CardPayinRefundId) -> Result<&CardPayinRefund, DomainError> {
        self.owned::<CardPayinRefund>(&StreamRef::CardPayinRefund(id))
            .ok_or_else(|| DomainError::not_found("card payin refund", id))
    }

    fn processing_refund(&self, id: CardPayinRefundId) -> Result<&CardPayinRefund, DomainError> {
        let refund = self.refund(id)?;
        if refund.state != RefundState::Processing {
            return Err(DomainError::refused(
                Refusal::RefundNotProcessing,
                format!("refund {id} is already {}", refund.state.as_str()),
            ));
        }
        Ok(refund)
    }

    pub(crate) fn complete_refund<E: From<CardPayinEvent>>(
        &self,
        id: CardPayinRefundId,
    ) -> Result<Decided<E>, DomainError> {
        self.require_sandbox("completing a refund by API")?;
        self.processing_refund(id)?;
        let event = CardPayinEvent::CardPayinRefundCompleted(CardPayinRefundCompleted {
            completed_at: self.now(),
        });
        Ok((
            vec![(StreamRef::CardPayinRefund(id), event.into())],
            ResourceRef::CardPayinRefund(id),
        ))
    }

    /// The refund did not reach the cardholder: its funds go back to the
    /// account they came from, and the payin can be refunded again.
    pub(crate) fn fail_refund<E>(
        &self,
        id: CardPayinRefundId,
        failure_transaction_id: TransactionId,
    ) -> Result<Decided<E>, DomainError>
    where
        E: From<CardPayinEvent> + From<AccountEvent>,
    {
        self.require_sandbox("failing a refund by API")?;
        let refund = self.processing_refund(id)?;
        let payin = self.card_payin(refund.card_payin_id)?;
        let account = self.account(refund.account_id)?;
        let refunded_after = payin
            .refunded_value
            .checked_sub(refund.value)
            .map_err(|_| crate::kernel::error::overflow())?;
        // Not asserted to stay at or above zero: with several servers the
        // payin can be this server's older state, from before the refund
        // (loaded fresh) was recorded on it. Such a decision names that
        // older version of the payin's stream, so its append conflicts and
        // the command is decided again on the current state.
        let mut events = vec![
            (
                StreamRef::CardPayinRefund(id),
                CardPayinEvent::CardPayinRefundFailed(CardPayinRefundFailed {
                    failure_transaction_id,
                    failed_at: self.now(),
                })
                .into(),
            ),
            (
                StreamRef::CardPayin(payin.id),
                CardPayinEvent::CardPayinRefundChanged(CardPayinRefundChanged {
                    refund_id: id,
                    delta: refund
                        .value
                        .checked_neg()
                        .map_err(|_| crate::kernel::error::overflow())?,
                    refunded_value_after: refunded_after,
                })
                .into(),
            ),
        ];
        events.extend(self.movement(
            account,
            TransactionKind::CardPayinRefundFailure(id),
            refund.value,
            failure_transaction_id,
            true,
        )?);
        Ok((events, ResourceRef::CardPayinRefund(id)))
    }

    pub(crate) fn update_card_payin<E: From<CardPayinEvent>>(
        &self,
        id: CardPayinId,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        self.replace_meta::<CardPayin, _>(ResourceRef::CardPayin(id), "card payin", meta, |meta| {
            CardPayinEvent::CardPayinMetaUpdated(meta).into()
        })
    }

    pub(crate) fn update_card_payin_refund<E: From<CardPayinEvent>>(
        &self,
        id: CardPayinRefundId,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        self.replace_meta::<CardPayinRefund, _>(
            ResourceRef::CardPayinRefund(id),
            "card payin refund",
            meta,
            |meta| CardPayinEvent::CardPayinRefundMetaUpdated(meta).into(),
        )
    }
}

impl Owned for CardPayin {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

impl Owned for CardPayinRefund {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// The card payin family's aggregates: a payin's stream and a refund's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardPayinAggregate {
    CardPayin(CardPayin),
    CardPayinRefund(CardPayinRefund),
}

/// The parameters of a new card payin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCardPayin {
    pub id: CardPayinId,
    pub account_id: AccountId,
    pub source: CardSource,
    pub value: Money,
    pub authorization: PayinAuthorization,
    pub meta: Meta,
}

/// The parameters of a new refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRefund {
    pub id: CardPayinRefundId,
    pub card_payin_id: CardPayinId,
    /// `None`: what is left to refund.
    pub value: Option<Money>,
    /// `None`: the payin's account.
    pub account_id: Option<AccountId>,
    pub transaction_id: TransactionId,
    pub meta: Meta,
}

/// Applies a card payin or refund event to the state of its stream (`None`
/// before the first).
pub(crate) fn evolve(state: Option<CardPayinAggregate>, event: CardPayinEvent) -> Option<CardPayinAggregate> {
    use CardPayinAggregate as A;
    use CardPayinEvent as E;
    Some(match (state, event) {
        (None, E::CardPayinCreated(e)) => A::CardPayin(CardPayin {
            id: e.id,
            project_id: e.project_id,
            account_id: e.account_id,
            card_id: e.card_id,
            card_token_id: e.card_token_id,
            card_info: e.card_info,
            state: CardPayinState::Processing,
            decline_reason: None,
            authentication_type: e.authentication_type,
            authentication_url: None,
            authentication_redirect_url: e.authentication_redirect_url,
            transaction_id: None,
            value: e.value,
            refunded_value: Money::zero(e.value.currency),
            meta: e.meta,
            created_at: e.created_at,
        }),
        (Some(A::CardPayin(p)), E::CardPayinAuthenticationRequested(e)) => A::CardPayin(CardPayin {
            state: CardPayinState::AuthenticationPending,
            authentication_url: Some(e.authentication_url),
            ..p
        }),
        (Some(A::CardPayin(p)), E::CardPayinAuthorized(_)) => A::CardPayin(CardPayin {
            state: CardPayinState::Authorized,
            ..p
        }),
        (Some(A::CardPayin(p)), E::CardPayinDeclined(e)) => A::CardPayin(CardPayin {
            state: CardPayinState::Declined,
            decline_reason: Some(e.reason),
            ..p
        }),
        (Some(A::CardPayin(p)), E::CardPayinSettled(e)) => A::CardPayin(CardPayin {
            state: CardPayinState::Settled,
            transaction_id: Some(e.transaction_id),
            ..p
        }),
        (Some(A::CardPayin(p)), E::CardPayinRefundChanged(e)) => {
            debug_assert_eq!(p.refunded_value.checked_add(e.delta), Ok(e.refunded_value_after));
            A::CardPayin(CardPayin {
                refunded_value: e.refunded_value_after,
                ..p
            })
        }
        (Some(A::CardPayin(p)), E::CardPayinMetaUpdated(e)) => A::CardPayin(CardPayin { meta: e.meta, ..p }),
        (None, E::CardPayinRefundCreated(e)) => A::CardPayinRefund(CardPayinRefund {
            id: e.id,
            project_id: e.project_id,
            card_payin_id: e.card_payin_id,
            account_id: e.account_id,
            state: RefundState::Processing,
            transaction_id: e.transaction_id,
            failure_transaction_id: None,
            value: e.value,
            meta: e.meta,
            created_at: e.created_at,
        }),
        (Some(A::CardPayinRefund(r)), E::CardPayinRefundCompleted(_)) => {
            A::CardPayinRefund(CardPayinRefund {
                state: RefundState::Completed,
                ..r
            })
        }
        (Some(A::CardPayinRefund(r)), E::CardPayinRefundFailed(e)) => A::CardPayinRefund(CardPayinRefund {
            state: RefundState::Failed,
            failure_transaction_id: Some(e.failure_transaction_id),
            ..r
        }),
        (Some(A::CardPayinRefund(r)), E::CardPayinRefundMetaUpdated(e)) => {
            A::CardPayinRefund(CardPayinRefund { meta: e.meta, ..r })
        }
        (state, event) => return misapplied(state, &event),
    })
}

impl Context<'_> {
    /// What `SettleCardPayin` reads once the payin is loaded: its account
    /// and the project's total in its currency.
    pub(crate) fn dependent_streams_of_settlement(&self, id: CardPayinId) -> Vec<StreamRef> {
        let mut streams = Vec::new();
        if let Some(payin) = self.state::<CardPayin>(&StreamRef::CardPayin(id)) {
            streams.push(StreamRef::Account(payin.account_id));
            streams.push(StreamRef::ProjectBalance(self.project_id, payin.value.currency));
        }
        streams
    }

    /// What `CreateCardPayinRefund` reads once the payin is loaded: the
    /// account refunded from and the project's total.
    pub(crate) fn dependent_streams_of_refund(&self, new: &NewRefund) -> Vec<StreamRef> {
        let mut streams = Vec::new();
        if let Some(payin) = self.state::<CardPayin>(&StreamRef::CardPayin(new.card_payin_id)) {
            streams.push(StreamRef::Account(new.account_id.unwrap_or(payin.account_id)));
            streams.push(StreamRef::ProjectBalance(self.project_id, payin.value.currency));
        }
        streams
    }

    /// What `FailCardPayinRefund` reads once the refund is loaded: its
    /// payin, its account and the project's total.
    pub(crate) fn dependent_streams_of_refund_failure(&self, id: CardPayinRefundId) -> Vec<StreamRef> {
        let mut streams = Vec::new();
        if let Some(refund) = self.state::<CardPayinRefund>(&StreamRef::CardPayinRefund(id)) {
            streams.push(StreamRef::CardPayin(refund.card_payin_id));
            streams.push(StreamRef::Account(refund.account_id));
            streams.push(StreamRef::ProjectBalance(self.project_id, refund.value.currency));
        }
        streams
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::money::Currency;

    #[test]
    fn decline_reasons_have_distinct_names() {
        let mut names: Vec<&str> = DeclineReason::ALL.iter().map(|reason| reason.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DeclineReason::ALL.len());
    }

    #[test]
    fn refundable_is_what_live_refunds_leave() {
        let payin = |value: i64, refunded: i64| CardPayin {
            id: CardPayinId::from_uuid(uuid::Uuid::from_u128(1)),
            project_id: ProjectId::from_uuid(uuid::Uuid::from_u128(2)),
            account_id: AccountId::from_uuid(uuid::Uuid::from_u128(3)),
            card_id: None,
            card_token_id: None,
            card_info: crate::card::CardInfo::new(
                &match crate::card::CardNumber::parse("4242424242424242") {
                    Ok(number) => number,
                    Err(error) => panic!("test card: {error}"),
                },
                match crate::card::Expiry::new(12, 2030, 2025, 6) {
                    Ok(expiry) => expiry,
                    Err(error) => panic!("test expiry: {error}"),
                },
                &[0; 32],
            ),
            state: CardPayinState::Settled,
            decline_reason: None,
            authentication_type: AuthenticationType::None,
            authentication_url: None,
            authentication_redirect_url: None,
            transaction_id: None,
            value: Money::new(value, Currency::EUR),
            refunded_value: Money::new(refunded, Currency::EUR),
            meta: Meta::default(),
            created_at: Timestamp::from_micros(0),
        };
        assert_eq!(payin(10_000, 0).refundable(), Money::new(10_000, Currency::EUR));
        assert_eq!(
            payin(10_000, 2_500).refundable(),
            Money::new(7_500, Currency::EUR)
        );
        assert_eq!(payin(10_000, 10_000).refundable(), Money::new(0, Currency::EUR));
        assert_eq!(
            payin(i64::MAX, 0).refundable(),
            Money::new(i64::MAX, Currency::EUR)
        );
    }
}
