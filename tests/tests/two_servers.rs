//! Two `paycore serve` processes on one PostgreSQL database: concurrent
//! transfers through both add up exactly, no account is overdrawn, an
//! idempotency key sent to both has one effect, and a key revoked through
//! one server stops working on the other.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use paycore_e2e::{Server, paycore_bin, transfer_request, with_idempotency_key};
use tonic::Code;

/// The database the suite uses: `PAYCORE_TEST_DATABASE_URL`, or the local
/// server the project's CI provides.
fn database_url() -> String {
    std::env::var("PAYCORE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of its own for this test run, dropped at the end.
struct Schema {
    name: String,
}

impl Schema {
    fn create() -> Self {
        let name = format!("paycore_e2e_{}", uuid::Uuid::now_v7().simple());
        let migrated = Command::new(paycore_bin())
            .args(["db", "migrate", "--store", &database_url(), "--pg-schema", &name])
            .output()
            .expect("running paycore db migrate");
        assert!(
            migrated.status.success(),
            "paycore db migrate failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        // Twice is a no-op.
        let again = Command::new(paycore_bin())
            .args(["db", "migrate", "--store", &database_url(), "--pg-schema", &name])
            .output()
            .expect("running paycore db migrate");
        assert!(again.status.success());
        assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));
        Self { name }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &database_url(),
                "-q",
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_database_keep_the_books_exact() {
    let schema = Schema::create();
    let url = database_url();
    let env = [
        ("PAYCORE_STORE", url.as_str()),
        ("PAYCORE_PG_SCHEMA", schema.name.as_str()),
    ];
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = Server::start_with_env(dir_a.path(), &env);
    // The database already has a project: the second server does not make one.
    let mut b = Server::start_with_env(dir_b.path(), &env);
    assert!(
        b.printed_bootstrap().is_none(),
        "the second server bootstrapped again"
    );

    let client_a = a.client();
    let client_b = b.client_with_key(a.key());
    let mut accounts = Vec::new();
    for allow_negative in [false, false, false, true] {
        let account = client_a.create_account("EUR", allow_negative).await.unwrap();
        client_a.set_balance(&account.id, "EUR", 10_000).await.unwrap();
        accounts.push(account.id);
    }

    // 16 tasks per server, each 30 transfers over random pairs.
    let mut tasks = Vec::new();
    for task in 0..32_u64 {
        let client = if task % 2 == 0 {
            a.client()
        } else {
            b.client_with_key(a.key())
        };
        let accounts = accounts.clone();
        tasks.push(tokio::spawn(async move {
            let mut moved: HashMap<String, i64> = HashMap::new();
            let mut seed = task
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            for _ in 0..30 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = (seed >> 33) as usize % accounts.len();
                let to = (from + 1 + (seed >> 40) as usize % (accounts.len() - 1)) % accounts.len();
                let amount = 1 + (seed >> 50) as i64 % 900;
                match client
                    .transfer(&accounts[from], &accounts[to], "EUR", amount)
                    .await
                {
                    Ok(_) => {
                        *moved.entry(accounts[from].clone()).or_default() -= amount;
                        *moved.entry(accounts[to].clone()).or_default() += amount;
                    }
                    Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
                }
            }
            moved
        }));
    }
    let mut expected: HashMap<String, i64> = accounts.iter().map(|id| (id.clone(), 10_000)).collect();
    for task in tasks {
        for (account, delta) in task.await.unwrap() {
            *expected.get_mut(&account).unwrap() += delta;
        }
    }

    // Both servers converge on the exact balances, and no account without
    // the allowance is below zero.
    for client in [&client_a, &client_b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut balances = HashMap::new();
            for id in &accounts {
                balances.insert(id.clone(), client.balance(id).await.unwrap());
            }
            if balances == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "balances {balances:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for (i, id) in accounts.iter().enumerate().take(3) {
        assert!(expected[id] >= 0, "account {i} overdrawn: {}", expected[id]);
    }
    assert_eq!(expected.values().sum::<i64>(), 40_000);
    for id in &accounts {
        client_a.check_transaction_chain(id).await.unwrap();
    }

    // One idempotency key, sent to both servers at once: one transfer.
    let request = transfer_request(&accounts[0], &accounts[1], "EUR", 1);
    let mut sends = Vec::new();
    for i in 0..8 {
        let client = if i % 2 == 0 {
            a.client()
        } else {
            b.client_with_key(a.key())
        };
        let request = request.clone();
        sends.push(tokio::spawn(async move {
            client
                .transfers
                .clone()
                .create_transfer(with_idempotency_key(request, "two-servers-1"))
                .await
                .map(|response| response.into_inner().id)
        }));
    }
    let mut ids = Vec::new();
    for send in sends {
        ids.push(send.await.unwrap().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one key, several transfers: {ids:?}");

    // A key revoked through one server stops working on the other.
    let project = a.project_id().to_owned();
    let key = a.create_key(&project, false);
    let on_b = b.client_with_key(&key);
    on_b.create_account("EUR", false).await.unwrap();
    a.revoke_key(&paycore_e2e::key_id(&key));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match on_b.create_account("EUR", false).await {
            Err(status) if status.code() == Code::Unauthenticated => break,
            _ => assert!(
                Instant::now() < deadline,
                "the revoked key still works on the other server"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.stop_ok();
}

#[test]
fn an_unreachable_database_at_start_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(paycore_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "postgres://postgres@127.0.0.1:1/test",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("running paycore serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot connect to PostgreSQL at 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_server_refuses_an_unmigrated_database_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("e2e_nomig_{}", uuid::Uuid::now_v7().simple());
    let output = Command::new(paycore_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &database_url(),
            "--pg-schema",
            &schema,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("running paycore serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("paycore db migrate"), "{stderr}");
}
