//! Queries of the `open-banking` read model: connections, imports,
//! aggregated accounts and transactions for the gRPC services, and what is
//! due for the sync scheduler. Whatever belongs to a deleted connection is
//! not found.

use std::ops::Bound;

use paycore_domain::aggregate::{AggregatedAccount, AggregationConnection, AggregationImport};
use paycore_domain::aggregated_account::{AggregatedTransaction, TransactionStatus};
use paycore_domain::kernel::date::Date;
use paycore_domain::{
    AggregatedAccountId, AggregatedTransactionId, AggregationConnectionId, AggregationImportId, CustomerId,
    ProjectId, ResourceRef, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::models::{
    Directory, DueKind, OpenBanking, Owner, TransactionAt, date_key, time_key, time_of_key,
    transaction_suffix,
};
use crate::page::{self, ListKind};
use crate::rows::{Key, RowsRead};
use crate::{ModelError, Page, PageError, PageRequest, ReadModels};

/// Whose aggregated accounts to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregatedAccountsOf {
    Connection(AggregationConnectionId),
    Customer(CustomerId),
}

/// Which of an account's transactions to list: booked on or after
/// `booked_from`, on or before `booked_to`, of one status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedTransactionFilter {
    pub booked_from: Option<Date>,
    pub booked_to: Option<Date>,
    pub status: Option<TransactionStatus>,
}

/// A connection the sync scheduler has something due for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueConnection {
    pub project: ProjectId,
    pub connection: AggregationConnectionId,
    pub kind: DueKind,
    /// When: for a refresh, the time it became `CONNECTED`; for a retry,
    /// the next try; for a consent, its expiry.
    pub at: Timestamp,
}

/// The most unfinished imports one call answers.
const MAX_UNFINISHED: usize = 10_000;

impl ReadModels {
    /// Connection `id` of `project`, unless deleted.
    pub fn aggregation_connection(
        &self,
        project: ProjectId,
        id: AggregationConnectionId,
    ) -> Result<Option<AggregationConnection>, ModelError> {
        let view = self.view()?;
        live_connection(&view.rows::<OpenBanking>()?, project, id)
    }

    /// A customer's connections, newest first, deleted ones left out;
    /// `ParentNotFound` for a customer the project does not have.
    pub fn list_aggregation_connections(
        &self,
        project: ProjectId,
        customer: CustomerId,
        request: &PageRequest,
    ) -> Result<Page<AggregationConnection>, PageError> {
        let view = self.view()?;
        let found: Option<paycore_domain::aggregate::Customer> =
            view.rows::<Directory>()?.get(Key::Customer(customer))?;
        if found.is_none_or(|found| found.project_id != project) {
            return Err(PageError::ParentNotFound);
        }
        let rows = view.rows::<OpenBanking>()?;
        let index = Key::CustomerAggregationConnections(customer);
        let target = Key::AggregationConnections(project);
        page::filtered(
            project,
            ListKind::AggregationConnections(customer),
            request,
            rows.len(index)?,
            |range| rows.newest_first_through(index, target, range),
            |connection: &AggregationConnection| Ok(!connection.is_deleted()),
        )
    }

    /// Import `id` of `project`, unless its connection is deleted.
    pub fn aggregation_import(
        &self,
        project: ProjectId,
        id: AggregationImportId,
    ) -> Result<Option<AggregationImport>, ModelError> {
        let view = self.view()?;
        let rows = view.rows::<OpenBanking>()?;
        let found: Option<AggregationImport> = rows.get(Key::Resource(ResourceRef::AggregationImport(id)))?;
        let Some(import) = found.filter(|import| import.project_id == project) else {
            return Ok(None);
        };
        Ok(live_connection(&rows, project, import.connection_id)?.map(|_| import))
    }

    /// A connection's imports, newest first.
    pub fn list_aggregation_imports(
        &self,
        project: ProjectId,
        connection: AggregationConnectionId,
        request: &PageRequest,
    ) -> Result<Page<AggregationImport>, PageError> {
        let view = self.view()?;
        let rows = view.rows::<OpenBanking>()?;
        if live_connection(&rows, project, connection)?.is_none() {
            return Err(PageError::ParentNotFound);
        }
        let list = Key::ConnectionImports(connection);
        page::slice(
            project,
            ListKind::AggregationImports(connection),
            request,
            rows.len(list)?,
            |range| rows.newest_first(list, range),
        )
    }

    /// Aggregated account `id` of `project` (archived ones too), unless its
    /// connection is deleted.
    pub fn aggregated_account(
        &self,
        project: ProjectId,
        id: AggregatedAccountId,
    ) -> Result<Option<AggregatedAccount>, ModelError> {
        let view = self.view()?;
        live_account(&view.rows::<OpenBanking>()?, project, id)
    }

    /// A connection's or a customer's aggregated accounts, newest first;
    /// archived ones only if asked for; accounts of deleted connections
    /// never. `ParentNotFound` for a connection or customer the project
    /// does not have (a deleted connection included).
    pub fn list_aggregated_accounts(
        &self,
        project: ProjectId,
        of: AggregatedAccountsOf,
        include_archived: bool,
        request: &PageRequest,
    ) -> Result<Page<AggregatedAccount>, PageError> {
        let view = self.view()?;
        let rows = view.rows::<OpenBanking>()?;
        let (index, list) = match of {
            AggregatedAccountsOf::Connection(connection) => {
                if live_connection(&rows, project, connection)?.is_none() {
                    return Err(PageError::ParentNotFound);
                }
                let list = ListKind::ConnectionAggregatedAccounts {
                    connection,
                    include_archived,
                };
                (Key::ConnectionAggregatedAccounts(connection), list)
            }
            AggregatedAccountsOf::Customer(customer) => {
                let found: Option<paycore_domain::aggregate::Customer> =
                    view.rows::<Directory>()?.get(Key::Customer(customer))?;
                if found.is_none_or(|found| found.project_id != project) {
                    return Err(PageError::ParentNotFound);
                }
                let list = ListKind::CustomerAggregatedAccounts {
                    customer,
                    include_archived,
                };
                (Key::CustomerAggregatedAccounts(customer), list)
            }
        };
        let target = Key::AggregatedAccounts(project);
        let deleted = DeletedConnections::default();
        page::filtered(
            project,
            list,
            request,
            rows.len(index)?,
            |range| rows.newest_first_through(index, target, range),
            |account: &AggregatedAccount| {
                Ok((include_archived || !account.is_archived()) && !deleted.is_deleted(&rows, account)?)
            },
        )
    }

    /// An account's transactions, newest first by booking date (then by
    /// ID), as `filter` says; pending ones replaced by their booked version
    /// and removed ones are not listed. The page token is the last row's
    /// key, so a sync adding transactions meanwhile never repeats or skips
    /// one of those already there. `AccountNotFound` for an account the
    /// project does not have (or whose connection is deleted).
    pub fn list_aggregated_transactions(
        &self,
        project: ProjectId,
        account: AggregatedAccountId,
        filter: AggregatedTransactionFilter,
        request: &PageRequest,
    ) -> Result<Page<AggregatedTransaction>, PageError> {
        let view = self.view()?;
        let rows = view.rows::<OpenBanking>()?;
        if live_account(&rows, project, account)?.is_none() {
            return Err(PageError::AccountNotFound);
        }
        let list = ListKind::AggregatedTransactions { account, filter };
        let after = page::key_after(project, list, request)?;
        let (prefix, wanted) = match filter.status {
            Some(TransactionStatus::Pending) => (Key::PendingAggregatedTransactions(account), None),
            status => (Key::AggregatedTransactions(account), status),
        };
        // Newest first: from the end of the range (or just before the
        // token's key) down to its start.
        let lower = filter.booked_from.map(|from| date_key(from).to_vec());
        let upper_date = filter
            .booked_to
            .and_then(|to| to.plus_days(1))
            .map(|next| date_key(next).to_vec());
        let upper = match &after {
            Some(after) => Bound::Excluded(after.as_slice()),
            None => upper_date.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        };
        let lower = lower.as_deref().map_or(Bound::Unbounded, Bound::Included);
        let size = request.size.max(1);
        let mut items = Vec::with_capacity(size);
        let mut last_key = None;
        let mut more = false;
        rows.sorted(
            prefix,
            (lower, upper),
            true,
            |suffix, transaction: AggregatedTransaction| {
                if items.len() == size {
                    more = true;
                    return Ok(false);
                }
                if wanted.is_none_or(|status| status == transaction.status) {
                    last_key = Some(suffix.to_vec());
                    items.push(transaction);
                }
                Ok(true)
            },
        )?;
        let next_token = match (more, last_key) {
            (true, Some(last)) => Some(page::key_token(project, list, last)),
            _ => None,
        };
        Ok(Page { items, next_token })
    }

    /// Transaction `id` of `project` and its account, unless removed,
    /// replaced, or its connection deleted.
    pub fn aggregated_transaction(
        &self,
        project: ProjectId,
        id: AggregatedTransactionId,
    ) -> Result<Option<(AggregatedAccountId, AggregatedTransaction)>, ModelError> {
        let view = self.view()?;
        let rows = view.rows::<OpenBanking>()?;
        let Some(Some(at)) = rows.value::<Option<TransactionAt>>(Key::AggregatedTransactionAt(id))? else {
            return Ok(None);
        };
        if live_account(&rows, project, at.account)?.is_none() {
            return Ok(None);
        }
        let key = transaction_suffix(at.booking_date, id);
        let mut found = None;
        rows.sorted(
            Key::AggregatedTransactions(at.account),
            (Bound::Included(key.as_slice()), Bound::Included(key.as_slice())),
            false,
            |_, transaction: AggregatedTransaction| {
                found = Some(transaction);
                Ok(false)
            },
        )?;
        Ok(found.map(|transaction| (at.account, transaction)))
    }

    /// Imports PENDING or RUNNING (at most 10,000 per call), of connections
    /// not deleted: what the sync scheduler resumes after a restart.
    pub fn unfinished_aggregation_imports(
        &self,
    ) -> Result<Vec<(ProjectId, AggregationImportId)>, ModelError> {
        let view = self.view()?;
        let rows = view.rows::<OpenBanking>()?;
        let mut unfinished = Vec::new();
        rows.sorted(
            Key::UnfinishedAggregationImports,
            (Bound::Unbounded, Bound::Unbounded),
            false,
            |_, owner: Owner<AggregationImportId>| {
                unfinished.push((owner.project, owner.id));
                Ok(unfinished.len() < MAX_UNFINISHED)
            },
        )?;
        // An import of a deleted connection never resumes.
        let mut live = Vec::with_capacity(unfinished.len());
        for (project, id) in unfinished {
            let found: Option<AggregationImport> =
                rows.get(Key::Resource(ResourceRef::AggregationImport(id)))?;
            if let Some(import) = found
                && live_connection(&rows, project, import.connection_id)?.is_some()
            {
                live.push((project, id));
            }
        }
        Ok(live)
    }

    /// Connections with `kind` due at or before `until`, earliest first, at
    /// most `limit`.
    pub fn aggregation_connections_due(
        &self,
        kind: DueKind,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<DueConnection>, ModelError> {
        let view = self.view()?;
        let rows = view.rows::<OpenBanking>()?;
        let mut due = Vec::new();
        let mut after_until = time_key(until).to_vec();
        // Every connection at `until` itself: the largest suffix of that time.
        after_until.extend_from_slice(&[u8::MAX; 16]);
        rows.sorted(
            Key::AggregationDue(kind),
            (Bound::Unbounded, Bound::Included(after_until.as_slice())),
            false,
            |suffix, owner: Owner<AggregationConnectionId>| {
                if due.len() == limit {
                    return Ok(false);
                }
                let at = time_of_key(suffix).ok_or_else(|| ModelError::corrupt("a due row", "no time"))?;
                due.push(DueConnection {
                    project: owner.project,
                    connection: owner.id,
                    kind,
                    at,
                });
                Ok(true)
            },
        )?;
        Ok(due)
    }

    /// The earliest time something of `kind` is due, if anything is.
    pub fn next_aggregation_due(&self, kind: DueKind) -> Result<Option<Timestamp>, ModelError> {
        let view = self.view()?;
        let rows = view.rows::<OpenBanking>()?;
        let mut next = None;
        rows.sorted(
            Key::AggregationDue(kind),
            (Bound::Unbounded, Bound::Unbounded),
            false,
            |suffix, _: Owner<AggregationConnectionId>| {
                next = time_of_key(suffix);
                Ok(false)
            },
        )?;
        Ok(next)
    }
}

fn live_connection(
    rows: &RowsRead<'_>,
    project: ProjectId,
    id: AggregationConnectionId,
) -> Result<Option<AggregationConnection>, ModelError> {
    let found: Option<AggregationConnection> =
        rows.get(Key::Resource(ResourceRef::AggregationConnection(id)))?;
    Ok(found.filter(|connection| connection.project_id == project && !connection.is_deleted()))
}

fn live_account(
    rows: &RowsRead<'_>,
    project: ProjectId,
    id: AggregatedAccountId,
) -> Result<Option<AggregatedAccount>, ModelError> {
    let found: Option<AggregatedAccount> = rows.get(Key::Resource(ResourceRef::AggregatedAccount(id)))?;
    let Some(account) = found.filter(|account| account.project_id == project) else {
        return Ok(None);
    };
    Ok(live_connection(rows, project, account.connection_id)?.map(|_| account))
}

/// Which connections a page's accounts belong to are deleted, each looked
/// up once per page.
#[derive(Default)]
struct DeletedConnections {
    known: std::cell::RefCell<Vec<(AggregationConnectionId, bool)>>,
}

impl DeletedConnections {
    fn is_deleted(&self, rows: &RowsRead<'_>, account: &AggregatedAccount) -> Result<bool, ModelError> {
        let id = account.connection_id;
        if let Some((_, deleted)) = self.known.borrow().iter().find(|(known, _)| *known == id) {
            return Ok(*deleted);
        }
        let deleted = live_connection(rows, account.project_id, id)?.is_none();
        self.known.borrow_mut().push((id, deleted));
        Ok(deleted)
    }
}
