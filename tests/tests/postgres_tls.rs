#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! `paycore` on a PostgreSQL server that speaks TLS (a server of the test's
//! own, certificates made at test time): with `sslmode=verify-full` every
//! connection the server opens is encrypted, and a server whose certificate
//! does not chain to the given CA is refused with the reason.

use std::process::Command;
use std::time::{Duration, Instant};

use paycore_e2e::postgres::VaultKeyFile;
use paycore_e2e::{Server, paycore_bin};
use paycore_store_postgres::local_cluster::LocalCluster;

/// (encrypted, all) sessions of paycore's programs on `cluster`.
fn paycore_sessions(cluster: &LocalCluster) -> (u64, u64) {
    let counts = cluster.psql(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'paycore%'",
    );
    let counts: Vec<u64> = counts.trim().split('|').map(|n| n.parse().unwrap()).collect();
    (counts[0], counts[1])
}

fn migrate(url: &str) -> std::process::Output {
    Command::new(paycore_bin())
        .args(["db", "migrate", "--store", url, "--pg-schema", "paycore"])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgresql_with_verify_full_encrypts_every_connection() {
    let cluster = LocalCluster::start();
    let certs = cluster.enable_tls();
    let url = cluster.url(
        "postgres",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", certs.ca.display()),
    );

    // A CA that did not sign the server's certificate: refused, and why.
    let wrong = cluster.url(
        "postgres",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", certs.other_ca.display()),
    );
    let refused = migrate(&wrong);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");

    let migrated = migrate(&url);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    let key = VaultKeyFile::new();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("PAYCORE_STORE", url.as_str()),
        ("PAYCORE_PG_SCHEMA", "paycore"),
        ("PAYCORE_VAULT_KEY_FILE", key.path()),
    ];
    let server = Server::start_with_env(dir.path(), &env);
    let client = server.client();
    let source = client.create_account("EUR", false).await.unwrap();
    let destination = client.create_account("EUR", false).await.unwrap();
    client.set_balance(&source.id, "EUR", 10_000).await.unwrap();
    for _ in 0..5 {
        client
            .transfer(&source.id, &destination.id, "EUR", 100)
            .await
            .unwrap();
    }
    assert_eq!(client.balance(&destination.id).await.unwrap(), 500);

    // The read-model tables' writer too: wait until it wrote the transfers.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.psql("SELECT count(*) FROM paycore.transfers").trim() != "5" {
        assert!(
            Instant::now() < deadline,
            "the read-model tables were not written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (encrypted, all) = paycore_sessions(&cluster);
    assert!(
        all >= 3,
        "the pool, the listener and the tables' writer at least: {all}"
    );
    assert_eq!(encrypted, all, "every paycore connection is encrypted");
    let writer = cluster.psql(
        "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name LIKE 'paycore read-model writer%'",
    );
    assert_eq!(writer.trim(), "t", "the tables' writer is connected over TLS");
}
