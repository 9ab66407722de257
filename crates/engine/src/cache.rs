//! Committed aggregate state kept in memory, and loading it from the store
//! (from a snapshot and the events after it, when there is one).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use paycore_domain::{Aggregate, Event, StreamRef};
use paycore_store::{EventStore, ReadDirection, RecordedEvent, StreamName, Version};

use crate::error::EngineError;
use crate::snapshot::{Restored, Snapshotter};

/// An aggregate's state and the version of the last event folded into it.
/// The state is shared: the cache, a batch's overlay and answers hold the
/// same allocation, and the cache's table stays small when it grows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cached {
    pub state: Arc<Aggregate>,
    pub version: Option<Version>,
}

impl Cached {
    /// Folds one more event of the stream into the state.
    pub fn evolve(&mut self, event: &Event) {
        let state = Arc::unwrap_or_clone(std::mem::take(&mut self.state));
        self.state = Arc::new(state.evolve(event));
        self.version = Some(self.version.map_or(0, |version| version + 1));
    }
}

/// States as of the last commit. Only the decider task replaces entries;
/// readers may fill a missing entry they loaded themselves.
#[derive(Debug, Default)]
pub(crate) struct StateCache {
    states: RwLock<HashMap<StreamRef, Cached>>,
}

impl StateCache {
    pub fn get(&self, stream: &StreamRef) -> Option<Cached> {
        self.states.read().get(stream).cloned()
    }

    /// Keeps an entry the decider may have written meanwhile: it is newer.
    /// A stream with no events is not remembered: anyone can name IDs that
    /// do not exist, and they must not grow the cache.
    pub fn insert_if_absent(&self, stream: StreamRef, cached: Cached) {
        if cached.version.is_some() {
            self.states.write().entry(stream).or_insert(cached);
        }
    }

    /// Stores committed states, unless the cache already holds a later
    /// version of a stream (folded in from another writer meanwhile).
    pub fn publish(&self, committed: impl IntoIterator<Item = (StreamRef, Cached)>) {
        let mut states = self.states.write();
        for (stream, cached) in committed {
            match states.get(&stream) {
                Some(existing) if existing.version > cached.version => {}
                _ => {
                    states.insert(stream, cached);
                }
            }
        }
    }

    /// Folds an event another writer appended into the cached state, if the
    /// cache holds the stream right before it; drops the entry if the cache
    /// is further behind (it is reloaded when next needed).
    pub fn apply_other_write(
        &self,
        stream: &StreamRef,
        version: Version,
        event: impl FnOnce() -> Option<Event>,
    ) {
        let behind = self
            .states
            .read()
            .get(stream)
            .is_some_and(|cached| cached.version < Some(version));
        if !behind {
            return;
        }
        let mut states = self.states.write();
        let Some(cached) = states.get_mut(stream) else {
            return;
        };
        if cached.version.map_or(0, |v| v + 1) == version
            && let Some(event) = event()
        {
            cached.evolve(&event);
        } else if cached.version < Some(version) {
            states.remove(stream);
        }
    }

    pub fn forget<'a>(&self, streams: impl IntoIterator<Item = &'a StreamRef>) {
        let mut states = self.states.write();
        for stream in streams {
            states.remove(stream);
        }
    }
}

const LOAD_CHUNK: usize = 1_024;

/// Folds a stream's events from the store into its current state, starting
/// from its snapshot when there is a usable one.
pub(crate) async fn load_stream(
    store: &dyn EventStore,
    snapshots: Option<&Snapshotter>,
    stream: &StreamRef,
) -> Result<Cached, EngineError> {
    let Some(snapshots) = snapshots else {
        return catch_up(store, stream, Cached::default()).await;
    };
    let name = StreamName::from(stream.name());
    // Ask for the snapshot while reading the first events: most streams are
    // short, have none and are read whole by this one read, so looking for
    // a snapshot costs them no extra round trip to the store.
    let (restored, first) = tokio::join!(
        snapshots.restore(&name),
        store.read_stream(&name, 0, ReadDirection::Forward, LOAD_CHUNK)
    );
    let first = first?;
    let long = first.len() == LOAD_CHUNK;
    if long && let Some(restored) = restored {
        let started = restored.cached.version;
        match from_snapshot(store, stream, &name, restored).await? {
            Some(cached) => {
                snapshots.after_load(stream, started, &cached);
                return Ok(cached);
            }
            None => {
                tracing::warn!(
                    stream = %name,
                    "aggregate snapshot does not match the log (another log, or damaged); \
                     folding the stream from the start"
                );
                snapshots.remove(name.clone());
            }
        }
    }
    let mut cached = Cached::default();
    fold(&mut cached, &first)?;
    if long {
        cached = catch_up(store, stream, cached).await?;
    }
    snapshots.after_load(stream, None, &cached);
    Ok(cached)
}

/// The stream's state folded from a snapshot, or `None` if the snapshot does
/// not belong to this log: the event at its version must exist and carry
/// the hash recorded with it.
async fn from_snapshot(
    store: &dyn EventStore,
    stream: &StreamRef,
    name: &StreamName,
    restored: Restored,
) -> Result<Option<Cached>, EngineError> {
    let Restored {
        mut cached,
        event_hash,
    } = restored;
    let Some(version) = cached.version else {
        return Ok(None);
    };
    let chunk = store
        .read_stream(name, version, ReadDirection::Forward, LOAD_CHUNK)
        .await?;
    match chunk.first() {
        Some(first) if first.version == version && first.hash == event_hash => {}
        _ => return Ok(None),
    }
    fold(&mut cached, &chunk[1..])?;
    if chunk.len() == LOAD_CHUNK {
        cached = catch_up(store, stream, cached).await?;
    }
    Ok(Some(cached))
}

/// Brings `cached` (a committed state of `stream`) up to the end of the
/// stream, reading only the events after it.
pub(crate) async fn catch_up(
    store: &dyn EventStore,
    stream: &StreamRef,
    mut cached: Cached,
) -> Result<Cached, EngineError> {
    let name = StreamName::from(stream.name());
    loop {
        let from = cached.version.map_or(0, |version| version + 1);
        let chunk = store
            .read_stream(&name, from, ReadDirection::Forward, LOAD_CHUNK)
            .await?;
        fold(&mut cached, &chunk)?;
        if chunk.len() < LOAD_CHUNK {
            return Ok(cached);
        }
    }
}

/// Folds the next events of the stream into `cached`.
fn fold(cached: &mut Cached, events: &[RecordedEvent]) -> Result<(), EngineError> {
    for recorded in events {
        let event = Event::decode(&recorded.event_type, recorded.schema_version, &recorded.payload)?;
        debug_assert_eq!(
            recorded.version,
            cached.version.map_or(0, |v| v + 1),
            "stream versions are contiguous"
        );
        cached.evolve(&event);
    }
    Ok(())
}
