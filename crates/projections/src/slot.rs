//! A projection together with its checkpoint, and the type-erased handles
//! the follower, the snapshots and the rebuild jobs work with, whichever
//! projection it is.

use std::any::Any;

use parking_lot::{RwLock, RwLockReadGuard};
use paycore_domain::Event;
use paycore_store::{ChainHash, Position, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::ProjectionError;
use crate::models::{Applied, Projection};
use crate::snapshot;

/// An event of `$all` and its decoded form.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub recorded: RecordedEvent,
    pub event: Event,
    /// Where the stream name's category ends: found once here rather than
    /// by every projection for every event.
    category_len: usize,
}

impl Decoded {
    fn new(recorded: RecordedEvent, event: Event) -> Self {
        let category_len = recorded.stream.category().len();
        Self {
            recorded,
            event,
            category_len,
        }
    }

    fn category(&self) -> &str {
        &self.recorded.stream.as_str()[..self.category_len]
    }

    /// The part after the first `-` (empty when there is none).
    fn stream_id(&self) -> &str {
        self.recorded
            .stream
            .as_str()
            .get(self.category_len + 1..)
            .unwrap_or("")
    }
}

/// Decodes a batch read from `$all`; an event this build cannot read stops
/// the projections (serving stale models beats guessing; the audit names it).
pub(crate) fn decode(batch: Vec<RecordedEvent>) -> Result<Vec<Decoded>, ProjectionError> {
    let mut decoded = Vec::with_capacity(batch.len());
    for recorded in batch {
        match Event::decode(&recorded.event_type, recorded.schema_version, &recorded.payload) {
            Ok(event) => decoded.push(Decoded::new(recorded, event)),
            Err(error) => {
                return Err(ProjectionError::Decode {
                    position: recorded.position,
                    reason: error.to_string(),
                });
            }
        }
    }
    Ok(decoded)
}

/// A projection's model and how far into `$all` it is.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Checkpointed<P> {
    /// Events at positions below this are applied.
    pub next_position: Position,
    /// Chain hash of the event at `next_position - 1`: proves, on load, that
    /// the model was built from the log it is about to follow.
    pub last_hash: Option<ChainHash>,
    pub model: P,
}

impl<P: Projection> Checkpointed<P> {
    /// Applies the events of `batch` this projection has not applied yet.
    pub fn apply(&mut self, batch: &[Decoded]) {
        for decoded in batch {
            let recorded = &decoded.recorded;
            if recorded.position < self.next_position {
                continue;
            }
            debug_assert_eq!(
                recorded.position, self.next_position,
                "events are applied in order, once"
            );
            self.model.apply(&Applied {
                category: decoded.category(),
                stream_id: decoded.stream_id(),
                event: &decoded.event,
            });
            self.next_position = recorded.position + 1;
            self.last_hash = Some(recorded.hash);
        }
    }
}

/// A projection being built outside of the served models: at start, by a
/// rebuild job, or offline by `paycore projections rebuild`.
pub(crate) trait Build: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn checkpoint(&self) -> Position;
    fn last_hash(&self) -> Option<ChainHash>;
    fn apply(&mut self, batch: &[Decoded]);
    /// The snapshot file's bytes.
    fn encode(&self) -> Vec<u8>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<P: Projection> Build for Checkpointed<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn checkpoint(&self) -> Position {
        self.next_position
    }

    fn last_hash(&self) -> Option<ChainHash> {
        self.last_hash
    }

    fn apply(&mut self, batch: &[Decoded]) {
        Checkpointed::apply(self, batch);
    }

    fn encode(&self) -> Vec<u8> {
        snapshot::encode::<P>(self)
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Decodes a projection's snapshot file into a build of it.
pub(crate) type DecodeFn = fn(&[u8]) -> Result<Box<dyn Build>, snapshot::SnapshotError>;

/// What every projection offers without naming its type.
#[derive(Clone, Copy, Debug)]
pub struct ProjectionInfo {
    pub name: &'static str,
    pub version: u32,
    pub description: &'static str,
    pub(crate) empty: fn() -> Box<dyn Build>,
    pub(crate) decode: DecodeFn,
}

impl ProjectionInfo {
    /// Decodes the bytes of a snapshot file of this projection as loading
    /// does, and answers its checkpoint. For the fuzzers of `paycore-fuzz`
    /// only.
    #[doc(hidden)]
    pub fn decode_snapshot(&self, bytes: &[u8]) -> Result<Position, snapshot::SnapshotError> {
        (self.decode)(bytes).map(|build| build.checkpoint())
    }

    pub(crate) fn of<P: Projection>() -> Self {
        Self {
            name: P::NAME,
            version: P::VERSION,
            description: P::DESCRIPTION,
            empty: || Box::new(Checkpointed::<P>::default()),
            decode: |bytes| Ok(Box::new(snapshot::decode::<P>(bytes)?)),
        }
    }
}

/// A projection as served: queries read it under a shared lock, the
/// follower applies new events under an exclusive one.
#[derive(Debug, Default)]
pub(crate) struct Live<P> {
    state: RwLock<Checkpointed<P>>,
}

impl<P: Projection> Live<P> {
    pub fn read(&self) -> RwLockReadGuard<'_, Checkpointed<P>> {
        self.state.read()
    }
}

/// The served side of a projection, type-erased.
pub(crate) trait Slot: Send + Sync {
    fn info(&self) -> ProjectionInfo;
    fn checkpoint(&self) -> Position;
    fn apply(&self, batch: &[Decoded]);
    fn encode(&self) -> Vec<u8>;
    /// Replaces the served model by `built` if both are at the same
    /// checkpoint (atomically with respect to the follower); otherwise hands
    /// `built` back. `force` replaces whatever the checkpoints (at start,
    /// before anything is served).
    fn swap(&self, built: Box<dyn Build>, force: bool) -> Result<(), Box<dyn Build>>;
}

impl<P: Projection> Slot for Live<P> {
    fn info(&self) -> ProjectionInfo {
        ProjectionInfo::of::<P>()
    }

    fn checkpoint(&self) -> Position {
        self.state.read().next_position
    }

    fn apply(&self, batch: &[Decoded]) {
        let Some(last) = batch.last() else { return };
        // Skip the lock when the batch holds nothing new for this one.
        if self.checkpoint() > last.recorded.position {
            return;
        }
        self.state.write().apply(batch);
    }

    fn encode(&self) -> Vec<u8> {
        snapshot::encode::<P>(&self.state.read())
    }

    fn swap(&self, built: Box<dyn Build>, force: bool) -> Result<(), Box<dyn Build>> {
        let mut state = self.state.write();
        if !force && state.next_position != built.checkpoint() {
            return Err(built);
        }
        match built.into_any().downcast::<Checkpointed<P>>() {
            Ok(built) => {
                *state = *built;
                Ok(())
            }
            Err(_) => unreachable!("a projection is only swapped with a build of its own type"),
        }
    }
}
