//! A customer's state and how its events evolve it.

use serde::{Deserialize, Serialize};

use super::events::CustomerEvent;
use super::identity::Identity;
use crate::context::{Owned, misapplied};
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

impl Owned for Customer {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// Applies a customer event to the customer's state (`None` before the
/// first).
pub(crate) fn evolve(state: Option<Customer>, event: CustomerEvent) -> Option<Customer> {
    Some(match (state, event) {
        (None, CustomerEvent::CustomerCreated(e)) => Customer {
            id: e.id,
            project_id: e.project_id,
            identity: e.identity,
            meta: e.meta,
            created_at: e.created_at,
        },
        (Some(c), CustomerEvent::CustomerIdentityUpdated(e)) => Customer {
            identity: e.identity,
            ..c
        },
        (Some(c), CustomerEvent::CustomerMetaUpdated(e)) => Customer { meta: e.meta, ..c },
        (state, event) => return misapplied(state, &event),
    })
}
