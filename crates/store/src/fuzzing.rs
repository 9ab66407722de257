//! Entry points for the fuzzers of `paycore-fuzz`: the store's decoders of
//! bytes an attacker (or a damaged disk) controls, as plain functions. Not
//! an API and not for production code; hidden from the docs. Each one runs
//! the very code the store runs, so a panic found through it is a panic of
//! the store.

use crate::api::StreamName;
use crate::snapshots::StoredSnapshot;

pub use crate::log::fuzzing::{frame, frame_body, index_run, index_snapshot, legacy_index_snapshot, seal};

/// What `DirSnapshots` makes of the bytes of `stream`'s snapshot file:
/// `None` is "damaged or another stream's, ignored".
pub fn aggregate_snapshot_file(bytes: &[u8], stream: &StreamName) -> Option<StoredSnapshot> {
    crate::snapshots::decode(bytes, stream)
}

/// The bytes of `stream`'s snapshot file as `DirSnapshots` writes them.
pub fn encode_aggregate_snapshot_file(stream: &StreamName, snapshot: &StoredSnapshot) -> Vec<u8> {
    crate::snapshots::encode(stream, snapshot)
}
