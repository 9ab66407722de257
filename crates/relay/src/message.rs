//! One event as a JetStream message: its payload, its headers and its
//! message ID, and reading the relay's place back from a stored message.
//!
//! The payload is the `paycore.v1.EventEnvelope` that
//! `EventService.SubscribeEvents` sends (protobuf), so a consumer of the bus
//! decodes it with the same generated code. The headers repeat what a
//! consumer routes or de-duplicates on without decoding it.

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage as Publish;
use bytes::Bytes;
use paycore_store::{ChainHash, Position, RecordedEvent};
use prost::Message as _;

/// `Nats-Msg-Id`: `<log ID>:<position>`. JetStream drops a second message
/// with the same ID within the stream's duplicate window.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The log the event belongs to ([`LogId`]).
pub const LOG: &str = "Paycore-Log";
/// The event's global position in the log.
pub const POSITION: &str = "Paycore-Position";
/// The event's stream, e.g. `account-acc_…`.
pub const STREAM: &str = "Paycore-Stream";
/// The event's version in its stream.
pub const VERSION: &str = "Paycore-Version";
/// The event's type name, e.g. `TransferCreated`.
pub const EVENT_TYPE: &str = "Paycore-Event-Type";
/// The W3C trace context of the command that wrote the event (when it has
/// one), under the header name W3C Trace Context uses, so a consumer's
/// OpenTelemetry propagator reads it as it reads an HTTP request's.
pub const TRACEPARENT: &str = "traceparent";

/// Names one log (one deployment's history): the first 8 bytes of the chain
/// hash of its first event, in hex. Two deployments publishing into one NATS
/// get different message IDs, and a relay refuses a stream another log
/// wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogId(String);

impl LogId {
    pub fn from_first_hash(hash: &ChainHash) -> Self {
        Self(hex::encode(&hash[..8]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The message ID of the event at `position` of `log`.
pub fn message_id(log: &LogId, position: Position) -> String {
    format!("{log}:{position}")
}

/// The message of `event`: `envelope` (its typed envelope, as the
/// subscription would send it) as payload, and the headers.
pub fn publish(log: &LogId, event: &RecordedEvent, envelope: &paycore_grpc::pb::EventEnvelope) -> Publish {
    let message = Publish::build()
        .payload(Bytes::from(envelope.encode_to_vec()))
        .message_id(message_id(log, event.position))
        .header(LOG, log.as_str())
        .header(POSITION, event.position.to_string().as_str())
        .header(STREAM, event.stream.as_str())
        .header(VERSION, event.version.to_string().as_str())
        .header(EVENT_TYPE, &*event.event_type);
    match &event.metadata.trace {
        Some(trace) => message.header(TRACEPARENT, trace.traceparent().as_str()),
        None => message,
    }
}

/// What a stored message says about where the relay stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub log: String,
    pub position: Position,
}

/// The [`Stamp`] of a message the relay published, `None` if it lacks the
/// headers (another publisher wrote into the stream).
pub fn stamp(headers: &HeaderMap) -> Option<Stamp> {
    let log = headers.get(LOG)?.as_str().to_owned();
    let position = headers.get(POSITION)?.as_str().parse().ok()?;
    Some(Stamp { log, position })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_name_the_log_and_the_position() {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]);
        let log = LogId::from_first_hash(&hash);
        assert_eq!(log.as_str(), "deadbeef00010203");
        assert_eq!(message_id(&log, 42), "deadbeef00010203:42");
        let other = LogId::from_first_hash(&[7; 32]);
        assert_ne!(message_id(&other, 42), message_id(&log, 42));
    }

    #[test]
    fn stamps_read_back_what_was_published() {
        let mut headers = HeaderMap::new();
        headers.insert(LOG, "deadbeef00010203");
        headers.insert(POSITION, "42");
        assert_eq!(
            stamp(&headers),
            Some(Stamp {
                log: "deadbeef00010203".into(),
                position: 42
            })
        );
        headers.insert(POSITION, "x");
        assert_eq!(stamp(&headers), None);
        assert_eq!(stamp(&HeaderMap::new()), None);
    }
}
