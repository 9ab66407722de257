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

    /// The stream a name denotes, if it is one of ours (the inverse of
    /// [`StreamRef::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        let (category, instance) = name.split_once('-')?;
        let scoped = || {
            let (project, rest) = instance.split_once('.')?;
            Some((project.parse::<ProjectId>().ok()?, rest))
        };
        match category {
            "project" => instance.parse().ok().map(Self::Project),
            "apikey" => instance.parse().ok().map(Self::ApiKey),
            "customer" => instance.parse().ok().map(Self::Customer),
            "account" => instance.parse().ok().map(Self::Account),
            "transfer" => instance.parse().ok().map(Self::Transfer),
            "projectbalance" => {
                let (project, currency) = scoped()?;
                Some(Self::ProjectBalance(project, currency.parse().ok()?))
            }
            "idempotency" => {
                let (project, key) = scoped()?;
                Some(Self::Idempotency(project, key.to_owned()))
            }
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn names_parse_back_to_their_stream() {
        let project = ProjectId::from_uuid(Uuid::from_u128(1));
        let streams = [
            StreamRef::Project(project),
            StreamRef::ApiKey(ApiKeyId::from_uuid(Uuid::from_u128(2))),
            StreamRef::Customer(CustomerId::from_uuid(Uuid::from_u128(3))),
            StreamRef::Account(AccountId::from_uuid(Uuid::from_u128(4))),
            StreamRef::Transfer(TransferId::from_uuid(Uuid::from_u128(5))),
            StreamRef::ProjectBalance(project, Currency::EUR),
            StreamRef::Idempotency(project, "order.42-retry".into()),
        ];
        for stream in streams {
            assert_eq!(StreamRef::parse(&stream.name()), Some(stream.clone()), "{stream}");
        }
        for bad in [
            "",
            "account",
            "account-",
            "account-cus_x",
            "nope-1",
            "projectbalance-prj_x.EUR",
        ] {
            assert_eq!(StreamRef::parse(bad), None, "{bad}");
        }
    }
}
