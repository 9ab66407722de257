//! A transfer's state and how its events evolve it.

use serde::{Deserialize, Serialize};

use super::events::{Exchange, PendingTransferCreated, TransferEvent};
use crate::context::{Owned, misapplied};
use crate::kernel::id::{AccountId, ProjectId, TransactionId, TransferId};
use crate::kernel::meta::Meta;
use crate::kernel::money::Money;
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: TransferId,
    pub project_id: ProjectId,
    pub source_account_id: AccountId,
    pub destination_account_id: AccountId,
    /// A plain transfer's two legs; a pending transfer's two holds (the
    /// legs of its post are in [`TransferStatus::Posted`]).
    pub source_transaction_id: TransactionId,
    pub destination_transaction_id: TransactionId,
    /// Moved (a plain transfer) or held (a pending one).
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
    /// Set for a transfer between currencies.
    pub exchange: Option<Exchange>,
    pub status: TransferStatus,
}

/// Where a transfer stands. A plain transfer is posted when it is created;
/// a pending one is `Pending` until it is posted, voided or expires, each
/// final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferStatus {
    /// The money moved: `value` (a pending transfer's posted amount, at
    /// most what it held), at `posted_at`. `legs` are the posted
    /// transactions of a pending transfer (`None` for a plain transfer,
    /// whose legs are its own transaction IDs).
    Posted {
        value: Money,
        posted_at: Timestamp,
        legs: Option<(TransactionId, TransactionId)>,
    },
    /// Holding the transfer's value until `expires_at`.
    Pending {
        expires_at: Timestamp,
    },
    Voided {
        at: Timestamp,
    },
    Expired {
        at: Timestamp,
    },
}

impl TransferStatus {
    /// The API's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Posted { .. } => "posted",
            Self::Pending { .. } => "pending",
            Self::Voided { .. } => "voided",
            Self::Expired { .. } => "expired",
        }
    }
}

impl Transfer {
    /// What the destination receives: `value`, or its conversion for a
    /// transfer between currencies.
    pub fn destination_value(&self) -> Money {
        self.exchange
            .map_or(self.value, |exchange| exchange.destination_value)
    }

    /// When a pending transfer's hold lapses; `None` once it is not pending.
    pub fn pending_until(&self) -> Option<Timestamp> {
        match self.status {
            TransferStatus::Pending { expires_at } => Some(expires_at),
            _ => None,
        }
    }
}

impl Owned for Transfer {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// Applies a transfer event to the transfer's state (`None` before the
/// first).
pub(crate) fn evolve(state: Option<Transfer>, event: TransferEvent) -> Option<Transfer> {
    use TransferEvent as E;
    Some(match (state, event) {
        (None, E::TransferCreated(e)) => Transfer {
            id: e.id,
            project_id: e.project_id,
            source_account_id: e.source_account_id,
            destination_account_id: e.destination_account_id,
            source_transaction_id: e.source_transaction_id,
            destination_transaction_id: e.destination_transaction_id,
            value: e.value,
            meta: e.meta,
            created_at: e.created_at,
            exchange: e.exchange,
            status: TransferStatus::Posted {
                value: e.value,
                posted_at: e.created_at,
                legs: None,
            },
        },
        (None, E::PendingTransferCreated(e)) => pending(e),
        (Some(t), E::TransferMetaUpdated(e)) => Transfer { meta: e.meta, ..t },
        (Some(t), E::PendingTransferPosted(e)) if t.pending_until().is_some() => {
            debug_assert!(e.value.amount > 0 && e.value.amount <= t.value.amount);
            let legs = Some((e.source_transaction_id, e.destination_transaction_id));
            let status = TransferStatus::Posted {
                value: e.value,
                posted_at: e.posted_at,
                legs,
            };
            Transfer { status, ..t }
        }
        (Some(t), E::PendingTransferVoided(e)) if t.pending_until().is_some() => {
            let status = TransferStatus::Voided { at: e.voided_at };
            Transfer { status, ..t }
        }
        (Some(t), E::PendingTransferExpired(e)) if t.pending_until().is_some() => {
            let status = TransferStatus::Expired { at: e.expired_at };
            Transfer { status, ..t }
        }
        (state, event) => return misapplied(state, &event),
    })
}

fn pending(e: PendingTransferCreated) -> Transfer {
    Transfer {
        id: e.id,
        project_id: e.project_id,
        source_account_id: e.source_account_id,
        destination_account_id: e.destination_account_id,
        source_transaction_id: e.source_transaction_id,
        destination_transaction_id: e.destination_transaction_id,
        value: e.value,
        meta: e.meta,
        created_at: e.created_at,
        exchange: None,
        status: TransferStatus::Pending {
            expires_at: e.expires_at,
        },
    }
}
