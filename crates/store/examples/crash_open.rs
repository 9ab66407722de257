//! Start of the embedded log after a crash under load.
//!
//! `crash_open load <dir>`: opens the log in `<dir>` and appends commits of
//! three events (a new stream and two of 10,000 long ones, like transfers)
//! as fast as it can, with fsync, printing the committed position every
//! second, until killed (kill -9 it: that is the point).
//!
//! `crash_open open <dir>`: times `LogStore::open` on `<dir>` and prints what
//! it found (events scanned again after the on-disk index, bytes verified)
//! and the process's resident set.

use std::time::Instant;

use bytes::Bytes;
use paycore_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogOptions, LogStore, NewEvent, StreamWrite,
};

fn event(payload: usize) -> NewEvent {
    NewEvent {
        event_type: "Moved".into(),
        schema_version: 1,
        metadata: std::sync::Arc::new(EventMetadata::default()),
        payload: Bytes::from(vec![7u8; payload]),
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        return Err("usage: crash_open load|open <dir>".into());
    };
    let started = Instant::now();
    let (store, report) = LogStore::open(dir, LogOptions::default())?;
    let opened = started.elapsed();
    println!(
        "open: {:.3} s, {} events, {} scanned again after the index, {} bytes verified, from index: {}, RSS {} MiB",
        opened.as_secs_f64(),
        report.events,
        report.replayed_events_after_snapshot,
        report.verified_bytes,
        report.index_loaded_from_snapshot,
        rss_kib() / 1024
    );
    if mode != "load" {
        store.close()?;
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let store = std::sync::Arc::new(store);
        let mut tasks = Vec::new();
        for task in 0..64u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ task;
                for i in 0u64.. {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let request = AppendRequest {
                        writes: vec![
                            StreamWrite {
                                stream: format!("crash-{task}-{i}-{}", std::process::id()).into(),
                                expected: ExpectedVersion::NoStream,
                                events: vec![event(120)],
                            },
                            StreamWrite {
                                stream: format!("long-{}", seed % 10_000).into(),
                                expected: ExpectedVersion::Any,
                                events: vec![event(90)],
                            },
                            StreamWrite {
                                stream: format!("long-{}", (seed >> 20) % 10_000).into(),
                                expected: ExpectedVersion::Any,
                                events: vec![event(90)],
                            },
                        ],
                    };
                    if store.append(request).await.is_err() {
                        return;
                    }
                }
            }));
        }
        let committed = store.committed();
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            println!("committed {}", *committed.borrow());
        }
    })
}
