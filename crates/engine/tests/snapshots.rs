#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! Snapshots of aggregate state: a long account loads from its snapshot
//! reading only the tail, and a snapshot is only ever a cache — missing,
//! deleted, damaged, of another format or from another log, the answers
//! are the same as folding the whole stream.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use paycore_domain::account::AccountCommand;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::{
    AccountId, Aggregate, Command, CommandEnvelope, Currency, DomainError, Environment, Event, Meta, Money,
    ProjectId, Refusal, StreamRef, Timestamp, TransactionId, TransferId,
};
use paycore_engine::{AGGREGATE_SNAPSHOT_FORMAT, Engine, EngineConfig, EngineError};
use paycore_store::{
    AggregateSnapshots, AppendRequest, AppendResult, DirSnapshots, EventStore, MemorySnapshots, MemoryStore,
    Position, ReadDirection, RecordedEvent, StoreError, StoredSnapshot, StreamName, Version,
};
use tokio::sync::watch;
use uuid::Uuid;

/// The engine's read size when loading a stream: a load with a snapshot
/// reads at most one such chunk from the start (asked for while the snapshot
/// is looked up, so that short streams cost no extra round trip) plus the
/// events from the snapshot's on.
const FIRST_READ: u64 = 1_024;

fn id() -> Uuid {
    Uuid::now_v7()
}

fn envelope(project_id: ProjectId, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        project_id,
        now: Timestamp::from_micros(1_700_000_000_000_000),
        idempotency: None,
        command,
    }
}

/// A store that counts the events loads read, per stream.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn EventStore>,
    read: Mutex<HashMap<StreamName, u64>>,
}

impl Counting {
    fn new(inner: Arc<dyn EventStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            read: Mutex::new(HashMap::new()),
        })
    }

    fn events_read(&self, stream: &StreamRef) -> u64 {
        let name = StreamName::from(stream.name());
        self.read.lock().get(&name).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl EventStore for Counting {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Version,
        direction: ReadDirection,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_stream(stream, from, direction, max).await?;
        // Reads of one event are the snapshot writer's (in the background)
        // looking up the hash of the event it snapshots; loads read chunks.
        if max > 1 {
            *self.read.lock().entry(stream.clone()).or_default() += events.len() as u64;
        }
        Ok(events)
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, max).await
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Option<Version>, StoreError> {
        self.inner.stream_version(stream).await
    }

    fn committed(&self) -> watch::Receiver<Position> {
        self.inner.committed()
    }
}

fn engine(store: Arc<dyn EventStore>, snapshots: Option<Arc<dyn AggregateSnapshots>>, every: u64) -> Engine {
    Engine::start(
        store,
        EngineConfig {
            snapshots,
            snapshot_every: every,
            ..EngineConfig::default()
        },
    )
}

/// One project, account `a` funded once and then paying `b` in many
/// transfers; the IDs are fixed up front so the same history can be
/// written to two stores.
struct History {
    project: ProjectId,
    a: AccountId,
    b: AccountId,
    funding: TransactionId,
    transfers: Vec<(TransferId, TransactionId, TransactionId)>,
}

impl History {
    fn new(transfers: usize) -> Self {
        Self {
            project: ProjectId::from_uuid(id()),
            a: AccountId::from_uuid(id()),
            b: AccountId::from_uuid(id()),
            funding: TransactionId::from_uuid(id()),
            transfers: (0..transfers)
                .map(|_| {
                    (
                        TransferId::from_uuid(id()),
                        TransactionId::from_uuid(id()),
                        TransactionId::from_uuid(id()),
                    )
                })
                .collect(),
        }
    }

    fn a(&self) -> StreamRef {
        StreamRef::Account(self.a)
    }

    fn b(&self) -> StreamRef {
        StreamRef::Account(self.b)
    }

    /// The last version of `a`'s stream once written: opened, funded, one
    /// transaction per transfer.
    fn last_version_of_a(&self) -> Version {
        1 + self.transfers.len() as Version
    }

    fn transfer(&self, id: TransferId, amount: i64, from: AccountId, to: AccountId) -> CommandEnvelope {
        envelope(
            self.project,
            TransferCommand::CreateTransfer {
                id,
                source_account_id: from,
                destination_account_id: to,
                value: Money::new(amount, Currency::EUR),
                meta: Meta::default(),
                source_transaction_id: TransactionId::from_uuid(self::id()),
                destination_transaction_id: TransactionId::from_uuid(self::id()),
                pending: None,
            }
            .into(),
        )
    }

    /// Writes the history through `engine`: `a` gets `funds`, then pays
    /// `amount` to `b` in every transfer (sent all at once, so the engine
    /// batches them).
    async fn write(&self, engine: &Engine, funds: i64, amount: i64) {
        let create = ProjectCommand::CreateProject {
            id: self.project,
            name: "Snapshots".into(),
            environment: Environment::Sandbox,
            meta: Meta::default(),
        }
        .into();
        engine.execute(envelope(self.project, create)).await.unwrap();
        for account in [self.a, self.b] {
            let open = AccountCommand::CreateAccount {
                id: account,
                currency: Currency::EUR,
                customer_id: None,
                allow_negative_balance: false,
                meta: Meta::default(),
            }
            .into();
            engine.execute(envelope(self.project, open)).await.unwrap();
        }
        let fund = AccountCommand::UpdateAccount {
            id: self.a,
            allow_negative_balance: None,
            meta: None,
            balance: Some((Money::new(funds, Currency::EUR), self.funding)),
        }
        .into();
        engine.execute(envelope(self.project, fund)).await.unwrap();
        // In waves, so that the engine's queue never overflows.
        for wave in self.transfers.chunks(4_096) {
            self.send_transfers(engine, wave, amount).await;
        }
    }

    async fn send_transfers(
        &self,
        engine: &Engine,
        transfers: &[(TransferId, TransactionId, TransactionId)],
        amount: i64,
    ) {
        let sent: Vec<_> = transfers
            .iter()
            .map(|&(id, source, destination)| {
                let command = envelope(
                    self.project,
                    TransferCommand::CreateTransfer {
                        id,
                        source_account_id: self.a,
                        destination_account_id: self.b,
                        value: Money::new(amount, Currency::EUR),
                        meta: Meta::default(),
                        source_transaction_id: source,
                        destination_transaction_id: destination,
                        pending: None,
                    }
                    .into(),
                );
                let engine = engine.clone();
                tokio::spawn(async move { engine.execute(command).await })
            })
            .collect();
        for transfer in futures::future::join_all(sent).await {
            transfer.unwrap().unwrap();
        }
    }
}

fn balance(state: &Aggregate) -> i64 {
    match state {
        Aggregate::Account(account) => account.balance.amount,
        other => panic!("not an account: {other:?}"),
    }
}

/// The stream folded from its first event, straight from the store.
async fn replayed(store: &dyn EventStore, stream: &StreamRef) -> (Aggregate, Version) {
    let name = StreamName::from(stream.name());
    let events = store
        .read_stream(&name, 0, ReadDirection::Forward, usize::MAX)
        .await
        .unwrap();
    for (expected, recorded) in events.iter().enumerate() {
        assert_eq!(recorded.version, expected as Version, "versions are contiguous");
    }
    let events: Vec<Event> = events
        .iter()
        .map(|r| Event::decode(&r.event_type, r.schema_version, &r.payload).unwrap())
        .collect();
    (Aggregate::replay(&events), events.len() as Version - 1)
}

/// Loads `stream` with a fresh engine on `store` and `snapshots`; returns
/// the state and how many of the stream's events were read.
async fn fresh_load(
    store: &Arc<MemoryStore>,
    snapshots: Option<Arc<dyn AggregateSnapshots>>,
    stream: &StreamRef,
) -> (Aggregate, u64) {
    let counting = Counting::new(store.clone());
    let engine = engine(counting.clone(), snapshots, 1_000);
    let state = engine.load(stream).await.unwrap();
    engine.flush_snapshots().await;
    (state, counting.events_read(stream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_account_loads_from_its_snapshot_reading_only_the_tail() {
    let store = Arc::new(MemoryStore::new());
    let snapshots = Arc::new(MemorySnapshots::new());
    let history = History::new(5_000);
    let writer = engine(store.clone(), Some(snapshots.clone()), 1_000);
    history.write(&writer, 1_000_000, 3).await;
    writer.flush_snapshots().await;

    // The decider snapshotted a on its way (every 1,000 events).
    let name = StreamName::from(history.a().name());
    let snapshot = snapshots.load(&name).await.unwrap().unwrap();
    assert_eq!(snapshot.format, AGGREGATE_SNAPSHOT_FORMAT);
    let last = history.last_version_of_a();
    assert!(
        snapshot.version >= 4_999 && snapshot.version <= last,
        "{snapshot:?}"
    );

    let (from_scratch, version) = replayed(store.as_ref(), &history.a()).await;
    assert_eq!(version, last);
    assert_eq!(balance(&from_scratch), 1_000_000 - 3 * 5_000);

    let (loaded, read) = fresh_load(&store, Some(snapshots.clone()), &history.a()).await;
    assert_eq!(loaded, from_scratch);
    let tail = last - snapshot.version + 1;
    assert!(read <= FIRST_READ + tail, "read {read} events of {}", last + 1);

    // Without snapshots the same engine reads every event.
    let (loaded, read) = fresh_load(&store, None, &history.a()).await;
    assert_eq!(loaded, from_scratch);
    assert_eq!(read, last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_snapshots_changes_no_answer() {
    let store = Arc::new(MemoryStore::new());
    let snapshots = Arc::new(MemorySnapshots::new());
    let history = History::new(2_500);
    let writer = engine(store.clone(), Some(snapshots.clone()), 500);
    history.write(&writer, 100_000, 7).await;
    writer.flush_snapshots().await;
    assert!(snapshots.len() >= 2, "a and b have snapshots");

    let streams = [history.a(), history.b()];
    let mut with = Vec::new();
    for stream in &streams {
        with.push(fresh_load(&store, Some(snapshots.clone()), stream).await.0);
    }
    // Deleted: the same states, and a load that folded it all writes a
    // snapshot again.
    snapshots.clear();
    for (stream, expected) in streams.iter().zip(&with) {
        let (state, read) = fresh_load(&store, Some(snapshots.clone()), stream).await;
        assert_eq!(&state, expected);
        assert_eq!(read, replayed(store.as_ref(), stream).await.1 + 1);
        assert_eq!(&replayed(store.as_ref(), stream).await.0, expected);
    }
    assert_eq!(snapshots.len(), 2, "both were snapshotted again by their loads");
    // None at all: the same.
    for (stream, expected) in streams.iter().zip(&with) {
        assert_eq!(&fresh_load(&store, None, stream).await.0, expected);
    }

    // Commands decide alike with and without snapshots: two engines (one
    // after the other) on one store, each refusing an overdraft and
    // carrying out a payment.
    for snapshots in [Some(snapshots.clone() as Arc<dyn AggregateSnapshots>), None] {
        let engine = engine(store.clone(), snapshots, 500);
        let before = balance(&engine.load(&history.a()).await.unwrap());
        let too_much = history.transfer(TransferId::from_uuid(id()), before + 1, history.a, history.b);
        assert!(matches!(
            engine.execute(too_much).await,
            Err(EngineError::Domain(DomainError::Refused {
                refusal: Refusal::InsufficientFunds,
                ..
            }))
        ));
        let paid = engine
            .execute(history.transfer(TransferId::from_uuid(id()), 5, history.a, history.b))
            .await
            .unwrap();
        assert_eq!(balance(&engine.load(&history.a()).await.unwrap()), before - 5);
        assert!(!paid.replayed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_after_a_snapshot_load_decide_on_the_right_state_and_versions_continue() {
    let store = Arc::new(MemoryStore::new());
    let snapshots = Arc::new(MemorySnapshots::new());
    let history = History::new(3_000);
    let writer = engine(store.clone(), Some(snapshots.clone()), 1_000);
    history.write(&writer, 3_000 * 10 + 25, 10).await;
    writer.flush_snapshots().await;
    drop(writer);

    let counting = Counting::new(store.clone());
    let engine = engine(counting.clone(), Some(snapshots.clone()), 1_000);
    // a holds 25: 26 would overdraw and is refused; 25 is fine, then 1 is not.
    let refused = engine
        .execute(history.transfer(TransferId::from_uuid(id()), 26, history.a, history.b))
        .await;
    assert!(
        matches!(
            refused,
            Err(EngineError::Domain(DomainError::Refused {
                refusal: Refusal::InsufficientFunds,
                ..
            }))
        ),
        "{refused:?}"
    );
    assert!(
        counting.events_read(&history.a()) < FIRST_READ + 1_000,
        "loaded from the snapshot"
    );
    let paid = engine
        .execute(history.transfer(TransferId::from_uuid(id()), 25, history.a, history.b))
        .await
        .unwrap();
    assert!(!paid.replayed);
    assert_eq!(balance(&engine.load(&history.a()).await.unwrap()), 0);
    let refused = engine
        .execute(history.transfer(TransferId::from_uuid(id()), 1, history.a, history.b))
        .await;
    assert!(refused.is_err());
    // b received it; its versions continued from its snapshot too.
    let (b_state, b_version) = replayed(store.as_ref(), &history.b()).await;
    assert_eq!(balance(&b_state), 3_000 * 10 + 25);
    assert_eq!(engine.load(&history.b()).await.unwrap(), b_state);
    let (a_state, a_version) = replayed(store.as_ref(), &history.a()).await;
    assert_eq!(a_version, history.last_version_of_a() + 1);
    assert_eq!(b_version, history.transfers.len() as Version + 1);
    assert_eq!(balance(&a_state), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_from_another_log_is_ignored_and_replaced() {
    // The same IDs written to two stores, with different amounts: same
    // stream names, different histories (and hashes).
    let history = History::new(1_500);
    let (ours, theirs) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
    let snapshots = Arc::new(MemorySnapshots::new());
    let foreign = engine(theirs.clone(), Some(snapshots.clone()), 1_000);
    history.write(&foreign, 500_000, 100).await;
    foreign.flush_snapshots().await;
    history
        .write(&engine(ours.clone(), None, 1_000), 500_000, 1)
        .await;
    let name = StreamName::from(history.a().name());
    let planted = snapshots.load(&name).await.unwrap().unwrap();
    assert_eq!(planted.format, AGGREGATE_SNAPSHOT_FORMAT);

    let (expected, last) = replayed(ours.as_ref(), &history.a()).await;
    assert_eq!(balance(&expected), 500_000 - 1_500);
    let (loaded, read) = fresh_load(&ours, Some(snapshots.clone()), &history.a()).await;
    assert_eq!(loaded, expected, "their snapshot was not used");
    assert!(read > last, "folded from the start: {read}");
    // Theirs was removed and ours written: the next load reads the tail.
    let replaced = snapshots.load(&name).await.unwrap().unwrap();
    assert_ne!(replaced.event_hash, planted.event_hash);
    assert_eq!(replaced.version, last);
    let (loaded, read) = fresh_load(&ours, Some(snapshots.clone()), &history.a()).await;
    assert_eq!(loaded, expected);
    assert!(read <= FIRST_READ + 1, "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_another_format_or_undecodable_are_ignored() {
    let store = Arc::new(MemoryStore::new());
    let history = History::new(1_200);
    history
        .write(&engine(store.clone(), None, 1_000), 100_000, 2)
        .await;
    let (expected, last) = replayed(store.as_ref(), &history.a()).await;
    let name = StreamName::from(history.a().name());
    let event = store
        .read_stream(&name, last, ReadDirection::Forward, 1)
        .await
        .unwrap()
        .remove(0);
    // A state that the right hash would vouch for, but that is wrong: it
    // must never be believed unless its format is ours.
    let mut wrong = expected.clone();
    if let Aggregate::Account(account) = &mut wrong {
        account.balance = Money::new(123_456_789, Currency::EUR);
    }
    let planted = |format: u32, state: Bytes| StoredSnapshot {
        version: last,
        event_hash: event.hash,
        format,
        state,
    };
    let wrong_bytes = Bytes::from(postcard::to_stdvec(&wrong).unwrap());

    // The check itself is what protects: with our format it is believed.
    let believed = Arc::new(MemorySnapshots::new());
    believed
        .save(&name, planted(AGGREGATE_SNAPSHOT_FORMAT, wrong_bytes.clone()))
        .await
        .unwrap();
    let (loaded, read) = fresh_load(&store, Some(believed), &history.a()).await;
    assert_eq!(balance(&loaded), 123_456_789);
    assert!(read <= FIRST_READ + 1);

    for format in [AGGREGATE_SNAPSHOT_FORMAT - 1, AGGREGATE_SNAPSHOT_FORMAT + 1] {
        let snapshots = Arc::new(MemorySnapshots::new());
        snapshots
            .save(&name, planted(format, wrong_bytes.clone()))
            .await
            .unwrap();
        let (loaded, read) = fresh_load(&store, Some(snapshots.clone()), &history.a()).await;
        assert_eq!(loaded, expected, "format {format}");
        assert_eq!(read, last + 1);
        // An older format is replaced by ours; a newer one (a newer binary's,
        // during a rolling upgrade) is left alone.
        let kept = snapshots.load(&name).await.unwrap().unwrap();
        if format < AGGREGATE_SNAPSHOT_FORMAT {
            assert_eq!(kept.format, AGGREGATE_SNAPSHOT_FORMAT);
            assert_eq!(kept.state, Bytes::from(postcard::to_stdvec(&expected).unwrap()));
        } else {
            assert_eq!(kept.format, format);
        }
    }

    // Our format, but bytes that are no state: ignored and replaced.
    let snapshots = Arc::new(MemorySnapshots::new());
    snapshots
        .save(
            &name,
            planted(AGGREGATE_SNAPSHOT_FORMAT, Bytes::from_static(&[0xFF; 7])),
        )
        .await
        .unwrap();
    let (loaded, read) = fresh_load(&store, Some(snapshots.clone()), &history.a()).await;
    assert_eq!(loaded, expected);
    assert_eq!(read, last + 1);
    let kept = snapshots.load(&name).await.unwrap().unwrap();
    assert_eq!(kept.state, Bytes::from(postcard::to_stdvec(&expected).unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_file_is_ignored_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    let history = History::new(2_000);
    let snapshots = Arc::new(DirSnapshots::open(dir.path().join("snapshots")).unwrap());
    let writer = engine(store.clone(), Some(snapshots.clone()), 1_000);
    history.write(&writer, 100_000, 3).await;
    writer.flush_snapshots().await;
    drop(writer);
    let (expected, last) = replayed(store.as_ref(), &history.a()).await;

    // After a restart (reopened directory) the snapshot is used.
    let reopened = || -> Arc<dyn AggregateSnapshots> {
        Arc::new(DirSnapshots::open(dir.path().join("snapshots")).unwrap())
    };
    let (loaded, read) = fresh_load(&store, Some(reopened()), &history.a()).await;
    assert_eq!(loaded, expected);
    assert!(read <= FIRST_READ + 1_000, "{read}");

    // Damage the middle of the file: ignored, the stream folded whole, and
    // the file written anew.
    let path = snapshots.path_of(&StreamName::from(history.a().name()));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let (loaded, read) = fresh_load(&store, Some(reopened()), &history.a()).await;
    assert_eq!(loaded, expected);
    assert_eq!(read, last + 1);
    let (loaded, read) = fresh_load(&store, Some(reopened()), &history.a()).await;
    assert_eq!(loaded, expected);
    assert!(read <= FIRST_READ + 1, "rewritten at the last version: {read}");

    // Deleting the whole directory changes nothing either.
    std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
    let (loaded, read) = fresh_load(&store, Some(reopened()), &history.a()).await;
    assert_eq!(loaded, expected);
    assert_eq!(read, last + 1);
}

/// How long loading an account of 100,000 events takes with and without its
/// snapshot, on the embedded log after a restart. A measurement, not a
/// check: `cargo test --release -p paycore-engine --test snapshots --
/// --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it in release"]
async fn measure_loading_a_100k_event_account() {
    use paycore_store::{LogOptions, LogStore, SyncMode};
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        sync: SyncMode::NoSync,
        ..LogOptions::default()
    };
    let history = History::new(100_000);
    {
        let (log, _) = LogStore::open(dir.path().join("log"), options.clone()).unwrap();
        let log = Arc::new(log);
        let snapshots = Arc::new(DirSnapshots::open(dir.path().join("snapshots")).unwrap());
        let writer = engine(log.clone(), Some(snapshots), 1_000);
        let started = std::time::Instant::now();
        history.write(&writer, 1_000_000_000, 1).await;
        writer.flush_snapshots().await;
        println!("wrote 100,000 transfers in {:?}", started.elapsed());
        log.close().unwrap();
    }
    let (log, _) = LogStore::open(dir.path().join("log"), options).unwrap();
    let log: Arc<dyn EventStore> = Arc::new(log);
    for round in 0..3 {
        for with_snapshots in [false, true] {
            let snapshots = with_snapshots.then(|| -> Arc<dyn AggregateSnapshots> {
                Arc::new(DirSnapshots::open(dir.path().join("snapshots")).unwrap())
            });
            let counting = Counting::new(log.clone());
            let engine = engine(counting.clone(), snapshots, 0);
            let started = std::time::Instant::now();
            let state = engine.load(&history.a()).await.unwrap();
            let took = started.elapsed();
            assert_eq!(balance(&state), 1_000_000_000 - 100_000);
            println!(
                "round {round}: load {} snapshot: {took:?}, {} events read",
                if with_snapshots { "with" } else { "without" },
                counting.events_read(&history.a())
            );
        }
    }
}
