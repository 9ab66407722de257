//! TLS to a real PostgreSQL server of the test's own: first without TLS,
//! then with certificates made at test time. Each `sslmode` does what
//! libpq's does, each refusal names its cause, and the store appends and
//! reads over a verified connection.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failure is the test failing

use std::path::Path;
use std::time::Duration;

use paycore_store::conformance::event;
use paycore_store::{AppendRequest, EventStore, ExpectedVersion, StreamName, StreamWrite};
use paycore_store_postgres::local_cluster::{CERT_USER, LocalCluster};
use paycore_store_postgres::support::{SslMode, config, describe};
use paycore_store_postgres::{PgOptions, PgStore, migrate};

/// Whether a session opened with `url` is encrypted, as the server sees it.
async fn encrypted(url: &str) -> Result<bool, String> {
    let endpoint = config(url, Duration::from_secs(5), Some("tls test"))?;
    let (client, connection) = endpoint.connect().await.map_err(|error| describe(&error))?;
    let driver = tokio::spawn(connection);
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|error| describe(&error))?;
    drop(client);
    let _ = driver.await;
    Ok(row.get(0))
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn each_sslmode_means_what_it_means_in_libpq() {
    let cluster = LocalCluster::start();

    // A server without TLS: `require` refuses it, `prefer` and `disable`
    // connect in the clear.
    let refused = encrypted(&cluster.url("postgres", "localhost", "sslmode=require"))
        .await
        .expect_err("require needs TLS");
    assert!(refused.contains("TLS"), "{refused}");
    assert!(
        !encrypted(&cluster.url("postgres", "localhost", ""))
            .await
            .unwrap()
    );
    assert!(
        !encrypted(&cluster.url("postgres", "localhost", "sslmode=disable"))
            .await
            .unwrap()
    );

    let certs = cluster.enable_tls();
    let ca = format!("sslrootcert={}", path(&certs.ca));
    let other_ca = format!("sslrootcert={}", path(&certs.other_ca));

    // Without a mode, TLS whenever the server offers it; `disable` never.
    assert!(
        encrypted(&cluster.url("postgres", "localhost", ""))
            .await
            .unwrap()
    );
    assert!(
        !encrypted(&cluster.url("postgres", "localhost", "sslmode=disable"))
            .await
            .unwrap()
    );
    // `require` encrypts without authenticating the server…
    assert!(
        encrypted(&cluster.url("postgres", "127.0.0.1", "sslmode=require"))
            .await
            .unwrap()
    );
    // …unless given a CA, which it then checks (libpq's rule).
    let error = encrypted(&cluster.url("postgres", "localhost", &format!("sslmode=require&{other_ca}")))
        .await
        .expect_err("signed by another CA");
    assert!(error.contains("UnknownIssuer"), "{error}");

    // `verify-full`: the CA and the host name.
    assert!(
        encrypted(&cluster.url("postgres", "localhost", &format!("sslmode=verify-full&{ca}")))
            .await
            .unwrap()
    );
    let error = encrypted(&cluster.url(
        "postgres",
        "localhost",
        &format!("sslmode=verify-full&{other_ca}"),
    ))
    .await
    .expect_err("signed by another CA");
    assert!(error.contains("UnknownIssuer"), "{error}");
    let error = encrypted(&cluster.url("postgres", "127.0.0.1", &format!("sslmode=verify-full&{ca}")))
        .await
        .expect_err("issued for localhost, not 127.0.0.1");
    assert!(error.contains("not valid for name \"127.0.0.1\""), "{error}");

    // `verify-ca`: the CA only.
    assert!(
        encrypted(&cluster.url("postgres", "127.0.0.1", &format!("sslmode=verify-ca&{ca}")))
            .await
            .unwrap()
    );
    let error = encrypted(&cluster.url("postgres", "127.0.0.1", &format!("sslmode=verify-ca&{other_ca}")))
        .await
        .expect_err("signed by another CA");
    assert!(error.contains("UnknownIssuer"), "{error}");

    // The same options as libpq key=value pairs.
    let pairs = format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{}'",
        cluster.port,
        path(&certs.ca)
    );
    assert!(encrypted(&pairs).await.unwrap());

    // A role that signs in with a client certificate only.
    let with_cert = format!(
        "sslmode=verify-full&{ca}&sslcert={}&sslkey={}",
        path(&certs.client_cert),
        path(&certs.client_key)
    );
    assert!(
        encrypted(&cluster.url(CERT_USER, "localhost", &with_cert))
            .await
            .unwrap()
    );
    let error = encrypted(&cluster.url(CERT_USER, "localhost", &format!("sslmode=verify-full&{ca}")))
        .await
        .expect_err("no client certificate");
    assert!(error.contains("requires a valid client certificate"), "{error}");
}

#[tokio::test]
async fn the_store_appends_and_reads_over_a_verified_connection() {
    let cluster = LocalCluster::start();
    let certs = cluster.enable_tls();
    let url = cluster.url(
        "postgres",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", path(&certs.ca)),
    );
    let endpoint = config(&url, Duration::from_secs(5), None).unwrap();
    assert_eq!(endpoint.ssl_mode(), SslMode::VerifyFull);

    migrate(&url, "paycore").await.expect("migrate over TLS");
    let store = PgStore::connect(&url, PgOptions::default())
        .await
        .expect("open over TLS");
    let stream = StreamName::new("account", "tls");
    store
        .append(AppendRequest {
            writes: vec![StreamWrite {
                stream: stream.clone(),
                expected: ExpectedVersion::NoStream,
                events: vec![event("Opened", &b"over TLS"[..])],
            }],
        })
        .await
        .expect("append over TLS");
    let read = store.read_all(0, 10).await.expect("read over TLS");
    assert_eq!(read.len(), 1);
    assert_eq!(&read[0].payload[..], b"over TLS");

    // Every connection the store holds (pool and listener) is encrypted.
    let sessions = cluster.psql(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'paycore%'",
    );
    let counts: Vec<u64> = sessions.trim().split('|').map(|n| n.parse().unwrap()).collect();
    assert!(counts[1] >= 2, "the pool and the listener: {sessions}");
    assert_eq!(
        counts[0], counts[1],
        "encrypted of all paycore sessions: {sessions}"
    );
}
