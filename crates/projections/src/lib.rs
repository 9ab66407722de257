//! Read models (projects, customers, accounts with balances, transactions,
//! transfers, card and bank resources, exchange rates) built from the `$all`
//! log and kept on disk.
//!
//! Each read model is a *projection* with a name, a version, its own tables
//! and its own checkpoint ([`projections`] lists them), in one redb database
//! (`<dir>/models.redb`, see [`db`]). One task follows `$all` and applies
//! each batch, decoded once, to every projection that has not seen it, in
//! one write transaction that also moves their checkpoints: rows and
//! checkpoints always agree, and every query reads all the models it needs
//! from one read transaction, so from one position of the log. A start
//! opens the models where
//! they are and applies only what the log holds beyond them; rows written by
//! another version of a projection, or from another log, are dropped and
//! that projection alone is rebuilt before the server answers. Command
//! handlers call [`ReadModels::wait_for`] with the position of their write
//! before answering, so a client always reads its own writes.
//!
//! [`ReadModels::rebuild`] rebuilds chosen projections from position 0 while
//! the server runs: beside the served ones, swapped in once caught up, so a
//! query never sees a half-built model. [`rebuild_offline`] does the same
//! without a server, resuming an interrupted run from its last checkpoint.
//!
//! Memory is redb's page cache ([`ModelStorage::cache_bytes`]) and one
//! batch of events, whatever the size of the history.

mod chunk;
pub mod db;
mod follower;
mod id_runs;
pub mod metrics;
mod models;
mod open_banking;
mod overlay;
mod page;
mod rebuild;
mod rows;
mod set;
mod slot;
#[cfg(test)]
mod test_support;
mod two_phase;

use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument;

use parking_lot::{Mutex, RwLock};
use paycore_domain::aggregate::{Account, Customer, Project, Transfer};
use paycore_domain::fx_rate::FxRateEntry;
use paycore_domain::{
    AccountId, Aggregate, CardPayinId, CustomerId, ProjectId, ResourceRef, Timestamp, Transaction,
    TransactionId, TransferId,
};
use paycore_store::{EventStore, Position, StoreError};
use tokio::sync::watch;

pub use db::{DEFAULT_CACHE_BYTES, ModelError, ModelStorage};
pub use models::{DueKind, ResourceKind};
pub use open_banking::{AggregatedAccountsOf, AggregatedTransactionFilter, DueConnection};
pub use page::{Page, PageError, PageRequest, account_transactions_as_of};
pub use rebuild::{
    OfflineOptions, OfflineSummary, OnlineTuning, RebuildError, RebuildProgress, RebuildState,
    rebuild_offline,
};
pub use set::{projection, projections};
pub use slot::ProjectionInfo;
pub use two_phase::DueTransfer;

use crate::db::{ModelDb, Namespace};
use crate::models::{Accounts, Directory, FxRates, Projection, Resources, Transactions, Transfers};
use crate::overlay::{Layer, Served, Snapshot};
use crate::page::ListKind;
use crate::rows::{Key, RowsRead};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event at position {position} does not decode: {reason}")]
    Decode { position: Position, reason: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
}

/// One projection as `projections status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub description: &'static str,
    pub version: u32,
    /// Events below this position are applied.
    pub checkpoint: Position,
    /// Events in the log.
    pub head: Position,
    /// The rebuild running beside it, if any.
    pub rebuilding: Option<RebuildProgress>,
}

impl ProjectionStatus {
    /// Events in the log this projection has not applied yet.
    pub fn lag(&self) -> u64 {
        self.head.saturating_sub(self.checkpoint)
    }
}

pub(crate) struct Shared {
    db: ModelDb,
    /// Held while the follower applies a batch, so a rebuild's swap sees
    /// it either before a batch or after it.
    served: Arc<tokio::sync::Mutex<Served>>,
    /// Each served projection's changes not yet written to the store, and
    /// its checkpoint, in the registry's order (`overlay.rs`).
    active: RwLock<Layer>,
    /// Changes being written to the store.
    frozen: Mutex<Option<Arc<Layer>>>,
    /// Where the served projections' rows live, as the follower found them
    /// (registry order); cleared for a projection whose rebuild is swapped in.
    located: Mutex<Vec<rows::Locations>>,
    /// Signalled when a frozen layer is written.
    written: parking_lot::Condvar,
    /// [`ReadModels::verbatim_idempotency_until`] as read at a position.
    verbatim_until: Mutex<Option<(Position, Option<Timestamp>)>>,
    /// Running rebuild jobs, by projection name.
    rebuilds: Mutex<HashMap<&'static str, watch::Receiver<RebuildProgress>>>,
    /// What every projection has applied (the smallest checkpoint).
    applied: watch::Sender<Position>,
    /// Commands waiting for the models to apply a position, by position:
    /// each batch applied wakes those it reached and no other (a watch
    /// channel would wake every waiter for every batch).
    waiting: Mutex<std::collections::BTreeMap<Position, Vec<tokio::sync::oneshot::Sender<()>>>>,
    /// Set by [`ReadModels::close`]: the follower stops.
    stop: watch::Sender<bool>,
}

impl Shared {
    /// Publishes that every projection applied the events below `position`,
    /// and wakes the commands waiting for one of them.
    pub(crate) fn publish(&self, position: Position) {
        self.applied.send_replace(position);
        let reached = {
            let mut waiting = self.waiting.lock();
            let later = waiting.split_off(&position);
            std::mem::replace(&mut *waiting, later)
        };
        for waiter in reached.into_values().flatten() {
            // A waiter gone (its call cancelled) needs no answer.
            let _ = waiter.send(());
        }
    }

    /// Wakes every waiter: the models stopped following the log.
    pub(crate) fn release_waiters(&self) {
        self.waiting.lock().clear();
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// The model store being opened (see [`ReadModels::preload`]).
#[derive(Debug)]
pub struct Preloaded {
    opening: tokio::task::JoinHandle<Result<ModelDb, ModelError>>,
    dir: Option<std::path::PathBuf>,
}

/// Shared handle to the read models. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReadModels {
    shared: Arc<Shared>,
    store: Arc<dyn EventStore>,
    follower: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl ReadModels {
    /// Opens the models, catches every projection up with the store and
    /// keeps following it in a background task.
    pub async fn start(store: Arc<dyn EventStore>, storage: ModelStorage) -> Result<Self, ProjectionError> {
        Self::start_preloaded(store, Self::preload(storage)).await
    }

    /// Starts opening the model store now, before the event store is open:
    /// after a crash both may have recovery work, done side by side. Must
    /// be called inside a tokio runtime.
    pub fn preload(storage: ModelStorage) -> Preloaded {
        let dir = storage.dir.clone();
        let opening = tokio::task::spawn_blocking(move || ModelDb::open_or_set_aside(&storage));
        Preloaded { opening, dir }
    }

    /// [`ReadModels::start`] with a store [`ReadModels::preload`] began opening.
    pub async fn start_preloaded(
        store: Arc<dyn EventStore>,
        preloaded: Preloaded,
    ) -> Result<Self, ProjectionError> {
        let db = preloaded
            .opening
            .await
            .map_err(|error| ModelError::Storage(format!("opening the read models: {error}")))??;
        let progress = follower::prepare(&db, store.as_ref()).await?;
        let from = slot::lowest(&progress);
        let (applied, _) = watch::channel(from);
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            db,
            located: Mutex::new(rows::Locations::fresh(progress.len())),
            active: RwLock::new(Layer::empty(progress)),
            frozen: Mutex::new(None),
            written: parking_lot::Condvar::new(),
            verbatim_until: Mutex::new(None),
            served: Arc::new(tokio::sync::Mutex::new(Served {
                since: std::time::Instant::now(),
            })),
            rebuilds: Mutex::default(),
            applied,
            waiting: Mutex::default(),
            stop,
        });
        let following = tokio::spawn(follower::run(shared.clone(), store.clone(), from));
        let read = Self {
            shared,
            store,
            follower: Arc::new(Mutex::new(Some(following))),
        };
        // Queries must not see models older than what the log held at start
        // (after a crash, acknowledged writes would seem missing).
        let head = *read.store.committed().borrow();
        if head > 0 {
            read.wait_for(head - 1).await;
        }
        if let Some(dir) = preloaded.dir {
            follower::remove_legacy_snapshots(&dir);
        }
        Ok(read)
    }

    /// Writes every change the models hold in memory to the store and
    /// syncs it (at shutdown), so the next start replays nothing.
    pub async fn persist(&self) -> Result<(), ProjectionError> {
        let shared = self.shared.clone();
        let mut served = self.shared.served.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || shared.write_all(&mut served))
            .await
            .map_err(|error| ModelError::Storage(format!("syncing the read models: {error}")))??;
        Ok(())
    }

    /// Stops following the log and syncs the models; the model store closes
    /// when the last handle is dropped (a server's process ends instead).
    pub async fn close(self) -> Result<(), ProjectionError> {
        self.shared.stop.send_replace(true);
        let following = self.follower.lock().take();
        if let Some(following) = following {
            let _ = following.await;
        }
        self.persist().await
    }

    /// Returns once the event at `position` (and all before it) is applied
    /// by every projection, or at once if the store holds no event at
    /// `position`.
    pub async fn wait_for(&self, position: Position) {
        if *self.store.committed().borrow() <= position {
            return;
        }
        let started = std::time::Instant::now();
        // The span shows in the command's trace even when the models were
        // already there.
        let span = tracing::debug_span!(target: "paycore::projections", "read_model_wait", position);
        let reached = || *self.shared.applied.borrow() > position;
        async {
            if reached() {
                return;
            }
            let (waiter, woken) = tokio::sync::oneshot::channel();
            self.shared
                .waiting
                .lock()
                .entry(position)
                .or_default()
                .push(waiter);
            // Published before the waiter was registered: not woken for it.
            if !reached() {
                // An Err means the follower stopped; readers then get what there is.
                let _ = woken.await;
            }
        }
        .instrument(span)
        .await;
        ::metrics::histogram!(crate::metrics::WAIT_SECONDS).record(started.elapsed().as_secs_f64());
    }

    /// Number of events every projection has applied.
    pub fn checkpoint(&self) -> Position {
        *self.shared.applied.borrow()
    }

    /// Each projection's version, checkpoint and lag, and its rebuild if
    /// one runs; the checkpoints as the queries see them (the model store
    /// has them at most [`overlay::FLUSH_EVERY`] later).
    pub fn status(&self) -> Result<Vec<ProjectionStatus>, ModelError> {
        let head = *self.store.committed().borrow();
        let progress = self.shared.progress();
        let rebuilds = self.shared.rebuilds.lock();
        progress
            .iter()
            .map(|&(info, checkpoint)| {
                Ok(ProjectionStatus {
                    name: info.name,
                    description: info.description,
                    version: info.version,
                    checkpoint: checkpoint.next_position,
                    head,
                    rebuilding: rebuilds
                        .get(info.name)
                        .map(|progress| progress.borrow().clone())
                        .filter(|progress| progress.state == RebuildState::Running),
                })
            })
            .collect()
    }

    /// Rebuilds the named projections from position 0 beside the served
    /// ones and swaps each in once it has caught up (see the crate docs).
    /// The job runs in the background; the receiver follows its progress.
    pub fn rebuild(&self, names: &[String]) -> Result<watch::Receiver<RebuildProgress>, RebuildError> {
        self.rebuild_tuned(names, rebuild::OnlineTuning::default())
    }

    /// [`Self::rebuild`] with other batch, memory and catch-up sizes (tests).
    #[doc(hidden)]
    pub fn rebuild_tuned(
        &self,
        names: &[String],
        tuning: rebuild::OnlineTuning,
    ) -> Result<watch::Receiver<RebuildProgress>, RebuildError> {
        rebuild::start_online(self.shared.clone(), self.store.clone(), names, tuning)
    }

    /// One consistent view of every model, at one position of the log.
    fn view(&self) -> Result<View<'_>, ModelError> {
        Ok(View {
            snapshot: self.shared.snapshot()?,
        })
    }

    pub fn project(&self, id: ProjectId) -> Result<Option<Project>, ModelError> {
        self.view()?.rows::<Directory>()?.value(Key::Project(id))
    }

    /// Until when an idempotency record kept under the key as sent (before
    /// keys were hashed) may still be live; `None` if the log has none.
    /// Every command with an idempotency key asks: the answer is read once
    /// per position the models reach (it only ever grows).
    pub fn verbatim_idempotency_until(&self) -> Result<Option<Timestamp>, ModelError> {
        let applied = *self.shared.applied.borrow();
        if let Some((at, until)) = *self.shared.verbatim_until.lock()
            && at == applied
        {
            return Ok(until);
        }
        let until = self
            .view()?
            .rows::<Directory>()?
            .value(Key::VerbatimIdempotencyUntil)?;
        *self.shared.verbatim_until.lock() = Some((applied, until));
        Ok(until)
    }

    pub fn customer(&self, project: ProjectId, id: CustomerId) -> Result<Option<Customer>, ModelError> {
        let found: Option<Customer> = self.view()?.rows::<Directory>()?.get(Key::Customer(id))?;
        Ok(found.filter(|customer| customer.project_id == project))
    }

    pub fn account(&self, project: ProjectId, id: AccountId) -> Result<Option<Account>, ModelError> {
        self.view()?.account(project, id)
    }

    pub fn transfer(&self, project: ProjectId, id: TransferId) -> Result<Option<Transfer>, ModelError> {
        let found: Option<Transfer> = self.view()?.rows::<Transfers>()?.get(Key::Transfer(id))?;
        Ok(found.filter(|transfer| transfer.project_id == project))
    }

    pub fn transaction(
        &self,
        project: ProjectId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, ModelError> {
        let found: Option<Transaction> = self.view()?.rows::<Transactions>()?.get(Key::Transaction(id))?;
        Ok(found.filter(|transaction| transaction.project_id == project))
    }

    pub fn list_customers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Customer>, PageError> {
        let view = self.view()?;
        let rows = view.rows::<Directory>()?;
        list(&rows, project, ListKind::Customers, Key::Customers(project), page)
    }

    pub fn list_accounts(&self, project: ProjectId, page: &PageRequest) -> Result<Page<Account>, PageError> {
        let view = self.view()?;
        let rows = view.rows::<Accounts>()?;
        list(&rows, project, ListKind::Accounts, Key::Accounts(project), page)
    }

    pub fn list_transfers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Transfer>, PageError> {
        let view = self.view()?;
        let rows = view.rows::<Transfers>()?;
        list(&rows, project, ListKind::Transfers, Key::Transfers(project), page)
    }

    /// A card, payin, refund, bank resource or file of the project, as its
    /// aggregate state.
    pub fn resource(
        &self,
        project: ProjectId,
        resource: ResourceRef,
    ) -> Result<Option<Aggregate>, ModelError> {
        self.view()?.resource(project, resource)
    }

    /// The project's resources of one kind, newest first.
    pub fn list_resources(
        &self,
        project: ProjectId,
        kind: ResourceKind,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        let view = self.view()?;
        let rows = view.rows::<Resources>()?;
        let list_kind = ListKind::Resources(kind);
        list(&rows, project, list_kind, Key::Resources(project, kind), page)
    }

    /// The refunds of one card payin, newest first.
    pub fn list_card_payin_refunds(
        &self,
        project: ProjectId,
        payin: CardPayinId,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        let view = self.view()?;
        if view.resource(project, ResourceRef::CardPayin(payin))?.is_none() {
            return Err(PageError::ParentNotFound);
        }
        let rows = view.rows::<Resources>()?;
        let index = Key::PayinRefunds(payin);
        let refunds = Key::Resources(project, ResourceKind::CardPayinRefund);
        page::slice(
            project,
            ListKind::CardPayinRefunds(payin),
            page,
            rows.len(index)?,
            |range| rows.newest_first_through(index, refunds, range),
        )
    }

    /// The platform's exchange rates, removed ones included.
    pub fn fx_rates(&self) -> Result<Vec<FxRateEntry>, ModelError> {
        self.view()?.rows::<FxRates>()?.all_values()
    }

    /// All of the project's transactions, or one account's. The account and
    /// its transactions are read at one position of the log.
    pub fn list_transactions(
        &self,
        project: ProjectId,
        account: Option<AccountId>,
        page: &PageRequest,
    ) -> Result<Page<Transaction>, PageError> {
        let view = self.view()?;
        let rows = view.rows::<Transactions>()?;
        let all = Key::Transactions(project);
        match account {
            None => list(&rows, project, ListKind::Transactions, all, page),
            Some(account) => {
                if view.account(project, account)?.is_none() {
                    return Err(PageError::AccountNotFound);
                }
                let index = Key::AccountTransactions(account);
                page::slice(
                    project,
                    ListKind::AccountTransactions(account),
                    page,
                    rows.len(index)?,
                    |range| rows.newest_first_through(index, all, range),
                )
            }
        }
    }
}

/// A projection as the model store of a data directory holds it, read
/// without a server (`paycore projections status`).
#[derive(Clone, Debug)]
pub struct StoredProjection {
    pub info: ProjectionInfo,
    /// The version that wrote the served rows and their checkpoint; `None`
    /// when the store has none (built from the log at the next start).
    pub served: Option<(u32, Position)>,
    /// Where an interrupted offline rebuild stopped.
    pub rebuild: Option<Position>,
}

/// Each projection's checkpoints in the model store of `storage`, which no
/// server may hold; an empty answer when there is no store yet.
pub fn stored(storage: &ModelStorage) -> Result<Vec<StoredProjection>, ModelError> {
    if storage.file().is_some_and(|file| !file.exists()) {
        return Ok(Vec::new());
    }
    let db = ModelDb::open(storage)?;
    let txn = db.read()?;
    projections()
        .into_iter()
        .map(|info| {
            let served = db::read_checkpoint(&txn, &info.tables(Namespace::Served))?;
            let rebuild = db::read_checkpoint(&txn, &info.tables(Namespace::Rebuild))?;
            Ok(StoredProjection {
                info,
                served: served.map(|checkpoint| (checkpoint.version, checkpoint.next_position)),
                rebuild: rebuild
                    .filter(|checkpoint| checkpoint.next_position > 0)
                    .map(|checkpoint| checkpoint.next_position),
            })
        })
        .collect()
}

/// The models as of one position: the changes held in memory over one
/// read transaction.
struct View<'a> {
    snapshot: Snapshot<'a>,
}

impl View<'_> {
    fn rows<P: Projection>(&self) -> Result<RowsRead<'_>, ModelError> {
        let snapshot = &self.snapshot;
        let index = snapshot
            .active
            .progress
            .iter()
            .position(|(info, _)| info.name == P::NAME);
        fn of(layer: &Layer, index: Option<usize>) -> Option<&rows::Pending> {
            index.and_then(|index| layer.pending.get(index))
        }
        RowsRead::open(
            &snapshot.txn,
            &db::Tables::of(Namespace::Served, P::NAME),
            [
                of(&snapshot.active, index),
                snapshot.frozen.as_deref().and_then(|frozen| of(frozen, index)),
            ],
        )
    }

    fn account(&self, project: ProjectId, id: AccountId) -> Result<Option<Account>, ModelError> {
        let found: Option<Account> = self.rows::<Accounts>()?.get(Key::Account(id))?;
        Ok(found.filter(|account| account.project_id == project))
    }

    fn resource(&self, project: ProjectId, resource: ResourceRef) -> Result<Option<Aggregate>, ModelError> {
        let found: Option<Aggregate> = self.rows::<Resources>()?.get(Key::Resource(resource))?;
        Ok(found.filter(|state| state.project_id() == Some(project)))
    }
}

/// A page of a creation-ordered list, newest first (a project without the
/// list yet has an empty one).
fn list<V: serde::de::DeserializeOwned>(
    rows: &RowsRead,
    project: ProjectId,
    kind: ListKind,
    key: Key,
    page: &PageRequest,
) -> Result<Page<V>, PageError> {
    page::slice(project, kind, page, rows.len(key)?, |range| {
        rows.newest_first(key, range)
    })
}

/// The decoding of the model store's rows, for the fuzzers of
/// `paycore-fuzz` only.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::rows::fuzzing::{ROW_KINDS, decode_row, encode_row};
}
