//! The index of the log and the read path.
//!
//! The index maps every position to its frame and every stream to the
//! positions of its versions. Its bulk lives on disk in immutable runs
//! ([`super::runs`]), each covering a range of positions; the positions after
//! the last run are in memory, in the *tail* (a [`Memtable`]) and in the
//! *frozen* memtables waiting to be written as runs. A lookup consults the
//! tail, then the frozen memtables, then the runs, newest first. The index
//! also keeps the most recent events decoded, so that live subscribers and
//! loads of recently written streams do not touch the files. Only the writer
//! thread mutates the tail, under a short write lock, after each group's
//! fsync; the indexer threads swap frozen memtables for runs and runs for
//! their merge under the same lock.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::{ChainHash, Position, ReadDirection, RecordedEvent, StreamName, Version};
use crate::error::{StoreError, corrupt};

use super::codec::{EventBuilder, HEADER_BYTES, RawHeader, decode_body, frame_end};
use super::runs::{Run, RunError, RunFrame, stream_hash};

/// Where a commit's frame lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameLoc {
    /// Position of the frame's first event.
    pub first_position: Position,
    /// Offset of the frame header in its segment.
    pub offset: u64,
    /// Ordinal of the segment in [`Index::segments`].
    pub segment: u32,
    pub body_len: u32,
}

/// A segment file, open for reading.
#[derive(Debug)]
pub(crate) struct SegmentRef {
    pub first_position: Position,
    pub path: PathBuf,
    pub file: File,
}

/// A stream's events in a memtable: versions `first_version ..`, contiguous.
#[derive(Debug)]
pub(crate) struct TailStream {
    pub first_version: Version,
    pub positions: Vec<Position>,
}

impl TailStream {
    fn head(&self) -> Version {
        self.first_version + self.positions.len() as u64 - 1
    }
}

/// Where the log stands at the end of a memtable (a group boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndPoint {
    pub segment: u32,
    /// Offset just past the last frame.
    pub offset: u64,
    pub last_hash: ChainHash,
    pub last_recorded_at: i64,
}

/// The index of positions `start .. end`, in memory.
#[derive(Debug)]
pub(crate) struct Memtable {
    pub start: Position,
    pub end: Position,
    /// By ascending position.
    pub frames: Vec<FrameLoc>,
    /// Hashed with foldhash (randomly seeded per process): SipHash was a
    /// fifth of scanning a log of millions of streams.
    pub streams: HashMap<StreamName, TailStream, foldhash::fast::RandomState>,
    /// Set at every group boundary; `None` while empty.
    pub end_point: Option<EndPoint>,
}

impl Memtable {
    pub fn new(start: Position) -> Self {
        Self {
            start,
            end: start,
            frames: Vec::new(),
            streams: HashMap::default(),
            end_point: None,
        }
    }

    pub fn events(&self) -> u64 {
        self.end - self.start
    }

    /// Adds `count` events of `stream` at contiguous positions from
    /// `first_position`, versions from `first_version` (the writer checked
    /// them against [`Index::head`]).
    pub fn push_events(
        &mut self,
        stream: &StreamName,
        first_version: Version,
        first_position: Position,
        count: u64,
    ) {
        match self.streams.get_mut(stream.as_str()) {
            Some(entry) => entry.positions.extend(first_position..first_position + count),
            None => {
                self.streams.insert(
                    stream.clone(),
                    TailStream {
                        first_version,
                        positions: (first_position..first_position + count).collect(),
                    },
                );
            }
        }
    }

    /// Adds one event (recovery's scan, which checked its version).
    pub fn push_event(&mut self, stream: &str, version: Version, position: Position) {
        match self.streams.get_mut(stream) {
            Some(entry) => entry.positions.push(position),
            None => {
                self.streams.insert(
                    StreamName::from(stream),
                    TailStream {
                        first_version: version,
                        positions: vec![position],
                    },
                );
            }
        }
    }

    fn frame_of(&self, position: Position) -> Option<FrameLoc> {
        let i = self.frames.partition_point(|f| f.first_position <= position);
        i.checked_sub(1).map(|i| self.frames[i])
    }
}

/// The in-memory tail of the index is frozen at most this many times ahead
/// of the indexer before appends wait for it.
pub(crate) const MAX_FROZEN: usize = 4;

#[derive(Debug)]
pub(crate) struct Index {
    /// Number of committed events.
    pub next: Position,
    /// Append-only: ordinals are stable.
    pub segments: Vec<Arc<SegmentRef>>,
    /// On disk, by ascending range, contiguous from position 0.
    pub runs: Vec<Arc<Run>>,
    /// Waiting to be written as runs, oldest first, contiguous with the runs.
    pub frozen: VecDeque<Arc<Memtable>>,
    /// Everything after the frozen memtables.
    pub tail: Memtable,
    /// Segment ordinal and end offset of the last committed frame.
    pub tail_end: (u32, u64),
    /// The last `recent.len()` events, positions `next - recent.len() .. next`.
    pub recent: VecDeque<RecordedEvent>,
    pub recent_capacity: usize,
}

/// A read error of a run: the run is set aside (renamed `*.damaged`), so the
/// next open scans its range from the segments again, and the read fails.
pub(crate) fn run_error(run: &Run, error: RunError) -> StoreError {
    match error {
        RunError::Io(e) => StoreError::io(format!("reading the log index {}", run.path.display()), e),
        RunError::Damaged { offset, reason } => {
            let aside = run.path.with_extension("damaged");
            let _ = std::fs::rename(&run.path, &aside);
            tracing::error!(
                file = %run.path.display(),
                offset,
                %reason,
                "the log index is damaged; it is rebuilt from the segments on the next start"
            );
            StoreError::Corrupt {
                file: run.path.clone(),
                offset,
                position: None,
                reason: format!("log index: {reason}"),
            }
        }
    }
}

impl Index {
    pub fn new(recent_capacity: usize) -> Self {
        Self {
            next: 0,
            segments: Vec::new(),
            runs: Vec::new(),
            frozen: VecDeque::new(),
            tail: Memtable::new(0),
            tail_end: (0, 0),
            recent: VecDeque::new(),
            recent_capacity,
        }
    }

    /// The last version of `stream`.
    pub fn head(&self, stream: &str) -> Result<Option<Version>, StoreError> {
        if let Some(entry) = self.tail.streams.get(stream) {
            return Ok(Some(entry.head()));
        }
        for memtable in self.frozen.iter().rev() {
            if let Some(entry) = memtable.streams.get(stream) {
                return Ok(Some(entry.head()));
            }
        }
        let hash = stream_hash(stream);
        for run in self.runs.iter().rev() {
            if let Some(record) = run.find_stream(stream, hash).map_err(|e| run_error(run, e))? {
                return Ok(Some(record.first_version + record.positions.len() as u64 - 1));
            }
        }
        Ok(None)
    }

    /// The positions of versions `lo ..= hi` of `stream` (which exist), in
    /// version order.
    fn positions(&self, stream: &str, lo: Version, hi: Version) -> Result<Vec<Position>, StoreError> {
        // Pieces newest first, each a contiguous range of versions.
        let mut pieces: Vec<Vec<Position>> = Vec::new();
        let mut want_hi = hi;
        let mut take = |first_version: Version, positions: &[Position]| -> bool {
            let last = first_version + positions.len() as u64 - 1;
            if first_version <= want_hi && last >= lo {
                let from = lo.max(first_version) - first_version;
                let to = want_hi.min(last) - first_version;
                pieces.push(positions[from as usize..=to as usize].to_vec());
            }
            if first_version <= lo {
                return true;
            }
            want_hi = want_hi.min(first_version - 1);
            false
        };
        let mut done = false;
        if let Some(entry) = self.tail.streams.get(stream) {
            done = take(entry.first_version, &entry.positions);
        }
        for memtable in self.frozen.iter().rev() {
            if done {
                break;
            }
            if let Some(entry) = memtable.streams.get(stream) {
                done = take(entry.first_version, &entry.positions);
            }
        }
        if !done {
            let hash = stream_hash(stream);
            for run in self.runs.iter().rev() {
                if let Some(record) = run.find_stream(stream, hash).map_err(|e| run_error(run, e))?
                    && take(record.first_version, &record.positions)
                {
                    done = true;
                    break;
                }
            }
        }
        let positions: Vec<Position> = pieces.into_iter().rev().flatten().collect();
        if !done || positions.len() as u64 != hi - lo + 1 {
            return Err(StoreError::Corrupt {
                file: PathBuf::from("<index>"),
                offset: 0,
                position: None,
                reason: format!("the index misses versions {lo}..={hi} of stream {stream}"),
            });
        }
        Ok(positions)
    }

    /// The ordinal of the segment starting at `first_position`.
    fn ordinal(&self, run: &Run, frame: &RunFrame) -> Result<FrameLoc, StoreError> {
        let i = self
            .segments
            .binary_search_by_key(&frame.segment, |s| s.first_position)
            .map_err(|_| {
                run_error(
                    run,
                    RunError::Damaged {
                        offset: 0,
                        reason: format!(
                            "it names a segment starting at {} that does not exist",
                            frame.segment
                        ),
                    },
                )
            })?;
        Ok(FrameLoc {
            first_position: frame.first_position,
            offset: frame.offset,
            segment: i as u32,
            body_len: frame.body_len,
        })
    }

    /// The frames holding positions `from .. to` (< next), in order.
    pub fn frames_between(&self, from: Position, to: Position) -> Result<Vec<FrameLoc>, StoreError> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        let first_run = self.runs.partition_point(|r| r.end <= from);
        for run in &self.runs[first_run..] {
            if run.start >= to {
                break;
            }
            for frame in run
                .frames_between(from.max(run.start), to.min(run.end))
                .map_err(|e| run_error(run, e))?
            {
                out.push(self.ordinal(run, &frame)?);
            }
        }
        for memtable in self
            .frozen
            .iter()
            .map(|m| m.as_ref())
            .chain(std::iter::once(&self.tail))
        {
            if memtable.end <= from || memtable.start >= to || memtable.frames.is_empty() {
                continue;
            }
            let lo = memtable
                .frames
                .partition_point(|f| f.first_position <= from.max(memtable.start))
                .saturating_sub(1);
            let hi = memtable.frames.partition_point(|f| f.first_position < to);
            out.extend_from_slice(&memtable.frames[lo..hi]);
        }
        Ok(out)
    }

    /// The frame holding `position` (< next).
    fn frame_of(&self, position: Position) -> Result<FrameLoc, StoreError> {
        if position >= self.tail.start
            && let Some(frame) = self.tail.frame_of(position)
        {
            return Ok(frame);
        }
        for memtable in &self.frozen {
            if (memtable.start..memtable.end).contains(&position)
                && let Some(frame) = memtable.frame_of(position)
            {
                return Ok(frame);
            }
        }
        self.frames_between(position, position + 1)?
            .first()
            .copied()
            .ok_or_else(|| StoreError::Corrupt {
                file: PathBuf::from("<index>"),
                offset: 0,
                position: Some(position),
                reason: format!("the index has no frame for position {position}"),
            })
    }

    /// End of the committed frames of segment `ordinal` (0 when it has none).
    pub fn segment_end(&self, ordinal: usize) -> Result<u64, StoreError> {
        let Some(segment) = self.segments.get(ordinal) else {
            return Ok(0);
        };
        if ordinal as u32 == self.tail_end.0 {
            return Ok(self.tail_end.1);
        }
        // The segment's last frame holds the position before the next
        // segment's first (or before the end of the log).
        let after = self
            .segments
            .get(ordinal + 1)
            .map_or(self.next, |next| next.first_position);
        if after == 0 || after <= segment.first_position {
            return Ok(0);
        }
        let frame = self.frame_of(after - 1)?;
        Ok(if frame.segment as usize == ordinal {
            frame_end(frame.offset, frame.body_len)
        } else {
            0
        })
    }

    fn recent_base(&self) -> Position {
        self.next - self.recent.len() as Position
    }

    /// Moves `events` (just committed) into the recent cache; the events it
    /// evicts go to `evicted`, for the caller to drop outside the lock.
    pub fn push_recent(&mut self, events: &mut Vec<RecordedEvent>, evicted: &mut Vec<RecordedEvent>) {
        if self.recent_capacity == 0 {
            evicted.append(events);
            return;
        }
        let overflow = (self.recent.len() + events.len()).saturating_sub(self.recent_capacity);
        let from_recent = overflow.min(self.recent.len());
        evicted.extend(self.recent.drain(..from_recent));
        // A group larger than the cache: only its tail stays.
        let skip = overflow - from_recent;
        evicted.extend(events.drain(..skip));
        self.recent.extend(events.drain(..));
    }

    fn frame_read(&self, loc: FrameLoc) -> FrameRead {
        FrameRead {
            loc,
            segment: self.segments[loc.segment as usize].clone(),
        }
    }

    pub fn plan_read_all(&self, from: Position, max: usize) -> Result<ReadPlan, StoreError> {
        let end = from.saturating_add(max as u64).min(self.next);
        let mut plan = ReadPlan::default();
        if from >= end {
            return Ok(plan);
        }
        // One slot per position: grown one at a time, a batch of thousands
        // of events was copied a dozen times over (fresh pages each time).
        plan.slots.reserve_exact((end - from) as usize);
        let base = self.recent_base();
        let disk_end = end.min(base);
        if from < disk_end {
            for loc in self.frames_between(from, disk_end)? {
                plan.frames.push(self.frame_read(loc));
            }
            plan.slots.extend((from..disk_end).map(Slot::Disk));
        }
        for position in from.max(base)..end {
            plan.slots
                .push(Slot::Ready(self.recent[(position - base) as usize].clone()));
        }
        Ok(plan)
    }

    pub fn plan_read_stream(
        &self,
        stream: &str,
        from: Version,
        direction: ReadDirection,
        max: usize,
    ) -> Result<ReadPlan, StoreError> {
        let mut plan = ReadPlan::default();
        let Some(head) = self.head(stream)? else {
            return Ok(plan);
        };
        if max == 0 {
            return Ok(plan);
        }
        let span = max as u64 - 1;
        let (lo, hi) = match direction {
            ReadDirection::Forward if from > head => return Ok(plan),
            ReadDirection::Forward => (from, head.min(from.saturating_add(span))),
            ReadDirection::Backward => {
                let hi = from.min(head);
                (hi.saturating_sub(span), hi)
            }
        };
        let mut positions = self.positions(stream, lo, hi)?;
        if direction == ReadDirection::Backward {
            positions.reverse();
        }
        let base = self.recent_base();
        let mut disk = Vec::new();
        for position in positions {
            if position >= base {
                plan.slots
                    .push(Slot::Ready(self.recent[(position - base) as usize].clone()));
            } else {
                plan.slots.push(Slot::Disk(position));
                disk.push(position);
            }
        }
        // Frames in ascending order, each once. Positions in the runs are
        // looked up page by page: a long stream has many events per page.
        disk.sort_unstable();
        let mut last = None;
        let mut page: Option<(usize, Position, Position, Vec<RunFrame>)> = None;
        for position in disk {
            let frame = if position < self.runs.last().map_or(0, |r| r.end) {
                let r = self.runs.partition_point(|r| r.end <= position);
                let run = &self.runs[r];
                let cached = page
                    .as_ref()
                    .is_some_and(|(pr, from, to, _)| *pr == r && (*from..*to).contains(&position));
                if !cached {
                    let (i, from, to) = run.frame_page_for(position);
                    let frames = run.frame_page(i).map_err(|e| run_error(run, e))?;
                    page = Some((r, from, to, frames));
                }
                let (_, _, _, frames) = page
                    .as_ref()
                    .ok_or_else(|| StoreError::Fatal("no frame page".into()))?;
                let at = frames
                    .partition_point(|f| f.first_position <= position)
                    .saturating_sub(1);
                let found = frames.get(at).ok_or_else(|| {
                    run_error(
                        run,
                        RunError::Damaged {
                            offset: 0,
                            reason: "an empty frame page".into(),
                        },
                    )
                })?;
                self.ordinal(run, found)?
            } else {
                self.frame_of(position)?
            };
            if last != Some(frame.first_position) {
                plan.frames.push(self.frame_read(frame));
                last = Some(frame.first_position);
            }
        }
        Ok(plan)
    }
}

#[derive(Debug)]
pub(crate) enum Slot {
    Ready(RecordedEvent),
    Disk(Position),
}

#[derive(Debug)]
pub(crate) struct FrameRead {
    loc: FrameLoc,
    segment: Arc<SegmentRef>,
}

/// What a read returns, in order, and the frames to fetch for the slots that
/// are not in memory. Built under the index lock, executed without it.
#[derive(Debug, Default)]
pub(crate) struct ReadPlan {
    pub slots: Vec<Slot>,
    pub frames: Vec<FrameRead>,
    /// For a stream read: the stream every event must belong to. The index
    /// is a cache: what it points to is checked against the log itself.
    pub stream: Option<StreamName>,
}

/// Largest single `pread` when fetching runs of adjacent frames.
const MAX_RUN_BYTES: u64 = 4 << 20;

impl ReadPlan {
    /// Bytes the plan will read from the files.
    pub fn disk_bytes(&self) -> u64 {
        self.frames.iter().map(|f| frame_end(0, f.loc.body_len)).sum()
    }

    /// Checks on execution that every event is of `stream`, with
    /// consecutive versions.
    pub fn expecting(mut self, stream: StreamName) -> Self {
        self.stream = Some(stream);
        self
    }

    /// Performs the file reads and assembles the result.
    pub fn execute(self) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = self.stream.clone();
        let events = self.execute_unchecked()?;
        if let Some(stream) = stream {
            let consecutive = events
                .windows(2)
                .all(|w| w[0].version.abs_diff(w[1].version) == 1);
            if let Some(wrong) = events
                .iter()
                .find(|e| e.stream != stream)
                .or_else(|| (!consecutive).then(|| &events[0]))
            {
                return Err(StoreError::Corrupt {
                    file: PathBuf::from("<index>"),
                    offset: 0,
                    position: Some(wrong.position),
                    reason: format!(
                        "the index points stream {stream} to position {}, which holds version {} of {}",
                        wrong.position, wrong.version, wrong.stream
                    ),
                });
            }
        }
        Ok(events)
    }

    fn execute_unchecked(self) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.frames.is_empty() {
            return Ok(self
                .slots
                .into_iter()
                .filter_map(|slot| match slot {
                    Slot::Ready(event) => Some(event),
                    Slot::Disk(_) => None,
                })
                .collect());
        }
        let mut wanted: Vec<Position> = self
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Disk(position) => Some(*position),
                Slot::Ready(_) => None,
            })
            .collect();
        wanted.sort_unstable();
        let mut decoded: Vec<RecordedEvent> = Vec::with_capacity(wanted.len());
        let mut buf = Vec::new();
        let mut i = 0;
        while i < self.frames.len() {
            // A run of frames adjacent in one segment, read with one pread.
            let first = &self.frames[i];
            let mut j = i + 1;
            let mut run_end = frame_end(first.loc.offset, first.loc.body_len);
            while j < self.frames.len() {
                let next = &self.frames[j];
                if !Arc::ptr_eq(&next.segment, &first.segment)
                    || next.loc.offset != run_end
                    || run_end - first.loc.offset >= MAX_RUN_BYTES
                {
                    break;
                }
                run_end = frame_end(next.loc.offset, next.loc.body_len);
                j += 1;
            }
            // The last frame's padding may not be written yet: read up to
            // the end of its body only.
            let last = &self.frames[j - 1];
            let read_end = last.loc.offset + (HEADER_BYTES as u64) + u64::from(last.loc.body_len);
            let len = (read_end - first.loc.offset) as usize;
            buf.resize(len, 0);
            first
                .segment
                .file
                .read_exact_at(&mut buf, first.loc.offset)
                .map_err(|e| {
                    StoreError::io(
                        format!(
                            "reading {} at offset {}",
                            first.segment.path.display(),
                            first.loc.offset
                        ),
                        e,
                    )
                })?;
            for frame in &self.frames[i..j] {
                let at = (frame.loc.offset - first.loc.offset) as usize;
                decode_frame_into(&buf[at..], frame, &wanted, &mut decoded)?;
            }
            i = j;
        }
        // Each position is asked for once, so decoded events are moved out,
        // not cloned.
        let positions: Vec<Position> = decoded.iter().map(|event| event.position).collect();
        let mut decoded: Vec<Option<RecordedEvent>> = decoded.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            match slot {
                Slot::Ready(event) => out.push(event),
                Slot::Disk(position) => {
                    let found = positions
                        .binary_search(&position)
                        .ok()
                        .and_then(|found| decoded[found].take())
                        .ok_or_else(|| StoreError::Corrupt {
                            file: PathBuf::from("<index>"),
                            offset: position,
                            position: Some(position),
                            reason: format!(
                                "the index points position {position} to a frame that does not hold it"
                            ),
                        })?;
                    out.push(found);
                }
            }
        }
        Ok(out)
    }
}

/// Checks and decodes the frame at the start of `bytes`, pushing the events
/// whose positions are in `wanted` (sorted) to `out`.
fn decode_frame_into(
    bytes: &[u8],
    frame: &FrameRead,
    wanted: &[Position],
    out: &mut Vec<RecordedEvent>,
) -> Result<(), StoreError> {
    let path = &frame.segment.path;
    let offset = frame.loc.offset;
    let corrupt =
        |path: &Path, offset, reason: String| corrupt(path, offset, frame.loc.first_position, reason);
    let header_bytes: &[u8; HEADER_BYTES] = bytes
        .get(..HEADER_BYTES)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt(path, offset, "short frame".into()))?;
    let header = RawHeader::parse(header_bytes);
    if !header.is_consistent() || header.body_len != frame.loc.body_len {
        return Err(corrupt(
            path,
            offset,
            "frame header does not match the index".into(),
        ));
    }
    let body = bytes
        .get(HEADER_BYTES..HEADER_BYTES + header.body_len as usize)
        .ok_or_else(|| corrupt(path, offset, "short frame".into()))?;
    if crc32c::crc32c(body) != header.crc {
        return Err(corrupt(path, offset, "CRC mismatch".into()));
    }
    let mut builder = EventBuilder::default();
    let body_header = decode_body(body, |view| {
        if wanted.binary_search(&view.position).is_ok() {
            out.push(builder.build(view)?);
        }
        Ok(())
    })
    .map_err(|reason| corrupt(path, offset, reason))?;
    if body_header.first_position != frame.loc.first_position {
        return Err(corrupt(
            path,
            offset,
            format!(
                "frame starts at position {}, the index says {}",
                body_header.first_position, frame.loc.first_position
            ),
        ));
    }
    Ok(())
}
