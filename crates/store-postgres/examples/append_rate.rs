//! Append throughput of the PostgreSQL event store.
//!
//! ```text
//! cargo run --release -p paycore-store-postgres --example append_rate [-- SECONDS]
//! ```
//!
//! Uses `PAYCORE_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), in a schema of its own that it
//! drops at the end. Three runs, each SECONDS long (default 5):
//! one caller appending one event at a time (the latency of a lone append),
//! 64 concurrent callers appending one event each (group commit at work),
//! one caller appending 1,000 events per request, and two stores (as two
//! servers would be) with 32 callers each, contending for the append lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use paycore_store::{AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamWrite};
use paycore_store_postgres::{PgOptions, PgStore, migrate};

fn request(stream: &str, events: usize, metadata: &Arc<EventMetadata>) -> AppendRequest {
    AppendRequest {
        writes: vec![StreamWrite {
            stream: stream.into(),
            expected: ExpectedVersion::Any,
            events: (0..events)
                .map(|i| NewEvent {
                    event_type: "TransactionRecorded".into(),
                    schema_version: 1,
                    metadata: metadata.clone(),
                    payload: Bytes::from(format!("{i:0>100}")),
                })
                .collect(),
        }],
    }
}

struct Run {
    appends: u64,
    events: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn report(mut self, name: &str) {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{name:<34} {:>9.0} appends/s {:>10.0} events/s   latency p50 {:>8.2?} p99 {:>8.2?} max {:>8.2?}",
            self.appends as f64 / secs,
            self.events as f64 / secs,
            pct(0.50),
            pct(0.99),
            pct(1.0),
        );
    }
}

async fn run(store: Arc<PgStore>, callers: usize, batch: usize, duration: Duration) -> Run {
    run_on(&[store], callers, batch, duration).await
}

/// `callers` callers spread over `stores`.
async fn run_on(stores: &[Arc<PgStore>], callers: usize, batch: usize, duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let store = stores[c % stores.len()].clone();
            tokio::spawn(async move {
                let metadata = Arc::new(EventMetadata {
                    actor: Some("key_bench".into()),
                    project_id: Some("prj_bench".into()),
                    ..EventMetadata::default()
                });
                let stream = format!("account-bench{c}");
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let request = request(&stream, batch, &metadata);
                    let sent = Instant::now();
                    store.append(request).await.expect("append");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("caller"));
    }
    let appends = latencies.len() as u64;
    Run {
        appends,
        events: appends * batch as u64,
        elapsed: started.elapsed(),
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let url = std::env::var("PAYCORE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("paycore_bench_{}", uuid::Uuid::now_v7().simple());
    migrate(&url, &schema).await.expect("migrate");
    let store = Arc::new(
        PgStore::connect(&url, PgOptions::with_schema(schema.clone()))
            .await
            .expect("connect"),
    );
    println!(
        "PostgreSQL event store, schema {schema}, {} s per run, {} CPUs",
        seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    run(store.clone(), 1, 1, duration)
        .await
        .report("1 caller, batch 1");
    run(store.clone(), 64, 1, duration)
        .await
        .report("64 callers, batch 1 (group commit)");
    run(store.clone(), 1, 1000, duration)
        .await
        .report("1 caller, batch 1,000");
    let second = Arc::new(
        PgStore::connect(&url, PgOptions::with_schema(schema.clone()))
            .await
            .expect("connect"),
    );
    run_on(&[store.clone(), second.clone()], 64, 1, duration)
        .await
        .report("2 stores x 32 callers, batch 1");
    drop((store, second));

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to drop the schema");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop the bench schema");
}
