//! The snapshot decoders: projection snapshots (`<name>.snapshot`) and
//! aggregate snapshots (the `DirSnapshots` file, then the engine's decoding
//! of the state it holds).

use paycore_domain::Aggregate;
use paycore_engine::decode_aggregate_snapshot_state;
use paycore_projections::projections;
use paycore_store::fuzzing;
use paycore_store::{StoredSnapshot, StreamName};

use crate::world::world;

/// Projection snapshot harness. Byte 0 picks the projection (low 3 bits,
/// modulo their number); bit 7 clear: the rest is the whole file; set: the
/// rest is the body (the postcard model), behind a header made here with
/// the projection's name and version and a valid checksum, so that
/// mutations reach the model's decoding.
pub fn projection(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let all = projections();
    let info = &all[usize::from(mode & 7) % all.len()];
    let _ = if mode & 0x80 == 0 {
        info.decode_snapshot(rest)
    } else {
        info.decode_snapshot(&projection_file(info.name, info.version, 42, Some([5; 32]), rest))
    };
}

/// A projection snapshot file (format in `paycore_projections::snapshot`).
pub fn projection_file(
    name: &str,
    version: u32,
    checkpoint: u64,
    last_hash: Option<[u8; 32]>,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(100 + body.len());
    out.extend_from_slice(b"PCPJ");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&checkpoint.to_le_bytes());
    match last_hash {
        Some(hash) => {
            out.push(1);
            out.extend_from_slice(&hash);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The body of a projection snapshot file (after its header).
pub fn projection_body(file: &[u8]) -> Option<&[u8]> {
    let header = paycore_projections::snapshot::parse_header(file).ok()?;
    let header_len =
        4 + 4 + 2 + header.name.len() + 4 + 8 + 1 + if header.last_hash.is_some() { 32 } else { 0 } + 8 + 4;
    file.get(header_len..)
}

pub fn projection_seeds() -> Vec<Vec<u8>> {
    let all = projections();
    let mut seeds = Vec::new();
    for (name, file) in &world().projection_snapshots {
        let Some(index) = all.iter().position(|info| info.name == name) else {
            continue;
        };
        let mut raw = vec![index as u8];
        raw.extend_from_slice(file);
        seeds.push(raw);
        if let Some(body) = projection_body(file) {
            let mut made = vec![0x80 | index as u8];
            made.extend_from_slice(body);
            seeds.push(made);
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
