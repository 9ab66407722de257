//! The states of accounts and of project totals, and how their events
//! evolve them.

use serde::{Deserialize, Serialize};

use super::events::AccountEvent;
use crate::context::{Owned, misapplied};
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
    /// Held by pending transfers from this account: not taken from
    /// `balance` yet, no longer available. Never negative.
    pub pending_debits: Money,
    /// Promised by pending transfers to this account: not in `balance`
    /// yet, so not available either. Never negative.
    pub pending_credits: Money,
}

impl Account {
    pub fn currency(&self) -> Currency {
        self.balance.currency
    }

    /// What the account can spend: the posted balance less what pending
    /// transfers hold (pending credits count only once posted). The ledger
    /// checks every debit and hold against it, so it stays in range; were
    /// it not to, it saturates rather than wrap.
    pub fn available(&self) -> Money {
        debug_assert!(self.balance.checked_sub(self.pending_debits).is_ok());
        Money::new(
            self.balance.amount.saturating_sub(self.pending_debits.amount),
            self.currency(),
        )
    }
}

/// Sum of one project's balances in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectBalance {
    pub total: Money,
}

impl Owned for Account {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// The account family's aggregates: an account's stream and a project's
/// total in one currency (`projectbalance-…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountAggregate {
    Account(Account),
    ProjectBalance(ProjectBalance),
}

/// Applies an account or project total event to the state of its stream
/// (`None` before the first).
pub(crate) fn evolve(state: Option<AccountAggregate>, event: AccountEvent) -> Option<AccountAggregate> {
    use AccountAggregate as A;
    use AccountEvent as E;
    Some(match (state, event) {
        (None, E::AccountOpened(e)) => A::Account(Account {
            id: e.id,
            project_id: e.project_id,
            customer_id: e.customer_id,
            balance: Money::zero(e.currency),
            allow_negative_balance: e.allow_negative_balance,
            meta: e.meta,
            created_at: e.created_at,
            last_transaction: None,
            pending_debits: Money::zero(e.currency),
            pending_credits: Money::zero(e.currency),
        }),
        (Some(A::Account(a)), E::NegativeBalanceAllowanceChanged(e)) => A::Account(Account {
            allow_negative_balance: e.allow_negative_balance,
            ..a
        }),
        (Some(A::Account(a)), E::AccountMetaUpdated(e)) => A::Account(Account { meta: e.meta, ..a }),
        (Some(A::Account(a)), E::TransactionRecorded(e)) => {
            let tx = &e.transaction;
            debug_assert_eq!(a.balance.checked_add(tx.value), Ok(tx.balance_after));
            A::Account(Account {
                balance: tx.balance_after,
                last_transaction: Some(tx.id),
                ..a
            })
        }
        (Some(A::Account(a)), E::PendingTransactionRecorded(e)) => {
            let pending = &e.pending;
            debug_assert_eq!(
                pending.pending_after(a.pending_debits, a.pending_credits),
                Some((pending.pending_debits_after, pending.pending_credits_after))
            );
            // Negative totals are not asserted: a decision made on an older
            // state of the account (see `Context::pending_change`) stages
            // them, and its append is refused as a version conflict.
            A::Account(Account {
                pending_debits: pending.pending_debits_after,
                pending_credits: pending.pending_credits_after,
                ..a
            })
        }
        (None | Some(A::ProjectBalance(_)), E::ProjectBalanceChanged(e)) => {
            A::ProjectBalance(ProjectBalance { total: e.total_after })
        }
        (state, event) => return misapplied(state, &event),
    })
}
