//! The stored form of [`EventMetadata`]: the hash chain's canonical metadata
//! encoding (documented in `paycore_store`'s `chain` module, version 1).
//!
//! Storing exactly the bytes the chain hashes means an auditor can recompute
//! every hash from the table's columns alone, in any language (even in SQL
//! with `sha256()`), without knowing anything about postcard or Rust.
//!
//! ```text
//! u8 presence bits, then each present field in bit order:
//!   bit 0 correlation_id   16 bytes
//!   bit 1 causation_id     16 bytes
//!   bit 2 idempotency_key  u32 LE length, UTF-8 bytes
//!   bit 3 actor            u32 LE length, UTF-8 bytes
//!   bit 4 project_id       u32 LE length, UTF-8 bytes
//!   bit 5 trace            16 bytes trace ID, 8 bytes span ID, u8 flags
//! ```
//!
//! Bit 5 (the W3C trace context) came later: rows without it keep the bytes
//! and hashes they had, so no migration rewrites anything. A build that
//! predates a bit refuses a row with it (unknown presence bits) rather than
//! misreading it.

use paycore_store::{EventMetadata, TraceContext};
use uuid::Uuid;

const CORRELATION: u8 = 1;
const CAUSATION: u8 = 2;
const IDEMPOTENCY: u8 = 4;
const ACTOR: u8 = 8;
const PROJECT: u8 = 16;
const TRACE: u8 = 32;
const ALL: u8 = 63;
const TRACE_BYTES: usize = 16 + 8 + 1;

/// Encodes `meta`. String lengths were validated (≤ `MAX_FIELD_BYTES`) before.
pub(crate) fn encode(meta: &EventMetadata) -> Vec<u8> {
    let texts = [&meta.idempotency_key, &meta.actor, &meta.project_id];
    let len = 1
        + [meta.correlation_id, meta.causation_id].iter().flatten().count() * 16
        + texts
            .iter()
            .copied()
            .flatten()
            .map(|t| 4 + t.len())
            .sum::<usize>()
        + meta.trace.map_or(0, |_| TRACE_BYTES);
    let mut out = Vec::with_capacity(len);
    let mut present = 0u8;
    for (bit, is) in [
        (CORRELATION, meta.correlation_id.is_some()),
        (CAUSATION, meta.causation_id.is_some()),
        (IDEMPOTENCY, meta.idempotency_key.is_some()),
        (ACTOR, meta.actor.is_some()),
        (PROJECT, meta.project_id.is_some()),
        (TRACE, meta.trace.is_some()),
    ] {
        if is {
            present |= bit;
        }
    }
    out.push(present);
    for id in [meta.correlation_id, meta.causation_id].into_iter().flatten() {
        out.extend_from_slice(id.as_bytes());
    }
    for text in texts.into_iter().flatten() {
        let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    if let Some(trace) = &meta.trace {
        out.extend_from_slice(&trace.trace_id());
        out.extend_from_slice(&trace.span_id());
        out.push(trace.flags());
    }
    out
}

/// Decodes what [`encode`] wrote; the error says what is wrong.
pub(crate) fn decode(bytes: &[u8]) -> Result<EventMetadata, String> {
    let mut reader = Reader { bytes, at: 0 };
    let present = reader.take(1)?[0];
    if present & !ALL != 0 {
        // A field of a newer build: its size is unknown, so refuse the row.
        return Err(format!(
            "unknown metadata presence bits {:#04x} (a field of a newer paycore?)",
            present & !ALL
        ));
    }
    let mut meta = EventMetadata::default();
    if present & CORRELATION != 0 {
        meta.correlation_id = Some(reader.uuid()?);
    }
    if present & CAUSATION != 0 {
        meta.causation_id = Some(reader.uuid()?);
    }
    if present & IDEMPOTENCY != 0 {
        meta.idempotency_key = Some(reader.text()?);
    }
    if present & ACTOR != 0 {
        meta.actor = Some(reader.text()?);
    }
    if present & PROJECT != 0 {
        meta.project_id = Some(reader.text()?);
    }
    if present & TRACE != 0 {
        let raw = reader.take(TRACE_BYTES)?;
        let mut trace_id = [0; 16];
        trace_id.copy_from_slice(&raw[..16]);
        let mut span_id = [0; 8];
        span_id.copy_from_slice(&raw[16..24]);
        meta.trace =
            Some(TraceContext::new(trace_id, span_id, raw[24]).ok_or("invalid trace context (zero ID)")?);
    }
    if reader.at != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the metadata",
            bytes.len() - reader.at
        ));
    }
    Ok(meta)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "metadata truncated: {n} bytes wanted at offset {}, {} present",
                self.at,
                self.bytes.len()
            ));
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn uuid(&mut self) -> Result<Uuid, String> {
        let raw = self.take(16)?;
        Uuid::from_slice(raw).map_err(|e| e.to_string())
    }

    fn text(&mut self) -> Result<String, String> {
        let raw = self.take(4)?;
        let len = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|e| format!("metadata text is not UTF-8: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_combination() {
        for bits in 0..=ALL {
            let meta = EventMetadata {
                correlation_id: (bits & CORRELATION != 0).then(|| Uuid::from_u128(1 << 100 | 7)),
                causation_id: (bits & CAUSATION != 0).then(Uuid::nil),
                idempotency_key: (bits & IDEMPOTENCY != 0).then(|| "ключ-🔑".to_owned()),
                actor: (bits & ACTOR != 0).then(String::new),
                project_id: (bits & PROJECT != 0).then(|| "prj_1".to_owned()),
                trace: (bits & TRACE != 0)
                    .then(|| TraceContext::new([1; 16], [2; 8], 1))
                    .flatten(),
            };
            let bytes = encode(&meta);
            assert_eq!(bytes[0], bits);
            assert_eq!(decode(&bytes), Ok(meta));
        }
    }

    #[test]
    fn matches_the_documented_layout() {
        let meta = EventMetadata {
            correlation_id: Some(Uuid::from_u128(0x0102)),
            actor: Some("ab".into()),
            ..EventMetadata::default()
        };
        let mut expected = vec![CORRELATION | ACTOR];
        expected.extend_from_slice(&0x0102u128.to_be_bytes());
        expected.extend_from_slice(&[2, 0, 0, 0, b'a', b'b']);
        assert_eq!(encode(&meta), expected);
    }

    /// Rows without a trace context keep the bytes every earlier build
    /// wrote (bit 5 clear, nothing appended).
    #[test]
    fn rows_without_a_trace_keep_their_bytes() {
        let meta = EventMetadata {
            correlation_id: Some(Uuid::from_u128(0x0102)),
            causation_id: Some(Uuid::from_u128(0x0304)),
            idempotency_key: Some("idem".into()),
            actor: Some("key_1".into()),
            project_id: Some("prj_1".into()),
            trace: None,
        };
        let hex: String = encode(&meta).iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(
            hex,
            "1f00000000000000000000000000000102000000000000000000000000000003040400\
             00006964656d050000006b65795f310500000070726a5f31"
        );
        let traced = EventMetadata {
            trace: TraceContext::new([3; 16], [4; 8], 1),
            ..meta
        };
        let bytes = encode(&traced);
        assert_eq!(bytes[0], 0x3f);
        assert_eq!(bytes.len(), hex.len() / 2 + TRACE_BYTES);
        assert_eq!(decode(&bytes), Ok(traced));
    }

    #[test]
    fn rejects_damage() {
        let bytes = encode(&EventMetadata {
            project_id: Some("prj_1".into()),
            ..EventMetadata::default()
        });
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let unknown = decode(&[0x40]).expect_err("bit 6 is unknown");
        assert!(
            unknown.contains("unknown metadata presence bits 0x40"),
            "{unknown}"
        );
        assert!(decode(&[]).is_err());
    }
}

/// The stored metadata bytes are exactly what the chain hashes: an auditor can
/// recompute `hash` from the table's columns alone.
#[cfg(test)]
mod chain_agreement {
    use std::sync::Arc;

    use bytes::Bytes;
    use paycore_store::{RecordedEvent, StreamName, chain_hash};
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn hash_recomputed_from_columns_matches_chain_hash() {
        let meta = EventMetadata {
            correlation_id: Some(Uuid::from_u128(42)),
            causation_id: None,
            idempotency_key: Some("idem".into()),
            actor: Some("key_1".into()),
            project_id: None,
            trace: None,
        };
        let event = RecordedEvent {
            position: 7,
            stream: StreamName::from("account-acc_1"),
            version: 3,
            event_type: "Opened".into(),
            schema_version: 2,
            recorded_at_micros: 1_700_000_000_000_000,
            metadata: Arc::new(meta.clone()),
            payload: Bytes::from_static(b"payload"),
            hash: [0; 32],
            last_in_commit: true,
        };
        let prev = [9u8; 32];
        let mut hasher = Sha256::new();
        hasher.update(prev);
        hasher.update(event.position.to_le_bytes());
        hasher.update((event.stream.as_str().len() as u32).to_le_bytes());
        hasher.update(event.stream.as_str());
        hasher.update(event.version.to_le_bytes());
        hasher.update((event.event_type.len() as u32).to_le_bytes());
        hasher.update(event.event_type.as_bytes());
        hasher.update(event.schema_version.to_le_bytes());
        hasher.update(event.recorded_at_micros.to_le_bytes());
        hasher.update(encode(&meta));
        hasher.update((event.payload.len() as u32).to_le_bytes());
        hasher.update(&event.payload);
        let from_columns: [u8; 32] = hasher.finalize().into();
        assert_eq!(from_columns, chain_hash(&prev, &event));
    }
}
