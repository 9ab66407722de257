//! PostgreSQL backend of paycore's event store: several stateless paycore
//! servers on one database.
//!
//! [`PgStore`] implements [`paycore_store::EventStore`] and passes the same
//! conformance suite as the embedded log. [`migrate`] creates and upgrades its
//! tables (`paycore db migrate`); [`PgStore::connect`] refuses a schema that
//! is not migrated, or is newer than the binary.
//!
//! ```no_run
//! # async fn demo() -> Result<(), paycore_store::StoreError> {
//! use paycore_store_postgres::{PgOptions, PgStore, migrate};
//! let url = "postgres://paycore@db.internal:5432/paycore";
//! migrate(url, "paycore").await?;
//! let store = PgStore::connect(url, PgOptions::default()).await?;
//! # drop(store); Ok(()) }
//! ```
//!
//! # Why tokio-postgres (and deadpool-postgres)
//!
//! - **Explicit SQL, nothing hidden**: the append is a handful of statements
//!   whose exact text, order and locking matter (see below); a thin client
//!   that runs exactly that SQL is the right tool.
//! - **Pipelining**: tokio-postgres sends a request when its future is first
//!   polled, so several statements go out back to back without waiting for
//!   replies. An append costs two round trips (`BEGIN`+lock+read heads, then
//!   inserts+updates+`COMMIT`), whatever the number of statements.
//! - **LISTEN/NOTIFY** through the connection's message stream
//!   (`AsyncMessage::Notification`), without a second library.
//! - **No database at compile time** (sqlx's checked macros need one, or
//!   checked-in query metadata) and a small dependency tree; deadpool-postgres
//!   adds only the pool and a per-connection prepared-statement cache.
//!
//! TLS is not configured (`NoTls`): a URL with `sslmode=require` fails to
//! connect. Adding a TLS connector (e.g. `tokio-postgres-rustls`) is local to
//! `connect.rs` and `store.rs`.
//!
//! # Schema (migration 1, `migrations/0001_initial.sql`)
//!
//! All tables live in one PostgreSQL schema (default `paycore`,
//! [`PgOptions::schema`]); several independent stores can share a database.
//!
//! | table | columns | role |
//! |---|---|---|
//! | `events` | `position bigint` PK, `stream text`, `version bigint`, `event_type text`, `schema_version integer` (a `u16`: `smallint` stops at 32,767), `recorded_at_micros bigint`, `metadata bytea`, `payload bytea`, `hash bytea` (32 bytes); `UNIQUE (stream, version)` | the log. Triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` (defence in depth; the hash chain is the proof). |
//! | `stream_heads` | `stream text` PK, `version bigint`, `position bigint` | last version of each stream: expectations are checked here, not by scanning `events` |
//! | `log_head` | one row: `next_position bigint`, `last_hash bytea`, `last_recorded_at_micros bigint` | the append lock, the next position, the chain's last hash |
//! | `schema_migrations` | `version integer` PK, `name text`, `applied_at timestamptz` | which migrations ran |
//!
//! Later migrations add tables beside the log, never touching it: 2,
//! `side_blobs` (`paycore-sidestore`'s `PgBlobs`); 3, `aggregate_snapshots`
//! (`stream text` PK, `version bigint`, `event_hash bytea`, `format bigint`,
//! `state bytea`, `saved_at timestamptz`), the engine's cache of aggregate
//! states ([`PgSnapshots`], from [`PgStore::snapshots`]): an upsert that
//! only ever moves a row to a newer (format, version); deleting rows is
//! always safe; 4, `events.last_in_commit` (where each append ends); 5, the
//! read models as tables (`read_model_checkpoints`, `projects`, `customers`,
//! `accounts`, `transactions`, `transfers`, `resources`, `fx_rates`), written
//! by `paycore-projections-postgres` and read by reporting tools; 6,
//! `read_model_rebuilds` (the tables' rebuilds in progress, written beside
//! the served tables and swapped in); 7, two-phase transfers in those
//! tables (`accounts`' pending amounts and available balance, `transfers`'
//! status, expiry, posted value and legs, end).
//!
//! `metadata` holds the hash chain's canonical metadata encoding (see
//! `paycore_store`'s `chain` module), so the stored bytes are exactly the
//! hashed bytes: an auditor can recompute every `hash` from the columns alone,
//! in any language, without knowing postcard or Rust (a unit test checks
//! this). Stream reads use the `(stream, version)` unique index, `$all` reads
//! the primary key.
//!
//! # Append: one transaction, in commit order
//!
//! Each `PgStore` has one writer task. `append` validates the request and
//! queues it; the writer takes every queued request (up to
//! [`PgOptions::max_batch_events`] events, 64 MiB) and commits them together
//! — group commit: 64 concurrent callers share one transaction and one WAL
//! flush. In that transaction:
//!
//! 1. `BEGIN ISOLATION LEVEL READ COMMITTED` (whatever the database's
//!    default); `SELECT … FROM log_head FOR UPDATE` (**the append lock**; also
//!    reads the database clock); `SELECT` the `stream_heads` rows of every
//!    stream in the batch. Pipelined: one round trip. The heads are read by a
//!    statement that starts after the lock is granted, so they are current.
//! 2. In memory: each request's expectations are checked in order against
//!    those heads and the requests accepted before it in the batch (a stream
//!    may appear several times; each write sees the ones before it). A request
//!    that fails gets `WrongExpectedVersion` and is left out, alone. The
//!    others get consecutive positions from `next_position`, one
//!    `recorded_at = max(last_recorded_at, database clock)` (so time never
//!    goes backwards along the log, across servers too), and hashes chained
//!    with [`paycore_store::chain_hash`] from `last_hash`.
//! 3. `INSERT … SELECT FROM UNNEST($1::bigint[], …)` (one statement per 4,096
//!    rows or 32 MiB), upsert of `stream_heads` (UNNEST, `ON CONFLICT`),
//!    `UPDATE log_head … RETURNING` + `pg_notify('<schema>_events',
//!    next_position)`, `COMMIT`. Pipelined: one round trip. `COMMIT` is sent
//!    only if every statement before it was sent (a parameter that failed to
//!    encode client-side must not leave a partial transaction to commit).
//!
//! Only after `COMMIT` succeeds does the store raise its `committed()`
//! watermark and answer. With PostgreSQL's default `synchronous_commit = on`
//! the commit is flushed to the WAL first: acknowledged means durable
//! (`connect` logs a warning if `synchronous_commit` or `fsync` is off).
//! `UNIQUE (stream, version)` is enforced by the database as well; a unique
//! violation (only possible if something wrote without the lock) is reported
//! as `WrongExpectedVersion`.
//!
//! # How subscribers never skip an event
//!
//! **The problem.** If positions came from a sequence, transaction A could take
//! position 5 and B position 6, and B could commit first. A reader would then
//! see 6 but not 5; a subscriber that moved its checkpoint past 6 would never
//! see 5. Sequences are not transactional, so a rolled-back transaction also
//! leaves a hole that never fills, and a reader cannot tell a hole that will
//! fill from one that never will without guessing with timeouts.
//!
//! **The solution here: one append lock.** Every append locks the single
//! `log_head` row first and holds it until it commits. Positions are assigned
//! under that lock from `log_head.next_position`, so:
//!
//! - appends that overlap in time are serialized: the next one (from this
//!   server or any other) is granted the lock only after the previous one has
//!   committed (or rolled back, which assigned nothing: positions stay
//!   dense), and PostgreSQL re-reads the locked row, so it sees the new head;
//! - hence positions become visible in exactly commit order: whenever
//!   `log_head.next_position = n` is visible, every event below `n` is
//!   committed and visible. Even a raw `read_all` that ignores the watermark
//!   never sees a gap (the `gaps` test checks this too);
//! - the watermark `committed()` only ever moves to a value read from the log
//!   head (by the writer after its own commit, from a notification sent in
//!   the committing transaction and delivered after it, or from a poll), and
//!   [`paycore_store::subscribe_all`] never reads at or past the watermark.
//!
//! The cost is that appends from all servers are serialized on the database:
//! throughput is about one transaction per lock hold (two round trips plus a
//! WAL flush), and group commit makes each transaction carry many requests.
//! The alternative — concurrent inserts, and readers that stop below a safe
//! high-water mark derived from in-flight transactions (`pg_snapshot_xmin`) —
//! scales writes further but makes every reader more complex and delays it
//! behind the slowest writer; paycore's engine already sends one batch per
//! server at a time, so the lock costs little.
//!
//! # `committed()` across servers
//!
//! A background task keeps one connection outside the pool that `LISTEN`s on
//! `<schema>_events`; every append notifies it with the new `next_position`.
//! The same connection polls `log_head` every [`PgOptions::poll_interval`]
//! (200 ms by default). So another server's commit reaches this server's
//! subscribers at once by notification, and **at most one poll interval
//! late** if a notification is lost, as long as the database is reachable.
//! If the connection breaks, the task reconnects (backoff 100 ms to 2 s),
//! listens again and reads the head.
//!
//! # Failures
//!
//! - Database unreachable at `connect`: `StoreError::Unavailable("cannot
//!   connect to PostgreSQL at host:port/db as user: …")` within the connect
//!   timeout (5 s default; the URL's `connect_timeout` wins). The password is
//!   never printed.
//! - Unmigrated or older schema: `Unavailable("… run `paycore db migrate`
//!   first")`; newer schema: `Unavailable("… newer than this paycore binary
//!   knows …")`. [`migrate`] returns the typed [`MigrateError`].
//! - Connection lost during an operation: `StoreError::Unavailable`. A pooled
//!   connection found dead before anything was sent (the database restarted)
//!   is replaced, the other idle connections are closed too, and the
//!   operation is retried once. An append whose connection is lost after
//!   `COMMIT` was sent reports `Unavailable` saying that its outcome is
//!   unknown: it committed whole or not at all, never partly — read the
//!   streams before retrying. Nothing is ever half-written.
//! - An operation that takes longer than [`PgOptions::operation_timeout`]
//!   fails with `Unavailable` and its connection is closed (which makes the
//!   server roll back what had not committed). Sessions run with
//!   `idle_in_transaction_session_timeout` = that timeout, so a server that
//!   vanishes while holding the append lock blocks the others no longer.
//! - Stream names and event types cannot contain NUL (`text` cannot store it):
//!   `InvalidRequest`. Stored rows that do not decode: `StoreError::Corrupt`
//!   naming `<schema>.events` and the position.

mod connect;
mod tls;

/// Connection helpers for other paycore crates that keep data in the same
/// PostgreSQL schema (the side storage), so both speak to the database alike:
/// URL parsing with paycore's timeouts and keepalives, password-free target
/// names, the schema-name rule, error descriptions and which errors end a
/// connection.
pub mod support {
    pub use crate::connect::{Endpoint, Single, TlsStream, config, open, target};
    pub use crate::error::{describe, is_connection_error};
    pub use crate::options::valid_schema;
    pub use crate::tls::SslMode;
}
mod error;
mod listener;
#[cfg(feature = "testing")]
pub mod local_cluster;
mod metadata;
mod migrate;
mod options;
mod pipeline;
mod snapshots;
mod sql;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod validate;

pub use migrate::{LATEST_SCHEMA_VERSION, MigrateError, MigrationReport, migrate};
pub use options::{DEFAULT_SCHEMA, PgOptions};
pub use snapshots::PgSnapshots;
pub use store::PgStore;
