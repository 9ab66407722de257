//! Loading the projections at start and following `$all` afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paycore_store::{EventStore, Position, StoreError};

use crate::set::Projections;
use crate::slot::{self, Build, ProjectionInfo};
use crate::{ProjectionError, Shared, snapshot};

/// Events applied per batch while following.
const APPLY_BATCH: usize = 4_096;

/// A projection's snapshot as read from disk: `None` when there is none.
pub(crate) type Loaded = (ProjectionInfo, Option<Result<Box<dyn Build>, String>>);

/// Starts reading and decoding every projection's snapshot in `dir`, each on
/// a blocking thread, so they load side by side (and beside the store's own
/// start, when called before it).
pub(crate) fn spawn_loads(dir: &Path) -> tokio::task::JoinSet<Loaded> {
    let mut loading = tokio::task::JoinSet::new();
    for info in crate::projections() {
        let path = snapshot::path(dir, info.name);
        loading.spawn_blocking(move || {
            let loaded = match std::fs::read(&path) {
                Ok(bytes) => Some((info.decode)(&bytes).map_err(|error| error.to_string())),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => Some(Err(error.to_string())),
            };
            (info, loaded)
        });
    }
    loading
}

/// Installs the loaded snapshots that are usable: of this version and made
/// from `store`'s log. The others leave their projection empty, so it is
/// rebuilt from the log.
pub(crate) async fn install(
    projections: &Projections,
    mut loading: tokio::task::JoinSet<Loaded>,
    store: &dyn EventStore,
) -> Result<(), ProjectionError> {
    while let Some(joined) = loading.join_next().await {
        let Ok((info, loaded)) = joined else { continue };
        let built = match loaded {
            None => {
                tracing::info!(projection = info.name, "no snapshot: building from the log");
                continue;
            }
            Some(Err(reason)) => {
                tracing::warn!(projection = info.name, %reason, "snapshot not used: rebuilding from the log");
                continue;
            }
            Some(Ok(built)) => built,
        };
        if !belongs_to(built.as_ref(), store).await? {
            tracing::warn!(
                projection = info.name,
                "snapshot was built from another log: rebuilding from this one"
            );
            continue;
        }
        if let Some(slot) = projections.slot(info.name) {
            // Nothing is served yet, so any checkpoint may be installed.
            let _ = slot.swap(built, true);
        }
    }
    Ok(())
}

/// Whether `built` was made from `store`'s log: the event at its
/// checkpoint exists there with the same chain hash.
pub(crate) async fn belongs_to(built: &dyn Build, store: &dyn EventStore) -> Result<bool, ProjectionError> {
    let Some(last) = built.checkpoint().checked_sub(1) else {
        return Ok(true);
    };
    let found = store.read_all(last, 1).await?;
    Ok(found
        .first()
        .is_some_and(|event| Some(event.hash) == built.last_hash()))
}

/// Writes a snapshot file without blocking the runtime.
pub(crate) async fn save(path: PathBuf, encoded: Vec<u8>) -> Result<(), ProjectionError> {
    let target = path.clone();
    tokio::task::spawn_blocking(move || snapshot::save(&target, &encoded))
        .await
        .map_err(|error| ProjectionError::Snapshot {
            path: path.clone(),
            source: std::io::Error::other(error),
        })?
        .map_err(|source| ProjectionError::Snapshot { path, source })
}

/// The task that applies `$all` to the projections.
pub(crate) async fn run(shared: Arc<Shared>, store: Arc<dyn EventStore>, from: Position) {
    let mut subscription = paycore_store::subscribe_all(store.clone(), from);
    let mut since_snapshot = 0_u64;
    let mut last_snapshot = Instant::now();
    let mut writing: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let batch = match subscription.next_batch(APPLY_BATCH).await {
            Ok(batch) => batch,
            Err(StoreError::Closed) => break,
            Err(error) => {
                tracing::error!(%error, "read models stopped following the log");
                tokio::time::sleep(Duration::from_secs(1)).await;
                subscription = paycore_store::subscribe_all(store.clone(), shared.projections.checkpoint());
                continue;
            }
        };
        let count = batch.len() as u64;
        let decoded = match slot::decode(batch) {
            Ok(decoded) => decoded,
            Err(error) => {
                // A log this build cannot read: serving stale models is
                // better than guessing. The audit names the event.
                tracing::error!(%error, "read models stopped at an event they cannot decode");
                return;
            }
        };
        shared.projections.apply(&decoded);
        shared.applied.send_replace(shared.projections.checkpoint());
        since_snapshot += count;
        let policy = &shared.policy;
        let due = since_snapshot >= policy.every_events || last_snapshot.elapsed() >= policy.every;
        if due && writing.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
            writing = snapshot_all(&shared);
            since_snapshot = 0;
            last_snapshot = Instant::now();
        }
    }
    // The final snapshot at shutdown is `ReadModels::persist`'s job.
}

/// Encodes every projection now and writes them in the background.
fn snapshot_all(shared: &Shared) -> Option<tokio::task::JoinHandle<()>> {
    let dir = shared.policy.writable_dir()?.clone();
    let encoded: Vec<_> = shared
        .projections
        .slots()
        .iter()
        .map(|slot| (snapshot::path(&dir, slot.info().name), slot.encode()))
        .collect();
    Some(tokio::spawn(async move {
        for (path, bytes) in encoded {
            if let Err(error) = save(path, bytes).await {
                tracing::warn!(%error, "could not write a projection snapshot; the next start replays more");
            }
        }
    }))
}
