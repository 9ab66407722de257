//! The world the syncer's tests run in: an engine on a memory store, a
//! project with a customer and the sandbox's institutions, a clock the
//! tests move, an index built from the log, and a bank connector that
//! injects faults around the sandbox bank.
#![allow(dead_code, clippy::unwrap_used)] // test fixtures: a failure is the test failing

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use paycore_aggregation_sync::{
    Clock, DueConnection, IndexError, SignInStep, SyncIndex, Syncer, SyncerConfig, SyncerParts,
};
use paycore_bank_connector::{self as bank, *};
use paycore_domain::aggregated_account::{AggregatedAccountCommand, TransactionStatus};
use paycore_domain::aggregation_connection::*;
use paycore_domain::aggregation_import::AggregationImport;
use paycore_domain::customer::CustomerCommand;
use paycore_domain::institution::InstitutionCommand;
use paycore_domain::kernel::institution::InstitutionId as DomainInstitution;
use paycore_domain::project::ProjectCommand;
use paycore_domain::*;
use paycore_engine::{Engine, EngineConfig};
use paycore_sidestore::{Blobs, MemoryBlobs, VaultKey};
use paycore_store::{EventStore, MemoryStore};
use tokio::sync::Notify;
use uuid::Uuid;

/// 2026-12-06T12:00:00Z.
pub const T0: i64 = 1_796_558_400_000_000;
pub const SECOND: i64 = 1_000_000;
pub const DAY: i64 = 86_400 * SECOND;
pub const RHEINBANK: &str = "sandbox_de_rheinbank";
pub const WISLA: &str = "sandbox_pl_wisla";

/// A clock the test sets.
#[derive(Debug)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn at(micros: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(micros)))
    }

    pub fn advance(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }

    pub fn set(&self, micros: i64) {
        self.0.store(micros, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(Ordering::SeqCst))
    }
}

/// Time as tokio's (paused) clock moves it, from `T0`.
#[derive(Debug)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: tokio::time::Instant::now(),
        })
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.start.elapsed().as_micros()).unwrap();
        Timestamp::from_micros(T0 + elapsed)
    }
}

/// What the read models will index, rebuilt from the log on `refresh`.
#[derive(Debug, Default)]
pub struct TestIndex {
    rows: Mutex<Rows>,
}

#[derive(Debug, Default)]
struct Rows {
    connections: Vec<AggregationConnection>,
    unfinished: Vec<(ProjectId, AggregationImportId)>,
}

impl TestIndex {
    /// Reads the log and loads the state of every connection and import.
    pub async fn refresh(&self, engine: &Engine) {
        let mut connections = HashSet::new();
        let mut imports = HashSet::new();
        let mut from = 0;
        loop {
            let events = engine.store().read_all(from, 1_000).await.unwrap();
            let Some(last) = events.last() else { break };
            from = last.position + 1;
            for event in &events {
                match event.stream.category() {
                    "aggregationconnection" => {
                        connections.insert(event.stream.id().parse::<AggregationConnectionId>().unwrap());
                    }
                    "aggregationimport" => {
                        imports.insert(event.stream.id().parse::<AggregationImportId>().unwrap());
                    }
                    _ => {}
                }
            }
        }
        let mut rows = Rows::default();
        for id in connections {
            let state = engine.load(&StreamRef::AggregationConnection(id)).await.unwrap();
            if let Some(c) = state.as_aggregation_connection().filter(|c| !c.is_deleted()) {
                rows.connections.push(c.clone());
            }
        }
        for id in imports {
            let state = engine.load(&StreamRef::AggregationImport(id)).await.unwrap();
            if let Some(i) = state.as_aggregation_import().filter(|i| !i.status.is_finished()) {
                rows.unfinished.push((i.project_id, id));
            }
        }
        *self.rows.lock().unwrap() = rows;
    }

    /// Each connection's due times: (refresh after `refresh_after`, retry, expiry).
    fn due_times(c: &AggregationConnection, refresh_after: i64) -> Vec<Timestamp> {
        let mut times = Vec::new();
        match c.status {
            ConnectionStatus::Connected => {
                times.push(Timestamp::from_micros(
                    c.status_changed_at.micros() + refresh_after,
                ));
            }
            ConnectionStatus::RefreshDelayed { next_try_at } => times.push(next_try_at),
            _ => {}
        }
        times.extend(c.consent.map(|consent| consent.expires_at));
        times
    }
}

impl SyncIndex for TestIndex {
    fn unfinished_imports(&self) -> Result<Vec<(ProjectId, AggregationImportId)>, IndexError> {
        Ok(self.rows.lock().unwrap().unfinished.clone())
    }

    fn connections_due(
        &self,
        until: Timestamp,
        connected_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<DueConnection>, IndexError> {
        let rows = self.rows.lock().unwrap();
        let refresh_after = until.micros() - connected_before.micros();
        let mut due: Vec<DueConnection> = rows
            .connections
            .iter()
            .filter_map(|c| {
                let at = Self::due_times(c, refresh_after)
                    .into_iter()
                    .filter(|t| *t <= until)
                    .min()?;
                Some(DueConnection {
                    project_id: c.project_id,
                    connection_id: c.id,
                    due_at: at,
                })
            })
            .collect();
        due.sort_by_key(|d| d.due_at);
        due.truncate(limit);
        Ok(due)
    }

    fn next_due(&self, refresh_after: Duration) -> Result<Option<Timestamp>, IndexError> {
        let refresh_after = i64::try_from(refresh_after.as_micros()).unwrap_or(i64::MAX / 2);
        let rows = self.rows.lock().unwrap();
        Ok(rows
            .connections
            .iter()
            .flat_map(|c| Self::due_times(c, refresh_after))
            .min())
    }
}

/// The sandbox bank with faults: the next `down` data calls answer
/// `BankUnavailable`; with `park_after` set, the transaction page calls
/// after that many park forever (a job stopped mid-way, as by kill -9),
/// `parked` notified.
#[derive(Debug, Default)]
pub struct Faulty {
    pub bank: SandboxBank,
    /// Sign-ins answer `RateLimited` (a minute later).
    pub sign_in_limited: std::sync::atomic::AtomicBool,
    pub down: AtomicU32,
    pub park_after: Option<u32>,
    pub pages: AtomicU32,
    pub parked: Notify,
}

impl Faulty {
    fn fault(&self) -> Result<(), ConnectorError> {
        let down = self.down.load(Ordering::SeqCst);
        if down > 0 {
            self.down.store(down - 1, Ordering::SeqCst);
            return Err(ConnectorError::BankUnavailable { retry_after: None });
        }
        Ok(())
    }

    async fn page(&self) -> Result<(), ConnectorError> {
        let n = self.pages.fetch_add(1, Ordering::SeqCst);
        if self.park_after.is_some_and(|after| n >= after) {
            self.parked.notify_one();
            std::future::pending::<()>().await;
        }
        self.fault()
    }
}

#[async_trait]
impl BankConnector for Faulty {
    async fn institutions(&self) -> Result<Vec<Institution>, ConnectorError> {
        self.bank.institutions().await
    }
    async fn start_sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, ConnectorError> {
        if self.sign_in_limited.load(Ordering::SeqCst) {
            return Ok(SignInOutcome::RateLimited {
                retry_after: request.now + time::Duration::minutes(1),
            });
        }
        self.bank.start_sign_in(request).await
    }
    async fn submit_one_time_code(
        &self,
        challenge: &str,
        code: &str,
        now: time::OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError> {
        self.bank.submit_one_time_code(challenge, code, now).await
    }
    async fn complete_redirect(
        &self,
        callback: &RedirectCallback,
        now: time::OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError> {
        self.bank.complete_redirect(callback, now).await
    }
    async fn poll_sca(
        &self,
        challenge: &str,
        now: time::OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError> {
        self.bank.poll_sca(challenge, now).await
    }
    async fn grant_consent(
        &self,
        session: &Session,
        now: time::OffsetDateTime,
    ) -> Result<bank::Consent, ConnectorError> {
        self.bank.grant_consent(session, now).await
    }
    async fn owners(&self, consent: &bank::Consent, at: SyncPoint) -> Result<Vec<Owner>, ConnectorError> {
        self.fault()?;
        self.bank.owners(consent, at).await
    }
    async fn accounts(&self, consent: &bank::Consent, at: SyncPoint) -> Result<Vec<Account>, ConnectorError> {
        self.fault()?;
        self.bank.accounts(consent, at).await
    }
    async fn transactions(
        &self,
        consent: &bank::Consent,
        account: &bank::AccountId,
        query: &TransactionQuery,
        at: SyncPoint,
    ) -> Result<TransactionPage, ConnectorError> {
        self.page().await?;
        self.bank.transactions(consent, account, query, at).await
    }
    async fn credit_cards(
        &self,
        consent: &bank::Consent,
        at: SyncPoint,
    ) -> Result<Vec<CreditCard>, ConnectorError> {
        self.fault()?;
        self.bank.credit_cards(consent, at).await
    }
    async fn card_transactions(
        &self,
        consent: &bank::Consent,
        card: &bank::CardId,
        query: &TransactionQuery,
        at: SyncPoint,
    ) -> Result<TransactionPage, ConnectorError> {
        self.page().await?;
        self.bank.card_transactions(consent, card, query, at).await
    }
}

pub struct World {
    pub engine: Engine,
    pub clock: Arc<TestClock>,
    pub index: Arc<TestIndex>,
    pub blobs: Arc<dyn Blobs>,
    pub key: VaultKey,
    pub project: ProjectId,
    pub customer: CustomerId,
}

/// Fast retries and no pacing: the tests' banks answer at once.
pub fn test_config() -> SyncerConfig {
    SyncerConfig {
        bank_calls_per_second: 0,
        backoff: paycore_aggregation_sync::Backoff {
            retries: 2,
            base: Duration::from_millis(1),
            max: Duration::from_millis(4),
        },
        ..SyncerConfig::default()
    }
}

impl World {
    pub async fn new() -> Self {
        Self::on(Arc::new(MemoryStore::new())).await
    }

    pub async fn on(store: Arc<dyn EventStore>) -> Self {
        let world = Self {
            engine: Engine::start(store, EngineConfig::default()),
            clock: TestClock::at(T0),
            index: Arc::new(TestIndex::default()),
            blobs: Arc::new(MemoryBlobs::new()),
            key: VaultKey::from_bytes([42; 32]),
            project: ProjectId::from_uuid(Uuid::now_v7()),
            customer: CustomerId::from_uuid(Uuid::now_v7()),
        };
        world
            .exec(ProjectCommand::CreateProject {
                id: world.project,
                name: "Open banking".into(),
                environment: Environment::Sandbox,
                meta: Meta::default(),
            })
            .await;
        world
            .exec(CustomerCommand::CreateCustomer {
                id: world.customer,
                identity: None,
                meta: Meta::default(),
            })
            .await;
        for institution in [RHEINBANK, WISLA] {
            world
                .exec(InstitutionCommand::ActivateInstitution {
                    institution_id: DomainInstitution::parse(institution).unwrap(),
                })
                .await;
        }
        world
    }

    pub fn syncer(&self, bank: Arc<dyn BankConnector>) -> Syncer {
        self.syncer_with(bank, self.clock.clone(), test_config())
    }

    pub fn syncer_with(
        &self,
        bank: Arc<dyn BankConnector>,
        clock: Arc<dyn Clock>,
        config: SyncerConfig,
    ) -> Syncer {
        Syncer::new(SyncerParts {
            engine: self.engine.clone(),
            bank,
            clock,
            index: self.index.clone(),
            blobs: self.blobs.clone(),
            vault_key: self.key.clone(),
            config,
        })
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub async fn exec(&self, command: impl Into<Command>) {
        let command = command.into();
        let name = format!("{command:?}");
        self.engine
            .execute(CommandEnvelope {
                project_id: self.project,
                now: self.now(),
                idempotency: None,
                command,
            })
            .await
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
    }

    /// A connection to `institution` with its sources as the catalogue lists them.
    pub async fn connection(&self, institution: &str) -> AggregationConnectionId {
        let id = AggregationConnectionId::from_uuid(Uuid::now_v7());
        let catalogue = SandboxBank::new().institutions().await.unwrap();
        let sources = catalogue
            .iter()
            .find(|i| i.id.as_str() == institution)
            .unwrap()
            .sources
            .iter()
            .enumerate()
            .map(|(priority, source)| NewSource {
                kind: match source {
                    Source::Psd2 => SourceKind::Psd2Api,
                    Source::Web => SourceKind::Web,
                },
                priority: u8::try_from(priority).unwrap(),
                disabled: false,
            })
            .collect();
        self.exec(AggregationConnectionCommand::CreateAggregationConnection {
            id,
            customer_id: self.customer,
            institution_id: Some(DomainInstitution::parse(institution).unwrap()),
            sources,
            redirect_url: Some("https://client.example/back".into()),
        })
        .await;
        id
    }

    pub async fn state(&self, id: AggregationConnectionId) -> AggregationConnection {
        let state = self
            .engine
            .load(&StreamRef::AggregationConnection(id))
            .await
            .unwrap();
        state.as_aggregation_connection().unwrap().clone()
    }

    pub async fn import(&self, id: AggregationImportId) -> AggregationImport {
        let state = self.engine.load(&StreamRef::AggregationImport(id)).await.unwrap();
        state.as_aggregation_import().unwrap().clone()
    }

    pub async fn account(
        &self,
        id: AggregatedAccountId,
    ) -> paycore_domain::aggregated_account::AggregatedAccount {
        let state = self.engine.load(&StreamRef::AggregatedAccount(id)).await.unwrap();
        state.as_aggregated_account().unwrap().clone()
    }

    /// The end user consents to every account the connection found.
    pub async fn enable_all(&self, connection: AggregationConnectionId) {
        for id in self.state(connection).await.accounts {
            if !self.account(id).await.is_archived() {
                self.exec(AggregatedAccountCommand::EnableAggregatedAccount { id })
                    .await;
            }
        }
    }

    /// Signs `username` in at `institution` with the right password and
    /// waits for the first import.
    pub async fn signed_in(
        &self,
        syncer: &Syncer,
        institution: &str,
        username: &str,
    ) -> AggregationConnectionId {
        let connection = self.connection(institution).await;
        let step = syncer
            .submit_credentials(self.project, connection, username, "pass_good")
            .await
            .unwrap();
        assert!(matches!(step, SignInStep::Connected { .. }), "{step:?}");
        syncer.wait_idle().await;
        connection
    }

    /// Every event of the log, decoded, with its stream.
    pub async fn events(&self) -> Vec<(String, Event)> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let events = self.engine.store().read_all(from, 1_000).await.unwrap();
            let Some(last) = events.last() else { break };
            from = last.position + 1;
            for event in events {
                let decoded = Event::decode(&event.event_type, event.schema_version, &event.payload).unwrap();
                out.push((event.stream.as_str().to_owned(), decoded));
            }
        }
        out
    }

    /// The transactions recorded for a connection's accounts: (booked,
    /// pending, booked ones replacing a pending one), with a check that no
    /// transaction was recorded twice in one status.
    pub async fn recorded(&self, connection: AggregationConnectionId) -> Recorded {
        let accounts: HashSet<String> = self
            .state(connection)
            .await
            .accounts
            .iter()
            .map(|id| StreamRef::AggregatedAccount(*id).name())
            .collect();
        let mut seen = HashSet::new();
        let mut recorded = Recorded::default();
        for (stream, event) in self.events().await {
            let Event::AggregatedTransactionsRecorded(batch) = event else {
                continue;
            };
            if !accounts.contains(&stream) {
                continue;
            }
            recorded.batches += 1;
            for tx in batch.transactions {
                assert!(seen.insert((tx.id, tx.status)), "recorded twice: {:?}", tx.id);
                match tx.status {
                    TransactionStatus::Booked => recorded.booked += 1,
                    TransactionStatus::Pending => recorded.pending += 1,
                }
                if tx.replaces.is_some() {
                    recorded.replacing += 1;
                }
            }
        }
        recorded
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub batches: usize,
    pub booked: usize,
    pub pending: usize,
    pub replacing: usize,
}
