//! A small paycore history written through the real engine into a real log,
//! and everything derived from it: the material the seed corpora are made
//! of (valid frames, index snapshot, event payloads, read-model rows,
//! aggregate snapshots, page tokens, IDs for requests).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use paycore_domain::account::AccountCommand;
use paycore_domain::customer::CustomerCommand;
use paycore_domain::kernel::stream::StreamRef;
use paycore_domain::project::ProjectCommand;
use paycore_domain::project::api_key::KeyKind;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::{
    AccountId, Aggregate, ApiKeyId, Command, CommandEnvelope, Currency, CustomerId, Environment,
    IdempotencyKey, Meta, Money, ProjectId, Timestamp, TransactionId, TransferId, Violations,
};
use paycore_engine::{CommandMeta, Engine, EngineConfig};
use paycore_store::{EventStore, LogOptions, LogStore, RecordedEvent};
use uuid::Uuid;

/// Segment size of the seed log: small, so that the history spans several
/// segments and a seed segment stays small.
pub const SEED_SEGMENT_BYTES: u64 = 16 * 1024;

/// The seed material, built once per process.
#[derive(Debug)]
pub struct World {
    pub project: ProjectId,
    pub customer: CustomerId,
    pub accounts: Vec<AccountId>,
    pub transfers: Vec<TransferId>,
    /// Every event of the log, in order.
    pub events: Vec<RecordedEvent>,
    /// Each segment file, its trailing zeros cut.
    pub segments: Vec<(String, Vec<u8>)>,
    /// The `index.snapshot` a build before the index runs would have written
    /// on close (the format an upgrade still reads).
    pub index_snapshot: Vec<u8>,
    /// The index run the log wrote on close (the largest one).
    pub index_run: Vec<u8>,
    /// `(stream name, state)` of some aggregates, as the engine loads them.
    pub aggregates: Vec<(String, Aggregate)>,
}

/// The world, built on first use (a second or so).
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build)
}

fn meta(pairs: &[(&str, &str)]) -> Meta {
    let mut violations = Violations::new();
    Meta::parse(
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        "meta",
        &mut violations,
    )
    .unwrap_or_default()
}

fn id() -> Uuid {
    Uuid::now_v7()
}

#[allow(clippy::expect_used)] // seed material: failing to build it is a bug of this crate
fn build() -> World {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let world = runtime.block_on(write_history(dir.path()));
    drop(runtime);
    world
}

#[allow(clippy::expect_used)]
async fn write_history(dir: &Path) -> World {
    let log_dir = dir.join("log");
    let options = LogOptions {
        segment_bytes: SEED_SEGMENT_BYTES,
        ..LogOptions::default()
    };
    let (log, _) = LogStore::open(&log_dir, options.clone()).expect("opening the seed log");
    let log = Arc::new(log);
    let store: Arc<dyn EventStore> = log.clone();
    let engine = Engine::start(store.clone(), EngineConfig::default());
    let project = ProjectId::from_uuid(id());
    let customer = CustomerId::from_uuid(id());
    let accounts: Vec<AccountId> = (0..3).map(|_| AccountId::from_uuid(id())).collect();
    let mut transfers = Vec::new();
    let now = Timestamp::from_micros(1_700_000_000_000_000);
    let run = |command: Command, key: Option<&str>| {
        let engine = engine.clone();
        let idempotency = key.map(|key| {
            IdempotencyKey::new(key, project, b"paycore-fuzz seeds", [7; 32], false).expect("a valid key")
        });
        async move {
            let envelope = CommandEnvelope {
                project_id: project,
                now,
                idempotency,
                command,
            };
            let meta = CommandMeta {
                actor: Some("key_seed".into()),
                correlation_id: Some(Uuid::from_u128(42)),
                trace: None,
            };
            engine.execute_with(envelope, meta).await.expect("a seed command")
        }
    };
    run(
        ProjectCommand::CreateProject {
            id: project,
            name: "Seeds".into(),
            environment: Environment::Sandbox,
            meta: meta(&[("team", "fuzz")]),
        }
        .into(),
        None,
    )
    .await;
    run(
        ProjectCommand::CreateApiKey {
            id: ApiKeyId::from_uuid(id()),
            kind: KeyKind::Secret,
            secret_hash: [3; 32],
        }
        .into(),
        None,
    )
    .await;
    run(
        CustomerCommand::CreateCustomer {
            id: customer,
            identity: None,
            meta: meta(&[("_name", "Ada")]),
        }
        .into(),
        Some("customer-1"),
    )
    .await;
    for (n, account) in accounts.iter().enumerate() {
        let currency = if n == 2 { Currency::USD } else { Currency::EUR };
        run(
            AccountCommand::CreateAccount {
                id: *account,
                currency,
                customer_id: (n == 0).then_some(customer),
                allow_negative_balance: n == 1,
                meta: Meta::default(),
            }
            .into(),
            None,
        )
        .await;
    }
    run(
        AccountCommand::UpdateAccount {
            id: accounts[0],
            allow_negative_balance: None,
            meta: Some(meta(&[("purpose", "float")])),
            balance: Some((
                Money::new(1_000_000, Currency::EUR),
                TransactionId::from_uuid(id()),
            )),
        }
        .into(),
        None,
    )
    .await;
    for n in 0..40 {
        let transfer = TransferId::from_uuid(id());
        transfers.push(transfer);
        let key = format!("transfer-{n}");
        run(
            TransferCommand::CreateTransfer {
                id: transfer,
                source_account_id: accounts[0],
                destination_account_id: accounts[1],
                value: Money::new(100 + n, Currency::EUR),
                meta: if n % 3 == 0 {
                    meta(&[("n", "x")])
                } else {
                    Meta::default()
                },
                source_transaction_id: TransactionId::from_uuid(id()),
                destination_transaction_id: TransactionId::from_uuid(id()),
                pending: None,
            }
            .into(),
            (n % 2 == 0).then_some(key.as_str()),
        )
        .await;
    }
    run(
        ProjectCommand::UpdateProject {
            meta: meta(&[("team", "fuzz"), ("stage", "2")]),
        }
        .into(),
        None,
    )
    .await;

    let events = store.read_all(0, usize::MAX).await.expect("reading the seed log");
    let mut streams = vec![
        StreamRef::Project(project),
        StreamRef::Customer(customer),
        StreamRef::ProjectBalance(project, Currency::EUR),
    ];
    streams.extend(accounts.iter().map(|id| StreamRef::Account(*id)));
    streams.extend(transfers.iter().take(2).map(|id| StreamRef::Transfer(*id)));
    let mut aggregates = Vec::new();
    for stream in streams {
        let state = engine.load(&stream).await.expect("loading a seed aggregate");
        aggregates.push((stream.name(), state));
    }
    drop(engine);

    drop(store);
    log.close().expect("closing the seed log");
    drop(log);
    let mut segments = Vec::new();
    let mut listing: Vec<_> = std::fs::read_dir(log_dir.join("segments"))
        .expect("the segments")
        .map(|entry| entry.expect("a segment").path())
        .collect();
    listing.sort();
    for path in listing {
        let mut bytes = std::fs::read(&path).expect("a segment");
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        bytes.truncate(end.next_multiple_of(8));
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        segments.push((name, bytes));
    }
    let index_snapshot =
        paycore_store::fuzzing::legacy_index_snapshot(&log_dir).expect("the legacy index snapshot");
    let index_run = std::fs::read_dir(log_dir.join("index"))
        .expect("the index runs")
        .map(|entry| entry.expect("an index run").path())
        .filter(|path| path.extension().is_some_and(|e| e == "run"))
        .map(|path| std::fs::read(path).expect("an index run"))
        .max_by_key(Vec::len)
        .expect("the log wrote an index run on close");
    World {
        project,
        customer,
        accounts,
        transfers,
        events,
        segments,
        index_snapshot,
        index_run,
        aggregates,
    }
}
