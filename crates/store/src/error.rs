//! Typed errors of the event store.

use std::path::{Path, PathBuf};

use crate::api::{ExpectedVersion, Position, StreamName, Version};

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

    /// The log is damaged somewhere other than a torn tail: a frame whose
    /// header or checksum fails, or stored data that contradicts the log.
    /// Never retried: the data at that place cannot be served.
    #[error("corrupt log: {file}, offset {offset}{}: {reason}", at_position(*.position))]
    Corrupt {
        file: PathBuf,
        offset: u64,
        /// The first position the damaged frame holds (or would hold), when known.
        position: Option<Position>,
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

fn at_position(position: Option<Position>) -> String {
    position.map_or_else(String::new, |position| format!(" (position {position})"))
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// [`StoreError::Corrupt`] at `offset` of `path`, in the frame holding
/// `position`.
pub(crate) fn corrupt(path: &Path, offset: u64, position: Position, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        file: path.to_path_buf(),
        offset,
        position: Some(position),
        reason: reason.into(),
    }
}
