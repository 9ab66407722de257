//! An import's state and how its events evolve it.

use serde::{Deserialize, Serialize};

use super::events::*;
use crate::context::{Owned, misapplied};
use crate::kernel::date::Date;
use crate::kernel::id::{AggregationConnectionId, AggregationImportId, ProjectId};
use crate::kernel::time::Timestamp;

/// `PENDING → RUNNING → SUCCEEDED / FAILED` (a pending import may fail too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportStatus {
    Pending,
    Running,
    Succeeded,
    Failed { reason: ImportFailure },
}

impl ImportStatus {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed { .. } => "FAILED",
        }
    }

    /// Whether an import may go from here to `next`: `PENDING → RUNNING`,
    /// `RUNNING → SUCCEEDED`, `PENDING`/`RUNNING → FAILED` (what the audit
    /// checks on every import event that changes the status).
    pub fn may_become(&self, next: &ImportStatus) -> bool {
        matches!(
            (self, next),
            (Self::Pending, Self::Running)
                | (Self::Running, Self::Succeeded)
                | (Self::Pending | Self::Running, Self::Failed { .. })
        )
    }

    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationImport {
    pub id: AggregationImportId,
    pub project_id: ProjectId,
    pub connection_id: AggregationConnectionId,
    pub kind: ImportKind,
    pub parts: ImportParts,
    pub history_from: Date,
    pub status: ImportStatus,
    pub progress: ImportProgress,
    /// Set when it failed.
    pub failure_detail: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl Owned for AggregationImport {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

pub(crate) fn evolve(
    state: Option<AggregationImport>,
    event: AggregationImportEvent,
) -> Option<AggregationImport> {
    use AggregationImportEvent as E;
    Some(match (state, event) {
        (None, E::AggregationImportCreated(e)) => AggregationImport {
            id: e.id,
            project_id: e.project_id,
            connection_id: e.connection_id,
            kind: e.kind,
            parts: e.parts,
            history_from: e.history_from,
            status: ImportStatus::Pending,
            progress: ImportProgress::default(),
            failure_detail: None,
            created_at: e.created_at,
            started_at: None,
            finished_at: None,
        },
        (Some(i), E::AggregationImportStarted(e)) => AggregationImport {
            status: ImportStatus::Running,
            started_at: Some(e.started_at),
            ..i
        },
        (Some(i), E::AggregationImportProgressed(e)) => AggregationImport {
            progress: e.progress,
            ..i
        },
        (Some(i), E::AggregationImportSucceeded(e)) => AggregationImport {
            status: ImportStatus::Succeeded,
            progress: e.progress,
            finished_at: Some(e.finished_at),
            ..i
        },
        (Some(i), E::AggregationImportFailed(e)) => AggregationImport {
            status: ImportStatus::Failed { reason: e.reason },
            failure_detail: Some(e.detail),
            finished_at: Some(e.finished_at),
            ..i
        },
        (state, event) => return misapplied(state, &event),
    })
}
