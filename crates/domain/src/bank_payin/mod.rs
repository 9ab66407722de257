//! The bank payin family: bank payin references (the codes a transfer's
//! concept names to reach an account) and the bank payins that arrive.
//!
//! Payin reference codes are claimed on a stream of their own, so a code
//! maps to exactly one reference across all projects: an incoming transfer's
//! concept names at most one destination.

mod command;
mod events;

pub use command::BankPayinCommand;
pub use events::{
    BankPayinEvent, BankPayinReceived, BankPayinReferenceAccountChanged, BankPayinReferenceCreated,
    PayinReferenceCodeClaimed,
};

use serde::{Deserialize, Serialize};

use crate::account::{AccountEvent, TransactionKind};
use crate::context::{Context, Decided, Owned, misapplied};
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
    pub(crate) fn create_bank_payin_reference<E: From<BankPayinEvent>>(
        &self,
        id: BankPayinReferenceId,
        account_id: AccountId,
        candidates: &[PayinReferenceCode],
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::BankPayinReference(id);
        self.must_be_new(&stream, "bank payin reference", id)?;
        self.account(account_id)?;
        let code = candidates
            .iter()
            .find(|code| self.is_new(&StreamRef::PayinReferenceCode(**code)))
            .ok_or_else(|| {
                DomainError::refused(
                    Refusal::CodesExhausted,
                    "no free reference code was found; try again",
                )
            })?;
        let events = vec![
            (
                stream,
                BankPayinEvent::BankPayinReferenceCreated(BankPayinReferenceCreated {
                    id,
                    project_id: project.id,
                    account_id,
                    reference: *code,
                    meta: meta.clone(),
                    created_at: self.now(),
                })
                .into(),
            ),
            (
                StreamRef::PayinReferenceCode(*code),
                BankPayinEvent::PayinReferenceCodeClaimed(PayinReferenceCodeClaimed {
                    project_id: project.id,
                    bank_payin_reference_id: id,
                })
                .into(),
            ),
        ];
        Ok((events, ResourceRef::BankPayinReference(id)))
    }

    pub(crate) fn bank_payin_reference(
        &self,
        id: BankPayinReferenceId,
    ) -> Result<&BankPayinReference, DomainError> {
        self.owned::<BankPayinReference>(&StreamRef::BankPayinReference(id))
            .ok_or_else(|| DomainError::not_found("bank payin reference", id))
    }

    pub(crate) fn update_bank_payin_reference<E: From<BankPayinEvent>>(
        &self,
        id: BankPayinReferenceId,
        account_id: Option<AccountId>,
        meta: &Option<Meta>,
    ) -> Result<Decided<E>, DomainError> {
        let reference = self.bank_payin_reference(id)?;
        let stream = StreamRef::BankPayinReference(id);
        let mut events = Vec::new();
        if let Some(account_id) = account_id.filter(|account_id| *account_id != reference.account_id) {
            self.account(account_id)?;
            events.push((
                stream.clone(),
                BankPayinEvent::BankPayinReferenceAccountChanged(BankPayinReferenceAccountChanged {
                    account_id,
                })
                .into(),
            ));
        }
        if let Some(meta) = meta {
            events.push((
                stream,
                BankPayinEvent::BankPayinReferenceMetaUpdated(MetaUpdated { meta: meta.clone() }).into(),
            ));
        }
        Ok((events, ResourceRef::BankPayinReference(id)))
    }

    /// The first code in `codes` that belongs to a reference of the caller's
    /// project.
    pub(crate) fn claimed_reference(&self, codes: &[PayinReferenceCode]) -> Option<BankPayinReferenceId> {
        codes.iter().find_map(|code| {
            self.state::<ReferenceCodeClaim>(&StreamRef::PayinReferenceCode(*code))
                .filter(|claim| claim.project_id == self.project_id)
                .map(|claim| claim.bank_payin_reference_id)
        })
    }

    /// Sandbox: an incoming bank transfer arrived with `concept`; the
    /// reference in it says which account to credit.
    pub(crate) fn receive_bank_payin<E>(
        &self,
        incoming: &IncomingBankTransfer,
    ) -> Result<Decided<E>, DomainError>
    where
        E: From<BankPayinEvent> + From<AccountEvent>,
    {
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
            BankPayinEvent::BankPayinReceived(BankPayinReceived {
                id,
                project_id: reference.project_id,
                bank_payin_reference_id: reference.id,
                account_id: account.id,
                transaction_id: incoming.transaction_id,
                concept: incoming.concept.clone(),
                value: incoming.value,
                meta: incoming.meta.clone(),
                created_at: self.now(),
            })
            .into(),
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

    pub(crate) fn update_bank_payin<E: From<BankPayinEvent>>(
        &self,
        id: BankPayinId,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        self.replace_meta::<BankPayin, _>(ResourceRef::BankPayin(id), "bank payin", meta, |meta| {
            BankPayinEvent::BankPayinMetaUpdated(meta).into()
        })
    }
}

impl Owned for BankPayinReference {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

impl Owned for BankPayin {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// The bank payin family's aggregates: a payin reference's stream, a
/// reference code's claim (`payinreferencecode-…`) and a bank payin's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankPayinAggregate {
    BankPayinReference(BankPayinReference),
    PayinReferenceCode(ReferenceCodeClaim),
    BankPayin(BankPayin),
}

/// Applies a bank payin, payin reference or code claim event to the state
/// of its stream (`None` before the first).
pub(crate) fn evolve(state: Option<BankPayinAggregate>, event: BankPayinEvent) -> Option<BankPayinAggregate> {
    use BankPayinAggregate as A;
    use BankPayinEvent as E;
    Some(match (state, event) {
        (None, E::BankPayinReferenceCreated(e)) => A::BankPayinReference(BankPayinReference {
            id: e.id,
            project_id: e.project_id,
            account_id: e.account_id,
            reference: e.reference,
            meta: e.meta,
            created_at: e.created_at,
        }),
        (Some(A::BankPayinReference(r)), E::BankPayinReferenceAccountChanged(e)) => {
            A::BankPayinReference(BankPayinReference {
                account_id: e.account_id,
                ..r
            })
        }
        (Some(A::BankPayinReference(r)), E::BankPayinReferenceMetaUpdated(e)) => {
            A::BankPayinReference(BankPayinReference { meta: e.meta, ..r })
        }
        (None, E::PayinReferenceCodeClaimed(e)) => A::PayinReferenceCode(ReferenceCodeClaim {
            project_id: e.project_id,
            bank_payin_reference_id: e.bank_payin_reference_id,
        }),
        (None, E::BankPayinReceived(e)) => A::BankPayin(BankPayin {
            id: e.id,
            project_id: e.project_id,
            bank_payin_reference_id: e.bank_payin_reference_id,
            account_id: e.account_id,
            transaction_id: e.transaction_id,
            concept: e.concept,
            value: e.value,
            meta: e.meta,
            created_at: e.created_at,
        }),
        (Some(A::BankPayin(p)), E::BankPayinMetaUpdated(e)) => A::BankPayin(BankPayin { meta: e.meta, ..p }),
        (state, event) => return misapplied(state, &event),
    })
}

impl Context<'_> {
    /// What `ReceiveBankPayin` reads once the reference codes are loaded:
    /// the reference a code names, and its account.
    pub(crate) fn dependent_streams_of_bank_payin(&self, incoming: &IncomingBankTransfer) -> Vec<StreamRef> {
        let mut streams = Vec::new();
        if let Some(reference_id) = self.claimed_reference(&incoming.candidate_codes()) {
            let stream = StreamRef::BankPayinReference(reference_id);
            if let Some(reference) = self.state::<BankPayinReference>(&stream) {
                streams.push(StreamRef::Account(reference.account_id));
            }
            streams.push(stream);
        }
        streams
    }
}
