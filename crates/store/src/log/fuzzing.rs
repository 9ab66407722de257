//! The log's decoders as plain functions of bytes, for the fuzzers of
//! `paycore-fuzz` (see [`crate::fuzzing`]). Not an API: each one runs the
//! same code as the log itself, and only returns what it decoded.

use std::path::Path;

use crate::api::{GENESIS_HASH, RecordedEvent, StreamName};
use crate::error::StoreError;

use super::codec::{EventBuilder, HEADER_BYTES, RawHeader, decode_body, frame_end};
use super::snapshot::{self, Loaded, SnapshotPoint};
use super::{LogOptions, recovery, runs};

/// What a read does with the bytes of a frame found through the index
/// (`index::decode_frame_into`): header checks, CRC, body, every event
/// built (metadata parsed). `Err` is the reason the log would give.
pub fn frame(bytes: &[u8]) -> Result<Vec<RecordedEvent>, String> {
    let header_bytes: &[u8; HEADER_BYTES] = bytes
        .get(..HEADER_BYTES)
        .and_then(|b| b.try_into().ok())
        .ok_or("short frame")?;
    let header = RawHeader::parse(header_bytes);
    if !header.is_consistent() {
        return Err("frame header fails its length check".into());
    }
    let body = bytes
        .get(HEADER_BYTES..HEADER_BYTES + header.body_len as usize)
        .ok_or("short frame")?;
    if crc32c::crc32c(body) != header.crc {
        return Err("CRC mismatch".into());
    }
    frame_body(body)
}

/// The decoding of a frame body that passed its CRC check (what a CRC
/// cannot protect against: a frame written wrong, or a forged one).
pub fn frame_body(body: &[u8]) -> Result<Vec<RecordedEvent>, String> {
    let mut builder = EventBuilder::default();
    let mut out = Vec::new();
    let header = decode_body(body, |view| {
        out.push(builder.build(view)?);
        Ok(())
    })?;
    if out.len() as u64 != u64::from(header.event_count) {
        return Err("event count differs from the events decoded".into());
    }
    Ok(out)
}

/// The frame header (length, complement, CRC) of `body`, as the writer
/// seals it: lets a fuzzer reach the body decoder past the CRC.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Decodes the bytes of an `index.snapshot` file (written by builds before
/// the index runs, read once on upgrade) as `open` does before it compares
/// the snapshot with the segments; returns the event count.
pub fn index_snapshot(bytes: &[u8]) -> Result<u64, String> {
    snapshot::parse(bytes).map(|loaded| loaded.point.next)
}

/// Decodes the bytes of an index run file as `open` and the reads do
/// (footer, filter and directories, then every page); returns its range.
pub fn index_run(bytes: &[u8]) -> Result<(u64, u64), String> {
    runs::parse_bytes(bytes)
}

/// The `index.snapshot` that a build before the index runs would have
/// written on closing the (closed, intact) log in `dir`: for the tests and
/// fuzzers of the upgrade. Indexes `dir` as an open would.
pub fn legacy_index_snapshot(dir: &Path) -> Result<Vec<u8>, StoreError> {
    let options = LogOptions {
        index_flush_events: 0,
        cache_events: 0,
        ..LogOptions::default()
    };
    let recovered = recovery::recover(dir, &options)?;
    let index = recovered.index;
    let next = index.next;
    let frames = index.frames_between(0, next)?;
    let events = index
        .plan_read_all(0, usize::try_from(next).unwrap_or(usize::MAX))?
        .execute()?;
    let mut streams: Vec<(StreamName, Vec<u64>)> = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for event in &events {
        let id = *ids.entry(event.stream.clone()).or_insert_with(|| {
            streams.push((event.stream.clone(), Vec::new()));
            streams.len() - 1
        });
        streams[id].1.push(event.position);
    }
    let (resume_segment, resume_offset) = frames
        .last()
        .map_or((0, 0), |f| (f.segment, frame_end(f.offset, f.body_len)));
    let loaded = Loaded {
        point: SnapshotPoint {
            next,
            last_hash: events.last().map_or(GENESIS_HASH, |e| e.hash),
            last_recorded_at: events.last().map_or(0, |e| e.recorded_at_micros),
            resume_segment,
            resume_offset,
        },
        segments: index.segments[..=resume_segment as usize]
            .iter()
            .map(|s| s.first_position)
            .collect(),
        frames,
        streams,
    };
    Ok(snapshot::encode(&loaded))
}
