#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! The write path under concurrency: exact balances, one effect per
//! idempotency key, the project-wide rule, and recovery from writes of
//! another server. Every scenario runs with the default state cache, with
//! one so small that states are evicted all the time, and with one that
//! holds nothing: what the cache keeps never changes an answer.

use std::sync::Arc;

use paycore_domain::account::AccountCommand;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::{PendingTerms, TransferCommand};
use paycore_domain::{
    AccountId, Aggregate, Command, CommandEnvelope, Currency, DomainError, Environment, IdempotencyKey, Meta,
    Money, ProjectId, Refusal, StreamRef, Timestamp, TransactionId, TransferId,
};
use paycore_engine::{DEFAULT_STATE_CACHE_BYTES, Engine, EngineConfig, EngineError};
use paycore_store::{EventStore, MemoryStore};
use uuid::Uuid;

/// The state cache budgets every scenario runs with: the default, a few
/// states' worth (evicting on nearly every command), and none.
const BUDGETS: [u64; 3] = [DEFAULT_STATE_CACHE_BYTES, 4 << 10, 1];

fn config(state_cache_bytes: u64) -> EngineConfig {
    EngineConfig {
        state_cache_bytes,
        ..EngineConfig::default()
    }
}

/// The cache never holds more than its budget.
fn assert_within_budget(engine: &Engine) {
    let usage = engine.state_cache_usage();
    assert!(usage.bytes <= usage.budget, "{usage:?}");
}

fn new_id() -> Uuid {
    Uuid::now_v7()
}

fn envelope(project_id: ProjectId, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        project_id,
        now: Timestamp::from_micros(1_700_000_000_000_000),
        idempotency: None,
        command,
    }
}

struct Fixture {
    engine: Engine,
    store: Arc<dyn EventStore>,
    project: ProjectId,
}

impl Fixture {
    async fn new(state_cache_bytes: u64) -> Self {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let engine = Engine::start(store.clone(), config(state_cache_bytes));
        let project = ProjectId::from_uuid(new_id());
        let create = ProjectCommand::CreateProject {
            id: project,
            name: "Test".into(),
            environment: Environment::Sandbox,
            meta: Meta::default(),
        }
        .into();
        engine.execute(envelope(project, create)).await.unwrap();
        Self {
            engine,
            store,
            project,
        }
    }

    async fn account(&self, allow_negative_balance: bool, balance: i64) -> AccountId {
        let id = AccountId::from_uuid(new_id());
        let open = AccountCommand::CreateAccount {
            id,
            currency: Currency::EUR,
            customer_id: None,
            allow_negative_balance,
            meta: Meta::default(),
        }
        .into();
        self.engine.execute(envelope(self.project, open)).await.unwrap();
        if balance != 0 {
            self.set_balance(id, balance).await.unwrap();
        }
        id
    }

    async fn set_balance(&self, id: AccountId, amount: i64) -> Result<(), EngineError> {
        let magic = AccountCommand::UpdateAccount {
            id,
            allow_negative_balance: None,
            meta: None,
            balance: Some((
                Money::new(amount, Currency::EUR),
                TransactionId::from_uuid(new_id()),
            )),
        }
        .into();
        self.engine.execute(envelope(self.project, magic)).await.map(drop)
    }

    fn transfer(&self, from: AccountId, to: AccountId, amount: i64) -> CommandEnvelope {
        envelope(
            self.project,
            TransferCommand::CreateTransfer {
                id: TransferId::from_uuid(new_id()),
                source_account_id: from,
                destination_account_id: to,
                value: Money::new(amount, Currency::EUR),
                meta: Meta::default(),
                source_transaction_id: TransactionId::from_uuid(new_id()),
                destination_transaction_id: TransactionId::from_uuid(new_id()),
                pending: None,
            }
            .into(),
        )
    }

    async fn balance(&self, id: AccountId) -> i64 {
        match self.engine.load(&StreamRef::Account(id)).await.unwrap() {
            Aggregate::Account(account) => account.balance.amount,
            other => panic!("not an account: {other:?}"),
        }
    }
}

#[tokio::test]
async fn concurrent_transfers_leave_exact_balances_and_never_overdraw() {
    for budget in BUDGETS {
        concurrent_transfers_leave_exact_balances_and_never_overdraw_with(budget).await;
    }
}

async fn concurrent_transfers_leave_exact_balances_and_never_overdraw_with(budget: u64) {
    let f = Fixture::new(budget).await;
    let a = f.account(false, 1_000).await;
    let b = f.account(false, 1_000).await;
    // 600 transfers of 7 in both directions at once: some must be refused
    // for insufficient funds, and the ones that succeed must add up exactly.
    let attempts: Vec<_> = (0..600)
        .map(|i| {
            let (from, to) = if i % 3 == 0 { (b, a) } else { (a, b) };
            let engine = f.engine.clone();
            let command = f.transfer(from, to, 7);
            tokio::spawn(async move { (from, engine.execute(command).await) })
        })
        .collect();
    let mut net_a = 0;
    for attempt in futures::future::join_all(attempts).await {
        let (from, result) = attempt.unwrap();
        match result {
            Ok(_) => net_a += if from == a { -7 } else { 7 },
            Err(EngineError::Domain(DomainError::Refused {
                refusal: Refusal::InsufficientFunds,
                ..
            })) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(f.balance(a).await, 1_000 + net_a);
    assert_eq!(f.balance(b).await, 1_000 - net_a);
    assert!(f.balance(a).await >= 0 && f.balance(b).await >= 0);
    assert_within_budget(&f.engine);
}

#[tokio::test]
async fn one_idempotency_key_sent_concurrently_has_one_effect() {
    for budget in BUDGETS {
        one_idempotency_key_sent_concurrently_has_one_effect_with(budget).await;
    }
}

async fn one_idempotency_key_sent_concurrently_has_one_effect_with(budget: u64) {
    let f = Fixture::new(budget).await;
    let a = f.account(false, 500).await;
    let b = f.account(false, 0).await;
    let command = f.transfer(a, b, 100);
    let keyed = CommandEnvelope {
        idempotency: Some(IdempotencyKey::new("pay-42", f.project, b"secret", [7; 32], false).unwrap()),
        ..command
    };
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let engine = f.engine.clone();
            let mut keyed = keyed.clone();
            // Each retry carries fresh IDs, as a client's new request would.
            if let Command::Transfer(TransferCommand::CreateTransfer { id, .. }) = &mut keyed.command {
                *id = TransferId::from_uuid(new_id());
            }
            tokio::spawn(async move { engine.execute(keyed).await })
        })
        .collect();
    let mut resources = Vec::new();
    for attempt in futures::future::join_all(attempts).await {
        let executed = attempt.unwrap().unwrap();
        // Retries answer with the original transfer itself, not just its ID.
        assert_eq!(executed.state.as_transfer().map(|t| t.value.amount), Some(100));
        resources.push(executed.resource);
    }
    assert!(
        resources.windows(2).all(|pair| pair[0] == pair[1]),
        "{resources:?}"
    );
    assert_eq!(f.balance(a).await, 400);
    assert_eq!(f.balance(b).await, 100);

    // Same key, other parameters: refused, nothing written.
    let other = CommandEnvelope {
        idempotency: Some(IdempotencyKey::new("pay-42", f.project, b"secret", [8; 32], false).unwrap()),
        ..f.transfer(a, b, 5)
    };
    let before = *f.store.committed().borrow();
    let error = f.engine.execute(other).await.unwrap_err();
    assert!(matches!(
        error,
        EngineError::Domain(DomainError::Refused {
            refusal: Refusal::IdempotencyKeyReused,
            ..
        })
    ));
    assert_eq!(*f.store.committed().borrow(), before);
    assert_within_budget(&f.engine);
}

#[tokio::test]
async fn project_total_stays_non_negative_under_concurrent_magic() {
    for budget in BUDGETS {
        project_total_stays_non_negative_under_concurrent_magic_with(budget).await;
    }
}

async fn project_total_stays_non_negative_under_concurrent_magic_with(budget: u64) {
    let f = Fixture::new(budget).await;
    let funded = f.account(false, 100).await;
    let negatives: Vec<_> = futures::future::join_all((0..4).map(|_| f.account(true, 0))).await;
    // Each tries to go to -60: together they would take the project's
    // EUR total (100) below zero, so at most one may succeed.
    let attempts = negatives.iter().map(|id| f.set_balance(*id, -60));
    let succeeded = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(Result::is_ok)
        .count();
    assert_eq!(succeeded, 1);
    let mut total = f.balance(funded).await;
    for id in &negatives {
        total += f.balance(*id).await;
    }
    assert_eq!(total, 40);
    assert_within_budget(&f.engine);
}

#[tokio::test]
async fn a_write_by_another_server_is_detected_and_the_command_retried() {
    for budget in BUDGETS {
        a_write_by_another_server_is_detected_and_the_command_retried_with(budget).await;
    }
}

async fn a_write_by_another_server_is_detected_and_the_command_retried_with(budget: u64) {
    let f = Fixture::new(budget).await;
    let a = f.account(true, 0).await;
    let b = f.account(false, 0).await;
    // Warm the cache, then let "another server" change `a` behind our back.
    assert_eq!(f.balance(a).await, 0);
    let second = Engine::start(f.store.clone(), config(budget));
    second.execute(f.transfer(a, b, 30)).await.unwrap();

    // Our engine decides on its stale cache, the append conflicts, it
    // reloads and decides again on the real state.
    f.engine.execute(f.transfer(a, b, 20)).await.unwrap();
    assert_eq!(f.balance(a).await, -50);
    // The second engine follows no other writer: it answers from the state
    // it committed (30), or from the log (50) if its cache let that go.
    let seen_by_second = second
        .load(&StreamRef::Account(b))
        .await
        .unwrap()
        .as_account()
        .unwrap()
        .balance
        .amount;
    assert!(matches!(seen_by_second, 30 | 50), "{seen_by_second}");
    if budget == DEFAULT_STATE_CACHE_BYTES {
        assert_eq!(seen_by_second, 30);
    }
    assert_eq!(f.balance(b).await, 50);
    assert_within_budget(&f.engine);
    assert_within_budget(&second);
}

#[tokio::test]
async fn holds_made_by_another_server_are_posted_and_voided_from_a_stale_cache() {
    for budget in BUDGETS {
        holds_made_by_another_server_are_posted_and_voided_from_a_stale_cache_with(budget).await;
    }
}

/// Another server holds funds while this one caches the accounts as they
/// were before: the transfer, loaded from the store, is pending, but the
/// cached accounts show no hold. Posting or voiding it from that state
/// releases more than the accounts hold; the append conflicts, and the
/// command is decided again on the real state.
async fn holds_made_by_another_server_are_posted_and_voided_from_a_stale_cache_with(budget: u64) {
    let f = Fixture::new(budget).await;
    let a = f.account(false, 100).await;
    let b = f.account(false, 0).await;
    // Warm this engine's cache with the accounts before any hold.
    assert_eq!((f.balance(a).await, f.balance(b).await), (100, 0));
    let second = Engine::start(f.store.clone(), config(budget));
    let hold = |amount: i64| {
        let id = TransferId::from_uuid(new_id());
        let mut create = f.transfer(a, b, amount);
        if let Command::Transfer(TransferCommand::CreateTransfer {
            id: chosen, pending, ..
        }) = &mut create.command
        {
            *chosen = id;
            *pending = Some(PendingTerms {
                expires_at: Timestamp::from_micros(1_800_000_000_000_000),
            });
        }
        (id, create)
    };
    let (posted, create) = hold(40);
    second.execute(create).await.unwrap();
    let (voided, create) = hold(25);
    second.execute(create).await.unwrap();

    let post = TransferCommand::PostPendingTransfer {
        id: posted,
        value: Some(Money::new(30, Currency::EUR)),
        source_transaction_id: TransactionId::from_uuid(new_id()),
        destination_transaction_id: TransactionId::from_uuid(new_id()),
    };
    f.engine.execute(envelope(f.project, post.into())).await.unwrap();
    let void = TransferCommand::VoidPendingTransfer { id: voided };
    f.engine.execute(envelope(f.project, void.into())).await.unwrap();

    for (account, balance) in [(a, 70), (b, 30)] {
        let Aggregate::Account(state) = f.engine.load(&StreamRef::Account(account)).await.unwrap() else {
            panic!("not an account");
        };
        assert_eq!(state.balance.amount, balance);
        assert_eq!(
            (state.pending_debits.amount, state.pending_credits.amount),
            (0, 0)
        );
    }
    assert_within_budget(&f.engine);
}

#[tokio::test]
async fn refused_commands_write_nothing() {
    for budget in BUDGETS {
        refused_commands_write_nothing_with(budget).await;
    }
}

async fn refused_commands_write_nothing_with(budget: u64) {
    let f = Fixture::new(budget).await;
    let a = f.account(false, 10).await;
    let b = f.account(false, 0).await;
    let before = *f.store.committed().borrow();
    for command in [f.transfer(a, b, 11), f.transfer(a, a, 1), f.transfer(a, b, 0)] {
        assert!(matches!(
            f.engine.execute(command).await,
            Err(EngineError::Domain(_))
        ));
    }
    assert_eq!(*f.store.committed().borrow(), before);
}

/// A store whose next append fails (after a delay, so that other commands
/// are decided on top of it meanwhile).
#[derive(Debug)]
struct FailingOnce {
    inner: MemoryStore,
    fail_next: std::sync::atomic::AtomicBool,
    /// The next read of a stream panics (a bug under the decider).
    panic_next_read: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl EventStore for FailingOnce {
    async fn append(
        &self,
        request: paycore_store::AppendRequest,
    ) -> Result<paycore_store::AppendResult, paycore_store::StoreError> {
        if self.fail_next.swap(false, std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            return Err(paycore_store::StoreError::Unavailable("disk went away".into()));
        }
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream: &paycore_store::StreamName,
        from: u64,
        direction: paycore_store::ReadDirection,
        max: usize,
    ) -> Result<Vec<paycore_store::RecordedEvent>, paycore_store::StoreError> {
        assert!(
            !self
                .panic_next_read
                .swap(false, std::sync::atomic::Ordering::SeqCst),
            "a read that panics"
        );
        self.inner.read_stream(stream, from, direction, max).await
    }

    async fn read_all(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<paycore_store::RecordedEvent>, paycore_store::StoreError> {
        self.inner.read_all(from, max).await
    }

    async fn stream_version(
        &self,
        stream: &paycore_store::StreamName,
    ) -> Result<Option<u64>, paycore_store::StoreError> {
        self.inner.stream_version(stream).await
    }

    fn committed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.committed()
    }
}

#[tokio::test]
async fn commands_decided_on_top_of_a_failed_append_are_decided_again() {
    for budget in BUDGETS {
        commands_decided_on_top_of_a_failed_append_are_decided_again_with(budget).await;
    }
}

async fn commands_decided_on_top_of_a_failed_append_are_decided_again_with(budget: u64) {
    let failing = Arc::new(FailingOnce {
        inner: MemoryStore::new(),
        fail_next: false.into(),
        panic_next_read: false.into(),
    });
    let store: Arc<dyn EventStore> = failing.clone();
    let engine = Engine::start(store.clone(), config(budget));
    let f = Fixture {
        engine,
        store,
        project: ProjectId::from_uuid(new_id()),
    };
    let create = ProjectCommand::CreateProject {
        id: f.project,
        name: "Test".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    }
    .into();
    f.engine.execute(envelope(f.project, create)).await.unwrap();
    let a = f.account(false, 100).await;
    let b = f.account(false, 0).await;

    failing.fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
    let first = tokio::spawn({
        let engine = f.engine.clone();
        let command = f.transfer(a, b, 60);
        async move { engine.execute(command).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Decided while the first is in flight, on top of its debit (which
    // would leave 40, too little for 50): it must be decided again on the
    // real balance once the first fails.
    let second = f.engine.execute(f.transfer(a, b, 50)).await;
    assert!(matches!(first.await.unwrap(), Err(EngineError::Unavailable(_))));
    second.unwrap();
    assert_eq!(f.balance(a).await, 50);
    assert_eq!(f.balance(b).await, 50);
}

#[tokio::test]
async fn changes_by_another_server_reach_this_servers_cache() {
    for budget in BUDGETS {
        changes_by_another_server_reach_this_servers_cache_with(budget).await;
    }
}

async fn changes_by_another_server_reach_this_servers_cache_with(budget: u64) {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let config = EngineConfig {
        follow_other_writers: true,
        ..config(budget)
    };
    let here = Engine::start(store.clone(), config.clone());
    let there = Engine::start(store.clone(), config);
    let project = ProjectId::from_uuid(new_id());
    let create = ProjectCommand::CreateProject {
        id: project,
        name: "Shared".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    }
    .into();
    here.execute(envelope(project, create)).await.unwrap();
    let key = paycore_domain::ApiKeyId::from_uuid(new_id());
    let create_key = ProjectCommand::CreateApiKey {
        id: key,
        kind: paycore_domain::project::api_key::KeyKind::Secret,
        secret_hash: [3; 32],
    }
    .into();
    here.execute(envelope(project, create_key)).await.unwrap();
    // Cached here, then revoked through the other server.
    let stream = StreamRef::ApiKey(key);
    assert!(
        here.load(&stream)
            .await
            .unwrap()
            .as_api_key()
            .unwrap()
            .revoked_at
            .is_none()
    );
    there
        .execute(envelope(project, ProjectCommand::RevokeApiKey { id: key }.into()))
        .await
        .unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let state = here.load(&stream).await.unwrap();
        if state.as_api_key().unwrap().revoked_at.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revocation never reached this server"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Transfers between many accounts, with readers loading them all the while,
/// under a budget that holds a handful of states: every state is evicted
/// and loaded again over and over, by the decider and by the readers, and
/// none that went stale ever stays in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_accounts_keep_exact_balances_while_evicted_and_read_concurrently() {
    const ACCOUNTS: usize = 24;
    const TRANSFERS: usize = 600;
    // Each read misses and folds the account's whole stream (no snapshots).
    const READS_PER_READER: usize = 500;
    let f = Arc::new(Fixture::new(4 << 10).await);
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        accounts.push(f.account(false, 100).await);
    }
    let readers: Vec<_> = (0..4)
        .map(|reader| {
            let (f, accounts) = (f.clone(), accounts.clone());
            tokio::spawn(async move {
                for read in 0..READS_PER_READER {
                    let balance = f.balance(accounts[(read + reader) % ACCOUNTS]).await;
                    assert!(balance >= 0, "a committed balance is never negative");
                }
            })
        })
        .collect();
    // A fixed spread of pairs and amounts, many of them refused for funds.
    let attempts: Vec<_> = (0..TRANSFERS)
        .map(|i| {
            let from = accounts[(i * 7) % ACCOUNTS];
            let to = accounts[(i * 7 + 1 + i % (ACCOUNTS - 1)) % ACCOUNTS];
            let amount = 1 + (i as i64 * 13) % 40;
            let engine = f.engine.clone();
            let command = f.transfer(from, to, amount);
            tokio::spawn(async move { (from, to, amount, engine.execute(command).await) })
        })
        .collect();
    let mut expected: std::collections::HashMap<AccountId, i64> =
        accounts.iter().map(|id| (*id, 100)).collect();
    let mut refused = 0;
    for attempt in futures::future::join_all(attempts).await {
        let (from, to, amount, result) = attempt.unwrap();
        match result {
            Ok(_) => {
                *expected.get_mut(&from).unwrap() -= amount;
                *expected.get_mut(&to).unwrap() += amount;
            }
            Err(EngineError::Domain(DomainError::Refused {
                refusal: Refusal::InsufficientFunds,
                ..
            })) => refused += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(refused > 0 && refused < TRANSFERS, "{refused} refused");
    for id in &accounts {
        assert_eq!(f.balance(*id).await, expected[id], "balance of {id}");
    }
    // The decider decides on the real balance: all of it can go, not a cent more.
    let (a, b) = (accounts[0], accounts[1]);
    let all = f.balance(a).await;
    if all > 0 {
        f.engine.execute(f.transfer(a, b, all)).await.unwrap();
    }
    assert!(matches!(
        f.engine.execute(f.transfer(a, b, 1)).await,
        Err(EngineError::Domain(DomainError::Refused {
            refusal: Refusal::InsufficientFunds,
            ..
        }))
    ));
    let usage = f.engine.state_cache_usage();
    assert!(usage.bytes <= usage.budget, "{usage:?}");
    assert!(usage.entries < 10, "a few states fit in 4 KiB: {usage:?}");
}

fn wall_clock() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    Timestamp::from_micros(i64::try_from(since.as_micros()).unwrap())
}

/// An idempotency record stays in memory during its 24-hour window and not
/// after it; one that is not in memory still answers from the log.
#[tokio::test]
async fn idempotency_records_leave_memory_when_their_window_ends() {
    let f = Fixture::new(DEFAULT_STATE_CACHE_BYTES).await;
    let a = f.account(false, 1_000).await;
    let b = f.account(false, 0).await;
    let key = |name: &str| IdempotencyKey::new(name, f.project, b"secret", [9; 32], false).unwrap();
    let keyed = |name: &str, now: Timestamp| CommandEnvelope {
        idempotency: Some(key(name)),
        now,
        ..f.transfer(a, b, 100)
    };
    let record = |name: &str| StreamRef::Idempotency(f.project, key(name).stored);

    let now = wall_clock();
    let fresh = f.engine.execute(keyed("fresh", now)).await.unwrap();
    assert!(f.engine.holds_in_memory(&record("fresh")));
    let again = f.engine.execute(keyed("fresh", now)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.resource, fresh.resource);

    // Used 25 hours ago (as the command's clock says): its window is over
    // for the cache, which does not keep it.
    let yesterday = now.plus_seconds(-25 * 60 * 60);
    let old = f.engine.execute(keyed("old", yesterday)).await.unwrap();
    assert!(!f.engine.holds_in_memory(&record("old")));
    // A retry at that same time is still within the window: loaded from
    // the log, it answers with the same transfer and moves nothing.
    let retried = f.engine.execute(keyed("old", yesterday)).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.resource, old.resource);
    assert_eq!(f.balance(a).await, 800);
    // Reused now, after the window: a first use again, as before.
    let reused = f.engine.execute(keyed("old", now)).await.unwrap();
    assert!(!reused.replayed);
    assert_ne!(reused.resource, old.resource);
    assert_eq!(f.balance(a).await, 700);
    assert!(f.engine.holds_in_memory(&record("old")), "its new window is open");
}

tokio::task_local! {
    /// Set in the tasks whose store reads [`SlowReads`] delays.
    static SLOW_READER: bool;
}

/// A store whose reads by [`SLOW_READER`] tasks take a while to come back
/// (0.5 to 2.3 ms), so that their loads overlap with the decider's commits,
/// publishes and evictions.
#[derive(Debug)]
struct SlowReads {
    inner: MemoryStore,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl EventStore for SlowReads {
    async fn append(
        &self,
        request: paycore_store::AppendRequest,
    ) -> Result<paycore_store::AppendResult, paycore_store::StoreError> {
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream: &paycore_store::StreamName,
        from: u64,
        direction: paycore_store::ReadDirection,
        max: usize,
    ) -> Result<Vec<paycore_store::RecordedEvent>, paycore_store::StoreError> {
        let events = self.inner.read_stream(stream, from, direction, max).await?;
        if SLOW_READER.try_with(|slow| *slow).unwrap_or(false) {
            let read = self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u64;
            tokio::time::sleep(std::time::Duration::from_micros(500 + read % 7 * 300)).await;
        }
        Ok(events)
    }

    async fn read_all(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<paycore_store::RecordedEvent>, paycore_store::StoreError> {
        self.inner.read_all(from, max).await
    }

    async fn stream_version(
        &self,
        stream: &paycore_store::StreamName,
    ) -> Result<Option<u64>, paycore_store::StoreError> {
        self.inner.stream_version(stream).await
    }

    fn committed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.committed()
    }
}

/// Balances that only grow, read over and over while they grow, under a
/// budget that holds a handful of states, by readers whose loads are slow
/// (so that commits, publishes and evictions happen while they read): no
/// reader ever sees a balance go back, and the last reads see every credit.
/// (The interleavings that could put a stale state back are pinned down one
/// by one in the cache's unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_never_go_back_in_time_while_states_are_evicted() {
    const ACCOUNTS: usize = 6;
    const CREDITS: usize = 480;
    const WRITERS: usize = 4;
    const READS_PER_READER: usize = 2_000;
    let store: Arc<dyn EventStore> = Arc::new(SlowReads {
        inner: MemoryStore::new(),
        reads: 0.into(),
    });
    let f = Arc::new(Fixture {
        engine: Engine::start(store.clone(), config(4 << 10)),
        store,
        project: ProjectId::from_uuid(new_id()),
    });
    let create = ProjectCommand::CreateProject {
        id: f.project,
        name: "Test".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    }
    .into();
    f.engine.execute(envelope(f.project, create)).await.unwrap();
    let source = f.account(true, 0).await;
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        accounts.push(f.account(false, 0).await);
    }
    let readers: Vec<_> = (0..4)
        .map(|reader| {
            let (f, accounts) = (f.clone(), accounts.clone());
            tokio::spawn(SLOW_READER.scope(true, async move {
                let mut last_seen = [0; ACCOUNTS];
                for read in 0..READS_PER_READER {
                    let which = (read + reader) % ACCOUNTS;
                    let balance = f.balance(accounts[which]).await;
                    assert!(
                        balance >= last_seen[which],
                        "account {which} went back from {} to {balance}",
                        last_seen[which]
                    );
                    last_seen[which] = balance;
                }
            }))
        })
        .collect();
    // Writers credit one unit at a time, each waiting for its answer, so
    // that commits keep coming for as long as the readers read.
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (f, accounts) = (f.clone(), accounts.clone());
            tokio::spawn(async move {
                for credit in 0..CREDITS / WRITERS {
                    let to = accounts[(credit * WRITERS + writer) % ACCOUNTS];
                    f.engine.execute(f.transfer(source, to, 1)).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    for reader in readers {
        reader.await.unwrap();
    }
    for id in &accounts {
        assert_eq!(f.balance(*id).await, (CREDITS / ACCOUNTS) as i64);
    }
    assert_within_budget(&f.engine);
}

/// A bug that panics the decider task stops the engine for good and says
/// why on `fatal`, which makes a server stop and exit instead of answering
/// every write UNAVAILABLE while it looks healthy.
#[tokio::test]
async fn a_panic_in_the_decider_stops_the_engine_and_says_why() {
    let failing = Arc::new(FailingOnce {
        inner: MemoryStore::new(),
        fail_next: false.into(),
        panic_next_read: false.into(),
    });
    let store: Arc<dyn EventStore> = failing.clone();
    // Nothing cached: every command reads its streams from the store.
    let engine = Engine::start(store, config(1));
    let project = ProjectId::from_uuid(new_id());
    let create = |id| {
        let command = ProjectCommand::CreateProject {
            id,
            name: "Test".into(),
            environment: Environment::Sandbox,
            meta: Meta::default(),
        };
        envelope(id, command.into())
    };
    engine.execute(create(project)).await.unwrap();
    assert!(engine.fatal().borrow().is_none());

    failing
        .panic_next_read
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut fatal = engine.fatal();
    let answer = engine.execute(create(project)).await;
    assert!(matches!(answer, Err(EngineError::Unavailable(_))), "{answer:?}");
    let reason = tokio::time::timeout(std::time::Duration::from_secs(5), fatal.wait_for(Option::is_some))
        .await
        .expect("the engine reports the panic")
        .unwrap()
        .clone()
        .unwrap();
    assert!(
        reason.contains("decider task panicked: a read that panics"),
        "{reason}"
    );
    let after = engine.execute(create(ProjectId::from_uuid(new_id()))).await;
    assert!(matches!(after, Err(EngineError::Unavailable(_))), "{after:?}");
}
