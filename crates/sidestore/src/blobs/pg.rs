//! [`PgBlobs`]: side storage in PostgreSQL, for servers that share a
//! database.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use paycore_store_postgres::support::Endpoint;
use paycore_store_postgres::support::{describe, is_connection_error, valid_schema};

use super::{Blobs, existing_must_match};
use crate::{SideStoreError, check_key};

/// Time allowed to open one connection, unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one operation, waiting for a pooled connection included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Side storage is used far less than the log: a small pool is plenty.
const POOL_SIZE: usize = 4;

/// Side storage in the `side_blobs` table of a paycore PostgreSQL schema
/// (created by migration 2 of `paycore-store-postgres`, `paycore db
/// migrate`), so that every server on the database sees the same entries.
///
/// A put is `INSERT … ON CONFLICT DO NOTHING`: durable when it returns (with
/// PostgreSQL's default `synchronous_commit`), and never replaces an entry;
/// if the key was taken, the stored content is read back and compared. Any
/// failure to talk to the database — unreachable, a lost connection, a
/// timeout (30 s per operation) — is [`SideStoreError::Unavailable`]; the
/// connection involved is discarded, not returned to the pool, so after a
/// database restart at most the operations on stale connections fail and
/// the next ones connect afresh (nothing is retried here: the caller
/// decides). TLS is not
/// supported (`NoTls`), as in the event store. Messages name the server as
/// `host:port/db as user`, never with the password.
pub struct PgBlobs {
    pool: Pool,
    schema: String,
    target: String,
    sql: Statements,
}

/// The statements, with the (validated) schema spliced in.
struct Statements {
    insert: String,
    select: String,
    delete: String,
}

impl Statements {
    fn new(schema: &str) -> Self {
        Self {
            insert: format!(
                "INSERT INTO {schema}.side_blobs (namespace, key, content) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, key) DO NOTHING"
            ),
            select: format!("SELECT content FROM {schema}.side_blobs WHERE namespace = $1 AND key = $2"),
            delete: format!("DELETE FROM {schema}.side_blobs WHERE namespace = $1 AND key = $2"),
        }
    }
}

impl PgBlobs {
    /// Connects to the database at `url` (a `postgres://user@host:port/db`
    /// URL or `key=value` pairs) and checks that `schema` has the
    /// `side_blobs` table.
    ///
    /// Errors: [`SideStoreError::Unavailable`] if the URL does not parse, the
    /// schema name is invalid (1–48 characters `a-z 0-9 _`, not starting with
    /// a digit or `pg_`), the database cannot be reached within the connect
    /// timeout, or the table is missing (run `paycore db migrate`).
    pub async fn connect(url: &str, schema: &str) -> Result<PgBlobs, SideStoreError> {
        if !valid_schema(schema) {
            return Err(SideStoreError::Unavailable(format!(
                "invalid schema name {schema:?}: use 1 to 48 characters a-z, 0-9 and _, \
                 not starting with a digit or pg_"
            )));
        }
        let config = config(url)?;
        let target = config.target();
        let blobs = PgBlobs {
            pool: pool(config)?,
            schema: schema.to_owned(),
            target,
            sql: Statements::new(schema),
        };
        blobs.check_table().await?;
        Ok(blobs)
    }

    /// The schema holding `side_blobs`.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Fails with a message saying what to do if `side_blobs` is missing.
    async fn check_table(&self) -> Result<(), SideStoreError> {
        let table = format!("{}.side_blobs", self.schema);
        let exists: bool = self
            .run("looking for side_blobs", async |client: &Object| {
                client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                    .await?
                    .try_get(0)
            })
            .await?;
        if exists {
            Ok(())
        } else {
            Err(SideStoreError::Unavailable(format!(
                "table {table} does not exist at {}: run `paycore db migrate` first",
                self.target
            )))
        }
    }

    /// Runs `work` on a pooled connection, getting the connection included,
    /// within [`OPERATION_TIMEOUT`]. After a timeout or a connection failure
    /// the connection is discarded, not returned to the pool: closing it
    /// makes the server roll back whatever was unfinished.
    async fn run<T>(
        &self,
        doing: &str,
        work: impl AsyncFnOnce(&Object) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, SideStoreError> {
        let deadline = tokio::time::Instant::now() + OPERATION_TIMEOUT;
        let late = || SideStoreError::Unavailable(format!("{doing}: no answer within {OPERATION_TIMEOUT:?}"));
        let client = match tokio::time::timeout_at(deadline, self.pool.get()).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                return Err(SideStoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL at {}: {}",
                    self.target,
                    pool_error(&e)
                )));
            }
            Err(_) => return Err(late()),
        };
        match tokio::time::timeout_at(deadline, work(&client)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if is_connection_error(&e) {
                    drop(Object::take(client));
                }
                Err(SideStoreError::Unavailable(format!(
                    "{doing} in schema {}: {}",
                    self.schema,
                    describe(&e)
                )))
            }
            Err(_) => {
                drop(Object::take(client));
                Err(late())
            }
        }
    }

    async fn stored(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, SideStoreError> {
        let row = self
            .run("reading a side-storage entry", async |client: &Object| {
                let statement = client.prepare_cached(&self.sql.select).await?;
                client.query_opt(&statement, &[&namespace, &key]).await
            })
            .await?;
        row.map(|row| row.try_get::<_, Vec<u8>>(0))
            .transpose()
            .map_err(|e| SideStoreError::Corrupt {
                namespace: namespace.to_owned(),
                key: key.to_owned(),
                reason: describe(&e),
            })
    }
}

impl fmt::Debug for PgBlobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBlobs")
            .field("target", &self.target)
            .field("schema", &self.schema)
            .finish()
    }
}

#[async_trait]
impl Blobs for PgBlobs {
    async fn put(&self, namespace: &str, key: &str, content: &[u8]) -> Result<(), SideStoreError> {
        check_key(namespace, key)?;
        // A second attempt only if the key was taken and then deleted between
        // our insert and our read: then it is free once more.
        for _ in 0..2 {
            let inserted = self
                .run("writing a side-storage entry", async |client: &Object| {
                    let statement = client.prepare_cached(&self.sql.insert).await?;
                    client.execute(&statement, &[&namespace, &key, &content]).await
                })
                .await?;
            if inserted == 1 {
                return Ok(());
            }
            if let Some(existing) = self.stored(namespace, key).await? {
                return existing_must_match(namespace, key, &existing, content);
            }
        }
        Err(SideStoreError::conflict(namespace, key))
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, SideStoreError> {
        check_key(namespace, key)?;
        self.stored(namespace, key).await
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<(), SideStoreError> {
        check_key(namespace, key)?;
        self.run("deleting a side-storage entry", async |client: &Object| {
            let statement = client.prepare_cached(&self.sql.delete).await?;
            client.execute(&statement, &[&namespace, &key]).await
        })
        .await?;
        Ok(())
    }
}

/// Parses `url` with the event store's connection defaults.
fn config(url: &str) -> Result<Endpoint, SideStoreError> {
    paycore_store_postgres::support::config(url, CONNECT_TIMEOUT, Some("paycore-sidestore"))
        .map_err(SideStoreError::Unavailable)
}

fn pool(endpoint: Endpoint) -> Result<Pool, SideStoreError> {
    let manager = Manager::from_config(
        endpoint.config().clone(),
        endpoint.tls(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(OPERATION_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT * 2))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| SideStoreError::Unavailable(format!("building the connection pool: {e}")))
}

fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_no_password() -> Result<(), SideStoreError> {
        let config = config("postgres://alice:s3cret@db.internal:6543/payments")?;
        let target = config.target();
        assert_eq!(target, "db.internal:6543/payments as alice");
        assert!(!format!("{:?}", pool(config)?).contains("s3cret"));
        Ok(())
    }

    #[test]
    fn schema_names() {
        assert!(valid_schema("paycore_test_0a"));
        for bad in ["", "1a", "pg_x", "A", "a;b", "a-b", &"x".repeat(49)] {
            assert!(!valid_schema(bad), "{bad}");
        }
    }
}
