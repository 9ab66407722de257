//! The tamper-evident hash chain.
//!
//! Every record carries `hash = SHA-256(prev_hash ‖ canonical(record))`, where
//! `prev_hash` is the hash of the record at the previous global position
//! ([`GENESIS_HASH`] before position 0). Editing, inserting, removing or
//! reordering any record changes every hash after it, so an auditor holding
//! the last hash (or any later one) can prove the log was not edited.
//!
//! # Canonical encoding (version 1)
//!
//! All integers little-endian; `str` and byte fields are prefixed with their
//! length as `u32`, so no two different records share an encoding:
//!
//! ```text
//! prev_hash           [u8; 32]
//! position            u64
//! stream              u32 len, UTF-8 bytes
//! version             u64
//! event_type          u32 len, UTF-8 bytes
//! schema_version      u16
//! recorded_at_micros  i64
//! metadata            u8 presence bits, then each present field in bit order:
//!                       bit 0 correlation_id   16 bytes (UUID, big-endian as displayed)
//!                       bit 1 causation_id     16 bytes
//!                       bit 2 idempotency_key  u32 len, UTF-8 bytes
//!                       bit 3 actor            u32 len, UTF-8 bytes
//!                       bit 4 project_id       u32 len, UTF-8 bytes
//!                       bit 5 trace            16 bytes trace ID, 8 bytes span ID,
//!                                              u8 trace flags (W3C traceparent)
//! payload             u32 len, bytes
//! ```
//!
//! Bit 5 was added after records had been written: a record without a trace
//! context has the bit clear and encodes (and hashes) exactly as before it
//! existed. Builds that predate it refuse a record with the bit set as
//! "unknown metadata bits" instead of misreading it, and so does this build
//! for bits 6 and 7: a new optional field always takes a new bit.
//!
//! The metadata encoding is also the one the embedded log stores on disk, so
//! the log hashes the stored bytes directly. Fields longer than `u32::MAX`
//! bytes cannot be encoded; every backend rejects requests with fields that
//! large (see [`MAX_FIELD_BYTES`]).

use sha2::{Digest, Sha256};

use crate::api::{ChainHash, EventMetadata, GENESIS_HASH, Position, RecordedEvent};

/// Largest accepted stream name, event type, metadata string or payload, in
/// bytes. Keeps every length prefix within `u32` with room to spare.
pub const MAX_FIELD_BYTES: usize = 256 << 20;

/// Something the canonical encoding can be written to: a byte buffer (the log
/// writer) or a hasher. Writing the same encoder into both guarantees that
/// the stored bytes and the hashed bytes agree.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Length prefix of a field. Callers validate `len <= MAX_FIELD_BYTES` first.
#[inline]
pub(crate) fn len32(len: usize) -> [u8; 4] {
    debug_assert!(len <= u32::MAX as usize, "field lengths are validated");
    (len as u32).to_le_bytes()
}

#[inline]
pub(crate) fn put_bytes(sink: &mut impl Sink, bytes: &[u8]) {
    sink.put(&len32(bytes.len()));
    sink.put(bytes);
}

pub(crate) const META_CORRELATION: u8 = 1;
pub(crate) const META_CAUSATION: u8 = 2;
pub(crate) const META_IDEMPOTENCY: u8 = 4;
pub(crate) const META_ACTOR: u8 = 8;
pub(crate) const META_PROJECT: u8 = 16;
pub(crate) const META_TRACE: u8 = 32;
pub(crate) const META_ALL: u8 = 63;
/// Bytes of an encoded trace context: trace ID, span ID, flags.
pub(crate) const TRACE_BYTES: usize = 16 + 8 + 1;

/// Writes the canonical metadata encoding (see the module docs).
pub(crate) fn put_metadata(sink: &mut impl Sink, meta: &EventMetadata) {
    let mut present = 0u8;
    if meta.correlation_id.is_some() {
        present |= META_CORRELATION;
    }
    if meta.causation_id.is_some() {
        present |= META_CAUSATION;
    }
    if meta.idempotency_key.is_some() {
        present |= META_IDEMPOTENCY;
    }
    if meta.actor.is_some() {
        present |= META_ACTOR;
    }
    if meta.project_id.is_some() {
        present |= META_PROJECT;
    }
    if meta.trace.is_some() {
        present |= META_TRACE;
    }
    sink.put(&[present]);
    if let Some(id) = &meta.correlation_id {
        sink.put(id.as_bytes());
    }
    if let Some(id) = &meta.causation_id {
        sink.put(id.as_bytes());
    }
    for text in [&meta.idempotency_key, &meta.actor, &meta.project_id]
        .into_iter()
        .flatten()
    {
        put_bytes(sink, text.as_bytes());
    }
    if let Some(trace) = &meta.trace {
        sink.put(&trace.trace_id());
        sink.put(&trace.span_id());
        sink.put(&[trace.flags()]);
    }
}

/// Size of the canonical metadata encoding.
pub(crate) fn metadata_len(meta: &EventMetadata) -> usize {
    1 + [meta.correlation_id, meta.causation_id].iter().flatten().count() * 16
        + [&meta.idempotency_key, &meta.actor, &meta.project_id]
            .into_iter()
            .flatten()
            .map(|text| 4 + text.len())
            .sum::<usize>()
        + meta.trace.map_or(0, |_| TRACE_BYTES)
}

/// The fields of a record that its hash covers, with the metadata already in
/// its canonical encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HashInput<'a> {
    pub position: Position,
    pub stream: &'a str,
    pub version: u64,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub recorded_at_micros: i64,
    pub metadata: &'a [u8],
    pub payload: &'a [u8],
}

pub(crate) fn hash_input(prev: &ChainHash, input: &HashInput<'_>) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(input.position.to_le_bytes());
    put_bytes(&mut hasher, input.stream.as_bytes());
    hasher.update(input.version.to_le_bytes());
    put_bytes(&mut hasher, input.event_type.as_bytes());
    hasher.update(input.schema_version.to_le_bytes());
    hasher.update(input.recorded_at_micros.to_le_bytes());
    hasher.update(input.metadata);
    put_bytes(&mut hasher, input.payload);
    hasher.finalize().into()
}

/// The hash of `event` chained after `prev`. `event.hash` itself is ignored,
/// so this both computes a new record's hash and re-derives a stored one.
pub fn chain_hash(prev: &ChainHash, event: &RecordedEvent) -> ChainHash {
    let mut metadata = Vec::with_capacity(metadata_len(&event.metadata));
    put_metadata(&mut metadata, &event.metadata);
    hash_input(
        prev,
        &HashInput {
            position: event.position,
            stream: event.stream.as_str(),
            version: event.version,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at_micros: event.recorded_at_micros,
            metadata: &metadata,
            payload: &event.payload,
        },
    )
}

/// Why a sequence of records does not form a valid chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The records are not at consecutive positions.
    #[error("expected position {expected}, found position {found}")]
    Gap { expected: Position, found: Position },
    /// The stored hash is not `chain_hash(previous hash, record)`: the record
    /// or one before it was altered.
    #[error("position {position}: stored hash does not match the record and its predecessor")]
    HashMismatch {
        position: Position,
        /// The hash the record should carry.
        expected: ChainHash,
        /// The hash it carries.
        found: ChainHash,
    },
}

impl ChainError {
    /// The position at which the chain breaks.
    pub fn position(&self) -> Position {
        match self {
            Self::Gap { found, .. } => *found,
            Self::HashMismatch { position, .. } => *position,
        }
    }
}

/// Incremental chain verification, for audits that stream the log in batches
/// (e.g. from a [`Subscription`](crate::Subscription)).
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev: ChainHash,
    next: Option<Position>,
}

impl Default for ChainVerifier {
    /// Verifies a log from position 0.
    fn default() -> Self {
        Self::starting_at(0, GENESIS_HASH)
    }
}

impl ChainVerifier {
    /// Verifies records from `position` on, `prev` being the hash of the
    /// record at `position - 1` ([`GENESIS_HASH`] for position 0).
    pub fn starting_at(position: Position, prev: ChainHash) -> Self {
        Self {
            prev,
            next: Some(position),
        }
    }

    /// Verifies records that follow `prev`, from whatever position the first
    /// record pushed has.
    pub fn after(prev: ChainHash) -> Self {
        Self { prev, next: None }
    }

    /// Checks the next record. On error the verifier is unchanged.
    pub fn push(&mut self, event: &RecordedEvent) -> Result<(), ChainError> {
        if let Some(expected) = self.next.filter(|&next| next != event.position) {
            return Err(ChainError::Gap {
                expected,
                found: event.position,
            });
        }
        let expected = chain_hash(&self.prev, event);
        if expected != event.hash {
            return Err(ChainError::HashMismatch {
                position: event.position,
                expected,
                found: event.hash,
            });
        }
        self.prev = event.hash;
        self.next = Some(event.position + 1);
        Ok(())
    }

    /// The hash of the last verified record (the starting hash before any).
    pub fn last_hash(&self) -> ChainHash {
        self.prev
    }

    /// The position the next record must have, once known.
    pub fn next_position(&self) -> Option<Position> {
        self.next
    }
}

/// Verifies that `events` are consecutive records chained after `prev` and
/// returns the last hash (`prev` when `events` is empty). To verify a whole
/// log, pass [`GENESIS_HASH`] and the records from position 0.
pub fn verify_chain(prev: ChainHash, events: &[RecordedEvent]) -> Result<ChainHash, ChainError> {
    let mut verifier = ChainVerifier::after(prev);
    for event in events {
        verifier.push(event)?;
    }
    Ok(verifier.last_hash())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use uuid::Uuid;

    use super::*;
    use crate::api::{StreamName, TraceContext};

    fn event(position: Position, payload: &'static [u8]) -> RecordedEvent {
        RecordedEvent {
            position,
            stream: StreamName::from("account-a"),
            version: position,
            event_type: "Opened".into(),
            schema_version: 1,
            recorded_at_micros: 42,
            metadata: Arc::new(EventMetadata {
                correlation_id: Some(Uuid::from_u128(7)),
                actor: Some("key_1".into()),
                ..EventMetadata::default()
            }),
            payload: Bytes::from_static(payload),
            hash: [0; 32],
            last_in_commit: true,
        }
    }

    fn chained(payloads: &[&'static [u8]]) -> Vec<RecordedEvent> {
        let mut prev = GENESIS_HASH;
        payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| {
                let mut e = event(i as u64, payload);
                e.hash = chain_hash(&prev, &e);
                prev = e.hash;
                e
            })
            .collect()
    }

    #[test]
    fn metadata_len_matches_encoding() {
        let meta = EventMetadata {
            correlation_id: Some(Uuid::from_u128(1)),
            causation_id: None,
            idempotency_key: Some("idem".into()),
            actor: None,
            project_id: Some("proj_1".into()),
            trace: None,
        };
        let mut buf = Vec::new();
        put_metadata(&mut buf, &meta);
        assert_eq!(buf.len(), metadata_len(&meta));
        assert_eq!(buf[0], META_CORRELATION | META_IDEMPOTENCY | META_PROJECT);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// A record with every metadata field that existed before the trace
    /// context, as the build before it wrote it.
    fn pinned_record(trace: Option<TraceContext>) -> RecordedEvent {
        RecordedEvent {
            position: 7,
            stream: StreamName::from("account-acc_1"),
            version: 3,
            event_type: "Opened".into(),
            schema_version: 2,
            recorded_at_micros: 1_700_000_000_000_000,
            metadata: Arc::new(EventMetadata {
                correlation_id: Some(Uuid::from_u128(0x0102)),
                causation_id: Some(Uuid::from_u128(0x0304)),
                idempotency_key: Some("idem".into()),
                actor: Some("key_1".into()),
                project_id: Some("prj_1".into()),
                trace,
            }),
            payload: Bytes::from_static(b"payload"),
            hash: [0; 32],
            last_in_commit: true,
        }
    }

    /// The bytes and hash of a record without a trace context are the ones
    /// every earlier build wrote (computed apart from this code, with Python's
    /// hashlib over the documented layout): adding bit 5 changed no stored
    /// record and no hash of an existing chain.
    #[test]
    fn records_without_a_trace_keep_their_bytes_and_hash() {
        let record = pinned_record(None);
        let mut metadata = Vec::new();
        put_metadata(&mut metadata, &record.metadata);
        assert_eq!(
            hex(&metadata),
            "1f00000000000000000000000000000102000000000000000000000000000003040400\
             00006964656d050000006b65795f310500000070726a5f31"
        );
        assert_eq!(metadata_len(&record.metadata), metadata.len());
        assert_eq!(
            hex(&chain_hash(&[9; 32], &record)),
            "19ae517e8f27da25d4c4da469387130620ef9d38a734dee3106534dc52523311"
        );
    }

    #[test]
    fn a_trace_context_is_bit_5_after_the_other_fields() {
        let trace = TraceContext::new(
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18],
            1,
        );
        let record = pinned_record(trace);
        let mut metadata = Vec::new();
        put_metadata(&mut metadata, &record.metadata);
        assert_eq!(metadata[0], 0x3f);
        assert_eq!(
            hex(&metadata[metadata.len() - TRACE_BYTES..]),
            "0102030405060708090a0b0c0d0e0f10111213141516171801"
        );
        assert_eq!(metadata_len(&record.metadata), metadata.len());
        assert_eq!(
            hex(&chain_hash(&[9; 32], &record)),
            "b48a63b4425ba09d27357bf42fef2d48011d5eeec0e51a7bea3f62c356cda455"
        );
        assert_eq!(
            trace.map(|trace| trace.traceparent()).as_deref(),
            Some("00-0102030405060708090a0b0c0d0e0f10-1112131415161718-01")
        );
    }

    #[test]
    fn trace_contexts_with_a_zero_id_do_not_exist() {
        assert!(TraceContext::new([0; 16], [1; 8], 1).is_none());
        assert!(TraceContext::new([1; 16], [0; 8], 1).is_none());
    }

    #[test]
    fn length_prefixes_make_the_encoding_unambiguous() {
        // "ab" + "c" and "a" + "bc" must hash differently.
        let mut a = event(0, b"");
        a.stream = "ab".into();
        a.event_type = "c".into();
        let mut b = a.clone();
        b.stream = "a".into();
        b.event_type = "bc".into();
        assert_ne!(chain_hash(&GENESIS_HASH, &a), chain_hash(&GENESIS_HASH, &b));
    }

    #[test]
    fn verify_detects_edits_and_gaps() {
        let events = chained(&[b"one", b"two", b"three"]);
        assert_eq!(verify_chain(GENESIS_HASH, &events), Ok(events[2].hash));
        let mut edited = events.clone();
        edited[1].payload = Bytes::from_static(b"TWO");
        assert_eq!(
            verify_chain(GENESIS_HASH, &edited).map_err(|e| e.position()),
            Err(1)
        );
        let gap = vec![events[0].clone(), events[2].clone()];
        assert!(matches!(
            verify_chain(GENESIS_HASH, &gap),
            Err(ChainError::Gap {
                expected: 1,
                found: 2
            })
        ));
        // Mid-log verification from a known hash.
        assert_eq!(verify_chain(events[0].hash, &events[1..]), Ok(events[2].hash));
        let mut verifier = ChainVerifier::starting_at(1, events[0].hash);
        assert!(verifier.push(&events[2]).is_err());
        assert!(verifier.push(&events[1]).is_ok());
        assert_eq!(verifier.next_position(), Some(2));
    }
}
