//! The bank payout family: payouts to bank accounts outside paycore, and
//! the payout destinations that keep their minirefs apart.
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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod command;
mod events;

pub use command::BankPayoutCommand;
pub use events::{
    BankPayoutCompleted, BankPayoutCreated, BankPayoutEvent, BankPayoutReversed, MinirefAssigned,
};

use crate::account::{AccountEvent, TransactionKind};
use crate::bank_account::{BankAccount, BankAccountInfo, check_beneficiary_name};
use crate::context::{Context, Decided, Owned, misapplied};
use crate::kernel::bank::{Concept, Miniref};
use crate::kernel::error::{DomainError, Refusal, overflow};
use crate::kernel::id::*;
use crate::kernel::meta::Meta;
use crate::kernel::money::Money;
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

/// How long a miniref stays reserved for a payout destination.
pub const MINIREF_RESERVATION_SECONDS: i64 = 366 * 24 * 60 * 60;
/// How many generated minirefs a new payout tries against its IBAN's record.
const MINIREF_CANDIDATES: usize = 4_096;

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

impl Context<'_> {
    pub(crate) fn create_bank_payout<E>(&self, new: &NewBankPayout) -> Result<Decided<E>, DomainError>
    where
        E: From<BankPayoutEvent> + From<AccountEvent>,
    {
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
                BankPayoutEvent::BankPayoutCreated(BankPayoutCreated {
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
                })
                .into(),
            ),
            (
                destination_stream,
                BankPayoutEvent::MinirefAssigned(MinirefAssigned {
                    project_id: project.id,
                    bank_payout_id: id,
                    miniref,
                    assigned_at: self.now(),
                })
                .into(),
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
        let reserved = self.state::<PayoutDestination>(destination);
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
        self.owned::<BankPayout>(&StreamRef::BankPayout(id))
            .ok_or_else(|| DomainError::not_found("bank payout", id))
    }

    pub(crate) fn complete_bank_payout<E: From<BankPayoutEvent>>(
        &self,
        id: BankPayoutId,
    ) -> Result<Decided<E>, DomainError> {
        self.require_sandbox("completing a bank payout by API")?;
        let payout = self.bank_payout(id)?;
        if payout.state != BankPayoutState::Processing {
            return Err(not_processing(payout));
        }
        let event = BankPayoutEvent::BankPayoutCompleted(BankPayoutCompleted {
            completed_at: self.now(),
        });
        Ok((
            vec![(StreamRef::BankPayout(id), event.into())],
            ResourceRef::BankPayout(id),
        ))
    }

    /// A processing payout failed (`returned == false`) or a completed one
    /// came back (`returned == true`): the funds return to the account, once.
    pub(crate) fn reverse_bank_payout<E>(
        &self,
        id: BankPayoutId,
        failure_transaction_id: TransactionId,
        returned: bool,
    ) -> Result<Decided<E>, DomainError>
    where
        E: From<BankPayoutEvent> + From<AccountEvent>,
    {
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
            (false, BankPayoutState::Processing) => BankPayoutEvent::BankPayoutFailed(reversed),
            (true, BankPayoutState::Completed) => BankPayoutEvent::BankPayoutReturned(reversed),
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
        let mut events = vec![(StreamRef::BankPayout(id), event.into())];
        events.extend(self.movement(
            account,
            TransactionKind::BankPayoutFailure(id),
            payout.value,
            failure_transaction_id,
            true,
        )?);
        Ok((events, ResourceRef::BankPayout(id)))
    }

    pub(crate) fn update_bank_payout<E: From<BankPayoutEvent>>(
        &self,
        id: BankPayoutId,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        self.replace_meta::<BankPayout, _>(ResourceRef::BankPayout(id), "bank payout", meta, |meta| {
            BankPayoutEvent::BankPayoutMetaUpdated(meta).into()
        })
    }
}

impl Owned for BankPayout {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// The bank payout family's aggregates: a payout's stream and an IBAN's
/// payout destination record (`payoutdestination-…`).
// Like `Aggregate`, moved by value rarely: boxing would cost an allocation
// per evolve.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankPayoutAggregate {
    BankPayout(BankPayout),
    PayoutDestination(PayoutDestination),
}

fn not_processing(payout: &BankPayout) -> DomainError {
    DomainError::refused(
        Refusal::PayoutNotProcessing,
        format!("bank payout {} is already {}", payout.id, payout.state.as_str()),
    )
}

/// Applies a bank payout or payout destination event to the state of its
/// stream (`None` before the first).
pub(crate) fn evolve(
    state: Option<BankPayoutAggregate>,
    event: BankPayoutEvent,
) -> Option<BankPayoutAggregate> {
    use BankPayoutAggregate as A;
    use BankPayoutEvent as E;
    Some(match (state, event) {
        (None, E::BankPayoutCreated(e)) => A::BankPayout(BankPayout {
            id: e.id,
            project_id: e.project_id,
            account_id: e.account_id,
            bank_account_id: e.bank_account_id,
            bank_account_info: e.bank_account_info,
            transaction_id: e.transaction_id,
            failure_transaction_id: None,
            state: BankPayoutState::Processing,
            concept: e.concept,
            miniref: e.miniref,
            value: e.value,
            meta: e.meta,
            created_at: e.created_at,
        }),
        (Some(A::BankPayout(p)), E::BankPayoutCompleted(_)) => A::BankPayout(BankPayout {
            state: BankPayoutState::Completed,
            ..p
        }),
        (Some(A::BankPayout(p)), E::BankPayoutFailed(e)) => A::BankPayout(BankPayout {
            state: BankPayoutState::Failed,
            failure_transaction_id: Some(e.failure_transaction_id),
            ..p
        }),
        (Some(A::BankPayout(p)), E::BankPayoutReturned(e)) => A::BankPayout(BankPayout {
            state: BankPayoutState::Refunded,
            failure_transaction_id: Some(e.failure_transaction_id),
            ..p
        }),
        (Some(A::BankPayout(p)), E::BankPayoutMetaUpdated(e)) => {
            A::BankPayout(BankPayout { meta: e.meta, ..p })
        }
        (None, E::MinirefAssigned(e)) => {
            A::PayoutDestination(PayoutDestination::default().assign(e.miniref, e.assigned_at))
        }
        (Some(A::PayoutDestination(d)), E::MinirefAssigned(e)) => {
            A::PayoutDestination(d.assign(e.miniref, e.assigned_at))
        }
        (state, event) => return misapplied(state, &event),
    })
}

impl PayoutDestinationSource {
    /// The stream a new payout reads for its destination: the stored bank
    /// account, or the IBAN's payout destination record.
    pub(crate) fn stream(&self) -> StreamRef {
        match self {
            Self::BankAccount(id) => StreamRef::BankAccount(*id),
            Self::Info(info) => StreamRef::PayoutDestination(info.iban.clone()),
        }
    }
}

impl Context<'_> {
    /// What `CreateBankPayout` reads once a stored destination is loaded:
    /// the payout destination record of its IBAN.
    pub(crate) fn dependent_streams_of_payout(&self, new: &NewBankPayout) -> Vec<StreamRef> {
        let mut streams = Vec::new();
        if let PayoutDestinationSource::BankAccount(id) = &new.destination
            && let Some(stored) = self.state::<BankAccount>(&StreamRef::BankAccount(*id))
        {
            streams.push(StreamRef::PayoutDestination(
                stored.bank_account_info.iban.clone(),
            ));
        }
        streams
    }

    /// What failing or returning a payout reads once it is loaded: its
    /// account and the project's total.
    pub(crate) fn dependent_streams_of_payout_reversal(&self, id: BankPayoutId) -> Vec<StreamRef> {
        let mut streams = Vec::new();
        if let Some(payout) = self.state::<BankPayout>(&StreamRef::BankPayout(id)) {
            streams.push(StreamRef::Account(payout.account_id));
            streams.push(StreamRef::ProjectBalance(self.project_id, payout.value.currency));
        }
        streams
    }
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
