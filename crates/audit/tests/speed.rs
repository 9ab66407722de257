#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! Replay speed over a generated valid log on disk (ignored by default):
//!
//! ```text
//! PAYCORE_AUDIT_EVENTS=100000 PAYCORE_AUDIT_DIR=/tmp/auditlog \
//!   cargo test --release -p paycore-audit --test speed -- --ignored --nocapture
//! ```
//!
//! With `PAYCORE_AUDIT_DIR` the log stays at `<dir>/log`, so
//! `paycore audit --data-dir <dir>` can be timed on it too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use paycore_audit::{Auditor, Flow, Limit};
use paycore_domain::events::{
    AccountOpened, ProjectBalanceChanged, ProjectCreated, TransactionRecorded, TransferCreated,
};
use paycore_domain::{
    AccountId, Currency, Environment, Event, Meta, Money, ProjectId, StreamRef, Timestamp, Transaction,
    TransactionId, TransactionKind, TransferId,
};
use paycore_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogOptions, LogStore, NewEvent, StreamWrite,
    SyncMode,
};
use uuid::Uuid;

const ACCOUNTS: usize = 1_000;

fn new_event(event: &Event) -> NewEvent {
    let encoded = event.encode();
    NewEvent {
        event_type: encoded.event_type.into(),
        schema_version: encoded.schema_version,
        metadata: Arc::new(EventMetadata::default()),
        payload: Bytes::from(encoded.payload),
    }
}

struct Writer {
    store: Arc<LogStore>,
    versions: HashMap<StreamRef, u64>,
}

impl Writer {
    async fn append(&mut self, events: Vec<(StreamRef, Event)>) {
        let mut writes: Vec<StreamWrite> = Vec::new();
        for (stream, event) in events {
            let expected = ExpectedVersion::from_current(self.versions.get(&stream).map(|v| v - 1));
            *self.versions.entry(stream.clone()).or_insert(0) += 1;
            writes.push(StreamWrite {
                stream: stream.name().into(),
                expected,
                events: vec![new_event(&event)],
            });
        }
        self.store.append(AppendRequest { writes }).await.unwrap();
    }
}

fn tx(account: AccountId, project: ProjectId, kind: TransactionKind, value: i64, after: i64) -> Event {
    Event::TransactionRecorded(TransactionRecorded {
        transaction: Transaction {
            id: TransactionId::from_uuid(Uuid::now_v7()),
            account_id: account,
            project_id: project,
            kind,
            value: Money::new(value, Currency::EUR),
            balance_after: Money::new(after, Currency::EUR),
            created_at: Timestamp::from_micros(0),
        },
    })
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
async fn replay_speed() {
    let target: u64 = std::env::var("PAYCORE_AUDIT_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let temp = tempfile::tempdir().unwrap();
    let root = std::env::var("PAYCORE_AUDIT_DIR").map_or_else(|_| temp.path().to_owned(), Into::into);
    let options = LogOptions {
        sync: SyncMode::NoSync,
        ..LogOptions::default()
    };
    let (store, _) = LogStore::open(root.join("log"), options).unwrap();
    let mut w = Writer {
        store: Arc::new(store),
        versions: HashMap::new(),
    };
    let project = ProjectId::from_uuid(Uuid::now_v7());
    let created = Event::ProjectCreated(ProjectCreated {
        id: project,
        name: "bench".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
        created_at: Timestamp::from_micros(0),
    });
    w.append(vec![(StreamRef::Project(project), created)]).await;
    let started = Instant::now();
    let mut accounts = Vec::new();
    let mut balances = Vec::new();
    let mut total = 0;
    for _ in 0..ACCOUNTS {
        let id = AccountId::from_uuid(Uuid::now_v7());
        let opened = Event::AccountOpened(AccountOpened {
            id,
            project_id: project,
            customer_id: None,
            currency: Currency::EUR,
            allow_negative_balance: false,
            meta: Meta::default(),
            created_at: Timestamp::from_micros(0),
        });
        w.append(vec![(StreamRef::Account(id), opened)]).await;
        let magic = tx(id, project, TransactionKind::Magic, 1_000_000, 1_000_000);
        total += 1_000_000;
        let Event::TransactionRecorded(recorded) = &magic else {
            unreachable!()
        };
        let changed = Event::ProjectBalanceChanged(ProjectBalanceChanged {
            project_id: project,
            delta: Money::new(1_000_000, Currency::EUR),
            total_after: Money::new(total, Currency::EUR),
            account_id: id,
            transaction_id: recorded.transaction.id,
        });
        w.append(vec![
            (StreamRef::Account(id), magic),
            (StreamRef::ProjectBalance(project, Currency::EUR), changed),
        ])
        .await;
        accounts.push(id);
        balances.push(1_000_000_i64);
    }
    let mut events = 1 + 3 * ACCOUNTS as u64;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    while events < target {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let from = (seed % ACCOUNTS as u64) as usize;
        let to = (from + 1 + (seed >> 20) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
        let value = 1 + (seed >> 40) as i64 % 100;
        if balances[from] < value {
            continue;
        }
        balances[from] -= value;
        balances[to] += value;
        let id = TransferId::from_uuid(Uuid::now_v7());
        let created = Event::TransferCreated(TransferCreated {
            id,
            project_id: project,
            source_account_id: accounts[from],
            destination_account_id: accounts[to],
            source_transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
            destination_transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
            value: Money::new(value, Currency::EUR),
            meta: Meta::default(),
            created_at: Timestamp::from_micros(0),
            exchange: None,
        });
        w.append(vec![
            (StreamRef::Transfer(id), created),
            (
                StreamRef::Account(accounts[from]),
                tx(
                    accounts[from],
                    project,
                    TransactionKind::TransferSource(id),
                    -value,
                    balances[from],
                ),
            ),
            (
                StreamRef::Account(accounts[to]),
                tx(
                    accounts[to],
                    project,
                    TransactionKind::TransferDestination(id),
                    value,
                    balances[to],
                ),
            ),
        ])
        .await;
        events += 3;
    }
    println!(
        "generated {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut auditor = Auditor::new(Limit::whole_log());
    let mut from = 0;
    loop {
        let batch = w.store.read_all(from, 16_384).await.unwrap();
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        if auditor.push_batch(&batch) == Flow::Done {
            break;
        }
    }
    let report = auditor.finish();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.events, events);
    println!(
        "audited {} events in {elapsed:.3} s: {:.0} events/s (read_all + audit); audit alone {:.0} events/s",
        report.events,
        report.events as f64 / elapsed,
        report.events_per_second()
    );
    w.store.close().unwrap();
}
