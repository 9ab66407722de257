//! Deciding an import's lifecycle.

use super::events::*;
use super::state::{AggregationImport, ImportStatus};
use crate::aggregation_connection::ConnectionStatus;
use crate::context::{Context, Decided};
use crate::kernel::date::Date;
use crate::kernel::error::{DomainError, Refusal, Violations};
use crate::kernel::id::{AggregationConnectionId, AggregationImportId};
use crate::kernel::stream::{ResourceRef, StreamRef};

/// How far back an import reaches at most: 5 years (banks give no more).
pub const HISTORY_LIMIT_DAYS: i64 = 5 * 365 + 1;
/// The longest failure detail accepted.
pub const MAX_FAILURE_DETAIL_CHARS: usize = 500;

/// What an advanced import asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvancedScope {
    pub parts: ImportParts,
    /// The oldest booking date wanted; `None`: as far as allowed (5 years).
    pub history_from: Option<crate::kernel::date::Date>,
}

/// The oldest booking date an import started at `now` may ask for.
pub fn oldest_history_date(now: crate::kernel::time::Timestamp) -> Result<Date, DomainError> {
    Date::of(now)
        .and_then(|today| today.plus_days(-HISTORY_LIMIT_DAYS))
        .ok_or_else(|| DomainError::invalid("now", "outside the calendar"))
}

fn not_allowed(import: &AggregationImport, to: &str) -> DomainError {
    DomainError::refused(
        Refusal::ImportTransitionNotAllowed,
        format!(
            "aggregation import {} cannot go from {} to {to}",
            import.id,
            import.status.name()
        ),
    )
}

impl Context<'_> {
    fn aggregation_import(&self, id: AggregationImportId) -> Result<&AggregationImport, DomainError> {
        self.owned::<AggregationImport>(&StreamRef::AggregationImport(id))
            .ok_or_else(|| DomainError::not_found("aggregation import", id))
    }

    /// A pending import of a signed-in connection: default (`scope` `None`)
    /// or advanced.
    pub(crate) fn create_aggregation_import<E: From<AggregationImportEvent>>(
        &self,
        id: AggregationImportId,
        connection_id: AggregationConnectionId,
        scope: Option<AdvancedScope>,
    ) -> Result<Decided<E>, DomainError> {
        let oldest = oldest_history_date(self.now())?;
        let (kind, parts, history_from) = match scope {
            None => (ImportKind::Default, ImportParts::ALL, oldest),
            Some(scope) => {
                let mut violations = Violations::new();
                let ImportParts {
                    owners,
                    accounts,
                    transactions,
                    credit_cards,
                } = scope.parts;
                if !(owners || accounts || transactions || credit_cards) {
                    violations.add("parts", "choose at least one part");
                }
                if (owners || transactions) && !accounts {
                    violations.add(
                        "parts.accounts",
                        "owners and transactions come with their accounts",
                    );
                }
                let from = scope.history_from.unwrap_or(oldest);
                if from < oldest {
                    violations.add("history_from", format!("at most 5 years back: {oldest} or later"));
                }
                if Date::of(self.now()).is_some_and(|today| from > today) {
                    violations.add("history_from", "must not be in the future");
                }
                violations.into_result()?;
                (ImportKind::Advanced, scope.parts, from)
            }
        };
        let stream = StreamRef::AggregationImport(id);
        self.must_be_new(&stream, "aggregation import", id)?;
        let connection = self.aggregation_connection(connection_id)?;
        if matches!(connection.status, ConnectionStatus::InitialActionRequired { .. }) {
            return Err(DomainError::refused(
                Refusal::ConnectionNotConnected,
                format!("aggregation connection {connection_id} has not signed in at the bank yet"),
            ));
        }
        let event = AggregationImportEvent::AggregationImportCreated(AggregationImportCreated {
            id,
            project_id: self.project_id,
            connection_id,
            kind,
            parts,
            history_from,
            created_at: self.now(),
        });
        Ok((vec![(stream, event.into())], ResourceRef::AggregationImport(id)))
    }

    /// `PENDING → RUNNING`; a running import is started again by a job
    /// resumed after a restart: nothing to write.
    pub(crate) fn start_aggregation_import<E: From<AggregationImportEvent>>(
        &self,
        id: AggregationImportId,
    ) -> Result<Decided<E>, DomainError> {
        let import = self.aggregation_import(id)?;
        let resource = ResourceRef::AggregationImport(id);
        match import.status {
            ImportStatus::Running => Ok((Vec::new(), resource)),
            ImportStatus::Pending => {
                let event = AggregationImportEvent::AggregationImportStarted(AggregationImportStarted {
                    started_at: self.now(),
                });
                Ok((vec![(resource.stream(), event.into())], resource))
            }
            _ => Err(not_allowed(import, "RUNNING")),
        }
    }

    /// A running import's counts; they only grow. The same counts again
    /// write nothing.
    pub(crate) fn record_aggregation_import_progress<E: From<AggregationImportEvent>>(
        &self,
        id: AggregationImportId,
        progress: ImportProgress,
    ) -> Result<Decided<E>, DomainError> {
        let import = self.aggregation_import(id)?;
        let resource = ResourceRef::AggregationImport(id);
        if import.status != ImportStatus::Running {
            return Err(not_allowed(import, "RUNNING (progress)"));
        }
        if !import.progress.precedes(&progress) {
            return Err(DomainError::invalid("progress", "counts never go down"));
        }
        if import.progress == progress {
            return Ok((Vec::new(), resource));
        }
        let event = AggregationImportEvent::AggregationImportProgressed(AggregationImportProgressed {
            progress,
            progressed_at: self.now(),
        });
        Ok((vec![(resource.stream(), event.into())], resource))
    }

    /// `RUNNING → SUCCEEDED` with the final counts; again: nothing to write.
    pub(crate) fn succeed_aggregation_import<E: From<AggregationImportEvent>>(
        &self,
        id: AggregationImportId,
        progress: ImportProgress,
    ) -> Result<Decided<E>, DomainError> {
        let import = self.aggregation_import(id)?;
        let resource = ResourceRef::AggregationImport(id);
        match import.status {
            ImportStatus::Succeeded => Ok((Vec::new(), resource)),
            ImportStatus::Running => {
                if !import.progress.precedes(&progress) {
                    return Err(DomainError::invalid("progress", "counts never go down"));
                }
                let event = AggregationImportEvent::AggregationImportSucceeded(AggregationImportSucceeded {
                    progress,
                    finished_at: self.now(),
                });
                Ok((vec![(resource.stream(), event.into())], resource))
            }
            _ => Err(not_allowed(import, "SUCCEEDED")),
        }
    }

    /// `PENDING`/`RUNNING → FAILED` with the reason; a failed import failed
    /// again for the same reason writes nothing.
    pub(crate) fn fail_aggregation_import<E: From<AggregationImportEvent>>(
        &self,
        id: AggregationImportId,
        reason: ImportFailure,
        detail: &str,
    ) -> Result<Decided<E>, DomainError> {
        if detail.chars().count() > MAX_FAILURE_DETAIL_CHARS {
            return Err(DomainError::invalid(
                "detail",
                format!("at most {MAX_FAILURE_DETAIL_CHARS} characters"),
            ));
        }
        let import = self.aggregation_import(id)?;
        let resource = ResourceRef::AggregationImport(id);
        match import.status {
            ImportStatus::Failed { reason: failed } if failed == reason => Ok((Vec::new(), resource)),
            ImportStatus::Pending | ImportStatus::Running => {
                let event = AggregationImportEvent::AggregationImportFailed(AggregationImportFailed {
                    reason,
                    detail: detail.to_owned(),
                    finished_at: self.now(),
                });
                Ok((vec![(resource.stream(), event.into())], resource))
            }
            _ => Err(not_allowed(import, "FAILED")),
        }
    }
}

impl Context<'_> {
    /// Refuses unless import `id` of the caller's project is running for
    /// `connection`: how the aggregated account family checks the import
    /// a batch names.
    pub(crate) fn running_aggregation_import(
        &self,
        id: AggregationImportId,
        connection: AggregationConnectionId,
    ) -> Result<(), DomainError> {
        let import = self
            .aggregation_import(id)
            .ok()
            .filter(|import| import.connection_id == connection)
            .ok_or_else(|| DomainError::not_found("aggregation import", id))?;
        if import.status == ImportStatus::Running {
            Ok(())
        } else {
            Err(not_allowed(
                import,
                "recording data (only a RUNNING import records)",
            ))
        }
    }
}
