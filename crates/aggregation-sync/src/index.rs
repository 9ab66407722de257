//! What is due, asked of an index the read models keep (the syncer keeps no
//! list of connections). The index may lag the log: the syncer always
//! loads a connection's real state before acting on it.

use std::fmt;
use std::time::Duration;

use paycore_domain::{AggregationConnectionId, AggregationImportId, ProjectId, Timestamp};

/// The index could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("sync index: {0}")]
pub struct IndexError(pub String);

/// A connection with something due, and when it became due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueConnection {
    pub project_id: ProjectId,
    pub connection_id: AggregationConnectionId,
    pub due_at: Timestamp,
}

/// Answerable from three indexes sorted by time and a set:
///
/// - connections `CONNECTED`, by `status_changed_at` (the time of the
///   `AggregationConnectionStatusChanged` to `CONNECTED`);
/// - connections `REFRESH_DELAYED`, by their `next_try_at`;
/// - connections with a consent, by its `expires_at` (set by
///   `AggregationConsentGranted`, replaced by a renewal, removed by
///   `AggregationConsentExpired`);
/// - imports `PENDING` or `RUNNING` (added by `AggregationImportCreated`,
///   removed by `AggregationImportSucceeded`/`Failed`).
///
/// A connection leaves all three at `AggregationConnectionDeleted`, and
/// the first two whenever its status changes to another. The methods are
/// plain functions (the read model answers from one read transaction);
/// they must not block for long: the schedule calls them on its task.
pub trait SyncIndex: Send + Sync + fmt::Debug {
    /// Imports `PENDING` or `RUNNING`, to resume after a restart.
    fn unfinished_imports(&self) -> Result<Vec<(ProjectId, AggregationImportId)>, IndexError>;

    /// At most `limit` connections with something due at or before `until`,
    /// earliest first, each once with its earliest due time: `CONNECTED`
    /// since before `connected_before` (a refresh), `REFRESH_DELAYED` with
    /// `next_try_at ≤ until`, a consent whose `expires_at ≤ until`.
    fn connections_due(
        &self,
        until: Timestamp,
        connected_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<DueConnection>, IndexError>;

    /// The earliest time anything becomes due (a `CONNECTED` connection's
    /// status-change time plus `refresh_after`, a `next_try_at`, an
    /// `expires_at`), past or future, if anything is indexed.
    fn next_due(&self, refresh_after: Duration) -> Result<Option<Timestamp>, IndexError>;
}
