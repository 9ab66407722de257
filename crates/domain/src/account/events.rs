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
    /// The debit of a pending transfer when it is posted (the hold it
    /// replaces is released by a [`PendingTransactionRecorded`]). Kinds
    /// apart from `TransferSource`, so a plain transfer's two legs and the
    /// three events of its creation stay what the audit checks them as.
    PostedTransferSource(TransferId),
    /// The credit of a pending transfer when it is posted.
    PostedTransferDestination(TransferId),
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
            Self::PostedTransferSource(_) => "posted_transfer_source",
            Self::PostedTransferDestination(_) => "posted_transfer_destination",
        }
    }

    pub fn transfer_id(self) -> Option<TransferId> {
        match self {
            Self::TransferSource(id)
            | Self::TransferDestination(id)
            | Self::PostedTransferSource(id)
            | Self::PostedTransferDestination(id) => Some(id),
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

/// The phase of a pending transaction a [`PendingTransaction`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PendingPhase {
    /// The amount is held: a debit reduces the available balance, a credit
    /// waits to be posted.
    Reserved,
    /// The hold is released because the transfer was posted (the posted
    /// amount moves by a `TransactionRecorded` in the same append).
    Posted,
    /// The hold is released: the transfer was voided.
    Voided,
    /// The hold is released: the transfer expired.
    Expired,
}

impl PendingPhase {
    /// The API's name for the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Posted => "posted",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }

    /// Whether the phase releases the hold (every phase but `Reserved`).
    pub fn releases(self) -> bool {
        !matches!(self, Self::Reserved)
    }
}

/// One phase of a pending transaction on one account: the hold a pending
/// transfer puts on it, and its release. Never a change of the posted
/// balance; what changes is `pending_debits` (for a debit) or
/// `pending_credits` (for a credit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTransaction {
    /// The pending transaction's ID, the same in every phase (the
    /// transfer's `source_transaction_id` or `destination_transaction_id`).
    pub id: TransactionId,
    pub transfer_id: TransferId,
    pub account_id: AccountId,
    pub project_id: ProjectId,
    pub phase: PendingPhase,
    /// Signed like the transaction it holds: negative for a debit, positive
    /// for a credit; the whole held amount in every phase (a partial post
    /// still releases all of it). Never zero.
    pub value: Money,
    pub pending_debits_after: Money,
    pub pending_credits_after: Money,
    pub created_at: Timestamp,
}

impl PendingTransaction {
    /// The account's `(pending_debits, pending_credits)` after this record,
    /// from what they were before; `None` if out of range (a bug: the
    /// ledger checks first).
    pub fn pending_after(&self, debits: Money, credits: Money) -> Option<(Money, Money)> {
        let held = Money::new(self.value.amount.checked_abs()?, self.value.currency);
        let change = |total: Money| {
            if self.phase.releases() {
                total.checked_sub(held).ok()
            } else {
                total.checked_add(held).ok()
            }
        };
        if self.value.is_negative() {
            Some((change(debits)?, credits))
        } else {
            Some((debits, change(credits)?))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTransactionRecorded {
    pub pending: PendingTransaction,
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
    PendingTransactionRecorded(PendingTransactionRecorded),
}
