//! Many clients moving money between a few accounts at once: every
//! acknowledged transfer happened exactly once, every refused one not at all,
//! money is conserved and no account without the allowance goes negative.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use paycore_e2e::{Client, Server, amount, error_reason, pb, test_dir};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;

const ACCOUNTS: usize = 8;
/// The first accounts allow a negative balance; the others start funded.
const NEGATIVE_ALLOWED: usize = 2;
const INITIAL: i64 = 10_000;
const TASKS: usize = 32;
const TRANSFERS_PER_TASK: usize = 50;

#[derive(Debug, Default)]
struct Outcome {
    acknowledged: Vec<pb::Transfer>,
    insufficient: usize,
    other_errors: Vec<String>,
}

async fn burst(clients: Vec<Client>, accounts: &[String], seed: u64) -> anyhow::Result<Outcome> {
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = clients[task % clients.len()].clone();
        let accounts = accounts.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(task as u64));
            let mut outcome = Outcome::default();
            for _ in 0..TRANSFERS_PER_TASK {
                let source = rng.random_range(0..ACCOUNTS);
                let destination = (source + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                let value = rng.random_range(1..=3_000);
                match client
                    .transfer(&accounts[source], &accounts[destination], "EUR", value)
                    .await
                {
                    Ok(transfer) => outcome.acknowledged.push(transfer),
                    Err(status)
                        if status.code() == Code::FailedPrecondition
                            && error_reason(&status).as_deref() == Some("INSUFFICIENT_FUNDS") =>
                    {
                        assert!(
                            source >= NEGATIVE_ALLOWED,
                            "an account that allows a negative balance was refused: {status:?}"
                        );
                        outcome.insufficient += 1;
                    }
                    Err(status) => outcome.other_errors.push(format!("{status:?}")),
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        let outcome = task.await?;
        total.acknowledged.extend(outcome.acknowledged);
        total.insufficient += outcome.insufficient;
        total.other_errors.extend(outcome.other_errors);
    }
    Ok(total)
}

/// Runs the burst with `channels` connections shared by the tasks and checks
/// the books afterwards.
async fn transfers_add_up(channels: usize) -> anyhow::Result<()> {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let dir = test_dir();
    let server = Server::start(dir.path());
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

    let clients: Vec<Client> = (0..channels).map(|_| server.client()).collect();
    let outcome = burst(clients, &accounts, seed).await?;
    assert!(
        outcome.other_errors.is_empty(),
        "seed {seed}: unexpected errors: {:?}",
        outcome.other_errors
    );
    assert_eq!(
        outcome.acknowledged.len() + outcome.insufficient,
        TASKS * TRANSFERS_PER_TASK
    );
    assert!(
        !outcome.acknowledged.is_empty(),
        "seed {seed}: no transfer went through"
    );
    eprintln!(
        "seed {seed}: {} transfers acknowledged, {} refused for insufficient funds",
        outcome.acknowledged.len(),
        outcome.insufficient
    );

    // Expected balances from the acknowledged transfers alone.
    let mut expected = initial.clone();
    for transfer in &outcome.acknowledged {
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
        assert_eq!(balance, expected[id], "seed {seed}: balance of account #{index}");
        if index >= NEGATIVE_ALLOWED {
            assert!(
                balance >= 0,
                "seed {seed}: account #{index} went negative: {balance}"
            );
        }
        sum += balance;
        // Each account's history adds up to its balance.
        let history = client.check_transaction_chain(id).await?;
        let legs = outcome
            .acknowledged
            .iter()
            .filter(|t| &t.source_account_id == id || &t.destination_account_id == id)
            .count();
        let magic = usize::from(initial[id] != 0);
        assert_eq!(
            history.len(),
            legs + magic,
            "seed {seed}: transactions of account #{index}"
        );
    }
    let initial_sum: i64 = initial.values().sum();
    assert_eq!(sum, initial_sum, "seed {seed}: money was created or destroyed");

    // Exactly the acknowledged transfers exist, as acknowledged.
    let listed = client.all_transfers().await?;
    let acknowledged: BTreeMap<&str, &pb::Transfer> =
        outcome.acknowledged.iter().map(|t| (t.id.as_str(), t)).collect();
    assert_eq!(listed.len(), acknowledged.len(), "seed {seed}: transfers listed");
    for transfer in &listed {
        assert_eq!(
            acknowledged.get(transfer.id.as_str()),
            Some(&transfer),
            "seed {seed}: a listed transfer differs from its acknowledgement"
        );
    }
    // Two legs per transfer, each pointing back at it.
    let transactions = client.all_transactions(None).await?;
    let magic = initial.values().filter(|b| **b != 0).count();
    assert_eq!(transactions.len(), magic + 2 * listed.len());
    let legs: BTreeSet<&str> = transactions
        .iter()
        .filter_map(|t| t.transfer_id.as_deref())
        .collect();
    assert_eq!(legs, acknowledged.keys().copied().collect());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_over_one_channel_add_up() -> anyhow::Result<()> {
    transfers_add_up(1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_over_many_channels_add_up() -> anyhow::Result<()> {
    transfers_add_up(8).await
}

/// The project-wide rule (the sum of a currency's balances stays at or above
/// zero) spans accounts, so it must hold when sandbox debits of many
/// accounts race: with 1000 EUR in the project, at most ten of sixteen
/// concurrent "set to -100" succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_project_total_stays_non_negative_under_concurrent_debits() -> anyhow::Result<()> {
    const DEBTORS: usize = 16;
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let funded = client.create_account("EUR", false).await?;
    client.set_balance(&funded.id, "EUR", 1_000).await?;
    let mut debtors = Vec::new();
    for _ in 0..DEBTORS {
        debtors.push(client.create_account("EUR", true).await?.id);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(DEBTORS));
    let tasks: Vec<_> = debtors
        .iter()
        .map(|id| {
            let (client, id, barrier) = (server.client(), id.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                client.set_balance(&id, "EUR", -100).await
            })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        match task.await? {
            Ok(_) => succeeded += 1,
            Err(status) => {
                assert_eq!(
                    error_reason(&status).as_deref(),
                    Some("PROJECT_BALANCE_NEGATIVE"),
                    "{status:?}"
                );
            }
        }
    }
    assert_eq!(succeeded, 10, "exactly ten debits of 100 fit in 1000");
    let mut total = 0;
    for account in client.all_accounts().await? {
        total += amount(&account.balance);
    }
    assert_eq!(total, 0);
    Ok(())
}

/// Walking a list page by page while transfers keep arriving neither skips
/// nor repeats: the walk returns exactly the transfers that existed when the
/// first page was read, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_stay_consistent_while_transfers_arrive() -> anyhow::Result<()> {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        let account = client.create_account("EUR", true).await?;
        accounts.push(account.id);
    }
    // Something to page through before the burst starts.
    for i in 0..30 {
        client
            .transfer(&accounts[i % ACCOUNTS], &accounts[(i + 1) % ACCOUNTS], "EUR", 1)
            .await?;
    }
    let writers: Vec<Client> = (0..4).map(|_| server.client()).collect();
    let accounts_for_burst = accounts.clone();
    let burst = tokio::spawn(async move { burst(writers, &accounts_for_burst, seed).await });

    let mut walks = Vec::new();
    while !burst.is_finished() {
        let mut walk: Vec<pb::Transfer> = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .transfers
                .clone()
                .list_transfers(pb::ListTransfersRequest {
                    page_size: 7,
                    page_token: token,
                })
                .await?
                .into_inner();
            walk.extend(page.items);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        walks.push(walk);
    }
    let outcome = burst.await??;
    assert!(outcome.other_errors.is_empty(), "{:?}", outcome.other_errors);
    let all = client.all_transfers().await?;
    assert!(walks.len() >= 2, "the burst ended before a second walk");
    for (index, walk) in walks.iter().enumerate() {
        // The walk is the oldest `walk.len()` transfers of the final list, in
        // the same (newest first) order: no gap, no repeat, no reordering.
        let suffix = &all[all.len() - walk.len()..];
        assert!(
            walk.iter().map(|t| &t.id).eq(suffix.iter().map(|t| &t.id)),
            "seed {seed}: walk #{index} ({} transfers) is not the list as it was when it started",
            walk.len()
        );
    }
    Ok(())
}
