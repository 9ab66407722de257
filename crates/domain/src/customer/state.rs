//! A customer's state and how its events evolve it.

use serde::{Deserialize, Serialize};

use super::identity::Identity;
use crate::aggregate::Aggregate;
use crate::events::Event;
use crate::kernel::id::{CustomerId, ProjectId};
use crate::kernel::meta::Meta;
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: CustomerId,
    pub project_id: ProjectId,
    pub identity: Option<Identity>,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// Applies a customer event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty, Event::CustomerCreated(e)) => Aggregate::Customer(Customer {
            id: e.id,
            project_id: e.project_id,
            identity: e.identity.clone(),
            meta: e.meta.clone(),
            created_at: e.created_at,
        }),
        (Aggregate::Customer(c), Event::CustomerIdentityUpdated(e)) => Aggregate::Customer(Customer {
            identity: e.identity.clone(),
            ..c
        }),
        (Aggregate::Customer(c), Event::CustomerMetaUpdated(e)) => Aggregate::Customer(Customer {
            meta: e.meta.clone(),
            ..c
        }),
        (state, event) => state.misapplied(event),
    }
}
