//! paycore's read models as PostgreSQL tables, beside the log in the same
//! schema, for reporting tools and anyone else who reads with SQL.
//!
//! # Who writes
//!
//! Every `paycore serve` on a PostgreSQL store runs a [`TablesWriter`];
//! one of them at a time writes, the one holding the schema's advisory lock
//! (`pg_try_advisory_lock`, on a connection of its own). The lock belongs to
//! that connection: when the writing server dies or loses the database,
//! PostgreSQL releases it and rolls back the transaction in flight, and
//! another server takes it within [`WriterOptions::retry_every`] (1 s) and
//! continues from the checkpoints. `read_model_checkpoints.writer` and
//! `pg_stat_activity.application_name` (`paycore read-model writer: …`)
//! name the writer.
//!
//! # Nothing applied twice or skipped, never half an append
//!
//! The writer reads `$all` from the lowest checkpoint, in batches that end
//! where an append ends (`RecordedEvent::last_in_commit`), so a transfer's
//! debit and credit appear together. Each batch is one transaction: the
//! rows it changes, and every checkpoint moved from the value the writer
//! read to the batch's end with `… WHERE next_position = <read>`. A writer
//! that lost its lock finds its checkpoint moved, rolls back and stands down
//! ([`TablesError::Fenced`]); a transaction's row written twice would fail
//! the `transactions` primary key rather than count twice.
//!
//! # The tables (a read-only interface)
//!
//! Created by `paycore db migrate` (migration 5,
//! `crates/store-postgres/migrations/0005_read_model_tables.sql`, which
//! documents every column; migration 7, `0007_read_model_two_phase.sql`,
//! adds and documents those of two-phase transfers; migration 8,
//! `0008_read_model_payin_refunds.sql`, a refund's `card_payin_id`).
//! Clients only read
//! them; their rows follow the
//! log within a batch (milliseconds when the writer keeps up; its lag is
//! `log_head.next_position - read_model_checkpoints.next_position`).
//!
//! | projection | tables | one row per |
//! |---|---|---|
//! | `directory` | `projects`, `customers` | project, customer |
//! | `accounts` | `accounts` | account, with `balance_minor`, `pending_debits_minor`, `pending_credits_minor`, `available_minor` |
//! | `transactions` | `transactions` | balance change (immutable), the posted legs of pending transfers included |
//! | `transfers` | `transfers` | transfer, with `status` (`posted`, `pending`, `voided`, `expired`), `expires_at`, `posted_value_minor`, `posted_source_transaction_id`, `posted_destination_transaction_id`, `ended_at` |
//! | `resources` | `resources` | card token, card, card payin, refund (with its `card_payin_id`), bank account, payout, payin reference, bank payin, file (`kind`) |
//! | `fx-rates` | `fx_rates` | ordered currency pair |
//! | | `read_model_checkpoints` | projection: `version`, `next_position`, `writer`, `updated_at` |
//! | | `read_model_rebuilds` | projection being rebuilt: `version`, `next_position` of its `rebuild_<table>` tables, `writer` |
//!
//! Amounts are exact integers in minor units beside `currency` and
//! `currency_exponent`; IDs are the API's (`acc_…`); times are
//! `timestamptz`; `meta` is `jsonb`. A pending transfer (two-phase) holds
//! `value_minor` without moving it: the source's `pending_debits_minor`
//! (still in its `balance_minor`, no longer in `available_minor`) and the
//! destination's `pending_credits_minor` (in neither), with no
//! `transactions` row; posting moves `posted_value_minor` (all or part)
//! by two transactions of kinds `posted_transfer_source` and
//! `posted_transfer_destination` (`cause_id` the transfer, IDs in
//! `posted_*_transaction_id`), and posting, voiding or expiring releases
//! the holds at `ended_at`. Rows are as of the checkpoint read in
//! the same transaction, for example:
//!
//! ```sql
//! BEGIN ISOLATION LEVEL REPEATABLE READ;
//! SELECT next_position FROM paycore.read_model_checkpoints WHERE projection = 'accounts';
//! SELECT currency, sum(balance_minor) FROM paycore.accounts WHERE project_id = 'prj_…' GROUP BY currency;
//! COMMIT;
//! ```
//!
//! # Versions
//!
//! Each projection has a [`Projection::version`]. A writer that finds a
//! projection written by an older version rebuilds it from the log into
//! `rebuild_<table>` tables beside the served ones (progress in
//! `read_model_rebuilds`, migration 6, resumed by the next writer if this
//! one stops) and swaps them in by rename in one transaction once they
//! reach the old rows' checkpoint; until then readers keep the old rows,
//! which stand still. One written by a newer version is left to the newer
//! servers. [`rebuild`] asks for the same on chosen projections, whose
//! served tables keep following the log until the swap. Privileges granted
//! on a table are granted again on its replacement; a view over one blocks
//! the swap (the writer logs why and tries again).
//!
//! Version 2 of `accounts` and `transfers` added the columns of two-phase
//! transfers (migration 7): their rows written by version 1 show the
//! columns' defaults (nothing pending, posted, the balance available)
//! until the rebuild at version 2 swaps in the log's values. Version 2 of
//! `resources` added a refund's `card_payin_id` (migration 8), NULL in the
//! rows version 1 wrote until its rebuild swaps in.
//!
//! # Queries
//!
//! [`TableQueries`] answers the payments queries of the servers' read
//! models from these tables (`queries.rs`), so every server of a
//! deployment answers from the same rows.
//!
//! # Memory
//!
//! One batch of events and the rows it touches; nothing across batches.

mod fold;
mod progress;
mod queries;
mod rebuild;
mod sql;
mod writer;

use paycore_store::{Position, StoreError};
use paycore_store_postgres::support;

pub use fold::{PROJECTIONS, Projection};
pub use progress::{POLL_EVERY, TablesProgress};
pub use queries::{QueryOptions, TableQueries};
pub use writer::{TablesWriter, WriterOptions};

/// Events of the log the tables do not show yet, set by the writer after
/// each batch (on the server that writes).
pub const LAG_EVENTS: &str = "paycore_read_model_tables_lag_events";

/// Registers the help texts with the installed exporter.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        LAG_EVENTS,
        "events of the log the PostgreSQL read-model tables do not show yet (on the writing server)"
    );
}

#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the event store closed")]
    StoreClosed,
    #[error("event at position {position} does not decode: {reason}")]
    Decode { position: Position, reason: String },
    #[error("row {id} of table {table}: {reason}")]
    Corrupt {
        table: &'static str,
        id: String,
        reason: String,
    },
    #[error("no projection is called {0:?} (see `paycore projections status`)")]
    UnknownProjection(String),
    #[error("the checkpoint of projection {projection} was moved by another writer; this one stands down")]
    Fenced { projection: &'static str },
}

impl From<tokio_postgres::Error> for TablesError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Postgres(support::describe(&error))
    }
}

/// Asks the writer to rebuild the tables of the named projections from the
/// log (`paycore projections rebuild --tables`): beside the served tables,
/// which stay as they are and keep following the log, and swapped in once
/// caught up (see `rebuild.rs`). The writer takes the request within its
/// [`WriterOptions::retry_every`]; asking again restarts a rebuild under
/// way from 0. Returns the projections asked for; an unknown name writes
/// nothing.
pub async fn rebuild(url: &str, schema: &str, names: &[String]) -> Result<Vec<&'static str>, TablesError> {
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        let projection = PROJECTIONS
            .iter()
            .find(|projection| projection.name == name)
            .ok_or_else(|| TablesError::UnknownProjection(name.clone()))?;
        chosen.push(projection);
    }
    let config =
        support::config(url, std::time::Duration::from_secs(5), None).map_err(TablesError::Config)?;
    let (mut client, connection) = config.connect().await?;
    let driver = tokio::spawn(connection);
    let asked = async {
        let transaction = client.transaction().await?;
        for projection in &chosen {
            rebuild::request(&transaction, schema, projection.name, projection.version, None).await?;
        }
        transaction.commit().await?;
        Ok::<_, TablesError>(())
    }
    .await;
    drop(client);
    let _ = driver.await;
    asked?;
    Ok(chosen.iter().map(|projection| projection.name).collect())
}

/// One projection's tables as `projections status` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStatus {
    pub projection: &'static str,
    /// The version this binary writes.
    pub version: i32,
    /// The version that wrote the rows; `None` before the first writer.
    pub stored_version: Option<i32>,
    /// Events below this position are in the tables.
    pub checkpoint: Position,
    /// Events in the log.
    pub head: Position,
    /// The server that last moved the checkpoint.
    pub writer: Option<String>,
    /// When it did (UTC, RFC 3339).
    pub updated_at: Option<String>,
    /// A rebuild asked for or under way: events below this position are
    /// in its tables (0 until the writer starts it).
    pub rebuilding: Option<Position>,
}

impl TableStatus {
    /// Events in the log the tables do not show yet.
    pub fn lag(&self) -> u64 {
        self.head.saturating_sub(self.checkpoint)
    }
}

/// Each projection's tables in `schema`: version, checkpoint, writer.
pub async fn status(url: &str, schema: &str) -> Result<Vec<TableStatus>, TablesError> {
    let config =
        support::config(url, std::time::Duration::from_secs(5), None).map_err(TablesError::Config)?;
    let (client, connection) = config.connect().await?;
    let driver = tokio::spawn(connection);
    let head: i64 = client
        .query_one(&format!("SELECT next_position FROM {schema}.log_head"), &[])
        .await?
        .try_get(0)?;
    let rows = client
        .query(
            &format!(
                "SELECT projection, version, next_position, writer, \
                 to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                 FROM {schema}.read_model_checkpoints"
            ),
            &[],
        )
        .await?;
    let rebuilds = rebuild::requested(&client, schema).await?;
    drop(client);
    let _ = driver.await;
    let mut statuses = Vec::with_capacity(PROJECTIONS.len());
    for projection in PROJECTIONS {
        let mut status = TableStatus {
            projection: projection.name,
            version: projection.version,
            stored_version: None,
            checkpoint: 0,
            head: sql::position_from_sql(head),
            writer: None,
            updated_at: None,
            rebuilding: rebuilds
                .iter()
                .find(|rebuild| rebuild.projection == projection.name)
                .map(|rebuild| rebuild.next_position),
        };
        for row in &rows {
            let name: &str = row.try_get(0)?;
            if name == projection.name {
                status.stored_version = Some(row.try_get(1)?);
                status.checkpoint = sql::position_from_sql(row.try_get(2)?);
                status.writer = Some(row.try_get(3)?);
                status.updated_at = Some(row.try_get(4)?);
            }
        }
        statuses.push(status);
    }
    Ok(statuses)
}
