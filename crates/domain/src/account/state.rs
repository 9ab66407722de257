//! The states of accounts and of project totals, and how their events
//! evolve them.

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::events::Event;
use crate::kernel::id::{AccountId, CustomerId, ProjectId, TransactionId};
use crate::kernel::meta::Meta;
use crate::kernel::money::{Currency, Money};
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub project_id: ProjectId,
    pub customer_id: Option<CustomerId>,
    pub balance: Money,
    pub allow_negative_balance: bool,
    pub meta: Meta,
    pub created_at: Timestamp,
    pub last_transaction: Option<TransactionId>,
}

impl Account {
    pub fn currency(&self) -> Currency {
        self.balance.currency
    }
}

/// Sum of one project's balances in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectBalance {
    pub total: Money,
}

/// Applies an account or project total event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty, Event::AccountOpened(e)) => Aggregate::Account(Account {
            id: e.id,
            project_id: e.project_id,
            customer_id: e.customer_id,
            balance: Money::zero(e.currency),
            allow_negative_balance: e.allow_negative_balance,
            meta: e.meta.clone(),
            created_at: e.created_at,
            last_transaction: None,
        }),
        (Aggregate::Account(a), Event::NegativeBalanceAllowanceChanged(e)) => Aggregate::Account(Account {
            allow_negative_balance: e.allow_negative_balance,
            ..a
        }),
        (Aggregate::Account(a), Event::AccountMetaUpdated(e)) => Aggregate::Account(Account {
            meta: e.meta.clone(),
            ..a
        }),
        (Aggregate::Account(a), Event::TransactionRecorded(e)) => {
            let tx = &e.transaction;
            debug_assert_eq!(a.balance.checked_add(tx.value), Ok(tx.balance_after));
            Aggregate::Account(Account {
                balance: tx.balance_after,
                last_transaction: Some(tx.id),
                ..a
            })
        }
        (Aggregate::Empty | Aggregate::ProjectBalance(_), Event::ProjectBalanceChanged(e)) => {
            Aggregate::ProjectBalance(ProjectBalance { total: e.total_after })
        }
        (state, event) => state.misapplied(event),
    }
}
