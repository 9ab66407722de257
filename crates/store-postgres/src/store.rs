//! [`PgStore`]: the `EventStore` on PostgreSQL. See the crate docs for the
//! design; this module is the code.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use paycore_store::{
    AppendRequest, AppendResult, ChainHash, EventMetadata, EventStore, Position, ReadDirection,
    RecordedEvent, StoreError, StreamName, Version, chain_hash,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};
use tracing::Instrument;

use crate::connect;
use crate::error::{describe, is_connection_error, is_version_conflict, unavailable};
use crate::listener::{Listener, advance, listen};
use crate::metadata;
use crate::migrate::{self, MigrateError};
use crate::options::{PgOptions, valid_schema};
use crate::pipeline::{self, Step, simple};
use crate::snapshots::PgSnapshots;
use crate::sql::Sql;
use crate::validate::validate;

/// Most rows one INSERT carries; a larger append is split into several
/// statements of the same transaction (pipelined, so no extra round trip).
const INSERT_CHUNK_ROWS: usize = 4096;
/// Most payload and metadata bytes one INSERT carries.
const INSERT_CHUNK_BYTES: usize = 32 << 20;
/// Most bytes (as `validate` counts them) of the appends grouped into one
/// transaction; a larger single request still goes alone.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// Appends waiting for the writer before `append` itself waits (backpressure).
const QUEUE_DEPTH: usize = 4096;

/// The PostgreSQL event store. Cheap to share behind an `Arc`; any number of
/// `PgStore`s (in one process or on many servers) may use one schema at once.
pub struct PgStore {
    shared: Arc<Shared>,
    writer: mpsc::Sender<Pending>,
    listener: JoinHandle<()>,
}

pub(crate) struct Shared {
    pool: Pool,
    sql: Arc<Sql>,
    committed: watch::Sender<Position>,
    schema: String,
    operation_timeout: Duration,
    max_batch_events: usize,
}

/// An append waiting for the writer task.
struct Pending {
    request: AppendRequest,
    events: usize,
    bytes: usize,
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
    /// The caller's span: the transaction that commits the append is
    /// traced under it.
    span: tracing::Span,
}

/// Most appends a `pg_append` span links to besides its parent.
const MAX_APPEND_LINKS: usize = 64;

impl PgStore {
    /// Connects to the database at `url` (a `postgres://user@host:port/db`
    /// URL or `key=value` pairs; TLS is not supported) and checks that
    /// `options.schema` is migrated to exactly [`LATEST_SCHEMA_VERSION`].
    ///
    /// Errors ([`StoreError::Unavailable`], with a message saying what to do):
    /// the database cannot be reached within the connect timeout; the schema
    /// is missing or older (run `paycore db migrate`); the schema is newer
    /// than this binary; the URL or schema name is invalid.
    ///
    /// [`LATEST_SCHEMA_VERSION`]: crate::LATEST_SCHEMA_VERSION
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        if !valid_schema(&options.schema) {
            return Err(MigrateError::InvalidSchemaName(options.schema).into());
        }
        let config = connect::config(url, options.connect_timeout, options.application_name.as_deref())
            .map_err(StoreError::Unavailable)?;
        let sql = Arc::new(Sql::new(&options.schema));

        // The listener's connection first: listening before reading the head
        // means no commit can fall between the two unnoticed.
        let first = connect::open(&config, options.connect_timeout * 2)
            .await
            .map_err(StoreError::Unavailable)?;
        migrate::check(&first.client, &options.schema).await?;
        warn_if_not_durable(&first.client).await;
        listen(&first, &sql).await.map_err(StoreError::Unavailable)?;
        let head = first
            .client
            .query_one(&sql.head_position, &[])
            .await
            .map_err(|e| unavailable("reading the log head", &e))?;
        let head: i64 = head
            .try_get(0)
            .map_err(|e| unavailable("reading the log head", &e))?;
        let committed = watch::Sender::new(Position::try_from(head).unwrap_or(0));

        tracing::info!(
            target = %config.target(),
            sslmode = config.ssl_mode().as_str(),
            "connected to PostgreSQL"
        );
        let pool = config
            .pool(
                config.config().clone(),
                options.pool_size,
                options.connect_timeout,
                options.operation_timeout,
            )
            .map_err(StoreError::Unavailable)?;

        let listener = Listener {
            config,
            sql: sql.clone(),
            committed: committed.clone(),
            poll_interval: options.poll_interval,
            connect_timeout: options.connect_timeout,
            operation_timeout: options.operation_timeout,
        };
        let listener = tokio::spawn(listener.run(first));
        let shared = Arc::new(Shared {
            pool,
            sql,
            committed,
            schema: options.schema,
            operation_timeout: options.operation_timeout,
            max_batch_events: options.max_batch_events.max(1),
        });
        let (writer, queue) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(shared.clone().run_writer(queue));
        Ok(PgStore {
            shared,
            writer,
            listener,
        })
    }

    /// The schema this store reads and writes.
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// The aggregate snapshots kept in the same schema, over this store's
    /// connection pool.
    pub fn snapshots(&self) -> PgSnapshots {
        PgSnapshots::new(self.shared.clone())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The writer finishes the appends already queued, then stops when it
        // sees the queue closed; the listener has nothing left to do.
        self.listener.abort();
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.shared.schema)
            .field("committed", &*self.shared.committed.borrow())
            .field("pool", &self.shared.pool.status())
            .finish()
    }
}

#[async_trait::async_trait]
impl EventStore for PgStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        let (events, bytes) = validate(&request)?;
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Pending {
                request,
                events,
                bytes,
                reply,
                span: tracing::Span::current(),
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Version,
        direction: ReadDirection,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let sql = match direction {
            ReadDirection::Forward => &self.shared.sql.read_forward,
            ReadDirection::Backward => &self.shared.sql.read_backward,
        };
        let rows = self.shared.query(sql, &[&stream.as_str(), &from, &limit]).await?;
        let mut decoder = Decoder::new(&self.shared.schema, Some(stream));
        rows.iter().map(|row| decoder.event(row)).collect()
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let Ok(from) = i64::try_from(from) else {
            return Ok(Vec::new());
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self
            .shared
            .query(&self.shared.sql.read_all, &[&from, &limit])
            .await?;
        let mut decoder = Decoder::new(&self.shared.schema, None);
        rows.iter().map(|row| decoder.event(row)).collect()
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Option<Version>, StoreError> {
        let rows = self
            .shared
            .query(&self.shared.sql.stream_version, &[&stream.as_str()])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let version: i64 = row
            .try_get(0)
            .map_err(|e| self.shared.corrupt("stream_heads", 0, describe(&e)))?;
        Version::try_from(version).map(Some).map_err(|_| {
            self.shared
                .corrupt("stream_heads", 0, format!("negative version {version}"))
        })
    }

    fn committed(&self) -> watch::Receiver<Position> {
        self.shared.committed.subscribe()
    }
}

// ---------------------------------------------------------------- reads

impl Shared {
    /// Runs one read-only statement. A connection that turns out to be dead
    /// (the database restarted since it was pooled) is discarded and the read
    /// retried once on a fresh one.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        self.run("reading events", sql, params).await
    }

    /// Runs one statement that may be repeated safely (a read, or a write
    /// whose second run changes nothing more), retried once on a fresh
    /// connection like [`Shared::query`]; `doing` names it in errors.
    pub(crate) async fn run(
        &self,
        doing: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let mut retried = false;
        loop {
            let conn = self.connection().await?;
            let run = async {
                let statement = conn.prepare_cached(sql).await?;
                conn.query(&statement, params).await
            };
            match tokio::time::timeout(self.operation_timeout, run).await {
                Ok(Ok(rows)) => return Ok(rows),
                Ok(Err(e)) if is_connection_error(&e) => {
                    drop(Object::take(conn));
                    self.drop_idle_connections();
                    if !retried {
                        retried = true;
                        continue;
                    }
                    return Err(unavailable(doing, &e));
                }
                Ok(Err(e)) => return Err(unavailable(doing, &e)),
                Err(_) => {
                    drop(Object::take(conn));
                    return Err(StoreError::Unavailable(format!(
                        "{doing}: no answer within {:?}",
                        self.operation_timeout
                    )));
                }
            }
        }
    }

    /// After a connection failed, the idle ones are suspect too (a database
    /// restart or a network cut kills them all): close them, so that the
    /// retry and later operations open fresh connections.
    fn drop_idle_connections(&self) {
        self.pool.retain(|_, _| false);
    }

    async fn connection(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("no connection to PostgreSQL: {}", pool_error(&e))))
    }

    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    fn corrupt(&self, table: &str, offset: u64, reason: String) -> StoreError {
        StoreError::Corrupt {
            file: PathBuf::from(format!("{}.{table}", self.schema)),
            offset,
            position: None,
            reason,
        }
    }
}

/// "Acknowledged means durable" holds only if PostgreSQL flushes commits.
async fn warn_if_not_durable(client: &Client) {
    let settings = client
        .query_one(
            "SELECT current_setting('synchronous_commit'), current_setting('fsync')",
            &[],
        )
        .await;
    if let Ok(row) = settings {
        let synchronous_commit: String = row.try_get(0).unwrap_or_default();
        let fsync: String = row.try_get(1).unwrap_or_default();
        if synchronous_commit == "off" || fsync == "off" {
            tracing::warn!(
                synchronous_commit,
                fsync,
                "PostgreSQL does not flush commits before acknowledging them: \
                 appends acknowledged just before a database crash can be lost"
            );
        }
    }
}

fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// Turns rows into events, sharing the metadata of consecutive events that
/// carry the same bytes (the events of one command) and the stream name of a
/// stream read.
struct Decoder<'a> {
    schema: &'a str,
    stream: Option<&'a StreamName>,
    last_meta: Option<(Vec<u8>, Arc<EventMetadata>)>,
}

impl<'a> Decoder<'a> {
    fn new(schema: &'a str, stream: Option<&'a StreamName>) -> Self {
        Self {
            schema,
            stream,
            last_meta: None,
        }
    }

    fn event(&mut self, row: &Row) -> Result<RecordedEvent, StoreError> {
        let position: i64 = row.try_get(0).map_err(|e| self.corrupt(0, describe(&e)))?;
        let at = u64::try_from(position).unwrap_or(0);
        let field = |e: tokio_postgres::Error| self.corrupt(at, describe(&e));
        let stream: &str = row.try_get(1).map_err(field)?;
        let version: i64 = row.try_get(2).map_err(field)?;
        let event_type: &str = row.try_get(3).map_err(field)?;
        let schema_version: i32 = row.try_get(4).map_err(field)?;
        let recorded_at_micros: i64 = row.try_get(5).map_err(field)?;
        let meta_bytes: &[u8] = row.try_get(6).map_err(field)?;
        let payload: &[u8] = row.try_get(7).map_err(field)?;
        let hash: &[u8] = row.try_get(8).map_err(field)?;
        let last_in_commit: bool = row.try_get(9).map_err(field)?;

        let stream = match self.stream {
            Some(name) if name.as_str() == stream => name.clone(),
            _ => StreamName::from(stream),
        };
        let metadata = match &self.last_meta {
            Some((bytes, meta)) if bytes.as_slice() == meta_bytes => meta.clone(),
            _ => {
                let meta = Arc::new(metadata::decode(meta_bytes).map_err(|reason| self.corrupt(at, reason))?);
                self.last_meta = Some((meta_bytes.to_vec(), meta.clone()));
                meta
            }
        };
        Ok(RecordedEvent {
            position: at,
            stream,
            version: u64::try_from(version)
                .map_err(|_| self.corrupt(at, format!("negative version {version}")))?,
            event_type: event_type.into(),
            schema_version: u16::try_from(schema_version)
                .map_err(|_| self.corrupt(at, format!("schema version {schema_version}")))?,
            recorded_at_micros,
            metadata,
            payload: bytes::Bytes::copy_from_slice(payload),
            hash: ChainHash::try_from(hash)
                .map_err(|_| self.corrupt(at, format!("hash of {} bytes", hash.len())))?,
            last_in_commit,
        })
    }

    fn corrupt(&self, position: u64, reason: String) -> StoreError {
        StoreError::Corrupt {
            file: PathBuf::from(format!("{}.events", self.schema)),
            offset: position,
            position: Some(position),
            reason,
        }
    }
}

// ---------------------------------------------------------------- the writer

/// Why a batch's transaction did not commit.
enum TxError {
    /// From the database or the connection. `committing`: the `COMMIT` may
    /// have been sent, so a connection failure leaves the outcome unknown.
    Db {
        error: tokio_postgres::Error,
        committing: bool,
    },
    /// The log head row is missing or malformed.
    Corrupt(StoreError),
}

/// Why a whole batch failed.
enum Failure {
    /// Every request of the batch gets `Unavailable(message)`.
    Unavailable(String),
    /// A database error that one request may have caused (a unique
    /// violation, a value PostgreSQL refuses): the requests are retried alone.
    Request {
        message: String,
        conflict: bool,
    },
    Corrupt(StoreError),
}

impl Shared {
    /// The writer task: takes every append waiting (up to `max_batch_events`
    /// events), commits them in one transaction, answers each, repeats. Ends
    /// when the store is dropped and the queue is empty.
    async fn run_writer(self: Arc<Self>, mut queue: mpsc::Receiver<Pending>) {
        let mut carry: Option<Pending> = None;
        loop {
            let first = match carry.take() {
                Some(pending) => pending,
                None => match queue.recv().await {
                    Some(pending) => pending,
                    None => return,
                },
            };
            let mut events = first.events;
            let mut bytes = first.bytes;
            let mut batch = vec![first];
            while events < self.max_batch_events && bytes < MAX_BATCH_BYTES {
                match queue.try_recv() {
                    Ok(next)
                        if events + next.events > self.max_batch_events
                            || bytes + next.bytes > MAX_BATCH_BYTES =>
                    {
                        carry = Some(next);
                        break;
                    }
                    Ok(next) => {
                        events += next.events;
                        bytes += next.bytes;
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            // An append whose caller went away need not be written at all.
            batch.retain(|pending| !pending.reply.is_closed());
            if !batch.is_empty() {
                self.append_batch(batch).await;
            }
        }
    }

    async fn append_batch(&self, batch: Vec<Pending>) {
        // One transaction commits every append of the batch: a child of the
        // first caller's span, linked to the others'.
        let span = tracing::debug_span!(
            target: "paycore::store",
            parent: batch.first().and_then(|pending| pending.span.id()),
            "pg_append",
            appends = batch.len(),
            events = batch.iter().map(|pending| pending.events).sum::<usize>(),
        );
        for pending in batch.iter().skip(1).take(MAX_APPEND_LINKS) {
            span.follows_from(&pending.span);
        }
        self.append_traced_batch(batch).instrument(span).await;
    }

    async fn append_traced_batch(&self, mut batch: Vec<Pending>) {
        let requests: Vec<&AppendRequest> = batch.iter().map(|p| &p.request).collect();
        match self.transact(&requests).await {
            Ok(results) => {
                for (pending, result) in batch.into_iter().zip(results) {
                    let _ = pending.reply.send(result);
                }
            }
            Err(Failure::Request { .. }) if batch.len() > 1 => {
                // One request may have spoiled the batch: give each its own
                // transaction so that only the culprit fails.
                for pending in batch {
                    let result = match self.transact(&[&pending.request]).await {
                        Ok(mut results) => results.pop().unwrap_or(Err(StoreError::Closed)),
                        Err(failure) => Err(self.failure_error(failure, &pending.request).await),
                    };
                    let _ = pending.reply.send(result);
                }
            }
            Err(failure) => {
                let message = match &failure {
                    Failure::Unavailable(message) | Failure::Request { message, .. } => message.clone(),
                    Failure::Corrupt(e) => e.to_string(),
                };
                if batch.len() == 1 {
                    if let Some(pending) = batch.pop() {
                        let error = self.failure_error(failure, &pending.request).await;
                        let _ = pending.reply.send(Err(error));
                    }
                    return;
                }
                for pending in batch {
                    let _ = pending.reply.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }

    /// The error a request gets when its own transaction failed.
    async fn failure_error(&self, failure: Failure, request: &AppendRequest) -> StoreError {
        match failure {
            Failure::Unavailable(message) => StoreError::Unavailable(message),
            Failure::Corrupt(e) => e,
            Failure::Request {
                conflict: true,
                message,
            } => {
                // (stream, version) taken although the stream heads said it
                // was free: only possible if someone wrote to the tables
                // without the append lock. Report it as the version conflict
                // it is, with the stream's actual version.
                let Some(write) = request.writes.first() else {
                    return StoreError::Unavailable(message);
                };
                let actual = self
                    .query(&self.sql.stream_version, &[&write.stream.as_str()])
                    .await
                    .ok()
                    .and_then(|rows| rows.first().and_then(|row| row.try_get::<_, i64>(0).ok()))
                    .and_then(|v| Version::try_from(v).ok());
                StoreError::WrongExpectedVersion {
                    stream: write.stream.clone(),
                    expected: write.expected,
                    actual,
                }
            }
            Failure::Request { message, .. } => StoreError::Unavailable(message),
        }
    }

    /// Commits `requests` in one transaction on a pooled connection. A
    /// connection found dead before anything was written is replaced once.
    async fn transact(
        &self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendResult, StoreError>>, Failure> {
        let mut retried = false;
        loop {
            let conn = self.connection().await.map_err(|e| match e {
                StoreError::Unavailable(message) => Failure::Unavailable(message),
                other => Failure::Unavailable(other.to_string()),
            })?;
            let attempt = tokio::time::timeout(self.operation_timeout, self.transaction(&conn, requests));
            let error = match attempt.await {
                Ok(Ok(results)) => return Ok(results),
                Ok(Err(error)) => error,
                Err(_) => {
                    // Closing the connection makes the server roll back
                    // whatever had not committed yet.
                    drop(Object::take(conn));
                    return Err(Failure::Unavailable(format!(
                        "the append did not finish within {:?}; its connection was closed: \
                         it either committed whole or not at all, read the streams to know",
                        self.operation_timeout
                    )));
                }
            };
            match error {
                TxError::Corrupt(e) => {
                    self.release_after_error(conn, false).await;
                    return Err(Failure::Corrupt(e));
                }
                TxError::Db { error, committing } => {
                    let broken = is_connection_error(&error);
                    self.release_after_error(conn, broken).await;
                    if broken {
                        self.drop_idle_connections();
                    }
                    if broken && !committing && !retried {
                        retried = true;
                        continue;
                    }
                    let detail = describe(&error);
                    return Err(if broken && committing {
                        Failure::Unavailable(format!(
                            "connection to PostgreSQL lost while committing an append: it either \
                             committed whole or not at all; read the streams to know ({detail})"
                        ))
                    } else if broken {
                        Failure::Unavailable(format!("append failed, nothing written: {detail}"))
                    } else {
                        Failure::Request {
                            message: format!("append refused by PostgreSQL, nothing written: {detail}"),
                            conflict: is_version_conflict(&error),
                        }
                    });
                }
            }
        }
    }

    /// Returns a connection to the pool after a failed transaction, rolled
    /// back; a broken one (or one that cannot roll back) is closed instead.
    async fn release_after_error(&self, conn: Object, broken: bool) {
        if !broken {
            let rollback = tokio::time::timeout(self.operation_timeout, conn.batch_execute("ROLLBACK"));
            if let Ok(Ok(())) = rollback.await {
                return;
            }
        }
        drop(Object::take(conn));
    }

    /// The append transaction (see the crate docs):
    ///
    /// 1. pipelined: `BEGIN`; lock the log head row; read the heads of every
    ///    stream the batch touches (after the lock, so they are current);
    /// 2. check each request's expectations in order against those heads and
    ///    the requests accepted before it; assign positions and versions;
    ///    chain the hashes;
    /// 3. pipelined: insert the events (UNNEST arrays, one statement per
    ///    chunk); upsert the stream heads; update the log head and NOTIFY;
    ///    `COMMIT` (sent only if everything before it was sent).
    async fn transaction(
        &self,
        conn: &Object,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendResult, StoreError>>, TxError> {
        let before = |error| TxError::Db {
            error,
            committing: false,
        };
        let pg: &Client = conn;
        let sql = &self.sql;
        let lock = conn.prepare_cached(&sql.lock_head).await.map_err(before)?;
        let read_heads = conn.prepare_cached(&sql.stream_heads).await.map_err(before)?;
        let insert = conn.prepare_cached(&sql.insert_events).await.map_err(before)?;
        let upsert = conn.prepare_cached(&sql.upsert_heads).await.map_err(before)?;
        let update = conn
            .prepare_cached(&sql.update_head_and_notify)
            .await
            .map_err(before)?;

        let mut streams: Vec<&str> = requests
            .iter()
            .flat_map(|r| r.writes.iter().map(|w| w.stream.as_str()))
            .collect();
        streams.sort_unstable();
        streams.dedup();

        // ---- 1. begin, lock, read heads
        let replies = pipeline::run(vec![
            // READ COMMITTED whatever the database default: each statement
            // must see what committed before it started (the heads, after
            // the lock), and the lock must wait rather than fail.
            simple(pg, "BEGIN ISOLATION LEVEL READ COMMITTED"),
            Box::pin(pg.query(&lock, &[])),
            Box::pin(pg.query(&read_heads, &[&streams])),
        ])
        .await
        .map_err(before)?;
        let head = self.log_head(&replies[1]).map_err(TxError::Corrupt)?;
        let mut db_heads: HashMap<&str, Version> = HashMap::with_capacity(replies[2].len());
        for row in &replies[2] {
            let stream: &str = row.try_get(0).map_err(before)?;
            let version: i64 = row.try_get(1).map_err(before)?;
            let version = Version::try_from(version).map_err(|_| {
                TxError::Corrupt(self.corrupt("stream_heads", 0, format!("{stream}: negative version")))
            })?;
            db_heads.insert(stream, version);
        }

        // ---- 2. expectations, positions, hashes
        let mut accepted_heads: HashMap<&str, Version> = HashMap::new();
        let mut plans = Vec::with_capacity(requests.len());
        for request in requests {
            let planned = plan(request, |stream| {
                accepted_heads
                    .get(stream)
                    .or_else(|| db_heads.get(stream))
                    .copied()
            });
            if let Ok((_, lasts)) = &planned {
                accepted_heads.extend(lasts.iter().copied());
            }
            plans.push(planned.map(|(firsts, _)| firsts));
        }
        if plans.iter().all(Result::is_err) {
            pg.batch_execute("ROLLBACK").await.map_err(before)?;
            return Ok(plans.into_iter().filter_map(Result::err).map(Err).collect());
        }

        let recorded_at = head.last_recorded_at.max(head.now);
        let mut rows = Rows::default();
        let mut prev = head.last_hash;
        let mut position = head.next_position;
        let mut stream_heads: HashMap<&str, (Version, Position)> = HashMap::new();
        let mut results = Vec::with_capacity(requests.len());
        let mut last_meta: Option<&Arc<EventMetadata>> = None;
        for (request, planned) in requests.iter().zip(plans) {
            let firsts = match planned {
                Ok(firsts) => firsts,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let first_position = position;
            let mut versions = Vec::with_capacity(request.writes.len());
            for (write, first_version) in request.writes.iter().zip(firsts) {
                for (offset, event) in write.events.iter().enumerate() {
                    let mut recorded = RecordedEvent {
                        position,
                        stream: write.stream.clone(),
                        version: first_version + offset as u64,
                        event_type: event.event_type.clone(),
                        schema_version: event.schema_version,
                        recorded_at_micros: recorded_at,
                        metadata: event.metadata.clone(),
                        payload: event.payload.clone(),
                        hash: [0; 32],
                        last_in_commit: false,
                    };
                    recorded.hash = chain_hash(&prev, &recorded);
                    prev = recorded.hash;
                    let same_meta = last_meta.is_some_and(|m| Arc::ptr_eq(m, &event.metadata));
                    if !same_meta {
                        rows.encodings.push(metadata::encode(&event.metadata));
                        last_meta = Some(&event.metadata);
                    }
                    rows.push(
                        &recorded,
                        write.stream.as_str(),
                        &event.event_type,
                        &event.payload[..],
                    )
                    .map_err(TxError::Corrupt)?;
                    position += 1;
                }
                let last_version = first_version + write.events.len() as u64 - 1;
                versions.push(last_version);
                stream_heads.insert(write.stream.as_str(), (last_version, position - 1));
            }
            rows.end_commit();
            results.push(Ok(AppendResult {
                first_position,
                last_position: position - 1,
                versions,
                recorded_at_micros: recorded_at,
            }));
        }
        let next_position = i64::try_from(position).map_err(|_| {
            TxError::Corrupt(StoreError::InvalidRequest(
                "the log is full (position overflow)".into(),
            ))
        })?;

        // ---- 3. write, update heads, notify, commit
        let metadata: Vec<&[u8]> = rows
            .meta_index
            .iter()
            .map(|&i| rows.encodings[i].as_slice())
            .collect();
        let hashes: Vec<&[u8]> = rows.hashes.iter().map(|h| h.as_slice()).collect();
        let chunks: Vec<Chunk<'_>> = rows
            .chunks()
            .into_iter()
            .map(|range| Chunk {
                positions: &rows.positions[range.clone()],
                streams: &rows.streams[range.clone()],
                versions: &rows.versions[range.clone()],
                event_types: &rows.event_types[range.clone()],
                schema_versions: &rows.schema_versions[range.clone()],
                metadata: &metadata[range.clone()],
                payloads: &rows.payloads[range.clone()],
                hashes: &hashes[range.clone()],
                last_in_commit: &rows.last_in_commit[range],
            })
            .collect();
        let insert_params: Vec<[&(dyn ToSql + Sync); 10]> = chunks
            .iter()
            .map(|c| -> [&(dyn ToSql + Sync); 10] {
                [
                    &c.positions,
                    &c.streams,
                    &c.versions,
                    &c.event_types,
                    &c.schema_versions,
                    &recorded_at,
                    &c.metadata,
                    &c.payloads,
                    &c.hashes,
                    &c.last_in_commit,
                ]
            })
            .collect();
        let head_streams: Vec<&str> = stream_heads.keys().copied().collect();
        let head_versions: Vec<i64> = head_streams.iter().map(|s| stream_heads[s].0 as i64).collect();
        let head_positions: Vec<i64> = head_streams.iter().map(|s| stream_heads[s].1 as i64).collect();
        let last_hash: &[u8] = &prev;

        let upsert_params: [&(dyn ToSql + Sync); 3] = [&head_streams, &head_versions, &head_positions];
        let update_params: [&(dyn ToSql + Sync); 3] = [&next_position, &last_hash, &recorded_at];
        let mut steps: Vec<Step<'_>> = insert_params
            .iter()
            .map(|params| -> Step<'_> { Box::pin(pg.query(&insert, params)) })
            .collect();
        steps.push(Box::pin(pg.query(&upsert, &upsert_params)));
        steps.push(Box::pin(pg.query(&update, &update_params)));
        pipeline::run_then_commit(pg, steps)
            .await
            .map_err(|error| TxError::Db {
                error,
                committing: true,
            })?;

        // Committed: every event below `position` is now visible (earlier
        // appends committed before this one could take the lock).
        advance(&self.committed, position);
        Ok(results)
    }

    fn log_head(&self, rows: &[Row]) -> Result<LogHead, StoreError> {
        let [row] = rows else {
            return Err(self.corrupt(
                "log_head",
                0,
                format!("expected exactly one row, found {}", rows.len()),
            ));
        };
        let bad = |e: tokio_postgres::Error| self.corrupt("log_head", 0, describe(&e));
        let next_position: i64 = row.try_get(0).map_err(bad)?;
        let last_hash: &[u8] = row.try_get(1).map_err(bad)?;
        let last_recorded_at: i64 = row.try_get(2).map_err(bad)?;
        let now: i64 = row.try_get(3).map_err(bad)?;
        Ok(LogHead {
            next_position: Position::try_from(next_position).map_err(|_| {
                self.corrupt("log_head", 0, format!("negative next_position {next_position}"))
            })?,
            last_hash: ChainHash::try_from(last_hash).map_err(|_| {
                self.corrupt("log_head", 0, format!("last_hash of {} bytes", last_hash.len()))
            })?,
            last_recorded_at,
            now,
        })
    }
}

struct LogHead {
    next_position: Position,
    last_hash: ChainHash,
    last_recorded_at: i64,
    /// The database clock, in microseconds since the Unix epoch.
    now: i64,
}

/// The batch's events as columns, for UNNEST.
#[derive(Default)]
struct Rows<'a> {
    positions: Vec<i64>,
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    /// Distinct metadata encodings (consecutive events of one command share one).
    encodings: Vec<Vec<u8>>,
    /// For each event, its index in `encodings`.
    meta_index: Vec<usize>,
    payloads: Vec<&'a [u8]>,
    hashes: Vec<ChainHash>,
    /// Whether each event ends its append (see `RecordedEvent::last_in_commit`).
    last_in_commit: Vec<bool>,
}

impl<'a> Rows<'a> {
    /// Adds an event; its metadata is the last entry of `encodings`.
    fn push(
        &mut self,
        event: &RecordedEvent,
        stream: &'a str,
        event_type: &'a str,
        payload: &'a [u8],
    ) -> Result<(), StoreError> {
        let too_big = || StoreError::InvalidRequest("position or version beyond 2^63".into());
        self.positions
            .push(i64::try_from(event.position).map_err(|_| too_big())?);
        self.versions
            .push(i64::try_from(event.version).map_err(|_| too_big())?);
        self.streams.push(stream);
        self.event_types.push(event_type);
        self.schema_versions.push(i32::from(event.schema_version));
        self.meta_index.push(self.encodings.len().saturating_sub(1));
        self.payloads.push(payload);
        self.hashes.push(event.hash);
        self.last_in_commit.push(false);
        Ok(())
    }

    /// Marks the last event pushed as the end of its append.
    fn end_commit(&mut self) {
        if let Some(last) = self.last_in_commit.last_mut() {
            *last = true;
        }
    }

    /// Row ranges of at most `INSERT_CHUNK_ROWS` rows and (unless one row is
    /// larger) `INSERT_CHUNK_BYTES` bytes.
    fn chunks(&self) -> Vec<Range<usize>> {
        let mut chunks = Vec::new();
        let mut start = 0;
        let mut bytes = 0usize;
        for i in 0..self.positions.len() {
            let row = self.payloads[i].len() + self.encodings[self.meta_index[i]].len() + 128;
            if i > start && (i - start >= INSERT_CHUNK_ROWS || bytes + row > INSERT_CHUNK_BYTES) {
                chunks.push(start..i);
                start = i;
                bytes = 0;
            }
            bytes += row;
        }
        if start < self.positions.len() {
            chunks.push(start..self.positions.len());
        }
        chunks
    }
}

struct Chunk<'a> {
    positions: &'a [i64],
    streams: &'a [&'a str],
    versions: &'a [i64],
    event_types: &'a [&'a str],
    schema_versions: &'a [i32],
    metadata: &'a [&'a [u8]],
    payloads: &'a [&'a [u8]],
    hashes: &'a [&'a [u8]],
    last_in_commit: &'a [bool],
}

/// Checks `request`'s expectations in order, each against the stream as left
/// by the writes before it (`current` gives the state before the request).
/// Returns the first version of each write and the last version of every
/// stream written.
#[allow(clippy::type_complexity)]
fn plan<'r>(
    request: &'r AppendRequest,
    current: impl Fn(&str) -> Option<Version>,
) -> Result<(Vec<Version>, Vec<(&'r str, Version)>), StoreError> {
    let mut firsts = Vec::with_capacity(request.writes.len());
    let mut lasts: Vec<(&'r str, Version)> = Vec::with_capacity(request.writes.len());
    let mut index: HashMap<&'r str, usize> = HashMap::new();
    let use_index = request.writes.len() > 8;
    for write in &request.writes {
        let stream = write.stream.as_str();
        let slot = if use_index {
            index.get(stream).copied()
        } else {
            lasts.iter().position(|(s, _)| *s == stream)
        };
        let actual = slot.map(|i| lasts[i].1).or_else(|| current(stream));
        if !write.expected.is_satisfied_by(actual) {
            return Err(StoreError::WrongExpectedVersion {
                stream: write.stream.clone(),
                expected: write.expected,
                actual,
            });
        }
        let first = actual.map_or(Some(0), |v| v.checked_add(1));
        let last = first
            .and_then(|f| f.checked_add(write.events.len() as u64 - 1))
            .filter(|&l| l <= i64::MAX as u64);
        let (Some(first), Some(last)) = (first, last) else {
            return Err(StoreError::InvalidRequest(format!(
                "stream {stream}: version overflow"
            )));
        };
        firsts.push(first);
        match slot {
            Some(i) => lasts[i].1 = last,
            None => {
                if use_index {
                    index.insert(stream, lasts.len());
                }
                lasts.push((stream, last));
            }
        }
    }
    Ok((firsts, lasts))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use paycore_store::{ExpectedVersion, NewEvent, StreamWrite};

    use super::*;

    fn write(stream: &str, expected: ExpectedVersion, n: usize) -> StreamWrite {
        StreamWrite {
            stream: stream.into(),
            expected,
            events: (0..n)
                .map(|_| NewEvent {
                    event_type: "T".into(),
                    schema_version: 1,
                    metadata: Arc::new(EventMetadata::default()),
                    payload: Bytes::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn plan_checks_each_write_against_the_ones_before() {
        let request = AppendRequest {
            writes: vec![
                write("a", ExpectedVersion::Exact(4), 2),
                write("b", ExpectedVersion::NoStream, 1),
                write("a", ExpectedVersion::Exact(6), 1),
            ],
        };
        let current = |s: &str| (s == "a").then_some(4);
        let (firsts, lasts) = plan(&request, current).expect("plan");
        assert_eq!(firsts, vec![5, 0, 7]);
        assert_eq!(lasts, vec![("a", 7), ("b", 0)]);
        let stale = AppendRequest {
            writes: vec![
                write("a", ExpectedVersion::Exact(4), 1),
                write("a", ExpectedVersion::Exact(4), 1),
            ],
        };
        assert!(matches!(
            plan(&stale, current),
            Err(StoreError::WrongExpectedVersion { actual: Some(5), .. })
        ));
    }

    #[test]
    fn plan_with_many_writes_uses_the_index() {
        let mut writes: Vec<StreamWrite> = (0..20)
            .map(|i| write(&format!("s-{}", i % 5), ExpectedVersion::Any, 1))
            .collect();
        writes.push(write("s-0", ExpectedVersion::Exact(3), 1));
        let request = AppendRequest { writes };
        let (firsts, lasts) = plan(&request, |_| None).expect("plan");
        assert_eq!(&firsts[..6], &[0, 0, 0, 0, 0, 1]);
        assert_eq!(firsts[20], 4);
        assert_eq!(lasts.len(), 5);
        assert_eq!(lasts[0], ("s-0", 4));
    }

    #[test]
    fn chunks_split_by_rows_and_bytes() {
        let mut rows = Rows::default();
        let big = vec![0u8; INSERT_CHUNK_BYTES / 2];
        rows.encodings.push(vec![0]);
        let event = RecordedEvent {
            position: 0,
            stream: "s".into(),
            version: 0,
            event_type: "T".into(),
            schema_version: 1,
            recorded_at_micros: 0,
            metadata: Arc::new(EventMetadata::default()),
            payload: Bytes::new(),
            hash: [0; 32],
            last_in_commit: true,
        };
        for _ in 0..INSERT_CHUNK_ROWS + 10 {
            rows.push(&event, "s", "T", &[]).expect("push");
        }
        assert_eq!(
            rows.chunks(),
            vec![0..INSERT_CHUNK_ROWS, INSERT_CHUNK_ROWS..INSERT_CHUNK_ROWS + 10]
        );
        let mut rows = Rows::default();
        rows.encodings.push(vec![0]);
        for _ in 0..3 {
            rows.push(&event, "s", "T", &big).expect("push");
        }
        assert_eq!(rows.chunks(), vec![0..1, 1..2, 2..3]);
    }
}
