//! Opening the projections at start and following `$all` afterwards.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    // Rows of the earlier version a projection continues are this
    // version's from now on: an older build opening them rebuilds them.
    let mut continued = Vec::new();
    for (info, checkpoint) in found {
        let usable = match checkpoint {
            None => None,
            Some(checkpoint) if !info.continues_from(checkpoint.version) => {
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
            Some(checkpoint) if checkpoint.version != info.version => {
                tracing::info!(
                    projection = info.name,
                    found = checkpoint.version,
                    version = info.version,
                    "read model of the earlier version this one continues: kept as it is"
                );
                let checkpoint = info.continued(checkpoint);
                continued.push((info, checkpoint));
                progress.push((info, checkpoint));
            }
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
        for (info, checkpoint) in &continued {
            db::write_checkpoint(txn, &info.tables(Namespace::Served), checkpoint)?;
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

/// Batches read ahead of the one being applied, at most.
const QUEUED_BATCHES: usize = 4;

/// The buffers of applied batches, handed back to the reader to decode the
/// next ones into. A batch is decoded on one thread and dropped on another;
/// reusing its memory spares the allocator fresh pages (and the kernel
/// zeroing them) for every batch.
#[derive(Default)]
struct Buffers(parking_lot::Mutex<Vec<Vec<Decoded>>>);

impl Buffers {
    fn take(&self) -> Vec<Decoded> {
        self.0.lock().pop().unwrap_or_default()
    }

    fn give_back(&self, mut buffer: Vec<Decoded>) {
        buffer.clear();
        let mut buffers = self.0.lock();
        if buffers.len() <= QUEUED_BATCHES {
            buffers.push(buffer);
        }
    }
}

/// What the reader hands the applier thread.
enum Delivery {
    /// Whole appends read from `$all`, decoded, and the span of applying them.
    Batch {
        decoded: Vec<Decoded>,
        span: tracing::Span,
    },
    /// Nothing arrived for [`FLUSH_EVERY`] while changes are held: write them.
    Idle,
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
        let mut located = shared.located.lock();
        slot::apply_in_memory(
            &txn,
            Namespace::Served,
            &active,
            frozen.as_deref(),
            batch,
            &mut located,
            fold_threads(batch.len()),
        )?
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

/// How many projections a batch of `events` is folded into side by side:
/// one per core for a long batch ([`slot::SIDE_BY_SIDE_EVENTS`]), else one.
fn fold_threads(events: usize) -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if events < slot::SIDE_BY_SIDE_EVENTS {
        return 1;
    }
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
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

/// The thread writing frozen layers to the store, one at a time, each
/// retried every second until it is written or the models stop (the
/// changes stay visible meanwhile).
struct Writer {
    layers: std::sync::mpsc::Sender<Arc<Layer>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(shared: Arc<Shared>) -> std::io::Result<Self> {
        let (layers, frozen) = std::sync::mpsc::channel::<Arc<Layer>>();
        let thread = std::thread::Builder::new()
            .name("paycore-models-writer".into())
            .spawn(move || {
                for layer in frozen {
                    while let Err(error) = shared.write_frozen(&layer, false) {
                        tracing::error!(%error, "read models could not write their changes to the store; retrying");
                        if *shared.stop.borrow() {
                            return;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            })?;
        Ok(Self {
            layers,
            thread: Some(thread),
        })
    }

    fn write(&mut self, frozen: Option<Arc<Layer>>) {
        // The thread ends before this is dropped only when the models stop
        // while a write keeps failing (that layer then stays frozen, and no
        // other is frozen after it), or when it panicked: a bug, surfaced
        // here rather than leaving the changes unwritten.
        if self
            .thread
            .as_ref()
            .is_some_and(std::thread::JoinHandle::is_finished)
        {
            self.join();
        }
        if let Some(frozen) = frozen {
            let _ = self.layers.send(frozen);
        }
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }

    /// Waits for the writes sent, then ends the thread.
    fn finish(mut self) {
        let (layers, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.layers, layers));
        self.join();
    }
}

/// The applier thread: applies what the reader delivers, in order, and
/// publishes each batch's position to the commands waiting for it.
///
/// Applying on a thread of its own, rather than as a blocking task of the
/// runtime, keeps the runtime's workers out of every command's
/// read-your-writes path: the position is published from here, and the
/// reader reads the next batch meanwhile.
fn apply_deliveries(
    shared: &Arc<Shared>,
    mut deliveries: tokio::sync::mpsc::Receiver<Delivery>,
    restart: &tokio::sync::mpsc::UnboundedSender<Position>,
    unwritten: &AtomicBool,
    buffers: &Buffers,
) {
    let mut writer = match Writer::start(shared.clone()) {
        Ok(writer) => writer,
        Err(error) => {
            tracing::error!(%error, "read models could not start their writer thread");
            return;
        }
    };
    while let Some(delivery) = deliveries.blocking_recv() {
        let (decoded, span) = match delivery {
            Delivery::Batch { decoded, span } => (decoded, span),
            Delivery::Idle => {
                let (frozen, still_held) = freeze_idle(shared);
                unwritten.store(still_held, Ordering::Relaxed);
                writer.write(frozen);
                continue;
            }
        };
        // After a batch failed, the ones read behind it leave a gap: they
        // wait for the reader to read again from what is applied.
        let expected = *shared.applied.borrow();
        if decoded
            .first()
            .is_some_and(|first| first.recorded.position > expected)
        {
            continue;
        }
        let started = std::time::Instant::now();
        let applied = span.in_scope(|| apply_served(shared, &decoded));
        metrics::histogram!(crate::metrics::APPLY_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(crate::metrics::APPLY_EVENTS).record(decoded.len() as f64);
        match applied {
            Ok(applied) => {
                shared.publish(applied.position);
                unwritten.store(applied.unwritten, Ordering::Relaxed);
                if applied.frozen.is_some() {
                    writer.write(applied.frozen);
                } else if applied.held >= MAX_PENDING_BYTES {
                    // Memory is bounded: wait for the store to take the
                    // frozen changes before gathering more.
                    shared.wait_written_unless_stopped();
                }
            }
            Err(error) => {
                // Nothing of the batch was applied where it failed: follow
                // again from what the models hold.
                tracing::error!(%error, "read models could not apply a batch; retrying");
                std::thread::sleep(Duration::from_secs(1));
                let _ = restart.send(slot::lowest(&shared.progress()));
            }
        }
        buffers.give_back(decoded);
    }
    writer.finish();
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
        // Mostly nothing is held: the batch is then taken as it is, not
        // copied into a new vector.
        let mut events = if self.held.is_empty() {
            batch
        } else {
            let mut events = std::mem::take(&mut self.held);
            events.extend(batch);
            events
        };
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

/// The task that follows `$all` for the projections: it reads and decodes
/// whole appends and hands them to the applier thread
/// ([`apply_deliveries`]), reading the next batch while one is applied.
pub(crate) async fn run(shared: Arc<Shared>, store: Arc<dyn EventStore>, from: Position) {
    let (deliveries, delivered) = tokio::sync::mpsc::channel(QUEUED_BATCHES);
    let (restart, mut restarts) = tokio::sync::mpsc::unbounded_channel();
    let (done, applier_done) = tokio::sync::oneshot::channel::<()>();
    let unwritten = Arc::new(AtomicBool::new(false));
    let buffers = Arc::new(Buffers::default());
    let applier = {
        let (shared, unwritten, buffers) = (shared.clone(), unwritten.clone(), buffers.clone());
        std::thread::Builder::new()
            .name("paycore-models".into())
            .spawn(move || {
                apply_deliveries(&shared, delivered, &restart, &unwritten, &buffers);
                let _ = done.send(());
            })
    };
    if let Err(error) = applier {
        tracing::error!(%error, "read models could not start their applier thread");
        return;
    }
    read(
        &shared,
        store,
        from,
        &deliveries,
        &mut restarts,
        &unwritten,
        &buffers,
    )
    .await;
    // The applier applies what is queued, waits for the writes and ends.
    drop(deliveries);
    let _ = applier_done.await;
    shared.release_waiters();
}

/// Reads `$all` from `from` into whole appends for the applier until the
/// models stop, the store closes or the applier ends.
async fn read(
    shared: &Shared,
    store: Arc<dyn EventStore>,
    from: Position,
    deliveries: &tokio::sync::mpsc::Sender<Delivery>,
    restarts: &mut tokio::sync::mpsc::UnboundedReceiver<Position>,
    unwritten: &AtomicBool,
    buffers: &Buffers,
) {
    let mut subscription = paycore_store::subscribe_all(store.clone(), from);
    let mut whole = WholeAppends::default();
    let mut stop = shared.stop.subscribe();
    loop {
        let next = tokio::select! {
            next = subscription.next_batch(APPLY_BATCH) => Some(next),
            // Woken every so often while nothing arrives: changes held
            // then are written (the flag is read after the wait, since the
            // applier sets it after the last batch was handed over).
            _ = tokio::time::sleep(FLUSH_EVERY) => None,
            Some(applied) = restarts.recv() => {
                subscription = paycore_store::subscribe_all(store.clone(), applied);
                whole.clear();
                continue;
            }
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let delivery = match next {
            None if unwritten.load(Ordering::Relaxed) => Delivery::Idle,
            None => continue,
            Some(Ok(batch)) => {
                let batch = whole.take(batch);
                if batch.is_empty() {
                    continue;
                }
                let span = apply_span(&batch);
                match slot::decode_into(batch, buffers.take()) {
                    Ok(decoded) => Delivery::Batch { decoded, span },
                    Err(error) => {
                        // A log this build cannot read: serving stale models
                        // is better than guessing. The audit names the event.
                        tracing::error!(%error, "read models stopped at an event they cannot decode");
                        break;
                    }
                }
            }
            Some(Err(StoreError::Closed)) => break,
            Some(Err(error)) => {
                tracing::error!(%error, "read models stopped following the log");
                tokio::time::sleep(Duration::from_secs(1)).await;
                // Events read again that the applier already has are
                // skipped by each projection's checkpoint.
                let applied = *shared.applied.borrow();
                subscription = paycore_store::subscribe_all(store.clone(), applied);
                whole.clear();
                continue;
            }
        };
        if deliveries.send(delivery).await.is_err() {
            // The applier ended (it panicked): nothing applies any more.
            break;
        }
    }
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

    use paycore_store::{EventMetadata, EventStore, MemoryStore, RecordedEvent};
    use redb::{ReadableTable, ReadableTableMetadata};

    use super::WholeAppends;
    use crate::db::{self, Checkpoint, ModelDb, ModelStorage, Namespace, Tables};
    use crate::test_support::ledger;
    use crate::{PageRequest, ReadModels, id_runs};

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

    /// Rewrites the served models in `dir` as the versions before ID runs
    /// wrote them: every ID its own entry in `ids`, the checkpoints of the
    /// earlier versions. Answers how many IDs were in runs.
    fn write_as_before_id_runs(dir: &std::path::Path) -> usize {
        let db = ModelDb::open(&ModelStorage::at(dir.to_path_buf())).unwrap();
        db.write(true, |txn| {
            let mut expanded = 0;
            for info in crate::projections() {
                let Some(earlier) = info.continues else {
                    continue;
                };
                let tables = info.tables(Namespace::Served);
                let runs: Vec<(Vec<u8>, Vec<u8>)> = txn
                    .open_table(Tables::bytes(&tables.id_runs))?
                    .iter()?
                    .map(|entry| {
                        let (first, run) = entry.unwrap();
                        (first.value().to_vec(), run.value().to_vec())
                    })
                    .collect();
                let mut ids = txn.open_table(Tables::bytes(&tables.ids))?;
                for (first, run) in &runs {
                    for (id, location) in id_runs::entries(first, run)? {
                        ids.insert(id.as_slice(), location.as_slice())?;
                        expanded += 1;
                    }
                }
                drop(ids);
                txn.delete_table(Tables::bytes(&tables.id_runs))?;
                let checkpoint = db::read_checkpoint_in(txn, &tables)?.unwrap();
                let earlier = Checkpoint {
                    version: earlier,
                    ..checkpoint
                };
                db::write_checkpoint(txn, &tables, &earlier)?;
            }
            Ok(expanded)
        })
        .unwrap()
    }

    /// Models of the versions before IDs were stored as runs are continued
    /// as they are, not rebuilt: every answer the same, the IDs written
    /// afterwards found beside the older ones.
    #[tokio::test]
    async fn models_of_the_versions_before_id_runs_are_continued_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projections");
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let every = PageRequest {
            size: 100,
            token: None,
        };
        let read = ReadModels::start(store.clone(), ModelStorage::at(path.clone()))
            .await
            .unwrap();
        let mut ledger = ledger(store.clone(), 30).await;
        read.wait_for(ledger.last).await;
        let transactions = read.list_transactions(ledger.project, None, &every).unwrap();
        let account = read.account(ledger.project, ledger.a).unwrap();
        read.close().await.unwrap();
        assert!(
            write_as_before_id_runs(&path) >= 60,
            "the transactions' IDs were stored as runs"
        );

        let restarted = ReadModels::start(store.clone(), ModelStorage::at(path.clone()))
            .await
            .unwrap();
        assert_eq!(
            restarted.list_transactions(ledger.project, None, &every).unwrap(),
            transactions
        );
        assert_eq!(restarted.account(ledger.project, ledger.a).unwrap(), account);
        for _ in 0..10 {
            ledger.transfer().await;
        }
        restarted.wait_for(ledger.last).await;
        let transfers = restarted.list_transfers(ledger.project, &every).unwrap().items;
        assert_eq!(transfers.len(), 40);
        for transfer in &transfers {
            let found = restarted.transfer(ledger.project, transfer.id).unwrap();
            assert_eq!(found.as_ref(), Some(transfer));
            for leg in [
                transfer.source_transaction_id,
                transfer.destination_transaction_id,
            ] {
                let leg = restarted.transaction(ledger.project, leg).unwrap().unwrap();
                assert_eq!(leg.kind.transfer_id(), Some(transfer.id));
            }
        }
        restarted.close().await.unwrap();

        // Not rebuilt: the entries of the earlier form are still there, and
        // the checkpoints name this version now.
        let db = ModelDb::open(&ModelStorage::at(path)).unwrap();
        let txn = db.read().unwrap();
        for info in crate::projections() {
            let checkpoint = db::read_checkpoint(&txn, &info.tables(Namespace::Served)).unwrap();
            assert_eq!(
                checkpoint.map(|checkpoint| checkpoint.version),
                Some(info.version)
            );
        }
        let transactions = Tables::of(Namespace::Served, "transactions");
        let singles = txn
            .open_table(Tables::bytes(&transactions.ids))
            .unwrap()
            .len()
            .unwrap();
        assert!(
            singles >= 60,
            "only {singles} IDs kept their entries: the model was rebuilt"
        );
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
