//! The domain's event payload codec (postcard, with upcasting of old schema
//! versions), then what event subscriptions make of a decoded event.

use paycore_domain::Event;
use paycore_grpc::services::events::convert;

use crate::world::world;

/// Event payload harness. Byte 0 picks the event type (modulo
/// `Event::TYPES`), byte 1 the schema version (0–3), the rest is the
/// payload. A payload that decodes must encode to one that decodes to the
/// same event, and becomes a subscription message.
pub fn payload(data: &[u8]) {
    let [which, version, payload @ ..] = data else {
        return;
    };
    let event_type = Event::TYPES[usize::from(*which) % Event::TYPES.len()];
    let Ok(event) = Event::decode(event_type, u16::from(version % 4), payload) else {
        return;
    };
    let encoded = event.encode();
    let again = Event::decode(encoded.event_type, encoded.schema_version, &encoded.payload);
    assert_eq!(again.as_ref().ok(), Some(&event), "a decoded event round-trips");
    let _ = convert::event_pb("acc_01jz0000000000000000000000", &event);
}

pub fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = world()
        .events
        .iter()
        .filter_map(|recorded| {
            let which = Event::TYPES.iter().position(|t| **t == *recorded.event_type)?;
            let mut seed = vec![which as u8, recorded.schema_version as u8];
            seed.extend_from_slice(&recorded.payload);
            Some(seed)
        })
        .collect();
    seeds.sort();
    seeds.dedup();
    // Every type at least once, with an empty payload.
    seeds.extend((0..Event::TYPES.len()).map(|which| vec![which as u8, 1]));
    seeds
}
