#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! Two `paycore serve` processes on one PostgreSQL database: concurrent
//! transfers through both add up exactly, no account is overdrawn, an
//! idempotency key sent to both has one effect, and a key revoked through
//! one server stops working on the other.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use paycore_e2e::postgres::{Schema, VaultKeyFile, database_url, server_env};
use paycore_e2e::{Server, paycore_bin, transfer_request, with_idempotency_key};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_database_keep_the_books_exact() {
    let schema = Schema::create();
    let url = database_url();
    let key = VaultKeyFile::new();
    let env = server_env(&url, &schema, &key);
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

/// A TCP proxy in front of PostgreSQL that the test can cut and restore, to
/// lose the database under a running server without disturbing anyone else
/// using the machine's PostgreSQL.
struct CuttableProxy {
    port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl CuttableProxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, _) = tokio::sync::watch::channel(true);
        let state = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut cut = state.subscribe();
                if !*cut.borrow() {
                    continue; // dropped: refused while the database is "down"
                }
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { port, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_database_mid_traffic_fails_cleanly_and_recovers() {
    let schema = Schema::create();
    // postgres://user[:password]@host:port/database → the proxy stands in
    // for host:port.
    let database = database_url();
    let (before_host, after_at) = database
        .rsplit_once('@')
        .expect("a postgres:// URL with user@host");
    let (host_port, path) = after_at
        .split_once('/')
        .expect("a postgres:// URL with a database");
    let target = tokio::net::lookup_host(host_port)
        .await
        .expect("resolving the database host")
        .next()
        .expect("an address for the database host");
    let proxy = CuttableProxy::start(target).await;
    let url = format!("{before_host}@127.0.0.1:{}/{path}", proxy.port);
    let key = VaultKeyFile::new();
    let env = server_env(&url, &schema, &key);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &env);
    let client = server.client();
    let a = client.create_account("EUR", false).await.unwrap().id;
    let b = client.create_account("EUR", false).await.unwrap().id;
    client.set_balance(&a, "EUR", 1_000_000).await.unwrap();

    // Traffic before, during and after a 2-second outage.
    let started = Instant::now();
    let mut acknowledged = Vec::new();
    let mut unavailable = 0;
    let mut cut_done = false;
    let mut restored_at = None;
    while started.elapsed() < Duration::from_secs(12) {
        if !cut_done && started.elapsed() > Duration::from_millis(500) {
            proxy.set_up(false);
            cut_done = true;
        }
        if cut_done && restored_at.is_none() && started.elapsed() > Duration::from_millis(2_500) {
            proxy.set_up(true);
            restored_at = Some(Instant::now());
        }
        match client.transfer(&a, &b, "EUR", 1).await {
            Ok(transfer) => {
                acknowledged.push(transfer.id);
                if restored_at.is_some() && acknowledged.len() > 5 && unavailable > 0 {
                    break;
                }
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                unavailable += 1;
            }
        }
    }
    assert!(unavailable > 0, "the outage was not noticed");
    let recovered = restored_at.expect("the database was restored");
    assert!(
        acknowledged.len() > 5,
        "the server did not recover within {:?} of the database's return",
        recovered.elapsed()
    );

    // Every acknowledged transfer is there, each transfer whole (both legs),
    // and the balances are exactly what the listed transfers add up to.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let transfers = client.all_transfers().await.unwrap();
        let listed: std::collections::HashSet<_> = transfers.iter().map(|t| t.id.clone()).collect();
        let moved: i64 = transfers.iter().map(|t| paycore_e2e::amount(&t.value)).sum();
        let (balance_a, balance_b) = (
            client.balance(&a).await.unwrap(),
            client.balance(&b).await.unwrap(),
        );
        if acknowledged.iter().all(|id| listed.contains(id))
            && balance_a == 1_000_000 - moved
            && balance_b == moved
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "books do not add up: {} acknowledged, {} listed, balances {balance_a}/{balance_b}, moved {moved}",
            acknowledged.len(),
            listed.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.check_transaction_chain(&a).await.unwrap();
    client.check_transaction_chain(&b).await.unwrap();
}

/// How many events of `event_type` the schema's log holds.
fn count_events(schema: &Schema, event_type: &str) -> usize {
    let output = Command::new("psql")
        .args([
            &database_url(),
            "-tA",
            "-c",
            &format!(
                "SELECT count(*) FROM {}.events WHERE event_type = '{event_type}'",
                schema.name
            ),
        ])
        .output()
        .expect("running psql");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
}

/// Two servers started at the same moment on one empty database: exactly
/// one sandbox project is created, by one of them; the other either found
/// it already there or lost the race and names the winner's project.
#[test]
fn two_servers_bootstrapping_one_empty_database_create_one_project() {
    let key = VaultKeyFile::new();
    for round in 0..4 {
        let schema = Schema::create();
        let url = database_url();
        let env = server_env(&url, &schema, &key);
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| Server::start_with_env(dir_a.path(), &env));
            let b = scope.spawn(|| Server::start_with_env(dir_b.path(), &env));
            (a.join().unwrap(), b.join().unwrap())
        });
        let printed: Vec<_> = [&a, &b].iter().filter_map(|s| s.printed_bootstrap()).collect();
        assert_eq!(printed.len(), 1, "round {round}: {printed:?}");
        let winner = &printed[0].id;
        let loser = if a.printed_bootstrap().is_some() { &b } else { &a };
        let said = loser.stdout_lines().join("\n");
        if said.contains("another server") {
            assert!(said.contains(winner.as_str()), "round {round}: {said}");
        }
        assert_eq!(count_events(&schema, "ProjectCreated"), 1, "round {round}");
        assert_eq!(
            count_events(&schema, "DeploymentBootstrapped"),
            1,
            "round {round}"
        );
        // The winner's key works on both servers.
        let key = &printed[0].key;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            for server in [&a, &b] {
                let project = server
                    .client_with_key(key)
                    .projects
                    .clone()
                    .get_project(paycore_e2e::pb::GetProjectRequest {})
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(&project.id, winner);
            }
        });
    }
}
