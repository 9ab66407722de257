//! Why a relay session ended.

use paycore_grpc::services::events::convert::NotCreated;
use paycore_store::{Position, StoreError};

use crate::subject::BadSubject;

/// Why a session of the relay ended; the relay logs it and starts a new one
/// after a pause, except when the store closed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot connect to NATS at {servers}: {source}")]
    Connect {
        servers: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("JetStream stream {stream}: {why}")]
    Stream { stream: String, why: String },
    #[error(
        "JetStream stream {stream} captures {has:?}, not {wants:?}: give the relay another stream name \
         (--relay-stream) or the subject prefix the stream was made for (--relay-subject-prefix)"
    )]
    StreamSubjects {
        stream: String,
        has: Vec<String>,
        wants: String,
    },
    #[error(
        "JetStream stream {stream} holds the events of another log ({theirs}; this one is {ours}): \
         give each deployment its own stream (--relay-stream) and subject prefix"
    )]
    AnotherLog {
        stream: String,
        theirs: String,
        ours: String,
    },
    #[error(
        "the last message of JetStream stream {stream} (sequence {sequence}) was not published by a paycore \
         relay (no Paycore-Log/Paycore-Position headers): the relay cannot tell where it stopped"
    )]
    Foreign { stream: String, sequence: u64 },
    #[error(
        "JetStream stream {stream} has no message at or shortly before its last sequence {sequence} \
         (purged, deleted or expired by a limit): the relay resumes after the last one, so it cannot tell \
         where to; delete the stream to publish the log again from the start, and keep limits that leave \
         the last message"
    )]
    LastMessageGone { stream: String, sequence: u64 },
    #[error("publishing the event at position {position}: {source}")]
    Publish {
        position: Position,
        #[source]
        source: async_nats::jetstream::context::PublishError,
    },
    #[error(
        "the event at position {position} was stored at sequence {got} where {expected} was expected \
         (another publisher in the stream?); resuming from the stream's last message"
    )]
    OutOfStep {
        position: Position,
        expected: u64,
        got: u64,
    },
    #[error("reading the log: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the event at position {position} ({event_type} v{schema_version}) cannot be decoded by this server \
         ({why}); the relay cannot go past it"
    )]
    Decode {
        position: Position,
        event_type: String,
        schema_version: u16,
        why: String,
    },
    #[error("the event at position {position} could not be converted: {source}")]
    Convert {
        position: Position,
        #[source]
        source: NotCreated,
    },
    #[error(transparent)]
    Subject(#[from] BadSubject),
    #[error("the relay's election in PostgreSQL: {0}")]
    Election(String),
    #[error("lost the relay's PostgreSQL connection, and with it the election")]
    ElectionLost,
}

impl RelayError {
    /// Errors that retrying cannot fix without an operator: logged at error
    /// level (the relay still retries, in case the operator fixes them).
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            Self::StreamSubjects { .. }
                | Self::AnotherLog { .. }
                | Self::Foreign { .. }
                | Self::LastMessageGone { .. }
                | Self::Decode { .. }
                | Self::Convert { .. }
                | Self::Subject(_)
        )
    }
}
