//! The index snapshot of builds before the on-disk runs: the whole in-memory
//! index up to some position. Read once, on the first open by this build,
//! and converted into the first run (then deleted); never written any more,
//! except by [`encode`] for the tests and fuzzers of that upgrade. A missing
//! or invalid snapshot costs a full scan, nothing else. Format in
//! [`crate::log`]'s docs.

use std::io;
use std::path::Path;

use crate::api::{ChainHash, Position, StreamName};

use super::fsutil::SNAPSHOT_FILE;
use super::index::FrameLoc;

const MAGIC: &[u8; 8] = b"PCLOGIX2";

/// LEB128: 7 bits per byte, low bits first, high bit set on all but the last.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The state of the log at a group boundary, which a snapshot records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotPoint {
    /// Number of events covered.
    pub next: Position,
    /// Hash of the event at `next - 1` (genesis when `next` is 0).
    pub last_hash: ChainHash,
    pub last_recorded_at: i64,
    /// Ordinal of the segment in which the scan resumes.
    pub resume_segment: u32,
    /// Offset in that segment of the first frame not covered.
    pub resume_offset: u64,
}

/// A snapshot read back from disk (structurally valid; its agreement with the
/// segments is checked by the caller).
#[derive(Debug)]
pub(crate) struct Loaded {
    pub point: SnapshotPoint,
    /// First position of each segment, by ordinal.
    pub segments: Vec<Position>,
    pub frames: Vec<FrameLoc>,
    pub streams: Vec<(StreamName, Vec<Position>)>,
}

/// The bytes of the snapshot of `loaded`, as builds before the runs wrote
/// them (for the tests and fuzzers of the upgrade).
pub(crate) fn encode(loaded: &Loaded) -> Vec<u8> {
    let point = &loaded.point;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&point.next.to_le_bytes());
    out.extend_from_slice(&point.last_hash);
    out.extend_from_slice(&point.last_recorded_at.to_le_bytes());
    out.extend_from_slice(&point.resume_segment.to_le_bytes());
    out.extend_from_slice(&point.resume_offset.to_le_bytes());
    out.extend_from_slice(&(loaded.segments.len() as u32).to_le_bytes());
    for first in &loaded.segments {
        out.extend_from_slice(&first.to_le_bytes());
    }
    out.extend_from_slice(&(loaded.frames.len() as u64).to_le_bytes());
    let mut prev = FrameDelta::default();
    for frame in &loaded.frames {
        prev.put(&mut out, frame);
    }
    for (name, positions) in &loaded.streams {
        out.push(1);
        out.extend_from_slice(&(name.as_str().len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(&(positions.len() as u64).to_le_bytes());
        let mut last = 0;
        for &position in positions {
            put_varint(&mut out, position - last);
            last = position;
        }
    }
    out.push(0);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Delta state of the frame table (see [`encode`]).
#[derive(Debug, Default)]
struct FrameDelta {
    first_position: Position,
    segment: u32,
    end: u64,
}

impl FrameDelta {
    /// `first_position` delta, segment delta, offset (from the previous
    /// frame's end in the same segment, else from 0), body length: varints.
    fn put(&mut self, out: &mut Vec<u8>, frame: &FrameLoc) {
        let base = if frame.segment == self.segment {
            self.end
        } else {
            0
        };
        put_varint(out, frame.first_position.wrapping_sub(self.first_position));
        put_varint(out, u64::from(frame.segment.wrapping_sub(self.segment)));
        put_varint(out, frame.offset.wrapping_sub(base));
        put_varint(out, u64::from(frame.body_len));
        self.advance(frame);
    }

    fn get(&mut self, r: &mut Reader<'_>) -> Result<FrameLoc, String> {
        let first_position = self.first_position.wrapping_add(r.varint()?);
        let segment = self
            .segment
            .wrapping_add(u32::try_from(r.varint()?).map_err(|_| "bad segment")?);
        let base = if segment == self.segment { self.end } else { 0 };
        let frame = FrameLoc {
            first_position,
            offset: base.wrapping_add(r.varint()?),
            segment,
            body_len: u32::try_from(r.varint()?).map_err(|_| "bad frame length")?,
        };
        // Where the frame ends (padding included) must be a file offset:
        // one near `u64::MAX` would overflow computing it.
        frame
            .offset
            .checked_add(super::codec::HEADER_BYTES as u64 + u64::from(frame.body_len) + 7)
            .ok_or("bad frame table")?;
        self.advance(&frame);
        Ok(frame)
    }

    fn advance(&mut self, frame: &FrameLoc) {
        self.first_position = frame.first_position;
        self.segment = frame.segment;
        self.end = super::codec::frame_end(frame.offset, frame.body_len);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("truncated")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    /// A count of items of at least `item_bytes` each, checked against what is
    /// left so that a garbled count cannot make us allocate wildly.
    fn count(&mut self, item_bytes: usize) -> Result<usize, String> {
        let count = usize::try_from(self.u64()?).map_err(|_| "count too large")?;
        if count.saturating_mul(item_bytes) > self.bytes.len() - self.at {
            return Err("count larger than the file".into());
        }
        Ok(count)
    }
}

/// Reads the snapshot of `dir`: `Ok(None)` when there is none, `Err(reason)`
/// when it is invalid.
pub(crate) fn load(dir: &Path) -> Result<Option<Loaded>, String> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    parse(&bytes).map(Some)
}

/// Decodes the bytes of a snapshot file: `Err(reason)` when they are not a
/// valid snapshot (checksum, structure).
pub(crate) fn parse(bytes: &[u8]) -> Result<Loaded, String> {
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a snapshot of this format".into());
    }
    let (content, trailer) = bytes.split_at(bytes.len() - 4);
    let mut crc = [0; 4];
    crc.copy_from_slice(trailer);
    if crc32c::crc32c(content) != u32::from_le_bytes(crc) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader {
        bytes: content,
        at: MAGIC.len(),
    };
    let point = SnapshotPoint {
        next: r.u64()?,
        last_hash: r.array()?,
        last_recorded_at: r.u64()? as i64,
        resume_segment: r.u32()?,
        resume_offset: r.u64()?,
    };
    let segment_count = r.u32()? as usize;
    if segment_count == 0 || segment_count > (content.len() - r.at) / 8 {
        return Err("bad segment table".into());
    }
    let segments = (0..segment_count)
        .map(|_| r.u64())
        .collect::<Result<Vec<_>, _>>()?;
    if point.resume_segment as usize != segment_count - 1 {
        return Err("the resume segment is not the last one".into());
    }
    if segments.windows(2).any(|w| w[0] >= w[1]) {
        return Err("segment table out of order".into());
    }
    let frame_count = r.count(4)?;
    let mut frames = Vec::with_capacity(frame_count);
    let mut delta = FrameDelta::default();
    for _ in 0..frame_count {
        let frame = delta.get(&mut r)?;
        let in_order = frames
            .last()
            .is_none_or(|prev: &FrameLoc| prev.first_position < frame.first_position);
        let first_ok = !frames.is_empty() || frame.first_position == 0;
        if !in_order
            || !first_ok
            || frame.first_position >= point.next
            || frame.segment as usize >= segment_count
        {
            return Err("bad frame table".into());
        }
        frames.push(frame);
    }
    if (point.next == 0) != frames.is_empty() {
        return Err("frame table does not match the event count".into());
    }
    let mut streams = Vec::new();
    let mut total = 0u64;
    loop {
        match r.take(1)?[0] {
            0 => break,
            1 => {}
            _ => return Err("bad stream record".into()),
        }
        let name_len = r.u32()? as usize;
        let name = std::str::from_utf8(r.take(name_len)?).map_err(|_| "stream name is not UTF-8")?;
        let count = r.count(1)?;
        if count == 0 {
            return Err("empty stream".into());
        }
        let mut positions = Vec::with_capacity(count);
        let mut position = 0u64;
        for i in 0..count {
            let delta = r.varint()?;
            if i > 0 && delta == 0 {
                return Err("bad stream positions".into());
            }
            position = position.checked_add(delta).ok_or("bad stream positions")?;
            if position >= point.next {
                return Err("bad stream positions".into());
            }
            positions.push(position);
        }
        total += count as u64;
        streams.push((StreamName::from(name), positions));
    }
    if r.at != content.len() {
        return Err("trailing bytes".into());
    }
    if total != point.next {
        return Err("stream positions do not add up to the event count".into());
    }
    Ok(Loaded {
        point,
        segments,
        frames,
        streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot of one segment and one frame, `offset` and `body_len`
    /// as given (the frame's position 0, one stream of one event).
    fn one_frame(offset: u64, body_len: u64) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&1u64.to_le_bytes()); // one event
        out.extend_from_slice(&[0; 32]);
        out.extend_from_slice(&0i64.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // resume segment
        out.extend_from_slice(&4096u64.to_le_bytes()); // resume offset
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // segment 0
        out.extend_from_slice(&1u64.to_le_bytes()); // one frame
        for value in [0, 0, offset, body_len] {
            put_varint(&mut out, value);
        }
        out.push(1);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.push(b's');
        out.extend_from_slice(&1u64.to_le_bytes());
        put_varint(&mut out, 0);
        out.push(0);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn a_valid_table_parses() {
        let loaded = parse(&one_frame(0, 100)).expect("a valid snapshot");
        assert_eq!(loaded.frames.len(), 1);
        assert_eq!(loaded.point.next, 1);
    }

    /// Found by fuzzing (cargo-fuzz target `log_index_snapshot`, within its
    /// first 180,000 executions): a frame offset near `u64::MAX` overflowed
    /// computing where the frame ends (a panic with overflow checks, a
    /// wrapped end without).
    #[test]
    fn a_frame_ending_past_u64_max_is_refused() {
        for (offset, body_len) in [(u64::MAX, 100), (u64::MAX - 12, 0), (u64::MAX - 20, 0xffff_ffff)] {
            assert_eq!(
                parse(&one_frame(offset, body_len)).map(|_| ()),
                Err("bad frame table".to_owned()),
                "offset {offset}, body length {body_len}"
            );
        }
    }
}
