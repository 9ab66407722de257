//! The bank account family: bank accounts outside paycore, kept to pay out
//! to. The bank payout family finds one through `Context::bank_account`.

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::context::{Context, Decided};
use crate::events::Event;
use crate::kernel::error::DomainError;
use crate::kernel::iban::Iban;
use crate::kernel::id::{BankAccountId, CustomerId, ProjectId};
use crate::kernel::meta::Meta;
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

impl Context<'_> {
    pub(crate) fn create_bank_account(
        &self,
        id: BankAccountId,
        info: &BankAccountInfo,
        customer_id: Option<CustomerId>,
        meta: &Meta,
    ) -> Result<Decided, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::BankAccount(id);
        self.must_be_new(&stream, "bank account", id)?;
        check_beneficiary_name(&info.beneficiary_name)
            .map_err(|why| DomainError::invalid("bank_account_info.beneficiary_name", why))?;
        if let Some(customer_id) = customer_id {
            self.customer(customer_id)?;
        }
        let event = Event::BankAccountCreated(BankAccountCreated {
            id,
            project_id: project.id,
            customer_id,
            bank_account_info: info.clone(),
            meta: meta.clone(),
            created_at: self.now(),
        });
        Ok((vec![(stream, event)], ResourceRef::BankAccount(id)))
    }

    pub(crate) fn bank_account(&self, id: BankAccountId) -> Result<&BankAccount, DomainError> {
        self.owned(&StreamRef::BankAccount(id))
            .and_then(|state| state.as_bank_account())
            .ok_or_else(|| DomainError::not_found("bank account", id))
    }
}

/// Applies a bank account event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty, Event::BankAccountCreated(e)) => Aggregate::BankAccount(BankAccount {
            id: e.id,
            project_id: e.project_id,
            customer_id: e.customer_id,
            bank_account_info: e.bank_account_info.clone(),
            meta: e.meta.clone(),
            created_at: e.created_at,
        }),
        (Aggregate::BankAccount(b), Event::BankAccountMetaUpdated(e)) => {
            Aggregate::BankAccount(BankAccount {
                meta: e.meta.clone(),
                ..b
            })
        }
        (state, event) => state.misapplied(event),
    }
}
