//! `directory`: projects and their customers.

use paycore_domain::aggregate::{Customer, Project};
use paycore_domain::kernel::idempotency::IDEMPOTENCY_WINDOW_SECONDS;
use paycore_domain::{Aggregate, CustomerId, Event, ProjectId, Timestamp};

use super::{Applied, Projection, evolve, unreachable_state};
use crate::db::ModelError;
use crate::rows::{Key, RowsMut};

/// Projects are single rows (`Key::Project`); customers a list per project.
/// `Key::VerbatimIdempotencyUntil` holds until when a record of an
/// idempotency key kept as sent (written before keys were hashed) may still
/// be live: commands look keys up by themselves too until then
/// (`paycore_domain::kernel::idempotency`).
pub(crate) struct Directory;

impl Projection for Directory {
    const NAME: &'static str = "directory";
    const VERSION: u32 = 5;
    /// 5: new IDs stored as runs (`id_runs.rs`); rows of 4 read as they are.
    const CONTINUES: Option<u32> = Some(4);
    const DESCRIPTION: &'static str = "projects and customers";

    fn apply(rows: &mut RowsMut<'_>, applied: &Applied<'_>) -> Result<(), ModelError> {
        let event = applied.event;
        match event {
            Event::ProjectCreated(_) | Event::ProjectMetaUpdated(_) => {
                let Ok(id) = applied.stream_id.parse::<ProjectId>() else {
                    return Ok(());
                };
                let state = rows.value::<Project>(Key::Project(id))?.map(Aggregate::Project);
                if let Some(Aggregate::Project(project)) = evolve(state, event) {
                    rows.set_value(Key::Project(id), &project)?;
                }
            }
            Event::CustomerCreated(created) => {
                if let Some(Aggregate::Customer(customer)) = evolve(None, event) {
                    rows.insert(
                        Key::Customers(created.project_id),
                        Key::Customer(created.id),
                        &customer,
                    )?;
                }
            }
            Event::CustomerIdentityUpdated(_) | Event::CustomerMetaUpdated(_) => {
                if let Ok(id) = applied.stream_id.parse::<CustomerId>() {
                    rows.update(
                        Key::Customer(id),
                        |customer: Customer| match Aggregate::Customer(customer).evolve(event) {
                            Aggregate::Customer(customer) => customer,
                            _ => unreachable_state(),
                        },
                    )?;
                }
            }
            Event::IdempotencyKeyUsed(used) if used.verbatim_key.is_some() => {
                let until = used.used_at.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS);
                let known = rows.value::<Timestamp>(Key::VerbatimIdempotencyUntil)?;
                if known.is_none_or(|known| known < until) {
                    rows.set_value(Key::VerbatimIdempotencyUntil, &until)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
