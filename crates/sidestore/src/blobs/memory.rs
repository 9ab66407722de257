//! [`MemoryBlobs`]: the [`Blobs`] contract in a map, for tests.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Blobs, existing_must_match};
use crate::{SideStoreError, check_key};

/// Side storage in memory: same rules as the durable backends (key checks,
/// write-once, idempotent delete), nothing survives the process. For tests,
/// and to look at what a component stored.
#[derive(Default)]
pub struct MemoryBlobs {
    entries: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryBlobs {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many entries `namespace` holds (tests check deduplication with it).
    pub fn len(&self, namespace: &str) -> usize {
        self.entries
            .lock()
            .keys()
            .filter(|(ns, _)| ns == namespace)
            .count()
    }

    /// Whether the store holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.entries.lock().is_empty()
    }

    /// Replaces an entry's content, bypassing the write-once rule: lets
    /// tests simulate corruption or tampering of stored bytes.
    pub fn overwrite(&self, namespace: &str, key: &str, content: Vec<u8>) {
        self.entries
            .lock()
            .insert((namespace.to_owned(), key.to_owned()), content);
    }
}

/// Counts only: the entries may hold secrets.
impl fmt::Debug for MemoryBlobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBlobs")
            .field("entries", &self.entries.lock().len())
            .finish()
    }
}

#[async_trait]
impl Blobs for MemoryBlobs {
    async fn put(&self, namespace: &str, key: &str, content: &[u8]) -> Result<(), SideStoreError> {
        check_key(namespace, key)?;
        let mut entries = self.entries.lock();
        match entries.get(&(namespace.to_owned(), key.to_owned())) {
            Some(existing) => existing_must_match(namespace, key, existing, content),
            None => {
                entries.insert((namespace.to_owned(), key.to_owned()), content.to_vec());
                Ok(())
            }
        }
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, SideStoreError> {
        check_key(namespace, key)?;
        Ok(self
            .entries
            .lock()
            .get(&(namespace.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<(), SideStoreError> {
        check_key(namespace, key)?;
        self.entries
            .lock()
            .remove(&(namespace.to_owned(), key.to_owned()));
        Ok(())
    }
}
