//! The account family's events (type names, versions and codec in
//! [`crate::events`]).

use serde::{Deserialize, Serialize};

use crate::kernel::id::*;
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::money::Money;
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountOpened {
    pub id: AccountId,
    pub project_id: ProjectId,
    pub customer_id: Option<CustomerId>,
    pub currency: crate::kernel::money::Currency,
    pub allow_negative_balance: bool,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegativeBalanceAllowanceChanged {
    pub allow_negative_balance: bool,
}

/// What caused a transaction, with the ID of the cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionKind {
    /// Sandbox-only direct balance change.
    Magic,
    TransferSource(TransferId),
    TransferDestination(TransferId),
    // New kinds go at the end: postcard records the variant's index.
    CardPayin(CardPayinId),
    CardPayinRefund(CardPayinRefundId),
    CardPayinRefundFailure(CardPayinRefundId),
    BankPayout(BankPayoutId),
    BankPayoutFailure(BankPayoutId),
    BankPayin(BankPayinId),
}

impl TransactionKind {
    /// The API's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Magic => "magic",
            Self::TransferSource(_) => "transfer_source",
            Self::TransferDestination(_) => "transfer_destination",
            Self::CardPayin(_) => "card_payin",
            Self::CardPayinRefund(_) => "card_payin_refund",
            Self::CardPayinRefundFailure(_) => "card_payin_refund_failure",
            Self::BankPayout(_) => "bank_payout",
            Self::BankPayoutFailure(_) => "bank_payout_failure",
            Self::BankPayin(_) => "bank_payin",
        }
    }

    pub fn transfer_id(self) -> Option<TransferId> {
        match self {
            Self::TransferSource(id) | Self::TransferDestination(id) => Some(id),
            _ => None,
        }
    }
}

/// One balance change of one account. Final: never changed or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: TransactionId,
    pub account_id: AccountId,
    pub project_id: ProjectId,
    pub kind: TransactionKind,
    /// Signed: positive adds funds, negative removes them. Never zero.
    pub value: Money,
    pub balance_after: Money,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecorded {
    pub transaction: Transaction,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectBalanceChanged {
    pub project_id: ProjectId,
    pub delta: Money,
    pub total_after: Money,
    pub account_id: AccountId,
    pub transaction_id: TransactionId,
}

/// The account family's events: what its deciders (and the ledger) emit and
/// its `evolve` folds (the routers' `Event` wraps each as the variant of the
/// same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountEvent {
    AccountOpened(AccountOpened),
    NegativeBalanceAllowanceChanged(NegativeBalanceAllowanceChanged),
    AccountMetaUpdated(MetaUpdated),
    TransactionRecorded(TransactionRecorded),
    ProjectBalanceChanged(ProjectBalanceChanged),
}
