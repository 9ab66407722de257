//! The decoders of derived data on disk: read-model rows (the model
//! store's `models.redb`) and aggregate snapshots (the `DirSnapshots` file, then the engine's decoding
//! of the state it holds).

use paycore_domain::Aggregate;
use paycore_engine::decode_aggregate_snapshot_state;
use paycore_store::fuzzing;
use paycore_store::{StoredSnapshot, StreamName};

use crate::world::world;

/// Read-model row harness. Byte 0 picks the kind of row (a checkpoint, a
/// project, an account, …, modulo their number); the rest is the row as
/// the model store holds it, decoded as the queries and folds decode it.
pub fn model_row(data: &[u8]) {
    let Some((kind, rest)) = data.split_first() else {
        return;
    };
    let _ = paycore_projections::fuzzing::decode_row(*kind, rest);
}

/// Rows of the seed world's aggregates, as the read models keep them.
pub fn model_row_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (_, state) in &world().aggregates {
        for (kind, row) in paycore_projections::fuzzing::encode_row(state) {
            let mut seed = vec![kind];
            seed.extend_from_slice(&row);
            seeds.push(seed);
        }
    }
    seeds
}

/// The stream the aggregate snapshot files of the harness belong to.
fn snapshot_stream() -> StreamName {
    StreamName::from("account-acc_01jz0000000000000000000000")
}

/// Aggregate snapshot harness. Byte 0 mod 3: 0, the rest is a state (what
/// the engine decodes from a snapshot); 1, the rest is a snapshot file;
/// 2, the rest is a file body behind a valid header and checksum made here.
/// A file that reads as a snapshot has its state decoded next, as the
/// engine does.
pub fn aggregate(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let stored = match mode % 3 {
        0 => {
            state(rest);
            return;
        }
        1 => fuzzing::aggregate_snapshot_file(rest, &snapshot_stream()),
        _ => {
            let mut file = b"PCS1".to_vec();
            file.extend_from_slice(&crc32c::crc32c(rest).to_le_bytes());
            file.extend_from_slice(rest);
            fuzzing::aggregate_snapshot_file(&file, &snapshot_stream())
        }
    };
    if let Some(stored) = stored {
        state(&stored.state);
    }
}

/// Decodes a state; one that decodes must encode back to a state that
/// decodes to itself.
fn state(bytes: &[u8]) {
    if let Some(state) = decode_aggregate_snapshot_state(bytes) {
        let again = postcard::to_stdvec(&state)
            .ok()
            .and_then(|bytes| decode_aggregate_snapshot_state(&bytes));
        assert_eq!(
            again.as_ref(),
            Some(&state),
            "a decoded aggregate state round-trips"
        );
    }
}

pub fn aggregate_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let stream = snapshot_stream();
    let states = world()
        .aggregates
        .iter()
        .map(|(_, state)| state.clone())
        .chain([Aggregate::Empty]);
    for state in states {
        let Ok(bytes) = postcard::to_stdvec(&state) else {
            continue;
        };
        let mut raw = vec![0];
        raw.extend_from_slice(&bytes);
        seeds.push(raw);
        let file = fuzzing::encode_aggregate_snapshot_file(
            &stream,
            &StoredSnapshot {
                version: 999,
                event_hash: [9; 32],
                format: paycore_engine::AGGREGATE_SNAPSHOT_FORMAT,
                state: bytes.into(),
            },
        );
        let mut whole = vec![1];
        whole.extend_from_slice(&file);
        seeds.push(whole);
        let mut body = vec![2];
        body.extend_from_slice(&file[8..]);
        seeds.push(body);
    }
    seeds
}
