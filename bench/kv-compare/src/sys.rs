//! Process memory, file sizes and the page cache.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Resident memory of this process, KiB, from /proc/self/status.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rss {
    pub total: u64,
    /// Heap, stacks, anonymous maps: what the kernel cannot drop.
    pub anon: u64,
    /// File-backed pages mapped by this process (LMDB's map, binaries):
    /// the kernel can reclaim them under pressure.
    pub file: u64,
}

pub fn rss() -> Rss {
    let mut out = Rss::default();
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return out;
    };
    for line in status.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let value: u64 = value.parse().unwrap_or(0);
        match name {
            "VmRSS:" => out.total = value,
            "RssAnon:" => out.anon = value,
            "RssFile:" => out.file = value,
            _ => {}
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// (apparent bytes, allocated bytes) of every file under `dir`.
pub fn dir_size(dir: &Path) -> Result<(u64, u64)> {
    let mut list = Vec::new();
    files(dir, &mut list)?;
    let mut apparent = 0;
    let mut allocated = 0;
    for path in list {
        // Files can disappear under us (fjall deletes compacted tables).
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        apparent += meta.len();
        allocated += meta.blocks() * 512;
    }
    Ok((apparent, allocated))
}

/// Writes back and drops the page cache of every file under `dir` (the
/// store must be closed), so the next reads come from the disk.
pub fn evict(dir: &Path) -> Result<()> {
    let mut list = Vec::new();
    files(dir, &mut list)?;
    for path in list {
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        file.sync_all()?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
    }
    Ok(())
}

/// Reads every file under `dir` once, so it sits in the page cache.
pub fn warm(dir: &Path) -> Result<u64> {
    let mut list = Vec::new();
    files(dir, &mut list)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for path in list {
        let Ok(mut file) = File::open(&path) else {
            continue;
        };
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok(total)
}
