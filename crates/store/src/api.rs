//! The event store contract shared by every backend.
//!
//! A *stream* holds one aggregate instance's events, numbered by a per-stream
//! version starting at 0. Every event also has a *global position* (0, 1, 2 …)
//! in one total order, the `$all` log. An append writes to one or more streams
//! and applies all of it or none of it.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::StoreError;

/// Global position of an event in the `$all` log. Dense: 0, 1, 2 …
pub type Position = u64;

/// Per-stream version of an event. The first event of a stream is version 0.
pub type Version = u64;

/// SHA-256 digest chaining a record to the one before it.
pub type ChainHash = [u8; 32];

/// The hash that precedes position 0.
pub const GENESIS_HASH: ChainHash = [0; 32];

/// Name of a stream: `<category>-<id>`, e.g. `account-acc_0a1b…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamName(Arc<str>);

impl StreamName {
    /// Builds `<category>-<id>`.
    pub fn new(category: &str, id: &str) -> Self {
        debug_assert!(!category.contains('-'), "a category never contains '-'");
        Self(format!("{category}-{id}").into())
    }

    /// The part before the first `-` (the whole name when there is none).
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(&self.0, |(category, _)| category)
    }

    /// The part after the first `-` (empty when there is none).
    pub fn id(&self) -> &str {
        self.0.split_once('-').map_or("", |(_, id)| id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for StreamName {
    fn from(name: &str) -> Self {
        Self(name.into())
    }
}

impl From<String> for StreamName {
    fn from(name: String) -> Self {
        Self(name.into())
    }
}

// The derived `Hash`/`Eq`/`Ord` of `StreamName` are those of the wrapped
// `str`, so looking a name up by `&str` in a map keyed by `StreamName` is
// sound (and saves an allocation per lookup in the log's index).
impl std::borrow::Borrow<str> for StreamName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// What the writer believes about a stream before appending to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(Version),
    /// No check.
    Any,
}

impl ExpectedVersion {
    /// The expectation that holds for a stream whose last version is `current`.
    pub fn from_current(current: Option<Version>) -> Self {
        current.map_or(Self::NoStream, Self::Exact)
    }

    /// Whether a stream whose last version is `current` satisfies this expectation.
    pub fn is_satisfied_by(self, current: Option<Version>) -> bool {
        match self {
            Self::NoStream => current.is_none(),
            Self::Exact(expected) => current == Some(expected),
            Self::Any => true,
        }
    }
}

/// Who and what caused an event. Written with every event, never interpreted
/// by the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    /// The API key (or system actor) that issued the command.
    pub actor: Option<String>,
    pub project_id: Option<String>,
    /// The W3C trace context of the work that wrote the event (the span of
    /// the command), so a trace follows the event to its readers. Absent on
    /// events written without one, and on every event of older builds.
    #[serde(default)]
    pub trace: Option<TraceContext>,
}

/// A W3C trace context as `traceparent` carries it (version 00): the trace,
/// the span within it, and the trace flags (bit 0: sampled). Both IDs are
/// never all zeros (the W3C rules make such a context invalid), which
/// [`TraceContext::new`] enforces.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceContext {
    /// The context, or `None` when either ID is all zeros (invalid).
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<Self> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The `traceparent` header value: `00-<trace id>-<span id>-<flags>`,
    /// lower-case hex.
    pub fn traceparent(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("00-")?;
        for byte in self.trace_id {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("-")?;
        for byte in self.span_id {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "-{:02x}", self.flags)
    }
}

impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TraceContext({self})")
    }
}

/// An event about to be appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub event_type: Arc<str>,
    pub schema_version: u16,
    pub metadata: Arc<EventMetadata>,
    /// postcard-encoded payload; opaque to the store.
    pub payload: Bytes,
}

/// Events for one stream, guarded by an expectation about its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamWrite {
    pub stream: StreamName,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// One atomic append. Writes are applied in order; a stream may appear more
/// than once, and each expectation is checked against the stream as left by
/// the writes before it in the same request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendRequest {
    pub writes: Vec<StreamWrite>,
}

impl AppendRequest {
    pub fn event_count(&self) -> usize {
        self.writes.iter().map(|write| write.events.len()).sum()
    }
}

/// Where an append landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// Position of the first event written.
    pub first_position: Position,
    /// Position of the last event written.
    pub last_position: Position,
    /// For each write of the request, in order: the stream's last version after it.
    pub versions: Vec<Version>,
    /// Microseconds since the Unix epoch at which the append was committed.
    pub recorded_at_micros: i64,
}

/// An event as stored: the envelope plus the payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: Position,
    pub stream: StreamName,
    pub version: Version,
    pub event_type: Arc<str>,
    pub schema_version: u16,
    /// Microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    pub metadata: Arc<EventMetadata>,
    pub payload: Bytes,
    /// `chain_hash(previous record's hash, this record)`.
    pub hash: ChainHash,
    /// Whether this is the last event of its append: the events of one
    /// append are one atomic change (both legs of a transfer), so a reader
    /// of `$all` that must never show half of one (the read models) stops
    /// its batches after such an event. Not part of the chain hash: it
    /// follows from where the append ends, which the backends record.
    pub last_in_commit: bool,
}

/// Which end of a stream a read starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadDirection {
    /// Ascending versions, starting at the given version (inclusive).
    Forward,
    /// Descending versions, starting at the given version (inclusive);
    /// `Version::MAX` starts at the last event.
    Backward,
}

/// The contract every backend implements. All methods are cancel-safe in the
/// sense that dropping a pending `append` never leaves half a request in the
/// log: it is either fully committed or not at all.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + fmt::Debug + 'static {
    /// Appends every write of `request` atomically, or none of it. Returns only
    /// after the events are on stable storage (for durable backends).
    ///
    /// Errors: [`StoreError::WrongExpectedVersion`] when an expectation fails
    /// (nothing is written), [`StoreError::InvalidRequest`] for an empty request
    /// or a write without events.
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError>;

    /// Up to `max` events of `stream`, starting at version `from` (inclusive),
    /// in `direction`. A stream that does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Version,
        direction: ReadDirection,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max` events of `$all` from position `from` (inclusive), ascending.
    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The last version of `stream`, or `None` if it has no events.
    async fn stream_version(&self, stream: &StreamName) -> Result<Option<Version>, StoreError>;

    /// The number of committed events (= the position the next event will get),
    /// updated after every durable commit. Subscriptions wait on it.
    fn committed(&self) -> watch::Receiver<Position>;
}
