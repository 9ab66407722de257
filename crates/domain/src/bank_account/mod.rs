//! The bank account family: bank accounts outside paycore, kept to pay out
//! to. The bank payout family finds one through `Context::bank_account`.

mod command;
pub use command::BankAccountCommand;

use serde::{Deserialize, Serialize};

use crate::context::{Context, Decided, Owned, misapplied};
use crate::kernel::error::DomainError;
use crate::kernel::iban::Iban;
use crate::kernel::id::{BankAccountId, CustomerId, ProjectId};
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

/// A bank account outside paycore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccountInfo {
    pub iban: Iban,
    pub beneficiary_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccountCreated {
    pub id: BankAccountId,
    pub project_id: ProjectId,
    pub customer_id: Option<CustomerId>,
    pub bank_account_info: BankAccountInfo,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// The longest beneficiary name accepted.
pub const MAX_BENEFICIARY_NAME_CHARS: usize = 140;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankAccount {
    pub id: BankAccountId,
    pub project_id: ProjectId,
    pub customer_id: Option<CustomerId>,
    pub bank_account_info: BankAccountInfo,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// Validates a beneficiary name: 1 to 140 characters, not only spaces.
pub fn check_beneficiary_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() || name.chars().count() > MAX_BENEFICIARY_NAME_CHARS {
        Err("must be 1 to 140 characters")
    } else {
        Ok(())
    }
}

/// The bank account family's events: what its deciders emit and its
/// `evolve` folds (the routers' `Event` wraps each as the variant of the same
/// name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankAccountEvent {
    BankAccountCreated(BankAccountCreated),
    BankAccountMetaUpdated(MetaUpdated),
}

impl Owned for BankAccount {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

impl Context<'_> {
    pub(crate) fn create_bank_account<E: From<BankAccountEvent>>(
        &self,
        id: BankAccountId,
        info: &BankAccountInfo,
        customer_id: Option<CustomerId>,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::BankAccount(id);
        self.must_be_new(&stream, "bank account", id)?;
        check_beneficiary_name(&info.beneficiary_name)
            .map_err(|why| DomainError::invalid("bank_account_info.beneficiary_name", why))?;
        if let Some(customer_id) = customer_id {
            self.customer(customer_id)?;
        }
        let event = BankAccountEvent::BankAccountCreated(BankAccountCreated {
            id,
            project_id: project.id,
            customer_id,
            bank_account_info: info.clone(),
            meta: meta.clone(),
            created_at: self.now(),
        });
        Ok((vec![(stream, event.into())], ResourceRef::BankAccount(id)))
    }

    pub(crate) fn bank_account(&self, id: BankAccountId) -> Result<&BankAccount, DomainError> {
        self.owned::<BankAccount>(&StreamRef::BankAccount(id))
            .ok_or_else(|| DomainError::not_found("bank account", id))
    }

    pub(crate) fn update_bank_account<E: From<BankAccountEvent>>(
        &self,
        id: BankAccountId,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        self.replace_meta::<BankAccount, _>(ResourceRef::BankAccount(id), "bank account", meta, |meta| {
            BankAccountEvent::BankAccountMetaUpdated(meta).into()
        })
    }
}

/// Applies a bank account event to the bank account's state (`None`
/// before the first).
pub(crate) fn evolve(state: Option<BankAccount>, event: BankAccountEvent) -> Option<BankAccount> {
    Some(match (state, event) {
        (None, BankAccountEvent::BankAccountCreated(e)) => BankAccount {
            id: e.id,
            project_id: e.project_id,
            customer_id: e.customer_id,
            bank_account_info: e.bank_account_info,
            meta: e.meta,
            created_at: e.created_at,
        },
        (Some(b), BankAccountEvent::BankAccountMetaUpdated(e)) => BankAccount { meta: e.meta, ..b },
        (state, event) => return misapplied(state, &event),
    })
}
