//! Opening the projections at start and following `$all` afterwards.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use paycore_store::{EventStore, Position, RecordedEvent, StoreError};

use crate::db::{self, Checkpoint, ModelDb, ModelError, Namespace};
use crate::overlay::{FLUSH_EVERY, Layer, MAX_PENDING_BYTES};
use crate::slot::{self, Decoded, Progress};
use crate::{ProjectionError, Shared};

/// Events applied per batch while following.
const APPLY_BATCH: usize = 4_096;

/// Each projection's checkpoint in the model store, after dropping the rows
/// that cannot be continued: those of another version of the projection,
/// and those built from another log (the event at the checkpoint is not
/// there with the same chain hash). Those projections start again from 0.
pub(crate) async fn prepare(db: &ModelDb, store: &dyn EventStore) -> Result<Vec<Progress>, ProjectionError> {
    let found = {
        let txn = db.read()?;
        let mut found = Vec::new();
        for info in crate::projections() {
            found.push((info, db::read_checkpoint(&txn, &info.tables(Namespace::Served))?));
        }
        found
    };
    let mut progress = Vec::with_capacity(found.len());
    let mut reset = Vec::new();
    for (info, checkpoint) in found {
        let usable = match checkpoint {
            None => None,
            Some(checkpoint) if checkpoint.version != info.version => {
                tracing::warn!(
                    projection = info.name,
                    found = checkpoint.version,
                    version = info.version,
                    "read model of another version: rebuilding it from the log"
                );
                None
            }
            Some(checkpoint) if !belongs_to(&checkpoint, store).await? => {
                tracing::warn!(
                    projection = info.name,
                    "read model was built from another log: rebuilding it from this one"
                );
                None
            }
            Some(checkpoint) => Some(checkpoint),
        };
        match usable {
            Some(checkpoint) => progress.push((info, checkpoint)),
            None => {
                reset.push(info);
                progress.push((info, info.empty()));
            }
        }
    }
    db.write(true, |txn| {
        for info in crate::projections() {
            let tables = info.tables(Namespace::Served);
            if reset.iter().any(|reset| reset.name == info.name) {
                db::clear(txn, &tables)?;
                db::write_checkpoint(txn, &tables, &info.empty())?;
            } else {
                db::create_tables(txn, &tables)?;
            }
        }
        Ok(())
    })?;
    Ok(progress)
}

/// Whether rows at `checkpoint` were made from `store`'s log: the event at
/// the checkpoint exists there with the same chain hash.
pub(crate) async fn belongs_to(
    checkpoint: &Checkpoint,
    store: &dyn EventStore,
) -> Result<bool, ProjectionError> {
    let Some(last) = checkpoint.next_position.checked_sub(1) else {
        return Ok(true);
    };
    let found = store.read_all(last, 1).await?;
    Ok(found
        .first()
        .is_some_and(|event| Some(event.hash) == checkpoint.last_hash))
}

/// Snapshot files of the in-memory read models of earlier releases: the
/// models now live in the model store, rebuilt from the log on the first
/// start; once that is done the files are only dead weight.
pub(crate) fn remove_legacy_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let legacy = path
            .extension()
            .is_some_and(|extension| extension == "snapshot" || extension == "rebuild");
        if legacy {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a read-model snapshot of an earlier release")
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "could not remove an old read-model snapshot")
                }
            }
        }
    }
}

/// What applying a batch left to do.
struct Applied {
    /// What every projection has applied.
    position: Position,
    /// Frozen changes to write to the store now.
    frozen: Option<Arc<Layer>>,
    /// Bytes of changes held in memory.
    held: usize,
    /// Whether changes are held that no write has taken yet.
    unwritten: bool,
}

/// Applies one batch to the served projections in memory and shows it to
/// the queries; freezes the changes gathered once they are due.
fn apply_served(shared: &Shared, batch: &[Decoded]) -> Result<Applied, ModelError> {
    let mut served = shared.served.blocking_lock();
    // The batch's changes are gathered beside the active ones (queries go
    // on reading meanwhile) and merged only once all of it applied: a batch
    // that fails half-way leaves nothing behind.
    let (changes, progress) = {
        let frozen = shared.frozen.lock().clone();
        let active = shared.active.read();
        let txn = shared.db.read()?;
        slot::apply_in_memory(&txn, Namespace::Served, &active, frozen.as_deref(), batch)?
    };
    let position = slot::lowest(&progress);
    shared.active.write().absorb(changes, progress);
    let frozen = if shared.due(&served) {
        shared.freeze(&mut served)
    } else {
        None
    };
    let active = shared.active.read();
    Ok(Applied {
        position,
        frozen,
        held: active.bytes(),
        unwritten: !active.is_empty(),
    })
}

/// Freezes what is held when nothing arrived for a while (so a quiet
/// server's store catches up); answers it and whether changes are still
/// held (a write was running: try again later).
fn freeze_idle(shared: &Shared) -> (Option<Arc<Layer>>, bool) {
    let mut served = shared.served.blocking_lock();
    let frozen = if shared.due(&served) {
        shared.freeze(&mut served)
    } else {
        None
    };
    (frozen, !shared.active.read().is_empty())
}

/// Writes a frozen layer on a blocking thread, retrying every second until
/// it is written or the models stop (the changes stay visible meanwhile).
fn spawn_write(shared: &Arc<Shared>, frozen: Arc<Layer>) -> tokio::task::JoinHandle<()> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        while let Err(error) = shared.write_frozen(&frozen, false) {
            tracing::error!(%error, "read models could not write their changes to the store; retrying");
            if *shared.stop.borrow() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}

/// The write of frozen changes in flight, if any.
#[derive(Default)]
struct Writing(Option<tokio::task::JoinHandle<()>>);

impl Writing {
    async fn finish(&mut self) {
        if let Some(handle) = self.0.take()
            && let Err(error) = handle.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }

    async fn start(&mut self, shared: &Arc<Shared>, frozen: Option<Arc<Layer>>) {
        if let Some(frozen) = frozen {
            self.finish().await;
            self.0 = Some(spawn_write(shared, frozen));
        }
    }

    fn idle(&self) -> bool {
        self.0.as_ref().is_none_or(tokio::task::JoinHandle::is_finished)
    }
}

/// Cuts the events read from `$all` into whole appends. A read can end
/// inside an append (a batch is a number of events); the models must never
/// show half of one (a transfer's debit without its credit), so what
/// follows the last event ending an append waits for the rest of it.
#[derive(Debug, Default)]
pub(crate) struct WholeAppends {
    held: Vec<RecordedEvent>,
}

impl WholeAppends {
    /// The held events and `batch`, up to and including the last event that
    /// ends an append; keeps the rest. Empty when no append ends in them.
    pub(crate) fn take(&mut self, batch: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
        let mut events = std::mem::take(&mut self.held);
        events.extend(batch);
        match events.iter().rposition(|event| event.last_in_commit) {
            Some(last) => {
                self.held = events.split_off(last + 1);
                events
            }
            None => {
                self.held = events;
                Vec::new()
            }
        }
    }

    /// Forgets the held events, when reading starts again from what is applied.
    pub(crate) fn clear(&mut self) {
        self.held.clear();
    }
}

/// The task that applies `$all` to the projections.
pub(crate) async fn run(shared: Arc<Shared>, store: Arc<dyn EventStore>, from: Position) {
    let mut subscription = paycore_store::subscribe_all(store.clone(), from);
    let mut whole = WholeAppends::default();
    let mut stop = shared.stop.subscribe();
    let mut writing = Writing::default();
    // Changes held in memory that no write has taken yet.
    let mut unwritten = false;
    loop {
        let next = tokio::select! {
            next = subscription.next_batch(APPLY_BATCH) => Some(next),
            _ = tokio::time::sleep(FLUSH_EVERY), if unwritten => None,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let Some(next) = next else {
            let idle = shared.clone();
            if let Ok((frozen, still_held)) = tokio::task::spawn_blocking(move || freeze_idle(&idle)).await {
                unwritten = still_held;
                writing.start(&shared, frozen).await;
            }
            continue;
        };
        let batch = match next {
            Ok(batch) => batch,
            Err(StoreError::Closed) => break,
            Err(error) => {
                tracing::error!(%error, "read models stopped following the log");
                tokio::time::sleep(Duration::from_secs(1)).await;
                let applied = *shared.applied.borrow();
                subscription = paycore_store::subscribe_all(store.clone(), applied);
                whole.clear();
                continue;
            }
        };
        let batch = whole.take(batch);
        if batch.is_empty() {
            continue;
        }
        let span = apply_span(&batch);
        let decoded = match slot::decode(batch) {
            Ok(decoded) => decoded,
            Err(error) => {
                // A log this build cannot read: serving stale models is
                // better than guessing. The audit names the event.
                tracing::error!(%error, "read models stopped at an event they cannot decode");
                break;
            }
        };
        let applier = shared.clone();
        let written =
            tokio::task::spawn_blocking(move || span.in_scope(|| apply_served(&applier, &decoded))).await;
        match written {
            Ok(Ok(applied)) => {
                shared.applied.send_replace(applied.position);
                unwritten = applied.unwritten;
                if applied.frozen.is_some() {
                    writing.start(&shared, applied.frozen).await;
                } else if applied.held >= MAX_PENDING_BYTES && !writing.idle() {
                    // Memory is bounded: wait for the store to take the
                    // frozen changes before gathering more.
                    writing.finish().await;
                }
            }
            Ok(Err(error)) => {
                // Nothing of the batch was applied where it failed: follow
                // again from what the models hold.
                tracing::error!(%error, "read models could not apply a batch; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                let applied = slot::lowest(&shared.progress());
                subscription = paycore_store::subscribe_all(store.clone(), applied);
                whole.clear();
            }
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    writing.finish().await;
}

/// Most traces an `apply` span links to besides its parent.
const MAX_APPLY_LINKS: usize = 64;

/// The span of applying one batch to the read models, when spans are
/// exported and an event of the batch carries a trace context: a child of
/// the first such event's writer (the command that wrote it), linked to the
/// others', so a command's trace shows its events reaching the read models.
/// Batches of untraced events get no span.
fn apply_span(batch: &[RecordedEvent]) -> tracing::Span {
    let mut traces = batch.iter().filter_map(|event| event.metadata.trace);
    let Some(first) = traces.next() else {
        return tracing::Span::none();
    };
    let span = tracing::debug_span!(
        target: "paycore::projections",
        parent: None,
        "apply",
        events = batch.len(),
        first_position = batch.first().map(|event| event.position),
        last_position = batch.last().map(|event| event.position),
    );
    if span.is_disabled() {
        return span;
    }
    paycore_telemetry::set_parent_trace(&span, first);
    let mut linked = vec![first];
    for trace in traces {
        if linked.len() > MAX_APPLY_LINKS {
            break;
        }
        if !linked.contains(&trace) {
            paycore_telemetry::link_trace(&span, trace);
            linked.push(trace);
        }
    }
    span
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use paycore_store::{EventMetadata, RecordedEvent};

    use super::WholeAppends;

    /// Events at `positions`, the ones in `ends` ending their append.
    fn events(positions: std::ops::Range<u64>, ends: &[u64]) -> Vec<RecordedEvent> {
        positions
            .map(|position| RecordedEvent {
                position,
                stream: "account-a".into(),
                version: position,
                event_type: "T".into(),
                schema_version: 1,
                recorded_at_micros: 0,
                metadata: Arc::new(EventMetadata::default()),
                payload: Default::default(),
                hash: [0; 32],
                last_in_commit: ends.contains(&position),
            })
            .collect()
    }

    fn positions(events: &[RecordedEvent]) -> Vec<u64> {
        events.iter().map(|event| event.position).collect()
    }

    #[test]
    fn a_batch_ending_inside_an_append_waits_for_the_rest_of_it() {
        let mut whole = WholeAppends::default();
        // Appends [0, 1], [2, 3, 4], [5, 6]; reads of 4 events.
        let ends = [1, 4, 6];
        assert_eq!(positions(&whole.take(events(0..4, &ends))), vec![0, 1]);
        assert_eq!(positions(&whole.take(events(4..7, &ends))), vec![2, 3, 4, 5, 6]);
        assert!(whole.take(Vec::new()).is_empty());
    }

    /// A quiet server's store catches up with what the queries see, without
    /// waiting for a shutdown: a crash then replays nothing.
    #[tokio::test]
    async fn changes_held_in_memory_reach_the_store_once_events_stop() {
        use crate::db::{Namespace, read_checkpoint};
        use crate::{ModelStorage, ReadModels, test_support};

        let store: Arc<dyn paycore_store::EventStore> = Arc::new(paycore_store::MemoryStore::new());
        let read = ReadModels::start(store.clone(), ModelStorage::in_memory())
            .await
            .unwrap();
        let ledger = test_support::ledger(store, 30).await;
        read.wait_for(ledger.last).await;
        let stored = || {
            let txn = read.shared.db.read().unwrap();
            crate::projections().map(|info| {
                read_checkpoint(&txn, &info.tables(Namespace::Served))
                    .unwrap()
                    .map_or(0, |checkpoint| checkpoint.next_position)
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while stored().iter().any(|&next| next <= ledger.last) {
            assert!(
                std::time::Instant::now() < deadline,
                "the store stayed at {:?}, the log at {}",
                stored(),
                ledger.last + 1
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(stored(), [ledger.last + 1; 7]);
    }

    #[test]
    fn an_append_longer_than_a_batch_is_applied_once_it_is_complete() {
        let mut whole = WholeAppends::default();
        assert!(whole.take(events(0..3, &[7])).is_empty());
        assert!(whole.take(events(3..6, &[7])).is_empty());
        assert_eq!(
            positions(&whole.take(events(6..9, &[7]))),
            (0..8).collect::<Vec<_>>()
        );
        whole.clear();
        assert_eq!(positions(&whole.take(events(8..10, &[9]))), vec![8, 9]);
    }
}
