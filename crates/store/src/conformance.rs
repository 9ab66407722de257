//! The backend-independent conformance suite (feature `conformance`).
//!
//! Every case is a public async function taking a fresh, empty store. A
//! backend's test file runs them all with one line:
//!
//! ```ignore
//! paycore_store::conformance_tests!(async { std::sync::Arc::new(paycore_store::MemoryStore::new()) });
//! ```
//!
//! The argument is an expression evaluated once per test (typically an
//! `async` block) whose output implements [`Fixture`]: an `Arc` of the store,
//! or a tuple `(store, guard)` where the guard (a temporary directory, a
//! database schema…) is dropped after the store when the test ends. The
//! expansion uses `#[tokio::test]`, so the calling crate needs `tokio` (with
//! the `macros` and `rt-multi-thread` features) as a dev-dependency.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use crate::api::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, GENESIS_HASH, NewEvent, Position,
    ReadDirection, RecordedEvent, StreamName, StreamWrite, TraceContext, Version,
};
use crate::chain::{chain_hash, verify_chain};
use crate::error::StoreError;
use crate::subscription::subscribe_all;

/// What a conformance factory produces; see the module docs.
pub trait Fixture: Send + 'static {
    fn store(&self) -> Arc<dyn EventStore>;
}

impl<S: EventStore> Fixture for Arc<S> {
    fn store(&self) -> Arc<dyn EventStore> {
        self.clone()
    }
}

impl Fixture for Arc<dyn EventStore> {
    fn store(&self) -> Arc<dyn EventStore> {
        self.clone()
    }
}

impl<F: Fixture, G: Send + 'static> Fixture for (F, G) {
    fn store(&self) -> Arc<dyn EventStore> {
        self.0.store()
    }
}

/// Expands into one `#[tokio::test]` per conformance case; see the
/// [module docs](crate::conformance).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases ($factory) [
            appends_and_reads_back,
            expected_no_stream,
            expected_exact,
            expected_any,
            failed_expectation_writes_nothing,
            multi_stream_append_is_atomic,
            same_stream_twice_in_one_request,
            versions_contiguous_from_zero,
            read_stream_directions_and_limits,
            read_stream_nonexistent_is_empty,
            read_all_from_middle_and_limit,
            positions_dense_in_append_order,
            each_append_marks_its_last_event,
            hash_chain_verifies,
            subscription_catches_up_then_goes_live,
            subscription_from_the_middle,
            concurrent_exact_appenders_one_winner_per_version,
            concurrent_appenders_keep_streams_contiguous,
            metadata_round_trips,
            invalid_requests_are_rejected,
            committed_tracks_appends,
            large_request_round_trips,
        ]);
    };
    (@cases ($factory:expr) [$($case:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $factory.await;
                let store = $crate::conformance::Fixture::store(&fixture);
                $crate::conformance::$case(store).await;
                drop(fixture);
            }
        )*
    };
}

// ---------------------------------------------------------------- helpers

fn meta(actor: &str) -> Arc<EventMetadata> {
    Arc::new(EventMetadata {
        actor: Some(actor.to_owned()),
        ..EventMetadata::default()
    })
}

/// An event whose payload is `payload`.
pub fn event(event_type: &str, payload: impl Into<Bytes>) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        schema_version: 1,
        metadata: meta("conformance"),
        payload: payload.into(),
    }
}

/// A write of `events` to `stream`.
pub fn write(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamWrite {
    StreamWrite {
        stream: StreamName::from(stream),
        expected,
        events,
    }
}

/// A request of one write.
pub fn single(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        writes: vec![write(stream, expected, events)],
    }
}

fn numbered(n: usize, tag: &str) -> Vec<NewEvent> {
    (0..n).map(|i| event("Numbered", format!("{tag}-{i}"))).collect()
}

async fn all(store: &Arc<dyn EventStore>) -> Vec<RecordedEvent> {
    store.read_all(0, usize::MAX).await.expect("read_all")
}

async fn stream(store: &Arc<dyn EventStore>, name: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(&name.into(), 0, ReadDirection::Forward, usize::MAX)
        .await
        .expect("read_stream")
}

fn versions(events: &[RecordedEvent]) -> Vec<Version> {
    events.iter().map(|e| e.version).collect()
}

fn positions(events: &[RecordedEvent]) -> Vec<Position> {
    events.iter().map(|e| e.position).collect()
}

fn payloads(events: &[RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect()
}

fn assert_wrong_version(
    result: Result<impl std::fmt::Debug, StoreError>,
    name: &str,
    expected: ExpectedVersion,
    actual: Option<Version>,
) {
    match result {
        Err(StoreError::WrongExpectedVersion {
            stream,
            expected: e,
            actual: a,
        }) => {
            assert_eq!(stream.as_str(), name);
            assert_eq!(e, expected);
            assert_eq!(a, actual);
        }
        other => panic!("expected WrongExpectedVersion on {name}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- cases

/// One append reads back with its whole envelope intact, from the stream and
/// from `$all`.
pub async fn appends_and_reads_back(store: Arc<dyn EventStore>) {
    let metadata = Arc::new(EventMetadata {
        correlation_id: Some(Uuid::from_u128(0x1234)),
        causation_id: Some(Uuid::from_u128(0x5678)),
        idempotency_key: Some("idem-1".into()),
        actor: Some("key_abc".into()),
        project_id: Some("proj_1".into()),
        trace: TraceContext::new([0xab; 16], [0xcd; 8], 1),
    });
    let new = NewEvent {
        event_type: "AccountOpened".into(),
        schema_version: 7,
        metadata: metadata.clone(),
        payload: Bytes::from_static(b"\x00\x01payload\xff"),
    };
    let result = store
        .append(single("account-acc_1", ExpectedVersion::NoStream, vec![new]))
        .await
        .expect("append");
    assert_eq!(result.first_position, 0);
    assert_eq!(result.last_position, 0);
    assert_eq!(result.versions, vec![0]);
    assert!(result.recorded_at_micros > 0);

    let from_stream = stream(&store, "account-acc_1").await;
    let from_all = all(&store).await;
    assert_eq!(from_stream, from_all);
    assert_eq!(from_all.len(), 1);
    let e = &from_all[0];
    assert_eq!(e.position, 0);
    assert_eq!(e.stream.as_str(), "account-acc_1");
    assert_eq!(e.stream.category(), "account");
    assert_eq!(e.version, 0);
    assert_eq!(&*e.event_type, "AccountOpened");
    assert_eq!(e.schema_version, 7);
    assert_eq!(e.recorded_at_micros, result.recorded_at_micros);
    assert_eq!(*e.metadata, *metadata);
    assert_eq!(&e.payload[..], b"\x00\x01payload\xff");
    assert_eq!(e.hash, chain_hash(&GENESIS_HASH, e));
    assert_eq!(
        store
            .stream_version(&"account-acc_1".into())
            .await
            .expect("version"),
        Some(0)
    );
}

pub async fn expected_no_stream(store: Arc<dyn EventStore>) {
    let r = store
        .append(single("s-1", ExpectedVersion::NoStream, numbered(2, "a")))
        .await
        .expect("first NoStream append");
    assert_eq!(r.versions, vec![1]);
    assert_wrong_version(
        store
            .append(single("s-1", ExpectedVersion::NoStream, numbered(1, "b")))
            .await,
        "s-1",
        ExpectedVersion::NoStream,
        Some(1),
    );
    assert_eq!(payloads(&stream(&store, "s-1").await), ["a-0", "a-1"]);
}

pub async fn expected_exact(store: Arc<dyn EventStore>) {
    assert_wrong_version(
        store
            .append(single("s-1", ExpectedVersion::Exact(0), numbered(1, "x")))
            .await,
        "s-1",
        ExpectedVersion::Exact(0),
        None,
    );
    store
        .append(single("s-1", ExpectedVersion::NoStream, numbered(1, "a")))
        .await
        .expect("create");
    let r = store
        .append(single("s-1", ExpectedVersion::Exact(0), numbered(2, "b")))
        .await
        .expect("Exact(0)");
    assert_eq!(r.versions, vec![2]);
    for stale in [0, 1, 3] {
        assert_wrong_version(
            store
                .append(single("s-1", ExpectedVersion::Exact(stale), numbered(1, "c")))
                .await,
            "s-1",
            ExpectedVersion::Exact(stale),
            Some(2),
        );
    }
    store
        .append(single("s-1", ExpectedVersion::Exact(2), numbered(1, "d")))
        .await
        .expect("Exact(2)");
    assert_eq!(
        payloads(&stream(&store, "s-1").await),
        ["a-0", "b-0", "b-1", "d-0"]
    );
}

pub async fn expected_any(store: Arc<dyn EventStore>) {
    let r = store
        .append(single("s-1", ExpectedVersion::Any, numbered(1, "a")))
        .await
        .expect("Any on a new stream");
    assert_eq!(r.versions, vec![0]);
    let r = store
        .append(single("s-1", ExpectedVersion::Any, numbered(3, "b")))
        .await
        .expect("Any on an existing stream");
    assert_eq!(r.versions, vec![3]);
    assert_eq!(versions(&stream(&store, "s-1").await), [0, 1, 2, 3]);
}

/// A failed expectation writes nothing: `$all`, the stream, the stream
/// version and the committed watermark are unchanged.
pub async fn failed_expectation_writes_nothing(store: Arc<dyn EventStore>) {
    store
        .append(single("s-1", ExpectedVersion::NoStream, numbered(2, "a")))
        .await
        .expect("setup");
    let before_all = all(&store).await;
    let before_stream = stream(&store, "s-1").await;
    let before_committed = *store.committed().borrow();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(5),
    ] {
        let result = store.append(single("s-1", expected, numbered(3, "bad"))).await;
        assert!(matches!(result, Err(StoreError::WrongExpectedVersion { .. })));
    }
    assert_eq!(all(&store).await, before_all);
    assert_eq!(stream(&store, "s-1").await, before_stream);
    assert_eq!(
        store.stream_version(&"s-1".into()).await.expect("version"),
        Some(1)
    );
    assert_eq!(*store.committed().borrow(), before_committed);
    // The next good append continues right after.
    let r = store
        .append(single("s-1", ExpectedVersion::Exact(1), numbered(1, "ok")))
        .await
        .expect("append after failures");
    assert_eq!(r.first_position, 2);
}

/// A request touching several streams is all or nothing.
pub async fn multi_stream_append_is_atomic(store: Arc<dyn EventStore>) {
    store
        .append(single("account-a", ExpectedVersion::NoStream, numbered(1, "a")))
        .await
        .expect("setup a");
    store
        .append(single("account-b", ExpectedVersion::NoStream, numbered(1, "b")))
        .await
        .expect("setup b");
    let before = all(&store).await;

    // Second expectation fails: the first write must not land either.
    let transfer = |b_expected| AppendRequest {
        writes: vec![
            write("account-a", ExpectedVersion::Exact(0), numbered(1, "debit")),
            write("account-b", b_expected, numbered(1, "credit")),
            write("transfer-t1", ExpectedVersion::NoStream, numbered(1, "transfer")),
        ],
    };
    assert_wrong_version(
        store.append(transfer(ExpectedVersion::Exact(3))).await,
        "account-b",
        ExpectedVersion::Exact(3),
        Some(0),
    );
    assert_eq!(all(&store).await, before);
    assert_eq!(
        store.stream_version(&"transfer-t1".into()).await.expect("v"),
        None
    );
    assert!(stream(&store, "transfer-t1").await.is_empty());

    let r = store
        .append(transfer(ExpectedVersion::Exact(0)))
        .await
        .expect("transfer");
    assert_eq!(r.first_position, 2);
    assert_eq!(r.last_position, 4);
    assert_eq!(r.versions, vec![1, 1, 0]);
    let after = all(&store).await;
    assert_eq!(positions(&after), [0, 1, 2, 3, 4]);
    assert_eq!(payloads(&after[2..]), ["debit-0", "credit-0", "transfer-0"]);
    // One commit, one timestamp.
    assert!(
        after[2..]
            .iter()
            .all(|e| e.recorded_at_micros == r.recorded_at_micros)
    );
}

/// A stream may appear twice in one request; each expectation sees the
/// writes before it.
pub async fn same_stream_twice_in_one_request(store: Arc<dyn EventStore>) {
    let r = store
        .append(AppendRequest {
            writes: vec![
                write("s-1", ExpectedVersion::NoStream, numbered(2, "a")),
                write("s-2", ExpectedVersion::NoStream, numbered(1, "x")),
                write("s-1", ExpectedVersion::Exact(1), numbered(1, "b")),
                write("s-1", ExpectedVersion::Any, numbered(1, "c")),
            ],
        })
        .await
        .expect("sequential expectations");
    assert_eq!(r.versions, vec![1, 0, 2, 3]);
    let s1 = stream(&store, "s-1").await;
    assert_eq!(versions(&s1), [0, 1, 2, 3]);
    assert_eq!(payloads(&s1), ["a-0", "a-1", "b-0", "c-0"]);
    assert_eq!(positions(&s1), [0, 1, 3, 4]);

    // The second expectation is checked against the first write: stale.
    let before = all(&store).await;
    assert_wrong_version(
        store
            .append(AppendRequest {
                writes: vec![
                    write("s-1", ExpectedVersion::Exact(3), numbered(1, "d")),
                    write("s-1", ExpectedVersion::Exact(3), numbered(1, "e")),
                ],
            })
            .await,
        "s-1",
        ExpectedVersion::Exact(3),
        Some(4),
    );
    assert_eq!(all(&store).await, before);
    // NoStream after a write of the same request fails too.
    assert_wrong_version(
        store
            .append(AppendRequest {
                writes: vec![
                    write("s-3", ExpectedVersion::NoStream, numbered(1, "f")),
                    write("s-3", ExpectedVersion::NoStream, numbered(1, "g")),
                ],
            })
            .await,
        "s-3",
        ExpectedVersion::NoStream,
        Some(0),
    );
    assert_eq!(all(&store).await, before);
}

pub async fn versions_contiguous_from_zero(store: Arc<dyn EventStore>) {
    let names = ["a-1", "b-1", "c-1"];
    for round in 0..10 {
        let name = names[round % names.len()];
        store
            .append(single(name, ExpectedVersion::Any, numbered(round % 3 + 1, "e")))
            .await
            .expect("append");
    }
    let mut total = 0;
    for name in names {
        let events = stream(&store, name).await;
        let expected: Vec<Version> = (0..events.len() as u64).collect();
        assert_eq!(versions(&events), expected, "{name}");
        assert!(events.windows(2).all(|w| w[0].position < w[1].position));
        assert_eq!(
            store.stream_version(&name.into()).await.expect("v"),
            Some(events.len() as u64 - 1)
        );
        total += events.len();
    }
    assert_eq!(all(&store).await.len(), total);
}

pub async fn read_stream_directions_and_limits(store: Arc<dyn EventStore>) {
    // Interleave another stream so versions and positions differ.
    for i in 0..10 {
        store
            .append(single(
                "s-1",
                ExpectedVersion::Any,
                vec![event("E", format!("v{i}"))],
            ))
            .await
            .expect("append");
        store
            .append(single("other-1", ExpectedVersion::Any, numbered(1, "o")))
            .await
            .expect("append other");
    }
    let s: StreamName = "s-1".into();
    let read = |from, direction, max| {
        let store = store.clone();
        let s = s.clone();
        async move {
            versions(
                &store
                    .read_stream(&s, from, direction, max)
                    .await
                    .expect("read_stream"),
            )
        }
    };
    use ReadDirection::{Backward, Forward};
    assert_eq!(read(0, Forward, 100).await, (0..10).collect::<Vec<_>>());
    assert_eq!(read(4, Forward, 3).await, [4, 5, 6]);
    assert_eq!(read(8, Forward, 5).await, [8, 9]);
    assert_eq!(read(10, Forward, 5).await, Vec::<u64>::new());
    assert_eq!(read(u64::MAX, Forward, 5).await, Vec::<u64>::new());
    assert_eq!(read(0, Forward, 0).await, Vec::<u64>::new());
    assert_eq!(read(Version::MAX, Backward, 3).await, [9, 8, 7]);
    assert_eq!(read(5, Backward, 2).await, [5, 4]);
    assert_eq!(read(5, Backward, 100).await, [5, 4, 3, 2, 1, 0]);
    assert_eq!(read(100, Backward, 2).await, [9, 8]);
    assert_eq!(read(0, Backward, 10).await, [0]);
    assert_eq!(read(3, Backward, 0).await, Vec::<u64>::new());
    let events = store.read_stream(&s, 0, Forward, 100).await.expect("read");
    assert_eq!(positions(&events), (0..10).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(payloads(&events)[3], "v3");
}

pub async fn read_stream_nonexistent_is_empty(store: Arc<dyn EventStore>) {
    let missing: StreamName = "nothing-here".into();
    for direction in [ReadDirection::Forward, ReadDirection::Backward] {
        assert!(
            store
                .read_stream(&missing, 0, direction, 10)
                .await
                .expect("read")
                .is_empty()
        );
    }
    assert_eq!(store.stream_version(&missing).await.expect("version"), None);
    store
        .append(single("something-1", ExpectedVersion::Any, numbered(1, "x")))
        .await
        .expect("append");
    assert!(
        store
            .read_stream(&missing, 0, ReadDirection::Backward, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(store.read_all(0, 0).await.expect("read_all").is_empty());
}

pub async fn read_all_from_middle_and_limit(store: Arc<dyn EventStore>) {
    for i in 0..5 {
        store
            .append(single(&format!("s-{i}"), ExpectedVersion::Any, numbered(4, "e")))
            .await
            .expect("append");
    }
    let read = |from, max| {
        let store = store.clone();
        async move { positions(&store.read_all(from, max).await.expect("read_all")) }
    };
    assert_eq!(read(5, 3).await, [5, 6, 7]);
    assert_eq!(read(18, 10).await, [18, 19]);
    assert_eq!(read(20, 10).await, Vec::<u64>::new());
    assert_eq!(read(100, 1).await, Vec::<u64>::new());
    assert_eq!(read(0, 0).await, Vec::<u64>::new());
    assert_eq!(read(0, usize::MAX).await, (0..20).collect::<Vec<_>>());
    assert_eq!(read(3, 1).await, [3]);
}

/// Positions are dense, and `$all` is in append order.
pub async fn positions_dense_in_append_order(store: Arc<dyn EventStore>) {
    let mut expected = Vec::new();
    let mut next = 0;
    for i in 0..12 {
        let n = i % 3 + 1;
        let tag = format!("r{i}");
        let r = store
            .append(single(
                &format!("s-{}", i % 4),
                ExpectedVersion::Any,
                numbered(n, &tag),
            ))
            .await
            .expect("append");
        assert_eq!(r.first_position, next);
        assert_eq!(r.last_position, next + n as u64 - 1);
        next += n as u64;
        expected.extend((0..n).map(|j| format!("{tag}-{j}")));
    }
    let events = all(&store).await;
    assert_eq!(positions(&events), (0..next).collect::<Vec<_>>());
    assert_eq!(payloads(&events), expected);
    assert_eq!(*store.committed().borrow(), next);
    // recorded_at never goes backwards along $all.
    assert!(
        events
            .windows(2)
            .all(|w| w[0].recorded_at_micros <= w[1].recorded_at_micros)
    );
}

/// Every event read back from `$all` or a stream says whether it ends its
/// append, also when concurrent appends share one group commit: readers
/// that must not show half of an append rely on it.
pub async fn each_append_marks_its_last_event(store: Arc<dyn EventStore>) {
    let appends = (0..24).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let request = AppendRequest {
                writes: vec![
                    write(
                        &format!("a-{i}"),
                        ExpectedVersion::Any,
                        numbered(i % 3 + 1, "debit"),
                    ),
                    write(
                        &format!("b-{i}"),
                        ExpectedVersion::Any,
                        numbered(i % 2 + 1, "credit"),
                    ),
                ],
            };
            store.append(request).await.expect("append")
        })
    });
    let mut ends = Vec::new();
    for append in appends.collect::<Vec<_>>() {
        ends.push(append.await.expect("task").last_position);
    }
    let events = all(&store).await;
    let marked: Vec<Position> = events
        .iter()
        .filter(|event| event.last_in_commit)
        .map(|event| event.position)
        .collect();
    ends.sort_unstable();
    assert_eq!(marked, ends);
    let read = stream(&store, "b-5").await;
    assert!(read.last().is_some_and(|event| event.last_in_commit));
    let a = stream(&store, "a-5").await;
    assert!(a.iter().all(|event| !event.last_in_commit));
}

pub async fn hash_chain_verifies(store: Arc<dyn EventStore>) {
    let mut last = None;
    for i in 0..8 {
        let r = store
            .append(AppendRequest {
                writes: vec![
                    write(
                        &format!("a-{}", i % 3),
                        ExpectedVersion::Any,
                        numbered(i % 2 + 1, "x"),
                    ),
                    write("b-1", ExpectedVersion::Any, numbered(1, "y")),
                ],
            })
            .await
            .expect("append");
        last = Some(r.last_position);
    }
    let events = all(&store).await;
    assert_eq!(events.last().map(|e| e.position), last);
    let head = verify_chain(GENESIS_HASH, &events).expect("chain verifies");
    assert_eq!(Some(head), events.last().map(|e| e.hash));
    // From the middle, with the hash before it.
    verify_chain(events[4].hash, &events[5..]).expect("tail verifies");
    // Stream reads carry the same hashes.
    for e in stream(&store, "b-1").await {
        assert_eq!(e, events[e.position as usize]);
    }
    // Any edit breaks it.
    let mut edited = events.clone();
    edited[3].payload = Bytes::from_static(b"tampered");
    assert_eq!(
        verify_chain(GENESIS_HASH, &edited).map_err(|e| e.position()),
        Err(3)
    );
}

/// A subscription from 0 sees events appended before it (catch-up) and
/// during it (live), from concurrent writers, each exactly once, in order.
pub async fn subscription_catches_up_then_goes_live(store: Arc<dyn EventStore>) {
    for i in 0..30 {
        store
            .append(single(
                &format!("pre-{}", i % 5),
                ExpectedVersion::Any,
                numbered(i % 3 + 1, "pre"),
            ))
            .await
            .expect("append");
    }
    let before = *store.committed().borrow();
    let writers = 4;
    let per_writer = 40;
    let mut handles = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut written = 0u64;
            for i in 0..per_writer {
                let n = i % 3 + 1;
                store
                    .append(single(
                        &format!("live-{w}"),
                        ExpectedVersion::Any,
                        numbered(n, "live"),
                    ))
                    .await
                    .expect("append");
                written += n as u64;
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            written
        }));
    }
    let written_per_writer: u64 = (0..per_writer).map(|i| (i % 3 + 1) as u64).sum();
    let total = before + writers as u64 * written_per_writer;
    let mut sub = subscribe_all(store.clone(), 0).with_batch_size(7);
    let mut seen = Vec::new();
    let reader = async {
        while (seen.len() as u64) < total {
            if seen.len() % 2 == 0 {
                seen.push(sub.next().await.expect("subscription"));
            } else {
                let batch = sub.next_batch(50).await.expect("subscription");
                assert!(!batch.is_empty() && batch.len() <= 50);
                seen.extend(batch);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("subscription keeps up");
    for handle in handles {
        assert_eq!(handle.await.expect("writer"), written_per_writer);
    }
    assert_eq!(*store.committed().borrow(), total);
    assert_eq!(positions(&seen), (0..total).collect::<Vec<_>>());
    assert_eq!(seen, all(&store).await);
    assert_eq!(sub.position(), total);
    // Caught up: nothing more arrives until the next append.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), sub.next())
            .await
            .is_err()
    );
    store
        .append(single("late-1", ExpectedVersion::Any, numbered(2, "late")))
        .await
        .expect("append");
    let late = tokio::time::timeout(Duration::from_secs(10), sub.next_batch(10))
        .await
        .expect("live event arrives")
        .expect("batch");
    let mut late_positions = positions(&late);
    if late_positions.len() == 1 {
        late_positions.push(sub.next().await.expect("next").position);
    }
    assert_eq!(late_positions, [total, total + 1]);
}

pub async fn subscription_from_the_middle(store: Arc<dyn EventStore>) {
    store
        .append(single("s-1", ExpectedVersion::Any, numbered(10, "a")))
        .await
        .expect("append");
    let mut sub = subscribe_all(store.clone(), 6);
    assert_eq!(sub.position(), 6);
    for expected in 6..10 {
        assert_eq!(sub.next().await.expect("next").position, expected);
    }
    // From a position not written yet: waits for it.
    let mut ahead = subscribe_all(store.clone(), 12);
    let waiter = tokio::spawn(async move { ahead.next().await.map(|e| e.position) });
    store
        .append(single("s-1", ExpectedVersion::Any, numbered(3, "b")))
        .await
        .expect("append");
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("subscription wakes up")
        .expect("task");
    assert_eq!(got.expect("next"), 12);
    assert_eq!(sub.next().await.expect("next").position, 10);
}

/// Appenders racing with the same `Exact` expectation: exactly one wins each
/// version, the losers get `WrongExpectedVersion`, and nothing is duplicated.
pub async fn concurrent_exact_appenders_one_winner_per_version(store: Arc<dyn EventStore>) {
    let racers = 8;
    let rounds = 10u64;
    for round in 0..rounds {
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(round - 1)
        };
        let mut handles = Vec::new();
        for racer in 0..racers {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                store
                    .append(single(
                        "race-1",
                        expected,
                        vec![event("Raced", format!("round{round}-racer{racer}"))],
                    ))
                    .await
            }));
        }
        let mut winners = 0;
        for handle in handles {
            match handle.await.expect("task") {
                Ok(r) => {
                    winners += 1;
                    assert_eq!(r.versions, vec![round]);
                }
                Err(StoreError::WrongExpectedVersion { actual, .. }) => {
                    assert_eq!(actual, Some(round));
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    let events = stream(&store, "race-1").await;
    assert_eq!(versions(&events), (0..rounds).collect::<Vec<_>>());
    for (round, payload) in payloads(&events).iter().enumerate() {
        assert!(payload.starts_with(&format!("round{round}-")), "{payload}");
    }
    assert_eq!(all(&store).await.len() as u64, rounds);
}

/// Many tasks appending to the same streams with read-then-`Exact` retries:
/// every version exactly once, every write applied once.
pub async fn concurrent_appenders_keep_streams_contiguous(store: Arc<dyn EventStore>) {
    let tasks = 8;
    let per_task = 15;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let name: StreamName = format!("shared-{}", t % 2).into();
            let mut conflicts = 0;
            for i in 0..per_task {
                loop {
                    let current = store.stream_version(&name).await.expect("version");
                    let request = AppendRequest {
                        writes: vec![StreamWrite {
                            stream: name.clone(),
                            expected: ExpectedVersion::from_current(current),
                            events: vec![event("Counted", format!("t{t}-{i}"))],
                        }],
                    };
                    match store.append(request).await {
                        Ok(_) => break,
                        Err(StoreError::WrongExpectedVersion { .. }) => conflicts += 1,
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let mut seen = HashSet::new();
    for s in ["shared-0", "shared-1"] {
        let events = stream(&store, s).await;
        assert_eq!(versions(&events), (0..events.len() as u64).collect::<Vec<_>>());
        for payload in payloads(&events) {
            assert!(seen.insert(payload.clone()), "duplicate {payload}");
        }
    }
    assert_eq!(seen.len(), tasks * per_task);
    let events = all(&store).await;
    assert_eq!(events.len(), tasks * per_task);
    verify_chain(GENESIS_HASH, &events).expect("chain verifies");
}

pub async fn metadata_round_trips(store: Arc<dyn EventStore>) {
    let full = Arc::new(EventMetadata {
        correlation_id: Some(Uuid::from_u128(u128::MAX)),
        causation_id: Some(Uuid::nil()),
        idempotency_key: Some("ключ-🔑".into()),
        actor: Some(String::new()),
        project_id: Some("proj_x".into()),
        trace: TraceContext::new([u8::MAX; 16], [1; 8], 0),
    });
    let partial = Arc::new(EventMetadata {
        causation_id: Some(Uuid::from_u128(42)),
        project_id: Some("proj_y".into()),
        ..EventMetadata::default()
    });
    let empty = Arc::new(EventMetadata::default());
    let traced_only = Arc::new(EventMetadata {
        trace: TraceContext::new([7; 16], [8; 8], 1),
        ..EventMetadata::default()
    });
    let metas = [
        full.clone(),
        full.clone(),
        empty.clone(),
        partial.clone(),
        empty.clone(),
        traced_only.clone(),
    ];
    let events: Vec<NewEvent> = metas
        .iter()
        .enumerate()
        .map(|(i, m)| NewEvent {
            event_type: if i < 3 {
                "Same".into()
            } else {
                format!("T{i}").into()
            },
            schema_version: i as u16,
            metadata: m.clone(),
            payload: if i == 2 {
                Bytes::new()
            } else {
                Bytes::from(vec![i as u8; i * 100])
            },
        })
        .collect();
    store
        .append(single("meta-1", ExpectedVersion::NoStream, events.clone()))
        .await
        .expect("append");
    for read in [stream(&store, "meta-1").await, all(&store).await] {
        assert_eq!(read.len(), metas.len());
        for (got, sent) in read.iter().zip(&events) {
            assert_eq!(*got.metadata, *sent.metadata);
            assert_eq!(got.event_type, sent.event_type);
            assert_eq!(got.schema_version, sent.schema_version);
            assert_eq!(got.payload, sent.payload);
        }
    }
}

pub async fn invalid_requests_are_rejected(store: Arc<dyn EventStore>) {
    let empty = store.append(AppendRequest::default()).await;
    assert!(matches!(empty, Err(StoreError::InvalidRequest(_))), "{empty:?}");
    let empty_write = store
        .append(AppendRequest {
            writes: vec![
                write("s-1", ExpectedVersion::Any, numbered(1, "a")),
                write("s-2", ExpectedVersion::Any, vec![]),
            ],
        })
        .await;
    assert!(
        matches!(empty_write, Err(StoreError::InvalidRequest(_))),
        "{empty_write:?}"
    );
    let no_name = store
        .append(single("", ExpectedVersion::Any, numbered(1, "a")))
        .await;
    assert!(
        matches!(no_name, Err(StoreError::InvalidRequest(_))),
        "{no_name:?}"
    );
    assert!(all(&store).await.is_empty());
    assert_eq!(*store.committed().borrow(), 0);
    assert_eq!(store.stream_version(&"s-1".into()).await.expect("v"), None);
}

pub async fn committed_tracks_appends(store: Arc<dyn EventStore>) {
    let mut committed = store.committed();
    assert_eq!(*committed.borrow_and_update(), 0);
    store
        .append(single("s-1", ExpectedVersion::Any, numbered(3, "a")))
        .await
        .expect("append");
    // Acknowledged means visible: the watermark moved before the reply.
    assert!(committed.has_changed().unwrap_or(true));
    assert_eq!(*committed.borrow_and_update(), 3);
    assert_eq!(store.read_all(0, 10).await.expect("read").len(), 3);
}

/// A request of a thousand events with ~100-byte payloads.
pub async fn large_request_round_trips(store: Arc<dyn EventStore>) {
    let events: Vec<NewEvent> = (0..1000).map(|i| event("Bulk", format!("{i:0>100}"))).collect();
    let r = store
        .append(AppendRequest {
            writes: vec![
                write("bulk-1", ExpectedVersion::NoStream, events[..600].to_vec()),
                write("bulk-2", ExpectedVersion::NoStream, events[600..].to_vec()),
            ],
        })
        .await
        .expect("append");
    assert_eq!((r.first_position, r.last_position), (0, 999));
    assert_eq!(r.versions, vec![599, 399]);
    let read = all(&store).await;
    assert_eq!(read.len(), 1000);
    assert_eq!(payloads(&read[999..]), [format!("{:0>100}", 999)]);
    verify_chain(GENESIS_HASH, &read).expect("chain");
    let tail = store
        .read_stream(&"bulk-2".into(), Version::MAX, ReadDirection::Backward, 2)
        .await
        .expect("read");
    assert_eq!(positions(&tail), [999, 998]);
}
