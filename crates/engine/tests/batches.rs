#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! Batches of commands in one call: each command answers on its own, in
//! order; a linked chain is all or nothing; a batch that conflicts with
//! another server's write is decided again whole.

use std::sync::Arc;

use paycore_domain::account::AccountCommand;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::{
    AccountId, Aggregate, Command, CommandEnvelope, Currency, DomainError, Environment, Meta, Money,
    ProjectId, Refusal, StreamRef, Timestamp, TransactionId, TransferId,
};
use paycore_engine::{BatchCommand, Engine, EngineConfig, EngineError, Executed};
use paycore_store::{EventStore, MemoryStore};
use uuid::Uuid;

fn envelope(project_id: ProjectId, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        project_id,
        now: Timestamp::from_micros(1_700_000_000_000_000),
        idempotency: None,
        command,
    }
}

struct World {
    engine: Engine,
    store: Arc<dyn EventStore>,
    project: ProjectId,
}

impl World {
    async fn new(state_cache_bytes: u64) -> Self {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let config = EngineConfig {
            state_cache_bytes,
            ..EngineConfig::default()
        };
        let engine = Engine::start(store.clone(), config);
        let project = ProjectId::from_uuid(Uuid::now_v7());
        let create = ProjectCommand::CreateProject {
            id: project,
            name: "Batches".into(),
            environment: Environment::Sandbox,
            meta: Meta::default(),
        };
        engine.execute(envelope(project, create.into())).await.unwrap();
        Self {
            engine,
            store,
            project,
        }
    }

    async fn account(&self, balance: i64) -> AccountId {
        let id = AccountId::from_uuid(Uuid::now_v7());
        let open = AccountCommand::CreateAccount {
            id,
            currency: Currency::EUR,
            customer_id: None,
            allow_negative_balance: false,
            meta: Meta::default(),
        };
        self.engine
            .execute(envelope(self.project, open.into()))
            .await
            .unwrap();
        if balance != 0 {
            let magic = AccountCommand::UpdateAccount {
                id,
                allow_negative_balance: None,
                meta: None,
                balance: Some((
                    Money::new(balance, Currency::EUR),
                    TransactionId::from_uuid(Uuid::now_v7()),
                )),
            };
            self.engine
                .execute(envelope(self.project, magic.into()))
                .await
                .unwrap();
        }
        id
    }

    fn transfer(&self, from: AccountId, to: AccountId, amount: i64) -> CommandEnvelope {
        let command = TransferCommand::CreateTransfer {
            id: TransferId::from_uuid(Uuid::now_v7()),
            source_account_id: from,
            destination_account_id: to,
            value: Money::new(amount, Currency::EUR),
            meta: Meta::default(),
            source_transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
            destination_transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
            pending: None,
        };
        envelope(self.project, command.into())
    }

    async fn balance(&self, id: AccountId) -> i64 {
        match self.engine.load(&StreamRef::Account(id)).await.unwrap() {
            Aggregate::Account(account) => account.balance.amount,
            other => panic!("not an account: {other:?}"),
        }
    }

    async fn run(&self, commands: Vec<(CommandEnvelope, bool)>) -> Vec<Result<Executed, EngineError>> {
        let commands = commands
            .into_iter()
            .map(|(envelope, linked)| BatchCommand {
                linked,
                ..BatchCommand::new(envelope)
            })
            .collect();
        self.engine
            .execute_batch(commands, paycore_engine::CommandMeta::default())
            .await
            .unwrap()
    }

    async fn events(&self) -> u64 {
        *self.store.committed().borrow()
    }
}

fn insufficient(answer: &Result<Executed, EngineError>) -> bool {
    matches!(
        answer,
        Err(EngineError::Domain(DomainError::Refused {
            refusal: Refusal::InsufficientFunds,
            ..
        }))
    )
}

fn chain_failed_at(answer: &Result<Executed, EngineError>, index: usize) -> bool {
    matches!(answer, Err(EngineError::LinkedCommandFailed { failed_index }) if *failed_index == index)
}

/// The budgets: the default cache, and none at all (every command loads).
const BUDGETS: [u64; 2] = [paycore_engine::DEFAULT_STATE_CACHE_BYTES, 1];

#[tokio::test]
async fn each_command_of_a_batch_answers_on_its_own_in_order() {
    for budget in BUDGETS {
        let w = World::new(budget).await;
        let (a, b) = (w.account(100).await, w.account(0).await);
        let answers = w
            .run(vec![
                (w.transfer(a, b, 60), false),
                // Decided on top of the first: only 40 left.
                (w.transfer(a, b, 50), false),
                (w.transfer(a, b, 40), false),
                (w.transfer(b, a, 10), false),
            ])
            .await;
        assert_eq!(answers.len(), 4);
        assert!(answers[0].is_ok());
        assert!(insufficient(&answers[1]), "{:?}", answers[1]);
        assert!(answers[2].is_ok() && answers[3].is_ok());
        // One append: the written commands share the batch's position.
        let positions: Vec<u64> = answers.iter().flatten().map(|e| e.position).collect();
        assert!(positions.windows(2).all(|p| p[0] == p[1]), "{positions:?}");
        assert_eq!((w.balance(a).await, w.balance(b).await), (10, 90));
    }
}

#[tokio::test]
async fn a_linked_chain_with_one_refusal_leaves_no_trace() {
    for budget in BUDGETS {
        let w = World::new(budget).await;
        let (a, b, c) = (w.account(100).await, w.account(0).await, w.account(0).await);
        let before = w.events().await;
        let answers = w
            .run(vec![
                (w.transfer(a, b, 30), true),
                // b has 30 inside the chain: this one moves it on.
                (w.transfer(b, c, 30), true),
                // a has 70 left: refused, and the whole chain with it.
                (w.transfer(a, c, 80), true),
                (w.transfer(c, a, 5), false),
                // Not linked to the chain: goes through on its own.
                (w.transfer(a, c, 1), false),
            ])
            .await;
        assert!(chain_failed_at(&answers[0], 2), "{:?}", answers[0]);
        assert!(chain_failed_at(&answers[1], 2), "{:?}", answers[1]);
        assert!(insufficient(&answers[2]), "{:?}", answers[2]);
        assert!(chain_failed_at(&answers[3], 2), "{:?}", answers[3]);
        assert!(answers[4].is_ok());
        assert_eq!(
            (w.balance(a).await, w.balance(b).await, w.balance(c).await),
            (99, 0, 1)
        );
        // Only the lone transfer was written: its transfer and two legs.
        assert_eq!(w.events().await - before, 3);
        // The states the chain took back are not what later commands see.
        let after = w.run(vec![(w.transfer(a, b, 99), false)]).await;
        assert!(after[0].is_ok(), "{:?}", after[0]);
    }
}

#[tokio::test]
async fn a_linked_chain_that_holds_is_written_whole_and_chains_are_independent() {
    for budget in BUDGETS {
        let w = World::new(budget).await;
        let (a, b) = (w.account(50).await, w.account(0).await);
        let answers = w
            .run(vec![
                (w.transfer(a, b, 20), true),
                (w.transfer(b, a, 20), true),
                (w.transfer(a, b, 50), false),
                // A second chain, broken at its first command.
                (w.transfer(a, b, 1), true),
                (w.transfer(b, a, 1), false),
            ])
            .await;
        assert!(answers[..3].iter().all(Result::is_ok), "{answers:?}");
        assert!(insufficient(&answers[3]), "{:?}", answers[3]);
        assert!(chain_failed_at(&answers[4], 3), "{:?}", answers[4]);
        assert_eq!((w.balance(a).await, w.balance(b).await), (0, 50));
    }
}

#[tokio::test]
async fn a_batch_conflicting_with_another_server_is_decided_again_whole() {
    let w = World::new(paycore_engine::DEFAULT_STATE_CACHE_BYTES).await;
    let (a, b) = (w.account(100).await, w.account(0).await);
    assert_eq!(w.balance(a).await, 100);
    // Another server takes 70 from `a` behind this one's cache.
    let other = Engine::start(w.store.clone(), EngineConfig::default());
    other.execute(w.transfer(a, b, 70)).await.unwrap();
    let answers = w
        .run(vec![(w.transfer(a, b, 20), true), (w.transfer(a, b, 20), false)])
        .await;
    // Decided again on the real 30: the chain's second transfer is refused.
    assert!(chain_failed_at(&answers[0], 1), "{answers:?}");
    assert!(insufficient(&answers[1]), "{answers:?}");
    assert_eq!((w.balance(a).await, w.balance(b).await), (30, 70));
}

#[tokio::test]
async fn an_empty_batch_answers_nothing_and_writes_nothing() {
    let w = World::new(paycore_engine::DEFAULT_STATE_CACHE_BYTES).await;
    let before = w.events().await;
    assert!(w.run(Vec::new()).await.is_empty());
    assert_eq!(w.events().await, before);
}

#[tokio::test]
async fn an_id_chosen_by_the_caller_is_created_once() {
    for budget in BUDGETS {
        let w = World::new(budget).await;
        let (a, b) = (w.account(100).await, w.account(0).await);
        let transfer = w.transfer(a, b, 10);
        let chosen = |envelope: &CommandEnvelope| BatchCommand {
            id_chosen_by_caller: true,
            ..BatchCommand::new(envelope.clone())
        };
        let first = w
            .engine
            .execute_batch(vec![chosen(&transfer), chosen(&transfer)], Default::default())
            .await
            .unwrap();
        assert!(first[0].is_ok(), "{:?}", first[0]);
        let exists = |answer: &Result<Executed, EngineError>| {
            matches!(
                answer,
                Err(EngineError::Domain(DomainError::AlreadyExists { .. }))
            )
        };
        assert!(exists(&first[1]), "{:?}", first[1]);
        // Sent again later (a lost answer): not applied a second time, even
        // once its state has left the cache.
        let again = w
            .engine
            .execute_batch(vec![chosen(&transfer)], Default::default())
            .await
            .unwrap();
        assert!(exists(&again[0]), "{:?}", again[0]);
        assert_eq!((w.balance(a).await, w.balance(b).await), (90, 10));
    }
}

#[tokio::test]
async fn a_batch_larger_than_the_queue_goes_in_when_nothing_waits() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let config = EngineConfig {
        queue_capacity: 8,
        max_batch: 4,
        ..EngineConfig::default()
    };
    let w = World {
        engine: Engine::start(store.clone(), config),
        store,
        project: ProjectId::from_uuid(Uuid::now_v7()),
    };
    let create = ProjectCommand::CreateProject {
        id: w.project,
        name: "Small queue".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    };
    w.engine
        .execute(envelope(w.project, create.into()))
        .await
        .unwrap();
    let (a, b) = (w.account(1_000).await, w.account(0).await);
    // 100 commands: over the queue's 8 and the batch's 4, taken whole.
    let answers = w
        .run((0..100).map(|_| (w.transfer(a, b, 1), false)).collect())
        .await;
    assert!(answers.iter().all(Result::is_ok));
    let positions: Vec<u64> = answers.iter().flatten().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|p| p[0] == p[1]), "one append");
    assert_eq!((w.balance(a).await, w.balance(b).await), (900, 100));
}
