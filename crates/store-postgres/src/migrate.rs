//! Versioned schema migrations, run by paycore itself (`paycore db migrate`).
//!
//! The SQL files under `migrations/` are embedded in the binary. Each is
//! applied in its own transaction, together with its row in
//! `<schema>.schema_migrations (version, name, applied_at)`, under a
//! transaction-scoped advisory lock per schema, so two servers migrating at
//! once apply each migration exactly once. Running `migrate` again is a no-op.
//! A schema whose recorded version is newer than this binary knows is never
//! touched: [`MigrateError::SchemaTooNew`]. [`PgStore::connect`] refuses a
//! schema that is not exactly at [`LATEST_SCHEMA_VERSION`].
//!
//! [`PgStore::connect`]: crate::PgStore::connect

use std::time::Duration;

use paycore_store::StoreError;
use tokio_postgres::Client;

use crate::connect::{self, Single};
use crate::error::describe;
use crate::options::valid_schema;

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration this binary knows, in order.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial: events, stream_heads, log_head",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "side storage: side_blobs",
        sql: include_str!("../migrations/0002_side_storage.sql"),
    },
    Migration {
        version: 3,
        name: "aggregate snapshots: aggregate_snapshots",
        sql: include_str!("../migrations/0003_aggregate_snapshots.sql"),
    },
    Migration {
        version: 4,
        name: "commit boundaries: events.last_in_commit",
        sql: include_str!("../migrations/0004_commit_boundaries.sql"),
    },
    Migration {
        version: 5,
        name: "read-model tables: projects, customers, accounts, transactions, transfers, resources, fx_rates",
        sql: include_str!("../migrations/0005_read_model_tables.sql"),
    },
    Migration {
        version: 6,
        name: "online rebuilds of the read-model tables: read_model_rebuilds",
        sql: include_str!("../migrations/0006_read_model_rebuilds.sql"),
    },
    Migration {
        version: 7,
        name: "two-phase transfers in the read-model tables: accounts' pending amounts, transfers' status",
        sql: include_str!("../migrations/0007_read_model_two_phase.sql"),
    },
    Migration {
        version: 8,
        name: "a card payin's refunds in the read-model tables: resources.card_payin_id",
        sql: include_str!("../migrations/0008_read_model_payin_refunds.sql"),
    },
];

/// The schema version this binary reads and writes.
pub const LATEST_SCHEMA_VERSION: i32 = 8;

const _: () = assert!(MIGRATIONS[MIGRATIONS.len() - 1].version == LATEST_SCHEMA_VERSION);

/// What [`migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    pub schema: String,
    /// The schema's version before (0: no paycore tables yet).
    pub from_version: i32,
    /// The schema's version now (= [`LATEST_SCHEMA_VERSION`]).
    pub to_version: i32,
    /// The versions applied by this run, in order (empty: it was up to date).
    pub applied: Vec<i32>,
}

/// Why the schema could not be migrated, or cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "invalid schema name {0:?}: use 1 to 48 characters a-z, 0-9 and _, not starting with a digit or pg_"
    )]
    InvalidSchemaName(String),

    /// The URL does not parse, or the database cannot be reached.
    #[error("{0}")]
    Unavailable(String),

    /// The schema was migrated by a newer paycore; this binary refuses to
    /// read, write or migrate it.
    #[error(
        "schema {schema} is at version {found}, newer than this paycore binary knows ({known}): \
         upgrade paycore before using this database"
    )]
    SchemaTooNew { schema: String, found: i32, known: i32 },

    /// The schema is missing or older than this binary needs.
    #[error(
        "schema {schema} is at version {found}, this paycore binary needs version {required}: \
         run `paycore db migrate` first"
    )]
    NotMigrated {
        schema: String,
        found: i32,
        required: i32,
    },

    /// A migration failed; its transaction was rolled back.
    #[error("migration {version} ({name}) of schema {schema} failed and was rolled back: {message}")]
    Failed {
        schema: String,
        version: i32,
        name: &'static str,
        message: String,
    },
}

impl From<MigrateError> for StoreError {
    /// Every migration problem stops the store from being used; the message
    /// says what to do.
    fn from(e: MigrateError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Creates or upgrades the paycore tables in `schema` of the database at
/// `url`. Idempotent; safe to run from several processes at once.
pub async fn migrate(url: &str, schema: &str) -> Result<MigrationReport, MigrateError> {
    if !valid_schema(schema) {
        return Err(MigrateError::InvalidSchemaName(schema.to_owned()));
    }
    let timeout = Duration::from_secs(5);
    let config = connect::config(url, timeout, Some("paycore-migrate")).map_err(MigrateError::Unavailable)?;
    let connection = connect::open(&config, timeout * 2)
        .await
        .map_err(MigrateError::Unavailable)?;
    run(&connection, schema).await
}

async fn run(connection: &Single, schema: &str) -> Result<MigrationReport, MigrateError> {
    let client = &connection.client;
    let mut from_version = None;
    let mut applied = Vec::new();
    loop {
        exec(client, "BEGIN").await?;
        let step = step(client, schema).await;
        let (found, next) = match step {
            Ok(found) => found,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        from_version.get_or_insert(found);
        let Some(migration) = next else {
            exec(client, "COMMIT").await?;
            return Ok(MigrationReport {
                schema: schema.to_owned(),
                from_version: from_version.unwrap_or(found),
                to_version: found,
                applied,
            });
        };
        let sql = migration.sql.replace("{schema}", schema);
        let result = async {
            client.batch_execute(&sql).await?;
            client
                .execute(
                    &format!("INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"),
                    &[&migration.version, &migration.name],
                )
                .await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if let Err(e) = result {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(MigrateError::Failed {
                schema: schema.to_owned(),
                version: migration.version,
                name: migration.name,
                message: describe(&e),
            });
        }
        tracing::info!(
            schema,
            version = migration.version,
            name = migration.name,
            "migration applied"
        );
        applied.push(migration.version);
    }
}

/// Inside a transaction: takes the schema's migration lock, makes sure the
/// bookkeeping table exists, and returns the recorded version and the next
/// migration to apply.
async fn step(client: &Client, schema: &str) -> Result<(i32, Option<&'static Migration>), MigrateError> {
    let lock_key = advisory_key(schema);
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key])
        .await
        .map_err(|e| database(schema, "taking the migration lock", &e))?;
    exec(
        client,
        &format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; \
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (\
                 version integer NOT NULL PRIMARY KEY, \
                 name text NOT NULL, \
                 applied_at timestamptz NOT NULL DEFAULT now())"
        ),
    )
    .await?;
    let found = recorded_version(client, schema).await?;
    if found > LATEST_SCHEMA_VERSION {
        return Err(MigrateError::SchemaTooNew {
            schema: schema.to_owned(),
            found,
            known: LATEST_SCHEMA_VERSION,
        });
    }
    Ok((found, MIGRATIONS.iter().find(|m| m.version > found)))
}

/// The highest version recorded in `schema_migrations` (0 if none).
async fn recorded_version(client: &Client, schema: &str) -> Result<i32, MigrateError> {
    let row = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"),
            &[],
        )
        .await
        .map_err(|e| database(schema, "reading schema_migrations", &e))?;
    row.try_get(0)
        .map_err(|e| database(schema, "reading schema_migrations", &e))
}

/// Checks that `schema` is exactly at [`LATEST_SCHEMA_VERSION`] (used by
/// `PgStore::connect`): never migrated or older → [`MigrateError::NotMigrated`],
/// newer → [`MigrateError::SchemaTooNew`].
pub(crate) async fn check(client: &Client, schema: &str) -> Result<(), MigrateError> {
    let table = format!("{schema}.schema_migrations");
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(|e| database(schema, "looking for schema_migrations", &e))?;
    let exists: bool = row
        .try_get(0)
        .map_err(|e| database(schema, "looking for schema_migrations", &e))?;
    let found = if exists {
        recorded_version(client, schema).await?
    } else {
        0
    };
    match found.cmp(&LATEST_SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(MigrateError::SchemaTooNew {
            schema: schema.to_owned(),
            found,
            known: LATEST_SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Less => Err(MigrateError::NotMigrated {
            schema: schema.to_owned(),
            found,
            required: LATEST_SCHEMA_VERSION,
        }),
    }
}

async fn exec(client: &Client, sql: &str) -> Result<(), MigrateError> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| MigrateError::Unavailable(format!("migrating: {}", describe(&e))))
}

fn database(schema: &str, doing: &str, e: &tokio_postgres::Error) -> MigrateError {
    MigrateError::Unavailable(format!("schema {schema}: {doing}: {}", describe(e)))
}

/// A stable 64-bit key for `pg_advisory_xact_lock` (FNV-1a of the schema name).
fn advisory_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"paycore-migrate:".iter().chain(schema.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_le_bytes(hash.to_le_bytes())
}
