//! Fresh PostgreSQL schemas for tests, here and in the crates that store
//! beside the event log (feature `testing`): each test gets its own schema,
//! migrated, and dropped again when its guard is dropped, so parallel test
//! processes never collide.
// A test helper's failure is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::migrate;

/// `PAYCORE_TEST_DATABASE_URL`, else the local server.
pub fn database_url() -> String {
    std::env::var("PAYCORE_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A unique schema name (UUID v7: sorts by creation time).
pub fn unique_schema() -> String {
    format!("paycore_test_{}", uuid::Uuid::now_v7().simple())
}

/// Drops its schema (and everything in it) when dropped.
#[derive(Debug)]
pub struct SchemaGuard {
    pub url: String,
    pub schema: String,
}

impl SchemaGuard {
    /// A fresh, migrated schema.
    pub async fn new() -> Self {
        sweep_stale_schemas().await;
        let guard = Self {
            url: database_url(),
            schema: unique_schema(),
        };
        migrate(&guard.url, &guard.schema)
            .await
            .expect("migrate a fresh test schema (is PostgreSQL running? see PAYCORE_TEST_DATABASE_URL)");
        guard
    }

    /// A fresh schema that is NOT migrated (the guard still drops it if
    /// something creates it).
    pub fn unmigrated() -> Self {
        Self {
            url: database_url(),
            schema: unique_schema(),
        }
    }

    /// Runs one SQL batch on a fresh connection.
    pub async fn execute(&self, sql: &str) {
        execute(&self.url, sql).await;
    }
}

/// Drops test and bench schemas left behind more than an hour ago by runs
/// that were killed before their guards ran (once per test process, best
/// effort). Their names end in a UUID v7, whose first 12 hex digits are the
/// creation time in milliseconds.
pub async fn sweep_stale_schemas() {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let sql = r"
        SET lock_timeout = '2s';
        DO $$
        DECLARE s text;
        BEGIN
            FOR s IN
                SELECT nspname FROM pg_namespace
                WHERE nspname ~ '^paycore_(test|bench)_[0-9a-f]{32}$'
                  AND ('x' || lpad(substring(nspname FROM '_([0-9a-f]{12})[0-9a-f]{20}$'), 16, '0'))::bit(64)::bigint
                      < (extract(epoch FROM now()) * 1000)::bigint - 3600000
            LOOP
                EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s);
            END LOOP;
        END
        $$;";
    if let Ok((client, connection)) = connect(&database_url()).await {
        let driver = tokio::spawn(connection);
        if let Err(e) = client.batch_execute(sql).await {
            eprintln!("sweeping stale test schemas: {e}");
        }
        drop(client);
        let _ = driver.await;
    }
}

/// One connection to `url`, with its TLS options as the store reads them.
pub async fn connect(
    url: &str,
) -> Result<
    (
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, crate::connect::TlsStream>,
    ),
    String,
> {
    let endpoint = crate::connect::config(url, std::time::Duration::from_secs(5), Some("paycore-tests"))?;
    endpoint
        .connect()
        .await
        .map_err(|error| crate::error::describe(&error))
}

pub async fn execute(url: &str, sql: &str) {
    let (client, connection) = connect(url).await.expect("connect");
    let driver = tokio::spawn(connection);
    client.batch_execute(sql).await.expect("execute");
    drop(client);
    let _ = driver.await;
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime: use a thread with a runtime of
        // its own for the async client.
        let url = self.url.clone();
        let sql = format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.schema
        );
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let (client, connection) = connect(&url).await.map_err(std::io::Error::other)?;
                let driver = tokio::spawn(connection);
                let result = client.batch_execute(&sql).await.map_err(std::io::Error::other);
                drop(client);
                let _ = driver.await;
                result
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.schema);
        }
    }
}
