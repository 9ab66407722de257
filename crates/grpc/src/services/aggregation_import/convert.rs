//! Imports: domain → proto, and the start request's fields.

use paycore_domain::aggregation_import::{
    AdvancedScope, AggregationImport, ImportFailure, ImportKind, ImportParts, ImportProgress, ImportStatus,
};
use paycore_domain::{AggregationConnectionId, Violations};

use crate::convert::{self as shared, date_pb, timestamp};
use crate::pb;
use crate::services::aggregation_connection::convert::action_required_reason_pb;
use crate::services::customer;

pub fn parts_pb(parts: &ImportParts) -> pb::AggregationImportParts {
    pb::AggregationImportParts {
        owners: parts.owners,
        accounts: parts.accounts,
        transactions: parts.transactions,
        credit_cards: parts.credit_cards,
    }
}

pub fn progress_pb(progress: &ImportProgress) -> pb::AggregationImportProgress {
    pb::AggregationImportProgress {
        accounts_found: progress.accounts_found,
        accounts_done: progress.accounts_done,
        transactions_seen: progress.transactions_seen,
        transactions_recorded: progress.transactions_recorded,
    }
}

/// Why an import failed, with the explanation recorded with it.
pub fn failure_pb(failure: &ImportFailure, detail: &str) -> pb::AggregationImportFailure {
    use pb::AggregationImportFailureReason as R;
    let (reason, action_required_reason, next_try_at) = match *failure {
        ImportFailure::ActionRequired { reason } => {
            (R::ActionRequired, Some(action_required_reason_pb(reason)), None)
        }
        ImportFailure::BankUnavailable => (R::BankUnavailable, None, None),
        ImportFailure::RateLimited { next_try_at } => (R::RateLimited, None, Some(timestamp(next_try_at))),
        ImportFailure::ConnectionDeleted => (R::ConnectionDeleted, None, None),
        ImportFailure::Internal => (R::Internal, None, None),
    };
    pb::AggregationImportFailure {
        reason: reason.into(),
        action_required_reason: action_required_reason.map(Into::into),
        next_try_at,
        detail: detail.to_owned(),
    }
}

pub fn aggregation_import_pb(import: &AggregationImport) -> pb::AggregationImport {
    use pb::AggregationImportStatus as S;
    let (status, failure) = match &import.status {
        ImportStatus::Pending => (S::Pending, None),
        ImportStatus::Running => (S::Running, None),
        ImportStatus::Succeeded => (S::Succeeded, None),
        ImportStatus::Failed { reason } => (
            S::Failed,
            Some(failure_pb(
                reason,
                import.failure_detail.as_deref().unwrap_or_default(),
            )),
        ),
    };
    pb::AggregationImport {
        id: import.id.to_string(),
        created_at: Some(timestamp(import.created_at)),
        project_id: import.project_id.to_string(),
        connection_id: import.connection_id.to_string(),
        kind: match import.kind {
            ImportKind::Default => pb::AggregationImportKind::Default,
            ImportKind::Advanced => pb::AggregationImportKind::Advanced,
        }
        .into(),
        parts: Some(parts_pb(&import.parts)),
        history_from: Some(date_pb(import.history_from)),
        status: status.into(),
        progress: Some(progress_pb(&import.progress)),
        failure,
        started_at: import.started_at.map(timestamp),
        finished_at: import.finished_at.map(timestamp),
    }
}

/// What `StartAggregationImport` asks for: the connection, and the scope of
/// an advanced import (`None`: default). The domain checks the parts and
/// the window.
pub fn start_request(
    request: &pb::StartAggregationImportRequest,
    v: &mut Violations,
) -> Option<(AggregationConnectionId, Option<AdvancedScope>)> {
    let connection = shared::id::<AggregationConnectionId>(&request.connection_id, "connection_id", v);
    let history_from = match &request.history_from {
        None => Some(None),
        Some(date) => customer::convert::date(date, "history_from", v).map(Some),
    };
    let scope = match (&request.parts, history_from) {
        (None, Some(Some(_))) => {
            v.add("history_from", "only with parts (an advanced import)");
            None
        }
        (None, Some(None)) => Some(None),
        (Some(parts), Some(history_from)) => Some(Some(AdvancedScope {
            parts: ImportParts {
                owners: parts.owners,
                accounts: parts.accounts,
                transactions: parts.transactions,
                credit_cards: parts.credit_cards,
            },
            history_from,
        })),
        (_, None) => None,
    };
    connection.zip(scope)
}
