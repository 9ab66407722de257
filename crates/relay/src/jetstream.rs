//! The JetStream side of a session: connecting, making sure the stream
//! exists and captures our subjects, and finding where the relay stopped.
//!
//! The relay keeps no checkpoint of its own: the stream's last message says
//! which position of which log it holds (`Paycore-Log`,
//! `Paycore-Position`), and the relay resumes right after it. A checkpoint
//! elsewhere could disagree with the stream after a crash between the two
//! writes; the stream cannot disagree with itself.

use async_nats::jetstream::{self, stream::Stream};
use paycore_store::Position;

use crate::RelayOptions;
use crate::error::RelayError;
use crate::message::{LogId, stamp};
use crate::subject::stream_subjects;

/// Where a session starts publishing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The first position of the log not yet in the stream.
    pub next_position: Position,
    /// The stream's last sequence: the next message must follow it.
    pub last_sequence: u64,
}

pub(crate) async fn connect(options: &RelayOptions) -> Result<async_nats::Client, RelayError> {
    async_nats::ConnectOptions::new()
        .name("paycore relay")
        .connection_timeout(options.ack_timeout)
        .connect(options.servers.clone())
        .await
        .map_err(|source| RelayError::Connect {
            servers: options.display.clone(),
            source,
        })
}

/// The relay's stream, created with `options.duplicate_window` if missing;
/// an existing stream must capture `<prefix>.>` (its other settings are the
/// operator's).
pub(crate) async fn open_stream(
    js: &jetstream::Context,
    options: &RelayOptions,
) -> Result<Stream, RelayError> {
    let wants = stream_subjects(&options.subject_prefix);
    let config = jetstream::stream::Config {
        name: options.stream.clone(),
        description: Some("paycore events, published by `paycore serve --relay-nats`".to_owned()),
        subjects: vec![wants.clone()],
        duplicate_window: options.duplicate_window,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    let stream = js
        .get_or_create_stream(config)
        .await
        .map_err(|error| RelayError::Stream {
            stream: options.stream.clone(),
            why: format!("cannot get or create it: {error}"),
        })?;
    let has = &stream.cached_info().config.subjects;
    if !has.contains(&wants) {
        return Err(RelayError::StreamSubjects {
            stream: options.stream.clone(),
            has: has.clone(),
            wants,
        });
    }
    Ok(stream)
}

/// How far back from the stream's last sequence a session looks for the
/// last message that still exists (see [`resume_point`]).
const TAIL_SEARCH: u64 = 1_024;

/// Where to resume: after the stream's last message, which must be one
/// this log's relay published.
///
/// If the messages at the end of the stream are gone (a NATS server killed
/// before writing its last messages may come back with the sequence but not
/// the message; an operator may delete one), the session resumes after the
/// last one that exists, still expecting the stream's last sequence: the
/// events after it are published again, after the gap, in order. A stream
/// emptied by a purge or a limit has no such message: the relay stops and
/// says so rather than guess.
pub(crate) async fn resume_point(stream: &mut Stream, name: &str, log: &LogId) -> Result<Resume, RelayError> {
    let state = stream
        .info()
        .await
        .map_err(|error| RelayError::Stream {
            stream: name.to_owned(),
            why: format!("cannot read its state: {error}"),
        })?
        .state
        .clone();
    let last_sequence = state.last_sequence;
    if last_sequence == 0 {
        return Ok(Resume {
            next_position: 0,
            last_sequence,
        });
    }
    let lowest = state
        .first_sequence
        .max(last_sequence.saturating_sub(TAIL_SEARCH))
        .max(1);
    let mut sequence = last_sequence;
    let last = loop {
        match stream.get_raw_message(sequence).await {
            Ok(message) => break message,
            Err(error)
                if matches!(
                    error.kind(),
                    jetstream::stream::RawMessageErrorKind::NoMessageFound
                ) =>
            {
                if sequence <= lowest {
                    return Err(RelayError::LastMessageGone {
                        stream: name.to_owned(),
                        sequence: last_sequence,
                    });
                }
                sequence -= 1;
            }
            Err(error) => {
                return Err(RelayError::Stream {
                    stream: name.to_owned(),
                    why: format!("cannot read its message at sequence {sequence}: {error}"),
                });
            }
        }
    };
    let stamp = stamp(&last.headers).ok_or_else(|| RelayError::Foreign {
        stream: name.to_owned(),
        sequence,
    })?;
    if stamp.log != log.as_str() {
        return Err(RelayError::AnotherLog {
            stream: name.to_owned(),
            theirs: stamp.log,
            ours: log.to_string(),
        });
    }
    if sequence != last_sequence {
        tracing::warn!(
            stream = name,
            gone_from = sequence + 1,
            gone_to = last_sequence,
            resume_from = stamp.position + 1,
            "the last messages of the stream are gone; publishing their events again after them"
        );
    }
    Ok(Resume {
        next_position: stamp.position.saturating_add(1),
        last_sequence,
    })
}
