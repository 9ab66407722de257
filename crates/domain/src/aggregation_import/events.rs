//! The import family's events and the values they carry (no personal data:
//! counts, dates and reasons only).

use serde::{Deserialize, Serialize};

use crate::aggregation_connection::ActionRequiredReason;
use crate::kernel::date::Date;
use crate::kernel::id::{AggregationConnectionId, AggregationImportId, ProjectId};
use crate::kernel::time::Timestamp;

/// Default (everything the bank gives, in one command) or advanced (the
/// parts chosen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportKind {
    Default,
    Advanced,
}

/// What an import brings. A default import brings every part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportParts {
    /// The accounts' owners and co-owners.
    pub owners: bool,
    pub accounts: bool,
    pub transactions: bool,
    /// Credit cards (accounts of type credit card) and their transactions.
    pub credit_cards: bool,
}

impl ImportParts {
    pub const ALL: Self = Self {
        owners: true,
        accounts: true,
        transactions: true,
        credit_cards: true,
    };
}

/// Why an import failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportFailure {
    /// The end user must act (the connection is `ACTION_REQUIRED`).
    ActionRequired { reason: ActionRequiredReason },
    /// The bank could not be reached.
    BankUnavailable,
    /// The bank limited the calls (the connection is `REFRESH_DELAYED`).
    RateLimited { next_try_at: Timestamp },
    /// The connection was deleted while the import was pending or running.
    ConnectionDeleted,
    /// Anything else (a bug, a malformed answer of the bank).
    Internal,
}

/// How far an import got. Every count only grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportProgress {
    pub accounts_found: u32,
    pub accounts_done: u32,
    /// Transactions the bank returned, new or not.
    pub transactions_seen: u64,
    /// Transactions recorded for the first time.
    pub transactions_recorded: u64,
}

impl ImportProgress {
    /// Whether every count of `next` is at least this one's.
    pub fn precedes(&self, next: &ImportProgress) -> bool {
        next.accounts_found >= self.accounts_found
            && next.accounts_done >= self.accounts_done
            && next.transactions_seen >= self.transactions_seen
            && next.transactions_recorded >= self.transactions_recorded
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationImportCreated {
    pub id: AggregationImportId,
    pub project_id: ProjectId,
    pub connection_id: AggregationConnectionId,
    pub kind: ImportKind,
    pub parts: ImportParts,
    /// The oldest booking date asked for (at most 5 years back).
    pub history_from: Date,
    pub created_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationImportStarted {
    pub started_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationImportProgressed {
    pub progress: ImportProgress,
    pub progressed_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationImportSucceeded {
    pub progress: ImportProgress,
    pub finished_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationImportFailed {
    pub reason: ImportFailure,
    /// A technical explanation (never personal data: no names, IBANs or
    /// descriptions), at most [`super::MAX_FAILURE_DETAIL_CHARS`].
    pub detail: String,
    pub finished_at: Timestamp,
}

/// The import family's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggregationImportEvent {
    AggregationImportCreated(AggregationImportCreated),
    AggregationImportStarted(AggregationImportStarted),
    AggregationImportProgressed(AggregationImportProgressed),
    AggregationImportSucceeded(AggregationImportSucceeded),
    AggregationImportFailed(AggregationImportFailed),
}
