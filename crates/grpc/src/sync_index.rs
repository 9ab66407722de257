//! The sync scheduler's index (`paycore_aggregation_sync::SyncIndex`) over
//! the `open-banking` read model: what is due is read from its sorted rows
//! on disk, so the scheduler keeps no list of connections in memory.

use std::time::Duration;

use paycore_aggregation_sync::{DueConnection, IndexError, SyncIndex};
use paycore_domain::{AggregationConnectionId, AggregationImportId, ProjectId, Timestamp};
use paycore_projections::{DueKind, ModelError, ReadModels};

/// [`SyncIndex`] over the read models.
#[derive(Clone, Debug)]
pub struct ReadModelsIndex(pub ReadModels);

fn index_error(error: ModelError) -> IndexError {
    IndexError(error.to_string())
}

impl SyncIndex for ReadModelsIndex {
    fn unfinished_imports(&self) -> Result<Vec<(ProjectId, AggregationImportId)>, IndexError> {
        self.0.unfinished_aggregation_imports().map_err(index_error)
    }

    fn connections_due(
        &self,
        until: Timestamp,
        connected_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<DueConnection>, IndexError> {
        let mut due: Vec<DueConnection> = Vec::new();
        for (kind, bound) in [
            (DueKind::Refresh, connected_before),
            (DueKind::Retry, until),
            (DueKind::ConsentExpiry, until),
        ] {
            for found in self
                .0
                .aggregation_connections_due(kind, bound, limit)
                .map_err(index_error)?
            {
                merge(&mut due, found.project, found.connection, found.at);
            }
        }
        // Each connection once at its earliest time, earliest first.
        due.sort_by_key(|due| (due.due_at, due.connection_id));
        due.truncate(limit);
        Ok(due)
    }

    fn next_due(&self, refresh_after: Duration) -> Result<Option<Timestamp>, IndexError> {
        let after = i64::try_from(refresh_after.as_micros()).unwrap_or(i64::MAX);
        let mut next: Option<Timestamp> = None;
        for kind in DueKind::ALL {
            let Some(at) = self.0.next_aggregation_due(kind).map_err(index_error)? else {
                continue;
            };
            let at = match kind {
                DueKind::Refresh => Timestamp::from_micros(at.micros().saturating_add(after)),
                DueKind::Retry | DueKind::ConsentExpiry => at,
            };
            next = Some(next.map_or(at, |next| next.min(at)));
        }
        Ok(next)
    }
}

/// Adds a connection due at `at`, or moves it earlier if it is there.
fn merge(
    due: &mut Vec<DueConnection>,
    project: ProjectId,
    connection: AggregationConnectionId,
    at: Timestamp,
) {
    match due.iter_mut().find(|due| due.connection_id == connection) {
        Some(found) => found.due_at = found.due_at.min(at),
        None => due.push(DueConnection {
            project_id: project,
            connection_id: connection,
            due_at: at,
        }),
    }
}
