//! Copying an exact prefix of the log (for `paycore backup`), and checking
//! such a copy.
//!
//! The log is append-only and a segment's bytes never change once written,
//! so a running server's segments can be copied without stopping it: every
//! frame that ends at or before a *durable position* `end` (one where an
//! append group ends, such as [`EventStore::committed`] when taken) is on
//! disk and stays exactly as it is while the writer appends after it.
//! [`copy_prefix`] copies every segment that starts before `end`, frame by
//! frame from offset 0, and cuts the copy where the frame holding position
//! `end - 1` ends. Frames after the cut (being written, maybe torn) are
//! never read. The copy is a log of its own, byte for byte the original's
//! first `end` events:
//!
//! - each copied segment holds its frames and nothing else (no zero tail:
//!   recovery rule 4 takes an absent tail like a zero one, and rule 7
//!   preallocates the last segment again when the copy is opened);
//! - the index runs are not copied (they are derived): the first open of the
//!   copy indexes it from the segments;
//! - every frame read is checked as [`LogStore::open`](super::LogStore::open)
//!   would: header, CRC, position, commit-group bookkeeping and hash chain.
//!   Stream versions are not followed here (that needs memory per stream;
//!   the audit checks them), so memory stays one 8 MiB read window
//!   whatever the history.
//!
//! [`check_prefix`] walks a copy the same way and also insists that it ends
//! exactly at a commit-group end, with no byte after the last frame: a
//! backup's segments are never preallocated, so anything else is damage.
//! Both name the file, offset and position of the first frame that fails.
//!
//! [`EventStore::committed`]: crate::EventStore::committed

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::api::{ChainHash, GENESIS_HASH, Position};
use crate::chain::hash_input;
use crate::error::{StoreError, corrupt};

use super::codec::{HEADER_BYTES, RawHeader, decode_body, decode_body_header, frame_end};
use super::fsutil::{SEGMENTS_DIR, list_segments, segment_file_name, sync_dir};
use super::recovery::Window;

/// One segment of a copy: its file name (in `segments/`), size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// What [`copy_prefix`] copied or [`check_prefix`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixReport {
    /// Events in the copy: positions `0 .. events`.
    pub events: Position,
    /// Chain hash of position `events - 1` ([`GENESIS_HASH`] when empty).
    pub last_hash: ChainHash,
    /// Commit time of the last event (0 when empty).
    pub last_recorded_at_micros: i64,
    /// The copy's segments, in order. [`check_prefix`] leaves `sha256`
    /// zeroed (checksums of a stored copy are the caller's to compare).
    pub segments: Vec<SegmentFile>,
}

/// The hash chain and group bookkeeping carried from frame to frame.
struct Chain {
    next: Position,
    last_hash: ChainHash,
    last_recorded_at: i64,
    /// Where the last frame's group ends in its segment (a new group must
    /// start exactly there); the segment start before its first frame.
    group_end: u64,
    group_first: Option<Position>,
}

impl Chain {
    fn new() -> Self {
        Self {
            next: 0,
            last_hash: GENESIS_HASH,
            last_recorded_at: 0,
            group_end: 0,
            group_first: None,
        }
    }

    fn start_segment(&mut self) {
        self.group_end = 0;
        self.group_first = None;
    }

    fn at_group_end(&self, offset: u64) -> bool {
        self.group_end == offset
    }
}

fn read_err(path: &Path, e: io::Error) -> StoreError {
    StoreError::io(format!("reading {}", path.display()), e)
}

fn write_err(path: &Path, e: io::Error) -> StoreError {
    if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::DQUOT.raw_os_error())
    {
        StoreError::DiskFull(format!("writing {}: {e}", path.display()))
    } else {
        StoreError::io(format!("writing {}", path.display()), e)
    }
}

/// Reads and checks the frame at `at`, which must exist and hold position
/// `chain.next`. Returns where it ends; its bytes are `window.get(at, end - at)`.
fn next_frame(window: &mut Window<'_>, path: &Path, at: u64, chain: &mut Chain) -> Result<u64, StoreError> {
    let expected = chain.next;
    let bad = |reason: String| corrupt(path, at, expected, reason);
    if window.len.saturating_sub(at) < HEADER_BYTES as u64 {
        return Err(bad(format!(
            "the segment's data ends at offset {at} (file length {}) before position {expected}",
            window.len
        )));
    }
    let mut header_bytes = [0; HEADER_BYTES];
    header_bytes.copy_from_slice(window.get(at, HEADER_BYTES).map_err(|e| read_err(path, e))?);
    if header_bytes == [0; HEADER_BYTES] {
        return Err(bad(format!(
            "the segment's data ends at offset {at} before position {expected}"
        )));
    }
    let header = RawHeader::parse(&header_bytes);
    if !header.is_consistent() {
        return Err(bad("the frame header fails its length check".into()));
    }
    let body_len = header.body_len;
    if at + HEADER_BYTES as u64 + u64::from(body_len) > window.len {
        return Err(bad(format!(
            "the frame ({body_len} bytes) extends past the end of the file"
        )));
    }
    let body = window
        .get(at + HEADER_BYTES as u64, body_len as usize)
        .map_err(|e| read_err(path, e))?;
    if crc32c::crc32c(body) != header.crc {
        return Err(bad("CRC mismatch".into()));
    }
    let end = frame_end(at, body_len);
    let first = decode_body_header(body).map_err(&bad)?;
    if first.first_position != expected {
        return Err(bad(format!(
            "frame starts at position {}, expected {expected}",
            first.first_position
        )));
    }
    let group_ok = if first.group_first_position == first.first_position {
        chain.at_group_end(at)
    } else {
        chain.group_first == Some(first.group_first_position) && chain.group_end == first.group_end
    };
    if !group_ok || first.group_end < end {
        return Err(bad(
            "commit-group bookkeeping does not match the frames before it".into(),
        ));
    }
    let mut prev = chain.last_hash;
    let body_header = decode_body(body, |view| {
        let hash = hash_input(&prev, &view.hash_input());
        if hash != view.hash {
            return Err(format!("hash chain broken at position {}", view.position));
        }
        prev = hash;
        Ok(())
    })
    .map_err(&bad)?;
    chain.next = body_header.end_position();
    chain.last_hash = prev;
    chain.last_recorded_at = body_header.recorded_at_micros;
    chain.group_first = Some(body_header.group_first_position);
    chain.group_end = body_header.group_end;
    Ok(end)
}

/// A segment being written: buffered, hashed as written.
struct Output {
    path: PathBuf,
    writer: BufWriter<File>,
    sha256: Sha256,
    bytes: u64,
}

impl Output {
    fn create(path: PathBuf) -> Result<Self, StoreError> {
        // `create_new`: a copy never overwrites anything.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| write_err(&path, e))?;
        Ok(Self {
            path,
            writer: BufWriter::with_capacity(1 << 20, file),
            sha256: Sha256::new(),
            bytes: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.writer
            .write_all(bytes)
            .map_err(|e| write_err(&self.path, e))?;
        self.sha256.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs the file.
    fn finish(self) -> Result<SegmentFile, StoreError> {
        let path = self.path;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| write_err(&path, e.into_error()))?;
        file.sync_all().map_err(|e| write_err(&path, e))?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(SegmentFile {
            name,
            bytes: self.bytes,
            sha256: self.sha256.finalize().into(),
        })
    }
}

/// Copies the first `end` events of the log in `src` (a log directory, as
/// [`LogStore::open`](super::LogStore::open) takes; it may be held by a
/// running server) into `dst/segments/`, checking every frame on the way
/// (see the [module docs](self)). `end` must be a position where a commit
/// group ends and that is durable, such as the store's committed position
/// taken before the call. `dst` must not hold segments already.
///
/// Memory: one read window (8 MiB, or one frame if larger) and a 1 MiB
/// write buffer. Errors name the file: [`StoreError::Corrupt`] for a frame
/// that fails its checks, [`StoreError::DiskFull`] when the destination is
/// full.
pub fn copy_prefix(src: &Path, dst: &Path, end: Position) -> Result<PrefixReport, StoreError> {
    let dst_segments = dst.join(SEGMENTS_DIR);
    std::fs::create_dir_all(&dst_segments).map_err(|e| write_err(&dst_segments, e))?;
    // Segments created after `end` was taken start at or after it.
    let listing: Vec<_> = list_segments(&src.join(SEGMENTS_DIR))?
        .into_iter()
        .filter(|(first, _)| *first < end)
        .collect();
    let mut chain = Chain::new();
    let mut segments = Vec::with_capacity(listing.len());
    for (i, (first, path)) in listing.iter().enumerate() {
        follows(&chain, *first, path)?;
        // Where this segment's frames must end: the next segment's start.
        let stop = listing.get(i + 1).map_or(end, |(next, _)| *next);
        let file = File::open(path).map_err(|e| read_err(path, e))?;
        let len = file.metadata().map_err(|e| read_err(path, e))?.len();
        let mut window = Window::new(&file, len);
        let mut out = Output::create(dst_segments.join(segment_file_name(*first)))?;
        chain.start_segment();
        let mut at = 0;
        while chain.next < stop {
            let frame_end = next_frame(&mut window, path, at, &mut chain)?;
            if chain.next > stop {
                return Err(corrupt(
                    path,
                    at,
                    chain.next,
                    format!(
                        "the frame holding position {} runs past position {stop}",
                        stop - 1
                    ),
                ));
            }
            let bytes = window
                .get(at, (frame_end - at) as usize)
                .map_err(|e| read_err(path, e))?;
            out.write(bytes)?;
            at = frame_end;
        }
        if !chain.at_group_end(at) {
            return Err(corrupt(
                path,
                at,
                chain.next,
                format!("position {stop} is not where a commit group ends"),
            ));
        }
        segments.push(out.finish()?);
    }
    sync_dir(&dst_segments).map_err(|e| write_err(&dst_segments, e))?;
    Ok(PrefixReport {
        events: chain.next,
        last_hash: chain.last_hash,
        last_recorded_at_micros: chain.last_recorded_at,
        segments,
    })
}

/// A segment must start where the log before it ends.
fn follows(chain: &Chain, first: Position, path: &Path) -> Result<(), StoreError> {
    if first == chain.next {
        return Ok(());
    }
    Err(corrupt(
        path,
        0,
        chain.next,
        format!(
            "segment starts at position {first}, but the log before it ends at position {}",
            chain.next
        ),
    ))
}

/// Checks a log copied by [`copy_prefix`] (in `dir/segments/`): the first
/// segment starts at position 0, each next one where the one before ends,
/// every frame passes its checks and the hash chain holds from the first
/// event to the last, each file ends exactly at a commit group's end.
/// Reads only; takes no lock.
pub fn check_prefix(dir: &Path) -> Result<PrefixReport, StoreError> {
    let listing = list_segments(&dir.join(SEGMENTS_DIR))?;
    let mut chain = Chain::new();
    let mut segments = Vec::with_capacity(listing.len());
    for (first, path) in &listing {
        follows(&chain, *first, path)?;
        let file = File::open(path).map_err(|e| read_err(path, e))?;
        let len = file.metadata().map_err(|e| read_err(path, e))?.len();
        if len == 0 {
            return Err(corrupt(path, 0, chain.next, "the segment is empty"));
        }
        let mut window = Window::new(&file, len);
        chain.start_segment();
        let mut at = 0;
        while at < len {
            at = next_frame(&mut window, path, at, &mut chain)?;
        }
        if at != len || !chain.at_group_end(at) {
            return Err(corrupt(
                path,
                at,
                chain.next,
                "the segment does not end where a commit group ends",
            ));
        }
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        segments.push(SegmentFile {
            name,
            bytes: len,
            sha256: [0; 32],
        });
    }
    Ok(PrefixReport {
        events: chain.next,
        last_hash: chain.last_hash,
        last_recorded_at_micros: chain.last_recorded_at,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    use crate::api::{AppendRequest, EventStore, ExpectedVersion, NewEvent, StreamWrite};
    use crate::log::{LogOptions, LogStore};

    fn request(stream: &str, n: usize) -> AppendRequest {
        AppendRequest {
            writes: vec![StreamWrite {
                stream: stream.into(),
                expected: ExpectedVersion::Any,
                events: (0..n)
                    .map(|i| NewEvent {
                        event_type: "Tested".into(),
                        schema_version: 1,
                        metadata: Default::default(),
                        payload: Bytes::from(format!("payload {i}").into_bytes()),
                    })
                    .collect(),
            }],
        }
    }

    fn small_segments() -> LogOptions {
        LogOptions {
            segment_bytes: 4096,
            ..LogOptions::default()
        }
    }

    #[tokio::test]
    async fn a_copy_is_the_exact_prefix_and_opens() {
        let src = tempfile::tempdir().unwrap();
        let (store, _) = LogStore::open(src.path(), small_segments()).unwrap();
        for i in 0..40 {
            store.append(request(&format!("s-{}", i % 3), 3)).await.unwrap();
        }
        let end = *store.committed().borrow();
        let last = store.read_all(end - 1, 1).await.unwrap();
        // Appends after the position is taken are left out of the copy.
        store.append(request("s-late", 2)).await.unwrap();

        let dst = tempfile::tempdir().unwrap();
        let copied = copy_prefix(src.path(), dst.path(), end).unwrap();
        assert_eq!(copied.events, end);
        assert_eq!(copied.last_hash, last[0].hash);
        assert!(copied.segments.len() > 1, "the test wants several segments");

        let checked = check_prefix(dst.path()).unwrap();
        assert_eq!(checked.events, end);
        assert_eq!(checked.last_hash, copied.last_hash);
        let sizes: Vec<_> = checked.segments.iter().map(|s| (&s.name, s.bytes)).collect();
        let copied_sizes: Vec<_> = copied.segments.iter().map(|s| (&s.name, s.bytes)).collect();
        assert_eq!(sizes, copied_sizes);

        // The copy opens as a log of its own and reads back the same events.
        let (copy, report) = LogStore::open(dst.path(), small_segments()).unwrap();
        assert_eq!(report.events, end);
        assert_eq!(report.truncated_tail_bytes, 0);
        let original = store.read_all(0, end as usize).await.unwrap();
        let restored = copy.read_all(0, end as usize + 10).await.unwrap();
        assert_eq!(original, restored);
        // And it takes appends after the cut.
        copy.append(request("s-after", 1)).await.unwrap();
    }

    #[tokio::test]
    async fn a_flipped_byte_is_named_with_its_file() {
        let src = tempfile::tempdir().unwrap();
        let (store, _) = LogStore::open(src.path(), small_segments()).unwrap();
        for _ in 0..10 {
            store.append(request("s", 2)).await.unwrap();
        }
        let end = *store.committed().borrow();
        let dst = tempfile::tempdir().unwrap();
        let copied = copy_prefix(src.path(), dst.path(), end).unwrap();
        let path = dst.path().join(SEGMENTS_DIR).join(&copied.segments[0].name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
        match check_prefix(dst.path()) {
            Err(StoreError::Corrupt { file, .. }) => assert_eq!(file, path),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_destination_with_segments_is_refused() {
        let src = tempfile::tempdir().unwrap();
        let (store, _) = LogStore::open(src.path(), small_segments()).unwrap();
        store.append(request("s", 1)).await.unwrap();
        let end = *store.committed().borrow();
        let dst = tempfile::tempdir().unwrap();
        copy_prefix(src.path(), dst.path(), end).unwrap();
        assert!(copy_prefix(src.path(), dst.path(), end).is_err());
    }
}
