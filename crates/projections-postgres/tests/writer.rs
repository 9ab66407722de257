//! The read-model tables against a real PostgreSQL: what they hold, one
//! writer among several, the hand-over when the writer goes, and a
//! projection of another version written again.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use paycore_domain::account::{AccountOpened, TransactionRecorded};
use paycore_domain::fx_rate::{FxRateRemoved, FxRateSet};
use paycore_domain::kernel::fx::Rate;
use paycore_domain::project::ProjectCreated;
use paycore_domain::transfer::TransferCreated;
use paycore_domain::{
    AccountId, Currency, Environment, Event, Meta, Money, ProjectId, Timestamp, Transaction, TransactionId,
    TransactionKind, TransferId,
};
use paycore_projections_postgres::{TablesError, TablesWriter, WriterOptions, rebuild, status};
use paycore_store::{AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamWrite};
use paycore_store_postgres::testing::SchemaGuard;
use paycore_store_postgres::{PgOptions, PgStore};
use tokio_postgres::NoTls;
use uuid::Uuid;

fn uuid() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Uuid::from_u128(
        0x0193_0000_0000_7000_8000_0000_0000_0000 | u128::from(NEXT.fetch_add(1, Ordering::Relaxed)),
    )
}

fn new_event(event: &Event) -> NewEvent {
    let encoded = event.encode();
    NewEvent {
        event_type: encoded.event_type.into(),
        schema_version: encoded.schema_version,
        metadata: Arc::new(EventMetadata::default()),
        payload: encoded.payload.into(),
    }
}

/// Appends `writes` (stream, events) as one atomic append.
async fn append(store: &PgStore, writes: Vec<(String, Vec<Event>)>) {
    let writes = writes
        .into_iter()
        .map(|(stream, events)| StreamWrite {
            stream: stream.as_str().into(),
            expected: ExpectedVersion::Any,
            events: events.iter().map(new_event).collect(),
        })
        .collect();
    store.append(AppendRequest { writes }).await.expect("append");
}

/// A project with accounts in euros, moving money between them the way
/// the domain does: a transfer and both of its transactions in one append.
struct Books {
    project: ProjectId,
    accounts: Vec<AccountId>,
    balances: Vec<i64>,
    transactions: u64,
}

impl Books {
    async fn open(store: &PgStore, accounts: usize) -> Self {
        let project = ProjectId::from_uuid(uuid());
        let created = Event::ProjectCreated(ProjectCreated {
            id: project,
            name: "books".to_owned(),
            environment: Environment::Sandbox,
            meta: Meta::default(),
            created_at: Timestamp::from_micros(1_700_000_000_000_000),
        });
        append(store, vec![(format!("project-{project}"), vec![created])]).await;
        let mut books = Self {
            project,
            accounts: Vec::new(),
            balances: Vec::new(),
            transactions: 0,
        };
        for _ in 0..accounts {
            let id = AccountId::from_uuid(uuid());
            let opened = Event::AccountOpened(AccountOpened {
                id,
                project_id: project,
                customer_id: None,
                currency: Currency::EUR,
                allow_negative_balance: true,
                meta: Meta::default(),
                created_at: Timestamp::from_micros(1_700_000_000_000_000),
            });
            append(store, vec![(format!("account-{id}"), vec![opened])]).await;
            books.accounts.push(id);
            books.balances.push(0);
        }
        books
    }

    fn recorded(&mut self, account: usize, value: i64, kind: TransactionKind) -> (TransactionId, Event) {
        self.balances[account] += value;
        self.transactions += 1;
        let id = TransactionId::from_uuid(uuid());
        let event = Event::TransactionRecorded(TransactionRecorded {
            transaction: Transaction {
                id,
                account_id: self.accounts[account],
                project_id: self.project,
                kind,
                value: Money::new(value, Currency::EUR),
                balance_after: Money::new(self.balances[account], Currency::EUR),
                created_at: Timestamp::from_micros(1_700_000_000_000_000),
            },
        });
        (id, event)
    }

    async fn transfer(&mut self, store: &PgStore, from: usize, to: usize, cents: i64) {
        let id = TransferId::from_uuid(uuid());
        let (debit_id, debit) = self.recorded(from, -cents, TransactionKind::TransferSource(id));
        let (credit_id, credit) = self.recorded(to, cents, TransactionKind::TransferDestination(id));
        let created = Event::TransferCreated(TransferCreated {
            id,
            project_id: self.project,
            source_account_id: self.accounts[from],
            destination_account_id: self.accounts[to],
            source_transaction_id: debit_id,
            destination_transaction_id: credit_id,
            value: Money::new(cents, Currency::EUR),
            meta: Meta::default(),
            created_at: Timestamp::from_micros(1_700_000_000_000_000),
            exchange: None,
        });
        append(
            store,
            vec![
                (format!("transfer-{id}"), vec![created]),
                (format!("account-{}", self.accounts[from]), vec![debit]),
                (format!("account-{}", self.accounts[to]), vec![credit]),
            ],
        )
        .await;
    }

    /// Balances, transaction count and transfer count as the tables show
    /// them, read in one transaction.
    async fn in_tables(&self, schema: &SchemaGuard) -> (Vec<i64>, u64, u64) {
        let (mut client, connection) = tokio_postgres::connect(&schema.url, NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let s = &schema.schema;
        let read = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .expect("begin");
        let mut balances = Vec::new();
        for account in &self.accounts {
            let row = read
                .query_one(
                    &format!("SELECT balance_minor FROM {s}.accounts WHERE id = $1"),
                    &[&account.to_string()],
                )
                .await
                .expect("the account has a row");
            balances.push(row.get(0));
        }
        let count = |table: &str| format!("SELECT count(*) FROM {s}.{table} WHERE project_id = $1");
        let project = self.project.to_string();
        let transactions: i64 = read
            .query_one(&count("transactions"), &[&project])
            .await
            .unwrap()
            .get(0);
        let transfers: i64 = read
            .query_one(&count("transfers"), &[&project])
            .await
            .unwrap()
            .get(0);
        // Every balance is the sum of its transactions.
        let sums = read
            .query(
                &format!(
                    "SELECT a.id FROM {s}.accounts a LEFT JOIN {s}.transactions t ON t.account_id = a.id \
                     WHERE a.project_id = $1 GROUP BY a.id, a.balance_minor \
                     HAVING a.balance_minor <> coalesce(sum(t.value_minor), 0)"
                ),
                &[&project],
            )
            .await
            .unwrap();
        assert!(
            sums.is_empty(),
            "balances that are not the sum of their transactions: {sums:?}"
        );
        read.commit().await.unwrap();
        (balances, transactions as u64, transfers as u64)
    }
}

/// Waits until every projection's tables reached the log's head, with no
/// rebuild left.
async fn caught_up(schema: &SchemaGuard) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = status(&schema.url, &schema.schema).await.expect("status");
        if statuses.iter().all(|status| {
            status.lag() == 0 && status.stored_version == Some(status.version) && status.rebuilding.is_none()
        }) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the tables did not catch up: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn options(schema: &SchemaGuard, name: &str) -> WriterOptions {
    let mut options = WriterOptions::new(&schema.url, &schema.schema, name);
    options.retry_every = Duration::from_millis(100);
    options.batch_events = 7;
    options.pace = Duration::from_millis(5);
    options
}

async fn store(schema: &SchemaGuard) -> Arc<PgStore> {
    Arc::new(
        PgStore::connect(&schema.url, PgOptions::with_schema(schema.schema.clone()))
            .await
            .expect("connect the store"),
    )
}

#[tokio::test]
async fn one_writer_at_a_time_and_the_next_continues_where_it_stopped() {
    let schema = SchemaGuard::new().await;
    let store = store(&schema).await;
    let mut books = Books::open(&store, 4).await;
    for round in 0..10 {
        books
            .transfer(&store, round % 4, (round + 1) % 4, 100 + round as i64)
            .await;
    }
    let mut first = Some(TablesWriter::spawn(store.clone(), options(&schema, "first")));
    caught_up(&schema).await;
    let second = TablesWriter::spawn(store.clone(), options(&schema, "second"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first_writes = first.as_ref().is_some_and(TablesWriter::is_writing);
    assert!(
        first_writes && !second.is_writing(),
        "the first server writes, the second waits"
    );
    assert_eq!(books.in_tables(&schema).await, (books.balances.clone(), 20, 10));

    // The writer goes mid-stream; the second takes over and finishes.
    for round in 0..10 {
        books.transfer(&store, (round + 2) % 4, round % 4, 7).await;
        if round == 4 {
            // Dropped: its connection closes as a killed server's would.
            drop(first.take());
        }
    }
    let mut writing = second.writing();
    tokio::time::timeout(Duration::from_secs(10), writing.wait_for(|writing| *writing))
        .await
        .expect("the second server takes over")
        .expect("still running");
    caught_up(&schema).await;
    // Nothing applied twice (the counts and the sums), nothing skipped.
    assert_eq!(books.in_tables(&schema).await, (books.balances.clone(), 40, 20));
    let statuses = status(&schema.url, &schema.schema).await.unwrap();
    assert!(
        statuses
            .iter()
            .all(|status| status.writer.as_deref() == Some("second")),
        "{statuses:?}"
    );
    second.stop().await;
}

#[tokio::test]
async fn a_projection_of_another_version_is_written_again_from_the_log() {
    let schema = SchemaGuard::new().await;
    let store = store(&schema).await;
    let mut books = Books::open(&store, 3).await;
    for round in 0..90 {
        books.transfer(&store, round % 3, (round + 1) % 3, 50).await;
    }
    let writer = TablesWriter::spawn(store.clone(), options(&schema, "writer"));
    caught_up(&schema).await;
    let before = books.in_tables(&schema).await;
    writer.stop().await;

    // As an older build would have left them: another version, rows
    // that are not the log's.
    schema
        .execute(&format!(
            "UPDATE {s}.read_model_checkpoints SET version = 0 WHERE projection IN ('accounts', 'transactions');
             UPDATE {s}.accounts SET balance_minor = 999999;",
            s = schema.schema
        ))
        .await;
    let writer = TablesWriter::spawn(store.clone(), options(&schema, "writer"));
    // The old rows stay served, whole, until the rebuilt ones replace them:
    // never an empty or half-filled table.
    let (client, connection) = tokio_postgres::connect(&schema.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let sql = format!(
        "SELECT count(*), min(balance_minor) FROM {}.accounts WHERE project_id = $1",
        schema.schema
    );
    let project = books.project.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = client.query_one(&sql, &[&project]).await.unwrap();
        let (accounts, lowest): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(accounts, 3, "the served table is never emptied");
        let statuses = status(&schema.url, &schema.schema).await.unwrap();
        let rebuilding = statuses
            .iter()
            .any(|status| status.projection == "accounts" && status.rebuilding.is_some());
        if rebuilding {
            assert_eq!(lowest, 999_999, "the old rows are served until the swap");
        } else if lowest != 999_999 {
            // Swapped in.
            break;
        }
        assert!(Instant::now() < deadline, "{statuses:?}");
    }
    caught_up(&schema).await;
    assert_eq!(books.in_tables(&schema).await, before);
    writer.stop().await;
}

#[tokio::test]
async fn a_newer_versions_projection_is_left_alone() {
    let schema = SchemaGuard::new().await;
    let store = store(&schema).await;
    let mut books = Books::open(&store, 2).await;
    books.transfer(&store, 0, 1, 10).await;
    let writer = TablesWriter::spawn(store.clone(), options(&schema, "writer"));
    caught_up(&schema).await;
    writer.stop().await;
    schema
        .execute(&format!(
            "UPDATE {}.read_model_checkpoints SET version = 1000 WHERE projection = 'transfers'",
            schema.schema
        ))
        .await;
    books.transfer(&store, 1, 0, 3).await;
    let writer = TablesWriter::spawn(store.clone(), options(&schema, "older"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = status(&schema.url, &schema.schema).await.unwrap();
        let accounts = statuses.iter().find(|s| s.projection == "accounts").unwrap();
        if accounts.lag() == 0 {
            let transfers = statuses.iter().find(|s| s.projection == "transfers").unwrap();
            assert_eq!(transfers.stored_version, Some(1000));
            assert!(
                transfers.lag() > 0,
                "the older writer did not touch the newer projection"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writer.stop().await;
}

/// The indexes of a served table (name, definition), and whether its
/// primary key is a constraint, as the catalog shows them.
async fn table_shape(schema: &SchemaGuard, table: &str) -> (Vec<(String, String)>, Vec<String>) {
    let (client, connection) = tokio_postgres::connect(&schema.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let s = &schema.schema;
    let indexes = client
        .query(
            "SELECT indexname, replace(indexdef, $2, '') FROM pg_indexes \
             WHERE schemaname = $1 AND tablename = $3 ORDER BY indexname",
            &[s, &format!("{s}."), &table],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let constraints = client
        .query(
            "SELECT conname || ':' || contype::text FROM pg_constraint \
             WHERE conrelid = to_regclass($1) ORDER BY conname",
            &[&format!("{s}.{table}")],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    (indexes, constraints)
}

/// The `rebuild_` tables left in the schema.
async fn rebuild_tables_left(schema: &SchemaGuard) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(&schema.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'rebuild\\_%'",
            &[&schema.schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn a_rebuild_asked_for_replaces_the_tables_once_caught_up_keeping_their_shape() {
    let schema = SchemaGuard::new().await;
    let store = store(&schema).await;
    let mut books = Books::open(&store, 3).await;
    for round in 0..6 {
        books.transfer(&store, round % 3, (round + 2) % 3, 25).await;
    }
    let writer = TablesWriter::spawn(store.clone(), options(&schema, "writer"));
    caught_up(&schema).await;
    let shape = table_shape(&schema, "accounts").await;
    let directory = (
        table_shape(&schema, "projects").await,
        table_shape(&schema, "customers").await,
    );
    // A reporting role reading the tables keeps its right across the swap.
    let reader = format!("{}_reader", schema.schema);
    schema
        .execute(&format!(
            "CREATE ROLE {reader} NOLOGIN; GRANT SELECT ON {s}.accounts TO {reader}; \
             UPDATE {s}.accounts SET balance_minor = -1",
            s = schema.schema
        ))
        .await;

    let unknown = rebuild(&schema.url, &schema.schema, &["balances".to_owned()]).await;
    assert!(matches!(unknown, Err(TablesError::UnknownProjection(name)) if name == "balances"));
    let asked = rebuild(
        &schema.url,
        &schema.schema,
        &["accounts".to_owned(), "directory".to_owned()],
    )
    .await
    .unwrap();
    assert_eq!(asked, ["accounts", "directory"]);
    books.transfer(&store, 0, 1, 1).await;
    caught_up(&schema).await;
    assert_eq!(books.in_tables(&schema).await, (books.balances.clone(), 14, 7));
    assert_eq!(table_shape(&schema, "accounts").await, shape);
    assert_eq!(
        (
            table_shape(&schema, "projects").await,
            table_shape(&schema, "customers").await
        ),
        directory
    );
    assert!(rebuild_tables_left(&schema).await.is_empty());
    let (client, connection) = tokio_postgres::connect(&schema.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let can_read: bool = client
        .query_one(
            "SELECT has_table_privilege($1, $2, 'SELECT')",
            &[&reader, &format!("{}.accounts", schema.schema)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(can_read, "the grant moved to the rebuilt table");
    writer.stop().await;
    client
        .batch_execute(&format!("DROP OWNED BY {reader}; DROP ROLE {reader}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_served_tables_stay_whole_and_follow_the_log_while_a_rebuild_runs() {
    let schema = SchemaGuard::new().await;
    let store = store(&schema).await;
    let mut books = Books::open(&store, 5).await;
    for round in 0..150 {
        books.transfer(&store, round % 5, (round + 1) % 5, 10).await;
    }
    let writer = TablesWriter::spawn(store.clone(), options(&schema, "writer"));
    caught_up(&schema).await;
    rebuild(
        &schema.url,
        &schema.schema,
        &["transactions".to_owned(), "accounts".to_owned()],
    )
    .await
    .unwrap();
    let mut seen_rebuilding = false;
    let mut transactions_before = 300;
    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 0.. {
        if round < 40 {
            books.transfer(&store, round % 5, (round + 3) % 5, 1).await;
        }
        // Balances are the sums of their transactions in every snapshot
        // (checked by `in_tables`), and no table ever shrinks.
        let (_, transactions, _) = books.in_tables(&schema).await;
        assert!(
            transactions >= transactions_before,
            "{transactions} < {transactions_before}"
        );
        transactions_before = transactions;
        let statuses = status(&schema.url, &schema.schema).await.unwrap();
        seen_rebuilding |= statuses.iter().any(|status| status.rebuilding.is_some());
        if round >= 40
            && statuses
                .iter()
                .all(|status| status.rebuilding.is_none() && status.lag() == 0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{statuses:?}");
    }
    assert!(seen_rebuilding, "the rebuild was seen under way");
    caught_up(&schema).await;
    assert_eq!(books.in_tables(&schema).await, (books.balances.clone(), 380, 190));
    writer.stop().await;
}

#[tokio::test]
async fn a_rebuild_continues_where_the_writer_that_stopped_left_it() {
    let schema = SchemaGuard::new().await;
    let store = store(&schema).await;
    let mut books = Books::open(&store, 4).await;
    for round in 0..200 {
        books.transfer(&store, round % 4, (round + 1) % 4, 3).await;
    }
    let mut slow = options(&schema, "first");
    slow.batch_events = 3;
    let first = TablesWriter::spawn(store.clone(), slow.clone());
    caught_up(&schema).await;
    rebuild(&schema.url, &schema.schema, &["transactions".to_owned()])
        .await
        .unwrap();
    let progress = || async {
        let statuses = status(&schema.url, &schema.schema).await.unwrap();
        let transactions = statuses.iter().find(|s| s.projection == "transactions").unwrap();
        transactions.rebuilding
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let reached = loop {
        if let Some(at) = progress().await
            && at > 100
        {
            break at;
        }
        assert!(Instant::now() < deadline, "the rebuild did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Dropped: its connection closes as a killed server's would.
    drop(first);
    slow.name = "second".to_owned();
    let second = TablesWriter::spawn(store.clone(), slow);
    while let Some(at) = progress().await {
        assert!(at >= reached, "the rebuild went back from {reached} to {at}");
        assert!(Instant::now() < deadline, "the rebuild did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    caught_up(&schema).await;
    assert_eq!(books.in_tables(&schema).await, (books.balances.clone(), 400, 200));
    second.stop().await;
}

#[tokio::test]
async fn exchange_rates_are_rows_per_ordered_pair_and_a_removed_one_keeps_its_row() {
    let schema = SchemaGuard::new().await;
    let store = store(&schema).await;
    let set = |mid: &str, spread_bps: u32| {
        Event::FxRateSet(FxRateSet {
            from: Currency::EUR,
            to: Currency::USD,
            mid_rate: Rate::parse(mid).unwrap(),
            spread_bps,
            set_at: Timestamp::from_micros(1_700_000_000_000_000),
        })
    };
    let stream = "fxrate-EUR.USD".to_owned();
    append(&store, vec![(stream.clone(), vec![set("1.0842", 25)])]).await;
    append(&store, vec![(stream.clone(), vec![set("1.1", 30)])]).await;
    let writer = TablesWriter::spawn(store.clone(), options(&schema, "writer"));
    caught_up(&schema).await;
    let row = || async {
        let (client, connection) = tokio_postgres::connect(&schema.url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let sql = format!(
            "SELECT concat_ws('|', id, base_currency, quote_currency, mid_rate, spread_bps, \
             created_position, updated_position) FROM {}.fx_rates",
            schema.schema
        );
        client.query_one(&sql, &[]).await.unwrap().get::<_, String>(0)
    };
    assert_eq!(row().await, "EUR/USD|EUR|USD|1.1|30|0|1");

    let removed = Event::FxRateRemoved(FxRateRemoved {
        removed_at: Timestamp::from_micros(1_700_000_000_000_001),
    });
    append(&store, vec![(stream, vec![removed])]).await;
    caught_up(&schema).await;
    // concat_ws skips the NULLs of a removed rate.
    assert_eq!(row().await, "EUR/USD|EUR|USD|0|2");
    writer.stop().await;
}
