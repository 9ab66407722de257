//! Typed errors of the event store.

use std::path::PathBuf;

use crate::api::{ExpectedVersion, StreamName, Version};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An expectation about a stream's version did not hold; nothing was written.
    #[error("stream {stream}: expected {expected:?}, but its last version is {actual:?}")]
    WrongExpectedVersion {
        stream: StreamName,
        expected: ExpectedVersion,
        actual: Option<Version>,
    },

    /// The request itself is malformed (no writes, a write without events, …).
    #[error("invalid append request: {0}")]
    InvalidRequest(String),

    /// There is no room for the request; nothing was written. The store stays usable.
    #[error("disk full: {0}")]
    DiskFull(String),

    /// The log is damaged somewhere other than a torn tail.
    #[error("corrupt log: {file}, offset {offset}: {reason}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another process")]
    Locked(PathBuf),

    /// An I/O failure that does not compromise what is already durable.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The writer stopped after a failure that makes the page cache untrustworthy
    /// (a failed fsync). Every later append fails with this; the process must exit.
    #[error("event store writer stopped: {0}")]
    Fatal(String),

    /// A backend failure that may go away (network, database restart, …).
    #[error("event store unavailable: {0}")]
    Unavailable(String),

    /// The store was closed.
    #[error("event store is closed")]
    Closed,
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
