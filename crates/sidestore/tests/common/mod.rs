//! Helpers shared by the integration tests: the behaviour every `Blobs`
//! backend must have, and a fresh, migrated PostgreSQL schema per test.

#![allow(dead_code)]

use std::sync::Arc;

use paycore_sidestore::{Blobs, SideStoreError};

/// The contract of `Blobs`, run unchanged against every backend.
pub async fn contract(blobs: &dyn Blobs) -> Result<(), SideStoreError> {
    round_trip(blobs).await?;
    put_is_write_once(blobs).await?;
    delete_is_idempotent(blobs).await?;
    namespaces_are_separate(blobs).await?;
    invalid_keys_are_refused(blobs).await;
    Ok(())
}

async fn round_trip(blobs: &dyn Blobs) -> Result<(), SideStoreError> {
    assert_eq!(blobs.get("files", "absent").await?, None);
    blobs.put("files", "a", b"content of a").await?;
    assert_eq!(
        blobs.get("files", "a").await?.as_deref(),
        Some(&b"content of a"[..])
    );
    blobs.put("files", "empty", b"").await?;
    assert_eq!(blobs.get("files", "empty").await?.as_deref(), Some(&b""[..]));
    let binary: Vec<u8> = (0..=255).collect();
    blobs.put("files", "binary", &binary).await?;
    assert_eq!(blobs.get("files", "binary").await?, Some(binary));
    Ok(())
}

async fn put_is_write_once(blobs: &dyn Blobs) -> Result<(), SideStoreError> {
    blobs.put("files", "once", b"first").await?;
    blobs.put("files", "once", b"first").await?;
    match blobs.put("files", "once", b"second").await {
        Err(SideStoreError::Conflict { namespace, key }) => {
            assert_eq!((namespace.as_str(), key.as_str()), ("files", "once"));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(blobs.get("files", "once").await?.as_deref(), Some(&b"first"[..]));
    Ok(())
}

async fn delete_is_idempotent(blobs: &dyn Blobs) -> Result<(), SideStoreError> {
    blobs.put("files", "gone", b"soon").await?;
    blobs.delete("files", "gone").await?;
    assert_eq!(blobs.get("files", "gone").await?, None);
    blobs.delete("files", "gone").await?;
    blobs.delete("nosuchspace", "never").await?;
    // A deleted key may be written again, with any content.
    blobs.put("files", "gone", b"back").await?;
    assert_eq!(blobs.get("files", "gone").await?.as_deref(), Some(&b"back"[..]));
    Ok(())
}

async fn namespaces_are_separate(blobs: &dyn Blobs) -> Result<(), SideStoreError> {
    blobs.put("cards", "same", b"in cards").await?;
    blobs.put("files", "same", b"in files").await?;
    assert_eq!(
        blobs.get("cards", "same").await?.as_deref(),
        Some(&b"in cards"[..])
    );
    assert_eq!(
        blobs.get("files", "same").await?.as_deref(),
        Some(&b"in files"[..])
    );
    Ok(())
}

async fn invalid_keys_are_refused(blobs: &dyn Blobs) {
    for (namespace, key) in [("files", ".."), ("files", "a/b"), ("Files", "a"), ("files", "")] {
        assert!(
            matches!(
                blobs.put(namespace, key, b"x").await,
                Err(SideStoreError::InvalidKey { .. })
            ),
            "put {namespace:?} {key:?}"
        );
        assert!(
            matches!(
                blobs.get(namespace, key).await,
                Err(SideStoreError::InvalidKey { .. })
            ),
            "get {namespace:?} {key:?}"
        );
        assert!(
            matches!(
                blobs.delete(namespace, key).await,
                Err(SideStoreError::InvalidKey { .. })
            ),
            "delete {namespace:?} {key:?}"
        );
    }
}

/// Concurrent puts of one key: with the same content all succeed; with
/// different contents exactly one wins and the others get `Conflict`.
pub async fn concurrent_puts(blobs: Arc<dyn Blobs>) -> Result<(), SideStoreError> {
    let same: Vec<_> = (0..8)
        .map(|_| {
            let blobs = blobs.clone();
            tokio::spawn(async move { blobs.put("files", "raced", b"same bytes").await })
        })
        .collect();
    for put in same {
        put.await.expect("put task")?;
    }
    let different: Vec<_> = (0..8u8)
        .map(|i| {
            let blobs = blobs.clone();
            tokio::spawn(async move { (i, blobs.put("files", "contested", &[i]).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for put in different {
        match put.await.expect("put task") {
            (i, Ok(())) => winners.push(i),
            (_, Err(SideStoreError::Conflict { .. })) => {}
            (_, Err(e)) => return Err(e),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(blobs.get("files", "contested").await?, Some(winners));
    Ok(())
}

/// `PAYCORE_TEST_DATABASE_URL`, else the local server.
pub fn database_url() -> String {
    std::env::var("PAYCORE_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema migrated by `paycore_store_postgres::migrate`, dropped
/// (with everything in it) when the guard is dropped. The name has the
/// event store's tests' shape, so their sweep of stale schemas covers it.
#[derive(Debug)]
pub struct SchemaGuard {
    pub url: String,
    pub schema: String,
}

impl SchemaGuard {
    pub async fn new() -> Self {
        let guard = Self::unmigrated();
        paycore_store_postgres::migrate(&guard.url, &guard.schema)
            .await
            .expect("migrate a fresh test schema (is PostgreSQL running? see PAYCORE_TEST_DATABASE_URL)");
        guard
    }

    /// A fresh name; nothing is created.
    pub fn unmigrated() -> Self {
        Self {
            url: database_url(),
            schema: format!("paycore_test_{}", uuid::Uuid::now_v7().simple()),
        }
    }

    /// Runs one SQL batch on a fresh connection.
    pub async fn execute(&self, sql: &str) {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let driver = tokio::spawn(connection);
        client.batch_execute(sql).await.expect("execute");
        drop(client);
        let _ = driver.await;
    }
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
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(std::io::Error::other)?;
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
