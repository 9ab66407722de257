//! The card payin family's events, refunds' included (type names, versions
//! and codec in [`crate::events`]).

use serde::{Deserialize, Serialize};

use super::{AuthenticationType, DeclineReason};
use crate::card::CardInfo;
use crate::kernel::id::*;
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::money::Money;
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinCreated {
    pub id: CardPayinId,
    pub project_id: ProjectId,
    pub account_id: AccountId,
    pub card_id: Option<CardId>,
    pub card_token_id: Option<CardTokenId>,
    pub card_info: CardInfo,
    /// Always positive, in the account's currency.
    pub value: Money,
    pub authentication_type: AuthenticationType,
    pub authentication_redirect_url: Option<String>,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinAuthenticationRequested {
    pub authentication_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinAuthorized {
    pub authorized_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinDeclined {
    pub reason: DeclineReason,
    pub declined_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinSettled {
    pub transaction_id: TransactionId,
    pub settled_at: Timestamp,
}

/// On the payin's stream: a refund took (or gave back) part of its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinRefundChanged {
    pub refund_id: CardPayinRefundId,
    /// Positive when a refund is issued, negative when a refund fails.
    pub delta: Money,
    pub refunded_value_after: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinRefundCreated {
    pub id: CardPayinRefundId,
    pub project_id: ProjectId,
    pub card_payin_id: CardPayinId,
    /// The account the funds were taken from.
    pub account_id: AccountId,
    pub transaction_id: TransactionId,
    /// Always positive.
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinRefundCompleted {
    pub completed_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayinRefundFailed {
    pub failure_transaction_id: TransactionId,
    pub failed_at: Timestamp,
}

/// The card payin family's events: what its deciders emit and its `evolve`
/// folds (the routers' `Event` wraps each as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardPayinEvent {
    CardPayinCreated(CardPayinCreated),
    CardPayinAuthenticationRequested(CardPayinAuthenticationRequested),
    CardPayinAuthorized(CardPayinAuthorized),
    CardPayinDeclined(CardPayinDeclined),
    CardPayinSettled(CardPayinSettled),
    CardPayinRefundChanged(CardPayinRefundChanged),
    CardPayinMetaUpdated(MetaUpdated),
    CardPayinRefundCreated(CardPayinRefundCreated),
    CardPayinRefundCompleted(CardPayinRefundCompleted),
    CardPayinRefundFailed(CardPayinRefundFailed),
    CardPayinRefundMetaUpdated(MetaUpdated),
}
