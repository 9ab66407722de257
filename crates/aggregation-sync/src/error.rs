//! What the syncer answers when a step or a job cannot go on. Messages
//! never carry a password, a challenge, a consent ID or what a bank says
//! about a person.

use paycore_bank_connector::ConnectorError;
use paycore_domain::aggregation_connection::ActionRequiredReason;
use paycore_domain::{AggregationConnectionId, AggregationImportId, Timestamp};
use paycore_engine::EngineError;

use crate::index::IndexError;
use crate::secrets::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No such connection in the caller's project (another project's, a
    /// deleted one, or none).
    #[error("aggregation connection {0} not found")]
    ConnectionNotFound(AggregationConnectionId),
    #[error("aggregation import {0} not found")]
    ImportNotFound(AggregationImportId),
    /// The step does not fit where the connection is (a one-time code when
    /// none is asked for, credentials while it is syncing, …).
    #[error("aggregation connection {connection} is {status}: {expected}")]
    WrongStep {
        connection: AggregationConnectionId,
        status: &'static str,
        expected: &'static str,
    },
    /// The step the bank asked for is no longer kept (already answered, or
    /// never started on this deployment): sign in again.
    #[error("no sign-in step is waiting for aggregation connection {0}: sign in again")]
    StepMissing(AggregationConnectionId),
    /// The bank's callback names another sign-in than the one waiting.
    #[error("the redirect's state does not belong to aggregation connection {0}'s sign-in")]
    RedirectMismatch(AggregationConnectionId),
    /// The bank is down; nothing was recorded, the step can be tried again.
    #[error("the bank is unavailable, try again{}", retry_text(*.retry_after))]
    BankUnavailable { retry_after: Option<Timestamp> },
    /// The bank limits calls; nothing was recorded.
    #[error("the bank limits calls, try again after {}", when(*.retry_after))]
    RateLimited { retry_after: Timestamp },
    /// The end user must act at the bank (sign in again, renew consent).
    #[error("aggregation connection {connection} needs the end user: {}", reason.name())]
    ActionRequired {
        connection: AggregationConnectionId,
        reason: ActionRequiredReason,
    },
    /// An import is already running for the connection on this server, or
    /// the connection is being updated.
    #[error("aggregation connection {connection} is already updating")]
    AlreadyUpdating {
        connection: AggregationConnectionId,
        import: Option<AggregationImportId>,
    },
    /// The connector answered with an error that is neither of the above.
    #[error("bank connector: {}", connector_text(.0))]
    Connector(ConnectorError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A time or date outside the calendar (a clock gone wrong).
    #[error("a time outside the calendar")]
    Calendar,
}

fn retry_text(at: Option<Timestamp>) -> String {
    at.map(|at| format!(" after {}", when(at))).unwrap_or_default()
}

/// A time as people read it (RFC 3339, UTC).
fn when(at: Timestamp) -> String {
    crate::clock::to_offset(at)
        .ok()
        .and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{} µs after the epoch", at.micros()))
}

/// A connector error without what it may carry of a person (an account's
/// bank ID can be its number).
pub(crate) fn connector_text(error: &ConnectorError) -> String {
    match error {
        ConnectorError::UnknownAccount(_) => "unknown account".into(),
        ConnectorError::UnknownCard(_) => "unknown credit card".into(),
        ConnectorError::InvalidRequest(_) => "invalid request".into(),
        ConnectorError::Protocol(_) => "the bank's answer could not be understood".into(),
        ConnectorError::Transport(_) => "the bank could not be reached".into(),
        other => other.to_string(),
    }
}
