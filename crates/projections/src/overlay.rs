//! The served models' changes not yet in the model store.
//!
//! A command's answer waits until the read models have applied it
//! (read-your-writes), so how fast the follower applies a batch is on
//! every command's path. Writing each batch to the B-trees of the model
//! store cost more than deciding and logging the commands did. So the
//! follower applies batches in memory: each batch's changes are gathered
//! apart (reading the models as they are, concurrently with the queries)
//! and merged, once the whole batch applied, into the active changes, one
//! [`Pending`] per projection, under a short write lock. Every
//! [`FLUSH_EVERY`] (or [`FLUSH_BYTES`]) the active changes are frozen and
//! written to the store in one transaction with the checkpoints, on
//! another thread, while the follower gathers new ones. A chunk changed by
//! a hundred batches is then written once, not a hundred times.
//!
//! Queries read the active changes over the frozen ones over the store:
//! they hold the active changes' read lock, then take the frozen ones and
//! a read transaction. A freeze happens under the write lock, and the
//! writer drops the frozen changes only after its commit, so no query can
//! miss a change: with the frozen changes gone, its read transaction began
//! after the commit. A crash loses nothing: the store's checkpoints stay
//! with the rows written, and the follower replays the log from there.
//!
//! Memory is bounded by configuration, not by history: once the changes
//! held reach [`MAX_PENDING_BYTES`] while a write is still running, the
//! follower waits for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLockReadGuard;
use redb::ReadTransaction;

use crate::Shared;
use crate::db::{self, ModelError, Namespace};
use crate::rows::{Locations, Pending};
use crate::slot::Progress;

/// Longest time changes stay in memory only (while events arrive).
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Changes are written sooner once they hold this many bytes.
pub(crate) const FLUSH_BYTES: usize = 16 << 20;

/// The follower waits for the running write before holding more than this.
pub(crate) const MAX_PENDING_BYTES: usize = 64 << 20;

/// The changes of every served projection (in the registry's order) and
/// the checkpoints they bring the projections to.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub pending: Vec<Pending>,
    pub progress: Vec<Progress>,
    /// Whether `progress` moved since the layer began (events that change
    /// no row still move the checkpoints to write).
    pub moved: bool,
}

impl Layer {
    pub fn empty(progress: Vec<Progress>) -> Self {
        Self {
            pending: vec![Pending::default(); progress.len()],
            progress,
            moved: false,
        }
    }

    /// Empty, at the checkpoints `previous` reached, with room for as many
    /// changes as it held.
    pub fn sized_like(previous: &Layer) -> Self {
        Self {
            pending: previous.pending.iter().map(Pending::sized_like).collect(),
            progress: previous.progress.clone(),
            moved: false,
        }
    }

    /// Takes in one batch's changes and the checkpoints they reach.
    pub fn absorb(&mut self, changes: Vec<Pending>, progress: Vec<Progress>) {
        debug_assert_eq!(changes.len(), self.pending.len());
        for (pending, batch) in self.pending.iter_mut().zip(changes) {
            pending.absorb(batch);
        }
        self.moved |= progress
            .iter()
            .zip(&self.progress)
            .any(|((_, new), (_, old))| new != old);
        self.progress = progress;
    }

    pub fn bytes(&self) -> usize {
        self.pending.iter().map(Pending::bytes).sum()
    }

    pub fn is_empty(&self) -> bool {
        !self.moved && self.pending.iter().all(Pending::is_empty)
    }
}

/// The served projections as the follower holds them (under
/// [`Shared::served`]): since when the active changes gather.
#[derive(Debug)]
pub(crate) struct Served {
    pub since: Instant,
}

/// One consistent view for a query: the changes not yet written and a
/// read transaction of the store, taken together.
pub(crate) struct Snapshot<'a> {
    pub active: RwLockReadGuard<'a, Layer>,
    pub frozen: Option<Arc<Layer>>,
    pub txn: ReadTransaction,
}

impl Shared {
    pub(crate) fn snapshot(&self) -> Result<Snapshot<'_>, ModelError> {
        let active = self.active.read();
        let frozen = self.frozen.lock().clone();
        Ok(Snapshot {
            active,
            frozen,
            txn: self.db.read()?,
        })
    }

    /// Each projection's checkpoint, as the queries see them.
    pub(crate) fn progress(&self) -> Vec<Progress> {
        self.active.read().progress.clone()
    }

    /// Whether the active changes are due to be written.
    pub(crate) fn due(&self, served: &Served) -> bool {
        let active = self.active.read();
        !active.is_empty() && (served.since.elapsed() >= FLUSH_EVERY || active.bytes() >= FLUSH_BYTES)
    }

    /// Freezes the active changes for writing, unless a write still runs.
    pub(crate) fn freeze(&self, served: &mut Served) -> Option<Arc<Layer>> {
        let mut active = self.active.write();
        let mut frozen = self.frozen.lock();
        if frozen.is_some() {
            return None;
        }
        let fresh = Layer::sized_like(&active);
        let layer = Arc::new(std::mem::replace(&mut *active, fresh));
        // Its IDs are on their way into the store.
        Locations::saw_frozen_layer(&mut self.located.lock(), &layer);
        served.since = Instant::now();
        *frozen = Some(layer.clone());
        Some(layer)
    }

    /// Writes a frozen layer and its checkpoints in one transaction, then
    /// lets the queries read them from the store.
    pub(crate) fn write_frozen(&self, layer: &Arc<Layer>, sync: bool) -> Result<(), ModelError> {
        self.db.write(sync, |txn| {
            for (pending, (info, checkpoint)) in layer.pending.iter().zip(&layer.progress) {
                let tables = info.tables(Namespace::Served);
                pending.write(txn, &tables)?;
                db::write_checkpoint(txn, &tables, checkpoint)?;
            }
            Ok(())
        })?;
        let mut frozen = self.frozen.lock();
        if frozen.as_ref().is_some_and(|frozen| Arc::ptr_eq(frozen, layer)) {
            *frozen = None;
        }
        self.written.notify_all();
        Ok(())
    }

    /// Waits until no frozen layer is being written.
    pub(crate) fn wait_written(&self) {
        let mut frozen = self.frozen.lock();
        while frozen.is_some() {
            self.written.wait(&mut frozen);
        }
    }

    /// [`Self::wait_written`], unless the models stop meanwhile: a write
    /// that keeps failing is given up then, and nothing would clear it.
    pub(crate) fn wait_written_unless_stopped(&self) {
        let mut frozen = self.frozen.lock();
        while frozen.is_some() && !*self.stop.borrow() {
            self.written.wait_for(&mut frozen, Duration::from_millis(100));
        }
    }

    /// Writes every change held, synced (at shutdown, before a rebuild's
    /// swap): on return the store holds what the queries see.
    pub(crate) fn write_all(&self, served: &mut Served) -> Result<(), ModelError> {
        self.wait_written();
        match self.freeze(served) {
            Some(frozen) => self.write_frozen(&frozen, true),
            None => Err(ModelError::Storage(
                "a write of the read models started meanwhile".into(),
            )),
        }
    }
}
