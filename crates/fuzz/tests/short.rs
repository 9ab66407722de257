//! The short fuzzing session of the test suite: every target on its seeds,
//! then on mutations and random bytes for a bounded time (a few seconds in
//! all, the targets in parallel under nextest). A panic fails the test and
//! prints the input. Also checks that the harnesses reach what they are
//! for: every method of the API is in the request harness, and the seeds
//! are valid encodings that decode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use paycore_fuzz::{TARGETS, mutate, target};

/// Per target: the seeds, then mutations until this much time has passed.
const BUDGET: Duration = Duration::from_millis(1500);

fn short_session(name: &str) {
    let target = target(name).expect("a target of that name");
    let seed = std::env::var("PAYCORE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let session = mutate::run(target, BUDGET, 1_000_000, seed);
    if let Some((input, message)) = &session.panic {
        panic!(
            "{name} panicked after {} executions: {message}\ninput ({} bytes): {}",
            session.executions,
            input.len(),
            hex::encode(input)
        );
    }
    assert!(session.executions > 0);
}

macro_rules! short_sessions {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { short_session(stringify!($name)); })*
        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

short_sessions!(
    grpc_request,
    log_frame,
    log_index_run,
    log_index_snapshot,
    log_open,
    model_row,
    aggregate_snapshot,
    page_token,
    event_payload,
);

#[test]
fn every_target_has_a_short_session() {
    let targets: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(targets, TESTED);
}

#[test]
fn every_method_of_the_api_is_in_the_request_harness() {
    let served = paycore_fuzz::grpc::methods_in_descriptor();
    assert!(
        served.len() > 50,
        "the descriptor lists the API ({} methods)",
        served.len()
    );
    let harnessed = paycore_fuzz::grpc::methods_in_harness();
    let missing: Vec<_> = served.difference(&harnessed).collect();
    let unknown: Vec<_> = harnessed.difference(&served).collect();
    assert!(missing.is_empty(), "methods without a fuzz entry: {missing:?}");
    assert!(unknown.is_empty(), "fuzz entries of no method: {unknown:?}");
}

#[test]
fn the_request_seeds_decode_and_pass_the_first_checks() {
    // Every sample message decodes (through the server codec, without a
    // panic); and a valid sample really is valid for the simple ones.
    for seed in paycore_fuzz::grpc::seeds() {
        (target("grpc_request").unwrap().run)(&seed);
    }
}

#[test]
fn the_log_seeds_are_valid_frames_and_snapshots() {
    let frames = paycore_fuzz::log::frame_seeds();
    assert!(frames.len() > 20);
    for seed in &frames {
        let decoded = if seed[0] == 0 {
            paycore_store::fuzzing::frame(&seed[1..])
        } else {
            paycore_store::fuzzing::frame_body(&seed[1..])
        };
        assert!(decoded.is_ok(), "{decoded:?}");
    }
    let world = paycore_fuzz::world::world();
    assert!(world.segments.len() > 1, "the seed log spans several segments");
    assert_eq!(
        paycore_store::fuzzing::index_snapshot(&world.index_snapshot),
        Ok(world.events.len() as u64)
    );
    assert!(paycore_store::fuzzing::index_run(&world.index_run).is_ok());
}

#[test]
fn the_row_snapshot_and_token_seeds_decode() {
    let rows = paycore_fuzz::snapshots::model_row_seeds();
    assert!(rows.len() >= 5);
    for row in rows {
        assert!(paycore_projections::fuzzing::decode_row(row[0], &row[1..]));
    }
    for seed in paycore_fuzz::snapshots::aggregate_seeds() {
        if seed[0] == 0 {
            assert!(paycore_engine::decode_aggregate_snapshot_state(&seed[1..]).is_some());
        }
    }
    assert!(paycore_fuzz::page::seeds().len() >= 4);
    for seed in paycore_fuzz::events::seeds() {
        if seed.len() > 2 {
            let event_type = paycore_domain::Event::TYPES[usize::from(seed[0])];
            assert!(paycore_domain::Event::decode(event_type, u16::from(seed[1]), &seed[2..]).is_ok());
        }
    }
}

/// Every input a fuzzer once crashed on (`regressions/<target>/*.bin`)
/// runs through its harness without a panic now.
#[test]
fn the_inputs_of_past_crashes_no_longer_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for target in TARGETS {
        let Ok(entries) = std::fs::read_dir(dir.join(target.name)) else {
            continue;
        };
        for entry in entries {
            let input = std::fs::read(entry.unwrap().path()).unwrap();
            (target.run)(&input);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "the regression inputs are found");
}
