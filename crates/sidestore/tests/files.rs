//! The content-addressed file store: stored once, checked on every read.

mod common;

use std::sync::Arc;

use paycore_sidestore::files::NAMESPACE;
use paycore_sidestore::{
    Blobs, DirBlobs, FileDigest, FileStore, MemoryBlobs, PgBlobs, SideStoreError, UploadBuffer,
};

use common::SchemaGuard;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PASSPORT: &[u8] = b"%PDF-1.7 a scanned passport";

fn store() -> (FileStore, Arc<MemoryBlobs>) {
    let blobs = Arc::new(MemoryBlobs::new());
    (FileStore::new(blobs.clone()), blobs)
}

#[tokio::test]
async fn put_then_get() -> TestResult {
    let (files, blobs) = store();
    let digest = files.put(PASSPORT).await?;
    assert_eq!(digest, FileDigest::of(PASSPORT));
    assert_eq!(files.get(digest).await?.as_deref(), Some(PASSPORT));
    // Stored under the lowercase hex of its SHA-256.
    assert_eq!(
        blobs.get(NAMESPACE, &digest.hex()).await?.as_deref(),
        Some(PASSPORT)
    );
    assert_eq!(files.get(FileDigest::of(b"never stored")).await?, None);
    Ok(())
}

#[tokio::test]
async fn the_same_content_is_stored_once() -> TestResult {
    let (files, blobs) = store();
    let first = files.put(PASSPORT).await?;
    let second = files.put(PASSPORT).await?;
    assert_eq!(first, second);
    assert_eq!(blobs.len(NAMESPACE), 1);
    files.put(b"another document").await?;
    assert_eq!(blobs.len(NAMESPACE), 2);
    Ok(())
}

#[tokio::test]
async fn the_same_content_is_one_file_on_disk() -> TestResult {
    let dir = tempfile::tempdir()?;
    let files = FileStore::new(Arc::new(DirBlobs::open(dir.path().join("side"))?));
    let digest = files.put(PASSPORT).await?;
    let path = dir.path().join("side").join("files").join(digest.hex());
    let written = std::fs::metadata(&path)?.modified()?;
    files.put(PASSPORT).await?;
    assert_eq!(
        std::fs::read_dir(dir.path().join("side").join("files"))?.count(),
        1
    );
    assert_eq!(std::fs::metadata(&path)?.modified()?, written, "not rewritten");
    Ok(())
}

#[tokio::test]
async fn corrupt_content_is_detected_on_read() -> TestResult {
    let (files, blobs) = store();
    let digest = files.put(PASSPORT).await?;
    let mut damaged = PASSPORT.to_vec();
    damaged[3] ^= 0x20;
    blobs.overwrite(NAMESPACE, &digest.hex(), damaged);
    match files.get(digest).await {
        Err(SideStoreError::Corrupt { namespace, key, .. }) => {
            assert_eq!((namespace.as_str(), key), (NAMESPACE, digest.hex()));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Putting the true content again does not hide the damage either.
    assert!(matches!(
        files.put(PASSPORT).await,
        Err(SideStoreError::Corrupt { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn a_damaged_file_on_disk_is_detected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let files = FileStore::new(Arc::new(DirBlobs::open(dir.path().join("side"))?));
    let digest = files.put(PASSPORT).await?;
    std::fs::write(
        dir.path().join("side").join("files").join(digest.hex()),
        b"truncated",
    )?;
    assert!(matches!(
        files.get(digest).await,
        Err(SideStoreError::Corrupt { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn an_upload_in_chunks_is_stored_under_its_digest() -> TestResult {
    let (files, blobs) = store();
    let mut upload = UploadBuffer::new(1024);
    for chunk in PASSPORT.chunks(5) {
        upload.push(chunk)?;
    }
    let digest = files.put_upload(upload).await?;
    assert_eq!(digest, FileDigest::of(PASSPORT));
    assert_eq!(files.get(digest).await?.as_deref(), Some(PASSPORT));
    // The same document again, whole: still one entry.
    files.put(PASSPORT).await?;
    assert_eq!(blobs.len(NAMESPACE), 1);
    Ok(())
}

#[tokio::test]
async fn files_work_on_postgres() -> TestResult {
    let guard = SchemaGuard::new().await;
    let files = FileStore::new(Arc::new(PgBlobs::connect(&guard.url, &guard.schema).await?));
    let digest = files.put(PASSPORT).await?;
    assert_eq!(files.put(PASSPORT).await?, digest);
    assert_eq!(files.get(digest).await?.as_deref(), Some(PASSPORT));
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let big_digest = files.put(&big).await?;
    assert_eq!(files.get(big_digest).await?, Some(big));
    Ok(())
}
