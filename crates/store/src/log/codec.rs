//! Frame encoding and decoding. The format is specified in the module docs of
//! [`crate::log`]; keep the two in sync.

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::api::{
    AppendRequest, ChainHash, EventMetadata, Position, RecordedEvent, StreamName, TraceContext, Version,
};
use crate::chain::{
    HashInput, META_ACTOR, META_ALL, META_CAUSATION, META_CORRELATION, META_IDEMPOTENCY, META_PROJECT,
    META_TRACE, TRACE_BYTES, hash_input, put_bytes, put_metadata,
};

/// `[u32 body_len][u32 !body_len][u32 crc32c(body)]`.
pub(crate) const HEADER_BYTES: usize = 12;
/// `group_first_position, group_end, first_position, recorded_at, event_count`.
pub(crate) const BODY_HEADER_BYTES: usize = 8 + 8 + 8 + 8 + 4;

pub(crate) const SAME_STREAM: u8 = 1;
pub(crate) const SAME_TYPE: u8 = 2;
pub(crate) const SAME_META: u8 = 4;

/// Frames start at multiples of 8 (zero padding after each frame), which
/// lets recovery look for frames after a damaged one in 8-byte steps.
#[inline]
pub(crate) fn align8(x: u64) -> u64 {
    (x + 7) & !7
}

/// Offset just past the frame (padding included) whose header is at `offset`.
#[inline]
pub(crate) fn frame_end(offset: u64, body_len: u32) -> u64 {
    align8(offset + HEADER_BYTES as u64 + u64::from(body_len))
}

/// The header fields, before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawHeader {
    pub body_len: u32,
    pub body_len_inverse: u32,
    pub crc: u32,
}

impl RawHeader {
    pub fn parse(bytes: &[u8; HEADER_BYTES]) -> Self {
        let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Self {
            body_len: word(0),
            body_len_inverse: word(4),
            crc: word(8),
        }
    }

    /// Whether the length and its complement agree (and the length is not
    /// absurd). A header of zeros is never consistent.
    pub fn is_consistent(&self) -> bool {
        self.body_len == !self.body_len_inverse
            && self.body_len as usize >= BODY_HEADER_BYTES
            && self.body_len as usize <= crate::request::MAX_REQUEST_BYTES + BODY_HEADER_BYTES
    }
}

/// A frame written into the group buffer, waiting for [`seal`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingFrame {
    /// Offset of the frame header within the group buffer.
    pub start: usize,
    pub body_len: u32,
    pub first_position: Position,
}

/// Appends one commit (one request) as a frame to `buf`: assigns positions
/// from `first_position`, computes the chain from `*prev_hash` (updated), and
/// moves the events into `out` as recorded events. The frame's `group_end`
/// field and header are filled in later by [`seal`], once the group's size and
/// place are known.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_commit(
    buf: &mut Vec<u8>,
    request: AppendRequest,
    first_versions: &[Version],
    group_first_position: Position,
    first_position: Position,
    recorded_at: i64,
    prev_hash: &mut ChainHash,
    out: &mut Vec<RecordedEvent>,
) -> PendingFrame {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_BYTES]);
    let body_start = buf.len();
    let count = request.event_count() as u32;
    buf.extend_from_slice(&group_first_position.to_le_bytes());
    buf.extend_from_slice(&0u64.to_le_bytes()); // group_end, see `seal`
    buf.extend_from_slice(&first_position.to_le_bytes());
    buf.extend_from_slice(&recorded_at.to_le_bytes());
    buf.extend_from_slice(&count.to_le_bytes());

    let mut position = first_position;
    let mut prev_stream: Option<StreamName> = None;
    let mut prev_type: Option<Arc<str>> = None;
    let mut prev_meta: Option<(Arc<EventMetadata>, std::ops::Range<usize>)> = None;
    for (write, &first_version) in request.writes.into_iter().zip(first_versions) {
        let stream = write.stream;
        for (offset, event) in write.events.into_iter().enumerate() {
            let mut flags = 0u8;
            let same_stream = prev_stream.as_ref() == Some(&stream);
            if same_stream {
                flags |= SAME_STREAM;
            }
            let same_type = prev_type
                .as_ref()
                .is_some_and(|t| Arc::ptr_eq(t, &event.event_type) || **t == *event.event_type);
            if same_type {
                flags |= SAME_TYPE;
            }
            let same_meta = prev_meta
                .as_ref()
                .is_some_and(|(m, _)| Arc::ptr_eq(m, &event.metadata) || **m == *event.metadata);
            if same_meta {
                flags |= SAME_META;
            }
            buf.push(flags);
            if !same_stream {
                put_bytes(buf, stream.as_str().as_bytes());
            }
            let version = first_version + offset as u64;
            buf.extend_from_slice(&version.to_le_bytes());
            if !same_type {
                put_bytes(buf, event.event_type.as_bytes());
            }
            buf.extend_from_slice(&event.schema_version.to_le_bytes());
            let meta_range = match (&prev_meta, same_meta) {
                (Some((_, range)), true) => range.clone(),
                _ => {
                    let meta_start = buf.len();
                    put_metadata(buf, &event.metadata);
                    meta_start..buf.len()
                }
            };
            put_bytes(buf, &event.payload);
            let hash = hash_input(
                prev_hash,
                &HashInput {
                    position,
                    stream: stream.as_str(),
                    version,
                    event_type: &event.event_type,
                    schema_version: event.schema_version,
                    recorded_at_micros: recorded_at,
                    metadata: &buf[meta_range.clone()],
                    payload: &event.payload,
                },
            );
            buf.extend_from_slice(&hash);
            *prev_hash = hash;
            if !same_meta {
                prev_meta = Some((event.metadata.clone(), meta_range));
            }
            if !same_type {
                prev_type = Some(event.event_type.clone());
            }
            if !same_stream {
                prev_stream = Some(stream.clone());
            }
            out.push(RecordedEvent {
                position,
                stream: stream.clone(),
                version,
                event_type: event.event_type,
                schema_version: event.schema_version,
                recorded_at_micros: recorded_at,
                metadata: event.metadata,
                payload: event.payload,
                hash,
                last_in_commit: false,
            });
            position += 1;
        }
    }
    if let Some(last) = out.last_mut() {
        last.last_in_commit = true;
    }
    let body_len = (buf.len() - body_start) as u32;
    let padded = align8(buf.len() as u64) as usize;
    buf.resize(padded, 0);
    PendingFrame {
        start,
        body_len,
        first_position,
    }
}

/// Fills in `group_end` (the segment offset just past the group) and the
/// header (length, complement, CRC) of every frame of a group buffer.
pub(crate) fn seal(buf: &mut [u8], frames: &[PendingFrame], group_end: u64) {
    for frame in frames {
        let body_start = frame.start + HEADER_BYTES;
        let body_end = body_start + frame.body_len as usize;
        buf[body_start + 8..body_start + 16].copy_from_slice(&group_end.to_le_bytes());
        let crc = crc32c::crc32c(&buf[body_start..body_end]);
        let header = &mut buf[frame.start..body_start];
        header[0..4].copy_from_slice(&frame.body_len.to_le_bytes());
        header[4..8].copy_from_slice(&(!frame.body_len).to_le_bytes());
        header[8..12].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The fixed fields at the start of a frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyHeader {
    pub group_first_position: Position,
    pub group_end: u64,
    pub first_position: Position,
    pub recorded_at_micros: i64,
    pub event_count: u32,
}

impl BodyHeader {
    pub fn end_position(&self) -> Position {
        self.first_position + u64::from(self.event_count)
    }
}

/// One event inside a frame body, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventView<'a> {
    pub position: Position,
    pub stream: &'a str,
    pub version: Version,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub recorded_at_micros: i64,
    /// Canonical metadata encoding.
    pub metadata: &'a [u8],
    pub payload: &'a [u8],
    pub hash: ChainHash,
    /// The frame's last event: a frame holds one append.
    pub last_in_commit: bool,
}

impl EventView<'_> {
    pub fn hash_input(&self) -> HashInput<'_> {
        HashInput {
            position: self.position,
            stream: self.stream,
            version: self.version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            recorded_at_micros: self.recorded_at_micros,
            metadata: self.metadata,
            payload: self.payload,
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("body ends early at byte {} (wanted {n} more)", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn bytes32(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn str32(&mut self) -> Result<&'a str, String> {
        let at = self.at;
        std::str::from_utf8(self.bytes32()?).map_err(|_| format!("invalid UTF-8 at body byte {at}"))
    }

    /// Skips over a canonical metadata encoding, checking its structure.
    fn metadata(&mut self) -> Result<&'a [u8], String> {
        let start = self.at;
        let present = self.u8()?;
        if present & !META_ALL != 0 {
            // A field this build does not know (a newer build's): its size
            // is unknown, so nothing after it can be read.
            return Err(format!(
                "unknown metadata bits {:#x} at body byte {start} (a field of a newer paycore?)",
                present & !META_ALL
            ));
        }
        for bit in [META_CORRELATION, META_CAUSATION] {
            if present & bit != 0 {
                self.take(16)?;
            }
        }
        for bit in [META_IDEMPOTENCY, META_ACTOR, META_PROJECT] {
            if present & bit != 0 {
                self.str32()?;
            }
        }
        if present & META_TRACE != 0 {
            let at = self.at;
            let trace = self.take(TRACE_BYTES)?;
            if trace[..16] == [0; 16] || trace[16..24] == [0; 8] {
                return Err(format!("invalid trace context (zero ID) at body byte {at}"));
            }
        }
        Ok(&self.bytes[start..self.at])
    }
}

pub(crate) fn decode_body_header(body: &[u8]) -> Result<BodyHeader, String> {
    let mut cursor = Cursor { bytes: body, at: 0 };
    let header = BodyHeader {
        group_first_position: cursor.u64()?,
        group_end: cursor.u64()?,
        first_position: cursor.u64()?,
        recorded_at_micros: cursor.u64()? as i64,
        event_count: cursor.u32()?,
    };
    if header.event_count == 0 {
        return Err("frame holds no events".into());
    }
    if header.group_first_position > header.first_position {
        return Err(format!(
            "group starts at position {} after the frame's first position {}",
            header.group_first_position, header.first_position
        ));
    }
    header
        .first_position
        .checked_add(u64::from(header.event_count))
        .ok_or("position overflow")?;
    Ok(header)
}

/// Decodes a whole frame body, calling `visit` for every event in order.
/// Structural problems (which the CRC says were written that way, so they are
/// never a torn write) come back as a reason.
pub(crate) fn decode_body<'a>(
    body: &'a [u8],
    mut visit: impl FnMut(&EventView<'a>) -> Result<(), String>,
) -> Result<BodyHeader, String> {
    let header = decode_body_header(body)?;
    let mut cursor = Cursor {
        bytes: body,
        at: BODY_HEADER_BYTES,
    };
    let mut stream: Option<&'a str> = None;
    let mut event_type: Option<&'a str> = None;
    let mut metadata: Option<&'a [u8]> = None;
    for i in 0..header.event_count {
        let flags = cursor.u8()?;
        if flags & !(SAME_STREAM | SAME_TYPE | SAME_META) != 0 {
            return Err(format!("event {i}: unknown flags {flags:#x}"));
        }
        let missing =
            |what: &str| format!("event {i} repeats the {what} of a previous event, but it is the first");
        let this_stream = if flags & SAME_STREAM != 0 {
            stream.ok_or_else(|| missing("stream"))?
        } else {
            cursor.str32()?
        };
        let version = cursor.u64()?;
        let this_type = if flags & SAME_TYPE != 0 {
            event_type.ok_or_else(|| missing("type"))?
        } else {
            cursor.str32()?
        };
        let schema_version = cursor.u16()?;
        let this_meta = if flags & SAME_META != 0 {
            metadata.ok_or_else(|| missing("metadata"))?
        } else {
            cursor.metadata()?
        };
        let payload = cursor.bytes32()?;
        let hash = cursor.array::<32>()?;
        stream = Some(this_stream);
        event_type = Some(this_type);
        metadata = Some(this_meta);
        visit(&EventView {
            position: header.first_position + u64::from(i),
            stream: this_stream,
            version,
            event_type: this_type,
            schema_version,
            recorded_at_micros: header.recorded_at_micros,
            metadata: this_meta,
            payload,
            hash,
            last_in_commit: i + 1 == header.event_count,
        })?;
    }
    if cursor.at != body.len() {
        return Err(format!(
            "{} unexpected bytes after the last event",
            body.len() - cursor.at
        ));
    }
    Ok(header)
}

/// Parses a canonical metadata encoding (already structure-checked).
pub(crate) fn parse_metadata(raw: &[u8]) -> Result<EventMetadata, String> {
    let mut cursor = Cursor { bytes: raw, at: 0 };
    let present = cursor.u8()?;
    let mut uuid = |bit: u8| -> Result<Option<Uuid>, String> {
        if present & bit == 0 {
            return Ok(None);
        }
        Ok(Some(Uuid::from_bytes(cursor.array::<16>()?)))
    };
    let correlation_id = uuid(META_CORRELATION)?;
    let causation_id = uuid(META_CAUSATION)?;
    let mut text = |bit: u8| -> Result<Option<String>, String> {
        if present & bit == 0 {
            return Ok(None);
        }
        cursor.str32().map(|s| Some(s.to_owned()))
    };
    let idempotency_key = text(META_IDEMPOTENCY)?;
    let actor = text(META_ACTOR)?;
    let project_id = text(META_PROJECT)?;
    let trace = if present & META_TRACE != 0 {
        let trace_id = cursor.array::<16>()?;
        let span_id = cursor.array::<8>()?;
        let [flags] = cursor.array::<1>()?;
        Some(TraceContext::new(trace_id, span_id, flags).ok_or("invalid trace context (zero ID)")?)
    } else {
        None
    };
    Ok(EventMetadata {
        correlation_id,
        causation_id,
        idempotency_key,
        actor,
        project_id,
        trace,
    })
}

/// Turns decoded views into owned events, sharing the `Arc`s of runs of
/// events with the same stream or metadata (the common case within a
/// commit) and of every event type seen, instead of allocating each time.
/// Event types remembered by one [`EventBuilder`].
const MAX_INTERNED_TYPES: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct EventBuilder<'a> {
    stream: Option<StreamName>,
    /// The types seen so far: a commit holds a handful (a transfer
    /// alternates two), so a linear search beats a map.
    event_types: Vec<Arc<str>>,
    metadata: Option<(&'a [u8], Arc<EventMetadata>)>,
}

impl<'a> EventBuilder<'a> {
    pub fn build(&mut self, view: &EventView<'a>) -> Result<RecordedEvent, String> {
        let stream = match &self.stream {
            Some(s) if s.as_str() == view.stream => s.clone(),
            _ => self.stream.insert(StreamName::from(view.stream)).clone(),
        };
        let event_type = match self.event_types.iter().find(|seen| ***seen == *view.event_type) {
            Some(seen) => seen.clone(),
            None => {
                let interned: Arc<str> = Arc::from(view.event_type);
                if self.event_types.len() < MAX_INTERNED_TYPES {
                    self.event_types.push(interned.clone());
                }
                interned
            }
        };
        let metadata = match &self.metadata {
            Some((raw, m)) if *raw == view.metadata => m.clone(),
            _ => {
                let parsed = Arc::new(parse_metadata(view.metadata)?);
                self.metadata = Some((view.metadata, parsed.clone()));
                parsed
            }
        };
        Ok(RecordedEvent {
            position: view.position,
            stream,
            version: view.version,
            event_type,
            schema_version: view.schema_version,
            recorded_at_micros: view.recorded_at_micros,
            metadata,
            payload: Bytes::copy_from_slice(view.payload),
            hash: view.hash,
            last_in_commit: view.last_in_commit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ExpectedVersion, GENESIS_HASH, NewEvent, StreamWrite};
    use crate::chain::chain_hash;

    fn new_event(kind: &str, meta: &Arc<EventMetadata>, payload: &'static [u8]) -> NewEvent {
        NewEvent {
            event_type: kind.into(),
            schema_version: 3,
            metadata: meta.clone(),
            payload: Bytes::from_static(payload),
        }
    }

    /// Bits this build does not know are refused with a message saying so,
    /// never skipped (their size is unknown) or read as another field; that
    /// is what builds before bit 5 do with a trace context.
    #[test]
    fn unknown_metadata_bits_are_refused() {
        for present in [0x40u8, 0x80, 0x7f] {
            let bytes = [present, 0, 0, 0, 0];
            let mut cursor = Cursor { bytes: &bytes, at: 0 };
            let error = cursor.metadata().expect_err("refused");
            assert!(error.contains("unknown metadata bits"), "{error}");
            assert!(error.contains(&format!("{:#x}", present & !META_ALL)), "{error}");
        }
    }

    #[test]
    fn trace_contexts_round_trip_and_zero_ids_are_refused() {
        let meta = EventMetadata {
            actor: Some("key_1".into()),
            trace: TraceContext::new([3; 16], [4; 8], 1),
            ..EventMetadata::default()
        };
        let mut bytes = Vec::new();
        put_metadata(&mut bytes, &meta);
        let mut cursor = Cursor { bytes: &bytes, at: 0 };
        assert_eq!(cursor.metadata().map(<[u8]>::len), Ok(bytes.len()));
        assert_eq!(parse_metadata(&bytes), Ok(meta));
        let zero_span = bytes.len() - 9;
        bytes[zero_span..zero_span + 8].fill(0);
        let mut cursor = Cursor { bytes: &bytes, at: 0 };
        assert!(cursor.metadata().is_err());
        assert!(parse_metadata(&bytes).is_err());
        // Cut short: the 25 bytes must all be there.
        let mut cursor = Cursor {
            bytes: &bytes[..bytes.len() - 1],
            at: 0,
        };
        assert!(cursor.metadata().is_err());
    }

    #[test]
    fn round_trip_with_shared_fields() {
        let meta = Arc::new(EventMetadata {
            correlation_id: Some(Uuid::from_u128(9)),
            idempotency_key: Some("k".into()),
            ..EventMetadata::default()
        });
        let other = Arc::new(EventMetadata::default());
        let request = AppendRequest {
            writes: vec![
                StreamWrite {
                    stream: "account-a".into(),
                    expected: ExpectedVersion::Any,
                    events: vec![
                        new_event("Debited", &meta, b"1"),
                        new_event("Debited", &meta, b""),
                        new_event("Noted", &other, b"333"),
                    ],
                },
                StreamWrite {
                    stream: "account-b".into(),
                    expected: ExpectedVersion::Any,
                    events: vec![new_event("Credited", &other, b"4444")],
                },
            ],
        };
        let mut buf = Vec::new();
        let mut hash = GENESIS_HASH;
        let mut out = Vec::new();
        let frame = encode_commit(&mut buf, request, &[5, 0], 10, 12, 77, &mut hash, &mut out);
        seal(&mut buf, &[frame], 4096);
        assert_eq!(buf.len() % 8, 0);
        let header = RawHeader::parse(buf[..HEADER_BYTES].try_into().expect("12 bytes"));
        assert!(header.is_consistent());
        let body = &buf[HEADER_BYTES..HEADER_BYTES + header.body_len as usize];
        assert_eq!(header.crc, crc32c::crc32c(body));
        let mut builder = EventBuilder::default();
        let mut decoded = Vec::new();
        let body_header = decode_body(body, |view| {
            decoded.push(builder.build(view)?);
            Ok(())
        })
        .expect("decodes");
        assert_eq!(body_header.group_end, 4096);
        assert_eq!(body_header.group_first_position, 10);
        assert_eq!(decoded, out);
        assert_eq!(
            decoded.iter().map(|e| e.version).collect::<Vec<_>>(),
            [5, 6, 7, 0]
        );
        assert_eq!(decoded[3].position, 15);
        // The hashes the encoder computed are the public chain's.
        let mut prev = GENESIS_HASH;
        for event in &decoded {
            assert_eq!(chain_hash(&prev, event), event.hash);
            prev = event.hash;
        }
        assert!(Arc::ptr_eq(&decoded[0].metadata, &decoded[1].metadata));
    }
}
