//! A transfer's state and how its events evolve it.

use serde::{Deserialize, Serialize};

use super::events::{Exchange, TransferEvent};
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
    pub source_transaction_id: TransactionId,
    pub destination_transaction_id: TransactionId,
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
    /// Set for a transfer between currencies.
    pub exchange: Option<Exchange>,
}

impl Owned for Transfer {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// Applies a transfer event to the transfer's state (`None` before the
/// first).
pub(crate) fn evolve(state: Option<Transfer>, event: TransferEvent) -> Option<Transfer> {
    Some(match (state, event) {
        (None, TransferEvent::TransferCreated(e)) => Transfer {
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
        },
        (Some(t), TransferEvent::TransferMetaUpdated(e)) => Transfer { meta: e.meta, ..t },
        (state, event) => return misapplied(state, &event),
    })
}
