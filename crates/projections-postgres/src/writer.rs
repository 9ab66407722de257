//! The writer: elected among the servers of one schema, it follows `$all`
//! and applies whole appends to the tables, each batch in one transaction
//! with the checkpoints it moves.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paycore_domain::Event;
use paycore_store::{EventStore, Position, RecordedEvent};
use paycore_store_postgres::support;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::fold::{self, Checkpoints, Decoded, PROJECTIONS};
use crate::sql::{self, Tables, position_from_sql};
use crate::{TablesError, rebuild};

/// How the writer runs.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// The PostgreSQL store's URL and schema: the tables live beside the log.
    pub url: String,
    pub schema: String,
    /// Names this server in `read_model_checkpoints.writer` and in
    /// `pg_stat_activity.application_name`, so operators see who writes.
    pub name: String,
    /// How often a server that does not write asks to become the writer
    /// (how long the tables stand still after the writer died, at most).
    pub retry_every: Duration,
    /// Events read from the log at a time (a batch still ends where an
    /// append ends, so it may hold more).
    pub batch_events: usize,
    /// Once caught up, the writer waits this long before its next batch:
    /// under steady traffic, fewer and larger transactions cost the
    /// database less than one per append (the tables are this much later).
    pub pace: Duration,
}

impl WriterOptions {
    pub fn new(url: impl Into<String>, schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: schema.into(),
            name: name.into(),
            retry_every: Duration::from_secs(1),
            batch_events: 4_096,
            pace: Duration::from_millis(100),
        }
    }
}

/// The longest pause between two attempts after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs in the background on every server of a schema; one of them at a
/// time writes (see the crate docs). Stopped by [`TablesWriter::stop`] or
/// when dropped.
#[derive(Debug)]
pub struct TablesWriter {
    stop: watch::Sender<bool>,
    writing: watch::Receiver<bool>,
    task: Option<JoinHandle<()>>,
}

impl TablesWriter {
    /// Starts taking part in the election for `options.schema`.
    pub fn spawn(store: Arc<dyn EventStore>, options: WriterOptions) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (writing_tx, writing) = watch::channel(false);
        let task = tokio::spawn(run(store, options, stopped, writing_tx));
        Self {
            stop,
            writing,
            task: Some(task),
        }
    }

    /// Whether this server is the writer now.
    pub fn is_writing(&self) -> bool {
        *self.writing.borrow()
    }

    /// Follows whether this server is the writer.
    pub fn writing(&self) -> watch::Receiver<bool> {
        self.writing.clone()
    }

    /// Stops writing (a transaction in flight rolls back) and leaves the
    /// election; another server takes over within its retry interval.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TablesWriter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    store: Arc<dyn EventStore>,
    options: WriterOptions,
    mut stop: watch::Receiver<bool>,
    writing: watch::Sender<bool>,
) {
    let mut backoff = options.retry_every;
    loop {
        let ended = tokio::select! {
            ended = session(store.as_ref(), &options, &writing) => ended,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let was_writing = writing.send_replace(false);
        let error = match ended {
            Ok(never) => match never {},
            Err(error) => error,
        };
        match error {
            TablesError::StoreClosed => return,
            TablesError::Fenced { projection } => {
                // An operator asked for a rebuild, or another writer moved on.
                tracing::info!(
                    projection,
                    "read-model tables' checkpoint moved under this writer; starting over"
                );
                backoff = options.retry_every;
            }
            error @ (TablesError::Decode { .. } | TablesError::Corrupt { .. }) => {
                tracing::error!(
                    %error,
                    "the read-model tables stopped here; once the cause is fixed, \
                     `paycore projections rebuild --tables` writes them again"
                );
            }
            error if was_writing => {
                tracing::warn!(%error, "stopped writing the read-model tables; trying again");
                backoff = options.retry_every;
            }
            error => tracing::warn!(%error, "cannot take part in the read-model tables' election"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: wait to be elected, then write until something
/// fails. The advisory lock is the connection's: if this server dies, or
/// its connection does, PostgreSQL releases it and rolls back what it had
/// not committed, and another server takes over.
async fn session(
    store: &dyn EventStore,
    options: &WriterOptions,
    writing: &watch::Sender<bool>,
) -> Result<Infallible, TablesError> {
    let name = format!("paycore read-model writer: {}", options.name);
    let config =
        support::config(&options.url, Duration::from_secs(5), Some(&name)).map_err(TablesError::Config)?;
    let (mut client, connection) = config.connect().await?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %support::describe(&error), "read-model writer's connection ended");
        }
    }));
    let lock = election_key(&options.schema);
    loop {
        let elected: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&lock])
            .await?
            .try_get(0)?;
        if elected {
            break;
        }
        tokio::time::sleep(options.retry_every).await;
    }
    writing.send_replace(true);
    tracing::info!(schema = %options.schema, "this server writes the read-model tables");
    let mut progress = prepare(&mut client, options).await?;
    let channel = crate::progress::channel(&options.schema);
    let mut committed = store.committed();
    let mut requests_read = Instant::now();
    loop {
        if requests_read.elapsed() >= options.retry_every {
            take_rebuilds(&mut client, options, &mut progress).await?;
            requests_read = Instant::now();
        }
        let head = *committed.borrow_and_update();
        let served = Tables::served(&options.schema);
        let frozen = progress.frozen_lowest();
        let notify = Notify {
            channel: &channel,
            frozen,
        };
        let applied = apply_next(
            &mut client,
            store,
            options,
            served,
            &mut progress.served,
            Some(notify),
        )
        .await?;
        let rebuilt = match progress.rebuilding() {
            true => {
                let tables = Tables::rebuild(&options.schema);
                apply_next(&mut client, store, options, tables, &mut progress.rebuild, None).await?
            }
            false => 0,
        };
        swap_caught_up(&mut client, options, &mut progress).await?;
        let behind = head.saturating_sub(progress.served_lowest());
        metrics::gauge!(crate::LAG_EVENTS).set(behind as f64);
        if applied == 0 && rebuilt == 0 {
            // Nothing whole to apply: wait for the log, or for the next
            // look at the rebuilds asked for.
            let _ = tokio::time::timeout(options.retry_every, committed.changed()).await;
            if committed.has_changed().is_err() {
                return Err(TablesError::StoreClosed);
            }
        } else if applied < options.batch_events && !progress.rebuilding() {
            tokio::time::sleep(options.pace).await;
        }
    }
}

/// Where the writer is, per projection (in [`PROJECTIONS`]' order).
#[derive(Debug)]
struct Progress {
    /// The served tables' checkpoints as the fold reads them:
    /// `Position::MAX` where this writer does not write the served tables
    /// (a newer version's, or an older one's until its rebuild is in).
    served: Checkpoints,
    /// An older version's checkpoint, left as it is until the rebuild
    /// replaces it.
    frozen: [Option<Position>; PROJECTIONS.len()],
    /// Written by a newer version: never touched, not even rebuilt.
    newer: [bool; PROJECTIONS.len()],
    /// The rebuild tables' checkpoints; `Position::MAX` where none runs.
    rebuild: Checkpoints,
}

impl Progress {
    fn rebuilding(&self) -> bool {
        self.rebuild.iter().any(|&at| at != Position::MAX)
    }

    fn served_lowest(&self) -> Position {
        let lowest = self.served.iter().copied().min().unwrap_or(Position::MAX);
        lowest.min(self.frozen_lowest())
    }

    /// The lowest checkpoint of the older versions' rows standing still.
    fn frozen_lowest(&self) -> Position {
        self.frozen
            .iter()
            .flatten()
            .copied()
            .min()
            .unwrap_or(Position::MAX)
    }
}

/// Who hears of the served tables' progress (see `progress.rs`).
struct Notify<'a> {
    channel: &'a str,
    /// The lowest checkpoint of rows this writer leaves standing still.
    frozen: Position,
}

/// Applies the next whole appends after `checkpoints` to `tables`, in one
/// transaction with the checkpoints; returns the events applied (0 when
/// there is nothing whole to apply yet). With `notify`, the transaction
/// also notifies the lowest served checkpoint it leaves, delivered once it
/// commits.
async fn apply_next(
    client: &mut Client,
    store: &dyn EventStore,
    options: &WriterOptions,
    tables: Tables<'_>,
    checkpoints: &mut Checkpoints,
    notify: Option<Notify<'_>>,
) -> Result<usize, TablesError> {
    let from = checkpoints.iter().copied().min().unwrap_or(Position::MAX);
    if *store.committed().borrow() <= from {
        return Ok(0);
    }
    let events = whole_appends(store, from, options.batch_events).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let decoded = decode(&events)?;
    let to = fold::advanced(checkpoints, &decoded);
    let transaction = client.transaction().await?;
    let loaded = sql::load(&transaction, tables, &fold::rows_read(&decoded, checkpoints)).await?;
    let changes = fold::fold(&decoded, loaded, checkpoints);
    let lowest = notify
        .as_ref()
        .map(|notify| {
            to.iter()
                .copied()
                .min()
                .unwrap_or(Position::MAX)
                .min(notify.frozen)
        })
        .filter(|&lowest| lowest != Position::MAX);
    let notified = async {
        match (&notify, lowest) {
            (Some(notify), Some(lowest)) => {
                let payload = lowest.to_string();
                transaction
                    .execute("SELECT pg_notify($1, $2)", &[&notify.channel, &payload])
                    .await?;
                Ok(())
            }
            _ => Ok::<_, TablesError>(()),
        }
    };
    // Sent with the writes (pipelined); delivered only if the transaction
    // commits.
    futures::future::try_join(
        sql::write(&transaction, tables, &changes, (checkpoints, &to), &options.name),
        notified,
    )
    .await?;
    transaction.commit().await?;
    *checkpoints = to;
    Ok(events.len())
}

/// Swaps in every rebuild that reached the served checkpoint it replaces.
async fn swap_caught_up(
    client: &mut Client,
    options: &WriterOptions,
    progress: &mut Progress,
) -> Result<(), TablesError> {
    for (index, projection) in PROJECTIONS.iter().enumerate() {
        let rebuilt_to = progress.rebuild[index];
        let served_at = progress.frozen[index].unwrap_or(progress.served[index]);
        if rebuilt_to == Position::MAX || rebuilt_to < served_at {
            continue;
        }
        rebuild::swap(
            client,
            &options.schema,
            projection,
            (served_at, rebuilt_to),
            &options.name,
        )
        .await?;
        progress.served[index] = rebuilt_to;
        progress.frozen[index] = None;
        progress.rebuild[index] = Position::MAX;
    }
    Ok(())
}

/// Starts, resumes or calls off rebuilds as `read_model_rebuilds` asks.
async fn take_rebuilds(
    client: &mut Client,
    options: &WriterOptions,
    progress: &mut Progress,
) -> Result<(), TablesError> {
    let schema = &options.schema;
    let asked = rebuild::requested(&*client, schema).await?;
    for (index, projection) in PROJECTIONS.iter().enumerate() {
        let row = asked.iter().find(|row| row.projection == projection.name);
        let running = progress.rebuild[index];
        match row {
            _ if progress.newer[index] => {}
            None if progress.frozen[index].is_some() => {
                // An older version's rows wait for a rebuild: ask for one.
                rebuild::start(client, schema, projection, &options.name).await?;
                progress.rebuild[index] = 0;
            }
            None => {
                if running != Position::MAX {
                    // Called off (the row deleted): the served tables stay.
                    rebuild::drop_tables(client, schema, projection).await?;
                    progress.rebuild[index] = Position::MAX;
                }
            }
            Some(row) if row.version > projection.version => {
                // A newer server asked; leave it to the newer servers.
                progress.rebuild[index] = Position::MAX;
            }
            Some(row) if row.version == projection.version && row.next_position == running => {}
            Some(row)
                if row.version == projection.version
                    && row.next_position > 0
                    && running == Position::MAX
                    && rebuild::tables_exist(&*client, schema, projection).await? =>
            {
                tracing::info!(
                    projection = projection.name,
                    from = row.next_position,
                    "resuming the rebuild of the read-model tables"
                );
                progress.rebuild[index] = row.next_position;
            }
            Some(_) => {
                // Asked for (again), of an older version, or its tables
                // are gone: from the start.
                rebuild::start(client, schema, projection, &options.name).await?;
                progress.rebuild[index] = 0;
            }
        }
    }
    Ok(())
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The advisory lock of a schema's writer: advisory locks are
/// database-wide, and several schemas (stores) may share a database.
fn election_key(schema: &str) -> i64 {
    let digest = Sha256::digest(format!("paycore read-model tables of {schema}"));
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(key)
}

/// Each projection's checkpoint and the rebuilds to run. A projection
/// written by a newer version is left to the newer servers: this one never
/// writes it (it would undo their rows). One an older version wrote keeps
/// its rows, as they are, until a rebuild at this version replaces them;
/// one never written starts empty at position 0.
async fn prepare(client: &mut Client, options: &WriterOptions) -> Result<Progress, TablesError> {
    let schema = &options.schema;
    let stored = client
        .query(
            &format!("SELECT projection, version, next_position FROM {schema}.read_model_checkpoints"),
            &[],
        )
        .await?;
    let stored = stored
        .iter()
        .map(|row| -> Result<(String, i32, i64), tokio_postgres::Error> {
            Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut progress = Progress {
        served: [0; PROJECTIONS.len()],
        frozen: [None; PROJECTIONS.len()],
        newer: [false; PROJECTIONS.len()],
        rebuild: [Position::MAX; PROJECTIONS.len()],
    };
    for (index, projection) in PROJECTIONS.iter().enumerate() {
        let found = stored
            .iter()
            .find(|(name, _, _)| name == projection.name)
            .cloned();
        progress.served[index] = match found {
            Some((_, version, next)) if version == projection.version => position_from_sql(next),
            Some((_, version, _)) if version > projection.version => {
                tracing::warn!(
                    projection = projection.name,
                    stored = version,
                    known = projection.version,
                    "a newer paycore writes this read-model table; this server leaves it alone"
                );
                progress.newer[index] = true;
                Position::MAX
            }
            Some((_, version, next)) if next > 0 => {
                tracing::info!(
                    projection = projection.name,
                    from = version,
                    to = projection.version,
                    "read-model tables of an older version: served as they are until rebuilt"
                );
                progress.frozen[index] = Some(position_from_sql(next));
                Position::MAX
            }
            found => {
                reset(client, options, projection, found.map(|(_, version, _)| version)).await?;
                0
            }
        };
    }
    take_rebuilds(client, options, &mut progress).await?;
    Ok(progress)
}

/// Empties a projection's tables and sets its checkpoint to 0 at this
/// version, in one transaction.
async fn reset(
    client: &mut Client,
    options: &WriterOptions,
    projection: &fold::Projection,
    from_version: Option<i32>,
) -> Result<(), TablesError> {
    let schema = &options.schema;
    let transaction = client.transaction().await?;
    for table in projection.tables {
        transaction
            .execute(&format!("DELETE FROM {schema}.{table}"), &[])
            .await?;
    }
    transaction
        .execute(
            &format!(
                "INSERT INTO {schema}.read_model_checkpoints (projection, version, next_position, writer) \
                 VALUES ($1, $2, 0, $3) ON CONFLICT (projection) DO UPDATE \
                 SET version = EXCLUDED.version, next_position = 0, writer = EXCLUDED.writer, updated_at = now()"
            ),
            &[&projection.name, &projection.version, &options.name],
        )
        .await?;
    transaction.commit().await?;
    if let Some(version) = from_version {
        tracing::info!(
            projection = projection.name,
            from = version,
            to = projection.version,
            "read-model table of another version emptied; writing it again from the log"
        );
    }
    Ok(())
}

/// Events from `from` up to the end of the last whole append among the
/// next `batch` (more when one append is longer than that).
async fn whole_appends(
    store: &dyn EventStore,
    from: Position,
    batch: usize,
) -> Result<Vec<RecordedEvent>, TablesError> {
    let mut wanted = batch.max(1);
    loop {
        let mut events = store.read_all(from, wanted).await?;
        let read = events.len();
        if let Some(last) = events.iter().rposition(|event| event.last_in_commit) {
            events.truncate(last + 1);
            return Ok(events);
        }
        if read < wanted {
            // The log ends inside an append: nothing whole to apply yet.
            return Ok(Vec::new());
        }
        wanted = wanted.saturating_mul(2);
    }
}

fn decode(events: &[RecordedEvent]) -> Result<Vec<Decoded>, TablesError> {
    events
        .iter()
        .map(|recorded| {
            let event = Event::decode(&recorded.event_type, recorded.schema_version, &recorded.payload)
                .map_err(|error| TablesError::Decode {
                    position: recorded.position,
                    reason: error.to_string(),
                })?;
            Ok(Decoded {
                position: recorded.position,
                stream: recorded.stream.as_str().to_owned(),
                version: recorded.version,
                event,
            })
        })
        .collect()
}
