//! `directory`: projects and their customers.

use paycore_domain::aggregate::{Customer, Project};
use paycore_domain::idempotency::IDEMPOTENCY_WINDOW_SECONDS;
use paycore_domain::{Aggregate, CustomerId, Event, ProjectId, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Applied, CreationOrdered, Map, Projection, evolve, unreachable_state};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Directory {
    pub projects: Map<ProjectId, Project>,
    pub customers: Map<ProjectId, CreationOrdered<CustomerId, Customer>>,
    /// Which project owns each customer, for events that name only the customer.
    owners: Map<CustomerId, ProjectId>,
    /// Until when a record of an idempotency key kept as sent (written
    /// before keys were hashed) may still be live: commands look keys up by
    /// themselves too until then (`paycore_domain::idempotency`).
    pub verbatim_idempotency_until: Option<Timestamp>,
}

impl Projection for Directory {
    const NAME: &'static str = "directory";
    const VERSION: u32 = 3;
    const DESCRIPTION: &'static str = "projects and customers";

    fn apply(&mut self, applied: &Applied<'_>) {
        let event = applied.event;
        match event {
            Event::ProjectCreated(_) | Event::ProjectMetaUpdated(_) => {
                let Ok(id) = applied.stream_id.parse::<ProjectId>() else {
                    return;
                };
                let state = self.projects.remove(&id).map(Aggregate::Project);
                if let Some(Aggregate::Project(project)) = evolve(state, event) {
                    self.projects.insert(id, project);
                }
            }
            Event::CustomerCreated(created) => {
                self.owners.insert(created.id, created.project_id);
                if let Some(Aggregate::Customer(customer)) = evolve(None, event) {
                    self.customers
                        .entry(created.project_id)
                        .or_default()
                        .insert(created.id, customer);
                }
            }
            Event::CustomerIdentityUpdated(_) | Event::CustomerMetaUpdated(_) => {
                let Ok(id) = applied.stream_id.parse::<CustomerId>() else {
                    return;
                };
                let Some(list) = self
                    .owners
                    .get(&id)
                    .and_then(|project| self.customers.get_mut(project))
                else {
                    return;
                };
                list.update(&id, |customer| {
                    match Aggregate::Customer(customer.clone()).evolve(event) {
                        Aggregate::Customer(customer) => customer,
                        _ => unreachable_state(),
                    }
                });
            }
            Event::IdempotencyKeyUsed(used) if used.verbatim_key.is_some() => {
                let until = used.used_at.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS);
                self.verbatim_idempotency_until = self.verbatim_idempotency_until.max(Some(until));
            }
            _ => {}
        }
    }
}
