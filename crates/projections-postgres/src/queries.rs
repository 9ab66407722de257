//! The payments queries answered from the read-model tables, so that every
//! server of a PostgreSQL deployment answers from the rows the elected
//! [`TablesWriter`](crate::TablesWriter) keeps, not from a model of its own
//! that a new server would first have to build from the whole log.
//!
//! # What it answers
//!
//! [`TableQueries`] has the payments queries of
//! [`paycore_projections::ReadModels`], with the same arguments and
//! answers: projects, customers, accounts, transfers, transactions,
//! resources (cards and tokens, card payins and their refunds, bank
//! accounts, payouts, payin references, bank payins, files) and exchange
//! rates. Open banking (connections, imports, aggregated accounts and
//! transactions) has no tables: those queries stay on
//! `ReadModels`.
//!
//! # How
//!
//! States are the `state` column (the domain's `Aggregate`, as the writer
//! folded it); a transaction is built from its row's columns, the exact
//! inverse of how the writer wrote them. A row of another project is
//! "not found", as in `ReadModels`.
//!
//! Each query is one statement, or one read-only `REPEATABLE READ`
//! transaction when it reads twice (an account and its transactions, a
//! payin and its refunds), so it sees the tables as of one batch of the
//! writer: the writer moves rows and checkpoints in one transaction, whole
//! appends only.
//!
//! Lists are newest first by creation (`created_position`; transactions
//! by `position`), as in `ReadModels`, with the same page semantics: at
//! least one item asked for, a short page only at the end of the list and
//! `next_token: None` on the last one. Pages are keyset pages: the token
//! says "the items created before position p" of one list of one project
//! (an account's transactions, a payin's refunds and a kind of resources
//! are lists of their own), so a page handed out stays the same while new
//! rows arrive and across a rebuild of the tables (positions come from the
//! log). Tokens are not those of `ReadModels`: one of theirs, or of
//! another list or project, is [`PageError::InvalidToken`].
//!
//! # Failures
//!
//! The database failing (no connection within the pool's timeouts, a
//! statement failing) is [`ModelError::Storage`]: the read models cannot be
//! read right now, the server's failure and never the client's. A row that
//! does not decode is [`ModelError::Corrupt`], as with `ReadModels`.
//!
//! Read-your-writes is the caller's: these read the tables as they are,
//! which may be a batch behind the log (`read_model_checkpoints`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{GenericClient, Pool};
use paycore_domain::aggregate::{Account, Customer, Project, Transfer};
use paycore_domain::fx_rate::FxRateEntry;
use paycore_domain::{
    AccountId, Aggregate, CardPayinId, CustomerId, Money, ProjectId, ResourceRef, Timestamp, Transaction,
    TransactionId, TransactionKind, TransferId,
};
use paycore_projections::{ModelError, Page, PageError, PageRequest, ResourceKind};
use paycore_store_postgres::support;
use tokio_postgres::IsolationLevel;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::TablesError;

/// How [`TableQueries`] connects.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// Largest number of pooled connections (default 8).
    pub pool_size: usize,
    /// Time allowed to establish one connection, unless the URL sets
    /// `connect_timeout` (default 5 s).
    pub connect_timeout: Duration,
    /// Time a query waits for a pooled connection, and each statement may
    /// run (`statement_timeout`), before it fails with
    /// [`ModelError::Storage`] (default 10 s).
    pub operation_timeout: Duration,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
        }
    }
}

/// The payments queries over the read-model tables of one schema (see the
/// module docs). Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct TableQueries {
    pool: Pool,
    sql: Arc<Statements>,
}

impl std::fmt::Debug for TableQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableQueries")
            .field("schema", &self.sql.schema)
            .finish_non_exhaustive()
    }
}

impl TableQueries {
    /// Queries the tables in `schema` of the database at `url` (as
    /// `paycore serve --store postgres://… --pg-schema …` has them), with
    /// the default [`QueryOptions`]. Opens one connection and prepares
    /// every statement on it, so a database that does not answer, or a
    /// schema without the tables and columns (`paycore db migrate`),
    /// fails here rather than at the first request.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, TablesError> {
        Self::connect_with(url, schema, QueryOptions::default()).await
    }

    /// [`TableQueries::connect`] with chosen options.
    pub async fn connect_with(url: &str, schema: &str, options: QueryOptions) -> Result<Self, TablesError> {
        if !support::valid_schema(schema) {
            return Err(TablesError::Config(format!(
                "invalid PostgreSQL schema name {schema:?}"
            )));
        }
        let endpoint = support::config(url, options.connect_timeout, Some("paycore read-model queries"))
            .map_err(TablesError::Config)?;
        let mut config = endpoint.config().clone();
        // A query the planner gets wrong, or a lock that never comes, fails
        // the request rather than holding a connection forever; added to
        // the URL's own `options`, which stay in force.
        let timeout = format!("-c statement_timeout={}", options.operation_timeout.as_millis());
        let all = match config.get_options() {
            Some(given) if !given.is_empty() => format!("{given} {timeout}"),
            _ => timeout,
        };
        config.options(all);
        let pool = endpoint
            .pool(
                config,
                options.pool_size,
                options.connect_timeout,
                options.operation_timeout,
            )
            .map_err(TablesError::Config)?;
        let queries = Self {
            pool,
            sql: Arc::new(Statements::new(schema)),
        };
        let client = queries.pool.get().await.map_err(|error| {
            TablesError::Postgres(format!("connecting to {}: {error}", endpoint.target()))
        })?;
        for sql in queries.sql.all() {
            client.prepare_cached(sql).await?;
        }
        Ok(queries)
    }

    pub async fn project(&self, id: ProjectId) -> Result<Option<Project>, ModelError> {
        let client = self.client().await?;
        let row = query_opt(&client, &self.sql.project, &[&id.to_string()]).await?;
        row.map(|row| state(&row, 0, "projects", as_project)).transpose()
    }

    pub async fn customer(&self, project: ProjectId, id: CustomerId) -> Result<Option<Customer>, ModelError> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &self.sql.customer,
            &[&id.to_string(), &project.to_string()],
        )
        .await?;
        row.map(|row| state(&row, 0, "customers", as_customer))
            .transpose()
    }

    pub async fn account(&self, project: ProjectId, id: AccountId) -> Result<Option<Account>, ModelError> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &self.sql.account,
            &[&id.to_string(), &project.to_string()],
        )
        .await?;
        row.map(|row| state(&row, 0, "accounts", as_account)).transpose()
    }

    pub async fn transfer(&self, project: ProjectId, id: TransferId) -> Result<Option<Transfer>, ModelError> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &self.sql.transfer,
            &[&id.to_string(), &project.to_string()],
        )
        .await?;
        row.map(|row| state(&row, 0, "transfers", as_transfer))
            .transpose()
    }

    pub async fn transaction(
        &self,
        project: ProjectId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, ModelError> {
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &self.sql.transaction,
            &[&id.to_string(), &project.to_string()],
        )
        .await?;
        row.map(|row| transaction(&row)).transpose()
    }

    pub async fn list_customers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Customer>, PageError> {
        let list = List::Customers;
        let before = before(project, &list, page)?;
        let client = self.client().await?;
        let project_id = project.to_string();
        let limit = limit(page);
        let rows = query(&client, &self.sql.customers, &[&project_id, &before, &limit]).await?;
        paged(project, &list, page, rows, |row| {
            state(row, 1, "customers", as_customer)
        })
    }

    pub async fn list_accounts(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Account>, PageError> {
        let list = List::Accounts;
        let before = before(project, &list, page)?;
        let client = self.client().await?;
        let project_id = project.to_string();
        let limit = limit(page);
        let rows = query(&client, &self.sql.accounts, &[&project_id, &before, &limit]).await?;
        paged(project, &list, page, rows, |row| {
            state(row, 1, "accounts", as_account)
        })
    }

    pub async fn list_transfers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Transfer>, PageError> {
        let list = List::Transfers;
        let before = before(project, &list, page)?;
        let client = self.client().await?;
        let project_id = project.to_string();
        let limit = limit(page);
        let rows = query(&client, &self.sql.transfers, &[&project_id, &before, &limit]).await?;
        paged(project, &list, page, rows, |row| {
            state(row, 1, "transfers", as_transfer)
        })
    }

    /// A card, payin, refund, bank resource or file of the project, as its
    /// aggregate state.
    pub async fn resource(
        &self,
        project: ProjectId,
        resource: ResourceRef,
    ) -> Result<Option<Aggregate>, ModelError> {
        // Anything else (a project, an account, an exchange rate…) is not
        // a resource of the `resources` table.
        let (Some(kind), Some(id)) = (ResourceKind::of(resource), resource_id(resource)) else {
            return Ok(None);
        };
        let client = self.client().await?;
        let row = query_opt(
            &client,
            &self.sql.resource,
            &[&id, &project.to_string(), &kind_name(kind)],
        )
        .await?;
        row.map(|row| resource_state(&row, 0, kind)).transpose()
    }

    /// The project's resources of one kind, newest first.
    pub async fn list_resources(
        &self,
        project: ProjectId,
        kind: ResourceKind,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        let list = List::Resources(kind);
        let before = before(project, &list, page)?;
        let client = self.client().await?;
        let project_id = project.to_string();
        let limit = limit(page);
        let rows = query(
            &client,
            &self.sql.resources,
            &[&project_id, &kind_name(kind), &before, &limit],
        )
        .await?;
        paged(project, &list, page, rows, |row| resource_state(row, 1, kind))
    }

    /// The refunds of one card payin, newest first;
    /// [`PageError::ParentNotFound`] when the payin is not the project's.
    /// The payin and its refunds are read in one transaction.
    pub async fn list_card_payin_refunds(
        &self,
        project: ProjectId,
        payin: CardPayinId,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        let list = List::CardPayinRefunds(payin);
        let mut client = self.client().await?;
        let read = snapshot(&mut client).await?;
        let project_id = project.to_string();
        let payin_id = payin.to_string();
        let parent = query_opt(&read, &self.sql.payin_exists, &[&payin_id, &project_id]).await?;
        if parent.is_none() {
            return Err(PageError::ParentNotFound);
        }
        // After the payin, as `ReadModels` does: an unknown payin is not
        // found whatever the token.
        let before = before(project, &list, page)?;
        let limit = limit(page);
        let rows = query(
            &read,
            &self.sql.refunds,
            &[&payin_id, &project_id, &before, &limit],
        )
        .await?;
        read.commit().await.map_err(storage)?;
        paged(project, &list, page, rows, |row| {
            resource_state(row, 1, ResourceKind::CardPayinRefund)
        })
    }

    /// The platform's exchange rates, removed ones included, by currency
    /// pair (as `ReadModels` orders them).
    pub async fn fx_rates(&self) -> Result<Vec<FxRateEntry>, ModelError> {
        let client = self.client().await?;
        let rows = query(&client, &self.sql.fx_rates, &[]).await?;
        rows.iter()
            .map(|row| state(row, 0, "fx_rates", as_fx_rate))
            .collect()
    }

    /// All of the project's transactions, or one account's
    /// ([`PageError::AccountNotFound`] when the account is not the
    /// project's). The account and its transactions are read in one
    /// transaction.
    pub async fn list_transactions(
        &self,
        project: ProjectId,
        account: Option<AccountId>,
        page: &PageRequest,
    ) -> Result<Page<Transaction>, PageError> {
        let project_id = project.to_string();
        let limit = limit(page);
        match account {
            None => {
                let list = List::Transactions;
                let before = before(project, &list, page)?;
                let client = self.client().await?;
                let rows = query(&client, &self.sql.transactions, &[&project_id, &before, &limit]).await?;
                paged(project, &list, page, rows, transaction)
            }
            Some(account) => {
                let list = List::AccountTransactions(account);
                let mut client = self.client().await?;
                let read = snapshot(&mut client).await?;
                let account_id = account.to_string();
                let found = query_opt(&read, &self.sql.account_exists, &[&account_id, &project_id]).await?;
                if found.is_none() {
                    return Err(PageError::AccountNotFound);
                }
                // After the account, as `ReadModels` does.
                let before = before(project, &list, page)?;
                let rows = query(
                    &read,
                    &self.sql.account_transactions,
                    &[&account_id, &project_id, &before, &limit],
                )
                .await?;
                read.commit().await.map_err(storage)?;
                paged(project, &list, page, rows, transaction)
            }
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ModelError> {
        self.pool
            .get()
            .await
            .map_err(|error| ModelError::Storage(format!("read-model tables: no connection: {error}")))
    }
}

/// A read-only transaction that sees the tables as of one moment, for the
/// queries that read twice.
async fn snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, ModelError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(storage)
}

/// Every statement, with the schema in it.
#[derive(Debug)]
struct Statements {
    schema: String,
    project: String,
    customer: String,
    account: String,
    transfer: String,
    transaction: String,
    resource: String,
    account_exists: String,
    payin_exists: String,
    customers: String,
    accounts: String,
    transfers: String,
    resources: String,
    refunds: String,
    transactions: String,
    account_transactions: String,
    fx_rates: String,
}

/// The columns of a `transactions` row [`transaction`] reads, from 0.
const TRANSACTION_COLUMNS: &str = "position, id, project_id, account_id, kind, cause_id, currency, \
     value_minor, balance_after_minor, created_at";

impl Statements {
    fn new(schema: &str) -> Self {
        // Lists: `created_position < $before` (exclusive; the first page's
        // is i64::MAX), then `LIMIT` one row more than the page, to know
        // whether another page follows.
        let list = |table: &str, filter: &str, limit: &str| {
            format!(
                "SELECT created_position, state FROM {schema}.{table} \
                 WHERE {filter} ORDER BY created_position DESC LIMIT {limit}"
            )
        };
        Self {
            schema: schema.to_owned(),
            project: format!("SELECT state FROM {schema}.projects WHERE id = $1"),
            customer: format!("SELECT state FROM {schema}.customers WHERE id = $1 AND project_id = $2"),
            account: format!("SELECT state FROM {schema}.accounts WHERE id = $1 AND project_id = $2"),
            transfer: format!("SELECT state FROM {schema}.transfers WHERE id = $1 AND project_id = $2"),
            transaction: format!(
                "SELECT {TRANSACTION_COLUMNS} FROM {schema}.transactions WHERE id = $1 AND project_id = $2"
            ),
            resource: format!(
                "SELECT state FROM {schema}.resources WHERE id = $1 AND project_id = $2 AND kind = $3"
            ),
            account_exists: format!("SELECT 1 FROM {schema}.accounts WHERE id = $1 AND project_id = $2"),
            payin_exists: format!(
                "SELECT 1 FROM {schema}.resources WHERE id = $1 AND project_id = $2 AND kind = 'card_payin'"
            ),
            customers: list("customers", "project_id = $1 AND created_position < $2", "$3"),
            accounts: list("accounts", "project_id = $1 AND created_position < $2", "$3"),
            transfers: list("transfers", "project_id = $1 AND created_position < $2", "$3"),
            resources: list(
                "resources",
                "project_id = $1 AND kind = $2 AND created_position < $3",
                "$4",
            ),
            // By `resources_by_card_payin` (migration 8).
            refunds: list(
                "resources",
                "card_payin_id = $1 AND project_id = $2 AND kind = 'card_payin_refund' \
                 AND created_position < $3",
                "$4",
            ),
            transactions: format!(
                "SELECT {TRANSACTION_COLUMNS} FROM {schema}.transactions \
                 WHERE project_id = $1 AND position < $2 ORDER BY position DESC LIMIT $3"
            ),
            account_transactions: format!(
                "SELECT {TRANSACTION_COLUMNS} FROM {schema}.transactions \
                 WHERE account_id = $1 AND project_id = $2 AND position < $3 \
                 ORDER BY position DESC LIMIT $4"
            ),
            // `ReadModels` keeps them by (base, quote) code bytes.
            fx_rates: format!(
                "SELECT state FROM {schema}.fx_rates \
                 ORDER BY base_currency COLLATE \"C\", quote_currency COLLATE \"C\""
            ),
        }
    }
}

impl Statements {
    /// Every statement, to prepare at start.
    fn all(&self) -> [&str; 16] {
        [
            &self.project,
            &self.customer,
            &self.account,
            &self.transfer,
            &self.transaction,
            &self.resource,
            &self.account_exists,
            &self.payin_exists,
            &self.customers,
            &self.accounts,
            &self.transfers,
            &self.resources,
            &self.refunds,
            &self.transactions,
            &self.account_transactions,
            &self.fx_rates,
        ]
    }
}

fn storage(error: tokio_postgres::Error) -> ModelError {
    ModelError::Storage(format!("read-model tables: {}", support::describe(&error)))
}

async fn query(
    client: &impl GenericClient,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, ModelError> {
    // Prepared once per connection: the statements are few and hot. They
    // name their columns, so a rebuild's swap (new tables, same columns)
    // only makes PostgreSQL plan them again.
    let statement = client.prepare_cached(sql).await.map_err(storage)?;
    client.query(&statement, parameters).await.map_err(storage)
}

async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, ModelError> {
    let statement = client.prepare_cached(sql).await.map_err(storage)?;
    client.query_opt(&statement, parameters).await.map_err(storage)
}

/// A list with pages of its own: what a page token is bound to, besides
/// the project.
#[derive(Clone, Debug, PartialEq, Eq)]
enum List {
    Customers,
    Accounts,
    Transfers,
    Transactions,
    AccountTransactions(AccountId),
    Resources(ResourceKind),
    CardPayinRefunds(CardPayinId),
}

impl List {
    /// The list's name in its tokens.
    fn name(&self) -> String {
        match self {
            Self::Customers => "customers".to_owned(),
            Self::Accounts => "accounts".to_owned(),
            Self::Transfers => "transfers".to_owned(),
            Self::Transactions => "transactions".to_owned(),
            Self::AccountTransactions(account) => format!("transactions:{account}"),
            Self::Resources(kind) => format!("resources:{}", kind_name(*kind)),
            Self::CardPayinRefunds(payin) => format!("refunds:{payin}"),
        }
    }
}

/// What tokens start with: the format, so that another one (a
/// `ReadModels` token) never reads as one of these.
const TOKEN_FORMAT: &str = "pgt1";

/// The token of the page of `list` of `project` that holds the items
/// created before `position`: opaque to clients (hex), bound to the list.
fn token(project: ProjectId, list: &List, position: i64) -> String {
    hex::encode(format!("{TOKEN_FORMAT}|{project}|{}|{position}", list.name()))
}

/// Where the page `request` asks for ends (exclusive): the first page's
/// end is past every row; a token's, the position it names.
fn before(project: ProjectId, list: &List, request: &PageRequest) -> Result<i64, PageError> {
    let Some(token) = request.token.as_deref().filter(|token| !token.is_empty()) else {
        return Ok(i64::MAX);
    };
    let text = hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(PageError::InvalidToken)?;
    let mut parts = text.split('|');
    let (Some(format), Some(of), Some(name), Some(position), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(PageError::InvalidToken);
    };
    let position: i64 = position.parse().map_err(|_| PageError::InvalidToken)?;
    // A token is only ever handed out when an older row follows, so it
    // never names position 0 or less.
    if format != TOKEN_FORMAT || of != project.to_string() || name != list.name() || position <= 0 {
        return Err(PageError::InvalidToken);
    }
    Ok(position)
}

/// Rows a page reads: its size, and one more to know if a page follows.
fn limit(request: &PageRequest) -> i64 {
    i64::try_from(request.size.max(1))
        .unwrap_or(i64::MAX)
        .saturating_add(1)
}

/// The page of `rows` (newest first, the page's size plus at most one,
/// each starting with its position), decoded by `decode`.
fn paged<T>(
    project: ProjectId,
    list: &List,
    request: &PageRequest,
    rows: Vec<Row>,
    decode: impl Fn(&Row) -> Result<T, ModelError>,
) -> Result<Page<T>, PageError> {
    let size = request.size.max(1);
    let more = rows.len() > size;
    let mut items = Vec::with_capacity(size.min(rows.len()));
    let mut last = None;
    for row in rows.iter().take(size) {
        let position: i64 = row.try_get(0).map_err(storage)?;
        items.push(decode(row)?);
        last = Some(position);
    }
    let next_token = match (more, last) {
        (true, Some(position)) => Some(token(project, list, position)),
        _ => None,
    };
    Ok(Page { items, next_token })
}

fn corrupt(table: &str, reason: impl std::fmt::Display) -> ModelError {
    ModelError::Corrupt {
        what: format!("a row of table {table}"),
        reason: reason.to_string(),
    }
}

/// The state in column `column` of `row`, as the table's kind of state:
/// `pick` takes it, or gives it back when it is another kind.
fn state<T>(
    row: &Row,
    column: usize,
    table: &str,
    pick: impl FnOnce(Aggregate) -> Result<T, Box<Aggregate>>,
) -> Result<T, ModelError> {
    let bytes: &[u8] = row.try_get(column).map_err(storage)?;
    let state: Aggregate = postcard::from_bytes(bytes).map_err(|error| corrupt(table, error))?;
    pick(state).map_err(|other| corrupt(table, format!("not this table's kind of state: {other:?}")))
}

fn resource_state(row: &Row, column: usize, kind: ResourceKind) -> Result<Aggregate, ModelError> {
    state(row, column, "resources", |state| {
        match resource_kind_of(&state) == Some(kind) {
            true => Ok(state),
            false => Err(Box::new(state)),
        }
    })
}

fn as_project(state: Aggregate) -> Result<Project, Box<Aggregate>> {
    match state {
        Aggregate::Project(project) => Ok(project),
        other => Err(Box::new(other)),
    }
}

fn as_customer(state: Aggregate) -> Result<Customer, Box<Aggregate>> {
    match state {
        Aggregate::Customer(customer) => Ok(customer),
        other => Err(Box::new(other)),
    }
}

fn as_account(state: Aggregate) -> Result<Account, Box<Aggregate>> {
    match state {
        Aggregate::Account(account) => Ok(account),
        other => Err(Box::new(other)),
    }
}

fn as_transfer(state: Aggregate) -> Result<Transfer, Box<Aggregate>> {
    match state {
        Aggregate::Transfer(transfer) => Ok(transfer),
        other => Err(Box::new(other)),
    }
}

fn as_fx_rate(state: Aggregate) -> Result<FxRateEntry, Box<Aggregate>> {
    match state {
        Aggregate::FxRate(entry) => Ok(entry),
        other => Err(Box::new(other)),
    }
}

/// The kind of a resource's state.
fn resource_kind_of(state: &Aggregate) -> Option<ResourceKind> {
    Some(match state {
        Aggregate::CardToken(_) => ResourceKind::CardToken,
        Aggregate::Card(_) => ResourceKind::Card,
        Aggregate::CardPayin(_) => ResourceKind::CardPayin,
        Aggregate::CardPayinRefund(_) => ResourceKind::CardPayinRefund,
        Aggregate::BankAccount(_) => ResourceKind::BankAccount,
        Aggregate::BankPayout(_) => ResourceKind::BankPayout,
        Aggregate::BankPayinReference(_) => ResourceKind::BankPayinReference,
        Aggregate::BankPayin(_) => ResourceKind::BankPayin,
        Aggregate::File(_) => ResourceKind::File,
        _ => return None,
    })
}

/// `resources.kind` of a kind (as `sql.rs` writes it).
fn kind_name(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::CardToken => "card_token",
        ResourceKind::Card => "card",
        ResourceKind::CardPayin => "card_payin",
        ResourceKind::CardPayinRefund => "card_payin_refund",
        ResourceKind::BankAccount => "bank_account",
        ResourceKind::BankPayout => "bank_payout",
        ResourceKind::BankPayinReference => "bank_payin_reference",
        ResourceKind::BankPayin => "bank_payin",
        ResourceKind::File => "file",
    }
}

/// `resources.id` of a resource (its API ID), if it has a row there: the
/// kinds of [`ResourceKind`], whose stream instance is the ID.
fn resource_id(resource: ResourceRef) -> Option<String> {
    ResourceKind::of(resource)?;
    Some(resource.stream().instance())
}

/// A transaction from its row ([`TRANSACTION_COLUMNS`]): the inverse of
/// `sql::insert_transactions`.
fn transaction(row: &Row) -> Result<Transaction, ModelError> {
    let id: &str = row.try_get(1).map_err(storage)?;
    let corrupt = |reason: String| ModelError::Corrupt {
        what: format!("transaction {id} of table transactions"),
        reason,
    };
    let parse = |column: usize| -> Result<&str, ModelError> { row.try_get(column).map_err(storage) };
    let project_id: ProjectId = parse(2)?
        .parse()
        .map_err(|error| corrupt(format!("project_id: {error}")))?;
    let account_id: AccountId = parse(3)?
        .parse()
        .map_err(|error| corrupt(format!("account_id: {error}")))?;
    let kind: &str = parse(4)?;
    let cause: Option<&str> = row.try_get(5).map_err(storage)?;
    let kind = transaction_kind(kind, cause).map_err(corrupt)?;
    let currency: paycore_domain::Currency = parse(6)?
        .parse()
        .map_err(|error| corrupt(format!("currency: {error}")))?;
    let value: i64 = row.try_get(7).map_err(storage)?;
    let balance_after: i64 = row.try_get(8).map_err(storage)?;
    let created_at: SystemTime = row.try_get(9).map_err(storage)?;
    Ok(Transaction {
        id: id.parse().map_err(|error| corrupt(format!("id: {error}")))?,
        account_id,
        project_id,
        kind,
        value: Money::new(value, currency),
        balance_after: Money::new(balance_after, currency),
        created_at: micros(created_at).map_err(corrupt)?,
    })
}

/// The kind of a transaction from `kind` and `cause_id` (the inverse of
/// `TransactionKind::as_str` and `sql::cause_id`).
fn transaction_kind(kind: &str, cause: Option<&str>) -> Result<TransactionKind, String> {
    fn id<T: std::str::FromStr>(cause: Option<&str>) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        cause
            .ok_or_else(|| "no cause_id".to_owned())?
            .parse()
            .map_err(|error| format!("cause_id: {error}"))
    }
    Ok(match kind {
        "magic" if cause.is_none() => TransactionKind::Magic,
        "transfer_source" => TransactionKind::TransferSource(id(cause)?),
        "transfer_destination" => TransactionKind::TransferDestination(id(cause)?),
        "card_payin" => TransactionKind::CardPayin(id(cause)?),
        "card_payin_refund" => TransactionKind::CardPayinRefund(id(cause)?),
        "card_payin_refund_failure" => TransactionKind::CardPayinRefundFailure(id(cause)?),
        "bank_payout" => TransactionKind::BankPayout(id(cause)?),
        "bank_payout_failure" => TransactionKind::BankPayoutFailure(id(cause)?),
        "bank_payin" => TransactionKind::BankPayin(id(cause)?),
        "posted_transfer_source" => TransactionKind::PostedTransferSource(id(cause)?),
        "posted_transfer_destination" => TransactionKind::PostedTransferDestination(id(cause)?),
        other => return Err(format!("unknown kind {other:?} (cause_id {cause:?})")),
    })
}

/// A `timestamptz` as the domain's microseconds: PostgreSQL keeps
/// microseconds, so the round trip is exact.
fn micros(at: SystemTime) -> Result<Timestamp, String> {
    let signed = match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()),
        Err(before) => i64::try_from(before.duration().as_micros()).map(|micros| -micros),
    };
    signed
        .map(Timestamp::from_micros)
        .map_err(|_| format!("created_at out of range: {at:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use paycore_domain::{BankPayinId, BankPayoutId, CardPayinRefundId};
    use uuid::Uuid;

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000 | n)
    }

    #[test]
    fn every_transaction_kind_reads_back_as_written() {
        let transfer = TransferId::from_uuid(uuid(1));
        let refund = CardPayinRefundId::from_uuid(uuid(2));
        let payout = BankPayoutId::from_uuid(uuid(3));
        let kinds = [
            TransactionKind::Magic,
            TransactionKind::TransferSource(transfer),
            TransactionKind::TransferDestination(transfer),
            TransactionKind::CardPayin(CardPayinId::from_uuid(uuid(4))),
            TransactionKind::CardPayinRefund(refund),
            TransactionKind::CardPayinRefundFailure(refund),
            TransactionKind::BankPayout(payout),
            TransactionKind::BankPayoutFailure(payout),
            TransactionKind::BankPayin(BankPayinId::from_uuid(uuid(5))),
            TransactionKind::PostedTransferSource(transfer),
            TransactionKind::PostedTransferDestination(transfer),
        ];
        for kind in kinds {
            // As `sql::insert_transactions` writes them.
            let cause = match kind {
                TransactionKind::Magic => None,
                TransactionKind::TransferSource(id)
                | TransactionKind::TransferDestination(id)
                | TransactionKind::PostedTransferSource(id)
                | TransactionKind::PostedTransferDestination(id) => Some(id.to_string()),
                TransactionKind::CardPayin(id) => Some(id.to_string()),
                TransactionKind::CardPayinRefund(id) | TransactionKind::CardPayinRefundFailure(id) => {
                    Some(id.to_string())
                }
                TransactionKind::BankPayout(id) | TransactionKind::BankPayoutFailure(id) => {
                    Some(id.to_string())
                }
                TransactionKind::BankPayin(id) => Some(id.to_string()),
            };
            assert_eq!(transaction_kind(kind.as_str(), cause.as_deref()), Ok(kind));
        }
        let customer = CustomerId::from_uuid(uuid(6)).to_string();
        for (kind, cause) in [
            ("transfer_source", None),
            ("transfer_source", Some(customer.as_str())),
            ("magic", Some(customer.as_str())),
            ("something_new", None),
        ] {
            assert!(transaction_kind(kind, cause).is_err(), "{kind} {cause:?}");
        }
    }

    #[test]
    fn times_read_back_to_the_microsecond() {
        for since in [0_i64, 1, 1_700_000_000_123_457, -1, -86_400_000_001] {
            let offset = Duration::from_micros(since.unsigned_abs());
            let at = if since >= 0 {
                UNIX_EPOCH + offset
            } else {
                UNIX_EPOCH - offset
            };
            assert_eq!(micros(at), Ok(Timestamp::from_micros(since)));
        }
    }

    #[test]
    fn tokens_name_their_list_project_and_position() {
        let project = ProjectId::from_uuid(uuid(7));
        let list = List::AccountTransactions(AccountId::from_uuid(uuid(8)));
        let request = |token: Option<String>| PageRequest { size: 10, token };
        let issued = token(project, &list, 42);
        assert_eq!(before(project, &list, &request(Some(issued.clone()))), Ok(42));
        assert_eq!(before(project, &list, &request(None)), Ok(i64::MAX));
        assert_eq!(
            before(project, &list, &request(Some(String::new()))),
            Ok(i64::MAX)
        );
        let other = ProjectId::from_uuid(uuid(9));
        for (project, list) in [(project, List::Transactions), (other, list.clone())] {
            assert_eq!(
                before(project, &list, &request(Some(issued.clone()))),
                Err(PageError::InvalidToken)
            );
        }
        let name = list.name();
        for forged in [
            format!("{TOKEN_FORMAT}|{project}|{name}|0"),
            format!("{TOKEN_FORMAT}|{project}|{name}|-5"),
            format!("{TOKEN_FORMAT}|{project}|{name}|42|1"),
            format!("pgt0|{project}|{name}|42"),
        ] {
            assert_eq!(
                before(project, &list, &request(Some(hex::encode(forged)))),
                Err(PageError::InvalidToken)
            );
        }
    }
}
