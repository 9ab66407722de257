//! On PostgreSQL several servers share one log; one relay publishes it. The
//! relay of each server that has `--relay-nats` asks for an advisory lock on
//! a connection of its own, as the read-model tables' writer does: the lock
//! is the connection's, so it goes when that server or its connection dies,
//! and another server, asking every `retry_every`, takes over from the
//! stream's last message. Two relays publishing at once would still never
//! corrupt the stream (every message says which sequence must precede it),
//! but they would keep rejecting each other's messages.
//!
//! The open banking sync schedule is elected the same way, under a name of
//! its own (`paycore serve` elects it as `aggregation-sync`), so one server
//! of a deployment calls the banks on schedule.

use std::time::Duration;

use paycore_store_postgres::support;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::error::RelayError;

/// Which election a relay takes part in.
#[derive(Clone, Debug)]
pub enum Election {
    /// The only relay of its log (the embedded log is held by one server).
    Alone,
    /// One of the servers of a PostgreSQL store; `name` says which in
    /// `pg_stat_activity.application_name`.
    Postgres {
        url: String,
        schema: String,
        name: String,
    },
}

/// The won election: holding it holds the lock.
/// Held while elected: the lock lives as long as its connection.
pub struct Lease {
    _client: Option<tokio_postgres::Client>,
    connection: Option<JoinHandle<()>>,
}

impl Lease {
    /// Resolves when the lock is lost (its connection ended); never for
    /// [`Election::Alone`].
    pub async fn lost(&mut self) {
        match &mut self.connection {
            Some(connection) => {
                let _ = connection.await;
            }
            None => std::future::pending().await,
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("held_by_connection", &self.connection.is_some())
            .finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.abort();
        }
    }
}

/// Waits until this relay is elected for `stream` (the JetStream stream
/// name: relays of one store into different streams do not exclude each
/// other). `waiting` is called once when another relay holds the lock.
pub async fn elect(
    election: &Election,
    stream: &str,
    retry_every: Duration,
    mut waiting: impl FnMut(),
) -> Result<Lease, RelayError> {
    let Election::Postgres { url, schema, name } = election else {
        return Ok(Lease {
            _client: None,
            connection: None,
        });
    };
    let application = format!("paycore relay: {name}");
    let config =
        support::config(url, Duration::from_secs(5), Some(&application)).map_err(RelayError::Election)?;
    let (client, connection) = config
        .connect()
        .await
        .map_err(|error| RelayError::Election(support::describe(&error)))?;
    let mut lease = Lease {
        _client: None,
        connection: Some(tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %support::describe(&error), "relay's election connection ended");
            }
        })),
    };
    let key = election_key(schema, stream);
    let mut told = false;
    loop {
        let elected: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|error| RelayError::Election(support::describe(&error)))?;
        if elected {
            lease._client = Some(client);
            return Ok(lease);
        }
        if !told {
            waiting();
            told = true;
        }
        tokio::select! {
            () = tokio::time::sleep(retry_every) => {}
            () = lease.lost() => return Err(RelayError::ElectionLost),
        }
    }
}

/// The advisory lock of one store's relay into one stream: advisory locks
/// are database-wide, and several schemas (stores) may share a database.
fn election_key(schema: &str, stream: &str) -> i64 {
    let digest = Sha256::digest(format!("paycore relay of {schema} into {stream}"));
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_schema_and_stream_and_from_the_tables_writer() {
        let key = election_key("paycore", "PAYCORE");
        assert_ne!(key, election_key("other", "PAYCORE"));
        assert_ne!(key, election_key("paycore", "OTHER"));
        let digest = Sha256::digest("paycore read-model tables of paycore");
        let mut tables = [0u8; 8];
        tables.copy_from_slice(&digest[..8]);
        assert_ne!(key, i64::from_be_bytes(tables));
    }
}
