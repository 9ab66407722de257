//! Fuzzing harnesses for every decoder of paycore that an attacker — or a
//! damaged disk — can feed: each request message at the gRPC boundary
//! (through the servers' own decode path, then the handlers' conversion),
//! the log's frames, its index snapshot and its whole recovery scan, the
//! projection and aggregate snapshots, page tokens and event payloads.
//!
//! Each target is a function of `&[u8]` that must never panic (an `Err`
//! from the code under test is fine: that is the decoder refusing bad
//! input). The targets are run three ways:
//!
//! - in the test suite (`make test`): `tests/short.rs` runs each target
//!   briefly on its seeds, mutations of them and random bytes
//!   ([`mutate::run`]), a few seconds in all;
//! - for as long as asked, on the stable toolchain: `paycore-fuzz run`
//!   (the same seeded mutator, no coverage feedback);
//! - coverage-guided, with cargo-fuzz and libFuzzer: `fuzz/` at the root
//!   of the repository holds one cargo-fuzz target per harness, and
//!   `paycore-fuzz seeds DIR` writes their seed corpora. `make fuzz` runs
//!   them all (see the README's "Fuzzing" section for the command, what it
//!   needs and the figures of the last long run).
//!
//! Last long run (README, "Fuzzing"): 10 CPU-minutes per target, 416
//! million executions in all, no panic left; one found and fixed (an
//! overflow in the log's index snapshot frame table, replayed from
//! `regressions/` by the suite).
//!
//! The seeds are made, not stored: [`world`] writes a small history through
//! the real engine into a real log and derives valid frames, an index
//! snapshot, event payloads, projection and aggregate snapshots, page
//! tokens and IDs from it; the request seeds are generated from the
//! descriptor of `proto/paycore/v1`, one per method.

pub mod events;
pub mod grpc;
pub mod log;
pub mod mutate;
pub mod page;
pub mod snapshots;
pub mod world;

/// One fuzz target.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Also the name of its cargo-fuzz target.
    pub name: &'static str,
    pub about: &'static str,
    /// The harness: must not panic, whatever the bytes.
    pub run: fn(&[u8]),
    /// Valid (and a few hostile) inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Longest input the mutator makes.
    pub max_len: usize,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "grpc_request",
        about: "every request message of paycore.v1 through the server codec, then the handler's conversion",
        run: grpc::run,
        seeds: grpc::seeds,
        max_len: 4096,
    },
    Target {
        name: "log_frame",
        about: "a log frame as a read decodes it (header, CRC, body, events, metadata)",
        run: log::frame,
        seeds: log::frame_seeds,
        max_len: 8192,
    },
    Target {
        name: "log_index_run",
        about: "an index run file of the log (footer, filter, directories, pages)",
        run: log::index_run,
        seeds: log::index_run_seeds,
        max_len: 64 * 1024,
    },
    Target {
        name: "log_index_snapshot",
        about: "the index.snapshot file of builds before the index runs (read on upgrade)",
        run: log::index_snapshot,
        seeds: log::index_snapshot_seeds,
        max_len: 16384,
    },
    Target {
        name: "log_open",
        about: "opening a log directory: index snapshot check, frame scan, torn-tail rules, reading it back",
        run: log::open,
        seeds: log::open_seeds,
        max_len: 96 * 1024,
    },
    Target {
        name: "model_row",
        about: "a read-model row as the model store holds it (checkpoint, project, account, resource, …)",
        run: snapshots::model_row,
        seeds: snapshots::model_row_seeds,
        max_len: 4096,
    },
    Target {
        name: "aggregate_snapshot",
        about: "an aggregate snapshot file and the engine's decoding of its state",
        run: snapshots::aggregate,
        seeds: snapshots::aggregate_seeds,
        max_len: 4096,
    },
    Target {
        name: "page_token",
        about: "a list's page token",
        run: page::token,
        seeds: page::seeds,
        max_len: 512,
    },
    Target {
        name: "event_payload",
        about: "an event payload of every type and schema version (upcasting), then its subscription message",
        run: events::payload,
        seeds: events::seeds,
        max_len: 4096,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}
