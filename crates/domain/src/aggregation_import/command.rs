//! The import family's commands.

use super::decide::AdvancedScope;
use super::events::{AggregationImportEvent, ImportFailure, ImportProgress};
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{AggregationConnectionId, AggregationImportId, ProjectId};
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum AggregationImportCommand {
    /// A default import (`scope: None`) or an advanced one.
    CreateAggregationImport {
        id: AggregationImportId,
        connection_id: AggregationConnectionId,
        scope: Option<AdvancedScope>,
    },
    StartAggregationImport {
        id: AggregationImportId,
    },
    RecordAggregationImportProgress {
        id: AggregationImportId,
        progress: ImportProgress,
    },
    SucceedAggregationImport {
        id: AggregationImportId,
        progress: ImportProgress,
    },
    FailAggregationImport {
        id: AggregationImportId,
        reason: ImportFailure,
        detail: String,
    },
}

impl<E: From<AggregationImportEvent>> FamilyCommand<E> for AggregationImportCommand {
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CreateAggregationImport {
                id, connection_id, ..
            } => {
                streams.push(StreamRef::AggregationImport(*id));
                streams.push(StreamRef::AggregationConnection(*connection_id));
            }
            Self::StartAggregationImport { id }
            | Self::RecordAggregationImportProgress { id, .. }
            | Self::SucceedAggregationImport { id, .. }
            | Self::FailAggregationImport { id, .. } => streams.push(StreamRef::AggregationImport(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateAggregationImport { id, .. } => Some(StreamRef::AggregationImport(*id)),
            _ => None,
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateAggregationImport {
                id,
                connection_id,
                scope,
            } => ctx.create_aggregation_import(*id, *connection_id, *scope),
            Self::StartAggregationImport { id } => ctx.start_aggregation_import(*id),
            Self::RecordAggregationImportProgress { id, progress } => {
                ctx.record_aggregation_import_progress(*id, *progress)
            }
            Self::SucceedAggregationImport { id, progress } => ctx.succeed_aggregation_import(*id, *progress),
            Self::FailAggregationImport { id, reason, detail } => {
                ctx.fail_aggregation_import(*id, *reason, detail)
            }
        }
    }
}
