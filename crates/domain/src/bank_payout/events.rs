//! The bank payout family's events (type names, versions and codec in
//! [`crate::events`]).

use serde::{Deserialize, Serialize};

use crate::bank_account::BankAccountInfo;
use crate::kernel::bank::{Concept, Miniref};
use crate::kernel::id::*;
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::money::Money;
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPayoutCreated {
    pub id: BankPayoutId,
    pub project_id: ProjectId,
    pub account_id: AccountId,
    pub bank_account_id: Option<BankAccountId>,
    pub bank_account_info: BankAccountInfo,
    pub transaction_id: TransactionId,
    pub concept: Concept,
    pub miniref: Miniref,
    /// Always positive.
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPayoutCompleted {
    pub completed_at: Timestamp,
}

/// A payout that failed to be sent, or was sent and came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPayoutReversed {
    pub failure_transaction_id: TransactionId,
    pub reversed_at: Timestamp,
}

/// On a payout destination's stream: a miniref given to a payout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinirefAssigned {
    pub project_id: ProjectId,
    pub bank_payout_id: BankPayoutId,
    pub miniref: Miniref,
    pub assigned_at: Timestamp,
}

/// The bank payout family's events: what its deciders emit and its `evolve`
/// folds (the routers' `Event` wraps each as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankPayoutEvent {
    BankPayoutCreated(BankPayoutCreated),
    BankPayoutCompleted(BankPayoutCompleted),
    BankPayoutFailed(BankPayoutReversed),
    BankPayoutReturned(BankPayoutReversed),
    BankPayoutMetaUpdated(MetaUpdated),
    MinirefAssigned(MinirefAssigned),
}
