//! The in-memory index of the log and the read path.
//!
//! The index maps every position to its frame (one entry per commit, found by
//! binary search) and every stream to the positions of its versions
//! (`positions[v]` is version `v`). It also keeps the most recent events
//! decoded, so that live subscribers and loads of recently written streams do
//! not touch the files. Only the writer thread mutates it, under a short write
//! lock, after each group's fsync.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::{Position, ReadDirection, RecordedEvent, StreamName, Version};
use crate::error::{StoreError, corrupt};
use crate::memory::select_versions;

use super::codec::{EventBuilder, HEADER_BYTES, RawHeader, decode_body, frame_end};

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

#[derive(Debug)]
pub(crate) struct StreamEntry {
    pub name: StreamName,
    pub positions: Vec<Position>,
}

#[derive(Debug)]
pub(crate) struct Index {
    /// Number of committed events.
    pub next: Position,
    /// One entry per commit, by ascending position.
    pub frames: Vec<FrameLoc>,
    /// Append-only: ordinals are stable.
    pub segments: Vec<Arc<SegmentRef>>,
    /// Hashed with foldhash (randomly seeded per process): SipHash was a
    /// fifth of opening a log of millions of streams.
    pub stream_ids: HashMap<StreamName, u32, foldhash::fast::RandomState>,
    /// Append-only, by id: ids are stable (the snapshot writer relies on it).
    pub streams: Vec<StreamEntry>,
    /// The last `recent.len()` events, positions `next - recent.len() .. next`.
    pub recent: VecDeque<RecordedEvent>,
    pub recent_capacity: usize,
}

impl Index {
    pub fn new(recent_capacity: usize) -> Self {
        Self {
            next: 0,
            frames: Vec::new(),
            segments: Vec::new(),
            stream_ids: HashMap::default(),
            streams: Vec::new(),
            recent: VecDeque::new(),
            recent_capacity,
        }
    }

    /// The last version of `stream`.
    pub fn head(&self, stream: &str) -> Option<Version> {
        let id = *self.stream_ids.get(stream)?;
        Some(self.streams[id as usize].positions.len() as u64 - 1)
    }

    /// The id of `stream`, created if new.
    pub fn stream_id(&mut self, stream: &str) -> u32 {
        if let Some(&id) = self.stream_ids.get(stream) {
            return id;
        }
        let name = StreamName::from(stream);
        let id = self.streams.len() as u32;
        self.streams.push(StreamEntry {
            name: name.clone(),
            positions: Vec::new(),
        });
        self.stream_ids.insert(name, id);
        id
    }

    /// Like [`Self::stream_id`] with a name that is already an `Arc`.
    pub fn stream_id_for(&mut self, stream: &StreamName) -> u32 {
        if let Some(&id) = self.stream_ids.get(stream) {
            return id;
        }
        let id = self.streams.len() as u32;
        self.streams.push(StreamEntry {
            name: stream.clone(),
            positions: Vec::new(),
        });
        self.stream_ids.insert(stream.clone(), id);
        id
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

    /// Index in `frames` of the frame holding `position` (< next).
    fn frame_of(&self, position: Position) -> usize {
        self.frames
            .partition_point(|frame| frame.first_position <= position)
            .saturating_sub(1)
    }

    fn frame_read(&self, frame_index: usize) -> FrameRead {
        let loc = self.frames[frame_index];
        FrameRead {
            loc,
            segment: self.segments[loc.segment as usize].clone(),
        }
    }

    pub fn plan_read_all(&self, from: Position, max: usize) -> ReadPlan {
        let end = from.saturating_add(max as u64).min(self.next);
        let mut plan = ReadPlan::default();
        if from >= end {
            return plan;
        }
        let base = self.recent_base();
        let disk_end = end.min(base);
        if from < disk_end {
            let mut frame = self.frame_of(from);
            while frame < self.frames.len() && self.frames[frame].first_position < disk_end {
                plan.frames.push(self.frame_read(frame));
                frame += 1;
            }
            plan.slots.extend((from..disk_end).map(Slot::Disk));
        }
        for position in from.max(base)..end {
            plan.slots
                .push(Slot::Ready(self.recent[(position - base) as usize].clone()));
        }
        plan
    }

    pub fn plan_read_stream(
        &self,
        stream: &str,
        from: Version,
        direction: ReadDirection,
        max: usize,
    ) -> ReadPlan {
        let mut plan = ReadPlan::default();
        let Some(&id) = self.stream_ids.get(stream) else {
            return plan;
        };
        let base = self.recent_base();
        let mut last_frame = None;
        let mut disk = Vec::new();
        for position in select_versions(&self.streams[id as usize].positions, from, direction, max) {
            if position >= base {
                plan.slots
                    .push(Slot::Ready(self.recent[(position - base) as usize].clone()));
            } else {
                plan.slots.push(Slot::Disk(position));
                disk.push(position);
            }
        }
        // Frames in ascending order, each once.
        disk.sort_unstable();
        for position in disk {
            let frame = self.frame_of(position);
            if last_frame != Some(frame) {
                plan.frames.push(self.frame_read(frame));
                last_frame = Some(frame);
            }
        }
        plan
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
}

/// Largest single `pread` when fetching runs of adjacent frames.
const MAX_RUN_BYTES: u64 = 4 << 20;

impl ReadPlan {
    /// Bytes the plan will read from the files.
    pub fn disk_bytes(&self) -> u64 {
        self.frames.iter().map(|f| frame_end(0, f.loc.body_len)).sum()
    }

    /// Performs the file reads and assembles the result.
    pub fn execute(self) -> Result<Vec<RecordedEvent>, StoreError> {
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
