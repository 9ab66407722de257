//! Rebuilding projections from position 0: beside the served ones while a
//! server runs ([`start_online`]), or from the log alone with resumable
//! progress files ([`rebuild_offline`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paycore_store::{EventStore, Position};
use tokio::sync::{mpsc, watch};

use crate::slot::{self, Build, Decoded, ProjectionInfo};
use crate::{ProjectionError, Shared, follower, snapshot};

/// Events read from the store per batch while rebuilding.
const READ_BATCH: usize = 16_384;
/// Decoded batches read ahead of the one being applied.
const READ_AHEAD: usize = 4;

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

/// Applies `batch` to every build on blocking threads (folding is CPU work
/// that must not hold up the server's async tasks): the builds are split in
/// two halves folded side by side, as the heavy ones (transactions,
/// accounts, transfers) sit apart in the registry's order.
async fn apply(mut builds: Vec<Box<dyn Build>>, batch: Vec<Decoded>) -> Vec<Box<dyn Build>> {
    let kept = tokio::task::spawn_blocking(move || {
        let (even, odd): (Vec<_>, Vec<_>) = builds.iter_mut().enumerate().partition(|(i, _)| i % 2 == 0);
        let fold = |half: Vec<(usize, &mut Box<dyn Build>)>| {
            for (_, build) in half {
                build.apply(&batch);
            }
        };
        std::thread::scope(|scope| {
            if !odd.is_empty() {
                scope.spawn(|| fold(odd));
            }
            fold(even);
        });
        builds
    });
    // A panic while folding is a bug: surface it rather than hide it.
    match kept.await {
        Ok(builds) => builds,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Starts an online rebuild of `names` (see [`crate::ReadModels::rebuild`]).
pub(crate) fn start_online(
    shared: Arc<Shared>,
    store: Arc<dyn EventStore>,
    names: &[String],
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
    let builds = infos.iter().map(|info| (info.empty)()).collect();
    tokio::spawn(async move {
        let outcome = run_online(&shared, store, builds, &progress).await;
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
    shared: &Shared,
    store: Arc<dyn EventStore>,
    mut builds: Vec<Box<dyn Build>>,
    progress: &watch::Sender<RebuildProgress>,
) -> Result<(), ProjectionError> {
    let started = Instant::now();
    let committed = store.committed();
    let mut reader = Reader::spawn(store, 0, None, READ_BATCH);
    let mut applied = 0_u64;
    loop {
        builds = swap_caught_up(shared, builds).await?;
        if builds.is_empty() {
            return Ok(());
        }
        let position = builds
            .iter()
            .map(|build| build.checkpoint())
            .min()
            .unwrap_or_default();
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
        builds = apply(builds, batch).await;
        progress.send_modify(|progress| {
            progress.position = builds
                .iter()
                .map(|build| build.checkpoint())
                .min()
                .unwrap_or_default();
            progress.head = *committed.borrow();
            progress.applied = applied;
            progress.elapsed = started.elapsed();
        });
    }
}

/// Swaps in every build that has reached its served projection's
/// checkpoint (and saves its snapshot); returns the others.
async fn swap_caught_up(
    shared: &Shared,
    builds: Vec<Box<dyn Build>>,
) -> Result<Vec<Box<dyn Build>>, ProjectionError> {
    let mut pending = Vec::with_capacity(builds.len());
    for build in builds {
        let Some(slot) = shared.projections.slot(build.name()) else {
            continue;
        };
        if slot.checkpoint() != build.checkpoint() {
            pending.push(build);
            continue;
        }
        let name = build.name();
        match slot.swap(build, false) {
            Err(build) => pending.push(build),
            Ok(()) => {
                tracing::info!(projection = name, "rebuilt projection swapped in");
                if let Some(dir) = shared.policy.writable_dir() {
                    follower::save(snapshot::path(dir, name), slot.encode()).await?;
                }
            }
        }
    }
    Ok(pending)
}

/// How an offline rebuild saves its progress.
#[derive(Clone, Debug)]
pub struct OfflineOptions {
    /// Writes the partial projections (`<name>.rebuild`) this often, so an
    /// interrupted run resumes from there.
    pub checkpoint_every: Duration,
    /// … and after this many events (for tests and very slow disks).
    pub checkpoint_every_events: u64,
    /// Events read from the log at a time.
    pub read_batch: usize,
}

impl Default for OfflineOptions {
    fn default() -> Self {
        Self {
            checkpoint_every: Duration::from_secs(30),
            checkpoint_every_events: u64::MAX,
            read_batch: READ_BATCH,
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

/// Rebuilds `names` from the log alone (no server running) and writes their
/// snapshots into `dir`, where the next `paycore serve` loads them.
///
/// Progress is saved as `<name>.rebuild` files along the way; a run that is
/// interrupted (killed, power loss) continues from them next time, provided
/// they are of this version and of this log, else it starts again from 0.
/// The served snapshots are replaced only at the end, one atomic rename
/// each, so an interrupted rebuild leaves the old ones usable.
pub async fn rebuild_offline(
    store: Arc<dyn EventStore>,
    dir: &Path,
    names: &[String],
    options: &OfflineOptions,
    mut on_progress: impl FnMut(&RebuildProgress),
) -> Result<OfflineSummary, ProjectionError> {
    let infos = chosen(names)?;
    std::fs::create_dir_all(dir).map_err(|source| ProjectionError::Snapshot {
        path: dir.to_owned(),
        source,
    })?;
    let started = Instant::now();
    let head = *store.committed().borrow();
    let (mut builds, resumed) = resume_or_start(&infos, dir, store.as_ref()).await?;
    let from = builds
        .iter()
        .map(|build| build.checkpoint())
        .min()
        .unwrap_or_default();
    let mut reader = Reader::spawn(store, from, Some(head), options.read_batch.max(1));
    let mut progress = RebuildProgress {
        projections: infos.iter().map(|info| info.name).collect(),
        position: from,
        head,
        applied: 0,
        elapsed: Duration::ZERO,
        state: RebuildState::Running,
    };
    let mut since_checkpoint = (Instant::now(), 0_u64);
    while let Some(batch) = reader.next().await {
        let batch = batch?;
        progress.applied += batch.len() as u64;
        since_checkpoint.1 += batch.len() as u64;
        builds = apply(builds, batch).await;
        progress.position = builds
            .iter()
            .map(|build| build.checkpoint())
            .min()
            .unwrap_or_default();
        progress.elapsed = started.elapsed();
        on_progress(&progress);
        let due = since_checkpoint.0.elapsed() >= options.checkpoint_every
            || since_checkpoint.1 >= options.checkpoint_every_events;
        if due && progress.position < head {
            let dir = dir.to_owned();
            builds = write_all(builds, move |name| snapshot::partial_path(&dir, name)).await?;
            since_checkpoint = (Instant::now(), 0);
        }
    }
    if progress.position < head {
        return Err(paycore_store::StoreError::Unavailable(format!(
            "the log ended at position {} before its head {head}",
            progress.position
        ))
        .into());
    }
    let served_dir = dir.to_owned();
    let builds = write_all(builds, move |name| snapshot::path(&served_dir, name)).await?;
    for build in &builds {
        let partial = snapshot::partial_path(dir, build.name());
        if let Err(error) = std::fs::remove_file(&partial)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %partial.display(), %error, "could not remove a finished rebuild's progress file");
        }
    }
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

/// Each projection's partial build if a usable one is on disk, else an empty one.
async fn resume_or_start(
    infos: &[ProjectionInfo],
    dir: &Path,
    store: &dyn EventStore,
) -> Result<(Vec<Box<dyn Build>>, Vec<(&'static str, Position)>), ProjectionError> {
    let mut builds = Vec::with_capacity(infos.len());
    let mut resumed = Vec::new();
    for info in infos {
        let path = snapshot::partial_path(dir, info.name);
        let partial = match std::fs::read(&path) {
            Ok(bytes) => match (info.decode)(&bytes) {
                Ok(built) if follower::belongs_to(built.as_ref(), store).await? => Some(built),
                Ok(_) => {
                    tracing::warn!(
                        projection = info.name,
                        "rebuild progress is of another log: starting over"
                    );
                    None
                }
                Err(reason) => {
                    tracing::warn!(projection = info.name, %reason, "rebuild progress unusable: starting over");
                    None
                }
            },
            Err(_) => None,
        };
        match partial {
            Some(built) => {
                resumed.push((info.name, built.checkpoint()));
                builds.push(built);
            }
            None => builds.push((info.empty)()),
        }
    }
    Ok((builds, resumed))
}

/// Writes every build at the path `path_of` gives for its name, encoding
/// and writing them side by side (the large ones take seconds each).
async fn write_all(
    builds: Vec<Box<dyn Build>>,
    path_of: impl Fn(&'static str) -> std::path::PathBuf + Send + 'static,
) -> Result<Vec<Box<dyn Build>>, ProjectionError> {
    let written = tokio::task::spawn_blocking(move || {
        let results: Vec<Result<(), ProjectionError>> = std::thread::scope(|scope| {
            let writers: Vec<_> = builds
                .iter()
                .map(|build| {
                    let path = path_of(build.name());
                    scope.spawn(move || {
                        snapshot::save(&path, &build.encode())
                            .map_err(|source| ProjectionError::Snapshot { path, source })
                    })
                })
                .collect();
            writers
                .into_iter()
                .map(|writer| match writer.join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        });
        results.into_iter().collect::<Result<(), _>>().map(|()| builds)
    });
    match written.await {
        Ok(result) => result,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}
