//! Opening the log: snapshot loading, the scan of the frames after it, and
//! torn-tail recovery. The rules are stated in [`crate::log`]'s docs.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::{ChainHash, GENESIS_HASH, Position};
use crate::chain::hash_input;
use crate::error::{StoreError, corrupt};

use super::CoveredFrames;
use super::codec::{BodyHeader, HEADER_BYTES, RawHeader, decode_body, decode_body_header, frame_end};
use super::fsutil::{SNAPSHOT_FILE, first_nonzero, list_segments, preallocate, sync_dir};
use super::index::{EndPoint, FrameLoc, Index, Memtable, SegmentRef};
use super::indexer::{INDEX_DIR, write_memtable};
use super::runs::{self, Run, RunEnd, RunFrame, StreamRecord, stream_hash};
use super::snapshot::{self, Loaded};
use super::verify::{CoverCheck, PendingCoverCheck};
use super::writer::{ActiveSegment, WriterState, create_segment};
use super::{LogOptions, OpenReport};

pub(crate) struct Recovered {
    pub index: Index,
    pub writer: WriterState,
    pub report: OpenReport,
    /// The verification of the frames under the index, when it goes on
    /// beside serving ([`CoveredFrames::VerifyInBackground`]).
    pub pending_verification: Option<PendingCoverCheck>,
}

fn io_err(path: &Path, what: &str, e: io::Error) -> StoreError {
    StoreError::io(format!("{what} {}", path.display()), e)
}

/// Sequential reads through a large buffer, so that scanning millions of
/// small frames costs few system calls.
pub(super) struct Window<'f> {
    pub file: &'f File,
    pub len: u64,
    start: u64,
    buf: Vec<u8>,
}

const WINDOW_BYTES: usize = 8 << 20;

impl<'f> Window<'f> {
    pub fn new(file: &'f File, len: u64) -> Self {
        Self {
            file,
            len,
            start: 0,
            buf: Vec::new(),
        }
    }

    /// `len` bytes at `offset`; the caller guarantees they are inside the file.
    pub fn get(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let inside = offset >= self.start && offset + len as u64 <= self.start + self.buf.len() as u64;
        if !inside {
            let want = len.max(WINDOW_BYTES).min((self.len - offset) as usize);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, offset)?;
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.buf[at..at + len])
    }
}

/// Scan state carried across frames and segments.
struct Scan {
    next: Position,
    last_hash: ChainHash,
    last_recorded_at: i64,
    /// Segment offset where the group of the last frame ends (the scan start
    /// offset when no frame was read yet in this segment, i.e. "a new group
    /// starts here").
    group_end: u64,
    group_first: Option<Position>,
    events_scanned: u64,
}

/// Why a frame could not be read, before deciding torn tail vs corruption.
struct BadFrame {
    reason: String,
    /// The frame's length when its header was consistent.
    body_len: Option<u32>,
}

enum Step {
    Frame { header: BodyHeader, end: u64 },
    End,
    Bad(BadFrame),
}

pub(crate) fn recover(dir: &Path, options: &LogOptions) -> Result<Recovered, StoreError> {
    let segments_dir = dir.join(super::fsutil::SEGMENTS_DIR);
    let listing = list_segments(&segments_dir)?;
    let mut index = Index::new(options.cache_events);
    for (first_position, path) in &listing {
        let file = File::open(path).map_err(|e| io_err(path, "opening", e))?;
        index.segments.push(Arc::new(SegmentRef {
            first_position: *first_position,
            path: path.clone(),
            file,
        }));
    }
    let index_dir = dir.join(INDEX_DIR);
    if !index_dir.exists() {
        std::fs::create_dir(&index_dir).map_err(|e| io_err(&index_dir, "creating", e))?;
        sync_dir(dir).map_err(|e| io_err(dir, "syncing", e))?;
    }
    let legacy = dir.join(SNAPSHOT_FILE);
    let legacy_exists = legacy.exists();
    let run_files = list_runs(&index_dir)?;

    // The frames the index covers are not scanned, but their checksums are
    // verified all the same (the log is read at disk speed): before open
    // returns, on another thread while the index loads; or, in the
    // background, from a thread started once the rest of the open is done,
    // so that its reads do not slow the open down.
    let index_exists = (!run_files.is_empty() || legacy_exists) && !index.segments.is_empty();
    let mut cover = match options.covered_frames {
        CoveredFrames::VerifyBeforeOpen if index_exists => {
            Some(CoverCheck::spawn(segment_list(&index), false)?)
        }
        _ => None,
    };

    let mut runs = load_runs(&index_dir, run_files, &index.segments);
    if legacy_exists {
        if runs.is_empty() {
            // A data directory of a build before the runs: its snapshot
            // becomes the first run (once; no scan of what it covers).
            if let Some(run) = upgrade_snapshot(dir, &index_dir, &index) {
                runs.push(Arc::new(run));
            }
        }
        // Covered by the runs now, or invalid: never read again.
        if let Err(e) = std::fs::remove_file(&legacy) {
            tracing::warn!(file = %legacy.display(), error = %e, "cannot remove the old index snapshot");
        }
    }

    let mut scan = Scan {
        next: 0,
        last_hash: GENESIS_HASH,
        last_recorded_at: 0,
        group_end: 0,
        group_first: None,
        events_scanned: 0,
    };
    let (mut ordinal, mut offset) = (0usize, 0u64);
    let from_index = !runs.is_empty();
    if let Some(last) = runs.last() {
        let resume = index
            .segments
            .binary_search_by_key(&last.run_end.segment, |s| s.first_position)
            .map_err(|_| StoreError::Fatal("a checked index run names an unknown segment".into()))?;
        scan.next = last.end;
        scan.last_hash = last.run_end.last_hash;
        scan.last_recorded_at = last.run_end.last_recorded_at;
        scan.group_end = last.run_end.offset;
        ordinal = resume;
        offset = last.run_end.offset;
        index.tail_end = (resume as u32, offset);
    }
    let last_segment_limit = (from_index && ordinal + 1 == index.segments.len()).then_some(offset);
    if let Some(cover) = &cover {
        cover.last_segment_limit(last_segment_limit);
    }
    if !from_index {
        // The scan reads everything.
        cover = None;
    }
    index.runs = runs;
    index.next = scan.next;
    index.tail = Memtable::new(scan.next);
    // What judging the verification needs: where the index says each
    // segment ends, and where the scan resumes.
    let covered = (from_index && index_exists).then_some((ordinal, offset));
    let segment_ends = match covered {
        Some((resume, _)) => (0..resume)
            .map(|o| index.segment_end(o))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let verified_bytes = match (cover, covered) {
        (Some(cover), Some((resume, resume_offset))) => PendingCoverCheck {
            cover,
            segment_ends: segment_ends.clone(),
            segments: index.segments.clone(),
            resume_segment: resume as u32,
            resume_offset,
        }
        .finish()?,
        _ => 0,
    };

    let mut truncated_tail_bytes = 0;
    let mut data_end = 0;
    let segment_count = index.segments.len();
    while ordinal < segment_count {
        let segment = index.segments[ordinal].clone();
        let is_last = ordinal + 1 == segment_count;
        if offset == 0 {
            if segment.first_position != scan.next {
                return Err(corrupt(
                    &segment.path,
                    0,
                    scan.next,
                    format!(
                        "segment starts at position {}, but the log before it ends at position {}",
                        segment.first_position, scan.next
                    ),
                ));
            }
            scan.group_end = 0;
            scan.group_first = None;
        }
        let (end, torn) = scan_segment(
            &segment,
            ordinal as u32,
            offset,
            is_last,
            &mut scan,
            &mut index,
            &index_dir,
            options.index_flush_events,
        )?;
        if is_last {
            data_end = end;
            truncated_tail_bytes = torn;
        }
        ordinal += 1;
        offset = 0;
    }

    let pending_verification = match (options.covered_frames, covered) {
        (CoveredFrames::VerifyInBackground, Some((resume, resume_offset))) => {
            let cover = CoverCheck::spawn(segment_list(&index), true)?;
            cover.last_segment_limit(last_segment_limit);
            Some(PendingCoverCheck {
                cover,
                segment_ends,
                segments: index.segments.clone(),
                resume_segment: resume as u32,
                resume_offset,
            })
        }
        _ => None,
    };

    // The active segment: the last one, or a new first one.
    let active = match index.segments.last() {
        Some(last) => {
            let path = last.path.clone();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_err(&path, "opening", e))?;
            let len = file.metadata().map_err(|e| io_err(&path, "inspecting", e))?.len();
            let target = len.max(options.segment_bytes);
            if truncated_tail_bytes > 0 {
                tracing::warn!(
                    segment = %path.display(),
                    offset = data_end,
                    bytes = truncated_tail_bytes,
                    "discarding a torn write at the end of the log (a commit that was never acknowledged)"
                );
                file.set_len(data_end)
                    .map_err(|e| io_err(&path, "truncating", e))?;
            }
            let allocated = if truncated_tail_bytes > 0 || len < target {
                match preallocate(&file, target) {
                    Ok(()) => target,
                    Err(e) => {
                        // Not fatal: the next append rolls over to a new
                        // segment and reports the full disk there.
                        tracing::warn!(error = ?e, segment = %path.display(), "cannot preallocate");
                        data_end
                    }
                }
            } else {
                len
            };
            file.sync_all().map_err(|e| io_err(&path, "syncing", e))?;
            ActiveSegment {
                file,
                ordinal: (index.segments.len() - 1) as u32,
                path,
                allocated,
                end: data_end,
            }
        }
        None => {
            let (file, path) = create_segment(&segments_dir, 0, options.segment_bytes)?;
            let reader = File::open(&path).map_err(|e| io_err(&path, "opening", e))?;
            index.segments.push(Arc::new(SegmentRef {
                first_position: 0,
                path: path.clone(),
                file: reader,
            }));
            ActiveSegment {
                file,
                ordinal: 0,
                path,
                allocated: options.segment_bytes,
                end: 0,
            }
        }
    };

    index.next = scan.next;
    let report = OpenReport {
        events: scan.next,
        truncated_tail_bytes,
        segments: index.segments.len(),
        index_loaded_from_snapshot: from_index,
        replayed_events_after_snapshot: scan.events_scanned,
        verified_bytes,
        verifying_in_background: pending_verification.is_some(),
    };
    Ok(Recovered {
        index,
        writer: WriterState {
            active,
            next: scan.next,
            last_hash: scan.last_hash,
            last_recorded_at: scan.last_recorded_at,
        },
        report,
        pending_verification,
    })
}

/// The segments to verify, in order: (path, first position).
fn segment_list(index: &Index) -> Vec<(PathBuf, Position)> {
    index
        .segments
        .iter()
        .map(|s| (s.path.clone(), s.first_position))
        .collect()
}

/// Checks that a structurally valid snapshot describes these segments: same
/// segment names, and its last frame is on disk where it says, ending at the
/// event count with the recorded last hash.
fn check_snapshot(loaded: &Loaded, index: &Index) -> Result<(), String> {
    if loaded.segments.len() > index.segments.len() {
        return Err("it names segments that do not exist".into());
    }
    for (ordinal, first) in loaded.segments.iter().enumerate() {
        if index.segments[ordinal].first_position != *first {
            return Err(format!("segment {ordinal} differs"));
        }
    }
    let point = &loaded.point;
    let resume = &index.segments[point.resume_segment as usize];
    let resume_len = resume.file.metadata().map_err(|e| e.to_string())?.len();
    if point.resume_offset > resume_len {
        return Err("it resumes past the end of its segment".into());
    }
    let Some(last) = loaded.frames.last() else {
        return if point.resume_segment == 0 && point.resume_offset == 0 && point.last_hash == GENESIS_HASH {
            Ok(())
        } else {
            Err("an empty snapshot must resume at the start".into())
        };
    };
    if last.segment != point.resume_segment || frame_end(last.offset, last.body_len) != point.resume_offset {
        return Err("its last frame does not end at the resume point".into());
    }
    let mut bytes = vec![0; HEADER_BYTES + last.body_len as usize];
    resume
        .file
        .read_exact_at(&mut bytes, last.offset)
        .map_err(|e| format!("cannot read its last frame: {e}"))?;
    let mut header = [0; HEADER_BYTES];
    header.copy_from_slice(&bytes[..HEADER_BYTES]);
    let header = RawHeader::parse(&header);
    let body = &bytes[HEADER_BYTES..];
    if !header.is_consistent() || header.body_len != last.body_len || crc32c::crc32c(body) != header.crc {
        return Err("its last frame is not on disk".into());
    }
    let mut last_hash = None;
    let body_header = decode_body(body, |view| {
        last_hash = Some(view.hash);
        Ok(())
    })?;
    if body_header.first_position != last.first_position
        || body_header.end_position() != point.next
        || last_hash != Some(point.last_hash)
    {
        return Err("its last frame differs from the log".into());
    }
    Ok(())
}

/// The run files of `dir` as (start, end, path); leftovers of interrupted
/// writes are removed.
fn list_runs(dir: &Path) -> Result<Vec<(Position, Position, PathBuf)>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, "listing", e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, "listing", e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some((start, end)) = runs::parse_file_name(&name) {
            out.push((start, end, entry.path()));
        } else if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The chain of runs from position 0 (at each start, the longest run that
/// opens), checked against the segments; every other run file is deleted.
/// A run that fails a check ends the chain: what it covered is scanned again.
fn load_runs(
    dir: &Path,
    files: Vec<(Position, Position, PathBuf)>,
    segments: &[Arc<SegmentRef>],
) -> Vec<Arc<Run>> {
    let mut chain: Vec<Arc<Run>> = Vec::new();
    let mut at = 0;
    loop {
        let mut candidates: Vec<&(Position, Position, PathBuf)> =
            files.iter().filter(|f| f.0 == at).collect();
        candidates.sort_by_key(|f| std::cmp::Reverse(f.1));
        let found = candidates.into_iter().find_map(|(start, end, path)| match Run::open(path) {
            Ok(run) if run.start == *start && run.end == *end => match run.verify_pages() {
                Ok(()) => Some(run),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "an index run is damaged; its events are indexed again");
                    None
                }
            },
            Ok(_) => {
                tracing::warn!(file = %path.display(), "an index run does not cover what its name says; ignored");
                None
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "an index run cannot be used; its events are indexed again");
                None
            }
        });
        match found {
            Some(run) => {
                at = run.end;
                chain.push(Arc::new(run));
            }
            None => break,
        }
    }
    // The chain must end where the log says it does.
    while let Some(last) = chain.last() {
        match check_run_end(last, segments) {
            Ok(()) => break,
            Err(reason) => {
                tracing::warn!(file = %last.path.display(), %reason, "an index run does not match the log; its events are indexed again");
                chain.pop();
            }
        }
    }
    for (_, _, path) in &files {
        if !chain.iter().any(|run| &run.path == path) {
            let _ = std::fs::remove_file(path);
        }
    }
    if !files.is_empty() {
        let _ = sync_dir(dir);
    }
    chain
}

/// Checks that the last frame of `run` is on disk where it says, ending at
/// the run's end with its recorded hash.
fn check_run_end(run: &Run, segments: &[Arc<SegmentRef>]) -> Result<(), String> {
    let last = run.last_frame().map_err(|e| e.to_string())?;
    let segment = segments
        .binary_search_by_key(&last.segment, |s| s.first_position)
        .map(|i| &segments[i])
        .map_err(|_| "it names a segment that does not exist".to_owned())?;
    if last.segment != run.run_end.segment || frame_end(last.offset, last.body_len) != run.run_end.offset {
        return Err("its last frame does not end at its resume point".into());
    }
    let mut bytes = vec![0; HEADER_BYTES + last.body_len as usize];
    segment
        .file
        .read_exact_at(&mut bytes, last.offset)
        .map_err(|e| format!("cannot read its last frame: {e}"))?;
    let mut header = [0; HEADER_BYTES];
    header.copy_from_slice(&bytes[..HEADER_BYTES]);
    let header = RawHeader::parse(&header);
    let body = &bytes[HEADER_BYTES..];
    if !header.is_consistent() || header.body_len != last.body_len || crc32c::crc32c(body) != header.crc {
        return Err("its last frame is not on disk".into());
    }
    let mut last_hash = None;
    let body_header = decode_body(body, |view| {
        last_hash = Some(view.hash);
        Ok(())
    })?;
    if body_header.first_position != last.first_position
        || body_header.end_position() != run.end
        || last_hash != Some(run.run_end.last_hash)
        || body_header.group_end != run.run_end.offset
    {
        return Err("its last frame differs from the log".into());
    }
    Ok(())
}

/// Turns a valid `index.snapshot` (written by builds before the runs) into
/// the run of the positions it covers. `None` (and a warning) when it is
/// invalid or cannot be written: the log is then scanned.
fn upgrade_snapshot(dir: &Path, index_dir: &Path, index: &Index) -> Option<Run> {
    let loaded = match snapshot::load(dir) {
        Ok(Some(loaded)) => match check_snapshot(&loaded, index) {
            Ok(()) => loaded,
            Err(reason) => {
                tracing::warn!(%reason, "the index snapshot does not match the log; scanning the whole log");
                return None;
            }
        },
        Ok(None) => return None,
        Err(reason) => {
            tracing::warn!(%reason, "the index snapshot is invalid; scanning the whole log");
            return None;
        }
    };
    if loaded.point.next == 0 {
        return None;
    }
    let started = std::time::Instant::now();
    let mut records: Vec<StreamRecord> = loaded
        .streams
        .into_iter()
        .map(|(name, positions)| StreamRecord {
            hash: stream_hash(name.as_str()),
            name: name.as_str().to_owned(),
            first_version: 0,
            positions,
        })
        .collect();
    runs::sort_records(&mut records);
    let frames: Vec<RunFrame> = loaded
        .frames
        .iter()
        .map(|f| RunFrame {
            first_position: f.first_position,
            segment: loaded.segments[f.segment as usize],
            offset: f.offset,
            body_len: f.body_len,
        })
        .collect();
    let point = loaded.point;
    let run_end = RunEnd {
        segment: loaded.segments[point.resume_segment as usize],
        offset: point.resume_offset,
        last_hash: point.last_hash,
        last_recorded_at: point.last_recorded_at,
    };
    match runs::write(index_dir, 0, point.next, run_end, &records, &frames) {
        Ok(run) => {
            tracing::info!(
                events = point.next,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "converted the index snapshot of an older version into an index run"
            );
            Some(run)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot convert the index snapshot; scanning the whole log");
            None
        }
    }
}

/// Scans one segment from `start`, adding its frames to the index. Returns
/// the end of its data and, for a torn tail in the last segment, how many
/// bytes were discarded (the caller truncates).
#[allow(clippy::too_many_arguments)]
fn scan_segment(
    segment: &SegmentRef,
    ordinal: u32,
    start: u64,
    is_last: bool,
    scan: &mut Scan,
    index: &mut Index,
    index_dir: &Path,
    flush_events: u64,
) -> Result<(u64, u64), StoreError> {
    let path = &segment.path;
    let file = &segment.file;
    let len = file.metadata().map_err(|e| io_err(path, "inspecting", e))?.len();
    let mut window = Window::new(file, len);
    let mut at = start;
    loop {
        let expected = scan.next;
        let step = read_frame(&mut window, at, scan, index, ordinal).map_err(|e| match e {
            FrameError::Io(e) => io_err(path, "reading", e),
            FrameError::Index(e) => e,
            FrameError::Corrupt(reason) => corrupt(path, at, expected, reason),
        })?;
        match step {
            Step::Frame { header, end } => {
                scan.group_first = Some(header.group_first_position);
                scan.group_end = header.group_end;
                at = end;
                index.tail_end = (ordinal, end);
                index.tail.end_point = Some(EndPoint {
                    segment: ordinal,
                    offset: end,
                    last_hash: scan.last_hash,
                    last_recorded_at: scan.last_recorded_at,
                });
                // A long scan (a rebuild) writes runs as it goes, at group
                // boundaries, so its memory stays bounded too.
                if flush_events > 0 && end == header.group_end && index.tail.events() >= flush_events {
                    match write_memtable(index_dir, &index.segments, &index.tail) {
                        Ok(run) => {
                            index.runs.push(Arc::new(run));
                            index.tail = Memtable::new(scan.next);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot write a log index run"),
                    }
                }
            }
            Step::End => return Ok((at, 0)),
            Step::Bad(bad) => {
                if !is_last {
                    return Err(corrupt(path, at, expected, bad.reason));
                }
                let discarded = torn_tail(&mut window, at, &bad, scan).map_err(|e| match e {
                    FrameError::Io(e) => io_err(path, "reading", e),
                    FrameError::Index(e) => e,
                    FrameError::Corrupt(reason) => corrupt(path, at, expected, reason),
                })?;
                return Ok((at, discarded));
            }
        }
    }
}

pub(super) enum FrameError {
    Io(io::Error),
    /// The index could not be read (its own error names the run).
    Index(StoreError),
    /// Corruption at the frame being read (the caller adds file and offset).
    Corrupt(String),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads the frame at `at`. A frame that fails its header or CRC check is
/// `Bad` (maybe torn); a frame that passes them but does not fit the log
/// (position, version, hash chain, group bookkeeping) is corruption, because
/// the CRC shows it was written that way.
fn read_frame(
    window: &mut Window<'_>,
    at: u64,
    scan: &mut Scan,
    index: &mut Index,
    ordinal: u32,
) -> Result<Step, FrameError> {
    let len = window.len;
    if at >= len {
        return Ok(Step::End);
    }
    if len - at < HEADER_BYTES as u64 {
        if first_nonzero(window.file, at, len)?.is_none() {
            return Ok(Step::End);
        }
        return Ok(Step::Bad(BadFrame {
            reason: "the file ends inside a frame header".into(),
            body_len: None,
        }));
    }
    let mut header_bytes = [0; HEADER_BYTES];
    header_bytes.copy_from_slice(window.get(at, HEADER_BYTES)?);
    if header_bytes == [0; HEADER_BYTES] {
        // Preallocated space: the data ends here if nothing follows.
        return Ok(match first_nonzero(window.file, at, len)? {
            None => Step::End,
            Some(z) => Step::Bad(BadFrame {
                reason: format!("a zeroed frame header is followed by data at offset {z}"),
                body_len: None,
            }),
        });
    }
    let header = RawHeader::parse(&header_bytes);
    if !header.is_consistent() {
        return Ok(Step::Bad(BadFrame {
            reason: "the frame header fails its length check".into(),
            body_len: None,
        }));
    }
    let body_len = header.body_len;
    let body_end = at + HEADER_BYTES as u64 + u64::from(body_len);
    if body_end > len {
        return Ok(Step::Bad(BadFrame {
            reason: format!("the frame ({body_len} bytes) extends past the end of the file"),
            body_len: Some(body_len),
        }));
    }
    let body = window.get(at + HEADER_BYTES as u64, body_len as usize)?;
    if crc32c::crc32c(body) != header.crc {
        return Ok(Step::Bad(BadFrame {
            reason: "CRC mismatch".into(),
            body_len: Some(body_len),
        }));
    }

    // From here on the bytes are as written: any inconsistency is corruption.
    let end = frame_end(at, body_len);
    let first = decode_body_header(body).map_err(FrameError::Corrupt)?;
    if first.first_position != scan.next {
        return Err(FrameError::Corrupt(format!(
            "frame starts at position {}, expected {}",
            first.first_position, scan.next
        )));
    }
    let new_group = first.group_first_position == first.first_position;
    let group_ok = if new_group {
        at == scan.group_end
    } else {
        scan.group_first == Some(first.group_first_position) && scan.group_end == first.group_end
    };
    // (`group_end` may lie past the end of a cut file: the earlier frames of
    // a torn group can be intact.)
    if !group_ok || first.group_end < end {
        return Err(FrameError::Corrupt(
            "commit-group bookkeeping does not match the frames before it".into(),
        ));
    }
    let mut prev = scan.last_hash;
    let mut index_error = None;
    let header = decode_body(body, |view| {
        let expected = hash_input(&prev, &view.hash_input());
        if expected != view.hash {
            return Err(format!("hash chain broken at position {}", view.position));
        }
        prev = expected;
        let head = match index.head(view.stream) {
            Ok(head) => head,
            Err(e) => {
                index_error = Some(e);
                return Err(String::new());
            }
        };
        let expected_version = head.map_or(0, |v| v + 1);
        if view.version != expected_version {
            return Err(format!(
                "stream {} jumps to version {} at position {}, expected version {}",
                view.stream, view.version, view.position, expected_version
            ));
        }
        index.tail.push_event(view.stream, view.version, view.position);
        Ok(())
    });
    if let Some(e) = index_error {
        return Err(FrameError::Index(e));
    }
    let header = header.map_err(FrameError::Corrupt)?;
    index.tail.frames.push(FrameLoc {
        first_position: header.first_position,
        offset: at,
        segment: ordinal,
        body_len,
    });
    scan.next = header.end_position();
    scan.last_hash = prev;
    scan.last_recorded_at = header.recorded_at_micros;
    scan.events_scanned += u64::from(header.event_count);
    index.next = scan.next;
    index.tail.end = scan.next;
    Ok(Step::Frame { header, end })
}

/// Decides whether the bad frame at `at` (in the last segment) starts a torn
/// tail — the remains of the last group write, never acknowledged — and
/// returns the number of bytes to discard; otherwise it is corruption.
fn torn_tail(window: &mut Window<'_>, at: u64, bad: &BadFrame, scan: &Scan) -> Result<u64, FrameError> {
    let len = window.len;
    // The bad frame belongs to the group of the frame before it if that group
    // extends past it: then the whole group extent may hold torn data.
    let known_group_end = (scan.group_end > at).then_some(scan.group_end);
    let mut torn_end = known_group_end.unwrap_or(match bad.body_len {
        Some(body_len) => frame_end(at, body_len),
        None => at + HEADER_BYTES as u64,
    });
    if let Some(z) = first_nonzero(window.file, torn_end, len)? {
        if known_group_end.is_some() {
            return Err(FrameError::Corrupt(format!(
                "{}, and data follows its commit group at offset {z}",
                bad.reason
            )));
        }
        // The bad frame starts a group whose extent it no longer tells. Disks
        // may persist the pages of an interrupted write in any order, so
        // later frames of the same group can be intact: find the next intact
        // frame. If it belongs to this group, its `group_end` bounds the torn
        // region; if it belongs to a later group, the bad frame was durable
        // (acknowledged) before: corruption.
        match find_next_frame(window, at + 8)? {
            Some((offset, found)) if found.group_first_position == scan.next => {
                torn_end = torn_end.max(found.group_end);
                if let Some(z) = first_nonzero(window.file, torn_end, len)? {
                    return Err(FrameError::Corrupt(format!(
                        "{}, and data follows its commit group (which ends at offset {}) at offset {z}; \
                         an intact frame of the group is at offset {offset}",
                        bad.reason, found.group_end
                    )));
                }
            }
            Some((offset, found)) => {
                return Err(FrameError::Corrupt(format!(
                    "{}, and an intact frame of a later commit (position {}) follows at offset {offset}",
                    bad.reason, found.first_position
                )));
            }
            None => {
                return Err(FrameError::Corrupt(format!(
                    "{}, and data follows at offset {z}",
                    bad.reason
                )));
            }
        }
    }
    Ok(torn_end.min(len) - at)
}

/// The first intact frame (consistent header, CRC, body header) at an
/// 8-aligned offset from `from` on.
pub(super) fn find_next_frame(
    window: &mut Window<'_>,
    from: u64,
) -> Result<Option<(u64, BodyHeader)>, FrameError> {
    let len = window.len;
    let mut at = from;
    while at + HEADER_BYTES as u64 <= len {
        let mut header_bytes = [0; HEADER_BYTES];
        header_bytes.copy_from_slice(window.get(at, HEADER_BYTES)?);
        if header_bytes == [0; HEADER_BYTES] {
            // Skip zeros in one go. A header's first non-zero byte is within
            // its first 8 bytes (the length complement is never zero).
            match first_nonzero(window.file, at, len)? {
                None => return Ok(None),
                Some(z) => {
                    at = (z & !7).max(at + 8);
                    continue;
                }
            }
        }
        let header = RawHeader::parse(&header_bytes);
        let body_end = at + HEADER_BYTES as u64 + u64::from(header.body_len);
        if header.is_consistent() && body_end <= len {
            let body = window.get(at + HEADER_BYTES as u64, header.body_len as usize)?;
            let intact = (crc32c::crc32c(body) == header.crc)
                .then(|| decode_body_header(body).ok())
                .flatten();
            if let Some(body_header) = intact {
                return Ok(Some((at, body_header)));
            }
        }
        at += 8;
    }
    Ok(None)
}
