//! Quick append-throughput check of the embedded log.
//!
//! `cargo run --release -p paycore-store --example append_rate [-- SECONDS [DIR]]`
//!
//! Scenarios (each on a fresh data directory, fsync on every group commit
//! unless the name says otherwise):
//! - bulk: requests of 1,000 events with ~100-byte payloads, from 1 and 2
//!   concurrent callers;
//! - single: single-event requests from 64 and 256 concurrent callers (group
//!   commit at work), each on its own stream with `Exact` expectations.
//!
//! Environment: `SCENARIO=<substring>` runs only the matching scenarios;
//! `INDEX_FLUSH_EVENTS=<events>` overrides `LogOptions::index_flush_events`.
//! Scenarios write gigabytes; the page cache writeback of one can slow the
//! next, so compare runs of the same scenario.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use paycore_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogOptions, LogStore, NewEvent, StreamWrite,
    SyncMode,
};

fn bulk_request(stream: &str, events: usize, metadata: &Arc<EventMetadata>) -> AppendRequest {
    AppendRequest {
        writes: vec![StreamWrite {
            stream: stream.into(),
            expected: ExpectedVersion::Any,
            events: (0..events)
                .map(|i| NewEvent {
                    event_type: "Benchmarked".into(),
                    schema_version: 1,
                    metadata: metadata.clone(),
                    payload: Bytes::from(vec![(i % 251) as u8; 100]),
                })
                .collect(),
        }],
    }
}

struct Outcome {
    events: u64,
    requests: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

async fn run(
    name: &str,
    base: &std::path::Path,
    sync: SyncMode,
    callers: usize,
    events_per_request: usize,
    seconds: f64,
) {
    if std::env::var("SCENARIO").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let (store, _) = LogStore::open(
        dir.path(),
        LogOptions {
            sync,
            index_flush_events: std::env::var("INDEX_FLUSH_EVENTS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(LogOptions::default().index_flush_events),
            ..LogOptions::default()
        },
    )
    .expect("open");
    let store = Arc::new(store);
    let metadata = Arc::new(EventMetadata {
        correlation_id: Some(uuid::Uuid::from_u128(1)),
        actor: Some("key_bench".into()),
        project_id: Some("proj_bench".into()),
        ..EventMetadata::default()
    });
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let store = store.clone();
        let metadata = metadata.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("bench-{caller}");
            let mut version = None;
            let mut out = Outcome {
                events: 0,
                requests: 0,
                elapsed: Duration::ZERO,
                latencies_us: Vec::new(),
            };
            while Instant::now() < deadline {
                let mut request = bulk_request(&stream, events_per_request, &metadata);
                request.writes[0].expected = ExpectedVersion::from_current(version);
                let t = Instant::now();
                let result = store.append(request).await.expect("append");
                out.latencies_us.push(t.elapsed().as_micros() as u64);
                version = result.versions.last().copied();
                out.events += events_per_request as u64;
                out.requests += 1;
            }
            out
        }));
    }
    let mut total = Outcome {
        events: 0,
        requests: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let o = task.await.expect("task");
        total.events += o.events;
        total.requests += o.requests;
        total.latencies_us.extend(o.latencies_us);
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let l = &total.latencies_us;
        l[((l.len() as f64 * p) as usize).min(l.len() - 1)]
    };
    let secs = total.elapsed.as_secs_f64();
    println!(
        "{name:<34} {:>12.0} events/s {:>10.0} appends/s   latency p50 {:>6} us  p99 {:>6} us  max {:>6} us",
        total.events as f64 / secs,
        total.requests as f64 / secs,
        pct(0.50),
        pct(0.99),
        total.latencies_us.last().copied().unwrap_or(0),
    );
    store.close().expect("close");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let base = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "data directory under {}, {seconds} s per scenario",
        base.display()
    );
    runtime.block_on(async {
        run(
            "bulk 1000-event requests, 1 caller",
            &base,
            SyncMode::Fsync,
            1,
            1000,
            seconds,
        )
        .await;
        run(
            "bulk 1000-event requests, 2 callers",
            &base,
            SyncMode::Fsync,
            2,
            1000,
            seconds,
        )
        .await;
        run(
            "bulk 1000-event requests, 4 callers",
            &base,
            SyncMode::Fsync,
            4,
            1000,
            seconds,
        )
        .await;
        run("single events, 1 caller", &base, SyncMode::Fsync, 1, 1, seconds).await;
        run(
            "single events, 64 callers",
            &base,
            SyncMode::Fsync,
            64,
            1,
            seconds,
        )
        .await;
        run(
            "single events, 256 callers",
            &base,
            SyncMode::Fsync,
            256,
            1,
            seconds,
        )
        .await;
        run(
            "bulk, 2 callers, NO fsync",
            &base,
            SyncMode::NoSync,
            2,
            1000,
            seconds,
        )
        .await;
        run(
            "single events, 256 callers, NO fsync",
            &base,
            SyncMode::NoSync,
            256,
            1,
            seconds,
        )
        .await;
    });
}
