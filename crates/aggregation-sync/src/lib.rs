//! Open banking's syncing (issue 13, item 4): what drives aggregation
//! connections through a [`BankConnector`] and the engine.
//!
//! - **Sign-in steps** ([`Syncer::submit_credentials`],
//!   [`Syncer::submit_one_time_code`], [`Syncer::complete_redirect`],
//!   [`Syncer::poll_sca`]), called by the gRPC API and the hosted pages:
//!   each asks the bank, then records the answer along the lifecycle
//!   diagram (`ConnectionStatus::may_become`), and answers the
//!   [`SignInStep`] to show ([`Syncer::waiting`] shows it again after a
//!   reload or on another server). The bank's challenge or redirect state
//!   and the granted consent are kept sealed in side storage (`secrets`),
//!   never the password. Banks send the end user back to
//!   [`SyncerConfig::bank_redirect_uri`]`/<connection ID>`.
//! - **Import jobs** ([`Syncer::start_import`], [`Syncer::refresh`]): in the
//!   background, a bounded number at a time, calls to each institution
//!   paced, a bank that is down retried with backoff; accounts, then each
//!   enabled account's transactions page by page (the next page fetched
//!   while the last is appended), all at one `SyncPoint`.
//! - **The schedule** ([`Syncer::run`]): resumes unfinished imports after a
//!   restart (each transaction is recorded once, so repeating pages is
//!   safe), refreshes connections on an interval (never more often than
//!   the consent's `frequency_per_day`), retries `REFRESH_DELAYED` ones at
//!   their `next_try_at`, and expires consents at their `expires_at`. What
//!   is due comes from a [`SyncIndex`] the read models keep.
//!
//! # Not (yet) done
//!
//! The connector reports no removed transactions, so `removed` is always
//! empty; a resumed import's `transactions_recorded` leaves out what the
//! interrupted run recorded after its last progress (the transactions
//! themselves are recorded once either way).
//!
//! # Several servers
//!
//! On one PostgreSQL store, only one server should run [`Syncer::run`]
//! (elected like the NATS relay, by advisory lock); the others still serve
//! the sign-in steps and on-demand imports. Every command the syncer sends
//! is safe to repeat (a second start, progress, success or expiry writes
//! nothing), so an overlap at a change of leader costs calls to the bank,
//! not data.

mod clock;
mod convert;
mod error;
mod import;
mod index;
mod limits;
mod schedule;
mod secrets;
mod signin;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paycore_bank_connector::{BankConnector, Institution};
use paycore_domain::aggregation_connection::AggregationConnection;
use paycore_domain::aggregation_import::AggregationImport;
use paycore_domain::{
    AggregationConnectionId, AggregationImportId, Command, CommandEnvelope, ProjectId, StreamRef, Timestamp,
};
use paycore_engine::{CommandMeta, Engine, EngineError, Executed};
use paycore_sidestore::{Blobs, VaultKey};
use tokio::sync::{Notify, Semaphore, watch};

pub use clock::{Clock, SystemClock};
pub use error::SyncError;
pub use index::{DueConnection, IndexError, SyncIndex};
pub use limits::Backoff;
pub use schedule::TickReport;
pub use secrets::{NAMESPACE as SECRETS_NAMESPACE, SecretError};
pub use signin::SignInStep;

/// The actor recorded with every command the syncer sends.
pub const ACTOR: &str = "aggregation sync";

/// Tuning of the syncer.
#[derive(Clone, Debug)]
pub struct SyncerConfig {
    /// Import jobs running at once.
    pub max_concurrent_imports: usize,
    /// Jobs started or waiting at once; the schedule starts no more until
    /// some finish (what is not started stays due in the index).
    pub max_queued_imports: usize,
    /// Calls a second to one institution (0: no limit).
    pub bank_calls_per_second: u32,
    /// How a bank that is down is retried within a job.
    pub backoff: Backoff,
    /// A connected connection is refreshed this long after its last sync
    /// (or later: never more often than its consent's `frequency_per_day`).
    pub refresh_interval: Duration,
    /// The schedule looks again at least this often, whatever the index
    /// said was next.
    pub recheck_interval: Duration,
    /// The least time between two looks (an index that lags must not make
    /// the schedule spin).
    pub min_pause: Duration,
    /// When the bank stayed down through every retry and said nothing of
    /// when to come back: the next try.
    pub bank_down_delay: Duration,
    /// After an import failed for another reason: the next try.
    pub failure_delay: Duration,
    /// Where banks send the end user back after a redirect; the
    /// connection's ID is appended as a last path segment.
    pub bank_redirect_uri: String,
    /// Connections asked of the index per look.
    pub due_batch: usize,
}

impl Default for SyncerConfig {
    fn default() -> Self {
        Self {
            max_concurrent_imports: 4,
            max_queued_imports: 64,
            bank_calls_per_second: 20,
            backoff: Backoff::default(),
            refresh_interval: Duration::from_secs(6 * 3600),
            recheck_interval: Duration::from_secs(300),
            min_pause: Duration::from_secs(1),
            bank_down_delay: Duration::from_secs(15 * 60),
            failure_delay: Duration::from_secs(3600),
            bank_redirect_uri: "http://localhost:8090/connect/callback".into(),
            due_batch: 256,
        }
    }
}

/// What a syncer is made of.
#[derive(Debug)]
pub struct SyncerParts {
    pub engine: Engine,
    pub bank: Arc<dyn BankConnector>,
    pub clock: Arc<dyn Clock>,
    pub index: Arc<dyn SyncIndex>,
    /// Side storage for the sealed sign-in steps and consents.
    pub blobs: Arc<dyn Blobs>,
    /// The deployment's vault key; the sealing key derives from it under a
    /// label of its own.
    pub vault_key: VaultKey,
    pub config: SyncerConfig,
}

/// Drives connections: sign-in steps, import jobs, the schedule. Cheap to
/// clone (every clone is the same syncer).
#[derive(Clone, Debug)]
pub struct Syncer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    bank: Arc<dyn BankConnector>,
    clock: Arc<dyn Clock>,
    index: Arc<dyn SyncIndex>,
    secrets: secrets::Secrets,
    config: SyncerConfig,
    limiter: limits::RateLimiter,
    permits: Arc<Semaphore>,
    /// The connections this syncer runs (or queued) an import for: at most
    /// `max_queued_imports` from the schedule, plus those started on demand.
    running: Mutex<HashMap<AggregationConnectionId, AggregationImportId>>,
    /// Jobs started and not finished.
    jobs: watch::Sender<usize>,
    kick: Notify,
}

impl Syncer {
    pub fn new(parts: SyncerParts) -> Self {
        let config = parts.config;
        Self {
            inner: Arc::new(Inner {
                secrets: secrets::Secrets::new(&parts.vault_key, parts.blobs),
                limiter: limits::RateLimiter::new(config.bank_calls_per_second),
                permits: Arc::new(Semaphore::new(config.max_concurrent_imports.max(1))),
                running: Mutex::new(HashMap::new()),
                jobs: watch::channel(0).0,
                kick: Notify::new(),
                engine: parts.engine,
                bank: parts.bank,
                clock: parts.clock,
                index: parts.index,
                config,
            }),
        }
    }

    /// Wakes the schedule to look at what is due now.
    pub fn kick(&self) {
        self.inner.kick.notify_one();
    }

    /// Returns once no import job of this syncer is running or waiting.
    pub async fn wait_idle(&self) {
        let mut jobs = self.inner.jobs.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = jobs.wait_for(|n| *n == 0).await;
    }

    /// Import jobs of this syncer running or waiting for a slot.
    pub fn jobs(&self) -> usize {
        *self.inner.jobs.borrow()
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Sends one command as the syncer, retrying while the engine is
    /// overloaded (a burst of jobs must not fail an import).
    async fn exec(
        &self,
        project: ProjectId,
        now: Timestamp,
        command: Command,
    ) -> Result<Executed, EngineError> {
        let mut wait = Duration::from_millis(20);
        loop {
            let envelope = CommandEnvelope {
                project_id: project,
                now,
                idempotency: None,
                command: command.clone(),
            };
            let meta = CommandMeta {
                actor: Some(ACTOR.into()),
                correlation_id: None,
                trace: None,
            };
            match self.inner.engine.execute_with(envelope, meta).await {
                Err(EngineError::Overloaded) if wait < Duration::from_secs(5) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
    }

    /// A connection of `project` that is not deleted.
    async fn connection(
        &self,
        project: ProjectId,
        id: AggregationConnectionId,
    ) -> Result<AggregationConnection, SyncError> {
        let state = self
            .inner
            .engine
            .load(&StreamRef::AggregationConnection(id))
            .await?;
        state
            .as_aggregation_connection()
            .filter(|c| c.project_id == project && !c.is_deleted())
            .cloned()
            .ok_or(SyncError::ConnectionNotFound(id))
    }

    async fn import_state(
        &self,
        project: ProjectId,
        id: AggregationImportId,
    ) -> Result<AggregationImport, SyncError> {
        let state = self.inner.engine.load(&StreamRef::AggregationImport(id)).await?;
        state
            .as_aggregation_import()
            .filter(|i| i.project_id == project)
            .cloned()
            .ok_or(SyncError::ImportNotFound(id))
    }

    /// The connector's institution of a connection.
    async fn institution(&self, connection: &AggregationConnection) -> Result<Institution, SyncError> {
        let wrong = || SyncError::WrongStep {
            connection: connection.id,
            status: connection.status.name(),
            expected: "an institution chosen first",
        };
        let id = connection.institution_id.as_ref().ok_or_else(wrong)?;
        let catalogue = self
            .inner
            .bank
            .institutions()
            .await
            .map_err(SyncError::Connector)?;
        catalogue
            .into_iter()
            .find(|institution| institution.id.as_str() == id.as_str())
            .ok_or_else(|| {
                SyncError::Connector(paycore_bank_connector::ConnectorError::UnknownInstitution(
                    id.to_string(),
                ))
            })
    }

    /// Deletes a connection (terminal) and the sealed entries kept for it:
    /// its consent and any sign-in step waiting.
    pub async fn delete_connection(
        &self,
        project: ProjectId,
        id: AggregationConnectionId,
    ) -> Result<(), SyncError> {
        use paycore_domain::aggregation_connection::AggregationConnectionCommand;
        let connection = self.connection(project, id).await?;
        // The entries first: a crash after leaves a deleted connection, not
        // a bearer credential nobody will ever delete.
        if let Some(consent) = connection.consent {
            self.inner
                .secrets
                .delete(&secrets::consent_key(id, consent.granted_at))
                .await?;
        }
        self.inner
            .secrets
            .delete(&secrets::step_key(id, connection.status_changed_at))
            .await?;
        let command = AggregationConnectionCommand::DeleteAggregationConnection { id }.into();
        self.exec(project, self.now(), command).await?;
        Ok(())
    }
}
