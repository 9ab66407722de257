//! Which stream of the log holds which aggregate.

use std::fmt;

use crate::id::{AccountId, ApiKeyId, CustomerId, ProjectId, TransferId};
use crate::money::Currency;

/// An aggregate instance, and so one stream of the event log.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamRef {
    Project(ProjectId),
    ApiKey(ApiKeyId),
    Customer(CustomerId),
    Account(AccountId),
    Transfer(TransferId),
    /// The sum of all balances of one project in one currency. Only operations
    /// that bring money in or take it out of the project touch it, so plain
    /// transfers never contend on it.
    ProjectBalance(ProjectId, Currency),
    /// One idempotency key of one project.
    Idempotency(ProjectId, String),
}

impl StreamRef {
    /// The stream category: the part of the stream name before the first `-`.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Project(_) => "project",
            Self::ApiKey(_) => "apikey",
            Self::Customer(_) => "customer",
            Self::Account(_) => "account",
            Self::Transfer(_) => "transfer",
            Self::ProjectBalance(..) => "projectbalance",
            Self::Idempotency(..) => "idempotency",
        }
    }

    /// The part of the stream name after the category.
    pub fn instance(&self) -> String {
        match self {
            Self::Project(id) => id.to_string(),
            Self::ApiKey(id) => id.to_string(),
            Self::Customer(id) => id.to_string(),
            Self::Account(id) => id.to_string(),
            Self::Transfer(id) => id.to_string(),
            Self::ProjectBalance(project, currency) => format!("{project}.{currency}"),
            Self::Idempotency(project, key) => format!("{project}.{key}"),
        }
    }

    /// The full stream name, `<category>-<instance>`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.category(), self.instance())
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.category(), self.instance())
    }
}

impl fmt::Debug for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
