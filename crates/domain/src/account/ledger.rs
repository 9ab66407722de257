//! The ledger: how any family changes a balance. Settlements, refunds,
//! payouts, bank payins and transfers all record their balance changes
//! through [`Context::movement`], so the overdraft and project-total rules
//! hold in one place.

use super::events::{AccountEvent, ProjectBalanceChanged, Transaction, TransactionKind, TransactionRecorded};
use super::state::{Account, ProjectBalance};
use crate::context::Context;
use crate::kernel::error::{DomainError, Refusal, overflow};
use crate::kernel::id::{AccountId, TransactionId};
use crate::kernel::money::Money;
use crate::kernel::stream::StreamRef;

impl Context<'_> {
    /// One balance change of `account`: the transaction, and when money
    /// enters or leaves the project (`crosses_boundary`), the change of the
    /// project's total in the currency. Refuses what would take the account
    /// below zero (unless it allows it) or the project's total below zero.
    pub(crate) fn movement<E: From<AccountEvent>>(
        &self,
        account: &Account,
        kind: TransactionKind,
        value: Money,
        transaction_id: TransactionId,
        crosses_boundary: bool,
    ) -> Result<Vec<(StreamRef, E)>, DomainError> {
        debug_assert_eq!(value.currency, account.currency());
        debug_assert_ne!(value.amount, 0);
        let balance_after = account.balance.checked_add(value).map_err(|_| overflow())?;
        if value.is_negative() && balance_after.is_negative() && !account.allow_negative_balance {
            return Err(DomainError::refused(
                Refusal::InsufficientFunds,
                format!(
                    "account {} has {}, cannot take {}",
                    account.id,
                    account.balance,
                    value.checked_neg().map_err(|_| overflow())?
                ),
            ));
        }
        let transaction = Transaction {
            id: transaction_id,
            account_id: account.id,
            project_id: account.project_id,
            kind,
            value,
            balance_after,
            created_at: self.now(),
        };
        let mut events = vec![(
            StreamRef::Account(account.id),
            AccountEvent::TransactionRecorded(TransactionRecorded { transaction }).into(),
        )];
        if crosses_boundary {
            events.push(self.project_total_change(account, value, transaction_id)?);
        }
        Ok(events)
    }

    fn project_total_change<E: From<AccountEvent>>(
        &self,
        account: &Account,
        delta: Money,
        transaction_id: TransactionId,
    ) -> Result<(StreamRef, E), DomainError> {
        let totals = StreamRef::ProjectBalance(account.project_id, delta.currency);
        let total = self
            .state::<ProjectBalance>(&totals)
            .map_or(Money::zero(delta.currency), |balance| balance.total);
        let total_after = total.checked_add(delta).map_err(|_| overflow())?;
        if delta.is_negative() && total_after.is_negative() {
            return Err(DomainError::refused(
                Refusal::ProjectBalanceNegative,
                format!(
                    "the sum of the project's {} balances would be {total_after}; it must stay at or above zero",
                    delta.currency
                ),
            ));
        }
        Ok((
            totals,
            AccountEvent::ProjectBalanceChanged(ProjectBalanceChanged {
                project_id: account.project_id,
                delta,
                total_after,
                account_id: account.id,
                transaction_id,
            })
            .into(),
        ))
    }

    pub(crate) fn account(&self, id: AccountId) -> Result<&Account, DomainError> {
        self.owned::<Account>(&StreamRef::Account(id))
            .ok_or_else(|| DomainError::not_found("account", id))
    }
}
