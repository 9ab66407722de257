//! `open-banking`: connections, imports, aggregated accounts and their
//! transactions, and what the sync scheduler has due.
//!
//! - Connections: one list per project, indexed per customer; imports: one
//!   list per connection; aggregated accounts: one list per project,
//!   indexed per connection and per customer. Each row is the aggregate's
//!   state (the domain's own fold), except an account's, which leaves out
//!   the digests of its transactions (the engine's state keeps those; a
//!   query never needs them, and rewriting them at every batch would cost
//!   up to a megabyte per account).
//! - Transactions are sorted rows per account, keyed by booking date and
//!   ID, so they are read newest first by booking date, within a date
//!   range, with a cursor (the last key read) that stays valid while syncs
//!   add transactions; pending ones are also under a key of their own, so
//!   "pending only" never walks the booked history. A booked transaction
//!   replacing a pending one, and a removal, take the old rows out.
//! - Deleting a connection writes one row: queries check the connection
//!   of whatever they read and answer not found, without rewriting its
//!   accounts and transactions.
//! - What is due, for `paycore-aggregation-sync`'s scheduler: connections
//!   `CONNECTED` by the time they got there (a refresh), `REFRESH_DELAYED`
//!   by the next try, live consents by their expiry, and the imports not
//!   finished (to resume after a restart), as sorted rows by time.

use paycore_domain::aggregate::{AggregatedAccount, AggregationConnection, AggregationImport};
use paycore_domain::aggregated_account::{AggregatedTransaction, TransactionStatus};
use paycore_domain::aggregation_connection::ConnectionStatus;
use paycore_domain::aggregation_import::ImportStatus;
use paycore_domain::kernel::date::Date;
use paycore_domain::{
    Aggregate, AggregatedAccountId, AggregatedTransactionId, AggregationConnectionId, AggregationImportId,
    Event, ProjectId, ResourceRef, Timestamp,
};
use serde::{Deserialize, Serialize};

use super::{Applied, Projection};
use crate::db::ModelError;
use crate::rows::{Key, RowsMut};

pub(crate) struct OpenBanking;

impl Projection for OpenBanking {
    const NAME: &'static str = "open-banking";
    const VERSION: u32 = 2;
    /// 2: new IDs stored as runs (`id_runs.rs`); rows of 1 read as they are.
    const CONTINUES: Option<u32> = Some(1);
    const DESCRIPTION: &'static str =
        "open banking: connections, imports, aggregated accounts and transactions, syncs due";

    fn apply(rows: &mut RowsMut<'_>, applied: &Applied<'_>) -> Result<(), ModelError> {
        match applied.category {
            "aggregationconnection" => match applied.stream_id.parse() {
                Ok(id) => connection(rows, id, applied.event),
                Err(_) => Ok(()),
            },
            "aggregationimport" => match applied.stream_id.parse() {
                Ok(id) => import(rows, id, applied.event),
                Err(_) => Ok(()),
            },
            "aggregatedaccount" => match applied.stream_id.parse() {
                Ok(id) => account(rows, id, applied.event),
                Err(_) => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// Why a connection is due for the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DueKind {
    /// `CONNECTED` since the time of the row: refreshed once that is old
    /// enough.
    Refresh,
    /// `REFRESH_DELAYED` until the time of the row.
    Retry,
    /// Its consent expires at the time of the row.
    ConsentExpiry,
}

impl DueKind {
    pub const ALL: [DueKind; 3] = [DueKind::Refresh, DueKind::Retry, DueKind::ConsentExpiry];
}

/// A connection with something due, an import to resume, or a pending
/// transfer due to expire: whose it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owner<I> {
    pub project: ProjectId,
    pub id: I,
}

/// Where a transaction's sorted rows are: its account and key suffix, and
/// whether it is also under the pending ones. `None` once removed or
/// replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TransactionAt {
    pub account: AggregatedAccountId,
    pub booking_date: Date,
    pub pending: bool,
}

/// A sorted key suffix: the booking date (so keys sort by it) and the
/// transaction's ID (so a day's transactions have an order, and a key one
/// transaction).
pub(crate) fn transaction_suffix(booking_date: Date, id: AggregatedTransactionId) -> Vec<u8> {
    let mut suffix = date_key(booking_date).to_vec();
    suffix.extend_from_slice(id.uuid().as_bytes());
    suffix
}

/// A date as four bytes that sort as the dates do.
pub(crate) fn date_key(date: Date) -> [u8; 4] {
    let days = i32::try_from(date.days_since_epoch()).unwrap_or(i32::MAX);
    (days.cast_unsigned() ^ 0x8000_0000).to_be_bytes()
}

/// A time as eight bytes that sort as the times do.
pub(crate) fn time_key(at: Timestamp) -> [u8; 8] {
    (at.micros().cast_unsigned() ^ 0x8000_0000_0000_0000).to_be_bytes()
}

/// The time of a due row's suffix.
pub(crate) fn time_of_key(suffix: &[u8]) -> Option<Timestamp> {
    let bytes: [u8; 8] = suffix.get(..8)?.try_into().ok()?;
    Some(Timestamp::from_micros(
        (u64::from_be_bytes(bytes) ^ 0x8000_0000_0000_0000).cast_signed(),
    ))
}

fn due_suffix(at: Timestamp, id: AggregationConnectionId) -> Vec<u8> {
    let mut suffix = time_key(at).to_vec();
    suffix.extend_from_slice(id.uuid().as_bytes());
    suffix
}

/// What the scheduler has due for `connection` in this state.
fn due_rows(connection: &AggregationConnection) -> Vec<(DueKind, Timestamp)> {
    if connection.is_deleted() {
        return Vec::new();
    }
    let mut due = Vec::new();
    match connection.status {
        ConnectionStatus::Connected => due.push((DueKind::Refresh, connection.status_changed_at)),
        ConnectionStatus::RefreshDelayed { next_try_at } => due.push((DueKind::Retry, next_try_at)),
        _ => {}
    }
    if let Some(consent) = connection.consent
        && connection.status.may_expire_consent()
    {
        due.push((DueKind::ConsentExpiry, consent.expires_at));
    }
    due
}

fn connection(rows: &mut RowsMut<'_>, id: AggregationConnectionId, event: &Event) -> Result<(), ModelError> {
    let key = Key::Resource(ResourceRef::AggregationConnection(id));
    let old: Option<AggregationConnection> = rows.get(key)?;
    let before = old
        .clone()
        .map(Aggregate::AggregationConnection)
        .unwrap_or_default();
    let Some(new) = before.evolve(event).as_aggregation_connection().cloned() else {
        return Ok(());
    };
    match &old {
        None => {
            if let Some(seq) = rows.insert(Key::AggregationConnections(new.project_id), key, &new)? {
                rows.push_index(Key::CustomerAggregationConnections(new.customer_id), seq)?;
            }
        }
        Some(_) => rows.update(key, |_: AggregationConnection| new.clone())?,
    }
    for (kind, at) in old.as_ref().map(due_rows).unwrap_or_default() {
        rows.remove_sorted(Key::AggregationDue(kind), &due_suffix(at, id));
    }
    let owner = Owner {
        project: new.project_id,
        id,
    };
    for (kind, at) in due_rows(&new) {
        rows.put_sorted(Key::AggregationDue(kind), &due_suffix(at, id), &owner)?;
    }
    Ok(())
}

fn import(rows: &mut RowsMut<'_>, id: AggregationImportId, event: &Event) -> Result<(), ModelError> {
    let key = Key::Resource(ResourceRef::AggregationImport(id));
    let old: Option<AggregationImport> = rows.get(key)?;
    let before = old.clone().map(Aggregate::AggregationImport).unwrap_or_default();
    let Some(new) = before.evolve(event).as_aggregation_import().cloned() else {
        return Ok(());
    };
    match old {
        None => {
            rows.insert(Key::ConnectionImports(new.connection_id), key, &new)?;
        }
        Some(_) => rows.update(key, |_: AggregationImport| new.clone())?,
    }
    let suffix = id.uuid().as_bytes().to_vec();
    if matches!(new.status, ImportStatus::Pending | ImportStatus::Running) {
        let owner = Owner {
            project: new.project_id,
            id,
        };
        rows.put_sorted(Key::UnfinishedAggregationImports, &suffix, &owner)?;
    } else {
        rows.remove_sorted(Key::UnfinishedAggregationImports, &suffix);
    }
    Ok(())
}

fn account(rows: &mut RowsMut<'_>, id: AggregatedAccountId, event: &Event) -> Result<(), ModelError> {
    match event {
        Event::AggregatedTransactionsRecorded(recorded) => {
            for transaction in &recorded.transactions {
                record_transaction(rows, id, transaction)?;
            }
            Ok(())
        }
        Event::AggregatedTransactionsRemoved(removed) => {
            for transaction in &removed.transaction_ids {
                take_out_transaction(rows, *transaction)?;
            }
            Ok(())
        }
        _ => account_row(rows, id, event),
    }
}

/// The account's own row: discovered, updated, enabled, archived,
/// unarchived (transactions never touch it).
fn account_row(rows: &mut RowsMut<'_>, id: AggregatedAccountId, event: &Event) -> Result<(), ModelError> {
    let key = Key::Resource(ResourceRef::AggregatedAccount(id));
    let old: Option<AggregatedAccount> = rows.get(key)?;
    let existed = old.is_some();
    let before = old.map(Aggregate::AggregatedAccount).unwrap_or_default();
    let Some(new) = before.evolve(event).as_aggregated_account().cloned() else {
        return Ok(());
    };
    debug_assert!(
        new.transactions.is_empty(),
        "a row never holds transaction digests"
    );
    if existed {
        return rows.update(key, |_: AggregatedAccount| new.clone());
    }
    if let Some(seq) = rows.insert(Key::AggregatedAccounts(new.project_id), key, &new)? {
        rows.push_index(Key::ConnectionAggregatedAccounts(new.connection_id), seq)?;
        rows.push_index(Key::CustomerAggregatedAccounts(new.customer_id), seq)?;
    }
    Ok(())
}

fn record_transaction(
    rows: &mut RowsMut<'_>,
    account: AggregatedAccountId,
    transaction: &AggregatedTransaction,
) -> Result<(), ModelError> {
    if let Some(replaced) = transaction.replaces {
        take_out_transaction(rows, replaced)?;
    }
    // Recorded once by the domain; a log repeating one still leaves one row.
    take_out_transaction(rows, transaction.id)?;
    let pending = transaction.status == TransactionStatus::Pending;
    let suffix = transaction_suffix(transaction.booking_date, transaction.id);
    rows.put_sorted(Key::AggregatedTransactions(account), &suffix, transaction)?;
    if pending {
        rows.put_sorted(Key::PendingAggregatedTransactions(account), &suffix, transaction)?;
    }
    let at = TransactionAt {
        account,
        booking_date: transaction.booking_date,
        pending,
    };
    rows.set_value(Key::AggregatedTransactionAt(transaction.id), &Some(at))
}

/// Takes transaction `id`'s rows out (removed at the bank, or replaced by
/// its booked version), if it has any.
fn take_out_transaction(rows: &mut RowsMut<'_>, id: AggregatedTransactionId) -> Result<(), ModelError> {
    let key = Key::AggregatedTransactionAt(id);
    let Some(Some(at)) = rows.value::<Option<TransactionAt>>(key)? else {
        return Ok(());
    };
    let suffix = transaction_suffix(at.booking_date, id);
    rows.remove_sorted(Key::AggregatedTransactions(at.account), &suffix);
    if at.pending {
        rows.remove_sorted(Key::PendingAggregatedTransactions(at.account), &suffix);
    }
    rows.set_value(key, &None::<TransactionAt>)
}
