//! The tables' SQL: loading the rows a batch reads, writing what it changed
//! (one `INSERT … SELECT FROM UNNEST` per table) and moving the checkpoints.

use std::collections::HashMap;

use paycore_domain::transfer::TransferStatus;
use paycore_domain::{Aggregate, Meta, Money, Transaction, TransactionKind};
use paycore_store::Position;
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use crate::TablesError;
use crate::fold::{self, Changes, Checkpoints, PROJECTIONS, Row, RowId, StateTable};

/// Which of a schema's two sets of tables a batch goes to: the served
/// ones, or a rebuild's beside them (`rebuild_<table>`, checkpoints in
/// `read_model_rebuilds`), swapped in once caught up (`rebuild.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableSet {
    Served,
    Rebuild,
}

/// What a rebuild's tables are called beside the served `<table>`.
pub(crate) const REBUILD_PREFIX: &str = "rebuild_";

/// The tables of one [`TableSet`] of a schema.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tables<'a> {
    pub schema: &'a str,
    pub set: TableSet,
}

impl<'a> Tables<'a> {
    pub fn served(schema: &'a str) -> Self {
        Self {
            schema,
            set: TableSet::Served,
        }
    }

    pub fn rebuild(schema: &'a str) -> Self {
        Self {
            schema,
            set: TableSet::Rebuild,
        }
    }

    /// The qualified name of `table` (as the served set calls it) in this set.
    pub fn table(&self, table: &str) -> String {
        match self.set {
            TableSet::Served => format!("{}.{table}", self.schema),
            TableSet::Rebuild => format!("{}.{REBUILD_PREFIX}{table}", self.schema),
        }
    }

    /// The table of this set's checkpoints (same columns in both).
    pub fn checkpoints(&self) -> String {
        match self.set {
            TableSet::Served => format!("{}.read_model_checkpoints", self.schema),
            TableSet::Rebuild => format!("{}.read_model_rebuilds", self.schema),
        }
    }
}

/// Reads the rows `ids` name, as the tables hold them (absent ones are new).
/// One `SELECT` per table, sent together: tokio-postgres pipelines
/// concurrent queries on one connection, so the batch waits for one round
/// trip, not one per table (every command's answer waits for the writer
/// when queries read the tables).
pub(crate) async fn load(
    client: &impl GenericClient,
    tables: Tables<'_>,
    ids: &[RowId],
) -> Result<HashMap<RowId, Row>, TablesError> {
    let reads = StateTable::ALL.into_iter().filter_map(|table| {
        let keys: Vec<&str> = ids
            .iter()
            .filter(|(of, _)| *of == table)
            .map(|(_, id)| id.as_str())
            .collect();
        (!keys.is_empty()).then(|| load_table(client, tables, table, keys))
    });
    let mut loaded = HashMap::with_capacity(ids.len());
    for rows in futures::future::try_join_all(reads).await? {
        loaded.extend(rows);
    }
    Ok(loaded)
}

async fn load_table(
    client: &impl GenericClient,
    tables: Tables<'_>,
    table: StateTable,
    keys: Vec<&str>,
) -> Result<Vec<(RowId, Row)>, TablesError> {
    let name = table.sql_name();
    let sql = format!(
        "SELECT id, created_position, updated_position, state FROM {} WHERE id = ANY($1)",
        tables.table(name)
    );
    let found = client.query(&sql, &[&keys]).await?;
    let mut rows = Vec::with_capacity(found.len());
    for row in found {
        let id: String = row.try_get(0)?;
        let created_position: i64 = row.try_get(1)?;
        let updated_position: i64 = row.try_get(2)?;
        let bytes: &[u8] = row.try_get(3)?;
        let state: Aggregate = postcard::from_bytes(bytes).map_err(|error| TablesError::Corrupt {
            table: name,
            id: id.clone(),
            reason: error.to_string(),
        })?;
        let row = Row {
            state,
            created_position: position_from_sql(created_position),
            updated_position: position_from_sql(updated_position),
        };
        rows.push(((table, id), row));
    }
    Ok(rows)
}

/// Writes `changes` and moves each projection from `from` to `to`, in the
/// caller's transaction. A checkpoint that is no longer at `from` and this
/// version means another writer moved it, or an operator asked for a
/// rebuild: [`TablesError::Fenced`], and the caller's transaction must roll
/// back, so nothing is applied twice.
pub(crate) async fn write(
    client: &impl GenericClient,
    tables: Tables<'_>,
    changes: &Changes,
    (from, to): (&Checkpoints, &Checkpoints),
    writer: &str,
) -> Result<(), TablesError> {
    // Each statement writes a table of its own: sent together, pipelined
    // (see `load`). A failure of any rolls the caller's transaction back.
    let by_table: Vec<(StateTable, Vec<(&str, &Row)>)> = StateTable::ALL
        .into_iter()
        .map(|table| {
            let rows = changes
                .rows
                .iter()
                .filter(|((of, _), _)| *of == table)
                .map(|((_, id), row)| (id.as_str(), row))
                .collect::<Vec<_>>();
            (table, rows)
        })
        .filter(|(_, rows)| !rows.is_empty())
        .collect();
    let upserts = futures::future::try_join_all(
        by_table
            .iter()
            .map(|(table, rows)| upsert(client, tables, *table, rows)),
    );
    let transactions = async {
        match changes.transactions.is_empty() {
            true => Ok(()),
            false => insert_transactions(client, tables, &changes.transactions).await,
        }
    };
    let checkpoints = move_checkpoints(client, tables, (from, to), writer);
    futures::future::try_join3(upserts, transactions, checkpoints).await?;
    Ok(())
}

/// Moves every checkpoint that changes, in one statement, each only from
/// the position and version the writer read.
async fn move_checkpoints(
    client: &impl GenericClient,
    tables: Tables<'_>,
    (from, to): (&Checkpoints, &Checkpoints),
    writer: &str,
) -> Result<(), TablesError> {
    let moving: Vec<(&fold::Projection, i64, i64)> = PROJECTIONS
        .iter()
        .zip(from.iter().zip(to))
        .filter(|(_, (from, to))| from != to)
        .map(|(projection, (from, to))| (projection, position_to_sql(*from), position_to_sql(*to)))
        .collect();
    if moving.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = moving.iter().map(|(projection, _, _)| projection.name).collect();
    let froms: Vec<i64> = moving.iter().map(|(_, from, _)| *from).collect();
    let tos: Vec<i64> = moving.iter().map(|(_, _, to)| *to).collect();
    let versions: Vec<i32> = moving
        .iter()
        .map(|(projection, _, _)| projection.version)
        .collect();
    let sql = format!(
        "UPDATE {} c SET next_position = u.next, writer = $5, updated_at = now() \
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::integer[]) AS u(projection, read, next, version) \
         WHERE c.projection = u.projection AND c.next_position = u.read AND c.version = u.version \
         RETURNING c.projection",
        tables.checkpoints()
    );
    let moved = client
        .query(&sql, &[&names, &froms, &tos, &versions, &writer])
        .await?;
    let moved: Vec<&str> = moved
        .iter()
        .map(|row| row.try_get::<_, &str>(0))
        .collect::<Result<_, _>>()?;
    match moving
        .iter()
        .find(|(projection, _, _)| !moved.contains(&projection.name))
    {
        Some((projection, _, _)) => Err(TablesError::Fenced {
            projection: projection.name,
        }),
        None => Ok(()),
    }
}

/// Columns of one `INSERT … SELECT FROM UNNEST(…)`: each column's name, its
/// array type, the expression that turns the unnested value into the
/// column's (a time from microseconds, JSON from text), and its values.
#[derive(Default)]
struct Columns {
    names: Vec<&'static str>,
    types: Vec<&'static str>,
    selects: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Columns {
    fn add<T: ToSql + Sync + Send + 'static>(
        &mut self,
        name: &'static str,
        array: &'static str,
        values: Vec<T>,
    ) {
        self.add_as(name, array, format!("u.{name}"), values);
    }

    fn add_as<T: ToSql + Sync + Send + 'static>(
        &mut self,
        name: &'static str,
        array: &'static str,
        select: String,
        values: Vec<T>,
    ) {
        self.names.push(name);
        self.types.push(array);
        self.selects.push(select);
        self.values.push(Box::new(values));
    }

    fn time(&mut self, name: &'static str, micros: Vec<i64>) {
        self.add_as(name, "bigint[]", time_select(name), micros);
    }

    /// A time from microseconds, NULL where there is none.
    fn optional_time(&mut self, name: &'static str, micros: Vec<Option<i64>>) {
        self.add_as(name, "bigint[]", time_select(name), micros);
    }

    fn json(&mut self, name: &'static str, texts: Vec<String>) {
        self.add_as(name, "text[]", format!("u.{name}::jsonb"), texts);
    }

    fn numeric(&mut self, name: &'static str, texts: Vec<Option<String>>) {
        self.add_as(name, "text[]", format!("u.{name}::numeric"), texts);
    }

    /// The statement: a plain insert when `conflict` is empty (a row written
    /// twice is an error), else an upsert on it that replaces every column
    /// but the key and `keep`.
    fn insert_sql(&self, table: &str, conflict: &str, keep: &[&str]) -> String {
        let parameters: Vec<String> = self
            .types
            .iter()
            .enumerate()
            .map(|(index, array)| format!("${}::{array}", index + 1))
            .collect();
        let mut sql = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM UNNEST({}) AS u({})",
            self.names.join(", "),
            self.selects.join(", "),
            parameters.join(", "),
            self.names.join(", "),
        );
        if !conflict.is_empty() {
            let updates: Vec<String> = self
                .names
                .iter()
                .filter(|name| **name != conflict && !keep.contains(name))
                .map(|name| format!("{name} = EXCLUDED.{name}"))
                .collect();
            sql.push_str(&format!(
                " ON CONFLICT ({conflict}) DO UPDATE SET {}",
                updates.join(", ")
            ));
        }
        sql
    }

    async fn run(&self, client: &impl GenericClient, sql: &str) -> Result<u64, TablesError> {
        let parameters: Vec<&(dyn ToSql + Sync)> = self
            .values
            .iter()
            .map(|values| &**values as &(dyn ToSql + Sync))
            .collect();
        Ok(client.execute(sql, &parameters).await?)
    }
}

async fn upsert(
    client: &impl GenericClient,
    tables: Tables<'_>,
    table: StateTable,
    rows: &[(&str, &Row)],
) -> Result<(), TablesError> {
    let name = table.sql_name();
    let mut columns = Columns::default();
    columns.add(
        "id",
        "text[]",
        rows.iter().map(|(id, _)| (*id).to_owned()).collect(),
    );
    match table {
        StateTable::Projects => project_columns(&mut columns, rows)?,
        StateTable::Customers => customer_columns(&mut columns, rows)?,
        StateTable::Accounts => account_columns(&mut columns, rows)?,
        StateTable::Transfers => transfer_columns(&mut columns, rows)?,
        StateTable::Resources => resource_columns(&mut columns, rows)?,
        StateTable::FxRates => fx_rate_columns(&mut columns, rows)?,
    }
    let created = rows
        .iter()
        .map(|(_, row)| position_to_sql(row.created_position))
        .collect();
    columns.add("created_position", "bigint[]", created);
    let updated = rows
        .iter()
        .map(|(_, row)| position_to_sql(row.updated_position))
        .collect();
    columns.add("updated_position", "bigint[]", updated);
    let states = rows
        .iter()
        .map(|(id, row)| {
            postcard::to_stdvec(&row.state).map_err(|error| TablesError::Corrupt {
                table: name,
                id: (*id).to_owned(),
                reason: format!("encoding its state: {error}"),
            })
        })
        .collect::<Result<Vec<Vec<u8>>, _>>()?;
    columns.add("state", "bytea[]", states);
    let sql = columns.insert_sql(&tables.table(name), "id", &["created_position", "created_at"]);
    columns.run(client, &sql).await?;
    Ok(())
}

/// The state a row of `table` must hold, or the error saying it does not.
fn expect<'r, T>(
    table: StateTable,
    rows: &'r [(&str, &Row)],
    pick: impl Fn(&'r Aggregate) -> Option<&'r T>,
) -> Result<Vec<&'r T>, TablesError> {
    rows.iter()
        .map(|(id, row)| {
            pick(&row.state).ok_or_else(|| TablesError::Corrupt {
                table: table.sql_name(),
                id: (*id).to_owned(),
                reason: format!("the stream's state is not one of this table's: {:?}", row.state),
            })
        })
        .collect()
}

fn project_columns(columns: &mut Columns, rows: &[(&str, &Row)]) -> Result<(), TablesError> {
    let projects = expect(StateTable::Projects, rows, |state| match state {
        Aggregate::Project(project) => Some(project),
        _ => None,
    })?;
    columns.add(
        "name",
        "text[]",
        projects.iter().map(|p| p.name.clone()).collect(),
    );
    let environments = projects
        .iter()
        .map(|p| p.environment.as_str().to_owned())
        .collect();
    columns.add("environment", "text[]", environments);
    columns.json("meta", projects.iter().map(|p| meta_json(&p.meta)).collect());
    columns.time("created_at", projects.iter().map(|p| p.created_at.0).collect());
    Ok(())
}

fn customer_columns(columns: &mut Columns, rows: &[(&str, &Row)]) -> Result<(), TablesError> {
    let customers = expect(StateTable::Customers, rows, |state| match state {
        Aggregate::Customer(customer) => Some(customer),
        _ => None,
    })?;
    columns.add(
        "project_id",
        "text[]",
        customers.iter().map(|c| c.project_id.to_string()).collect(),
    );
    columns.json("meta", customers.iter().map(|c| meta_json(&c.meta)).collect());
    columns.time("created_at", customers.iter().map(|c| c.created_at.0).collect());
    Ok(())
}

fn account_columns(columns: &mut Columns, rows: &[(&str, &Row)]) -> Result<(), TablesError> {
    let accounts = expect(StateTable::Accounts, rows, |state| match state {
        Aggregate::Account(account) => Some(account),
        _ => None,
    })?;
    columns.add(
        "project_id",
        "text[]",
        accounts.iter().map(|a| a.project_id.to_string()).collect(),
    );
    let customers = accounts
        .iter()
        .map(|a| a.customer_id.map(|id| id.to_string()))
        .collect();
    columns.add::<Option<String>>("customer_id", "text[]", customers);
    money_columns(columns, "balance_minor", accounts.iter().map(|a| a.balance));
    let minor = |amount: fn(&paycore_domain::aggregate::Account) -> Money| -> Vec<i64> {
        accounts.iter().map(|a| amount(a).amount).collect()
    };
    columns.add::<i64>("pending_debits_minor", "bigint[]", minor(|a| a.pending_debits));
    columns.add::<i64>("pending_credits_minor", "bigint[]", minor(|a| a.pending_credits));
    columns.add::<i64>("available_minor", "bigint[]", minor(|a| a.available()));
    let negative = accounts.iter().map(|a| a.allow_negative_balance).collect();
    columns.add::<bool>("allow_negative_balance", "boolean[]", negative);
    let last = accounts
        .iter()
        .map(|a| a.last_transaction.map(|id| id.to_string()))
        .collect();
    columns.add::<Option<String>>("last_transaction_id", "text[]", last);
    columns.json("meta", accounts.iter().map(|a| meta_json(&a.meta)).collect());
    columns.time("created_at", accounts.iter().map(|a| a.created_at.0).collect());
    Ok(())
}

fn transfer_columns(columns: &mut Columns, rows: &[(&str, &Row)]) -> Result<(), TablesError> {
    let transfers = expect(StateTable::Transfers, rows, |state| match state {
        Aggregate::Transfer(transfer) => Some(transfer),
        _ => None,
    })?;
    let text = |f: &dyn Fn(&paycore_domain::aggregate::Transfer) -> String| -> Vec<String> {
        transfers.iter().map(|t| f(t)).collect()
    };
    columns.add("project_id", "text[]", text(&|t| t.project_id.to_string()));
    columns.add(
        "source_account_id",
        "text[]",
        text(&|t| t.source_account_id.to_string()),
    );
    columns.add(
        "destination_account_id",
        "text[]",
        text(&|t| t.destination_account_id.to_string()),
    );
    columns.add(
        "source_transaction_id",
        "text[]",
        text(&|t| t.source_transaction_id.to_string()),
    );
    let destination_transactions = text(&|t| t.destination_transaction_id.to_string());
    columns.add("destination_transaction_id", "text[]", destination_transactions);
    money_columns(columns, "value_minor", transfers.iter().map(|t| t.value));
    let exchanges: Vec<_> = transfers.iter().map(|t| t.exchange.as_ref()).collect();
    let currencies = exchanges
        .iter()
        .map(|e| e.map(|e| e.destination_value.currency.code().to_owned()))
        .collect();
    columns.add::<Option<String>>("destination_currency", "text[]", currencies);
    let values = exchanges
        .iter()
        .map(|e| e.map(|e| e.destination_value.amount))
        .collect();
    columns.add::<Option<i64>>("destination_value_minor", "bigint[]", values);
    columns.numeric(
        "rate_used",
        exchanges
            .iter()
            .map(|e| e.map(|e| e.rate_used.to_string()))
            .collect(),
    );
    status_columns(columns, &transfers);
    columns.json("meta", transfers.iter().map(|t| meta_json(&t.meta)).collect());
    columns.time("created_at", transfers.iter().map(|t| t.created_at.0).collect());
    Ok(())
}

/// Where each transfer stands (as the API shows it): `status`, a pending
/// one's `expires_at`, a posted pending one's value and legs, and when a
/// pending one ended.
fn status_columns(columns: &mut Columns, transfers: &[&paycore_domain::aggregate::Transfer]) {
    let statuses = transfers.iter().map(|t| t.status.as_str().to_owned()).collect();
    columns.add::<String>("status", "text[]", statuses);
    let expiries = transfers
        .iter()
        .map(|t| t.pending_until().map(|at| at.0))
        .collect();
    columns.optional_time("expires_at", expiries);
    let posted: Vec<_> = transfers
        .iter()
        .map(|t| match t.status {
            TransferStatus::Posted {
                value,
                legs: Some(legs),
                ..
            } => Some((value, legs)),
            _ => None,
        })
        .collect();
    let values = posted.iter().map(|p| p.map(|(value, _)| value.amount)).collect();
    columns.add::<Option<i64>>("posted_value_minor", "bigint[]", values);
    let sources = posted
        .iter()
        .map(|p| p.map(|(_, (source, _))| source.to_string()))
        .collect();
    columns.add::<Option<String>>("posted_source_transaction_id", "text[]", sources);
    let destinations = posted
        .iter()
        .map(|p| p.map(|(_, (_, destination))| destination.to_string()))
        .collect();
    columns.add::<Option<String>>("posted_destination_transaction_id", "text[]", destinations);
    let ended = transfers
        .iter()
        .map(|t| match t.status {
            // A plain transfer is posted from the start: it never pended.
            TransferStatus::Posted { legs: None, .. } | TransferStatus::Pending { .. } => None,
            TransferStatus::Posted { posted_at: at, .. }
            | TransferStatus::Voided { at }
            | TransferStatus::Expired { at } => Some(at.0),
        })
        .collect();
    columns.optional_time("ended_at", ended);
}

fn resource_columns(columns: &mut Columns, rows: &[(&str, &Row)]) -> Result<(), TablesError> {
    let mut kinds = Vec::with_capacity(rows.len());
    let mut projects = Vec::with_capacity(rows.len());
    let mut payins = Vec::with_capacity(rows.len());
    for (id, row) in rows {
        let corrupt = |reason: &str| TablesError::Corrupt {
            table: "resources",
            id: (*id).to_owned(),
            reason: reason.to_owned(),
        };
        kinds.push(resource_kind(&row.state).ok_or_else(|| corrupt("not a resource's state"))?);
        let project = row
            .state
            .project_id()
            .ok_or_else(|| corrupt("a resource without a project"))?;
        projects.push(project.to_string());
        // A refund's payin, so that a payin's refunds are listed by index.
        payins.push(
            row.state
                .as_card_payin_refund()
                .map(|refund| refund.card_payin_id.to_string()),
        );
    }
    columns.add("kind", "text[]", kinds.into_iter().map(str::to_owned).collect());
    columns.add("project_id", "text[]", projects);
    columns.add::<Option<String>>("card_payin_id", "text[]", payins);
    Ok(())
}

/// The `resources.kind` of a state.
fn resource_kind(state: &Aggregate) -> Option<&'static str> {
    Some(match state {
        Aggregate::CardToken(_) => "card_token",
        Aggregate::Card(_) => "card",
        Aggregate::CardPayin(_) => "card_payin",
        Aggregate::CardPayinRefund(_) => "card_payin_refund",
        Aggregate::BankAccount(_) => "bank_account",
        Aggregate::BankPayout(_) => "bank_payout",
        Aggregate::BankPayinReference(_) => "bank_payin_reference",
        Aggregate::BankPayin(_) => "bank_payin",
        Aggregate::File(_) => "file",
        _ => return None,
    })
}

fn fx_rate_columns(columns: &mut Columns, rows: &[(&str, &Row)]) -> Result<(), TablesError> {
    let entries = expect(StateTable::FxRates, rows, |state| match state {
        Aggregate::FxRate(entry) => Some(entry),
        _ => None,
    })?;
    columns.add(
        "base_currency",
        "text[]",
        entries.iter().map(|e| e.from.code().to_owned()).collect(),
    );
    columns.add(
        "quote_currency",
        "text[]",
        entries.iter().map(|e| e.to.code().to_owned()).collect(),
    );
    columns.numeric(
        "mid_rate",
        entries
            .iter()
            .map(|e| e.current.map(|c| c.mid_rate.to_string()))
            .collect(),
    );
    let spreads = entries
        .iter()
        .map(|e| e.current.map(|c| i64::from(c.spread_bps)))
        .collect::<Vec<Option<i64>>>();
    columns.add_as(
        "spread_bps",
        "bigint[]",
        "u.spread_bps::integer".to_owned(),
        spreads,
    );
    Ok(())
}

async fn insert_transactions(
    client: &impl GenericClient,
    tables: Tables<'_>,
    transactions: &[(Transaction, Position)],
) -> Result<(), TablesError> {
    let mut columns = Columns::default();
    let all = || transactions.iter().map(|(transaction, _)| transaction);
    columns.add("id", "text[]", all().map(|t| t.id.to_string()).collect());
    columns.add(
        "project_id",
        "text[]",
        all().map(|t| t.project_id.to_string()).collect(),
    );
    columns.add(
        "account_id",
        "text[]",
        all().map(|t| t.account_id.to_string()).collect(),
    );
    columns.add(
        "kind",
        "text[]",
        all().map(|t| t.kind.as_str().to_owned()).collect(),
    );
    columns.add::<Option<String>>("cause_id", "text[]", all().map(|t| cause_id(t.kind)).collect());
    money_columns(&mut columns, "value_minor", all().map(|t| t.value));
    let after = all().map(|t| t.balance_after.amount).collect();
    columns.add::<i64>("balance_after_minor", "bigint[]", after);
    columns.time("created_at", all().map(|t| t.created_at.0).collect());
    let positions = transactions.iter().map(|(_, at)| position_to_sql(*at)).collect();
    columns.add::<i64>("position", "bigint[]", positions);
    // A transaction written twice fails the primary key: never silently.
    let sql = columns.insert_sql(&tables.table("transactions"), "", &[]);
    columns.run(client, &sql).await?;
    Ok(())
}

/// The transfer, payin, refund or payout behind a transaction.
fn cause_id(kind: TransactionKind) -> Option<String> {
    Some(match kind {
        TransactionKind::Magic => return None,
        TransactionKind::TransferSource(id)
        | TransactionKind::TransferDestination(id)
        | TransactionKind::PostedTransferSource(id)
        | TransactionKind::PostedTransferDestination(id) => id.to_string(),
        TransactionKind::CardPayin(id) => id.to_string(),
        TransactionKind::CardPayinRefund(id) | TransactionKind::CardPayinRefundFailure(id) => id.to_string(),
        TransactionKind::BankPayout(id) | TransactionKind::BankPayoutFailure(id) => id.to_string(),
        TransactionKind::BankPayin(id) => id.to_string(),
    })
}

/// The `timestamptz` of the unnested microseconds of column `name`.
fn time_select(name: &str) -> String {
    format!("timestamptz 'epoch' + u.{name} * interval '1 microsecond'")
}

/// `currency`, `currency_exponent` and the amounts in minor units.
fn money_columns(columns: &mut Columns, amounts: &'static str, values: impl Iterator<Item = Money>) {
    let values: Vec<Money> = values.collect();
    let codes = values.iter().map(|m| m.currency.code().to_owned()).collect();
    columns.add::<String>("currency", "text[]", codes);
    let exponents = values.iter().map(|m| i16::from(m.currency.exponent())).collect();
    columns.add::<i16>("currency_exponent", "smallint[]", exponents);
    columns.add::<i64>(amounts, "bigint[]", values.iter().map(|m| m.amount).collect());
}

fn meta_json(meta: &Meta) -> String {
    // A map of strings always encodes.
    serde_json::to_string(meta).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn position_to_sql(position: Position) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

pub(crate) fn position_from_sql(position: i64) -> Position {
    Position::try_from(position).unwrap_or(0)
}
