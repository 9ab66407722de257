//! Acknowledged means durable, and a crash exposes no half transfer: kill -9
//! the server in the middle of a burst of transfers, start it again, and every
//! acknowledged transfer is there with both its legs, while the balances are
//! exactly what the transfers that exist add up to. Three crashes, at
//! different moments, on the same data directory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paycore_e2e::{Client, Server, amount, error_reason, pb, test_dir};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;

const ACCOUNTS: usize = 8;
const NEGATIVE_ALLOWED: usize = 2;
const INITIAL: i64 = 1_000_000;
const TASKS: usize = 24;
const CHANNELS: usize = 4;
/// Kill after this many acknowledgements in the round, plus a few milliseconds.
const KILL_AT: [(usize, u64); 3] = [(10, 0), (150, 7), (400, 23)];

#[derive(Default)]
struct Burst {
    acknowledged: Mutex<Vec<pb::Transfer>>,
    count: AtomicUsize,
    killing: AtomicBool,
    unexpected: Mutex<Vec<String>>,
}

fn spawn_burst(
    clients: &[Client],
    accounts: &[String],
    seed: u64,
    burst: &Arc<Burst>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..TASKS)
        .map(|task| {
            let client = clients[task % clients.len()].clone();
            let accounts = accounts.to_vec();
            let burst = burst.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(task as u64));
                while !burst.killing.load(Ordering::SeqCst) {
                    let source = rng.random_range(0..ACCOUNTS);
                    let destination = (source + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                    let value = rng.random_range(1..=5_000);
                    match client
                        .transfer(&accounts[source], &accounts[destination], "EUR", value)
                        .await
                    {
                        Ok(transfer) => {
                            if let Ok(mut acknowledged) = burst.acknowledged.lock() {
                                acknowledged.push(transfer);
                            }
                            burst.count.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(status)
                            if status.code() == Code::FailedPrecondition
                                && error_reason(&status).as_deref() == Some("INSUFFICIENT_FUNDS") => {}
                        Err(status) => {
                            // Once the kill is under way, errors are expected:
                            // the outcome of those requests is unknown.
                            if !burst.killing.load(Ordering::SeqCst)
                                && let Ok(mut unexpected) = burst.unexpected.lock()
                            {
                                unexpected.push(format!("{status:?}"));
                            }
                            return;
                        }
                    }
                }
            })
        })
        .collect()
}

/// Checks everything the restarted server shows against what was
/// acknowledged before the crashes.
async fn check_books(
    client: &Client,
    accounts: &[String],
    initial: &BTreeMap<String, i64>,
    acknowledged: &[pb::Transfer],
    context: &str,
) -> anyhow::Result<()> {
    let transfers = client.all_transfers().await?;
    let by_id: BTreeMap<&str, &pb::Transfer> = transfers.iter().map(|t| (t.id.as_str(), t)).collect();
    assert_eq!(
        by_id.len(),
        transfers.len(),
        "{context}: a transfer is listed twice"
    );

    // Every acknowledged transfer survived, exactly as acknowledged.
    for transfer in acknowledged {
        assert_eq!(
            by_id.get(transfer.id.as_str()).copied(),
            Some(transfer),
            "{context}: acknowledged transfer {} is missing or changed after the crash",
            transfer.id
        );
        let fetched = client
            .transfers
            .clone()
            .get_transfer(pb::GetTransferRequest {
                transfer_id: transfer.id.clone(),
            })
            .await?
            .into_inner();
        assert_eq!(&fetched, transfer, "{context}: GetTransfer {}", transfer.id);
    }

    // Every transfer that exists has both legs, and no leg is orphaned.
    let transactions = client.all_transactions(None).await?;
    let legs: BTreeMap<&str, &pb::Transaction> = transactions.iter().map(|t| (t.id.as_str(), t)).collect();
    for transfer in &transfers {
        let value = amount(&transfer.value);
        for (leg, account, signed, kind) in [
            (
                &transfer.source_transaction_id,
                &transfer.source_account_id,
                -value,
                pb::TransactionType::TransferSource,
            ),
            (
                &transfer.destination_transaction_id,
                &transfer.destination_account_id,
                value,
                pb::TransactionType::TransferDestination,
            ),
        ] {
            let tx = legs
                .get(leg.as_str())
                .unwrap_or_else(|| panic!("{context}: transfer {} lacks its leg {leg}", transfer.id));
            assert_eq!(&tx.account_id, account, "{context}: leg {leg}");
            assert_eq!(amount(&tx.value), signed, "{context}: leg {leg}");
            assert_eq!(tx.r#type(), kind, "{context}: leg {leg}");
            assert_eq!(
                tx.transfer_id.as_deref(),
                Some(transfer.id.as_str()),
                "{context}: leg {leg}"
            );
        }
    }
    for tx in &transactions {
        if let Some(transfer) = &tx.transfer_id {
            assert!(
                by_id.contains_key(transfer.as_str()),
                "{context}: transaction {} belongs to a transfer {transfer} that does not exist",
                tx.id
            );
        }
    }
    let magic = initial.values().filter(|b| **b != 0).count();
    assert_eq!(
        transactions.len(),
        magic + 2 * transfers.len(),
        "{context}: transactions"
    );

    // Balances are what the existing transfers add up to.
    let mut expected = initial.clone();
    for transfer in &transfers {
        let value = amount(&transfer.value);
        *expected
            .get_mut(&transfer.source_account_id)
            .expect("a known account") -= value;
        *expected
            .get_mut(&transfer.destination_account_id)
            .expect("a known account") += value;
    }
    let mut sum = 0;
    for (index, id) in accounts.iter().enumerate() {
        let balance = client.balance(id).await?;
        assert_eq!(balance, expected[id], "{context}: balance of account #{index}");
        if index >= NEGATIVE_ALLOWED {
            assert!(balance >= 0, "{context}: account #{index} is negative: {balance}");
        }
        client.check_transaction_chain(id).await?;
        sum += balance;
    }
    assert_eq!(
        sum,
        initial.values().sum::<i64>(),
        "{context}: money is not conserved"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_transfers_survive_kill_9() -> anyhow::Result<()> {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let client = server.client();
    let mut accounts = Vec::new();
    let mut initial = BTreeMap::new();
    for index in 0..ACCOUNTS {
        let account = client.create_account("EUR", index < NEGATIVE_ALLOWED).await?;
        let balance = if index < NEGATIVE_ALLOWED { 0 } else { INITIAL };
        if balance != 0 {
            client.set_balance(&account.id, "EUR", balance).await?;
        }
        initial.insert(account.id.clone(), balance);
        accounts.push(account.id);
    }

    let mut acknowledged: Vec<pb::Transfer> = Vec::new();
    for (round, (kill_after, extra_ms)) in KILL_AT.into_iter().enumerate() {
        let context = format!("seed {seed}, crash #{round} after {kill_after} acknowledgements");
        let clients: Vec<Client> = (0..CHANNELS).map(|_| server.client()).collect();
        let burst = Arc::new(Burst::default());
        let tasks = spawn_burst(
            &clients,
            &accounts,
            seed.wrapping_add(1_000 * round as u64),
            &burst,
        );

        let deadline = Instant::now() + Duration::from_secs(60);
        while burst.count.load(Ordering::SeqCst) < kill_after {
            assert!(Instant::now() < deadline, "{context}: the burst is too slow");
            let unexpected = burst.unexpected.lock().map(|u| u.clone()).unwrap_or_default();
            assert!(
                unexpected.is_empty(),
                "{context}: errors before the crash: {unexpected:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(extra_ms)).await;
        burst.killing.store(true, Ordering::SeqCst);
        server.kill9();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(30), task).await??;
        }
        let unexpected = burst.unexpected.lock().map(|u| u.clone()).unwrap_or_default();
        assert!(
            unexpected.is_empty(),
            "{context}: errors before the crash: {unexpected:?}"
        );
        let this_round = burst.acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
        assert!(this_round.len() >= kill_after, "{context}");
        eprintln!(
            "{context}: {} transfers acknowledged in this round",
            this_round.len()
        );
        acknowledged.extend(this_round);

        server.start_again();
        let client = server.client();
        // A write returns once the read models have applied it, hence
        // everything the log held before it: the books below are complete.
        // (Whether reads are complete *before* any write is the next test's.)
        client.write_barrier(&context).await?;
        check_books(&client, &accounts, &initial, &acknowledged, &context).await?;
    }

    // The state recovered from the crashes survives a graceful restart as is.
    let client = server.client();
    let before = client.snapshot().await?;
    server.restart();
    let client = server.client();
    assert_eq!(
        client.snapshot().await?,
        before,
        "seed {seed}: a graceful restart changed the state"
    );
    server.stop_ok();
    Ok(())
}

/// After a crash the read models are rebuilt from the log. The server must
/// not answer reads from half-rebuilt models: right after it says it is
/// listening, an acknowledged transfer and the balances are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_right_after_a_crash_restart_see_every_acknowledged_transfer() -> anyhow::Result<()> {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let client = server.client();
    let mut accounts = Vec::new();
    let mut initial = BTreeMap::new();
    for index in 0..ACCOUNTS {
        let account = client.create_account("EUR", index < NEGATIVE_ALLOWED).await?;
        let balance = if index < NEGATIVE_ALLOWED { 0 } else { INITIAL };
        if balance != 0 {
            client.set_balance(&account.id, "EUR", balance).await?;
        }
        initial.insert(account.id.clone(), balance);
        accounts.push(account.id);
    }
    // Enough events that rebuilding the read models takes a while.
    let clients: Vec<Client> = (0..CHANNELS).map(|_| server.client()).collect();
    let burst = Arc::new(Burst::default());
    let tasks = spawn_burst(&clients, &accounts, seed, &burst);
    let deadline = Instant::now() + Duration::from_secs(60);
    while burst.count.load(Ordering::SeqCst) < 2_000 {
        assert!(Instant::now() < deadline, "seed {seed}: the burst is too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    burst.killing.store(true, Ordering::SeqCst);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task).await??;
    }
    let acknowledged = burst.acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    let unexpected = burst.unexpected.lock().map(|u| u.clone()).unwrap_or_default();
    assert!(unexpected.is_empty(), "seed {seed}: {unexpected:?}");
    let last = acknowledged.last().cloned().expect("transfers were acknowledged");
    let mut expected = initial.clone();
    for transfer in &acknowledged {
        let value = amount(&transfer.value);
        *expected
            .get_mut(&transfer.source_account_id)
            .expect("a known account") -= value;
        *expected
            .get_mut(&transfer.destination_account_id)
            .expect("a known account") += value;
    }

    server.kill9();
    server.start_again_without_readiness_check();
    let client = server.client();
    let started = Instant::now();
    let listed = client.all_transfers().await?.len();
    let fetched = client
        .transfers
        .clone()
        .get_transfer(pb::GetTransferRequest {
            transfer_id: last.id.clone(),
        })
        .await;
    let mut balances = BTreeMap::new();
    for id in &accounts {
        balances.insert(id.clone(), client.balance(id).await?);
    }
    let answered_in = started.elapsed();
    // Tell a lag from a loss in the failure message.
    client.write_barrier("after the reads").await?;
    let eventually = client.all_transfers().await?.len();
    assert_eq!(
        (
            listed,
            fetched.as_ref().map(|t| t.get_ref().id.clone()).ok(),
            balances
        ),
        (acknowledged.len(), Some(last.id.clone()), expected),
        "seed {seed}: right after the restart (reads answered within {answered_in:?}) ListTransfers \
         listed {listed} of the {} acknowledged transfers and GetTransfer of the last one answered \
         {fetched:?}; once the read models caught up, {eventually} were listed: the server serves \
         reads before its read models have caught up with the log",
        acknowledged.len()
    );
    Ok(())
}

/// SIGTERM in the middle of a burst: the server finishes what it has
/// started and exits cleanly, and the books are complete and consistent on
/// the next start, straight from the saved read models.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_during_a_burst_keeps_the_books() -> anyhow::Result<()> {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let client = server.client();
    let mut accounts = Vec::new();
    let mut initial = BTreeMap::new();
    for index in 0..ACCOUNTS {
        let account = client.create_account("EUR", index < NEGATIVE_ALLOWED).await?;
        let balance = if index < NEGATIVE_ALLOWED { 0 } else { INITIAL };
        if balance != 0 {
            client.set_balance(&account.id, "EUR", balance).await?;
        }
        initial.insert(account.id.clone(), balance);
        accounts.push(account.id);
    }
    let clients: Vec<Client> = (0..CHANNELS).map(|_| server.client()).collect();
    let burst = Arc::new(Burst::default());
    let tasks = spawn_burst(&clients, &accounts, seed, &burst);
    let deadline = Instant::now() + Duration::from_secs(60);
    while burst.count.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < deadline, "seed {seed}: the burst is too slow");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    burst.killing.store(true, Ordering::SeqCst);
    let stopping = Instant::now();
    server.stop_ok();
    let stopped_in = stopping.elapsed();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task).await??;
    }
    let acknowledged = burst.acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    eprintln!(
        "seed {seed}: stopped in {stopped_in:?} with {} transfers acknowledged",
        acknowledged.len()
    );
    assert!(
        stopped_in < Duration::from_secs(10),
        "seed {seed}: a graceful stop under load took {stopped_in:?}"
    );

    server.start_again();
    let client = server.client();
    // No write before the reads: after a graceful stop the read models were
    // saved, so they are complete from the first request on.
    check_books(
        &client,
        &accounts,
        &initial,
        &acknowledged,
        &format!("seed {seed}"),
    )
    .await?;
    Ok(())
}
