//! The invariants of imported bank data, as pure checks of an event
//! against the state before it: what the audit replay checks (issue 13,
//! item 6) besides the connection lifecycle (`ConnectionStatus::may_become`
//! and `may_expire_consent` of the connection family). The deciders never
//! write an event these checks reject (`tests/aggregated_account.rs`).

use std::collections::HashSet;

use super::events::{AggregatedTransactionsRecorded, TransactionStatus};
use super::seen::{Seen, transaction_id};
use super::state::AggregatedAccount;
use crate::aggregation_import::oldest_history_date;
use crate::kernel::id::AggregatedTransactionId;

/// A rule a batch of transactions broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransactionRule {
    /// Recorded on an account whose connection was deleted.
    ConnectionDeleted,
    /// Recorded on an account the end user has not consented to share.
    AccountDisabled,
    /// Recorded on an account the bank no longer lists.
    AccountArchived,
    /// The ID is not the one derived from the account and the bank's ID.
    IdNotDerived,
    /// A bank transaction recorded before on the account (or twice in the
    /// batch): booked again, or pending again.
    RecordedTwice,
    /// Booked more than 5 years before the batch.
    OutsideHistory,
    /// Not in the account's currency.
    CurrencyMismatch,
}

impl TransactionRule {
    /// The rule's name, as the audit reports it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectionDeleted => "aggregated_transaction_on_deleted_connection",
            Self::AccountDisabled => "aggregated_transaction_on_disabled_account",
            Self::AccountArchived => "aggregated_transaction_on_archived_account",
            Self::IdNotDerived => "aggregated_transaction_id_derived",
            Self::RecordedTwice => "aggregated_transaction_recorded_once",
            Self::OutsideHistory => "aggregated_transaction_within_history",
            Self::CurrencyMismatch => "aggregated_transaction_currency",
        }
    }
}

/// What `event`, folded into `account` (its state before the event),
/// breaks; `connection_deleted` says whether the account's connection was
/// deleted before it. Empty when the batch is sound.
pub fn check_recorded(
    account: &AggregatedAccount,
    connection_deleted: bool,
    event: &AggregatedTransactionsRecorded,
) -> Vec<(Option<AggregatedTransactionId>, TransactionRule)> {
    let mut broken = Vec::new();
    if connection_deleted {
        broken.push((None, TransactionRule::ConnectionDeleted));
    }
    if account.is_disabled() {
        broken.push((None, TransactionRule::AccountDisabled));
    }
    if account.is_archived() {
        broken.push((None, TransactionRule::AccountArchived));
    }
    let oldest = oldest_history_date(event.recorded_at).ok();
    let mut in_batch = HashSet::new();
    for tx in &event.transactions {
        let mut fail = |rule| broken.push((Some(tx.id), rule));
        if tx.id != transaction_id(account.id, &tx.bank_transaction_id) {
            fail(TransactionRule::IdNotDerived);
        }
        let again = match account.transactions.lookup(tx.id) {
            Seen::New => false,
            // The booked version of a pending one replaces it.
            Seen::Pending => !(tx.status == TransactionStatus::Booked && tx.replaces == Some(tx.id)),
            Seen::Settled { .. } => true,
        };
        if again || !in_batch.insert(tx.id) {
            fail(TransactionRule::RecordedTwice);
        }
        if oldest.is_some_and(|oldest| tx.booking_date < oldest) {
            fail(TransactionRule::OutsideHistory);
        }
        if tx.amount.currency != account.currency {
            fail(TransactionRule::CurrencyMismatch);
        }
    }
    broken
}
