//! The bank payin family: bank payin references (the codes a transfer's
//! concept names to reach an account) and the bank payins that arrive.
//!
//! Payin reference codes are claimed on a stream of their own, so a code
//! maps to exactly one reference across all projects: an incoming transfer's
//! concept names at most one destination.

mod events;

pub use events::{
    BankPayinReceived, BankPayinReferenceAccountChanged, BankPayinReferenceCreated, PayinReferenceCodeClaimed,
};

use serde::{Deserialize, Serialize};

use crate::account::TransactionKind;
use crate::aggregate::Aggregate;
use crate::context::{Context, Decided};
use crate::events::Event;
use crate::kernel::bank::{Concept, PayinReferenceCode};
use crate::kernel::error::{DomainError, Refusal};
use crate::kernel::id::*;
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::money::Money;
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

/// How many generated reference codes a new reference tries (each one is a
/// stream the command reads); all taken means the code space is nearly full.
pub const REFERENCE_CODE_CANDIDATES: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPayinReference {
    pub id: BankPayinReferenceId,
    pub project_id: ProjectId,
    pub account_id: AccountId,
    pub reference: PayinReferenceCode,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// Who owns a payin reference code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceCodeClaim {
    pub project_id: ProjectId,
    pub bank_payin_reference_id: BankPayinReferenceId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPayin {
    pub id: BankPayinId,
    pub project_id: ProjectId,
    pub bank_payin_reference_id: BankPayinReferenceId,
    pub account_id: AccountId,
    pub transaction_id: TransactionId,
    pub concept: Concept,
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// The parameters of an incoming bank transfer (sandbox simulation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingBankTransfer {
    pub id: BankPayinId,
    pub concept: Concept,
    pub value: Money,
    pub transaction_id: TransactionId,
    pub meta: Meta,
}

impl IncomingBankTransfer {
    /// The reference codes the concept could contain, in order of appearance.
    pub fn candidate_codes(&self) -> Vec<PayinReferenceCode> {
        PayinReferenceCode::scan(self.concept.as_str()).collect()
    }
}

impl Context<'_> {
    pub(crate) fn create_bank_payin_reference(
        &self,
        id: BankPayinReferenceId,
        account_id: AccountId,
        candidates: &[PayinReferenceCode],
        meta: &Meta,
    ) -> Result<Decided, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::BankPayinReference(id);
        self.must_be_new(&stream, "bank payin reference", id)?;
        self.account(account_id)?;
        let code = candidates
            .iter()
            .find(|code| self.lookup.get(&StreamRef::PayinReferenceCode(**code)).is_empty())
            .ok_or_else(|| {
                DomainError::refused(
                    Refusal::CodesExhausted,
                    "no free reference code was found; try again",
                )
            })?;
        let events = vec![
            (
                stream,
                Event::BankPayinReferenceCreated(BankPayinReferenceCreated {
                    id,
                    project_id: project.id,
                    account_id,
                    reference: *code,
                    meta: meta.clone(),
                    created_at: self.now(),
                }),
            ),
            (
                StreamRef::PayinReferenceCode(*code),
                Event::PayinReferenceCodeClaimed(PayinReferenceCodeClaimed {
                    project_id: project.id,
                    bank_payin_reference_id: id,
                }),
            ),
        ];
        Ok((events, ResourceRef::BankPayinReference(id)))
    }

    pub(crate) fn bank_payin_reference(
        &self,
        id: BankPayinReferenceId,
    ) -> Result<&BankPayinReference, DomainError> {
        self.owned(&StreamRef::BankPayinReference(id))
            .and_then(|state| state.as_bank_payin_reference())
            .ok_or_else(|| DomainError::not_found("bank payin reference", id))
    }

    pub(crate) fn update_bank_payin_reference(
        &self,
        id: BankPayinReferenceId,
        account_id: Option<AccountId>,
        meta: &Option<Meta>,
    ) -> Result<Decided, DomainError> {
        let reference = self.bank_payin_reference(id)?;
        let stream = StreamRef::BankPayinReference(id);
        let mut events = Vec::new();
        if let Some(account_id) = account_id.filter(|account_id| *account_id != reference.account_id) {
            self.account(account_id)?;
            events.push((
                stream.clone(),
                Event::BankPayinReferenceAccountChanged(BankPayinReferenceAccountChanged { account_id }),
            ));
        }
        if let Some(meta) = meta {
            events.push((
                stream,
                Event::BankPayinReferenceMetaUpdated(MetaUpdated { meta: meta.clone() }),
            ));
        }
        Ok((events, ResourceRef::BankPayinReference(id)))
    }

    /// The first code in `codes` that belongs to a reference of the caller's
    /// project.
    pub(crate) fn claimed_reference(&self, codes: &[PayinReferenceCode]) -> Option<BankPayinReferenceId> {
        codes.iter().find_map(
            |code| match self.lookup.get(&StreamRef::PayinReferenceCode(*code)) {
                Aggregate::PayinReferenceCode(claim) if claim.project_id == self.project_id => {
                    Some(claim.bank_payin_reference_id)
                }
                _ => None,
            },
        )
    }

    /// Sandbox: an incoming bank transfer arrived with `concept`; the
    /// reference in it says which account to credit.
    pub(crate) fn receive_bank_payin(&self, incoming: &IncomingBankTransfer) -> Result<Decided, DomainError> {
        self.require_sandbox("simulating an incoming bank transfer")?;
        let id = incoming.id;
        let stream = StreamRef::BankPayin(id);
        self.must_be_new(&stream, "bank payin", id)?;
        if incoming.value.amount <= 0 {
            return Err(DomainError::invalid("value.amount", "must be positive"));
        }
        let reference_id = self
            .claimed_reference(&incoming.candidate_codes())
            .ok_or_else(|| {
                DomainError::refused(
                    Refusal::UnknownPayinReference,
                    "the concept contains no bank payin reference code of this project; nothing was credited",
                )
            })?;
        let reference = self.bank_payin_reference(reference_id)?;
        let account = self.account(reference.account_id)?;
        if account.currency() != incoming.value.currency {
            return Err(DomainError::invalid(
                "value.currency",
                format!(
                    "reference {} credits account {} in {}",
                    reference.reference,
                    account.id,
                    account.currency()
                ),
            ));
        }
        let mut events = vec![(
            stream,
            Event::BankPayinReceived(BankPayinReceived {
                id,
                project_id: reference.project_id,
                bank_payin_reference_id: reference.id,
                account_id: account.id,
                transaction_id: incoming.transaction_id,
                concept: incoming.concept.clone(),
                value: incoming.value,
                meta: incoming.meta.clone(),
                created_at: self.now(),
            }),
        )];
        events.extend(self.movement(
            account,
            TransactionKind::BankPayin(id),
            incoming.value,
            incoming.transaction_id,
            true,
        )?);
        Ok((events, ResourceRef::BankPayin(id)))
    }
}

/// Applies a bank payin reference, reference code or bank payin event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty, Event::BankPayinReferenceCreated(e)) => {
            Aggregate::BankPayinReference(BankPayinReference {
                id: e.id,
                project_id: e.project_id,
                account_id: e.account_id,
                reference: e.reference,
                meta: e.meta.clone(),
                created_at: e.created_at,
            })
        }
        (Aggregate::BankPayinReference(r), Event::BankPayinReferenceAccountChanged(e)) => {
            Aggregate::BankPayinReference(BankPayinReference {
                account_id: e.account_id,
                ..r
            })
        }
        (Aggregate::BankPayinReference(r), Event::BankPayinReferenceMetaUpdated(e)) => {
            Aggregate::BankPayinReference(BankPayinReference {
                meta: e.meta.clone(),
                ..r
            })
        }
        (Aggregate::Empty, Event::PayinReferenceCodeClaimed(e)) => {
            Aggregate::PayinReferenceCode(ReferenceCodeClaim {
                project_id: e.project_id,
                bank_payin_reference_id: e.bank_payin_reference_id,
            })
        }
        (Aggregate::Empty, Event::BankPayinReceived(e)) => Aggregate::BankPayin(BankPayin {
            id: e.id,
            project_id: e.project_id,
            bank_payin_reference_id: e.bank_payin_reference_id,
            account_id: e.account_id,
            transaction_id: e.transaction_id,
            concept: e.concept.clone(),
            value: e.value,
            meta: e.meta.clone(),
            created_at: e.created_at,
        }),
        (Aggregate::BankPayin(p), Event::BankPayinMetaUpdated(e)) => Aggregate::BankPayin(BankPayin {
            meta: e.meta.clone(),
            ..p
        }),
        (state, event) => state.misapplied(event),
    }
}

impl Context<'_> {
    /// What `ReceiveBankPayin` reads once the reference codes are loaded:
    /// the reference a code names, and its account.
    pub(crate) fn dependent_streams_of_bank_payin(&self, incoming: &IncomingBankTransfer) -> Vec<StreamRef> {
        let mut streams = Vec::new();
        if let Some(reference_id) = self.claimed_reference(&incoming.candidate_codes()) {
            let stream = StreamRef::BankPayinReference(reference_id);
            if let Some(reference) = self.lookup.get(&stream).as_bank_payin_reference() {
                streams.push(StreamRef::Account(reference.account_id));
            }
            streams.push(stream);
        }
        streams
    }
}
