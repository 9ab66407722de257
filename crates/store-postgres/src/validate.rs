//! Request validation: the same rules as the other backends (shared limits
//! from `paycore_store`), plus what PostgreSQL's `text` cannot hold.

use paycore_store::{AppendRequest, MAX_FIELD_BYTES, MAX_REQUEST_BYTES, StoreError};

/// Per-event bytes besides the variable fields, as the embedded log counts
/// them, so that every backend accepts the same requests.
const EVENT_FIXED_BYTES: usize = 1 + 4 + 8 + 4 + 2 + 4 + 32;

/// Checks the shape of `request`; returns its number of events and its size
/// in bytes (as the embedded log would encode it).
pub(crate) fn validate(request: &AppendRequest) -> Result<(usize, usize), StoreError> {
    if request.writes.is_empty() {
        return Err(StoreError::InvalidRequest("the request has no writes".into()));
    }
    let mut size = 0usize;
    let mut events = 0usize;
    for (i, write) in request.writes.iter().enumerate() {
        let stream = write.stream.as_str();
        if stream.is_empty() {
            return Err(invalid(format!("write {i}: empty stream name")));
        }
        if stream.len() > MAX_FIELD_BYTES {
            return Err(invalid(format!("write {i}: stream name too long")));
        }
        if stream.contains('\0') {
            return Err(invalid(format!(
                "write {i}: the stream name contains a NUL character"
            )));
        }
        if write.events.is_empty() {
            return Err(invalid(format!("write {i} (stream {stream}) has no events")));
        }
        for event in &write.events {
            let meta = &event.metadata;
            let texts = [&meta.idempotency_key, &meta.actor, &meta.project_id];
            let longest_meta = texts
                .iter()
                .copied()
                .flatten()
                .map(String::len)
                .max()
                .unwrap_or(0);
            if event.event_type.is_empty() {
                return Err(invalid(format!("write {i} (stream {stream}): empty event type")));
            }
            if event.event_type.contains('\0') {
                return Err(invalid(format!(
                    "write {i} (stream {stream}): the event type contains a NUL character"
                )));
            }
            if event.event_type.len() > MAX_FIELD_BYTES
                || event.payload.len() > MAX_FIELD_BYTES
                || longest_meta > MAX_FIELD_BYTES
            {
                return Err(invalid(format!(
                    "write {i} (stream {stream}): a field exceeds {MAX_FIELD_BYTES} bytes"
                )));
            }
            let meta_len = 1
                + [meta.correlation_id, meta.causation_id].iter().flatten().count() * 16
                + texts
                    .iter()
                    .copied()
                    .flatten()
                    .map(|t| 4 + t.len())
                    .sum::<usize>();
            size = size.saturating_add(
                EVENT_FIXED_BYTES + stream.len() + event.event_type.len() + meta_len + event.payload.len(),
            );
            events += 1;
        }
    }
    if size > MAX_REQUEST_BYTES {
        return Err(invalid(format!(
            "the request encodes to more than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    Ok((events, size))
}

fn invalid(message: String) -> StoreError {
    StoreError::InvalidRequest(message)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use paycore_store::{EventMetadata, ExpectedVersion, NewEvent, StreamWrite};

    use super::*;

    fn request(stream: &str, event_type: &str) -> AppendRequest {
        AppendRequest {
            writes: vec![StreamWrite {
                stream: stream.into(),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent {
                    event_type: event_type.into(),
                    schema_version: 1,
                    metadata: Arc::new(EventMetadata::default()),
                    payload: Bytes::from_static(b"\0binary payloads are fine\0"),
                }],
            }],
        }
    }

    #[test]
    fn nul_characters_in_text_columns_are_refused() {
        assert_eq!(
            validate(&request("s-1", "T")).ok().map(|(events, _)| events),
            Some(1)
        );
        assert!(matches!(
            validate(&request("s\0-1", "T")),
            Err(StoreError::InvalidRequest(_))
        ));
        assert!(matches!(
            validate(&request("s-1", "T\0")),
            Err(StoreError::InvalidRequest(_))
        ));
    }
}
