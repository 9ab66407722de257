//! An aggregated account's state and how its events evolve it.

use serde::{Deserialize, Serialize};

use super::events::*;
use super::seen::{SeenTransactions, oldest_kept_month};
use crate::aggregation_import::HISTORY_LIMIT_DAYS;
use crate::context::{Owned, misapplied};
use crate::kernel::date::Date;
use crate::kernel::id::{AggregatedAccountId, AggregationConnectionId, CustomerId, ProjectId};
use crate::kernel::money::Currency;
use crate::kernel::time::Timestamp;

/// An account at another bank, found through a connection. Its
/// transactions are in the log (`AggregatedTransactionsRecorded`) and the
/// read models; the state keeps only their digests ([`SeenTransactions`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedAccount {
    pub id: AggregatedAccountId,
    pub project_id: ProjectId,
    pub connection_id: AggregationConnectionId,
    pub customer_id: CustomerId,
    pub account_type: AggregatedAccountType,
    pub currency: Currency,
    pub personal: AccountPersonal,
    pub balances: Vec<Balance>,
    /// Set when the end user consented; until then the account is disabled:
    /// its name only, no transactions.
    pub enabled_at: Option<Timestamp>,
    /// Set while the bank no longer lists the account.
    pub archived_at: Option<Timestamp>,
    pub discovered_at: Timestamp,
    pub updated_at: Timestamp,
    pub transactions: SeenTransactions,
}

impl Owned for AggregatedAccount {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

impl AggregatedAccount {
    pub fn is_disabled(&self) -> bool {
        self.enabled_at.is_none()
    }

    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

fn oldest_month(at: Timestamp) -> u32 {
    oldest_kept_month(Date::of(at), HISTORY_LIMIT_DAYS)
}

pub(crate) fn evolve(
    state: Option<AggregatedAccount>,
    event: AggregatedAccountEvent,
) -> Option<AggregatedAccount> {
    use AggregatedAccountEvent as E;
    Some(match (state, event) {
        (None, E::AggregatedAccountDiscovered(e)) => AggregatedAccount {
            id: e.id,
            project_id: e.project_id,
            connection_id: e.connection_id,
            customer_id: e.customer_id,
            account_type: e.account_type,
            currency: e.currency,
            personal: e.personal,
            balances: Vec::new(),
            enabled_at: None,
            archived_at: None,
            discovered_at: e.discovered_at,
            updated_at: e.discovered_at,
            transactions: SeenTransactions::default(),
        },
        (Some(a), E::AggregatedAccountUpdated(e)) => AggregatedAccount {
            account_type: e.account_type,
            personal: e.personal,
            balances: e.balances,
            updated_at: e.updated_at,
            ..a
        },
        (Some(a), E::AggregatedAccountEnabled(e)) => AggregatedAccount {
            enabled_at: Some(e.enabled_at),
            ..a
        },
        (Some(a), E::AggregatedAccountArchived(e)) => AggregatedAccount {
            archived_at: Some(e.archived_at),
            ..a
        },
        (Some(a), E::AggregatedAccountUnarchived(_)) => AggregatedAccount {
            archived_at: None,
            ..a
        },
        (Some(mut a), E::AggregatedTransactionsRecorded(e)) => {
            a.transactions
                .record(&e.transactions, oldest_month(e.recorded_at));
            a
        }
        (Some(mut a), E::AggregatedTransactionsRemoved(e)) => {
            a.transactions
                .remove(&e.transaction_ids, oldest_month(e.removed_at));
            a
        }
        (state, event) => return misapplied(state, &event),
    })
}
