#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! Read models follow the log, answer lists newest first, and restart from
//! their snapshot instead of replaying everything.

use std::sync::Arc;

use paycore_domain::{
    AccountId, Command, CommandEnvelope, Currency, Environment, Meta, Money, ProjectId, Timestamp,
    TransactionId, TransactionKind, TransferId,
};
use paycore_engine::{Engine, EngineConfig};
use paycore_projections::{PageError, PageRequest, ReadModels, SnapshotPolicy};
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

fn page(size: usize) -> PageRequest {
    PageRequest { size, token: None }
}

async fn execute(engine: &Engine, project: ProjectId, command: Command) -> u64 {
    engine.execute(envelope(project, command)).await.unwrap().position
}

/// A sandbox project with two funded EUR accounts and `transfers` transfers
/// of 1 from the first to the second.
async fn ledger(store: Arc<dyn EventStore>, transfers: usize) -> (ProjectId, AccountId, AccountId, u64) {
    let engine = Engine::start(store, EngineConfig::default());
    let project = ProjectId::from_uuid(Uuid::now_v7());
    let create = Command::CreateProject {
        id: project,
        name: "P".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    };
    execute(&engine, project, create).await;
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let id = AccountId::from_uuid(Uuid::now_v7());
        let open = Command::CreateAccount {
            id,
            currency: Currency::EUR,
            customer_id: None,
            allow_negative_balance: false,
            meta: Meta::default(),
        };
        execute(&engine, project, open).await;
        accounts.push(id);
    }
    let fund = Command::UpdateAccount {
        id: accounts[0],
        allow_negative_balance: None,
        meta: None,
        balance: Some((
            Money::new(1_000, Currency::EUR),
            TransactionId::from_uuid(Uuid::now_v7()),
        )),
    };
    let mut last = execute(&engine, project, fund).await;
    for _ in 0..transfers {
        let transfer = Command::CreateTransfer {
            id: TransferId::from_uuid(Uuid::now_v7()),
            source_account_id: accounts[0],
            destination_account_id: accounts[1],
            value: Money::new(1, Currency::EUR),
            meta: Meta::default(),
            source_transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
            destination_transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
        };
        last = execute(&engine, project, transfer).await;
    }
    (project, accounts[0], accounts[1], last)
}

#[tokio::test]
async fn models_follow_the_log_with_balances_and_newest_first_lists() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(store.clone(), SnapshotPolicy::in_memory())
        .await
        .unwrap();
    let (project, a, b, last) = ledger(store, 25).await;
    read.wait_for(last).await;

    assert_eq!(
        read.account(project, a).unwrap().balance,
        Money::new(975, Currency::EUR)
    );
    assert_eq!(
        read.account(project, b).unwrap().balance,
        Money::new(25, Currency::EUR)
    );
    // Newest first, balance_after chained.
    let first = read.list_transactions(project, Some(a), &page(10)).unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.items[0].balance_after.amount, 975);
    assert!(
        first
            .items
            .windows(2)
            .all(|w| w[1].balance_after.amount == w[0].balance_after.amount + 1)
    );
    assert!(matches!(first.items[0].kind, TransactionKind::TransferSource(_)));
    // Walk all pages: 1 magic + 25 transfer legs.
    let (mut seen, mut token) = (first.items.len(), first.next_token);
    while let Some(next) = token {
        let more = read
            .list_transactions(
                project,
                Some(a),
                &PageRequest {
                    size: 10,
                    token: Some(next),
                },
            )
            .unwrap();
        seen += more.items.len();
        token = more.next_token;
    }
    assert_eq!(seen, 26);
    assert_eq!(read.list_transfers(project, &page(100)).unwrap().items.len(), 25);
    assert_eq!(
        read.list_transactions(project, None, &page(100))
            .unwrap()
            .items
            .len(),
        51
    );
    // Another project sees none of it.
    let other = ProjectId::from_uuid(Uuid::now_v7());
    assert!(read.account(other, a).is_none());
    assert!(read.list_accounts(other, &page(10)).unwrap().items.is_empty());
    assert_eq!(
        read.list_transactions(other, Some(a), &page(10)),
        Err(PageError::AccountNotFound)
    );
}

#[tokio::test]
async fn a_restart_resumes_from_the_snapshot_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.snapshot");
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(store.clone(), SnapshotPolicy::at(path.clone()))
        .await
        .unwrap();
    let (project, a, _, last) = ledger(store.clone(), 5).await;
    read.wait_for(last).await;
    read.persist().await.unwrap();
    let before = read.list_transactions(project, None, &page(100)).unwrap();

    let restarted = ReadModels::start(store, SnapshotPolicy::at(path.clone()))
        .await
        .unwrap();
    // Loaded, not replayed: the checkpoint is the end of the log at once.
    assert_eq!(restarted.checkpoint(), last + 1);
    assert_eq!(
        restarted.list_transactions(project, None, &page(100)).unwrap(),
        before
    );
    assert_eq!(restarted.account(project, a), read.account(project, a));

    // A damaged snapshot is ignored and the models are rebuilt from the log.
    std::fs::write(&path, b"PCRM garbage").unwrap();
    let rebuilt = ReadModels::start(
        Arc::new(MemoryStore::new()) as Arc<dyn EventStore>,
        SnapshotPolicy::at(path),
    )
    .await
    .unwrap();
    assert_eq!(rebuilt.checkpoint(), 0);
}

#[tokio::test]
async fn a_snapshot_of_another_log_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.snapshot");
    let first: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(first.clone(), SnapshotPolicy::at(path.clone()))
        .await
        .unwrap();
    let (project, _, _, last) = ledger(first, 3).await;
    read.wait_for(last).await;
    read.persist().await.unwrap();

    // Another log, longer than the snapshot's checkpoint: its events differ.
    let other: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let (other_project, _, _, _) = ledger(other.clone(), 10).await;
    let restarted = ReadModels::start(other, SnapshotPolicy::at(path)).await.unwrap();
    assert!(
        restarted.project(project).is_none(),
        "models of the other log leaked in"
    );
    assert!(restarted.project(other_project).is_some());
}
