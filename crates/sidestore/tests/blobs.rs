//! The `Blobs` backends: the shared contract, then what is particular to
//! each (files on disk, the PostgreSQL table).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use paycore_sidestore::{Blobs, DirBlobs, MemoryBlobs, PgBlobs, SideStoreError};

use common::SchemaGuard;

type TestResult = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------
// MemoryBlobs
// ---------------------------------------------------------------------------

#[tokio::test]
async fn memory_blobs_keep_the_contract() -> TestResult {
    common::contract(&MemoryBlobs::new()).await?;
    common::concurrent_puts(Arc::new(MemoryBlobs::new())).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// DirBlobs
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_blobs_keep_the_contract() -> TestResult {
    let dir = tempfile::tempdir()?;
    common::contract(&DirBlobs::open(dir.path().join("side"))?).await?;
    common::concurrent_puts(Arc::new(DirBlobs::open(dir.path().join("raced"))?)).await?;
    Ok(())
}

#[tokio::test]
async fn dir_blobs_store_one_private_file_per_entry() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("side");
    let blobs = DirBlobs::open(root.clone())?;
    assert_eq!(blobs.root(), root);
    blobs.put("cards", "card_1", b"sealed bytes").await?;
    assert_eq!(std::fs::read(root.join("cards").join("card_1"))?, b"sealed bytes");
    assert_eq!(mode(&root)?, 0o700);
    assert_eq!(mode(&root.join("cards"))?, 0o700);
    assert_eq!(mode(&root.join("cards").join("card_1"))?, 0o600);
    // No temporary file is left behind, even after a put that found its key.
    blobs.put("cards", "card_1", b"sealed bytes").await?;
    assert_eq!(names(&root.join("cards"))?, ["card_1"]);
    Ok(())
}

#[tokio::test]
async fn dir_blobs_survive_a_reopen_and_sweep_only_old_temporary_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("side");
    DirBlobs::open(root.clone())?
        .put("files", "kept", b"durable")
        .await?;
    // A put in progress in another process: too young to be swept.
    std::fs::write(root.join("files").join(".tmp.kept.999.0"), b"half")?;
    let reopened = DirBlobs::open(root.clone())?;
    assert_eq!(
        reopened.get("files", "kept").await?.as_deref(),
        Some(&b"durable"[..])
    );
    assert_eq!(names(&root.join("files"))?, [".tmp.kept.999.0", "kept"]);
    // Temporary files cannot be read as entries: keys never start with '.'.
    assert!(matches!(
        reopened.get("files", ".tmp.kept.999.0").await,
        Err(SideStoreError::InvalidKey { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn dir_blobs_report_io_errors_without_panicking() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("side");
    let blobs = DirBlobs::open(root.clone())?;
    // The namespace's place is taken by a plain file.
    std::fs::write(root.join("files"), b"not a directory")?;
    match blobs.put("files", "a", b"x").await {
        Err(e @ SideStoreError::Io { .. }) => assert!(e.to_string().contains("side"), "{e}"),
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(matches!(
        blobs.get("files", "a").await,
        Err(SideStoreError::Io { .. })
    ));
    // A root that cannot be created.
    assert!(matches!(
        DirBlobs::open(root.join("files").join("below-a-file")),
        Err(SideStoreError::Io { .. })
    ));
    Ok(())
}

fn mode(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

fn names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

// ---------------------------------------------------------------------------
// PgBlobs (the local PostgreSQL, or PAYCORE_TEST_DATABASE_URL)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_blobs_keep_the_contract() -> TestResult {
    let guard = SchemaGuard::new().await;
    let blobs = PgBlobs::connect(&guard.url, &guard.schema).await?;
    assert_eq!(blobs.schema(), guard.schema);
    common::contract(&blobs).await?;
    common::concurrent_puts(Arc::new(blobs)).await?;
    Ok(())
}

#[tokio::test]
async fn pg_blobs_share_entries_between_servers() -> TestResult {
    let guard = SchemaGuard::new().await;
    let one = PgBlobs::connect(&guard.url, &guard.schema).await?;
    let other = PgBlobs::connect(&guard.url, &guard.schema).await?;
    one.put("cards", "card_1", b"sealed").await?;
    assert_eq!(
        other.get("cards", "card_1").await?.as_deref(),
        Some(&b"sealed"[..])
    );
    other.delete("cards", "card_1").await?;
    assert_eq!(one.get("cards", "card_1").await?, None);
    Ok(())
}

#[tokio::test]
async fn pg_blobs_write_the_migrated_table() -> TestResult {
    let guard = SchemaGuard::new().await;
    let blobs = PgBlobs::connect(&guard.url, &guard.schema).await?;
    blobs.put("files", "abc", &[0, 1, 2, 255]).await?;
    let (client, connection) = tokio_postgres::connect(&guard.url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            &format!(
                "SELECT namespace, key, content, created_at <= now() FROM {}.side_blobs",
                guard.schema
            ),
            &[],
        )
        .await?;
    let (namespace, key, content, dated): (String, String, Vec<u8>, bool) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
    assert_eq!((namespace.as_str(), key.as_str()), ("files", "abc"));
    assert_eq!(content, [0, 1, 2, 255]);
    assert!(dated);
    drop(client);
    let _ = driver.await;
    Ok(())
}

#[tokio::test]
async fn pg_blobs_refuse_an_unmigrated_schema_and_say_what_to_do() {
    let guard = SchemaGuard::unmigrated();
    match PgBlobs::connect(&guard.url, &guard.schema).await {
        Err(SideStoreError::Unavailable(message)) => {
            assert!(message.contains("paycore db migrate"), "{message}");
            assert!(message.contains(&guard.schema), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn pg_blobs_refuse_an_invalid_schema_name() {
    let url = common::database_url();
    for schema in ["", "Bad", "a;drop table x", "pg_catalog"] {
        assert!(
            matches!(
                PgBlobs::connect(&url, schema).await,
                Err(SideStoreError::Unavailable(_))
            ),
            "{schema:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_and_the_password_is_not_shown() {
    // Nothing listens on port 1: refused at once.
    let url = "postgres://postgres:hunter2@127.0.0.1:1/test";
    match PgBlobs::connect(url, "paycore").await {
        Err(SideStoreError::Unavailable(message)) => {
            assert!(message.contains("127.0.0.1:1/test as postgres"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        PgBlobs::connect("postgres://[::1", "paycore").await,
        Err(SideStoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_missing_table_is_unavailable_then_recovers() -> TestResult {
    let guard = SchemaGuard::new().await;
    let blobs = PgBlobs::connect(&guard.url, &guard.schema).await?;
    blobs.put("files", "before", b"x").await?;
    // The table disappears under a running server (as if the schema were
    // restored from an old backup): a typed error, no panic.
    guard
        .execute(&format!(
            "ALTER TABLE {s}.side_blobs RENAME TO side_blobs_away",
            s = guard.schema
        ))
        .await;
    assert!(matches!(
        blobs.get("files", "before").await,
        Err(SideStoreError::Unavailable(_))
    ));
    guard
        .execute(&format!(
            "ALTER TABLE {s}.side_blobs_away RENAME TO side_blobs",
            s = guard.schema
        ))
        .await;
    assert_eq!(blobs.get("files", "before").await?.as_deref(), Some(&b"x"[..]));
    Ok(())
}

#[tokio::test]
async fn killed_connections_are_unavailable_once_then_replaced() -> TestResult {
    let guard = SchemaGuard::new().await;
    // An application name of its own, so the test kills exactly its
    // connections.
    let name = format!("sidestore-test-{}", uuid::Uuid::now_v7().simple());
    let separator = if guard.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}application_name={name}", guard.url);
    let blobs = PgBlobs::connect(&url, &guard.schema).await?;
    blobs.put("files", "kept", b"x").await?;
    guard
        .execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"
        ))
        .await;
    // The pooled connection may or may not have noticed yet: either the
    // read fails as Unavailable, or the pool already replaced it.
    match blobs.get("files", "kept").await {
        Ok(content) => assert_eq!(content.as_deref(), Some(&b"x"[..])),
        Err(SideStoreError::Unavailable(_)) => {}
        Err(e) => return Err(e.into()),
    }
    assert_eq!(blobs.get("files", "kept").await?.as_deref(), Some(&b"x"[..]));
    Ok(())
}
