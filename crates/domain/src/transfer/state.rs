//! A transfer's state and how its events evolve it.

use serde::{Deserialize, Serialize};

use super::events::Exchange;
use crate::aggregate::Aggregate;
use crate::events::Event;
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

/// Applies a transfer event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty, Event::TransferCreated(e)) => Aggregate::Transfer(Transfer {
            id: e.id,
            project_id: e.project_id,
            source_account_id: e.source_account_id,
            destination_account_id: e.destination_account_id,
            source_transaction_id: e.source_transaction_id,
            destination_transaction_id: e.destination_transaction_id,
            value: e.value,
            meta: e.meta.clone(),
            created_at: e.created_at,
            exchange: e.exchange,
        }),
        (Aggregate::Transfer(t), Event::TransferMetaUpdated(e)) => Aggregate::Transfer(Transfer {
            meta: e.meta.clone(),
            ..t
        }),
        (state, event) => state.misapplied(event),
    }
}
