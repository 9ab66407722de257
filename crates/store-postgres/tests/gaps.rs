//! Subscribers never skip an event: many concurrent writers on TWO stores (two
//! servers) while a subscriber on a third checks that it sees every position
//! exactly once, in order, with a verifying hash chain, and that a raw
//! `read_all` tail (ignoring the watermark) never sees a gap either.

mod common;

use common::StoreOf;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use paycore_store::{
    AppendRequest, ChainVerifier, EventMetadata, EventStore, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamName, StreamWrite, subscribe_all,
};
use paycore_store_postgres::PgStore;

const TASKS: usize = 16;
const APPENDS_PER_TASK: usize = 200;

fn event(tag: String) -> NewEvent {
    NewEvent {
        event_type: "Tagged".into(),
        schema_version: 1,
        metadata: Arc::new(EventMetadata {
            actor: Some("gaps".into()),
            ..EventMetadata::default()
        }),
        payload: Bytes::from(tag),
    }
}

fn events(tag: &str, n: usize) -> Vec<NewEvent> {
    (0..n).map(|k| event(format!("{tag}-{k}"))).collect()
}

/// The writes of append `i` of task `t`: mostly one stream, every 5th a
/// transfer-like append over three streams (two of them shared by every task).
fn request(t: usize, i: usize) -> AppendRequest {
    let tag = format!("t{t}-i{i}");
    let mut writes = vec![StreamWrite {
        stream: format!("own-{t}.{}", i % 4).into(),
        expected: ExpectedVersion::Any,
        events: events(&format!("{tag}-a"), i % 3 + 1),
    }];
    if i.is_multiple_of(5) {
        writes.push(StreamWrite {
            stream: format!("shared-{}", i % 3).into(),
            expected: ExpectedVersion::Any,
            events: events(&format!("{tag}-b"), 1),
        });
        writes.push(StreamWrite {
            stream: "shared-all".into(),
            expected: ExpectedVersion::Any,
            events: events(&format!("{tag}-c"), 2),
        });
    }
    AppendRequest { writes }
}

/// Every 7th append instead races on a contended stream with read-then-Exact
/// retries, across both stores.
async fn contended(store: &PgStore, t: usize, i: usize) -> (Position, Position, Vec<String>) {
    let stream: StreamName = format!("contended-{}", i % 2).into();
    let tag = format!("t{t}-i{i}-x");
    loop {
        let current = store.stream_version(&stream).await.expect("version");
        let request = AppendRequest {
            writes: vec![StreamWrite {
                stream: stream.clone(),
                expected: ExpectedVersion::from_current(current),
                events: events(&tag, 1),
            }],
        };
        match store.append(request).await {
            Ok(r) => return (r.first_position, r.last_position, vec![format!("{tag}-0")]),
            Err(StoreError::WrongExpectedVersion { .. }) => continue,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}

fn tags(request: &AppendRequest) -> Vec<String> {
    request
        .writes
        .iter()
        .flat_map(|w| w.events.iter())
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect()
}

fn expected_total() -> u64 {
    let mut total = 0;
    for t in 0..TASKS {
        for i in 0..APPENDS_PER_TASK {
            total += if i % 7 == 3 {
                1
            } else {
                request(t, i).event_count() as u64
            };
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_many_writers_subscriber_sees_every_position_once_in_order() {
    let guard = common::SchemaGuard::new().await;
    let server_a = guard.store().await;
    let server_b = guard.store().await;
    let observer = guard.store().await;
    let total = expected_total();

    // Subscriber on the third store: catch-up-then-live, driven by
    // notifications and polls of commits made by the other two.
    let subscriber = {
        let observer = observer.clone();
        tokio::spawn(async move {
            let mut subscription = subscribe_all(observer, 0).with_batch_size(257);
            let mut verifier = ChainVerifier::default();
            let mut seen: Vec<RecordedEvent> = Vec::with_capacity(total as usize);
            while (seen.len() as u64) < total {
                let batch = subscription.next_batch(500).await.expect("subscription");
                for event in batch {
                    assert_eq!(event.position, seen.len() as u64, "skipped or repeated");
                    verifier.push(&event).expect("hash chain verifies");
                    seen.push(event);
                }
            }
            seen
        })
    };

    // A raw tail reader that ignores the watermark: even then, a read never
    // shows a position before all lower ones are visible.
    let writers_done = Arc::new(AtomicBool::new(false));
    let raw_reader = {
        let store = server_a.clone();
        let writers_done = writers_done.clone();
        tokio::spawn(async move {
            let mut next: Position = 0;
            let mut reads = 0u64;
            loop {
                let done = writers_done.load(Ordering::SeqCst);
                let batch = store.read_all(next, 1000).await.expect("read_all");
                reads += 1;
                for event in &batch {
                    assert_eq!(event.position, next, "a read_all showed a gap");
                    next += 1;
                }
                if done && batch.is_empty() {
                    return (next, reads);
                }
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };

    let mut writers = Vec::new();
    for t in 0..TASKS {
        let store = if t.is_multiple_of(2) {
            server_a.clone()
        } else {
            server_b.clone()
        };
        writers.push(tokio::spawn(async move {
            let mut appended = Vec::with_capacity(APPENDS_PER_TASK);
            for i in 0..APPENDS_PER_TASK {
                if i % 7 == 3 {
                    appended.push(contended(&store, t, i).await);
                    continue;
                }
                let request = request(t, i);
                let tags = tags(&request);
                let r = store.append(request).await.expect("append");
                assert_eq!(r.last_position - r.first_position + 1, tags.len() as u64);
                appended.push((r.first_position, r.last_position, tags));
            }
            appended
        }));
    }

    let run = async {
        let mut appended = Vec::new();
        for writer in writers {
            appended.extend(writer.await.expect("writer"));
        }
        writers_done.store(true, Ordering::SeqCst);
        let seen = subscriber.await.expect("subscriber");
        let (raw_next, raw_reads) = raw_reader.await.expect("raw reader");
        (appended, seen, raw_next, raw_reads)
    };
    let (appended, seen, raw_next, raw_reads) = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the subscriber saw every event in time");

    // Exactly `total` events: nothing after them.
    assert_eq!(seen.len() as u64, total);
    assert_eq!(raw_next, total);
    assert!(raw_reads > 1);
    assert!(observer.read_all(total, 10).await.expect("read").is_empty());
    // Every acknowledged append is where its result says, whole.
    let by_position: HashMap<Position, &RecordedEvent> = seen.iter().map(|e| (e.position, e)).collect();
    assert_eq!(appended.len(), TASKS * APPENDS_PER_TASK);
    for (first, last, tags) in &appended {
        let got: Vec<String> = (*first..=*last)
            .map(|p| String::from_utf8_lossy(&by_position[&p].payload).into_owned())
            .collect();
        assert_eq!(&got, tags);
        let recorded_at = by_position[first].recorded_at_micros;
        assert!((*first..=*last).all(|p| by_position[&p].recorded_at_micros == recorded_at));
    }
    // recorded_at never goes backwards along the log.
    assert!(
        seen.windows(2)
            .all(|w| w[0].recorded_at_micros <= w[1].recorded_at_micros)
    );
    // Streams are dense from 0 (the contended ones were raced by both servers).
    let mut versions: HashMap<&str, Vec<u64>> = HashMap::new();
    for e in &seen {
        versions.entry(e.stream.as_str()).or_default().push(e.version);
    }
    for (stream, versions) in versions {
        assert_eq!(
            versions,
            (0..versions.len() as u64).collect::<Vec<_>>(),
            "{stream}"
        );
    }
    // Every store's watermark reaches the end (the writers' through their own
    // commits and the other's notifications).
    for store in [&server_a, &server_b, &observer] {
        let mut committed = store.committed();
        tokio::time::timeout(Duration::from_secs(5), committed.wait_for(|&c| c == total))
            .await
            .expect("watermark catches up")
            .expect("store alive");
    }
    drop((server_a, server_b, observer));
}

/// Another server's commit reaches a subscriber through NOTIFY, long before
/// the (here very slow) head poll would have found it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_servers_commit_arrives_by_notification() {
    let guard = common::SchemaGuard::new().await;
    let writer = guard.store().await;
    let observer = Arc::new(
        PgStore::connect(
            &guard.url,
            paycore_store_postgres::PgOptions {
                poll_interval: Duration::from_secs(3600),
                ..common::options(&guard.schema)
            },
        )
        .await
        .expect("connect"),
    );
    let mut subscription = subscribe_all(observer.clone(), 0);
    for round in 0..5u64 {
        let request = AppendRequest {
            writes: vec![StreamWrite {
                stream: "notified-1".into(),
                expected: ExpectedVersion::Any,
                events: events(&format!("r{round}"), 2),
            }],
        };
        writer.append(request).await.expect("append");
        let got = tokio::time::timeout(Duration::from_secs(5), subscription.next_batch(10))
            .await
            .expect("the notification woke the subscriber")
            .expect("batch");
        assert_eq!(got[0].position, round * 2);
        if got.len() == 1 {
            subscription.next().await.expect("next");
        }
    }
    drop((writer, observer, subscription));
}

/// The append transaction does not depend on the database's default
/// isolation level: with `serializable` as the session default, two stores
/// appending to the same streams never fail with serialization errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_do_not_depend_on_the_default_isolation_level() {
    let guard = common::SchemaGuard::new().await;
    let config: tokio_postgres::Config = guard.url.parse().expect("url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let url = format!(
        "host={host} port={} user={} dbname={} options='-c default_transaction_isolation=serializable'",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_user().unwrap_or("postgres"),
        config.get_dbname().unwrap_or("test"),
    );
    let stores = [
        Arc::new(
            PgStore::connect(&url, common::options(&guard.schema))
                .await
                .expect("connect"),
        ),
        Arc::new(
            PgStore::connect(&url, common::options(&guard.schema))
                .await
                .expect("connect"),
        ),
    ];
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = stores[t % 2].clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let request = AppendRequest {
                        writes: vec![
                            StreamWrite {
                                stream: format!("hot-{}", i % 2).into(),
                                expected: ExpectedVersion::Any,
                                events: events(&format!("t{t}-{i}"), 1),
                            },
                            StreamWrite {
                                stream: "hot-all".into(),
                                expected: ExpectedVersion::Any,
                                events: events(&format!("t{t}-{i}-all"), 1),
                            },
                        ],
                    };
                    store.append(request).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let all = stores[0].read_all(0, usize::MAX).await.expect("read");
    assert_eq!(all.len(), 8 * 40 * 2);
    paycore_store::verify_chain(paycore_store::GENESIS_HASH, &all).expect("chain");
}
