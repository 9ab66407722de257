#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! Read models follow the log, answer lists newest first, and restart where
//! they stopped instead of replaying everything.

use std::sync::Arc;

use paycore_domain::{Currency, Money, ProjectId, TransactionKind};
use paycore_projections::{ModelStorage, Page, PageError, PageRequest, ReadModels};
use paycore_store::{EventStore, MemoryStore};
use uuid::Uuid;

fn page(size: usize) -> PageRequest {
    PageRequest { size, token: None }
}

#[path = "../src/test_support.rs"]
mod test_support;

use test_support::{FUNDING, Ledger, ledger};

#[tokio::test]
async fn models_follow_the_log_with_balances_and_newest_first_lists() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(store.clone(), ModelStorage::in_memory())
        .await
        .unwrap();
    let Ledger {
        project, a, b, last, ..
    } = ledger(store, 25).await;
    read.wait_for(last).await;

    assert_eq!(
        read.account(project, a).unwrap().unwrap().balance,
        Money::new(FUNDING - 25, Currency::EUR)
    );
    assert_eq!(
        read.account(project, b).unwrap().unwrap().balance,
        Money::new(25, Currency::EUR)
    );
    // Newest first, balance_after chained.
    let first = read.list_transactions(project, Some(a), &page(10)).unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.items[0].balance_after.amount, FUNDING - 25);
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
    assert!(read.account(other, a).unwrap().is_none());
    assert!(read.list_accounts(other, &page(10)).unwrap().items.is_empty());
    assert_eq!(
        read.list_transactions(other, Some(a), &page(10)),
        Err(PageError::AccountNotFound)
    );
}

/// Models on disk under `dir/projections` that followed a ledger with
/// `transfers` transfers, closed; with what they answered before closing.
struct Closed {
    path: std::path::PathBuf,
    store: Arc<dyn EventStore>,
    project: ProjectId,
    a: paycore_domain::AccountId,
    last: u64,
    before: paycore_projections::Page<paycore_domain::Transaction>,
    account: Option<paycore_domain::aggregate::Account>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_batches_folded_side_by_side_show_every_transfer() {
    // Started on a history of 4,500 events, the follower reads batches of
    // thousands of events and folds each into its projections side by side.
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let Ledger {
        project, a, b, last, ..
    } = ledger(store.clone(), 1_500).await;
    let read = ReadModels::start(store, ModelStorage::in_memory()).await.unwrap();
    read.wait_for(last).await;

    assert_eq!(
        read.account(project, a).unwrap().unwrap().balance,
        Money::new(FUNDING - 1_500, Currency::EUR)
    );
    assert_eq!(
        read.account(project, b).unwrap().unwrap().balance,
        Money::new(1_500, Currency::EUR)
    );
    // Every leg of `a`, newest first: each balance one more than the one
    // before it in the list, down from the funding.
    let balances: Vec<i64> = every(|request| read.list_transactions(project, Some(a), request).unwrap())
        .iter()
        .map(|item| item.balance_after.amount)
        .collect();
    let expected: Vec<i64> = (FUNDING - 1_500..=FUNDING).collect();
    assert_eq!(balances, expected);
    assert_eq!(
        every(|request| read.list_transfers(project, request).unwrap()).len(),
        1_500
    );
}

/// Every item of a list, its pages read one after the other.
fn every<T>(mut list: impl FnMut(&PageRequest) -> Page<T>) -> Vec<T> {
    let mut items = Vec::new();
    let mut request = page(100);
    loop {
        let listed = list(&request);
        items.extend(listed.items);
        match listed.next_token {
            Some(token) => request.token = Some(token),
            None => return items,
        }
    }
}

async fn closed_models(dir: &std::path::Path, transfers: usize) -> Closed {
    let path = dir.join("projections");
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(store.clone(), ModelStorage::at(path.clone()))
        .await
        .unwrap();
    let Ledger { project, a, last, .. } = ledger(store.clone(), transfers).await;
    read.wait_for(last).await;
    let before = read.list_transactions(project, None, &page(100)).unwrap();
    let account = read.account(project, a).unwrap();
    read.close().await.unwrap();
    Closed {
        path,
        store,
        project,
        a,
        last,
        before,
        account,
    }
}

#[tokio::test]
async fn a_restart_resumes_from_the_models_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let Closed {
        path,
        store,
        project,
        a,
        last,
        before,
        account,
    } = closed_models(dir.path(), 5).await;

    let restarted = ReadModels::start(store.clone(), ModelStorage::at(path.clone()))
        .await
        .unwrap();
    // Opened, not replayed: the checkpoint is the end of the log at once.
    assert_eq!(restarted.checkpoint(), last + 1);
    assert_eq!(
        restarted.list_transactions(project, None, &page(100)).unwrap(),
        before
    );
    assert_eq!(restarted.account(project, a).unwrap(), account);
    restarted.close().await.unwrap();

    // A data directory of an earlier release: its snapshot files are not
    // read (the models are built from the log instead), then removed.
    let upgraded = dir.path().join("upgraded");
    std::fs::create_dir_all(&upgraded).unwrap();
    let legacy = upgraded.join("transactions.snapshot");
    std::fs::write(&legacy, b"PCPJ garbage").unwrap();
    let rebuilt = ReadModels::start(store, ModelStorage::at(upgraded))
        .await
        .unwrap();
    assert_eq!(rebuilt.checkpoint(), last + 1);
    assert_eq!(
        rebuilt.list_transactions(project, None, &page(100)).unwrap(),
        before
    );
    assert!(!legacy.exists());
}

#[tokio::test]
async fn models_of_another_log_are_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projections");
    let first: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(first.clone(), ModelStorage::at(path.clone()))
        .await
        .unwrap();
    let Ledger { project, last, .. } = ledger(first, 3).await;
    read.wait_for(last).await;
    read.close().await.unwrap();

    // Another log, longer than the models' checkpoint: its events differ.
    let other: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let other_project = ledger(other.clone(), 10).await.project;
    let restarted = ReadModels::start(other, ModelStorage::at(path)).await.unwrap();
    assert!(
        restarted.project(project).unwrap().is_none(),
        "models of the other log leaked in"
    );
    assert!(restarted.project(other_project).unwrap().is_some());
}

#[tokio::test]
async fn a_damaged_model_store_is_set_aside_and_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let Closed {
        path,
        store,
        project,
        a,
        last,
        before,
        account,
    } = closed_models(dir.path(), 4).await;

    // The header overwritten (a disk fault, a stray write): redb no longer
    // recognises the file.
    let file = path.join("models.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[..64].fill(0xA5);
    std::fs::write(&file, &bytes).unwrap();
    assert!(
        paycore_projections::stored(&ModelStorage::at(path.clone())).is_err(),
        "the damage is real: redb refuses the file"
    );

    let restarted = ReadModels::start(store, ModelStorage::at(path.clone()))
        .await
        .unwrap();
    restarted.wait_for(last).await;
    assert_eq!(restarted.account(project, a).unwrap(), account);
    assert_eq!(
        restarted.list_transactions(project, None, &page(100)).unwrap(),
        before
    );
    let aside: Vec<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("models.redb.damaged-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the damaged file is kept for inspection: {aside:?}"
    );
}
