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

/// A fresh, migrated PostgreSQL schema per test, dropped with its guard.
#[allow(unused_imports)] // each test file uses its own part
pub use paycore_store_postgres::testing::{SchemaGuard, database_url};
