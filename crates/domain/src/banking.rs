//! Bank accounts, bank payouts, bank payin references and bank payins:
//! states and deciders.
//!
//! A payout takes its funds when it is created (`bank_payout`); it is
//! `processing` until the bank network answers: `completed`, or `failed`
//! with the funds given back (`bank_payout_failure`). A completed payout can
//! still come back from the destination bank at any later time: `refunded`,
//! again with the funds given back, exactly once.
//!
//! Minirefs tell apart payouts to one IBAN. The IBAN's own stream remembers
//! the minirefs given in the last year, whichever project sent the payout,
//! so two payouts to one IBAN within a year never share one.
//!
//! Payin reference codes are claimed on a stream of their own, so a code
//! maps to exactly one reference across all projects: an incoming transfer's
//! concept names at most one destination.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bank::{Concept, Miniref, PayinReferenceCode};
use crate::command::{Context, Decided, overflow};
use crate::error::{DomainError, Refusal};
use crate::events::*;
pub use crate::file::StoredFile;
pub use crate::fx_rate::{FxRateEntry, FxRateValue};
use crate::id::*;
use crate::meta::Meta;
use crate::money::Money;
use crate::stream::StreamRef;
use crate::time::Timestamp;

/// How long a miniref stays reserved for a payout destination.
pub const MINIREF_RESERVATION_SECONDS: i64 = 366 * 24 * 60 * 60;
/// How many generated reference codes a new reference tries (each one is a
/// stream the command reads); all taken means the code space is nearly full.
pub const REFERENCE_CODE_CANDIDATES: usize = 4;
/// How many generated minirefs a new payout tries against its IBAN's record.
const MINIREF_CANDIDATES: usize = 4_096;
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BankPayoutState {
    Processing,
    Completed,
    Failed,
    Refunded,
}

impl BankPayoutState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Refunded => "refunded",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankPayout {
    pub id: BankPayoutId,
    pub project_id: ProjectId,
    pub account_id: AccountId,
    pub bank_account_id: Option<BankAccountId>,
    pub bank_account_info: BankAccountInfo,
    pub transaction_id: TransactionId,
    pub failure_transaction_id: Option<TransactionId>,
    pub state: BankPayoutState,
    pub concept: Concept,
    pub miniref: Miniref,
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// The minirefs given to payouts to one IBAN in the last year, with when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutDestination {
    pub minirefs: BTreeMap<Miniref, Timestamp>,
}

impl PayoutDestination {
    pub(crate) fn assign(mut self, miniref: Miniref, at: Timestamp) -> Self {
        // Only the last year matters: older entries may be forgotten, which
        // keeps the state of a busy IBAN bounded by one year of payouts.
        let horizon = at.plus_seconds(-MINIREF_RESERVATION_SECONDS);
        self.minirefs.retain(|_, assigned| *assigned > horizon);
        self.minirefs.insert(miniref, at);
        self
    }

    fn is_reserved(&self, miniref: &Miniref, now: Timestamp) -> bool {
        self.minirefs
            .get(miniref)
            .is_some_and(|assigned| now < assigned.plus_seconds(MINIREF_RESERVATION_SECONDS))
    }
}

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

/// Where a payout goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayoutDestinationSource {
    BankAccount(BankAccountId),
    Info(BankAccountInfo),
}

/// The parameters of a new payout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBankPayout {
    pub id: BankPayoutId,
    pub account_id: AccountId,
    pub destination: PayoutDestinationSource,
    pub concept: Concept,
    pub value: Money,
    pub meta: Meta,
    pub transaction_id: TransactionId,
    /// Where the search for a free miniref starts (randomness comes from
    /// the caller; the domain has none).
    pub miniref_entropy: [u8; 8],
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

    fn bank_account(&self, id: BankAccountId) -> Result<&BankAccount, DomainError> {
        self.owned(&StreamRef::BankAccount(id))
            .and_then(|state| state.as_bank_account())
            .ok_or_else(|| DomainError::not_found("bank account", id))
    }

    pub(crate) fn create_bank_payout(&self, new: &NewBankPayout) -> Result<Decided, DomainError> {
        let project = self.project()?;
        let id = new.id;
        let stream = StreamRef::BankPayout(id);
        self.must_be_new(&stream, "bank payout", id)?;
        if new.value.amount <= 0 {
            return Err(DomainError::invalid("value.amount", "must be positive"));
        }
        let account = self.account(new.account_id)?;
        if new.value.currency != account.currency() {
            return Err(DomainError::invalid(
                "value.currency",
                format!("must be the account's currency, {}", account.currency()),
            ));
        }
        let (bank_account_id, info) = match &new.destination {
            PayoutDestinationSource::BankAccount(bank_account_id) => {
                let stored = self.bank_account(*bank_account_id)?;
                (Some(*bank_account_id), stored.bank_account_info.clone())
            }
            PayoutDestinationSource::Info(info) => {
                check_beneficiary_name(&info.beneficiary_name)
                    .map_err(|why| DomainError::invalid("bank_account_info.beneficiary_name", why))?;
                (None, info.clone())
            }
        };
        let destination_stream = StreamRef::PayoutDestination(info.iban.clone());
        let miniref = self.free_miniref(&destination_stream, new.miniref_entropy)?;
        let debit = new.value.checked_neg().map_err(|_| overflow())?;
        let mut events = vec![
            (
                stream,
                Event::BankPayoutCreated(BankPayoutCreated {
                    id,
                    project_id: project.id,
                    account_id: account.id,
                    bank_account_id,
                    bank_account_info: info,
                    transaction_id: new.transaction_id,
                    concept: new.concept.clone(),
                    miniref,
                    value: new.value,
                    meta: new.meta.clone(),
                    created_at: self.now(),
                }),
            ),
            (
                destination_stream,
                Event::MinirefAssigned(MinirefAssigned {
                    project_id: project.id,
                    bank_payout_id: id,
                    miniref,
                    assigned_at: self.now(),
                }),
            ),
        ];
        events.extend(self.movement(
            account,
            TransactionKind::BankPayout(id),
            debit,
            new.transaction_id,
            true,
        )?);
        Ok((events, ResourceRef::BankPayout(id)))
    }

    fn free_miniref(&self, destination: &StreamRef, entropy: [u8; 8]) -> Result<Miniref, DomainError> {
        let reserved = match self.lookup.get(destination) {
            crate::Aggregate::PayoutDestination(record) => Some(record),
            _ => None,
        };
        let now = self.now();
        Miniref::candidates(entropy)
            .take(MINIREF_CANDIDATES)
            .find(|miniref| !reserved.is_some_and(|record| record.is_reserved(miniref, now)))
            .ok_or_else(|| {
                DomainError::refused(
                    Refusal::CodesExhausted,
                    "no free miniref for this IBAN: too many payouts to it in the last year",
                )
            })
    }

    fn bank_payout(&self, id: BankPayoutId) -> Result<&BankPayout, DomainError> {
        self.owned(&StreamRef::BankPayout(id))
            .and_then(|state| state.as_bank_payout())
            .ok_or_else(|| DomainError::not_found("bank payout", id))
    }

    pub(crate) fn complete_bank_payout(&self, id: BankPayoutId) -> Result<Decided, DomainError> {
        self.require_sandbox("completing a bank payout by API")?;
        let payout = self.bank_payout(id)?;
        if payout.state != BankPayoutState::Processing {
            return Err(not_processing(payout));
        }
        let event = Event::BankPayoutCompleted(BankPayoutCompleted {
            completed_at: self.now(),
        });
        Ok((
            vec![(StreamRef::BankPayout(id), event)],
            ResourceRef::BankPayout(id),
        ))
    }

    /// A processing payout failed (`returned == false`) or a completed one
    /// came back (`returned == true`): the funds return to the account, once.
    pub(crate) fn reverse_bank_payout(
        &self,
        id: BankPayoutId,
        failure_transaction_id: TransactionId,
        returned: bool,
    ) -> Result<Decided, DomainError> {
        self.require_sandbox(if returned {
            "returning a bank payout by API"
        } else {
            "failing a bank payout by API"
        })?;
        let payout = self.bank_payout(id)?;
        let reversed = BankPayoutReversed {
            failure_transaction_id,
            reversed_at: self.now(),
        };
        let event = match (returned, payout.state) {
            (false, BankPayoutState::Processing) => Event::BankPayoutFailed(reversed),
            (true, BankPayoutState::Completed) => Event::BankPayoutReturned(reversed),
            (false, _) => return Err(not_processing(payout)),
            (true, state) => {
                return Err(DomainError::refused(
                    Refusal::PayoutNotCompleted,
                    format!(
                        "bank payout {id} is {}; only a completed payout can be returned",
                        state.as_str()
                    ),
                ));
            }
        };
        let account = self.account(payout.account_id)?;
        let mut events = vec![(StreamRef::BankPayout(id), event)];
        events.extend(self.movement(
            account,
            TransactionKind::BankPayoutFailure(id),
            payout.value,
            failure_transaction_id,
            true,
        )?);
        Ok((events, ResourceRef::BankPayout(id)))
    }

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

    fn bank_payin_reference(&self, id: BankPayinReferenceId) -> Result<&BankPayinReference, DomainError> {
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
                crate::Aggregate::PayinReferenceCode(claim)
                    if claim.project_id == self.envelope.project_id =>
                {
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

fn not_processing(payout: &BankPayout) -> DomainError {
    DomainError::refused(
        Refusal::PayoutNotProcessing,
        format!("bank payout {} is already {}", payout.id, payout.state.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp::from_micros(1_750_000_000_000_000);

    #[test]
    fn a_miniref_is_reserved_for_exactly_the_reservation_period() {
        let miniref = Miniref::from_index(7);
        let record = PayoutDestination::default().assign(miniref, T);
        assert!(record.is_reserved(&miniref, T));
        assert!(record.is_reserved(&miniref, T.plus_seconds(MINIREF_RESERVATION_SECONDS - 1)));
        assert!(!record.is_reserved(&miniref, T.plus_seconds(MINIREF_RESERVATION_SECONDS)));
        assert!(!record.is_reserved(&Miniref::from_index(8), T));
    }

    #[test]
    fn assigning_forgets_only_what_is_no_longer_reserved() {
        let (old, recent, new) = (
            Miniref::from_index(1),
            Miniref::from_index(2),
            Miniref::from_index(3),
        );
        let now = T.plus_seconds(MINIREF_RESERVATION_SECONDS);
        let record = PayoutDestination::default()
            .assign(old, T)
            .assign(recent, now.plus_seconds(-1))
            .assign(new, now);
        let kept: Vec<Miniref> = record.minirefs.keys().copied().collect();
        let mut expected = vec![recent, new];
        expected.sort();
        assert_eq!(kept, expected);
        // What was forgotten is exactly what is free again.
        assert!(!record.is_reserved(&old, now));
        assert!(record.is_reserved(&recent, now));
        // Reassigning a miniref renews its reservation.
        let renewed = record.assign(recent, now);
        assert_eq!(renewed.minirefs.get(&recent), Some(&now));
    }
}
