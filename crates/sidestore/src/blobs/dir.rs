//! [`DirBlobs`]: side storage in a directory, for the embedded log.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Blobs, existing_must_match};
use crate::fsutil::{self, Written};
use crate::{SideStoreError, check_key};

/// Temporary files younger than this may belong to a put in progress (of
/// another `DirBlobs` on the same root), so `open` leaves them alone.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Side storage in a directory: one file per entry, at
/// `<root>/<namespace>/<key>`, for a server that keeps its event log in a
/// local data directory.
///
/// A put writes a temporary file in the namespace directory, fsyncs it,
/// hard-links it to the key's name (which fails if the name exists, so an
/// entry is never replaced), removes the temporary name and fsyncs the
/// directory: the entry appears whole or not at all and is durable when
/// `put` returns. A put whose key exists compares the content and writes
/// nothing. Directories are created with mode 0700, files with 0600.
/// Temporary files left by a crash are removed by [`DirBlobs::open`] once
/// they are an hour old.
///
/// File-system work runs on tokio's blocking pool (`spawn_blocking`), so it
/// must be used inside a tokio runtime.
#[derive(Clone)]
pub struct DirBlobs {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// Namespace directories created (or found) and made durable in the
    /// root by this process; the others are created on first put.
    ready: Mutex<HashSet<String>>,
}

impl DirBlobs {
    /// Opens (creating it with mode 0700 if missing) the side storage at
    /// `root`, and removes temporary files left behind by a crash.
    /// Blocking; call it at start-up.
    pub fn open(root: PathBuf) -> Result<DirBlobs, SideStoreError> {
        fsutil::create_private_dir(&root)
            .map_err(|e| SideStoreError::io(format!("creating {}", root.display()), e))?;
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsutil::sync_dir(parent)
                .map_err(|e| SideStoreError::io(format!("syncing {}", parent.display()), e))?;
        }
        sweep(&root);
        Ok(DirBlobs {
            inner: Arc::new(Inner {
                root,
                ready: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The directory this storage lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Runs blocking file-system work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, SideStoreError> + Send + 'static,
    ) -> Result<T, SideStoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| SideStoreError::Unavailable(format!("side-storage file task failed: {e}")))?
    }
}

impl Inner {
    fn namespace_dir(&self, namespace: &str) -> PathBuf {
        self.root.join(namespace)
    }

    /// Creates the namespace directory if needed and fsyncs the root, once
    /// per namespace and process, so that entries written into it are not
    /// lost with a directory entry that never reached the disk.
    fn ready_namespace(&self, namespace: &str) -> Result<PathBuf, SideStoreError> {
        let dir = self.namespace_dir(namespace);
        if self.ready.lock().contains(namespace) {
            return Ok(dir);
        }
        fsutil::create_private_dir(&dir)
            .map_err(|e| SideStoreError::io(format!("creating {}", dir.display()), e))?;
        fsutil::sync_dir(&self.root)
            .map_err(|e| SideStoreError::io(format!("syncing {}", self.root.display()), e))?;
        self.ready.lock().insert(namespace.to_owned());
        Ok(dir)
    }

    fn put(&self, namespace: &str, key: &str, content: &[u8]) -> Result<(), SideStoreError> {
        // A second attempt only if another put linked the key between our
        // look and our link, and the entry was deleted again before we read
        // it: then the key is free once more.
        for _ in 0..2 {
            if let Some(existing) = self.get(namespace, key)? {
                return existing_must_match(namespace, key, &existing, content);
            }
            let dir = self.ready_namespace(namespace)?;
            let written = fsutil::write_new(&dir, key, content)
                .map_err(|e| SideStoreError::io(format!("writing {}", dir.join(key).display()), e))?;
            if written == Written::Created {
                return Ok(());
            }
        }
        Err(SideStoreError::conflict(namespace, key))
    }

    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, SideStoreError> {
        let path = self.namespace_dir(namespace).join(key);
        fsutil::read_if_present(&path)
            .map_err(|e| SideStoreError::io(format!("reading {}", path.display()), e))
    }

    fn delete(&self, namespace: &str, key: &str) -> Result<(), SideStoreError> {
        let dir = self.namespace_dir(namespace);
        let path = dir.join(key);
        let removed = fsutil::remove_if_present(&path)
            .map_err(|e| SideStoreError::io(format!("removing {}", path.display()), e))?;
        if removed {
            fsutil::sync_dir(&dir)
                .map_err(|e| SideStoreError::io(format!("syncing {}", dir.display()), e))?;
        }
        Ok(())
    }
}

/// Removes stale temporary files from every namespace directory. Best
/// effort: a failure is logged, never fatal (the files only waste space).
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        match fsutil::sweep_temp_files(&dir, STALE_TEMP_AGE) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(dir = %dir.display(), removed, "removed stale temporary files"),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot sweep temporary files"),
        }
    }
}

impl fmt::Debug for DirBlobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirBlobs")
            .field("root", &self.inner.root)
            .finish()
    }
}

#[async_trait]
impl Blobs for DirBlobs {
    async fn put(&self, namespace: &str, key: &str, content: &[u8]) -> Result<(), SideStoreError> {
        check_key(namespace, key)?;
        let (namespace, key, content) = (namespace.to_owned(), key.to_owned(), content.to_vec());
        self.blocking(move |inner| inner.put(&namespace, &key, &content))
            .await
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, SideStoreError> {
        check_key(namespace, key)?;
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.blocking(move |inner| inner.get(&namespace, &key)).await
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<(), SideStoreError> {
        check_key(namespace, key)?;
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        self.blocking(move |inner| inner.delete(&namespace, &key)).await
    }
}
