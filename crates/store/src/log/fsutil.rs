//! File-system helpers: locking, preallocation, directory fsync, zero checks.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FallocateFlags, FlockOperation, SeekFrom};
use rustix::io::Errno;

use crate::api::Position;
use crate::error::StoreError;

pub(crate) const LOCK_FILE: &str = "LOCK";
pub(crate) const SEGMENTS_DIR: &str = "segments";
pub(crate) const SNAPSHOT_FILE: &str = "index.snapshot";
pub(crate) const SNAPSHOT_TMP_FILE: &str = "index.snapshot.tmp";

/// `<20-digit first position>.log`.
pub(crate) fn segment_file_name(first_position: Position) -> String {
    format!("{first_position:020}.log")
}

pub(crate) fn parse_segment_file_name(name: &str) -> Option<Position> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Takes the exclusive lock of the data directory, held for as long as the
/// returned file is open. `flock` locks belong to the open file description,
/// so a second open in the same process conflicts too.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(Errno::WOULDBLOCK) => Err(StoreError::Locked(dir.to_path_buf())),
        Err(e) => Err(StoreError::io(format!("locking {}", path.display()), e.into())),
    }
}

/// Makes the directory's entries (a file created or renamed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[derive(Debug)]
pub(crate) enum PreallocError {
    /// No space left: nothing was written.
    NoSpace(io::Error),
    Other(io::Error),
}

impl PreallocError {
    pub fn into_store_error(self, what: &Path) -> StoreError {
        match self {
            Self::NoSpace(e) => StoreError::DiskFull(format!("cannot preallocate {}: {e}", what.display())),
            Self::Other(e) => StoreError::io(format!("preallocating {}", what.display()), e),
        }
    }
}

/// Reserves disk blocks for `file` up to `len` bytes (zero-filled). On a file
/// system without `fallocate` it falls back to extending the file (sparse, so
/// a full disk is then only detected at write time, which the writer treats as
/// fatal).
pub(crate) fn preallocate(file: &File, len: u64) -> Result<(), PreallocError> {
    match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(Errno::NOSPC) | Err(Errno::DQUOT) | Err(Errno::FBIG) => Err(PreallocError::NoSpace(
            io::Error::from_raw_os_error(Errno::NOSPC.raw_os_error()),
        )),
        Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => {
            tracing::warn!("the file system cannot preallocate; segments will be sparse");
            let current = file.metadata().map_err(PreallocError::Other)?.len();
            if current < len {
                file.set_len(len).map_err(PreallocError::Other)?;
            }
            Ok(())
        }
        Err(e) => Err(PreallocError::Other(e.into())),
    }
}

/// Offset of the first non-zero byte of `file` in `[from, to)`, if any. Skips
/// holes (unwritten preallocated space) without reading them where the file
/// system reports them.
pub(crate) fn first_nonzero(file: &File, from: u64, to: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let Some((data, data_end)) = next_data(file, at, to) else {
            return Ok(None);
        };
        at = data;
        while at < data_end {
            let n = ((data_end - at) as usize).min(buf.len());
            let chunk = &mut buf[..n];
            file.read_exact_at(chunk, at)?;
            if let Some(i) = first_nonzero_in(chunk) {
                return Ok(Some(at + i as u64));
            }
            at += n as u64;
        }
    }
    Ok(None)
}

/// Index of the first non-zero byte of `bytes`. A segment's preallocated
/// tail is megabytes of zeros, read at every open: tested 64 bytes at a
/// time (eight words OR-ed together), where a byte at a time took a third
/// of opening a log.
fn first_nonzero_in(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 64;
    let blocks = bytes.chunks_exact(BLOCK);
    let tail = blocks.remainder();
    for (index, block) in blocks.enumerate() {
        let folded = block.chunks_exact(8).fold(0u64, |folded, word| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(word);
            folded | u64::from_ne_bytes(bytes)
        });
        if folded != 0 {
            let at = index * BLOCK;
            return block.iter().position(|&byte| byte != 0).map(|within| at + within);
        }
    }
    let at = bytes.len() - tail.len();
    tail.iter().position(|&byte| byte != 0).map(|within| at + within)
}

/// The next region of `file` in `[at, to)` that may hold data, as
/// `(start, end)`: holes (unwritten preallocated space) are skipped where the
/// file system reports them, and `None` means only a hole is left. Where it
/// cannot tell, the whole rest `(at, to)` is one region.
pub(crate) fn next_data(file: &File, at: u64, to: u64) -> Option<(u64, u64)> {
    let (data, data_end) = match rustix::fs::seek(file, SeekFrom::Data(at)) {
        Ok(data) => {
            let hole = rustix::fs::seek(file, SeekFrom::Hole(data)).unwrap_or(to);
            (data, hole.min(to))
        }
        Err(Errno::NXIO) => return None,
        Err(_) => (at, to),
    };
    (data < to).then_some((data, data_end))
}

/// The segment files in `dir`, by first position. Other files are ignored
/// with a warning.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(Position, PathBuf)>, StoreError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        match name.to_str().and_then(parse_segment_file_name) {
            Some(first) => segments.push((first, entry.path())),
            None => tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a segment"),
        }
    }
    segments.sort();
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::first_nonzero_in;

    proptest! {
        /// The first non-zero byte is found wherever it is (in a block, in
        /// the tail shorter than a block, or nowhere), as a byte-by-byte
        /// search finds it.
        #[test]
        fn the_first_nonzero_byte_is_found_where_it_is(
            len in 0usize..400,
            set in proptest::collection::vec((0usize..400, 1u8..=255), 0..3),
        ) {
            let mut bytes = vec![0u8; len];
            for (at, value) in set {
                if at < len {
                    bytes[at] = value;
                }
            }
            prop_assert_eq!(first_nonzero_in(&bytes), bytes.iter().position(|&byte| byte != 0));
        }
    }
}
