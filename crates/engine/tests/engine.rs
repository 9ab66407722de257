#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! The write path under concurrency: exact balances, one effect per
//! idempotency key, the project-wide rule, and recovery from writes of
//! another server.

use std::sync::Arc;

use paycore_domain::{
    AccountId, Aggregate, Command, CommandEnvelope, Currency, DomainError, Environment, IdempotencyKey, Meta,
    Money, ProjectId, Refusal, StreamRef, Timestamp, TransactionId, TransferId,
};
use paycore_engine::{Engine, EngineConfig, EngineError};
use paycore_store::{EventStore, MemoryStore};
use uuid::Uuid;

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
    async fn new() -> Self {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let engine = Engine::start(store.clone(), EngineConfig::default());
        let project = ProjectId::from_uuid(new_id());
        let create = Command::CreateProject {
            id: project,
            name: "Test".into(),
            environment: Environment::Sandbox,
            meta: Meta::default(),
        };
        engine.execute(envelope(project, create)).await.unwrap();
        Self {
            engine,
            store,
            project,
        }
    }

    async fn account(&self, allow_negative_balance: bool, balance: i64) -> AccountId {
        let id = AccountId::from_uuid(new_id());
        let open = Command::CreateAccount {
            id,
            currency: Currency::EUR,
            customer_id: None,
            allow_negative_balance,
            meta: Meta::default(),
        };
        self.engine.execute(envelope(self.project, open)).await.unwrap();
        if balance != 0 {
            self.set_balance(id, balance).await.unwrap();
        }
        id
    }

    async fn set_balance(&self, id: AccountId, amount: i64) -> Result<(), EngineError> {
        let magic = Command::UpdateAccount {
            id,
            allow_negative_balance: None,
            meta: None,
            balance: Some((
                Money::new(amount, Currency::EUR),
                TransactionId::from_uuid(new_id()),
            )),
        };
        self.engine.execute(envelope(self.project, magic)).await.map(drop)
    }

    fn transfer(&self, from: AccountId, to: AccountId, amount: i64) -> CommandEnvelope {
        envelope(
            self.project,
            Command::CreateTransfer {
                id: TransferId::from_uuid(new_id()),
                source_account_id: from,
                destination_account_id: to,
                value: Money::new(amount, Currency::EUR),
                meta: Meta::default(),
                source_transaction_id: TransactionId::from_uuid(new_id()),
                destination_transaction_id: TransactionId::from_uuid(new_id()),
            },
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
    let f = Fixture::new().await;
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
}

#[tokio::test]
async fn one_idempotency_key_sent_concurrently_has_one_effect() {
    let f = Fixture::new().await;
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
            if let Command::CreateTransfer { id, .. } = &mut keyed.command {
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
}

#[tokio::test]
async fn project_total_stays_non_negative_under_concurrent_magic() {
    let f = Fixture::new().await;
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
}

#[tokio::test]
async fn a_write_by_another_server_is_detected_and_the_command_retried() {
    let f = Fixture::new().await;
    let a = f.account(true, 0).await;
    let b = f.account(false, 0).await;
    // Warm the cache, then let "another server" change `a` behind our back.
    assert_eq!(f.balance(a).await, 0);
    let second = Engine::start(f.store.clone(), EngineConfig::default());
    second.execute(f.transfer(a, b, 30)).await.unwrap();

    // Our engine decides on its stale cache, the append conflicts, it
    // reloads and decides again on the real state.
    f.engine.execute(f.transfer(a, b, 20)).await.unwrap();
    assert_eq!(f.balance(a).await, -50);
    assert_eq!(
        second
            .load(&StreamRef::Account(b))
            .await
            .unwrap()
            .as_account()
            .unwrap()
            .balance
            .amount,
        30
    );
    assert_eq!(f.balance(b).await, 50);
}

#[tokio::test]
async fn refused_commands_write_nothing() {
    let f = Fixture::new().await;
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
    let failing = Arc::new(FailingOnce {
        inner: MemoryStore::new(),
        fail_next: false.into(),
    });
    let store: Arc<dyn EventStore> = failing.clone();
    let engine = Engine::start(store.clone(), EngineConfig::default());
    let f = Fixture {
        engine,
        store,
        project: ProjectId::from_uuid(new_id()),
    };
    let create = Command::CreateProject {
        id: f.project,
        name: "Test".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    };
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
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let config = EngineConfig {
        follow_other_writers: true,
        ..EngineConfig::default()
    };
    let here = Engine::start(store.clone(), config.clone());
    let there = Engine::start(store.clone(), config);
    let project = ProjectId::from_uuid(new_id());
    let create = Command::CreateProject {
        id: project,
        name: "Shared".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    };
    here.execute(envelope(project, create)).await.unwrap();
    let key = paycore_domain::ApiKeyId::from_uuid(new_id());
    let create_key = Command::CreateApiKey {
        id: key,
        kind: paycore_domain::api_key::KeyKind::Secret,
        secret_hash: [3; 32],
    };
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
        .execute(envelope(project, Command::RevokeApiKey { id: key }))
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
