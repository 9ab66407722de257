//! The transfer family's events (type names, versions, the v1 → v2 upcast
//! and codec in [`crate::events`]).

use serde::{Deserialize, Serialize};

use crate::kernel::fx::Rate;
use crate::kernel::id::{AccountId, ProjectId, TransactionId, TransferId};
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::money::Money;
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferCreated {
    pub id: TransferId,
    pub project_id: ProjectId,
    pub source_account_id: AccountId,
    pub destination_account_id: AccountId,
    pub source_transaction_id: TransactionId,
    pub destination_transaction_id: TransactionId,
    /// Taken from the source account. Always positive.
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
    /// Present when the accounts' currencies differ: how `value` became
    /// what the destination received.
    pub exchange: Option<Exchange>,
}

/// The conversion a cross-currency transfer applied, recorded so that it is
/// reproducible: `destination_value = floor(value × rate_used)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// Credited to the destination account, in its currency.
    pub destination_value: Money,
    /// The market rate configured for the pair when the transfer was made.
    pub mid_rate: Rate,
    pub spread_bps: u32,
    /// `mid_rate` less the spread, rounded down: the rate applied.
    pub rate_used: Rate,
}

impl TransferCreated {
    /// What the destination account received.
    pub fn destination_value(&self) -> Money {
        self.exchange
            .map_or(self.value, |exchange| exchange.destination_value)
    }
}

/// `TransferCreated` as written before cross-currency transfers (schema v1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferCreatedV1 {
    pub id: TransferId,
    pub project_id: ProjectId,
    pub source_account_id: AccountId,
    pub destination_account_id: AccountId,
    pub source_transaction_id: TransactionId,
    pub destination_transaction_id: TransactionId,
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

impl From<TransferCreatedV1> for TransferCreated {
    fn from(v1: TransferCreatedV1) -> Self {
        Self {
            id: v1.id,
            project_id: v1.project_id,
            source_account_id: v1.source_account_id,
            destination_account_id: v1.destination_account_id,
            source_transaction_id: v1.source_transaction_id,
            destination_transaction_id: v1.destination_transaction_id,
            value: v1.value,
            meta: v1.meta,
            created_at: v1.created_at,
            exchange: None,
        }
    }
}

/// A transfer that holds its value instead of moving it (two-phase): the
/// source's available balance drops by `value`, its posted balance does
/// not, and the destination gets a pending credit, until the transfer is
/// posted, voided or expires. Always between accounts of one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTransferCreated {
    pub id: TransferId,
    pub project_id: ProjectId,
    pub source_account_id: AccountId,
    pub destination_account_id: AccountId,
    /// The pending transactions' IDs (the holds on each account, through
    /// every phase).
    pub source_transaction_id: TransactionId,
    pub destination_transaction_id: TransactionId,
    /// Held on the source account. Always positive.
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
    /// The first moment at which the hold no longer holds: from then on the
    /// transfer can only expire.
    pub expires_at: Timestamp,
}

/// A pending transfer posted: its holds are released in full and `value`
/// (at most what was held) moves by two transactions with these IDs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTransferPosted {
    pub value: Money,
    pub source_transaction_id: TransactionId,
    pub destination_transaction_id: TransactionId,
    pub posted_at: Timestamp,
}

/// A pending transfer voided: its holds are released, nothing moves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTransferVoided {
    pub voided_at: Timestamp,
}

/// A pending transfer expired (at or after its `expires_at`, as the
/// server's scheduler asked): its holds are released, nothing moves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTransferExpired {
    pub expired_at: Timestamp,
}

/// The transfer family's events: what its deciders emit and its `evolve`
/// folds (the routers' `Event` wraps each as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferEvent {
    TransferCreated(TransferCreated),
    TransferMetaUpdated(MetaUpdated),
    PendingTransferCreated(PendingTransferCreated),
    PendingTransferPosted(PendingTransferPosted),
    PendingTransferVoided(PendingTransferVoided),
    PendingTransferExpired(PendingTransferExpired),
}
