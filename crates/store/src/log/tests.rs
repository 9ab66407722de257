//! Unit tests of the log that need fault injection.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::*;
use crate::api::{ExpectedVersion, GENESIS_HASH, NewEvent, StreamWrite};
use crate::chain::verify_chain;

/// Failures the tests can switch on.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Segment preallocation reports a full disk.
    pub fail_preallocate: AtomicBool,
    /// The group write fails after half of it reached the file.
    pub fail_write: AtomicBool,
}

fn request(stream: &str, events: usize, payload_bytes: usize) -> AppendRequest {
    AppendRequest {
        writes: vec![StreamWrite {
            stream: stream.into(),
            expected: ExpectedVersion::Any,
            events: (0..events)
                .map(|i| NewEvent {
                    event_type: "E".into(),
                    schema_version: 1,
                    metadata: Default::default(),
                    payload: Bytes::from(vec![i as u8 | 1; payload_bytes]),
                })
                .collect(),
        }],
    }
}

fn options() -> LogOptions {
    LogOptions {
        segment_bytes: 4096,
        cache_events: 0,
        ..LogOptions::default()
    }
}

#[tokio::test]
async fn disk_full_on_rollover_refuses_cleanly_and_the_store_stays_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = LogStore::open(dir.path(), options()).expect("open");
    // ~1.1 KiB per commit: the fourth one needs a new segment.
    for _ in 0..3 {
        store.append(request("s-1", 1, 1000)).await.expect("append");
    }
    store.shared.faults.fail_preallocate.store(true, Ordering::SeqCst);
    let err = store.append(request("s-1", 1, 1000)).await;
    assert!(matches!(err, Err(StoreError::DiskFull(_))), "{err:?}");
    // Small appends still fit in the current segment.
    store
        .append(request("s-1", 1, 10))
        .await
        .expect("fits without preallocation");
    assert_eq!(*store.committed().borrow(), 4);
    let segments_before = std::fs::read_dir(dir.path().join("segments"))
        .expect("ls")
        .count();
    assert_eq!(segments_before, 1, "the refused segment was removed");

    store
        .shared
        .faults
        .fail_preallocate
        .store(false, Ordering::SeqCst);
    let r = store
        .append(request("s-1", 1, 1000))
        .await
        .expect("append after the disk has room");
    assert_eq!(r.first_position, 4);
    store.close().expect("close");
    drop(store);

    let (store, report) = LogStore::open(dir.path(), options()).expect("reopen");
    assert_eq!(report.events, 5);
    assert_eq!(report.segments, 2);
    let events = store.read_all(0, 100).await.expect("read");
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    verify_chain(GENESIS_HASH, &events).expect("chain");
}

#[tokio::test]
async fn failed_write_is_fatal_and_never_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = LogStore::open(
        dir.path(),
        LogOptions {
            segment_bytes: 1 << 20,
            ..options()
        },
    )
    .expect("open");
    for _ in 0..5 {
        store.append(request("s-1", 2, 50)).await.expect("append");
    }
    store.shared.faults.fail_write.store(true, Ordering::SeqCst);
    let err = store.append(request("s-1", 3, 500)).await;
    assert!(matches!(err, Err(StoreError::Fatal(_))), "{err:?}");
    // Never retried, even once the fault is gone.
    store.shared.faults.fail_write.store(false, Ordering::SeqCst);
    let err = store.append(request("s-1", 1, 5)).await;
    assert!(matches!(err, Err(StoreError::Fatal(_))), "{err:?}");
    // What was durable before stays readable.
    assert_eq!(store.read_all(0, 100).await.expect("read").len(), 10);
    assert_eq!(*store.committed().borrow(), 10);
    store.close().expect("close");
    drop(store);

    // The half-written group is a torn tail on the next open.
    let (store, report) = LogStore::open(dir.path(), options()).expect("reopen");
    assert_eq!(report.events, 10);
    assert!(report.truncated_tail_bytes > 0, "{report:?}");
    let r = store
        .append(request("s-1", 1, 5))
        .await
        .expect("append after recovery");
    assert_eq!(r.first_position, 10);
    assert_eq!(r.versions, vec![10]);
}

// Holding the index lock across awaits is the point: it stalls the writer
// thread (not a task) so that requests queue up into one group.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn group_commit_checks_each_request_against_the_earlier_ones() {
    // Drive the writer with a queue of requests that form one group.
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = LogStore::open(dir.path(), options()).expect("open");
    let store = std::sync::Arc::new(store);
    let exact = |stream: &str, expected| AppendRequest {
        writes: vec![StreamWrite {
            stream: stream.into(),
            expected,
            events: request(stream, 1, 8).writes.remove(0).events,
        }],
    };
    let requests = vec![
        exact("a-1", ExpectedVersion::NoStream),
        exact("a-1", ExpectedVersion::NoStream), // loses to the first
        exact("a-1", ExpectedVersion::Exact(0)),
        exact("b-1", ExpectedVersion::Exact(0)), // b-1 does not exist
        exact("a-1", ExpectedVersion::Exact(1)),
    ];
    let (tx, rx) = std::sync::mpsc::channel();
    // Queue them all before the writer wakes: hold the index write lock so
    // the writer blocks on its first group's check phase.
    let results = {
        let guard = store.shared.index.write();
        let mut handles = Vec::new();
        for r in requests {
            let store = store.clone();
            let tx = tx.clone();
            handles.push(tokio::spawn(async move {
                let out = store.append(r).await;
                let _ = tx.send(());
                out
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(guard);
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.expect("task"));
        }
        results
    };
    drop(rx);
    let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(ok, [true, false, true, false, true]);
    let events = store
        .read_stream(&"a-1".into(), 0, ReadDirection::Forward, 10)
        .await
        .expect("read");
    assert_eq!(events.iter().map(|e| e.version).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), [0, 1, 2]);
}

/// (offset, body header) of every frame of a segment file.
fn frames_of(path: &std::path::Path) -> Vec<(u64, super::codec::BodyHeader, u32)> {
    use super::codec::{HEADER_BYTES, RawHeader, decode_body_header, frame_end};
    let bytes = std::fs::read(path).expect("read");
    let mut out = Vec::new();
    let mut at = 0u64;
    while at as usize + HEADER_BYTES <= bytes.len() {
        let header_bytes: &[u8; HEADER_BYTES] = bytes[at as usize..at as usize + HEADER_BYTES]
            .try_into()
            .expect("12 bytes");
        let header = RawHeader::parse(header_bytes);
        if !header.is_consistent() {
            break;
        }
        let body = &bytes[at as usize + HEADER_BYTES..at as usize + HEADER_BYTES + header.body_len as usize];
        out.push((
            at,
            decode_body_header(body).expect("body header"),
            header.body_len,
        ));
        at = frame_end(at, header.body_len);
    }
    out
}

/// Commits 3 single groups, then one group of 4 requests (forced by holding
/// the index lock while they queue), optionally followed by one more group.
/// Returns the closed store's directory and the events before the big group.
async fn log_with_a_multi_frame_group(trailing_group: bool) -> (tempfile::TempDir, u64) {
    // The grouping depends on thread scheduling; retry until it came out as
    // intended (the first attempt does, barring a very loaded machine).
    for _ in 0..20 {
        let (dir, before_group) = try_multi_frame_group(trailing_group).await;
        let frames = frames_of(&segment_path(dir.path()));
        let in_group = frames
            .iter()
            .filter(|(_, h, _)| h.group_first_position == before_group)
            .count();
        if in_group == 4 {
            return (dir, before_group);
        }
    }
    panic!("could not form a group of 4 requests");
}

#[allow(clippy::await_holding_lock)] // see `group_commit_checks_each_request…`
async fn try_multi_frame_group(trailing_group: bool) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = LogStore::open(
        dir.path(),
        LogOptions {
            segment_bytes: 1 << 20,
            ..options()
        },
    )
    .expect("open");
    let store = std::sync::Arc::new(store);
    for _ in 0..3 {
        store.append(request("s-1", 2, 40)).await.expect("append");
    }
    let guard = store.shared.index.write();
    let mut handles = Vec::new();
    // The first request alone: the writer takes it and blocks on the lock;
    // the next four queue meanwhile and form the next group.
    for i in 0..5 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store.append(request("s-2", i % 2 + 1, 300)).await
        }));
        let pause = if i == 0 { 30 } else { 1 };
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    drop(guard);
    for h in handles {
        h.await.expect("task").expect("append");
    }
    let before_group = *store.committed().borrow() - (2 + 1 + 2 + 1);
    if trailing_group {
        store.append(request("s-3", 1, 10)).await.expect("append");
    }
    store.close().expect("close");
    // Without its on-disk index, the next open scans every frame.
    std::fs::remove_dir_all(dir.path().join(super::indexer::INDEX_DIR)).expect("rm index");
    (dir, before_group)
}

fn segment_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("segments").join(super::fsutil::segment_file_name(0))
}

#[tokio::test]
async fn torn_group_with_its_first_frame_lost_is_recovered() {
    let (dir, before_group) = log_with_a_multi_frame_group(false).await;
    let path = segment_path(dir.path());
    let frames = frames_of(&path);
    let group: Vec<_> = frames
        .iter()
        .filter(|(_, h, _)| h.group_first_position == before_group)
        .collect();
    assert_eq!(group.len(), 4, "{frames:?}");
    // Power loss: the page holding the group's first frame never reached the
    // disk, later pages did.
    let (x, header, body_len) = *group[0];
    let end = super::codec::frame_end(x, body_len);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[x as usize..end as usize].fill(0);
    std::fs::write(&path, &bytes).expect("write");
    let (store, report) = LogStore::open(dir.path(), options()).expect("open");
    assert_eq!(report.events, before_group);
    assert_eq!(report.truncated_tail_bytes, header.group_end - x);
    let events = store.read_all(0, 100).await.expect("read");
    verify_chain(GENESIS_HASH, &events).expect("chain");
    assert_eq!(events.len() as u64, before_group);
    // The segment is clean again after the cut.
    let r = store.append(request("s-9", 1, 1)).await.expect("append");
    assert_eq!(r.first_position, before_group);
}

#[tokio::test]
async fn torn_group_with_a_middle_frame_lost_keeps_the_intact_frames_before_it() {
    let (dir, before_group) = log_with_a_multi_frame_group(false).await;
    let path = segment_path(dir.path());
    let frames = frames_of(&path);
    let group: Vec<_> = frames
        .iter()
        .filter(|(_, h, _)| h.group_first_position == before_group)
        .collect();
    let (x, _, body_len) = *group[1];
    let mut bytes = std::fs::read(&path).expect("read");
    // Half of the second frame's body is missing.
    let mid = x as usize + 12 + body_len as usize / 2;
    bytes[mid..x as usize + 12 + body_len as usize].fill(0);
    std::fs::write(&path, &bytes).expect("write");
    let (store, report) = LogStore::open(dir.path(), options()).expect("open");
    let first_commit = u64::from(group[0].1.event_count);
    assert_eq!(report.events, before_group + first_commit);
    assert!(report.truncated_tail_bytes > 0);
    let events = store.read_all(0, 100).await.expect("read");
    verify_chain(GENESIS_HASH, &events).expect("chain");
}

#[tokio::test]
async fn damaged_group_followed_by_a_later_group_is_corruption() {
    let (dir, before_group) = log_with_a_multi_frame_group(true).await;
    let path = segment_path(dir.path());
    let frames = frames_of(&path);
    let group: Vec<_> = frames
        .iter()
        .filter(|(_, h, _)| h.group_first_position == before_group)
        .collect();
    for victim in [0, 2] {
        let (x, _, body_len) = *group[victim];
        let mut bytes = std::fs::read(&path).expect("read");
        let saved = bytes.clone();
        bytes[x as usize + 12 + body_len as usize / 2] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        match LogStore::open(dir.path(), options()) {
            Err(StoreError::Corrupt { file, offset, .. }) => {
                assert_eq!(file, path);
                assert_eq!(offset, x);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        std::fs::write(&path, &saved).expect("restore");
    }
    // Zeroing the group's first frame entirely (lost page) is corruption too
    // when a later group made it to disk after it.
    let (x, _, body_len) = *group[0];
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[x as usize..super::codec::frame_end(x, body_len) as usize].fill(0);
    std::fs::write(&path, &bytes).expect("write");
    match LogStore::open(dir.path(), options()) {
        Err(StoreError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, path);
            assert_eq!(offset, x);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Waits (however busy the machine) until `done` holds for the index.
async fn wait_for_index(store: &LogStore, what: &str, done: impl Fn(&index::Index) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done(&store.shared.index.read()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the indexer never got to: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Copies the segments and the index runs of a log that is still open, as a
/// kill -9 would leave them.
fn crash_copy(from: &std::path::Path, to: &std::path::Path) {
    for sub in ["segments", indexer::INDEX_DIR] {
        std::fs::create_dir_all(to.join(sub)).expect("mkdir");
        for entry in std::fs::read_dir(from.join(sub)).expect("ls") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "log" || e == "run") {
                std::fs::copy(&path, to.join(sub).join(path.file_name().expect("name"))).expect("copy");
            }
        }
    }
}

fn three_streams(i: u64) -> AppendRequest {
    AppendRequest {
        writes: [
            format!("new-{i}"),
            format!("long-{}", i % 7),
            format!("long-{}", (i * 3 + 1) % 7),
        ]
        .into_iter()
        .enumerate()
        .map(|(w, stream)| StreamWrite {
            stream: stream.as_str().into(),
            expected: if w == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Any
            },
            events: vec![NewEvent {
                event_type: "E".into(),
                schema_version: 1,
                metadata: Default::default(),
                payload: Bytes::from(format!("{i}/{w}")),
            }],
        })
        .collect(),
    }
}

#[tokio::test]
async fn a_crash_rescans_only_what_the_runs_do_not_cover_and_merges_keep_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions {
        segment_bytes: 16 << 10,
        index_flush_events: 30,
        cache_events: 0, // every read goes through the index to the files
        ..LogOptions::default()
    };
    let (store, _) = LogStore::open(dir.path(), options.clone()).expect("open");
    for i in 0..400 {
        store.append(three_streams(i)).await.expect("append");
    }
    // Every frozen tail written, and merges done: runs of 30 merge by 4.
    wait_for_index(&store, "writing the frozen tails", |index| {
        index.frozen.is_empty()
    })
    .await;
    wait_for_index(&store, "merging", |index| {
        indexer::pick(index, options.index_flush_events).is_none()
    })
    .await;
    let (covered, next, runs) = {
        let index = store.shared.index.read();
        (
            index.runs.last().map_or(0, |r| r.end),
            index.next,
            index.runs.len(),
        )
    };
    assert_eq!(next, 1200);
    assert!(next - covered < 30 + 3, "the tail holds less than one flush");
    assert!(runs <= 3 * 3, "{runs} runs: merges keep a few per level");
    let expected = store.read_all(0, usize::MAX).await.expect("read");
    let mut streams = Vec::new();
    for s in ["new-0", "new-399", "long-0", "long-6"] {
        streams.push(
            store
                .read_stream(&s.into(), 0, ReadDirection::Forward, usize::MAX)
                .await
                .expect("read"),
        );
    }
    // Backward reads, across runs.
    let backward = store
        .read_stream(&"long-3".into(), 100, ReadDirection::Backward, 40)
        .await
        .expect("read");
    assert_eq!(
        backward.iter().map(|e| e.version).collect::<Vec<_>>(),
        (61..=100).rev().collect::<Vec<_>>()
    );

    let crashed = tempfile::tempdir().expect("tempdir");
    crash_copy(dir.path(), crashed.path());
    let (reopened, report) = LogStore::open(crashed.path(), options.clone()).expect("open after the crash");
    assert!(report.index_loaded_from_snapshot);
    assert_eq!(report.events, next);
    assert_eq!(report.replayed_events_after_snapshot, next - covered);
    assert_eq!(reopened.read_all(0, usize::MAX).await.expect("read"), expected);
    for (s, want) in ["new-0", "new-399", "long-0", "long-6"].iter().zip(&streams) {
        let got = reopened
            .read_stream(&(*s).into(), 0, ReadDirection::Forward, usize::MAX)
            .await
            .expect("read");
        assert_eq!(&got, want);
        assert_eq!(
            reopened.stream_version(&(*s).into()).await.expect("head"),
            Some(want.len() as u64 - 1)
        );
    }
    // Expectations hold against heads that live in the runs.
    let err = reopened.append(three_streams(0)).await;
    assert!(
        matches!(err, Err(StoreError::WrongExpectedVersion { .. })),
        "{err:?}"
    );
    reopened
        .append(three_streams(400))
        .await
        .expect("append after the crash");
    verify_chain(
        GENESIS_HASH,
        &reopened.read_all(0, usize::MAX).await.expect("read"),
    )
    .expect("chain");
    reopened.close().expect("close");
    store.close().expect("close");
}

#[tokio::test]
async fn a_run_damaged_after_open_fails_the_read_and_is_rebuilt_on_the_next_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions {
        index_flush_events: 0,
        cache_events: 0,
        ..LogOptions::default()
    };
    let (store, _) = LogStore::open(dir.path(), options.clone()).expect("open");
    for i in 0..200 {
        store.append(three_streams(i)).await.expect("append");
    }
    store.close().expect("close");
    drop(store);
    let (store, report) = LogStore::open(dir.path(), options.clone()).expect("reopen");
    assert_eq!(report.replayed_events_after_snapshot, 0);
    let expected = store
        .read_stream(&"long-2".into(), 0, ReadDirection::Forward, usize::MAX)
        .await
        .expect("read");
    // Damage every stream page of the run on disk (the page cache serves the
    // new bytes to the next read).
    let run = std::fs::read_dir(dir.path().join(indexer::INDEX_DIR))
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "run"))
        .expect("a run");
    let mut bytes = std::fs::read(&run).expect("read");
    // Every page: from the magic to the meta section (its offset is in the
    // footer, the last 120 bytes).
    let footer = bytes.len() - 120;
    let meta_offset = u64::from_le_bytes(bytes[footer + 88..footer + 96].try_into().expect("8 bytes"));
    for b in &mut bytes[8..meta_offset as usize] {
        *b ^= 0x55;
    }
    std::fs::write(&run, &bytes).expect("write");
    let err = store
        .read_stream(&"long-2".into(), 0, ReadDirection::Forward, usize::MAX)
        .await;
    assert!(matches!(err, Err(StoreError::Corrupt { .. })), "{err:?}");
    store.close().expect("close");
    drop(store);
    let (store, report) = LogStore::open(dir.path(), options).expect("reopen");
    assert!(
        !report.index_loaded_from_snapshot,
        "the damaged run was set aside"
    );
    let got = store
        .read_stream(&"long-2".into(), 0, ReadDirection::Forward, usize::MAX)
        .await
        .expect("read");
    assert_eq!(got, expected);
}
