//! Migrations run by paycore itself, and what `connect` refuses.

mod common;

use common::StoreOf;

use std::time::{Duration, Instant};

use common::SchemaGuard;
use paycore_store::StoreError;
use paycore_store_postgres::{LATEST_SCHEMA_VERSION, MigrateError, PgOptions, PgStore, migrate};

async fn count(url: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    let n: i64 = client.query_one(sql, &[]).await.expect("query").get(0);
    drop(client);
    let _ = driver.await;
    n
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let guard = SchemaGuard::unmigrated();
    let first = migrate(&guard.url, &guard.schema).await.expect("first migrate");
    assert_eq!(first.from_version, 0);
    assert_eq!(first.to_version, LATEST_SCHEMA_VERSION);
    assert_eq!(first.applied, (1..=LATEST_SCHEMA_VERSION).collect::<Vec<_>>());
    let second = migrate(&guard.url, &guard.schema).await.expect("second migrate");
    assert_eq!(second.from_version, LATEST_SCHEMA_VERSION);
    assert_eq!(second.to_version, LATEST_SCHEMA_VERSION);
    assert!(second.applied.is_empty());
    let s = &guard.schema;
    assert_eq!(
        count(&guard.url, &format!("SELECT count(*) FROM {s}.schema_migrations")).await,
        i64::from(LATEST_SCHEMA_VERSION)
    );
    assert_eq!(
        count(&guard.url, &format!("SELECT count(*) FROM {s}.log_head")).await,
        1
    );
    // And the store works on it.
    let store = guard.store().await;
    assert_eq!(store.schema(), guard.schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_once() {
    let guard = SchemaGuard::unmigrated();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (url, schema) = (guard.url.clone(), guard.schema.clone());
            tokio::spawn(async move { migrate(&url, &schema).await })
        })
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.expect("task").expect("migrate").applied);
    }
    // Runs interleave per migration (one may apply 1 and another 2), so
    // what counts is that each version was applied by exactly one of them.
    applied.sort_unstable();
    assert_eq!(applied, (1..=LATEST_SCHEMA_VERSION).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_alone() {
    let guard = SchemaGuard::new().await;
    let s = &guard.schema;
    guard
        .execute(&format!(
            "INSERT INTO {s}.schema_migrations (version, name) VALUES (999, 'from the future')"
        ))
        .await;
    match migrate(&guard.url, s).await {
        Err(e @ MigrateError::SchemaTooNew { found: 999, .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("newer than this paycore binary knows"),
                "{message}"
            );
            assert!(message.contains(s.as_str()), "{message}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    match PgStore::connect(&guard.url, common::options(s)).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(
                message.contains("newer than this paycore binary knows"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(
        count(&guard.url, &format!("SELECT count(*) FROM {s}.schema_migrations")).await,
        i64::from(LATEST_SCHEMA_VERSION) + 1
    );
}

#[tokio::test]
async fn connect_refuses_an_unmigrated_schema() {
    let guard = SchemaGuard::unmigrated();
    match PgStore::connect(&guard.url, common::options(&guard.schema)).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("run `paycore db migrate`"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // connect created nothing.
    assert_eq!(
        count(
            &guard.url,
            &format!(
                "SELECT count(*) FROM pg_namespace WHERE nspname = '{}'",
                guard.schema
            )
        )
        .await,
        0
    );
}

#[tokio::test]
async fn invalid_schema_names_are_refused() {
    let url = common::database_url();
    for bad in ["", "Paycore", "a;drop table x", "pg_temp", "1x"] {
        assert!(
            matches!(migrate(&url, bad).await, Err(MigrateError::InvalidSchemaName(_))),
            "{bad:?}"
        );
        assert!(matches!(
            PgStore::connect(&url, PgOptions::with_schema(bad)).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_with_unavailable() {
    // Nothing listens on port 1: refused at once.
    let url = "postgres://postgres@127.0.0.1:1/test";
    let started = Instant::now();
    match PgStore::connect(url, PgOptions::default()).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(
                message.contains("cannot connect to PostgreSQL at 127.0.0.1:1/test"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        migrate(url, "paycore").await,
        Err(MigrateError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));

    // A server that accepts but never answers: the connect timeout applies.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let options = PgOptions {
        connect_timeout: Duration::from_millis(300),
        ..PgOptions::default()
    };
    match PgStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/test"), options).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("cannot connect to PostgreSQL"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    holder.abort();
    // A URL that does not parse.
    assert!(matches!(
        PgStore::connect("postgres://[::1", PgOptions::default()).await,
        Err(StoreError::Unavailable(m)) if m.contains("invalid PostgreSQL URL")
    ));
}

#[tokio::test]
async fn the_events_table_is_append_only() {
    let guard = SchemaGuard::new().await;
    let store = guard.store().await;
    use paycore_store::EventStore;
    store
        .append(paycore_store::conformance::single(
            "s-1",
            paycore_store::ExpectedVersion::NoStream,
            vec![paycore_store::conformance::event("T", "x")],
        ))
        .await
        .expect("append");
    let s = &guard.schema;
    let (client, connection) = tokio_postgres::connect(&guard.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    for sql in [
        format!("UPDATE {s}.events SET payload = 'y'"),
        format!("DELETE FROM {s}.events"),
        format!("TRUNCATE {s}.events"),
    ] {
        let error = client.batch_execute(&sql).await.expect_err(&sql);
        assert!(format!("{error:?}").contains("append-only"), "{error:?}");
    }
    drop(client);
    let _ = driver.await;
    assert_eq!(store.read_all(0, 10).await.expect("read").len(), 1);
}
