//! Deciding the account family's commands.

use super::events::{AccountEvent, AccountOpened, NegativeBalanceAllowanceChanged, TransactionKind};
use super::state::Account;
use crate::context::{Context, Decided};
use crate::kernel::error::{DomainError, Refusal, overflow};
use crate::kernel::id::{AccountId, CustomerId, TransactionId};
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::money::{Currency, Money};
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::project::Environment;

impl Context<'_> {
    pub(crate) fn create_account<E: From<AccountEvent>>(
        &self,
        id: AccountId,
        currency: Currency,
        customer_id: Option<CustomerId>,
        allow_negative_balance: bool,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::Account(id);
        self.must_be_new(&stream, "account", id)?;
        if let Some(customer_id) = customer_id {
            self.customer(customer_id)?;
        }
        let event = AccountEvent::AccountOpened(AccountOpened {
            id,
            project_id: project.id,
            customer_id,
            currency,
            allow_negative_balance,
            meta: meta.clone(),
            created_at: self.now,
        });
        Ok((vec![(stream, event.into())], ResourceRef::Account(id)))
    }

    pub(crate) fn update_account<E: From<AccountEvent>>(
        &self,
        id: AccountId,
        allow_negative_balance: Option<bool>,
        meta: &Option<Meta>,
        balance: Option<(Money, TransactionId)>,
    ) -> Result<Decided<E>, DomainError> {
        let account = self.account(id)?;
        let stream = StreamRef::Account(id);
        let mut events = Vec::new();
        let allow_negative = allow_negative_balance.unwrap_or(account.allow_negative_balance);
        if let Some(allow) = allow_negative_balance.filter(|allow| *allow != account.allow_negative_balance) {
            events.push((
                stream.clone(),
                AccountEvent::NegativeBalanceAllowanceChanged(NegativeBalanceAllowanceChanged {
                    allow_negative_balance: allow,
                })
                .into(),
            ));
        }
        let final_balance = match balance {
            Some((target, transaction_id)) => {
                events.extend(self.magic_balance(account, target, transaction_id, allow_negative)?);
                target
            }
            None => account.balance,
        };
        // Holds of pending transfers count: what must stay at or above zero
        // without the allowance is the available balance.
        let final_available = final_balance
            .checked_sub(account.pending_debits)
            .map_err(|_| overflow())?;
        if !allow_negative && final_available.is_negative() {
            return Err(DomainError::refused(
                Refusal::InsufficientFunds,
                format!(
                    "account {id} has a negative available balance ({final_available}); it must allow a negative balance"
                ),
            ));
        }
        if let Some(meta) = meta {
            events.push((
                stream,
                AccountEvent::AccountMetaUpdated(MetaUpdated { meta: meta.clone() }).into(),
            ));
        }
        Ok((events, ResourceRef::Account(id)))
    }

    /// Sets an account's balance directly (sandbox only), keeping the project's
    /// total in the currency at or above zero.
    pub(crate) fn magic_balance<E: From<AccountEvent>>(
        &self,
        account: &Account,
        target: Money,
        transaction_id: TransactionId,
        allow_negative: bool,
    ) -> Result<Vec<(StreamRef, E)>, DomainError> {
        let project = self.project()?;
        if project.environment != Environment::Sandbox {
            return Err(DomainError::refused(
                Refusal::SandboxOnly,
                "setting a balance directly is only possible in sandbox projects",
            ));
        }
        if target.currency != account.currency() {
            return Err(DomainError::invalid(
                "balance.currency",
                format!("must be the account's currency, {}", account.currency()),
            ));
        }
        if target.is_negative() && !allow_negative {
            return Err(DomainError::invalid(
                "balance.amount",
                "negative balance requires allow_negative_balance",
            ));
        }
        let delta = target.checked_sub(account.balance).map_err(|_| overflow())?;
        if delta.amount == 0 {
            return Ok(Vec::new());
        }
        // The allowance may change in this same command.
        let account = Account {
            allow_negative_balance: allow_negative,
            ..account.clone()
        };
        self.movement(&account, TransactionKind::Magic, delta, transaction_id, true)
    }
}
