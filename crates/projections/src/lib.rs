//! Read models (projects, customers, accounts with balances, transactions,
//! transfers, card and bank resources, exchange rates) built from the `$all`
//! log.
//!
//! Each read model is a *projection* with a name, a version and its own
//! checkpoint ([`projections`] lists them). One task follows `$all` and
//! applies every event, decoded once, to each projection that has not seen
//! it. Each projection is snapshotted to `<dir>/<name>.snapshot` now and then
//! and at shutdown, so a restart only replays the events after it; a
//! snapshot made by another version of a projection is ignored and that
//! projection alone is rebuilt from the log on start. Command handlers call
//! [`ReadModels::wait_for`] with the position of their write before
//! answering, so a client always reads its own writes.
//!
//! [`ReadModels::rebuild`] rebuilds chosen projections from position 0 while
//! the server runs: beside the served ones, swapped in once caught up, so a
//! query never sees a half-built model. [`rebuild_offline`] does the same
//! without a server, resuming an interrupted run from its last checkpoint.

mod follower;
mod models;
mod page;
mod rebuild;
mod set;
mod slot;
pub mod snapshot;
#[cfg(test)]
mod test_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use paycore_domain::aggregate::{Account, Customer, Project, Transfer};
use paycore_domain::banking::FxRateEntry;
use paycore_domain::{
    AccountId, Aggregate, CardPayinId, CustomerId, ProjectId, ResourceRef, Transaction, TransactionId,
    TransferId,
};
use paycore_store::{EventStore, Position, StoreError};
use tokio::sync::watch;

pub use models::ResourceKind;
pub use page::{Page, PageError, PageRequest, account_transactions_as_of};
pub use rebuild::{
    OfflineOptions, OfflineSummary, RebuildError, RebuildProgress, RebuildState, rebuild_offline,
};
pub use set::{projection, projections};
pub use slot::ProjectionInfo;

use crate::models::CreationOrdered;
use crate::page::ListKind;
use crate::set::Projections;

/// Where and how often the projections are written to disk.
#[derive(Clone, Debug)]
pub struct SnapshotPolicy {
    /// The directory of the snapshots; `None` keeps the models in memory only.
    pub dir: Option<PathBuf>,
    /// Whether snapshots are written (the audit only reads them).
    pub write: bool,
    pub every_events: u64,
    pub every: Duration,
}

impl SnapshotPolicy {
    pub fn in_memory() -> Self {
        Self {
            dir: None,
            write: false,
            every_events: u64::MAX,
            every: Duration::MAX,
        }
    }

    /// Snapshots in `dir` every 5 minutes or 5 million events, whichever
    /// comes first, and at shutdown. Encoding holds each model's read lock in
    /// turn (a pause in applying new events, not in serving queries); the
    /// files are written in the background.
    pub fn at(dir: PathBuf) -> Self {
        Self {
            dir: Some(dir),
            write: true,
            every_events: 5_000_000,
            every: Duration::from_secs(300),
        }
    }

    /// Starts from the snapshots in `dir` but never writes there.
    pub fn read_only(dir: PathBuf) -> Self {
        Self {
            write: false,
            every_events: u64::MAX,
            every: Duration::MAX,
            ..Self::at(dir)
        }
    }

    fn writable_dir(&self) -> Option<&PathBuf> {
        self.dir.as_ref().filter(|_| self.write)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event at position {position} does not decode: {reason}")]
    Decode { position: Position, reason: String },
    #[error("snapshot {path}: {source}")]
    Snapshot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    projections: Projections,
    policy: SnapshotPolicy,
    /// Running rebuild jobs, by projection name.
    rebuilds: Mutex<HashMap<&'static str, watch::Receiver<RebuildProgress>>>,
    /// What every projection has applied (the smallest checkpoint).
    applied: watch::Sender<Position>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Snapshots being read (see [`ReadModels::preload`]).
#[derive(Debug)]
pub struct Preloaded {
    policy: SnapshotPolicy,
    loading: Option<tokio::task::JoinSet<follower::Loaded>>,
}

/// Shared handle to the read models. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReadModels {
    shared: Arc<Shared>,
    store: Arc<dyn EventStore>,
}

impl ReadModels {
    /// Loads the snapshots (those readable, of this version and of this
    /// log), catches every projection up with the store and keeps following
    /// it in a background task.
    pub async fn start(store: Arc<dyn EventStore>, policy: SnapshotPolicy) -> Result<Self, ProjectionError> {
        Self::start_preloaded(store, Self::preload(policy)).await
    }

    /// Starts reading the snapshots now, before the store is open: both are
    /// CPU-bound for large logs and proceed side by side. Must be called
    /// inside a tokio runtime.
    pub fn preload(policy: SnapshotPolicy) -> Preloaded {
        let loading = policy.dir.as_deref().map(follower::spawn_loads);
        Preloaded { policy, loading }
    }

    /// [`ReadModels::start`] with snapshots [`ReadModels::preload`] began reading.
    pub async fn start_preloaded(
        store: Arc<dyn EventStore>,
        preloaded: Preloaded,
    ) -> Result<Self, ProjectionError> {
        let Preloaded { policy, loading } = preloaded;
        let projections = Projections::default();
        if let Some(dir) = policy.writable_dir() {
            std::fs::create_dir_all(dir).map_err(|source| ProjectionError::Snapshot {
                path: dir.clone(),
                source,
            })?;
        }
        if let Some(loading) = loading {
            follower::install(&projections, loading, store.as_ref()).await?;
        }
        let from = projections.checkpoint();
        let (applied, _) = watch::channel(from);
        let shared = Arc::new(Shared {
            projections,
            policy,
            rebuilds: Mutex::default(),
            applied,
        });
        tokio::spawn(follower::run(shared.clone(), store.clone(), from));
        let read = Self { shared, store };
        // Queries must not see models older than what the log held at start
        // (after a crash, acknowledged writes would seem missing).
        let head = *read.store.committed().borrow();
        if head > 0 {
            read.wait_for(head - 1).await;
        }
        Ok(read)
    }

    /// Writes every projection and its checkpoint to disk now (at shutdown),
    /// so the next start replays only what comes after.
    pub async fn persist(&self) -> Result<(), ProjectionError> {
        let Some(dir) = self.shared.policy.writable_dir() else {
            return Ok(());
        };
        for slot in self.shared.projections.slots() {
            let path = snapshot::path(dir, slot.info().name);
            let encoded = slot.encode();
            follower::save(path, encoded).await?;
        }
        Ok(())
    }

    /// Returns once the event at `position` (and all before it) is applied
    /// by every projection, or at once if the store holds no event at
    /// `position`.
    pub async fn wait_for(&self, position: Position) {
        if *self.store.committed().borrow() <= position {
            return;
        }
        let mut applied = self.shared.applied.subscribe();
        // An Err means the follower stopped; readers then get what there is.
        let _ = applied.wait_for(|applied| *applied > position).await;
    }

    /// Number of events every projection has applied.
    pub fn checkpoint(&self) -> Position {
        *self.shared.applied.borrow()
    }

    /// Each projection's version, checkpoint and lag, and its rebuild if one runs.
    pub fn status(&self) -> Vec<ProjectionStatus> {
        let head = *self.store.committed().borrow();
        let rebuilds = self.shared.rebuilds.lock();
        self.shared
            .projections
            .slots()
            .iter()
            .map(|slot| {
                let info = slot.info();
                ProjectionStatus {
                    name: info.name,
                    description: info.description,
                    version: info.version,
                    checkpoint: slot.checkpoint(),
                    head,
                    rebuilding: rebuilds
                        .get(info.name)
                        .map(|progress| progress.borrow().clone())
                        .filter(|progress| progress.state == RebuildState::Running),
                }
            })
            .collect()
    }

    /// Rebuilds the named projections from position 0 beside the served
    /// ones and swaps each in once it has caught up (see the crate docs).
    /// The job runs in the background; the receiver follows its progress.
    pub fn rebuild(&self, names: &[String]) -> Result<watch::Receiver<RebuildProgress>, RebuildError> {
        rebuild::start_online(self.shared.clone(), self.store.clone(), names)
    }

    pub fn project(&self, id: ProjectId) -> Option<Project> {
        self.shared
            .projections
            .directory
            .read()
            .model
            .projects
            .get(&id)
            .cloned()
    }

    /// Until when an idempotency record kept under the key as sent (before
    /// keys were hashed) may still be live; `None` if the log has none.
    pub fn verbatim_idempotency_until(&self) -> Option<paycore_domain::Timestamp> {
        self.shared
            .projections
            .directory
            .read()
            .model
            .verbatim_idempotency_until
    }

    pub fn customer(&self, project: ProjectId, id: CustomerId) -> Option<Customer> {
        let directory = self.shared.projections.directory.read();
        directory.model.customers.get(&project)?.get(&id).cloned()
    }

    pub fn account(&self, project: ProjectId, id: AccountId) -> Option<Account> {
        self.shared
            .projections
            .accounts
            .read()
            .model
            .get(project, id)
            .cloned()
    }

    pub fn transfer(&self, project: ProjectId, id: TransferId) -> Option<Transfer> {
        let transfers = self.shared.projections.transfers.read();
        transfers.model.transfers.get(&project)?.get(&id).cloned()
    }

    pub fn transaction(&self, project: ProjectId, id: TransactionId) -> Option<Transaction> {
        let transactions = self.shared.projections.transactions.read();
        transactions.model.projects.get(&project)?.all.get(&id).copied()
    }

    pub fn list_customers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Customer>, PageError> {
        let directory = self.shared.projections.directory.read();
        list(
            project,
            ListKind::Customers,
            page,
            directory.model.customers.get(&project),
        )
    }

    pub fn list_accounts(&self, project: ProjectId, page: &PageRequest) -> Result<Page<Account>, PageError> {
        let accounts = self.shared.projections.accounts.read();
        list(
            project,
            ListKind::Accounts,
            page,
            accounts.model.accounts.get(&project),
        )
    }

    pub fn list_transfers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Transfer>, PageError> {
        let transfers = self.shared.projections.transfers.read();
        list(
            project,
            ListKind::Transfers,
            page,
            transfers.model.transfers.get(&project),
        )
    }

    /// A card, payin, refund, bank resource or file of the project, as its
    /// aggregate state.
    pub fn resource(&self, project: ProjectId, resource: ResourceRef) -> Option<Aggregate> {
        self.shared
            .projections
            .resources
            .read()
            .model
            .get(project, resource)
            .cloned()
    }

    /// The project's resources of one kind, newest first.
    pub fn list_resources(
        &self,
        project: ProjectId,
        kind: ResourceKind,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        let resources = self.shared.projections.resources.read();
        let found = resources
            .model
            .projects
            .get(&project)
            .and_then(|p| p.lists.get(&kind));
        list(project, ListKind::Resources(kind), page, found)
    }

    /// The refunds of one card payin, newest first.
    pub fn list_card_payin_refunds(
        &self,
        project: ProjectId,
        payin: CardPayinId,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        let resources = self.shared.projections.resources.read();
        if resources
            .model
            .get(project, ResourceRef::CardPayin(payin))
            .is_none()
        {
            return Err(PageError::ParentNotFound);
        }
        let of_project = resources.model.projects.get(&project);
        let refunds = of_project.and_then(|p| p.lists.get(&ResourceKind::CardPayinRefund));
        let indices = of_project
            .and_then(|p| p.payin_refunds.get(&payin))
            .map_or(&[][..], Vec::as_slice);
        page::slice(
            project,
            ListKind::CardPayinRefunds(payin),
            page,
            indices.len(),
            |i| refunds?.at(indices[i] as usize).cloned(),
        )
    }

    /// The platform's exchange rates, removed ones included.
    pub fn fx_rates(&self) -> Vec<FxRateEntry> {
        self.shared
            .projections
            .fx_rates
            .read()
            .model
            .rates
            .values()
            .cloned()
            .collect()
    }

    /// All of the project's transactions, or one account's.
    pub fn list_transactions(
        &self,
        project: ProjectId,
        account: Option<AccountId>,
        page: &PageRequest,
    ) -> Result<Page<Transaction>, PageError> {
        if let Some(account) = account
            && self
                .shared
                .projections
                .accounts
                .read()
                .model
                .get(project, account)
                .is_none()
        {
            return Err(PageError::AccountNotFound);
        }
        let transactions = self.shared.projections.transactions.read();
        let of_project = transactions.model.projects.get(&project);
        match account {
            None => list(project, ListKind::Transactions, page, of_project.map(|p| &p.all)),
            Some(account) => {
                let indices = of_project
                    .and_then(|p| p.by_account.get(&account))
                    .map_or(&[][..], Vec::as_slice);
                page::slice(
                    project,
                    ListKind::AccountTransactions(account),
                    page,
                    indices.len(),
                    |i| of_project?.all.at(indices[i] as usize).copied(),
                )
            }
        }
    }
}

/// A page of a creation-ordered list, newest first; a project without the
/// list yet has an empty one.
fn list<K: Eq + std::hash::Hash + Copy, V: Clone>(
    project: ProjectId,
    kind: ListKind,
    page: &PageRequest,
    items: Option<&CreationOrdered<K, V>>,
) -> Result<Page<V>, PageError> {
    match items {
        Some(items) => page::slice(project, kind, page, items.len(), |i| items.at(i).cloned()),
        None => page::empty(project, kind, page),
    }
}
