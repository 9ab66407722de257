//! [`PgSnapshots`]: aggregate snapshots in the `aggregate_snapshots` table
//! (migration 3), shared by every server on the schema.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use paycore_store::{AggregateSnapshots, ChainHash, StoreError, StoredSnapshot, StreamName, Version};
use tokio_postgres::Row;

use crate::error::describe;
use crate::store::Shared;

/// Snapshots of aggregate state in the schema's `aggregate_snapshots` table
/// (one row per stream), over the event store's connection pool: get one
/// with [`PgStore::snapshots`](crate::PgStore::snapshots).
///
/// A save is one upsert that replaces the row only with a newer
/// (format, version) — see [`StoredSnapshot::supersedes`] — so concurrent
/// saves from several servers, in any order, leave the newest. Each
/// statement may be repeated safely, so a connection found dead is replaced
/// and the statement retried once, as for reads of the log. A row that does
/// not decode (edited by hand) reads as no snapshot.
#[derive(Clone)]
pub struct PgSnapshots {
    shared: Arc<Shared>,
    sql: Arc<Statements>,
}

struct Statements {
    select: String,
    upsert: String,
    delete: String,
}

impl PgSnapshots {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let schema = shared.schema();
        let sql = Statements {
            select: format!(
                "SELECT version, event_hash, format, state FROM {schema}.aggregate_snapshots WHERE stream = $1"
            ),
            upsert: format!(
                "INSERT INTO {schema}.aggregate_snapshots AS stored (stream, version, event_hash, format, state) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, \
                 event_hash = EXCLUDED.event_hash, format = EXCLUDED.format, state = EXCLUDED.state, \
                 saved_at = now() \
                 WHERE (stored.format, stored.version) < (EXCLUDED.format, EXCLUDED.version)"
            ),
            delete: format!("DELETE FROM {schema}.aggregate_snapshots WHERE stream = $1"),
        };
        Self {
            shared,
            sql: Arc::new(sql),
        }
    }
}

impl fmt::Debug for PgSnapshots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSnapshots")
            .field("schema", &self.shared.schema())
            .finish()
    }
}

/// The snapshot in `row`, or why it does not decode.
fn decode(row: &Row) -> Result<StoredSnapshot, String> {
    let version: i64 = row.try_get(0).map_err(|e| describe(&e))?;
    let event_hash: &[u8] = row.try_get(1).map_err(|e| describe(&e))?;
    let format: i64 = row.try_get(2).map_err(|e| describe(&e))?;
    let state: &[u8] = row.try_get(3).map_err(|e| describe(&e))?;
    Ok(StoredSnapshot {
        version: Version::try_from(version).map_err(|_| format!("negative version {version}"))?,
        event_hash: ChainHash::try_from(event_hash)
            .map_err(|_| format!("event hash of {} bytes", event_hash.len()))?,
        format: u32::try_from(format).map_err(|_| format!("format {format} is not a u32"))?,
        state: Bytes::copy_from_slice(state),
    })
}

#[async_trait::async_trait]
impl AggregateSnapshots for PgSnapshots {
    async fn load(&self, stream: &StreamName) -> Result<Option<StoredSnapshot>, StoreError> {
        let rows = self
            .shared
            .run(
                "reading an aggregate snapshot",
                &self.sql.select,
                &[&stream.as_str()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        match decode(row) {
            Ok(snapshot) => Ok(Some(snapshot)),
            Err(reason) => {
                tracing::warn!(
                    schema = self.shared.schema(),
                    %stream,
                    %reason,
                    "aggregate snapshot row does not decode; ignored"
                );
                Ok(None)
            }
        }
    }

    async fn save(&self, stream: &StreamName, snapshot: StoredSnapshot) -> Result<(), StoreError> {
        let version = i64::try_from(snapshot.version).map_err(|_| {
            StoreError::InvalidRequest(format!("snapshot version {} too large", snapshot.version))
        })?;
        let format = i64::from(snapshot.format);
        self.shared
            .run(
                "saving an aggregate snapshot",
                &self.sql.upsert,
                &[
                    &stream.as_str(),
                    &version,
                    &&snapshot.event_hash[..],
                    &format,
                    &&snapshot.state[..],
                ],
            )
            .await?;
        Ok(())
    }

    async fn remove(&self, stream: &StreamName) -> Result<(), StoreError> {
        self.shared
            .run(
                "removing an aggregate snapshot",
                &self.sql.delete,
                &[&stream.as_str()],
            )
            .await?;
        Ok(())
    }
}
