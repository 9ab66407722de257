//! The read-model tables against a real PostgreSQL: what they hold, one
//! writer among several, the hand-over when the writer goes, and a
//! projection of another version written again.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use paycore_domain::account::{
    AccountOpened, PendingPhase, PendingTransaction, PendingTransactionRecorded, TransactionRecorded,
};
use paycore_domain::fx_rate::{FxRateRemoved, FxRateSet};
use paycore_domain::kernel::fx::Rate;
use paycore_domain::project::ProjectCreated;
use paycore_domain::transfer::{
    PendingTransferCreated, PendingTransferExpired, PendingTransferPosted, PendingTransferVoided,
    TransferCreated,
};
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
    /// Each account's (pending debits, pending credits).
    pending: Vec<(i64, i64)>,
    transactions: u64,
}

/// A pending transfer as [`Books::hold`] made it.
struct Held {
    id: TransferId,
    from: usize,
    to: usize,
    cents: i64,
    /// Its two holds' IDs (source, destination).
    holds: (TransactionId, TransactionId),
}

/// The test's times: creations at `T0`, holds until `T0` + 1 h.
const T0: i64 = 1_700_000_000_000_000;
const EXPIRES: i64 = T0 + 3_600_000_000;

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
            pending: Vec::new(),
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
            books.pending.push((0, 0));
        }
        books
    }

    fn recorded(&mut self, account: usize, value: i64, kind: TransactionKind) -> (TransactionId, Event) {
        let id = TransactionId::from_uuid(uuid());
        (id, self.recorded_as(id, account, value, kind))
    }

    fn recorded_as(&mut self, id: TransactionId, account: usize, value: i64, kind: TransactionKind) -> Event {
        self.balances[account] += value;
        self.transactions += 1;
        Event::TransactionRecorded(TransactionRecorded {
            transaction: Transaction {
                id,
                account_id: self.accounts[account],
                project_id: self.project,
                kind,
                value: Money::new(value, Currency::EUR),
                balance_after: Money::new(self.balances[account], Currency::EUR),
                created_at: Timestamp::from_micros(1_700_000_000_000_000),
            },
        })
    }

    async fn transfer(&mut self, store: &PgStore, from: usize, to: usize, cents: i64) -> TransferId {
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
        id
    }

    /// The record of a hold (`phase` Reserved) or its release on `account`,
    /// `value` signed like the transaction it holds.
    fn pending_recorded(
        &mut self,
        account: usize,
        (transfer, id): (TransferId, TransactionId),
        phase: PendingPhase,
        value: i64,
        at: i64,
    ) -> Event {
        let change = if phase == PendingPhase::Reserved {
            value.abs()
        } else {
            -value.abs()
        };
        let (debits, credits) = &mut self.pending[account];
        if value < 0 {
            *debits += change;
        } else {
            *credits += change;
        }
        Event::PendingTransactionRecorded(PendingTransactionRecorded {
            pending: PendingTransaction {
                id,
                transfer_id: transfer,
                account_id: self.accounts[account],
                project_id: self.project,
                phase,
                value: Money::new(value, Currency::EUR),
                pending_debits_after: Money::new(*debits, Currency::EUR),
                pending_credits_after: Money::new(*credits, Currency::EUR),
                created_at: Timestamp::from_micros(at),
            },
        })
    }

    /// A pending transfer holding `cents` from `from` for `to` until
    /// [`EXPIRES`], with its two holds, in one append as the domain does.
    async fn hold(&mut self, store: &PgStore, from: usize, to: usize, cents: i64) -> Held {
        let id = TransferId::from_uuid(uuid());
        let holds = (TransactionId::from_uuid(uuid()), TransactionId::from_uuid(uuid()));
        let source = self.pending_recorded(from, (id, holds.0), PendingPhase::Reserved, -cents, T0);
        let destination = self.pending_recorded(to, (id, holds.1), PendingPhase::Reserved, cents, T0);
        let created = Event::PendingTransferCreated(PendingTransferCreated {
            id,
            project_id: self.project,
            source_account_id: self.accounts[from],
            destination_account_id: self.accounts[to],
            source_transaction_id: holds.0,
            destination_transaction_id: holds.1,
            value: Money::new(cents, Currency::EUR),
            meta: Meta::default(),
            created_at: Timestamp::from_micros(T0),
            expires_at: Timestamp::from_micros(EXPIRES),
        });
        append(
            store,
            vec![
                (format!("transfer-{id}"), vec![created]),
                (format!("account-{}", self.accounts[from]), vec![source]),
                (format!("account-{}", self.accounts[to]), vec![destination]),
            ],
        )
        .await;
        Held {
            id,
            from,
            to,
            cents,
            holds,
        }
    }

    /// Releases both holds of `held` in `phase`: the records, in one append
    /// with the transfer's event and, when posting, the posted legs.
    async fn release(&mut self, store: &PgStore, held: &Held, phase: PendingPhase, transfer: Event, at: i64) {
        let source = self.pending_recorded(held.from, (held.id, held.holds.0), phase, -held.cents, at);
        let destination = self.pending_recorded(held.to, (held.id, held.holds.1), phase, held.cents, at);
        let mut source_events = vec![source];
        let mut destination_events = vec![destination];
        if let Event::PendingTransferPosted(posted) = &transfer {
            let cents = posted.value.amount;
            let source = TransactionKind::PostedTransferSource(held.id);
            let destination = TransactionKind::PostedTransferDestination(held.id);
            source_events.push(self.recorded_as(posted.source_transaction_id, held.from, -cents, source));
            destination_events.push(self.recorded_as(
                posted.destination_transaction_id,
                held.to,
                cents,
                destination,
            ));
        }
        append(
            store,
            vec![
                (format!("transfer-{}", held.id), vec![transfer]),
                (format!("account-{}", self.accounts[held.from]), source_events),
                (format!("account-{}", self.accounts[held.to]), destination_events),
            ],
        )
        .await;
    }

    /// Posts `cents` of `held` at `at`: returns the posted legs' IDs.
    async fn post(
        &mut self,
        store: &PgStore,
        held: &Held,
        cents: i64,
        at: i64,
    ) -> (TransactionId, TransactionId) {
        let legs = (TransactionId::from_uuid(uuid()), TransactionId::from_uuid(uuid()));
        let posted = Event::PendingTransferPosted(PendingTransferPosted {
            value: Money::new(cents, Currency::EUR),
            source_transaction_id: legs.0,
            destination_transaction_id: legs.1,
            posted_at: Timestamp::from_micros(at),
        });
        self.release(store, held, PendingPhase::Posted, posted, at).await;
        legs
    }

    async fn expire(&mut self, store: &PgStore, held: &Held) {
        let expired = Event::PendingTransferExpired(PendingTransferExpired {
            expired_at: Timestamp::from_micros(EXPIRES),
        });
        self.release(store, held, PendingPhase::Expired, expired, EXPIRES)
            .await;
    }

    async fn void(&mut self, store: &PgStore, held: &Held, at: i64) {
        let voided = Event::PendingTransferVoided(PendingTransferVoided {
            voided_at: Timestamp::from_micros(at),
        });
        self.release(store, held, PendingPhase::Voided, voided, at).await;
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

/// A transfer's two-phase columns: status, expiry (µs), posted value,
/// posted legs, end (µs).
type Phases = (
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

async fn transfer_row(schema: &SchemaGuard, id: TransferId) -> Phases {
    let (client, connection) = tokio_postgres::connect(&schema.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let micros = |column: &str| format!("(extract(epoch FROM {column}) * 1000000)::bigint");
    let sql = format!(
        "SELECT status, {}, posted_value_minor, posted_source_transaction_id, \
         posted_destination_transaction_id, {} FROM {}.transfers WHERE id = $1",
        micros("expires_at"),
        micros("ended_at"),
        schema.schema
    );
    let row = client.query_one(&sql, &[&id.to_string()]).await.unwrap();
    (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    )
}

/// Each account's (balance, pending debits, pending credits, available).
async fn account_rows(schema: &SchemaGuard, books: &Books) -> Vec<(i64, i64, i64, i64)> {
    let (client, connection) = tokio_postgres::connect(&schema.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let sql = format!(
        "SELECT balance_minor, pending_debits_minor, pending_credits_minor, available_minor \
         FROM {}.accounts WHERE id = $1",
        schema.schema
    );
    let mut rows = Vec::new();
    for account in &books.accounts {
        let row = client.query_one(&sql, &[&account.to_string()]).await.unwrap();
        rows.push((row.get(0), row.get(1), row.get(2), row.get(3)));
    }
    rows
}

/// The transactions of a transfer: (ID, account, kind, value).
async fn transactions_of(schema: &SchemaGuard, id: TransferId) -> Vec<(String, String, String, i64)> {
    let (client, connection) = tokio_postgres::connect(&schema.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let sql = format!(
        "SELECT id, account_id, kind, value_minor FROM {}.transactions WHERE cause_id = $1 ORDER BY position",
        schema.schema
    );
    client
        .query(&sql, &[&id.to_string()])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

fn posted_plain() -> Phases {
    ("posted".to_owned(), None, None, None, None, None)
}

#[tokio::test]
async fn pending_transfers_show_their_holds_status_and_posted_legs() {
    let schema = SchemaGuard::new().await;
    let store = store(&schema).await;
    let mut books = Books::open(&store, 2).await;
    let plain = books.transfer(&store, 1, 0, 5_000).await;
    let writer = TablesWriter::spawn(store.clone(), options(&schema, "writer"));

    // Held: in the source's balance, not in its available balance; a
    // pending credit on the destination, in neither.
    let held = books.hold(&store, 0, 1, 1_500).await;
    caught_up(&schema).await;
    assert_eq!(
        account_rows(&schema, &books).await,
        [(5_000, 1_500, 0, 3_500), (-5_000, 0, 1_500, -5_000)]
    );
    let pending = ("pending".to_owned(), Some(EXPIRES), None, None, None, None);
    assert_eq!(transfer_row(&schema, held.id).await, pending);
    assert_eq!(
        transactions_of(&schema, held.id).await,
        [],
        "a hold moves no balance"
    );

    // Posted in part: the holds released, 1,000 moved by two legs.
    let posted_at = T0 + 60_000_000;
    let legs = books.post(&store, &held, 1_000, posted_at).await;
    caught_up(&schema).await;
    assert_eq!(
        account_rows(&schema, &books).await,
        [(4_000, 0, 0, 4_000), (-4_000, 0, 0, -4_000)]
    );
    let posted = (
        "posted".to_owned(),
        None,
        Some(1_000),
        Some(legs.0.to_string()),
        Some(legs.1.to_string()),
        Some(posted_at),
    );
    assert_eq!(transfer_row(&schema, held.id).await, posted);
    let (a, b) = (books.accounts[0].to_string(), books.accounts[1].to_string());
    assert_eq!(
        transactions_of(&schema, held.id).await,
        [
            (
                legs.0.to_string(),
                a.clone(),
                "posted_transfer_source".to_owned(),
                -1_000
            ),
            (
                legs.1.to_string(),
                b,
                "posted_transfer_destination".to_owned(),
                1_000
            ),
        ]
    );

    // Voided: released, nothing moved.
    let voided_hold = books.hold(&store, 0, 1, 300).await;
    caught_up(&schema).await;
    assert_eq!(account_rows(&schema, &books).await[0], (4_000, 300, 0, 3_700));
    let voided_at = T0 + 120_000_000;
    books.void(&store, &voided_hold, voided_at).await;
    caught_up(&schema).await;
    assert_eq!(
        account_rows(&schema, &books).await,
        [(4_000, 0, 0, 4_000), (-4_000, 0, 0, -4_000)]
    );
    let voided = ("voided".to_owned(), None, None, None, None, Some(voided_at));
    assert_eq!(transfer_row(&schema, voided_hold.id).await, voided);
    assert_eq!(transactions_of(&schema, voided_hold.id).await, []);

    // Expired: released at its `expires_at`, nothing moved.
    let lapsed = books.hold(&store, 1, 0, 200).await;
    books.expire(&store, &lapsed).await;
    caught_up(&schema).await;
    let expired = ("expired".to_owned(), None, None, None, None, Some(EXPIRES));
    assert_eq!(transfer_row(&schema, lapsed.id).await, expired);
    assert_eq!(transactions_of(&schema, lapsed.id).await, []);

    // A last hold stays pending; the plain transfer is posted, never pended.
    let still = books.hold(&store, 0, 1, 700).await;
    caught_up(&schema).await;
    assert_eq!(transfer_row(&schema, plain).await, posted_plain());
    let expected_accounts = [(4_000, 700, 0, 3_300), (-4_000, 0, 700, -4_000)];
    assert_eq!(account_rows(&schema, &books).await, expected_accounts);
    assert_eq!(books.in_tables(&schema).await, (books.balances.clone(), 4, 5));
    writer.stop().await;

    // Rows written by version 1 (before the columns existed: their
    // defaults) are written again from the log by the new version.
    schema
        .execute(&format!(
            "UPDATE {s}.read_model_checkpoints SET version = 1 WHERE projection IN ('accounts', 'transfers');
             UPDATE {s}.accounts SET pending_debits_minor = 0, pending_credits_minor = 0, available_minor = balance_minor;
             UPDATE {s}.transfers SET status = 'posted', expires_at = NULL, posted_value_minor = NULL,
               posted_source_transaction_id = NULL, posted_destination_transaction_id = NULL, ended_at = NULL;",
            s = schema.schema
        ))
        .await;
    let writer = TablesWriter::spawn(store.clone(), options(&schema, "writer"));
    caught_up(&schema).await;
    assert_eq!(account_rows(&schema, &books).await, expected_accounts);
    assert_eq!(transfer_row(&schema, held.id).await, posted);
    assert_eq!(transfer_row(&schema, voided_hold.id).await, voided);
    assert_eq!(transfer_row(&schema, lapsed.id).await, expired);
    let still_pending = ("pending".to_owned(), Some(EXPIRES), None, None, None, None);
    assert_eq!(transfer_row(&schema, still.id).await, still_pending);
    assert_eq!(transfer_row(&schema, plain).await, posted_plain());
    writer.stop().await;
}
