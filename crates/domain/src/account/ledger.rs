//! The ledger: how any family changes a balance. Settlements, refunds,
//! payouts, bank payins and transfers all record their balance changes
//! through [`Context::movement`], so the overdraft and project-total rules
//! hold in one place. Pending transfers hold and release amounts through
//! [`Context::pending_change`], under the same overdraft rule: every debit
//! and every hold is judged against the *available* balance (posted balance
//! less pending debits).

use super::events::{
    AccountEvent, PendingPhase, PendingTransaction, PendingTransactionRecorded, ProjectBalanceChanged,
    Transaction, TransactionKind, TransactionRecorded,
};
use super::state::{Account, ProjectBalance};
use crate::context::Context;
use crate::kernel::error::{DomainError, Refusal, overflow};
use crate::kernel::id::{AccountId, TransactionId, TransferId};
use crate::kernel::money::Money;
use crate::kernel::stream::StreamRef;

impl Context<'_> {
    /// One balance change of `account`: the transaction, and when money
    /// enters or leaves the project (`crosses_boundary`), the change of the
    /// project's total in the currency. Refuses a debit that would take the
    /// account's available balance below zero (unless it allows a negative
    /// balance) or the project's total below zero.
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
        let available_after = balance_after
            .checked_sub(account.pending_debits)
            .map_err(|_| overflow())?;
        if value.is_negative() {
            must_stay_covered(account, available_after, value)?;
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

    /// One phase of a pending transaction on `account` (see
    /// [`PendingTransaction`]): `value` is signed like the transaction it
    /// holds (negative for a debit). A hold of a debit is refused when it
    /// would take the available balance below zero (unless the account
    /// allows a negative balance); a release never is. Answers the event and
    /// the account as it leaves it, for a movement in the same decision.
    pub(crate) fn pending_change<E: From<AccountEvent>>(
        &self,
        account: &Account,
        (transfer_id, transaction_id): (TransferId, TransactionId),
        phase: PendingPhase,
        value: Money,
    ) -> Result<((StreamRef, E), Account), DomainError> {
        debug_assert_eq!(value.currency, account.currency());
        debug_assert_ne!(value.amount, 0);
        let pending = PendingTransaction {
            id: transaction_id,
            transfer_id,
            account_id: account.id,
            project_id: account.project_id,
            phase,
            value,
            pending_debits_after: account.pending_debits,
            pending_credits_after: account.pending_credits,
            created_at: self.now(),
        };
        let (debits, credits) = pending
            .pending_after(account.pending_debits, account.pending_credits)
            .ok_or_else(overflow)?;
        // A release gives back what a hold took, so on the account's current
        // state the totals stay at or above zero. Not an assertion: with
        // several servers, the account can be this server's older state,
        // from before another server's hold, while the transfer was read
        // with it. Such a decision names that older version of the account
        // stream, so its append is refused as a version conflict and the
        // command is decided again on the current state; the audit checks
        // that no recorded total is ever negative (`pending_balances`).
        let after = Account {
            pending_debits: debits,
            pending_credits: credits,
            ..account.clone()
        };
        let available_after = after.balance.checked_sub(debits).map_err(|_| overflow())?;
        if value.is_negative() && !phase.releases() {
            must_stay_covered(account, available_after, value)?;
        }
        let pending = PendingTransaction {
            pending_debits_after: debits,
            pending_credits_after: credits,
            ..pending
        };
        let event = AccountEvent::PendingTransactionRecorded(PendingTransactionRecorded { pending });
        Ok(((StreamRef::Account(account.id), event.into()), after))
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

/// The overdraft rule: a debit of `value` (negative) that leaves
/// `available_after` below zero is refused unless the account allows a
/// negative balance.
fn must_stay_covered(account: &Account, available_after: Money, value: Money) -> Result<(), DomainError> {
    if !available_after.is_negative() || account.allow_negative_balance {
        return Ok(());
    }
    Err(DomainError::refused(
        Refusal::InsufficientFunds,
        format!(
            "account {} has {} available, cannot take {}",
            account.id,
            account.available(),
            value.checked_neg().map_err(|_| overflow())?
        ),
    ))
}
