//! Streaming file copies with checksums, and errors that name the path and
//! say what went wrong (disk full, permissions) in plain words.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, anyhow};
use sha2::{Digest, Sha256};

use super::manifest::FileEntry;

/// Copies and checksums go through a buffer of this size: memory does not
/// depend on the size of a file.
const BUFFER_BYTES: usize = 1 << 20;

/// Mode of every file a backup or restore creates: the backup holds the
/// vault key and sealed card numbers.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory a backup or restore creates.
pub const DIR_MODE: u32 = 0o700;

/// Temporary files of the side storage (`.tmp.<name>.<pid>.<n>`), written
/// then linked under their name: never part of what it stores.
const SIDESTORE_TEMP_PREFIX: &str = ".tmp.";

fn is_disk_full(error: &io::Error) -> bool {
    let raw = error.raw_os_error();
    raw == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || raw == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

/// An error writing `path`, worded for the operator.
pub fn write_error(path: &Path, error: io::Error) -> anyhow::Error {
    if is_disk_full(&error) {
        anyhow!("disk full: cannot write {} ({error})", path.display())
    } else if error.kind() == io::ErrorKind::PermissionDenied {
        anyhow!("permission denied: cannot write {} ({error})", path.display())
    } else if error.kind() == io::ErrorKind::AlreadyExists {
        anyhow!("{} already exists: nothing is ever overwritten", path.display())
    } else {
        anyhow!("writing {}: {error}", path.display())
    }
}

/// An error reading `path`, worded for the operator.
pub fn read_error(path: &Path, error: io::Error) -> anyhow::Error {
    if error.kind() == io::ErrorKind::PermissionDenied {
        anyhow!("permission denied: cannot read {} ({error})", path.display())
    } else if error.kind() == io::ErrorKind::NotFound {
        anyhow!("{} does not exist", path.display())
    } else {
        anyhow!("reading {}: {error}", path.display())
    }
}

/// Makes the entries of `dir` (files created or renamed in it) durable.
pub fn fsync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| write_error(dir, e))
}

/// Creates `dir` (and missing parents) with mode 0700.
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| write_error(dir, e))
}

/// Whether `dir` is absent or an empty directory.
pub fn is_absent_or_empty(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(error) => Err(read_error(dir, error)),
    }
}

/// Reads `reader` to the end in fixed-size chunks, handing each to `each`;
/// returns the size and SHA-256 of what was read.
fn stream(
    path: &Path,
    mut reader: impl Read,
    mut each: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, [u8; 32])> {
    let mut buffer = vec![0; BUFFER_BYTES];
    let mut sha256 = Sha256::new();
    let mut bytes = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(read_error(path, error)),
        };
        let chunk = &buffer[..n];
        sha256.update(chunk);
        each(chunk)?;
        bytes += n as u64;
    }
    Ok((bytes, sha256.finalize().into()))
}

/// Size and SHA-256 of a file, read in chunks.
pub fn hash_file(path: &Path) -> anyhow::Result<(u64, [u8; 32])> {
    let file = File::open(path).map_err(|e| read_error(path, e))?;
    stream(path, file, |_| Ok(()))
}

/// Copies `src` to a new file `dst` (mode 0600; never overwriting), fsyncs
/// it, and returns the size and SHA-256 of what was copied.
pub fn copy_file(src: &Path, dst: &Path) -> anyhow::Result<(u64, [u8; 32])> {
    let input = File::open(src).map_err(|e| read_error(src, e))?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(dst)
        .map_err(|e| write_error(dst, e))?;
    let copied = stream(src, input, |chunk| {
        output.write_all(chunk).map_err(|e| write_error(dst, e))
    })?;
    output.sync_all().map_err(|e| write_error(dst, e))?;
    Ok(copied)
}

/// Copies the tree `src_root/relative` to `dst_root/relative` (directories
/// 0700, files 0600), leaving out the side storage's temporary files, and
/// adds an entry per file, its path relative to `dst_root`. Missing `src`
/// copies nothing. Memory: one buffer, and the walk's open directories.
pub fn copy_tree(
    src_root: &Path,
    dst_root: &Path,
    relative: &str,
    entries: &mut Vec<FileEntry>,
) -> anyhow::Result<()> {
    let src = src_root.join(relative);
    let listing = match std::fs::read_dir(&src) {
        Ok(listing) => listing,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(read_error(&src, error)),
    };
    let dst = dst_root.join(relative);
    create_dir(&dst)?;
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| read_error(&src, e))?;
        names.push(entry.file_name());
    }
    // Sorted, so two backups of the same data list files alike.
    names.sort();
    for name in names {
        let Some(name) = name.to_str() else {
            tracing::warn!(dir = %src.display(), ?name, "leaving out a file whose name is not UTF-8");
            continue;
        };
        if name.starts_with(SIDESTORE_TEMP_PREFIX) {
            continue;
        }
        let child = format!("{relative}/{name}");
        let path = src_root.join(&child);
        let kind = std::fs::symlink_metadata(&path)
            .map_err(|e| read_error(&path, e))?
            .file_type();
        if kind.is_dir() {
            copy_tree(src_root, dst_root, &child, entries)?;
        } else if kind.is_file() {
            let (bytes, sha256) = copy_file(&path, &dst_root.join(&child))?;
            entries.push(FileEntry::new(&child, bytes, &sha256));
        } else {
            tracing::warn!(file = %path.display(), "leaving out something that is neither a file nor a directory");
        }
    }
    fsync_dir(&dst).with_context(|| format!("syncing {}", dst.display()))
}
