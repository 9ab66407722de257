//! The embedded log's decoders: a frame as a read decodes it, the index
//! snapshot, and the whole recovery scan of a data directory on open.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use paycore_store::fuzzing;
use paycore_store::{EventStore, LogOptions, LogStore, SyncMode};

use crate::world::world;

/// Frame harness. Byte 0, bit 0 clear: the rest is a frame as on disk
/// (header, CRC, body); set: the rest is a body, sealed here with a valid
/// header and CRC, so that mutations reach the body decoder.
pub fn frame(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let decoded = if mode & 1 == 0 {
        fuzzing::frame(rest)
    } else {
        fuzzing::frame(&fuzzing::seal(rest))
    };
    if let Ok(events) = decoded {
        // Positions follow each other from the frame's first one.
        for pair in events.windows(2) {
            assert_eq!(
                pair[0].position + 1,
                pair[1].position,
                "positions of one frame are consecutive"
            );
        }
    }
}

/// The frames of the seed log, one seed each way (raw and body).
pub fn frame_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (_, segment) in &world().segments {
        let mut at = 0;
        while at + 12 <= segment.len() {
            let len =
                u32::from_le_bytes([segment[at], segment[at + 1], segment[at + 2], segment[at + 3]]) as usize;
            let end = at + 12 + len;
            if len == 0 || end > segment.len() {
                break;
            }
            let mut raw = vec![0];
            raw.extend_from_slice(&segment[at..end]);
            seeds.push(raw);
            let mut body = vec![1];
            body.extend_from_slice(&segment[at + 12..end]);
            seeds.push(body);
            at = end.next_multiple_of(8);
        }
    }
    seeds
}

/// Index run harness: the bytes are the run file.
pub fn index_run(data: &[u8]) {
    let _ = fuzzing::index_run(data);
}

pub fn index_run_seeds() -> Vec<Vec<u8>> {
    vec![world().index_run.clone()]
}

/// Index snapshot harness (the file of builds before the index runs, which
/// an upgrade still reads). Byte 0, bit 0 clear: the rest is the file;
/// set: the rest is the file without its checksum, appended here.
pub fn index_snapshot(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let _ = if mode & 1 == 0 {
        fuzzing::index_snapshot(rest)
    } else {
        fuzzing::index_snapshot(&with_crc(rest))
    };
}

fn with_crc(content: &[u8]) -> Vec<u8> {
    let mut out = content.to_vec();
    out.extend_from_slice(&crc32c::crc32c(content).to_le_bytes());
    out
}

pub fn index_snapshot_seeds() -> Vec<Vec<u8>> {
    let file = &world().index_snapshot;
    let mut raw = vec![0];
    raw.extend_from_slice(file);
    let mut fixed = vec![1];
    fixed.extend_from_slice(&file[..file.len().saturating_sub(4)]);
    vec![raw, fixed]
}

/// A directory of the log, laid out from the input:
///
/// ```text
/// u8   flags: bit 0 an index snapshot is present, bit 1 its checksum is
///      appended here (the snapshot bytes are its content only)
/// u32  snapshot length, then the snapshot bytes
/// then up to 4 segments, each: u64 first position (its name), u32 length,
///      bytes (the last one takes the rest when its length runs past it)
/// ```
#[derive(Debug, Default, PartialEq)]
struct Layout<'a> {
    snapshot: Option<Vec<u8>>,
    segments: Vec<(u64, &'a [u8])>,
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = data.split_at_checked(n)?;
    *data = rest;
    Some(head)
}

fn layout(mut data: &[u8]) -> Option<Layout<'_>> {
    let flags = take(&mut data, 1)?[0];
    let len = u32::from_le_bytes(take(&mut data, 4)?.try_into().ok()?) as usize;
    let available = len.min(data.len());
    let snapshot = take(&mut data, available)?;
    let snapshot = (flags & 1 != 0).then(|| {
        if flags & 2 != 0 {
            with_crc(snapshot)
        } else {
            snapshot.to_vec()
        }
    });
    let mut segments = Vec::new();
    while segments.len() < 4 && data.len() >= 12 {
        let first = u64::from_le_bytes(take(&mut data, 8)?.try_into().ok()?);
        let len = u32::from_le_bytes(take(&mut data, 4)?.try_into().ok()?) as usize;
        let available = len.min(data.len());
        segments.push((first, take(&mut data, available)?));
    }
    Some(Layout { snapshot, segments })
}

fn unlayout(snapshot: Option<&[u8]>, segments: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = vec![u8::from(snapshot.is_some())];
    let snapshot = snapshot.unwrap_or_default();
    out.extend_from_slice(&(snapshot.len() as u32).to_le_bytes());
    out.extend_from_slice(snapshot);
    for (first, bytes) in segments {
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Where this thread lays out its log directories: memory-backed when the
/// machine has `/dev/shm`.
fn scratch() -> PathBuf {
    thread_local! {
        static DIR: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
    }
    DIR.with(|dir| {
        let mut dir = dir.borrow_mut();
        if dir.is_none() {
            let shm = Path::new("/dev/shm");
            let made = if shm.is_dir() {
                tempfile::Builder::new().prefix("paycore-fuzz").tempdir_in(shm)
            } else {
                tempfile::Builder::new().prefix("paycore-fuzz").tempdir()
            };
            *dir = made.ok();
        }
        dir.as_ref()
            .map(|dir| dir.path().to_owned())
            .unwrap_or_else(std::env::temp_dir)
    })
}

/// The recovery harness: lays out a log directory (see [`Layout`]), opens
/// it as the server does (snapshot load and check, scan, torn-tail rules),
/// and when it opens, reads every event back.
pub fn open(data: &[u8]) {
    let Some(layout) = layout(data) else {
        return;
    };
    let dir = scratch().join("log");
    let _ = std::fs::remove_dir_all(&dir);
    let segments_dir = dir.join("segments");
    if std::fs::create_dir_all(&segments_dir).is_err() {
        return;
    }
    for (first, bytes) in &layout.segments {
        let _ = std::fs::write(segments_dir.join(format!("{first:020}.log")), bytes);
    }
    if let Some(snapshot) = &layout.snapshot {
        let _ = std::fs::write(dir.join("index.snapshot"), snapshot);
    }
    let options = LogOptions {
        segment_bytes: 64 * 1024,
        sync: SyncMode::NoSync,
        // Never write an index run in the background while fuzzing.
        index_flush_events: u64::MAX,
        ..LogOptions::default()
    };
    let Ok((log, report)) = LogStore::open(&dir, options) else {
        return;
    };
    let read = futures::executor::block_on(log.read_all(0, usize::MAX));
    if let Ok(events) = read {
        assert_eq!(
            events.len() as u64,
            report.events,
            "an opened log reads back every event it counted"
        );
    }
    let _ = log.close();
}

pub fn open_seeds() -> Vec<Vec<u8>> {
    let world = world();
    let first_positions: Vec<u64> = world
        .segments
        .iter()
        .map(|(name, _)| name.trim_end_matches(".log").parse().unwrap_or(0))
        .collect();
    let all: Vec<(u64, &[u8])> = first_positions
        .iter()
        .zip(&world.segments)
        .map(|(first, (_, bytes))| (*first, bytes.as_slice()))
        .collect();
    let mut seeds = vec![
        unlayout(Some(&world.index_snapshot), &all[..all.len().min(4)]),
        unlayout(None, &all[..all.len().min(4)]),
        unlayout(None, &all[..1]),
    ];
    // A torn tail: the last segment cut in the middle of a frame.
    if let Some((first, last)) = all.last() {
        let mut torn = all[..all.len().min(4)].to_vec();
        let cut = last.len() / 2;
        torn.pop();
        torn.push((*first, &last[..cut]));
        seeds.push(unlayout(None, &torn));
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_reads_back_what_it_wrote() {
        let segments: Vec<(u64, &[u8])> = vec![(0, b"abc"), (7, b"")];
        let bytes = unlayout(Some(b"snap"), &segments);
        assert_eq!(
            layout(&bytes),
            Some(Layout {
                snapshot: Some(b"snap".to_vec()),
                segments,
            })
        );
    }
}
