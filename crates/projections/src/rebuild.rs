//! Rebuilding projections from position 0: beside the served ones while a
//! server runs ([`start_online`]), or from the log alone with resumable
//! progress files ([`rebuild_offline`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paycore_store::{EventStore, Position};
use tokio::sync::{mpsc, watch};

use crate::db::{self, ModelDb, ModelError, ModelStorage, Namespace};
use crate::overlay::Layer;
use crate::rows::Locations;
use crate::slot::{self, Decoded, Progress, ProjectionInfo};
use crate::{ProjectionError, Shared, follower};

/// Events read from the store per batch while rebuilding.
const READ_BATCH: usize = 16_384;
/// Decoded batches read ahead of the one being applied.
const READ_AHEAD: usize = 4;

/// Bytes of changes a rebuild gathers in memory before writing them (see
/// [`Gathered`]). Two such layers at most are held (one being written, one
/// gathering), plus one batch's changes: memory is bounded by this, not by
/// the history.
pub const GATHER_BYTES: usize = 32 << 20;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    #[error("unknown projection {0:?} (known: {known})", known = known_names())]
    UnknownProjection(String),
    #[error("no projection chosen")]
    NoneChosen,
    #[error("already being rebuilt: {}", .0.join(", "))]
    AlreadyRebuilding(Vec<String>),
}

fn per_second(events: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}

fn known_names() -> String {
    crate::projections().map(|info| info.name).join(", ")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RebuildState {
    Running,
    /// Every projection was swapped in (online) or written (offline).
    Done,
    Failed(String),
}

/// Where a rebuild job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildProgress {
    pub projections: Vec<&'static str>,
    /// Events below this position are applied by every projection being rebuilt.
    pub position: Position,
    /// The log's head when this was reported.
    pub head: Position,
    /// Events applied by this job so far.
    pub applied: u64,
    pub elapsed: Duration,
    pub state: RebuildState,
}

impl RebuildProgress {
    pub fn events_per_second(&self) -> f64 {
        per_second(self.applied, self.elapsed)
    }
}

/// The projections named, each once, in the registry's order.
fn chosen(names: &[String]) -> Result<Vec<ProjectionInfo>, RebuildError> {
    if names.is_empty() {
        return Err(RebuildError::NoneChosen);
    }
    if let Some(unknown) = names.iter().find(|name| crate::projection(name).is_none()) {
        return Err(RebuildError::UnknownProjection(unknown.clone()));
    }
    Ok(crate::projections()
        .into_iter()
        .filter(|info| names.iter().any(|name| name == info.name))
        .collect())
}

/// Reads `$all` from `from` (up to `until`, or following the log) on one
/// task and decodes it on another, each a few batches ahead of the next
/// stage: reading, decoding and folding proceed side by side.
struct Reader {
    batches: mpsc::Receiver<Result<Vec<Decoded>, ProjectionError>>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Reader {
    fn spawn(store: Arc<dyn EventStore>, from: Position, until: Option<Position>, batch: usize) -> Self {
        let (raw_sender, mut raw) = mpsc::channel(READ_AHEAD);
        let reading = tokio::spawn(async move {
            let mut subscription = paycore_store::subscribe_all(store, from);
            loop {
                let left = until.map(|until| until.saturating_sub(subscription.position()));
                if left == Some(0) {
                    return;
                }
                let max = left.map_or(batch, |left| batch.min(left as usize));
                let read = subscription.next_batch(max).await;
                let failed = read.is_err();
                if raw_sender.send(read).await.is_err() || failed {
                    return;
                }
            }
        });
        let (sender, batches) = mpsc::channel(READ_AHEAD);
        let decoding = tokio::spawn(async move {
            while let Some(read) = raw.recv().await {
                let decoded = match read {
                    Ok(batch) => tokio::task::spawn_blocking(move || slot::decode(batch))
                        .await
                        .unwrap_or_else(|error| Err(ProjectionError::Store(join_failed(&error)))),
                    Err(error) => Err(error.into()),
                };
                let failed = decoded.is_err();
                if sender.send(decoded).await.is_err() || failed {
                    return;
                }
            }
        });
        Self {
            batches,
            tasks: [reading, decoding],
        }
    }

    async fn next(&mut self) -> Option<Result<Vec<Decoded>, ProjectionError>> {
        self.batches.recv().await
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn join_failed(error: &tokio::task::JoinError) -> paycore_store::StoreError {
    paycore_store::StoreError::Unavailable(format!("decoding task failed: {error}"))
}

/// Applies `batch` to the rebuilds in `progress` (their `rebuild/` tables)
/// straight in one write transaction, on a blocking thread (the last
/// events of an online rebuild, with the follower waiting).
async fn apply(
    db: Arc<ModelDbHandle>,
    progress: Vec<Progress>,
    batch: Vec<Decoded>,
    sync: bool,
) -> Result<Vec<Progress>, ProjectionError> {
    let written = tokio::task::spawn_blocking(move || {
        db.get().write(sync, |txn| {
            slot::apply_batch(txn, Namespace::Rebuild, &progress, &batch)
        })
    });
    match written.await {
        Ok(result) => Ok(result?),
        // A panic while folding is a bug: surface it rather than hide it.
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// A rebuild's changes, gathered in memory over many batches (the
/// follower's [`Layer`]s, over the `rebuild/` tables) and written with the
/// checkpoints in one transaction once they hold [`GATHER_BYTES`] or a
/// synced checkpoint is due.
///
/// Writing each batch into the store rewrote every chunk, account row and
/// B-tree page it touched, once per batch: a list's last chunk or an
/// account changed by a hundred batches was written a hundred times, and
/// each commit copied and checksummed its pages again. Gathered, each is
/// written once per write. The write runs on another thread while the next
/// batches are applied over the changes being written (the frozen layer),
/// which are dropped only once committed and the write joined: a batch
/// reads its rows from the active changes, then the frozen ones, then a
/// read transaction, which sees the store before or after that commit —
/// the same rows either way.
///
/// Rows and checkpoints still commit together and writes commit in order,
/// so the store always holds whole batches up to its checkpoints: an
/// interrupted rebuild resumes from the last written checkpoint.
struct Gathered {
    db: Arc<ModelDbHandle>,
    /// Changes of the batches applied since the last freeze, and the
    /// checkpoints they bring the rebuilds to.
    active: Layer,
    /// Changes being written, read under `active` until the write is joined.
    frozen: Option<Arc<Layer>>,
    writing: Option<tokio::task::JoinHandle<Result<(), ModelError>>>,
    budget: usize,
    /// Projections folded side by side at most ([`slot::apply_gathering`]).
    fold_threads: usize,
    /// Each rebuild's rows' locations found in the store or the frozen
    /// changes (stable: the rebuild's tables only grow).
    located: Vec<Locations>,
}

impl Gathered {
    fn new(db: Arc<ModelDbHandle>, progress: Vec<Progress>, budget: usize, fold_threads: usize) -> Self {
        Self {
            db,
            fold_threads,
            located: Locations::fresh(progress.len()),
            active: Layer::empty(progress),
            frozen: None,
            writing: None,
            budget,
        }
    }

    /// Where each rebuild is, counting the changes not yet written.
    fn progress(&self) -> &[Progress] {
        &self.active.progress
    }

    /// Applies `batch` in memory on a blocking thread, then starts a write
    /// if the changes gathered reached their budget.
    async fn apply(&mut self, batch: Vec<Decoded>) -> Result<(), ProjectionError> {
        let db = self.db.clone();
        let frozen = self.frozen.clone();
        let mut active = std::mem::replace(&mut self.active, Layer::empty(Vec::new()));
        let mut located = std::mem::take(&mut self.located);
        let threads = self.fold_threads;
        let applied = tokio::task::spawn_blocking(move || {
            let txn = db.get().read()?;
            slot::apply_gathering(
                &txn,
                Namespace::Rebuild,
                &mut active,
                frozen.as_deref(),
                &batch,
                &mut located,
                threads,
            )?;
            Ok::<_, ModelError>((active, located))
        });
        (self.active, self.located) = match applied.await {
            Ok(result) => result?,
            // A panic while folding is a bug: surface it rather than hide it.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        if self.active.bytes() >= self.budget {
            self.freeze(false).await?;
        }
        Ok(())
    }

    /// Waits for the write under way, if any; its changes are then in the
    /// store and no longer needed in memory.
    async fn join(&mut self) -> Result<(), ProjectionError> {
        if let Some(writing) = self.writing.take() {
            match writing.await {
                Ok(result) => result?,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => return Err(ModelError::Storage(error.to_string()).into()),
            }
        }
        self.frozen = None;
        Ok(())
    }

    /// Starts writing the changes gathered (synced when `sync`) on another
    /// thread, after the previous write: at most two layers are held.
    async fn freeze(&mut self, sync: bool) -> Result<(), ProjectionError> {
        self.join().await?;
        if self.active.is_empty() {
            return Ok(());
        }
        let fresh = Layer::empty(self.active.progress.clone());
        let layer = Arc::new(std::mem::replace(&mut self.active, fresh));
        // Its IDs are on their way into the store.
        Locations::saw_frozen_layer(&mut self.located, &layer);
        self.frozen = Some(layer.clone());
        let db = self.db.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            write_layer(db.get(), &layer, sync)
        }));
        Ok(())
    }

    /// Writes every change gathered (synced when `sync`) and waits for it:
    /// on return the store holds the rebuilds as [`Self::progress`] says.
    async fn flush(&mut self, sync: bool) -> Result<(), ProjectionError> {
        self.freeze(sync).await?;
        self.join().await
    }

    /// Goes on with `progress` only (the rebuilds not swapped in yet),
    /// all of whose changes are written.
    fn restart(&mut self, progress: Vec<Progress>) {
        debug_assert!(self.writing.is_none() && self.active.is_empty());
        self.located = Locations::fresh(progress.len());
        self.active = Layer::empty(progress);
    }
}

/// Writes a layer of rebuild changes and its checkpoints in one transaction.
fn write_layer(db: &ModelDb, layer: &Layer, sync: bool) -> Result<(), ModelError> {
    db.write(sync, |txn| {
        for (pending, (info, checkpoint)) in layer.pending.iter().zip(&layer.progress) {
            let tables = info.tables(Namespace::Rebuild);
            pending.write(txn, &tables)?;
            db::write_checkpoint(txn, &tables, checkpoint)?;
        }
        Ok(())
    })
}

/// The model store a rebuild writes to: the server's, or one opened by
/// an offline rebuild.
pub(crate) enum ModelDbHandle {
    Served(Arc<Shared>),
    Own(ModelDb),
}

impl ModelDbHandle {
    fn get(&self) -> &ModelDb {
        match self {
            Self::Served(shared) => &shared.db,
            Self::Own(db) => db,
        }
    }
}

/// Empties the rebuild tables of `infos` and sets their checkpoints to 0.
fn start_over(db: &ModelDb, infos: &[ProjectionInfo]) -> Result<Vec<Progress>, ModelError> {
    db.write(true, |txn| {
        for info in infos {
            let tables = info.tables(Namespace::Rebuild);
            db::clear(txn, &tables)?;
            db::write_checkpoint(txn, &tables, &info.empty())?;
        }
        Ok(())
    })?;
    Ok(infos.iter().map(|info| (*info, info.empty())).collect())
}

/// Starts an online rebuild of `names` (see [`crate::ReadModels::rebuild`]).
pub(crate) fn start_online(
    shared: Arc<Shared>,
    store: Arc<dyn EventStore>,
    names: &[String],
    tuning: OnlineTuning,
) -> Result<watch::Receiver<RebuildProgress>, RebuildError> {
    let infos = chosen(names)?;
    let mut running = shared.rebuilds.lock();
    let busy: Vec<String> = infos
        .iter()
        .filter(|info| {
            running
                .get(info.name)
                .is_some_and(|progress| progress.borrow().state == RebuildState::Running)
        })
        .map(|info| info.name.to_owned())
        .collect();
    if !busy.is_empty() {
        return Err(RebuildError::AlreadyRebuilding(busy));
    }
    let (progress, watching) = watch::channel(RebuildProgress {
        projections: infos.iter().map(|info| info.name).collect(),
        position: 0,
        head: *store.committed().borrow(),
        applied: 0,
        elapsed: Duration::ZERO,
        state: RebuildState::Running,
    });
    for info in &infos {
        running.insert(info.name, watching.clone());
    }
    drop(running);
    tokio::spawn(async move {
        let outcome = run_online(shared, store, infos, tuning, &progress).await;
        progress.send_modify(|progress| {
            progress.state = match outcome {
                Ok(()) => RebuildState::Done,
                Err(error) => {
                    tracing::error!(%error, "projection rebuild failed; the served models are unchanged");
                    RebuildState::Failed(error.to_string())
                }
            };
        });
    });
    Ok(watching)
}

async fn run_online(
    shared: Arc<Shared>,
    store: Arc<dyn EventStore>,
    infos: Vec<ProjectionInfo>,
    tuning: OnlineTuning,
    progress: &watch::Sender<RebuildProgress>,
) -> Result<(), ProjectionError> {
    let started = Instant::now();
    let db = Arc::new(ModelDbHandle::Served(shared.clone()));
    let building = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || start_over(db.get(), &infos))
            .await
            .map_err(|error| ModelError::Storage(error.to_string()))??
    };
    let committed = store.committed();
    let mut reader = Reader::spawn(store.clone(), 0, None, tuning.read_batch.max(1));
    let mut gathered = Gathered::new(db, building, tuning.gather_bytes, tuning.fold_threads);
    let mut applied = 0_u64;
    loop {
        if any_close(&shared.progress(), gathered.progress(), tuning.final_gap) {
            // The swap reads and writes the rebuild tables in the store:
            // everything gathered goes there first.
            gathered.flush(false).await?;
            let caught_up = swap_caught_up(
                &shared,
                store.as_ref(),
                gathered.progress().to_vec(),
                tuning.final_gap,
            )
            .await?;
            applied += caught_up.applied;
            // What the last events applied with the follower stopped
            // count too: the report says where the rebuild was swapped in.
            progress.send_modify(|progress| {
                progress.position = progress.position.max(caught_up.swapped_at.unwrap_or_default());
                progress.head = *committed.borrow();
                progress.applied = applied;
                progress.elapsed = started.elapsed();
            });
            if caught_up.building.is_empty() {
                return Ok(());
            }
            gathered.restart(caught_up.building);
        }
        let position = slot::lowest(gathered.progress());
        if position >= *committed.borrow() {
            // Ahead of the served models, which have not applied the newest
            // events yet: wait for them to catch up, then swap.
            let mut served = shared.applied.subscribe();
            let _ = tokio::time::timeout(Duration::from_millis(50), served.changed()).await;
            continue;
        }
        let Some(batch) = reader.next().await else {
            return Err(paycore_store::StoreError::Closed.into());
        };
        let batch = batch?;
        applied += batch.len() as u64;
        gathered.apply(batch).await?;
        progress.send_modify(|progress| {
            progress.position = slot::lowest(gathered.progress());
            progress.head = *committed.borrow();
            progress.applied = applied;
            progress.elapsed = started.elapsed();
        });
    }
}

/// What [`swap_caught_up`] did.
struct CaughtUp {
    /// The projections still being rebuilt (not close enough yet).
    building: Vec<Progress>,
    /// Events applied to the projections swapped in.
    applied: u64,
    /// Where the projections swapped in were, if any was.
    swapped_at: Option<Position>,
}

/// A rebuild this close behind the served models catches up with them
/// while the follower waits, then is swapped in.
const FINAL_GAP: u64 = 65_536;

/// How an online rebuild reads, gathers and catches up: the defaults, or
/// small values for tests that should see several batches and writes on a
/// short history.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct OnlineTuning {
    /// Events read from the log at a time.
    pub read_batch: usize,
    /// Bytes of changes gathered before they are written ([`GATHER_BYTES`]).
    pub gather_bytes: usize,
    /// How close behind the served models a rebuild is swapped in ([`FINAL_GAP`]).
    pub final_gap: u64,
    /// Projections folded side by side at most: one by default, so that a
    /// rebuild leaves the other cores to the requests being served.
    pub fold_threads: usize,
}

impl Default for OnlineTuning {
    fn default() -> Self {
        Self {
            read_batch: READ_BATCH,
            gather_bytes: GATHER_BYTES,
            final_gap: FINAL_GAP,
            fold_threads: 1,
        }
    }
}

/// Whether a rebuild at `built` is ready to be swapped in: at or less than
/// `gap` events behind its served projection in `served`.
fn close_to(served: &[Progress], (info, built): &Progress, gap: u64) -> bool {
    served
        .iter()
        .find(|(other, _)| other.name == info.name)
        .is_some_and(|(_, served)| {
            served.next_position >= built.next_position && served.next_position - built.next_position <= gap
        })
}

/// Whether any of `building` is ready to be swapped in (checked again
/// under the follower's lock by [`swap_caught_up`]).
fn any_close(served: &[Progress], building: &[Progress], gap: u64) -> bool {
    building.iter().any(|built| close_to(served, built, gap))
}

/// Swaps in every rebuild that has reached its served projection's
/// checkpoint, or is less than `gap` events behind it; returns the
/// others. The follower waits meanwhile (it writes under the same lock), so
/// the served checkpoints cannot move: with writes going on, a rebuild
/// chasing them would otherwise rarely meet them exactly.
async fn swap_caught_up(
    shared: &Arc<Shared>,
    store: &dyn EventStore,
    building: Vec<Progress>,
    gap: u64,
) -> Result<CaughtUp, ProjectionError> {
    let served = shared.served.clone().lock_owned().await;
    let progress = shared.progress();
    let served_at = |name: &str| {
        progress
            .iter()
            .find(|(info, _)| info.name == name)
            .map(|entry| entry.1)
    };
    let (mut ready, pending): (Vec<Progress>, Vec<Progress>) = building
        .into_iter()
        .partition(|built| close_to(&progress, built, gap));
    if ready.is_empty() {
        return Ok(CaughtUp {
            building: pending,
            applied: 0,
            swapped_at: None,
        });
    }
    // The last events, read and applied with the follower stopped.
    let target = served_at(ready[0].0.name).map_or(0, |served| served.next_position);
    let db = Arc::new(ModelDbHandle::Served(shared.clone()));
    let mut applied = 0_u64;
    loop {
        let position = slot::lowest(&ready);
        if position >= target {
            break;
        }
        let count = usize::try_from(target - position)
            .unwrap_or(READ_BATCH)
            .min(READ_BATCH);
        let events = store.read_all(position, count).await?;
        if events.is_empty() {
            return Err(paycore_store::StoreError::Unavailable(format!(
                "the log holds no event at position {position}, below the served models' checkpoint"
            ))
            .into());
        }
        applied += events.len() as u64;
        let decoded = tokio::task::spawn_blocking(move || slot::decode(events))
            .await
            .map_err(|error| ModelError::Storage(error.to_string()))??;
        ready = apply(db.clone(), ready, decoded, false).await?;
    }
    let (still_pending, swapped) = {
        let shared = shared.clone();
        let mut served = served;
        tokio::task::spawn_blocking(move || {
            let (ready, behind): (Vec<Progress>, Vec<Progress>) =
                ready.into_iter().partition(|(info, built)| {
                    progress
                        .iter()
                        .any(|(other, checkpoint)| other.name == info.name && checkpoint == built)
                });
            if !ready.is_empty() {
                // The changes held in memory were made over the tables being
                // replaced: into the store with them first, and no query may
                // combine them with the new tables (the swap commits under
                // the overlay's lock, which queries take their views under).
                shared.write_all(&mut served)?;
                let mut active = shared.active.write();
                shared.db.write(true, |txn| {
                    for (info, _) in &ready {
                        db::swap_in_rebuild(txn, info.name)?;
                    }
                    Ok(())
                })?;
                let mut located = shared.located.lock();
                for (entry, located) in active.progress.iter_mut().zip(located.iter_mut()) {
                    if let Some((_, built)) = ready.iter().find(|(info, _)| info.name == entry.0.name) {
                        entry.1 = *built;
                        // The rows the follower located are in the tables replaced.
                        located.clear();
                    }
                }
            }
            Ok::<_, ModelError>((behind, ready))
        })
        .await
        .map_err(|error| ModelError::Storage(error.to_string()))??
    };
    for (info, _) in &swapped {
        tracing::info!(projection = info.name, "rebuilt projection swapped in");
    }
    Ok(CaughtUp {
        building: pending.into_iter().chain(still_pending).collect(),
        applied,
        swapped_at: (!swapped.is_empty()).then(|| slot::lowest(&swapped)),
    })
}

/// How an offline rebuild saves its progress.
#[derive(Clone, Debug)]
pub struct OfflineOptions {
    /// Syncs the partial projections this often, so an interrupted run
    /// resumes from there.
    pub checkpoint_every: Duration,
    /// … and after this many events (for tests and very slow disks).
    pub checkpoint_every_events: u64,
    /// Events read from the log at a time.
    pub read_batch: usize,
    /// Bytes of changes gathered in memory before they are written (two
    /// such layers at most are held; see [`GATHER_BYTES`]).
    pub gather_bytes: usize,
    /// Projections folded side by side at most: by default one per core
    /// (nothing else runs beside an offline rebuild).
    pub fold_threads: usize,
}

impl Default for OfflineOptions {
    fn default() -> Self {
        Self {
            checkpoint_every: Duration::from_secs(30),
            checkpoint_every_events: u64::MAX,
            read_batch: READ_BATCH,
            gather_bytes: GATHER_BYTES,
            fold_threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// What an offline rebuild did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineSummary {
    pub projections: Vec<&'static str>,
    /// Projections that continued an interrupted run, and from where.
    pub resumed: Vec<(&'static str, Position)>,
    /// The log's head: every projection is rebuilt up to here.
    pub head: Position,
    pub applied: u64,
    pub elapsed: Duration,
}

impl OfflineSummary {
    pub fn events_per_second(&self) -> f64 {
        per_second(self.applied, self.elapsed)
    }
}

/// Rebuilds `names` from the log alone (no server running) into the model
/// store in `dir`, where the next `paycore serve` opens them.
///
/// The rebuild writes beside the served models (`rebuild/` tables) and
/// syncs its progress along the way; a run that is interrupted (killed,
/// power loss) continues from there next time, provided it is of this
/// version and of this log, else it starts again from 0. The served models
/// are replaced only at the end, in one transaction, so an interrupted
/// rebuild leaves them as they were.
pub async fn rebuild_offline(
    store: Arc<dyn EventStore>,
    dir: &Path,
    names: &[String],
    options: &OfflineOptions,
    mut on_progress: impl FnMut(&RebuildProgress),
) -> Result<OfflineSummary, ProjectionError> {
    let infos = chosen(names)?;
    let started = Instant::now();
    let head = *store.committed().borrow();
    let storage = ModelStorage::at(dir.to_owned());
    let opened = tokio::task::spawn_blocking(move || ModelDb::open_or_set_aside(&storage))
        .await
        .map_err(|error| ModelError::Storage(error.to_string()))??;
    let db = Arc::new(ModelDbHandle::Own(opened));
    let (building, resumed) = resume_or_start(db.clone(), &infos, store.as_ref()).await?;
    let from = slot::lowest(&building);
    let mut reader = Reader::spawn(store, from, Some(head), options.read_batch.max(1));
    let mut progress = RebuildProgress {
        projections: infos.iter().map(|info| info.name).collect(),
        position: from,
        head,
        applied: 0,
        elapsed: Duration::ZERO,
        state: RebuildState::Running,
    };
    let mut gathered = Gathered::new(db.clone(), building, options.gather_bytes, options.fold_threads);
    let mut since_checkpoint = (Instant::now(), 0_u64);
    while let Some(batch) = reader.next().await {
        let batch = batch?;
        progress.applied += batch.len() as u64;
        since_checkpoint.1 += batch.len() as u64;
        gathered.apply(batch).await?;
        if since_checkpoint.0.elapsed() >= options.checkpoint_every
            || since_checkpoint.1 >= options.checkpoint_every_events
        {
            // A synced write of everything gathered: progress a rerun
            // resumes from (the write goes on while the next batches apply).
            gathered.freeze(true).await?;
            since_checkpoint = (Instant::now(), 0);
        }
        progress.position = slot::lowest(gathered.progress());
        progress.elapsed = started.elapsed();
        on_progress(&progress);
    }
    gathered.flush(true).await?;
    let building = gathered.progress().to_vec();
    if progress.position < head {
        return Err(paycore_store::StoreError::Unavailable(format!(
            "the log ended at position {} before its head {head}",
            progress.position
        ))
        .into());
    }
    let swapping = db.clone();
    tokio::task::spawn_blocking(move || {
        swapping.get().write(true, |txn| {
            for (info, _) in &building {
                db::swap_in_rebuild(txn, info.name)?;
            }
            Ok(())
        })
    })
    .await
    .map_err(|error| ModelError::Storage(error.to_string()))??;
    progress.state = RebuildState::Done;
    on_progress(&progress);
    Ok(OfflineSummary {
        projections: progress.projections,
        resumed,
        head,
        applied: progress.applied,
        elapsed: started.elapsed(),
    })
}

/// Each projection's interrupted rebuild if a usable one is in the model
/// store, else a fresh one from 0.
async fn resume_or_start(
    db: Arc<ModelDbHandle>,
    infos: &[ProjectionInfo],
    store: &dyn EventStore,
) -> Result<(Vec<Progress>, Vec<(&'static str, Position)>), ProjectionError> {
    let found = {
        let txn = db.get().read()?;
        let mut found = Vec::new();
        for info in infos {
            found.push((
                *info,
                db::read_checkpoint(&txn, &info.tables(Namespace::Rebuild))?,
            ));
        }
        found
    };
    let mut building = Vec::with_capacity(infos.len());
    let mut resumed = Vec::new();
    let mut fresh = Vec::new();
    for (info, checkpoint) in found {
        let usable = match checkpoint {
            Some(checkpoint) if !info.continues_from(checkpoint.version) => {
                tracing::warn!(
                    projection = info.name,
                    "rebuild progress of another version: starting over"
                );
                None
            }
            Some(checkpoint) if !follower::belongs_to(&checkpoint, store).await? => {
                tracing::warn!(
                    projection = info.name,
                    "rebuild progress is of another log: starting over"
                );
                None
            }
            other => other,
        };
        match usable {
            Some(checkpoint) if checkpoint.next_position > 0 => {
                resumed.push((info.name, checkpoint.next_position));
                building.push((info, info.continued(checkpoint)));
            }
            _ => fresh.push(info),
        }
    }
    if !fresh.is_empty() {
        let started = tokio::task::spawn_blocking(move || start_over(db.get(), &fresh))
            .await
            .map_err(|error| ModelError::Storage(error.to_string()))??;
        building.extend(started);
    }
    Ok((building, resumed))
}
