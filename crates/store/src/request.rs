//! Request validation and expectation checking shared by the backends.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::api::{AppendRequest, StreamName, Version};
use crate::chain::{MAX_FIELD_BYTES, metadata_len};
use crate::error::StoreError;

/// Largest accepted request, in encoded bytes (see [`validate`]). One request
/// is one frame of the embedded log, whose length field is a `u32`.
pub const MAX_REQUEST_BYTES: usize = 1 << 30;

/// Fixed per-event bytes of the log encoding besides the variable fields:
/// flags (1), stream len (4), version (8), type len (4), schema (2),
/// payload len (4), hash (32).
pub(crate) const EVENT_FIXED_BYTES: usize = 1 + 4 + 8 + 4 + 2 + 4 + 32;

/// Checks the shape of a request and returns an upper bound of its encoded
/// size (the log's frame body without the frame's own fixed header).
pub(crate) fn validate(request: &AppendRequest) -> Result<usize, StoreError> {
    if request.writes.is_empty() {
        return Err(StoreError::InvalidRequest("the request has no writes".into()));
    }
    let mut size = 0usize;
    for (i, write) in request.writes.iter().enumerate() {
        let stream = write.stream.as_str();
        if stream.is_empty() {
            return Err(StoreError::InvalidRequest(format!(
                "write {i}: empty stream name"
            )));
        }
        if stream.len() > MAX_FIELD_BYTES {
            return Err(StoreError::InvalidRequest(format!(
                "write {i}: stream name too long"
            )));
        }
        if write.events.is_empty() {
            return Err(StoreError::InvalidRequest(format!(
                "write {i} (stream {stream}) has no events"
            )));
        }
        for event in &write.events {
            let meta = &event.metadata;
            let longest_meta = [&meta.idempotency_key, &meta.actor, &meta.project_id]
                .into_iter()
                .flatten()
                .map(String::len)
                .max()
                .unwrap_or(0);
            if event.event_type.is_empty() {
                return Err(StoreError::InvalidRequest(format!(
                    "write {i} (stream {stream}): empty event type"
                )));
            }
            if event.event_type.len() > MAX_FIELD_BYTES
                || event.payload.len() > MAX_FIELD_BYTES
                || longest_meta > MAX_FIELD_BYTES
            {
                return Err(StoreError::InvalidRequest(format!(
                    "write {i} (stream {stream}): a field exceeds {MAX_FIELD_BYTES} bytes"
                )));
            }
            size = size.saturating_add(
                EVENT_FIXED_BYTES
                    + stream.len()
                    + event.event_type.len()
                    + metadata_len(meta)
                    + event.payload.len(),
            );
        }
    }
    if size > MAX_REQUEST_BYTES {
        return Err(StoreError::InvalidRequest(format!(
            "the request encodes to more than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    Ok(size)
}

/// Checks every expectation of `request` in order, each against the stream as
/// left by the writes before it (`current` gives the state before the
/// request). Returns, for each write, the version of its first event.
pub(crate) fn plan(
    request: &AppendRequest,
    current: impl Fn(&StreamName) -> Option<Version>,
) -> Result<Vec<Version>, StoreError> {
    let mut firsts = Vec::with_capacity(request.writes.len());
    // Streams written earlier in this request. Almost every request touches
    // one or two streams, so a linear scan beats hashing; large requests
    // switch to a map to stay linear overall.
    let mut local: Vec<(&StreamName, Version)> = Vec::new();
    let use_map = request.writes.len() > 8;
    // The engine appends a whole group of commands as one request: hundreds
    // of streams, each hashed once (SipHash was most of this on the log
    // writer's thread).
    let mut map: HashMap<&StreamName, Version, foldhash::fast::RandomState> = if use_map {
        HashMap::with_capacity_and_hasher(request.writes.len(), foldhash::fast::RandomState::default())
    } else {
        HashMap::default()
    };
    for write in &request.writes {
        let earlier = if use_map {
            map.get(&write.stream).copied()
        } else {
            local
                .iter()
                .rev()
                .find(|(stream, _)| *stream == &write.stream)
                .map(|(_, version)| *version)
        };
        let actual = earlier.or_else(|| current(&write.stream));
        if !write.expected.is_satisfied_by(actual) {
            return Err(StoreError::WrongExpectedVersion {
                stream: write.stream.clone(),
                expected: write.expected,
                actual,
            });
        }
        let first = actual.map_or(Some(0), |v| v.checked_add(1));
        let last = first.and_then(|f| f.checked_add(write.events.len() as u64 - 1));
        let (Some(first), Some(last)) = (first, last) else {
            return Err(StoreError::InvalidRequest(format!(
                "stream {}: version overflow",
                write.stream
            )));
        };
        firsts.push(first);
        if use_map {
            map.insert(&write.stream, last);
        } else {
            local.push((&write.stream, last));
        }
    }
    Ok(firsts)
}

/// Microseconds since the Unix epoch, never earlier than `floor`: recorded-at
/// times never go backwards along the global order, even if the wall clock does.
pub(crate) fn now_micros(floor: i64) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    now.max(floor)
}
