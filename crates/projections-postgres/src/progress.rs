//! How far the read-model tables are, seen from any server: read-your-writes
//! for a server that answers queries from the tables.
//!
//! The writer `NOTIFY`s `<schema>_read_models` in each batch's transaction
//! with the lowest checkpoint of the served tables, so the notification is
//! delivered after the commit, once the rows are visible. One connection
//! per server `LISTEN`s, and polls `read_model_checkpoints` every
//! [`POLL_EVERY`] as a fallback (a notification lost while reconnecting, a
//! writer of an older build that does not notify): a command's answer then
//! waits at most that much longer. While the database cannot be reached
//! the task reconnects with a backoff of 100 ms doubling to 2 s; waiters
//! wait meanwhile (each bounded by the caller's read-your-writes timeout).

use std::time::Duration;

use paycore_store::Position;
use paycore_store_postgres::support::{self, Single};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fold::PROJECTIONS;

/// How often the checkpoints are read when no notification came.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// The channel the writer notifies after each batch: `<schema>_read_models`
/// (at most 63 bytes with the schema names `PgOptions` accepts).
pub(crate) fn channel(schema: &str) -> String {
    format!("{schema}_read_models")
}

/// Follows the lowest checkpoint of the served read-model tables: every
/// event below it is in every table. Stops when dropped.
#[derive(Debug)]
pub struct TablesProgress {
    applied: watch::Receiver<Position>,
    task: JoinHandle<()>,
}

impl TablesProgress {
    /// Starts following the tables of `schema`; the first reading comes
    /// within a poll interval of the database answering.
    pub fn spawn(url: &str, schema: &str, name: &str) -> Result<Self, String> {
        if !support::valid_schema(schema) {
            return Err(format!("invalid PostgreSQL schema name {schema:?}"));
        }
        let endpoint = support::config(
            url,
            Duration::from_secs(5),
            Some(&format!("paycore read-model reader: {name}")),
        )?;
        let (sender, applied) = watch::channel(0);
        let follower = Follower {
            endpoint,
            channel: channel(schema),
            checkpoints: format!(
                "SELECT count(*), coalesce(min(next_position), 0) FROM {schema}.read_model_checkpoints"
            ),
            applied: sender,
        };
        Ok(Self {
            applied,
            task: tokio::spawn(follower.run()),
        })
    }

    /// Events below this position are in every served table.
    pub fn applied(&self) -> Position {
        *self.applied.borrow()
    }

    /// Returns once every served table holds the event at `position` (and
    /// all before it). Unbounded: callers bound it with their timeout.
    pub async fn wait_for(&self, position: Position) {
        let mut applied = self.applied.clone();
        // An Err means the follower stopped: the caller's timeout decides.
        if applied.wait_for(|applied| *applied > position).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for TablesProgress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Follower {
    endpoint: support::Endpoint,
    channel: String,
    checkpoints: String,
    applied: watch::Sender<Position>,
}

impl Follower {
    async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        let mut failing = false;
        loop {
            let error = match support::open(&self.endpoint, Duration::from_secs(10)).await {
                Ok(connection) => {
                    if failing {
                        tracing::info!("read-model tables' progress: connected again");
                    }
                    failing = false;
                    backoff = Duration::from_millis(100);
                    self.follow(connection).await
                }
                Err(error) => error,
            };
            if !failing {
                tracing::warn!(%error, "read-model tables' progress: lost the database; reconnecting");
                failing = true;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Listens and polls until the connection fails; answers why.
    async fn follow(&self, mut connection: Single) -> String {
        if let Err(error) = connection
            .client
            .batch_execute(&format!("LISTEN {}", self.channel))
            .await
        {
            return support::describe(&error);
        }
        let poll = match connection.client.prepare(&self.checkpoints).await {
            Ok(statement) => statement,
            Err(error) => return support::describe(&error),
        };
        let mut ticker = tokio::time::interval(POLL_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                notification = connection.notifications.recv() => match notification {
                    Some(notification) => match notification.payload().parse::<Position>() {
                        Ok(lowest) => self.advance(lowest),
                        Err(_) => tracing::warn!(
                            payload = notification.payload(),
                            "ignoring a malformed read-model tables notification"
                        ),
                    },
                    None => return "connection closed".to_owned(),
                },
                _ = ticker.tick() => {
                    let polled = tokio::time::timeout(
                        Duration::from_secs(10),
                        connection.client.query_one(&poll, &[]),
                    );
                    match polled.await {
                        Ok(Ok(row)) => {
                            let read = row
                                .try_get::<_, i64>(0)
                                .and_then(|count| Ok((count, row.try_get::<_, i64>(1)?)));
                            match read {
                                // A projection never written has no row yet:
                                // nothing is in every table.
                                Ok((count, _)) if count < PROJECTIONS.len() as i64 => {}
                                Ok((_, lowest)) => self.advance(Position::try_from(lowest).unwrap_or(0)),
                                Err(error) => return support::describe(&error),
                            }
                        }
                        Ok(Err(error)) => return support::describe(&error),
                        Err(_) => return "no answer to the checkpoints' poll within 10 s".to_owned(),
                    }
                }
            }
        }
    }

    /// Raises the watermark (never lowers it: a rebuild's swap moves a
    /// checkpoint only forwards, and a late notification may carry an
    /// older value).
    fn advance(&self, lowest: Position) {
        self.applied.send_if_modified(|current| {
            if lowest > *current {
                *current = lowest;
                true
            } else {
                false
            }
        });
    }
}
