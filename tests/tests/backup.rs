//! `paycore backup` of a running server under load, `paycore restore` into a
//! new data directory, a server and the audit on it; and a damaged backup
//! refused by `backup verify` and `restore`, naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use paycore_e2e::{Server, amount, paycore_bin, test_dir};
use rand::{Rng, SeedableRng};

const ACCOUNTS: usize = 6;
const INITIAL: i64 = 1_000_000;
const TASKS: usize = 8;
/// Transfers acknowledged before the backup starts, at least.
const BEFORE_BACKUP: usize = 150;

fn paycore(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(paycore_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("running the paycore CLI")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A transfer as the load saw it: (id, source, destination, value).
type Sent = (String, String, String, i64);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_every_acknowledged_transfer() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start(&dir.path().join("live"));
    let client = server.client();
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        let account = client.create_account("EUR", true).await?;
        client.set_balance(&account.id, "EUR", INITIAL).await?;
        accounts.push(account.id);
    }

    // Transfers from several clients, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<Sent>::new()));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (client, accounts) = (server.client(), accounts.clone());
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(task as u64);
            while !stop.load(Ordering::SeqCst) {
                let source = rng.random_range(0..ACCOUNTS);
                let destination = (source + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                let value = rng.random_range(1..=500);
                let transfer = client
                    .transfer(&accounts[source], &accounts[destination], "EUR", value)
                    .await?;
                acknowledged
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push((
                        transfer.id,
                        accounts[source].clone(),
                        accounts[destination].clone(),
                        value,
                    ));
            }
            anyhow::Ok(())
        }));
    }
    while acknowledged
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .len()
        < BEFORE_BACKUP
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // Everything acknowledged before the backup starts must be in it.
    let before: BTreeSet<String> = acknowledged
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .map(|sent| sent.0.clone())
        .collect();
    let backup_dir = dir.path().join("backup");
    let data_dir = server.data_dir();
    let dest = backup_dir.clone();
    let taken = tokio::task::spawn_blocking(move || {
        paycore(&data_dir, &["backup", dest.to_str().unwrap_or_default()])
    })
    .await?;
    let during = acknowledged
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .len()
        - before.len();
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await??;
    }
    let taken = ok(taken);
    let events: u64 = taken
        .lines()
        .find_map(|line| line.strip_prefix("position:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no position in {taken}"))?;
    assert!(
        during > 0,
        "no transfer was acknowledged while the backup ran: the test did not overlap"
    );
    let all: BTreeMap<String, Sent> = acknowledged
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .map(|sent| (sent.0.clone(), sent.clone()))
        .collect();
    server.stop_ok();

    // Verified on its own, then restored into a new data directory.
    let verified = ok(paycore(
        &backup_dir,
        &["backup", "verify", backup_dir.to_str().unwrap_or_default()],
    ));
    assert!(verified.contains(&format!("{events} events")), "{verified}");
    let restored_root = dir.path().join("restored");
    let restored_data = restored_root.join("data");
    ok(paycore(
        &restored_data,
        &["restore", backup_dir.to_str().unwrap_or_default()],
    ));

    // The audit passes on exactly the backup's events.
    let audit = paycore(&restored_data, &["audit"]);
    assert!(audit.status.success(), "{}", text(&audit));
    let audit_out = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit_out.contains(&format!("audited {events} events")),
        "{}",
        text(&audit)
    );

    // A server on it: every transfer acknowledged before the backup is
    // there, nothing that was never sent is, and the balances are exactly
    // what the restored transfers make of the initial ones.
    let mut restored = Server::start_existing(&restored_root, server.key(), server.project_id());
    let client = restored.client();
    let transfers = client.all_transfers().await?;
    let restored_ids: BTreeSet<String> = transfers.iter().map(|t| t.id.clone()).collect();
    let missing: Vec<_> = before.difference(&restored_ids).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, missing: {missing:?}"
    );
    let mut expected: BTreeMap<String, i64> = accounts.iter().map(|a| (a.clone(), INITIAL)).collect();
    for transfer in &transfers {
        // A transfer in flight when the load stopped was never acknowledged,
        // but it may have been appended: it must at least be one sent.
        let value = amount(&transfer.value);
        if let Some(sent) = all.get(&transfer.id) {
            assert_eq!(
                (&sent.1, &sent.2, sent.3),
                (
                    &transfer.source_account_id,
                    &transfer.destination_account_id,
                    value
                )
            );
        }
        *expected.entry(transfer.source_account_id.clone()).or_default() -= value;
        *expected
            .entry(transfer.destination_account_id.clone())
            .or_default() += value;
    }
    for account in &accounts {
        assert_eq!(
            client.balance(account).await?,
            expected[account],
            "account {account}"
        );
    }
    eprintln!(
        "backup at {events} events: {} transfers restored, {} acknowledged before it, {} while it ran",
        transfers.len(),
        before.len(),
        during
    );
    restored.stop_ok();
    // And the audit still passes with the read models the server built.
    ok(paycore(&restored_data, &["audit"]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_backup_is_refused_naming_the_file() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start(&dir.path().join("live"));
    let client = server.client();
    let source = client.create_account("EUR", true).await?;
    let destination = client.create_account("EUR", false).await?;
    for value in 1..=20 {
        client.transfer(&source.id, &destination.id, "EUR", value).await?;
    }
    let data_dir = server.data_dir();

    // A server runs: restoring onto its directory is refused.
    let backup_dir = dir.path().join("backup");
    let backup = backup_dir.to_str().unwrap_or_default();
    let refused = paycore(&data_dir, &["restore", backup, "--replace"]);
    assert!(!refused.status.success(), "{}", text(&refused));

    // Without a server, the backup takes the log's lock itself.
    server.stop_ok();
    ok(paycore(&data_dir, &["backup", backup]));
    // It never writes into a directory that holds something.
    let again = paycore(&data_dir, &["backup", backup]);
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        text(&again)
    );
    // A data directory that holds data is refused without --replace.
    let occupied = paycore(&data_dir, &["restore", backup]);
    assert!(!occupied.status.success(), "{}", text(&occupied));
    assert!(
        String::from_utf8_lossy(&occupied.stderr).contains("already holds data"),
        "{}",
        text(&occupied)
    );

    // One flipped byte in a copied segment.
    let segments = backup_dir.join("log").join("segments");
    let segment = std::fs::read_dir(&segments)?
        .next()
        .ok_or_else(|| anyhow::anyhow!("no segment in the backup"))??
        .path();
    let mut bytes = std::fs::read(&segment)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&segment, bytes)?;
    let segment_name = segment.display().to_string();

    let verify = paycore(&data_dir, &["backup", "verify", backup]);
    assert!(!verify.status.success(), "{}", text(&verify));
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains(&segment_name),
        "{}",
        text(&verify)
    );

    let target = dir.path().join("restored");
    let restore = paycore(&target, &["restore", backup]);
    assert!(!restore.status.success(), "{}", text(&restore));
    assert!(
        String::from_utf8_lossy(&restore.stderr).contains(&segment_name),
        "{}",
        text(&restore)
    );
    assert!(!target.exists(), "a refused restore left {}", target.display());
    Ok(())
}
