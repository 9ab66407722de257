//! Keeps `committed()` current with commits made by any server.
//!
//! One dedicated connection (outside the pool) `LISTEN`s on the schema's
//! channel; every append `NOTIFY`s it with the new log head (the next
//! position) in its transaction, so the notification is delivered only after
//! the commit, and only once the commit is visible. The same connection polls
//! the log head every `poll_interval` as a fallback: a lost notification (the
//! listener reconnecting, a notification queue overflow) delays a subscriber
//! by at most one interval while the database is reachable. While it is not,
//! the task reconnects with a backoff of 100 ms doubling to 2 s, and reads the
//! head as soon as it is back.
//!
//! Both sources report a log head, and a log head `n` is only ever visible
//! once every event below `n` is committed (see the crate docs): the
//! watermark can move straight to it.

use std::sync::Arc;
use std::time::Duration;

use paycore_store::Position;
use tokio::sync::watch;

use crate::connect::{self, Endpoint, Single};
use crate::error::describe;
use crate::sql::Sql;

/// Raises the watermark to `head` (never lowers it).
pub(crate) fn advance(committed: &watch::Sender<Position>, head: Position) {
    committed.send_if_modified(|current| {
        if head > *current {
            *current = head;
            true
        } else {
            false
        }
    });
}

pub(crate) struct Listener {
    pub config: Endpoint,
    pub sql: Arc<Sql>,
    pub committed: watch::Sender<Position>,
    pub poll_interval: Duration,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
}

impl Listener {
    /// Runs until aborted. `first` is the already listening connection that
    /// `connect` used.
    pub(crate) async fn run(self, first: Single) {
        let mut connection = Some(first);
        let mut backoff = Duration::from_millis(100);
        let mut failing = false;
        loop {
            let current = match connection.take() {
                Some(c) => c,
                None => match self.open().await {
                    Ok(c) => {
                        tracing::info!("event store listener reconnected");
                        c
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "event store listener cannot reconnect; retrying");
                            failing = true;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                },
            };
            failing = false;
            backoff = Duration::from_millis(100);
            let e = self.serve(current).await;
            tracing::warn!(error = %e, "event store listener lost its connection; reconnecting");
            tokio::time::sleep(backoff).await;
        }
    }

    async fn open(&self) -> Result<Single, String> {
        let connection = connect::open(&self.config, self.connect_timeout * 2).await?;
        listen(&connection, &self.sql).await?;
        Ok(connection)
    }

    /// Follows notifications and polls until the connection fails.
    async fn serve(&self, mut connection: Single) -> String {
        let poll = match connection.client.prepare(&self.sql.head_position).await {
            Ok(statement) => statement,
            Err(e) => return describe(&e),
        };
        let mut ticker = tokio::time::interval(self.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                notification = connection.notifications.recv() => match notification {
                    Some(n) => match n.payload().parse::<Position>() {
                        Ok(head) => advance(&self.committed, head),
                        Err(_) => tracing::warn!(payload = n.payload(), "ignoring a malformed log head notification"),
                    },
                    None => return "connection closed".to_owned(),
                },
                _ = ticker.tick() => {
                    let polled = tokio::time::timeout(
                        self.operation_timeout,
                        connection.client.query_one(&poll, &[]),
                    );
                    match polled.await {
                        Ok(Ok(row)) => match row.try_get::<_, i64>(0) {
                            Ok(head) => advance(&self.committed, Position::try_from(head).unwrap_or(0)),
                            Err(e) => return describe(&e),
                        },
                        Ok(Err(e)) => return describe(&e),
                        Err(_) => return format!("no answer to the head poll within {:?}", self.operation_timeout),
                    }
                }
            }
        }
    }
}

/// `LISTEN`s on the schema's channel.
pub(crate) async fn listen(connection: &Single, sql: &Sql) -> Result<(), String> {
    connection
        .client
        .batch_execute(&format!("LISTEN {}", sql.channel))
        .await
        .map_err(|e| format!("LISTEN {}: {}", sql.channel, describe(&e)))
}
