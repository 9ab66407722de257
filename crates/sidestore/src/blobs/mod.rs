//! [`Blobs`]: durable, write-once key → bytes storage, and its backends.

mod dir;
mod memory;
mod pg;

use std::fmt::Debug;

use async_trait::async_trait;

use crate::SideStoreError;

pub use dir::DirBlobs;
pub use memory::MemoryBlobs;
pub use pg::PgBlobs;

/// Durable side storage: entries addressed by `(namespace, key)`, written
/// once, read whole, deletable.
///
/// Every method first checks the namespace and key with
/// [`check_key`](crate::check_key) and returns
/// [`SideStoreError::InvalidKey`] before any I/O. Object-safe, so callers
/// hold an `Arc<dyn Blobs>` and do not care which backend the server was
/// started with.
#[async_trait]
pub trait Blobs: Send + Sync + Debug {
    /// Stores `content` under `(namespace, key)`, durably when this returns
    /// `Ok`. If the key already holds the same content, nothing is written
    /// and the put succeeds (so retries are safe); if it holds different
    /// content, [`SideStoreError::Conflict`] and the old content stays.
    async fn put(&self, namespace: &str, key: &str, content: &[u8]) -> Result<(), SideStoreError>;

    /// The content stored under `(namespace, key)`, or `None`.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, SideStoreError>;

    /// Removes the entry, durably when this returns `Ok`. Removing an entry
    /// that does not exist succeeds (idempotent).
    async fn delete(&self, namespace: &str, key: &str) -> Result<(), SideStoreError>;
}

/// The outcome of a put that found the key taken: a no-op success if the
/// stored content is the same, else [`SideStoreError::Conflict`]. Shared by
/// the backends so they agree on the rule.
pub(crate) fn existing_must_match(
    namespace: &str,
    key: &str,
    existing: &[u8],
    content: &[u8],
) -> Result<(), SideStoreError> {
    if existing == content {
        Ok(())
    } else {
        Err(SideStoreError::conflict(namespace, key))
    }
}
