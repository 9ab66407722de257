//! The log's decoders as plain functions of bytes, for the fuzzers of
//! `paycore-fuzz` (see [`crate::fuzzing`]). Not an API: each one runs the
//! same code as the log itself, and only returns what it decoded.

use crate::api::RecordedEvent;

use super::codec::{EventBuilder, HEADER_BYTES, RawHeader, decode_body};
use super::snapshot;

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

/// Decodes the bytes of an `index.snapshot` file as `open` does before it
/// compares the snapshot with the segments; returns the event count.
pub fn index_snapshot(bytes: &[u8]) -> Result<u64, String> {
    snapshot::parse(bytes).map(|loaded| loaded.point.next)
}
