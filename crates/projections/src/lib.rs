//! Read models (projects, customers, accounts with balances, transfers,
//! transactions) built from the `$all` log.
//!
//! One task subscribes to `$all` from the models' checkpoint and applies
//! events in order. The models live in memory; a snapshot of them together
//! with the checkpoint is written to disk now and then and at shutdown, so a
//! restart only replays the events after it. Command handlers call
//! [`ReadModels::wait_for`] with the position of their write before answering,
//! so a client always reads its own writes.

mod models;
mod page;
mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use paycore_domain::aggregate::{Account, Customer, Project, Transfer};
use paycore_domain::banking::FxRateEntry;
use paycore_domain::{
    AccountId, Aggregate, CardPayinId, CustomerId, Event, ProjectId, ResourceRef, Transaction, TransactionId,
    TransferId,
};
use paycore_store::{EventStore, Position, RecordedEvent, StoreError};
use tokio::sync::watch;

pub use models::ResourceKind;
pub use page::{Page, PageError, PageRequest, account_transactions_as_of};

use crate::models::Models;
use crate::page::ListKind;

/// How often the models are written to disk while events keep arriving.
#[derive(Clone, Debug)]
pub struct SnapshotPolicy {
    /// Where the snapshot lives; `None` keeps the models in memory only.
    pub path: Option<PathBuf>,
    pub every_events: u64,
    pub every: Duration,
}

impl SnapshotPolicy {
    pub fn in_memory() -> Self {
        Self {
            path: None,
            every_events: u64::MAX,
            every: Duration::MAX,
        }
    }

    /// Snapshots at `path` every 5 minutes or 5 million events, whichever
    /// comes first, and at shutdown. Encoding holds the models' read lock (a
    /// pause in applying new events, not in serving queries); the file is
    /// written in the background.
    pub fn at(path: PathBuf) -> Self {
        Self {
            path: Some(path),
            every_events: 5_000_000,
            every: Duration::from_secs(300),
        }
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
}

/// Shared handle to the read models. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReadModels {
    models: Arc<RwLock<Models>>,
    /// Number of events applied (= next position to apply).
    applied: watch::Receiver<Position>,
    store: Arc<dyn EventStore>,
    snapshot_path: Option<PathBuf>,
}

const APPLY_BATCH: usize = 4_096;

impl ReadModels {
    /// Loads the snapshot (if any and readable), catches up with the store
    /// and keeps following it in a background task.
    pub async fn start(store: Arc<dyn EventStore>, policy: SnapshotPolicy) -> Result<Self, ProjectionError> {
        let models = match &policy.path {
            Some(path) => match snapshot::load(path).await {
                Some(models) if belongs_to(&models, store.as_ref()).await? => models,
                Some(_) => {
                    tracing::warn!(
                        path = %path.display(),
                        "read-model snapshot was built from another log; rebuilding from this one"
                    );
                    Models::default()
                }
                None => Models::default(),
            },
            None => Models::default(),
        };
        let from = models.next_position;
        let (applied_tx, applied) = watch::channel(from);
        let models = Arc::new(RwLock::new(models));
        let snapshot_path = policy.path.clone();
        let follower = Follower {
            models: models.clone(),
            applied: applied_tx,
            store: store.clone(),
            policy,
        };
        tokio::spawn(follower.run(from));
        let read = Self {
            models,
            applied,
            store,
            snapshot_path,
        };
        // Queries must not see models older than what the log held at start
        // (after a crash, acknowledged writes would seem missing).
        let head = *read.store.committed().borrow();
        if head > 0 {
            read.wait_for(head - 1).await;
        }
        Ok(read)
    }

    /// Writes the models and their checkpoint to disk now (at shutdown), so
    /// the next start replays only what comes after.
    pub async fn persist(&self) -> Result<(), ProjectionError> {
        let Some(path) = &self.snapshot_path else {
            return Ok(());
        };
        let encoded = snapshot::encode(&self.models.read());
        snapshot::save(path, encoded).await
    }

    /// Returns once the event at `position` (and all before it) is applied,
    /// or at once if the store holds no event at `position`.
    pub async fn wait_for(&self, position: Position) {
        if *self.store.committed().borrow() <= position {
            return;
        }
        let mut applied = self.applied.clone();
        // An Err means the follower stopped; readers then get what there is.
        let _ = applied.wait_for(|applied| *applied > position).await;
    }

    /// Number of events applied so far.
    pub fn checkpoint(&self) -> Position {
        *self.applied.borrow()
    }

    pub fn project(&self, id: ProjectId) -> Option<Project> {
        self.models.read().models(id)?.project.clone()
    }

    pub fn customer(&self, project: ProjectId, id: CustomerId) -> Option<Customer> {
        self.models.read().models(project)?.customers.get(&id).cloned()
    }

    pub fn account(&self, project: ProjectId, id: AccountId) -> Option<Account> {
        self.models.read().models(project)?.accounts.get(&id).cloned()
    }

    pub fn transfer(&self, project: ProjectId, id: TransferId) -> Option<Transfer> {
        self.models.read().models(project)?.transfers.get(&id).cloned()
    }

    pub fn transaction(&self, project: ProjectId, id: TransactionId) -> Option<Transaction> {
        self.models.read().models(project)?.transactions.get(&id).copied()
    }

    pub fn list_customers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Customer>, PageError> {
        let models = self.models.read();
        let Some(models) = models.models(project) else {
            return page::empty(project, ListKind::Customers, page);
        };
        let list = &models.customers;
        page::slice(project, ListKind::Customers, page, list.len(), |i| {
            list.at(i).cloned()
        })
    }

    pub fn list_accounts(&self, project: ProjectId, page: &PageRequest) -> Result<Page<Account>, PageError> {
        let models = self.models.read();
        let Some(models) = models.models(project) else {
            return page::empty(project, ListKind::Accounts, page);
        };
        let list = &models.accounts;
        page::slice(project, ListKind::Accounts, page, list.len(), |i| {
            list.at(i).cloned()
        })
    }

    pub fn list_transfers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Transfer>, PageError> {
        let models = self.models.read();
        let Some(models) = models.models(project) else {
            return page::empty(project, ListKind::Transfers, page);
        };
        let list = &models.transfers;
        page::slice(project, ListKind::Transfers, page, list.len(), |i| {
            list.at(i).cloned()
        })
    }

    /// A card, payin, refund, bank resource or file of the project, as its
    /// aggregate state.
    pub fn resource(&self, project: ProjectId, resource: ResourceRef) -> Option<Aggregate> {
        let kind = ResourceKind::of(resource)?;
        self.models
            .read()
            .models(project)?
            .resources
            .get(&kind)?
            .get(&resource)
            .cloned()
    }

    /// The project's resources of one kind, newest first.
    pub fn list_resources(
        &self,
        project: ProjectId,
        kind: ResourceKind,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        let models = self.models.read();
        let Some(list) = models
            .models(project)
            .and_then(|models| models.resources.get(&kind))
        else {
            return page::empty(project, ListKind::Resources(kind), page);
        };
        page::slice(project, ListKind::Resources(kind), page, list.len(), |i| {
            list.at(i).cloned()
        })
    }

    /// The refunds of one card payin, newest first.
    pub fn list_card_payin_refunds(
        &self,
        project: ProjectId,
        payin: CardPayinId,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        let models = self.models.read();
        let models = models.models(project);
        let exists = models
            .and_then(|models| models.resources.get(&ResourceKind::CardPayin))
            .is_some_and(|payins| payins.get(&ResourceRef::CardPayin(payin)).is_some());
        if !exists {
            return Err(PageError::ParentNotFound);
        }
        let refunds = models.and_then(|models| models.resources.get(&ResourceKind::CardPayinRefund));
        let indices = models
            .and_then(|models| models.payin_refunds.get(&payin))
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
        self.models.read().fx_rates.values().cloned().collect()
    }

    /// All of the project's transactions, or one account's.
    pub fn list_transactions(
        &self,
        project: ProjectId,
        account: Option<AccountId>,
        page: &PageRequest,
    ) -> Result<Page<Transaction>, PageError> {
        let models = self.models.read();
        let Some(models) = models.models(project) else {
            return match account {
                Some(_) => Err(PageError::AccountNotFound),
                None => page::empty(project, ListKind::Transactions, page),
            };
        };
        let all = &models.transactions;
        match account {
            None => page::slice(project, ListKind::Transactions, page, all.len(), |i| {
                all.at(i).copied()
            }),
            Some(account) => {
                if models.accounts.get(&account).is_none() {
                    return Err(PageError::AccountNotFound);
                }
                let indices = models
                    .account_transactions
                    .get(&account)
                    .map_or(&[][..], Vec::as_slice);
                page::slice(
                    project,
                    ListKind::AccountTransactions(account),
                    page,
                    indices.len(),
                    |i| all.at(indices[i] as usize).copied(),
                )
            }
        }
    }
}

/// Whether `models` were built from `store`'s log: the event at their
/// checkpoint exists there with the same chain hash.
async fn belongs_to(models: &Models, store: &dyn EventStore) -> Result<bool, ProjectionError> {
    let Some(last) = models.next_position.checked_sub(1) else {
        return Ok(true);
    };
    let found = store.read_all(last, 1).await?;
    Ok(found
        .first()
        .is_some_and(|event| Some(event.hash) == models.last_hash))
}

/// The task that applies `$all` to the models.
struct Follower {
    models: Arc<RwLock<Models>>,
    applied: watch::Sender<Position>,
    store: Arc<dyn EventStore>,
    policy: SnapshotPolicy,
}

impl Follower {
    async fn run(self, from: Position) {
        let mut subscription = paycore_store::subscribe_all(self.store.clone(), from);
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
                    subscription = paycore_store::subscribe_all(self.store.clone(), *self.applied.borrow());
                    continue;
                }
            };
            if let Err(error) = self.apply(&batch) {
                // A log this build cannot read: serving stale models is
                // better than guessing. The audit names the event.
                tracing::error!(%error, "read models stopped at an event they cannot decode");
                return;
            }
            since_snapshot += batch.len() as u64;
            let due =
                since_snapshot >= self.policy.every_events || last_snapshot.elapsed() >= self.policy.every;
            if due && writing.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
                writing = self.snapshot();
                since_snapshot = 0;
                last_snapshot = Instant::now();
            }
        }
        // The final snapshot at shutdown is `ReadModels::persist`'s job.
    }

    fn apply(&self, batch: &[RecordedEvent]) -> Result<(), ProjectionError> {
        let Some(last) = batch.last() else { return Ok(()) };
        let decoded = batch
            .iter()
            .map(|recorded| {
                Event::decode(&recorded.event_type, recorded.schema_version, &recorded.payload)
                    .map(|event| (recorded, event))
                    .map_err(|error| ProjectionError::Decode {
                        position: recorded.position,
                        reason: error.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut models = self.models.write();
        for (recorded, event) in &decoded {
            models.apply(
                recorded.position,
                recorded.hash,
                recorded.stream.category(),
                recorded.stream.id(),
                event,
            );
        }
        drop(models);
        self.applied.send_replace(last.position + 1);
        Ok(())
    }

    /// Encodes the models now and writes them in the background.
    fn snapshot(&self) -> Option<tokio::task::JoinHandle<()>> {
        let path = self.policy.path.clone()?;
        let encoded = snapshot::encode(&self.models.read());
        Some(tokio::spawn(async move {
            if let Err(error) = snapshot::save(&path, encoded).await {
                tracing::warn!(%error, "could not write the read-model snapshot; the next start replays more");
            }
        }))
    }
}
