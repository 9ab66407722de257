//! In-memory backend, for tests. Complete and correct (same semantics, same
//! hash chain as the durable log) but keeps nothing across restarts.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::api::{
    AppendRequest, AppendResult, ChainHash, EventStore, GENESIS_HASH, Position, ReadDirection, RecordedEvent,
    StreamName, Version,
};
use crate::chain::chain_hash;
use crate::error::StoreError;
use crate::request::{now_micros, plan, validate};

/// The in-memory event store. All state sits under one mutex, which makes
/// every append trivially atomic.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    committed: watch::Sender<Position>,
}

#[derive(Debug)]
struct Inner {
    events: Vec<RecordedEvent>,
    streams: HashMap<StreamName, Vec<Position>>,
    last_hash: ChainHash,
    last_recorded_at: i64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                events: Vec::new(),
                streams: HashMap::new(),
                last_hash: GENESIS_HASH,
                last_recorded_at: 0,
            }),
            committed: watch::Sender::new(0),
        }
    }

    /// Number of events stored.
    pub fn len(&self) -> u64 {
        self.inner.lock().events.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        validate(&request)?;
        let mut inner = self.inner.lock();
        let firsts = plan(&request, |stream| {
            inner
                .streams
                .get(stream)
                .map(|positions| positions.len() as u64 - 1)
        })?;
        let recorded_at = now_micros(inner.last_recorded_at);
        let first_position = inner.events.len() as Position;
        let mut versions = Vec::with_capacity(request.writes.len());
        let mut prev = inner.last_hash;
        for (write, first_version) in request.writes.into_iter().zip(firsts) {
            versions.push(first_version + write.events.len() as u64 - 1);
            for (offset, event) in write.events.into_iter().enumerate() {
                let mut recorded = RecordedEvent {
                    position: inner.events.len() as Position,
                    stream: write.stream.clone(),
                    version: first_version + offset as u64,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    recorded_at_micros: recorded_at,
                    metadata: event.metadata,
                    payload: event.payload,
                    hash: [0; 32],
                    last_in_commit: false,
                };
                recorded.hash = chain_hash(&prev, &recorded);
                prev = recorded.hash;
                inner
                    .streams
                    .entry(write.stream.clone())
                    .or_default()
                    .push(recorded.position);
                inner.events.push(recorded);
            }
        }
        if let Some(last) = inner.events.last_mut() {
            last.last_in_commit = true;
        }
        inner.last_hash = prev;
        inner.last_recorded_at = recorded_at;
        let next = inner.events.len() as Position;
        // Published under the lock so that the watch value only ever grows.
        self.committed.send_replace(next);
        Ok(AppendResult {
            first_position,
            last_position: next - 1,
            versions,
            recorded_at_micros: recorded_at,
        })
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Version,
        direction: ReadDirection,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.lock();
        let Some(positions) = inner.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let selected = select_versions(positions, from, direction, max);
        Ok(selected
            .map(|position| inner.events[position as usize].clone())
            .collect())
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.lock();
        let start = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(inner.events.len());
        let end = start.saturating_add(max).min(inner.events.len());
        Ok(inner.events[start..end].to_vec())
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Option<Version>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .streams
            .get(stream)
            .map(|positions| positions.len() as u64 - 1))
    }

    fn committed(&self) -> watch::Receiver<Position> {
        self.committed.subscribe()
    }
}

/// The positions a stream read returns, in order. `positions[v]` is the
/// position of version `v` (versions are dense from 0).
pub(crate) fn select_versions(
    positions: &[Position],
    from: Version,
    direction: ReadDirection,
    max: usize,
) -> impl Iterator<Item = Position> + '_ {
    let len = positions.len();
    let from = usize::try_from(from).unwrap_or(usize::MAX);
    let (forward, backward) = match direction {
        ReadDirection::Forward => (positions.get(from.min(len)..).unwrap_or(&[]), &[][..]),
        ReadDirection::Backward if len == 0 => (&[][..], &[][..]),
        ReadDirection::Backward => (&[][..], &positions[..=from.min(len - 1)]),
    };
    forward.iter().chain(backward.iter().rev()).copied().take(max)
}
