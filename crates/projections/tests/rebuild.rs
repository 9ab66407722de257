#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! Rebuilding projections from position 0: beside the served ones while
//! writes go on, and offline, resuming after an interruption.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use paycore_projections::{
    ModelStorage, OfflineOptions, OnlineTuning, PageRequest, ReadModels, RebuildError, RebuildState,
};
use paycore_store::{EventStore, MemoryStore};

#[path = "../src/test_support.rs"]
mod test_support;

use test_support::{FUNDING, Ledger, ledger};

fn everything() -> PageRequest {
    PageRequest {
        size: 100,
        token: None,
    }
}

/// What a client of the ledger sees: both balances, transfer and
/// transaction counts (each from its own projection, so a query between two
/// projections' updates may see one a batch ahead of the other).
fn view(read: &ReadModels, ledger: &Ledger) -> (i64, i64, usize, usize) {
    // Both balances from one page: one read of the model, so a transfer is
    // seen entirely or not at all.
    let accounts = read.list_accounts(ledger.project, &everything()).unwrap().items;
    let balance = |id| {
        accounts
            .iter()
            .find(|account| account.id == id)
            .map_or(0, |account| account.balance.amount)
    };
    let transfers = count(|page| read.list_transfers(ledger.project, page).unwrap());
    let transactions = count(|page| read.list_transactions(ledger.project, None, page).unwrap());
    (balance(ledger.a), balance(ledger.b), transfers, transactions)
}

fn count<T>(mut list: impl FnMut(&PageRequest) -> paycore_projections::Page<T>) -> usize {
    let mut request = everything();
    let mut seen = 0;
    loop {
        let page = list(&request);
        seen += page.items.len();
        match page.next_token {
            Some(token) => request.token = Some(token),
            None => return seen,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_rebuild_is_swapped_in_without_queries_seeing_a_half_built_model() {
    online_rebuild_is_swapped_in_whole(OnlineTuning::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_rebuild_gathering_and_writing_many_batches_is_swapped_in_whole() {
    // Small batches, a budget that writes after every batch (while the next
    // one applies over the changes being written) and a short final gap:
    // the rebuild reads and writes many times before it catches up.
    online_rebuild_is_swapped_in_whole(OnlineTuning {
        read_batch: 200,
        gather_bytes: 1,
        final_gap: 300,
        fold_threads: 3,
    })
    .await;
}

async fn online_rebuild_is_swapped_in_whole(tuning: OnlineTuning) {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(store.clone(), ModelStorage::in_memory())
        .await
        .unwrap();
    let mut ledger = ledger(store.clone(), 2_000).await;
    read.wait_for(ledger.last).await;
    let before_rebuild = ledger.last;

    let names = [
        "accounts".to_owned(),
        "transactions".to_owned(),
        "transfers".to_owned(),
    ];
    let mut progress = read.rebuild_tuned(&names, tuning).unwrap();
    // Writes go on during the rebuild; a reader checks every answer.
    let rebuilding = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (read, rebuilding) = (read.clone(), rebuilding.clone());
        let ledger = Ledger {
            engine: ledger.engine.clone(),
            ..ledger
        };
        tokio::spawn(async move {
            let mut checks = 0;
            let mut before = view(&read, &ledger);
            while rebuilding.load(Ordering::Relaxed) {
                let now = view(&read, &ledger);
                assert_eq!(now.0 + now.1, FUNDING, "money is conserved in every answer");
                assert!(
                    now.2 >= before.2 && now.3 >= before.3,
                    "lists never shrink: {before:?} then {now:?}"
                );
                before = now;
                checks += 1;
                tokio::task::yield_now().await;
            }
            checks
        })
    };
    let mut written = 0;
    while progress.borrow().state == RebuildState::Running {
        ledger.transfer().await;
        written += 1;
        let _ = tokio::time::timeout(std::time::Duration::from_millis(1), progress.changed()).await;
    }
    rebuilding.store(false, Ordering::Relaxed);
    let checks = watcher.await.unwrap();
    assert_eq!(progress.borrow().state, RebuildState::Done);
    assert!(checks > 0 && written > 0);
    // The report counts the last events, applied while the follower
    // waited, and says where the rebuild was swapped in.
    let done = progress.borrow().clone();
    assert!(
        done.position > before_rebuild && done.applied >= done.position,
        "reported swapped in at {} after applying {} events; the log held {} before",
        done.position,
        done.applied,
        before_rebuild + 1
    );

    read.wait_for(ledger.transfer().await).await;
    let fresh = ReadModels::start(store, ModelStorage::in_memory()).await.unwrap();
    assert_eq!(view(&read, &ledger), view(&fresh, &ledger));
    assert_eq!(view(&read, &ledger).2, 2_000 + written + 1);
    assert!(
        read.status()
            .unwrap()
            .iter()
            .all(|status| status.rebuilding.is_none() && status.lag() == 0)
    );
}

#[tokio::test]
async fn rebuild_requests_name_known_projections_once_at_a_time() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let read = ReadModels::start(store.clone(), ModelStorage::in_memory())
        .await
        .unwrap();
    let _ledger = ledger(store, 300).await;
    assert!(matches!(
        read.rebuild(&["balances".to_owned()]),
        Err(RebuildError::UnknownProjection(name)) if name == "balances"
    ));
    assert_eq!(read.rebuild(&[]).err(), Some(RebuildError::NoneChosen));
    let mut running = read.rebuild(&["accounts".to_owned()]).unwrap();
    let second = read.rebuild(&["accounts".to_owned(), "transfers".to_owned()]);
    if running.borrow().state == RebuildState::Running {
        assert_eq!(
            second.err(),
            Some(RebuildError::AlreadyRebuilding(vec!["accounts".to_owned()]))
        );
    }
    running
        .wait_for(|progress| progress.state != RebuildState::Running)
        .await
        .unwrap();
    assert_eq!(running.borrow().state, RebuildState::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_offline_rebuild_resumes_where_it_stopped() {
    // Changes gathered in memory until each synced checkpoint.
    interrupted_offline_rebuild_resumes(OfflineOptions {
        checkpoint_every_events: 1_000,
        read_batch: 250,
        ..OfflineOptions::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_rebuild_writing_many_times_between_checkpoints_resumes_where_it_stopped() {
    // A memory budget so small that changes are written after every batch,
    // unsynced, while the next batch applies over them: interrupted between
    // two such writes, the rerun resumes from the last one that reached the
    // store and still builds what a full replay builds.
    interrupted_offline_rebuild_resumes(OfflineOptions {
        checkpoint_every_events: 1_000,
        read_batch: 100,
        gather_bytes: 1,
        ..OfflineOptions::default()
    })
    .await;
}

async fn interrupted_offline_rebuild_resumes(options: OfflineOptions) {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let ledger = ledger(store.clone(), 1_500).await;
    let head = ledger.last + 1;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = paycore_projections::projections()
        .iter()
        .map(|info| info.name.to_owned())
        .collect();

    // Interrupted once a synced checkpoint is in the model store (like a
    // kill: the future is dropped at its next await).
    let (stop, stopped) = tokio::sync::oneshot::channel::<u64>();
    let mut stop = Some(stop);
    let first =
        paycore_projections::rebuild_offline(store.clone(), dir.path(), &names, &options, |progress| {
            if progress.applied >= 1_000
                && let Some(stop) = stop.take()
            {
                let _ = stop.send(progress.position);
            }
        });
    let stopped_at = tokio::select! {
        done = first => panic!("the rebuild finished before it was interrupted: {done:?}"),
        position = stopped => position.unwrap(),
    };
    assert!(0 < stopped_at && stopped_at < head);

    // The interrupted run's last write may still be finishing on its
    // blocking thread, holding the model store for a moment.
    let summary = loop {
        match paycore_projections::rebuild_offline(store.clone(), dir.path(), &names, &options, |_| {}).await
        {
            Err(error) if error.to_string().contains("already open") => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            done => break done.unwrap(),
        }
    };
    assert_eq!(summary.head, head);
    assert_eq!(
        summary.resumed.len(),
        names.len(),
        "every projection resumed: {:?}",
        summary.resumed
    );
    assert!(
        summary.applied < head,
        "resumed, not replayed: {} of {head}",
        summary.applied
    );

    // The result is what a server would build from the whole log.
    let loaded = ReadModels::start(store.clone(), ModelStorage::at(dir.path().to_owned()))
        .await
        .unwrap();
    let fresh = ReadModels::start(store, ModelStorage::in_memory()).await.unwrap();
    assert_eq!(view(&loaded, &ledger), view(&fresh, &ledger));
    assert_eq!(view(&loaded, &ledger).2, 1_500);
}
