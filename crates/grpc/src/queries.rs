//! Where a query is answered from: this server's own read models, or, on a
//! PostgreSQL deployment started with `--queries-from-tables`, the
//! read-model tables every server shares (`paycore-projections-postgres`).
//!
//! The tables hold the payments models (projects, customers, accounts,
//! transactions, transfers, the resources, exchange rates); open banking's
//! models are not tables, so their queries always read this server's own.
//! Each method answers exactly what the [`ReadModels`] method of the same
//! name answers, from one consistent position of the log; page tokens of
//! one source are not valid on the other (INVALID_ARGUMENT), so the servers
//! of one deployment answer from the same source.

use std::sync::Arc;

use paycore_domain::aggregate::{Account, Customer, Project, Transfer};
use paycore_domain::fx_rate::FxRateEntry;
use paycore_domain::{
    AccountId, Aggregate, CardPayinId, CustomerId, ProjectId, ResourceRef, Transaction, TransactionId,
    TransferId,
};
use paycore_projections::{ModelError, Page, PageError, PageRequest, ReadModels, ResourceKind};
use paycore_projections_postgres::{TableQueries, TablesProgress};
use paycore_store::Position;

/// The PostgreSQL read-model tables and how far they are.
pub struct Tables {
    pub queries: TableQueries,
    pub progress: TablesProgress,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field("applied", &self.progress.applied())
            .finish_non_exhaustive()
    }
}

/// The read side a handler asks.
#[derive(Clone, Copy, Debug)]
pub struct Queries<'a> {
    local: &'a ReadModels,
    tables: Option<&'a Tables>,
}

/// Answers from the tables when they serve, otherwise from the local models.
macro_rules! either {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {
        match $self.tables {
            Some(tables) => tables.queries.$method($($arg),*).await,
            None => $self.local.$method($($arg),*),
        }
    };
}

impl<'a> Queries<'a> {
    pub fn new(local: &'a ReadModels, tables: Option<&'a Arc<Tables>>) -> Self {
        Self {
            local,
            tables: tables.map(Arc::as_ref),
        }
    }

    /// This server's own models: open banking, and what only they keep.
    pub fn local(&self) -> &'a ReadModels {
        self.local
    }

    /// Returns once the models the queries read hold the event at
    /// `position` (read-your-writes). Unbounded: callers bound it.
    pub async fn wait_for(&self, position: Position) {
        match self.tables {
            Some(tables) => tables.progress.wait_for(position).await,
            None => self.local.wait_for(position).await,
        }
    }

    pub async fn project(&self, id: ProjectId) -> Result<Option<Project>, ModelError> {
        either!(self, project(id))
    }

    pub async fn customer(&self, project: ProjectId, id: CustomerId) -> Result<Option<Customer>, ModelError> {
        either!(self, customer(project, id))
    }

    pub async fn account(&self, project: ProjectId, id: AccountId) -> Result<Option<Account>, ModelError> {
        either!(self, account(project, id))
    }

    pub async fn transfer(&self, project: ProjectId, id: TransferId) -> Result<Option<Transfer>, ModelError> {
        either!(self, transfer(project, id))
    }

    pub async fn transaction(
        &self,
        project: ProjectId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, ModelError> {
        either!(self, transaction(project, id))
    }

    pub async fn resource(
        &self,
        project: ProjectId,
        resource: ResourceRef,
    ) -> Result<Option<Aggregate>, ModelError> {
        either!(self, resource(project, resource))
    }

    pub async fn list_customers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Customer>, PageError> {
        either!(self, list_customers(project, page))
    }

    pub async fn list_accounts(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Account>, PageError> {
        either!(self, list_accounts(project, page))
    }

    pub async fn list_transfers(
        &self,
        project: ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Transfer>, PageError> {
        either!(self, list_transfers(project, page))
    }

    pub async fn list_resources(
        &self,
        project: ProjectId,
        kind: ResourceKind,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        either!(self, list_resources(project, kind, page))
    }

    pub async fn list_card_payin_refunds(
        &self,
        project: ProjectId,
        payin: CardPayinId,
        page: &PageRequest,
    ) -> Result<Page<Aggregate>, PageError> {
        either!(self, list_card_payin_refunds(project, payin, page))
    }

    pub async fn list_transactions(
        &self,
        project: ProjectId,
        account: Option<AccountId>,
        page: &PageRequest,
    ) -> Result<Page<Transaction>, PageError> {
        either!(self, list_transactions(project, account, page))
    }

    pub async fn fx_rates(&self) -> Result<Vec<FxRateEntry>, ModelError> {
        either!(self, fx_rates())
    }
}
