//! File-system helpers: private directories, directory fsync, and durable
//! write-once files. Blocking: call them from `spawn_blocking`.
//!
//! Same idea as `paycore_store`'s `log/fsutil.rs`: a new directory entry is
//! durable only once its directory has been fsynced too.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Directories are for the server's user only.
const DIR_MODE: u32 = 0o700;
/// Files too: sealed card numbers, key files and identity documents.
const FILE_MODE: u32 = 0o600;
/// Temporary files start with this; keys cannot (they never start with `.`).
pub(crate) const TEMP_PREFIX: &str = ".tmp.";

/// What [`write_new`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The file did not exist; it does now, durably.
    Created,
    /// A file of that name already existed; it was left alone.
    Existed,
}

/// Creates `dir` and any missing parents with mode 0700 (an existing
/// directory keeps its mode).
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Makes the directory's entries (a file created, linked, renamed or removed
/// in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `content` to `dir/name` (mode 0600) unless a file of that name
/// exists, so that the file appears whole or not at all, and is durable when
/// this returns:
///
/// 1. write a temporary file in `dir` and fsync it;
/// 2. hard-link it to `name`, which fails if `name` exists (unlike `rename`,
///    which would replace it: entries are write-once);
/// 3. remove the temporary name and fsync `dir`.
///
/// `dir` is fsynced in the [`Written::Existed`] case too, so that a file
/// another writer has just linked is durable before the caller relies on it.
pub(crate) fn write_new(dir: &Path, name: &str, content: &[u8]) -> io::Result<Written> {
    let temp = dir.join(temp_name(name));
    let outcome = write_synced(&temp, content).and_then(|()| match fs::hard_link(&temp, dir.join(name)) {
        Ok(()) => Ok(Written::Created),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Written::Existed),
        Err(e) => Err(e),
    });
    let removed = remove_if_present(&temp);
    let written = outcome?;
    removed?;
    sync_dir(dir)?;
    Ok(written)
}

/// Removes `path`; a missing file is not an error. Returns whether it existed.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads `path`; a missing file is `None`.
pub(crate) fn read_if_present(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(content) => Ok(Some(content)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the temporary files in `dir` at least `age` old: left behind by a
/// process that died between writing and linking them. Younger ones may
/// belong to a write in progress. Best effort: returns how many it removed.
pub(crate) fn sweep_temp_files(dir: &Path, age: Duration) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if is_temp && older_than(&entry.metadata()?, age) && remove_if_present(&entry.path())? {
            removed += 1;
        }
    }
    Ok(removed)
}

fn older_than(metadata: &fs::Metadata, age: Duration) -> bool {
    metadata
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|elapsed| elapsed >= age)
}

/// Creates `path` (it must not exist), writes `content` and fsyncs it.
fn write_synced(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// `.tmp.<name>.<pid>.<counter>`: unique within the process by the counter
/// and across processes by the pid; `create_new` makes sure it never
/// clobbers anything anyway.
fn temp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEMP_PREFIX}{name}.{}.{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_new_creates_once_and_leaves_no_temp_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(write_new(dir.path(), "a", b"first")?, Written::Created);
        assert_eq!(write_new(dir.path(), "a", b"second")?, Written::Existed);
        assert_eq!(fs::read(dir.path().join("a"))?, b"first");
        let names: Vec<_> = fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, ["a"]);
        let mode = fs::metadata(dir.path().join("a"))?.permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        Ok(())
    }

    #[test]
    fn sweep_removes_only_old_temp_files() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join(".tmp.x.1.2"), b"left behind")?;
        fs::write(dir.path().join("kept"), b"an entry")?;
        assert_eq!(sweep_temp_files(dir.path(), Duration::from_secs(3600))?, 0);
        assert_eq!(sweep_temp_files(dir.path(), Duration::ZERO)?, 1);
        assert!(dir.path().join("kept").exists());
        assert!(!dir.path().join(".tmp.x.1.2").exists());
        Ok(())
    }
}
