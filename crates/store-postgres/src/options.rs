//! Connection options of [`PgStore`](crate::PgStore).

use std::time::Duration;

/// How a [`PgStore`](crate::PgStore) connects and behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgOptions {
    /// The PostgreSQL schema holding the tables (default `paycore`): 1–48
    /// characters `a-z`, `0-9`, `_`, not starting with a digit or `pg_`.
    /// Several independent event stores can share one database, one schema each.
    pub schema: String,
    /// Largest number of pooled connections (reads and the writer; default 8).
    /// One more connection is kept for LISTEN and the head poll.
    pub pool_size: usize,
    /// `application_name` of every connection (shows in `pg_stat_activity`).
    /// `None`: the URL's, else `paycore`.
    pub application_name: Option<String>,
    /// Time allowed to establish one connection, unless the URL sets
    /// `connect_timeout` (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed for one operation (an append's transaction, a read,
    /// waiting for a pooled connection) before it fails with
    /// `StoreError::Unavailable` and its connection is discarded (default 30 s).
    pub operation_timeout: Duration,
    /// How often the log head is polled, as a fallback for a lost
    /// notification: the upper bound on how late `committed()` learns of
    /// another server's commit while the database is reachable (default 200 ms).
    pub poll_interval: Duration,
    /// Most events that concurrent appends grouped into one transaction may
    /// hold together (default 10,000). A larger single request still goes
    /// alone, in one transaction.
    pub max_batch_events: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.to_owned(),
            pool_size: 8,
            application_name: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(200),
            max_batch_events: 10_000,
        }
    }
}

impl PgOptions {
    /// The default options with another schema.
    pub fn with_schema(schema: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            ..Self::default()
        }
    }
}

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "paycore";

/// Checks a schema name; the name is then safe to splice into SQL unquoted.
pub fn valid_schema(schema: &str) -> bool {
    let bytes = schema.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 48
        && !bytes[0].is_ascii_digit()
        && !schema.starts_with("pg_")
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        for good in ["paycore", "paycore_test_0a1b", "_x", "a1"] {
            assert!(valid_schema(good), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "pg_catalog",
            "Paycore",
            "a-b",
            "a b",
            "a;drop",
            "é",
            "a\"b",
            &"x".repeat(49),
        ] {
            assert!(!valid_schema(bad), "{bad}");
        }
    }
}
