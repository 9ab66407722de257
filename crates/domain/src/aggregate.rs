//! Aggregate states and how events evolve them. `evolve` is total: an event
//! that does not belong to the aggregate is a bug, caught by a debug assert.

use serde::{Deserialize, Serialize};

pub use crate::account::{Account, ProjectBalance};
use crate::banking::*;
use crate::consumer::ConsumerCheckpoint;
pub use crate::customer::Customer;
use crate::deployment::Bootstrap;
use crate::events::{Event, ResourceRef};
pub use crate::file::StoredFile;
pub use crate::fx_rate::{FxRateEntry, FxRateValue};
use crate::id::ProjectId;
use crate::payments::*;
pub use crate::project::{ApiKey, Project};
use crate::time::Timestamp;
pub use crate::transfer::Transfer;

/// The last use of an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: [u8; 32],
    pub resource: ResourceRef,
    pub used_at: Timestamp,
}

impl IdempotencyRecord {
    /// The first moment at which the record no longer counts: a use of the
    /// key from then on is a first use again.
    pub fn window_ends_at(&self) -> Timestamp {
        self.used_at
            .plus_seconds(crate::idempotency::IDEMPOTENCY_WINDOW_SECONDS)
    }
}

/// The state of any aggregate; `Empty` before its first event.
// Variants differ in size (a customer carries an identity), but states are
// cached by value and moved rarely; boxing would cost an allocation per evolve.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Aggregate {
    #[default]
    Empty,
    Project(Project),
    ApiKey(ApiKey),
    Customer(Customer),
    Account(Account),
    Transfer(Transfer),
    ProjectBalance(ProjectBalance),
    Idempotency(IdempotencyRecord),
    CardToken(CardToken),
    Card(Card),
    CardPayin(CardPayin),
    CardPayinRefund(CardPayinRefund),
    BankAccount(BankAccount),
    BankPayout(BankPayout),
    PayoutDestination(PayoutDestination),
    BankPayinReference(BankPayinReference),
    PayinReferenceCode(ReferenceCodeClaim),
    BankPayin(BankPayin),
    File(StoredFile),
    FxRate(FxRateEntry),
    // New states go at the end: snapshots record the variant's index.
    Consumer(ConsumerCheckpoint),
    Bootstrap(Bootstrap),
}

impl Aggregate {
    /// Folds a stream's events from `Empty`.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        events.into_iter().fold(Self::Empty, Self::evolve)
    }

    /// Routes `event` to the evolve of its family.
    pub fn evolve(self, event: &Event) -> Self {
        match event {
            Event::ProjectCreated(_)
            | Event::ProjectMetaUpdated(_)
            | Event::ApiKeyCreated(_)
            | Event::ApiKeyRevoked(_) => crate::project::evolve(self, event),
            Event::CustomerCreated(_) | Event::CustomerIdentityUpdated(_) | Event::CustomerMetaUpdated(_) => {
                crate::customer::evolve(self, event)
            }
            Event::AccountOpened(_)
            | Event::NegativeBalanceAllowanceChanged(_)
            | Event::AccountMetaUpdated(_)
            | Event::TransactionRecorded(_)
            | Event::ProjectBalanceChanged(_) => crate::account::evolve(self, event),
            Event::TransferCreated(_) | Event::TransferMetaUpdated(_) => crate::transfer::evolve(self, event),
            Event::CardTokenCreated(_)
            | Event::CardTokenUsed(_)
            | Event::CardCreated(_)
            | Event::CardMetaUpdated(_) => crate::card::evolve(self, event),
            Event::CardPayinCreated(_)
            | Event::CardPayinAuthenticationRequested(_)
            | Event::CardPayinAuthorized(_)
            | Event::CardPayinDeclined(_)
            | Event::CardPayinSettled(_)
            | Event::CardPayinRefundChanged(_)
            | Event::CardPayinMetaUpdated(_)
            | Event::CardPayinRefundCreated(_)
            | Event::CardPayinRefundCompleted(_)
            | Event::CardPayinRefundFailed(_)
            | Event::CardPayinRefundMetaUpdated(_) => crate::card_payin::evolve(self, event),
            Event::BankAccountCreated(_) | Event::BankAccountMetaUpdated(_) => {
                crate::bank_account::evolve(self, event)
            }
            Event::BankPayoutCreated(_)
            | Event::BankPayoutCompleted(_)
            | Event::BankPayoutFailed(_)
            | Event::BankPayoutReturned(_)
            | Event::BankPayoutMetaUpdated(_)
            | Event::MinirefAssigned(_) => crate::bank_payout::evolve(self, event),
            Event::BankPayinReferenceCreated(_)
            | Event::BankPayinReferenceAccountChanged(_)
            | Event::BankPayinReferenceMetaUpdated(_)
            | Event::PayinReferenceCodeClaimed(_)
            | Event::BankPayinReceived(_)
            | Event::BankPayinMetaUpdated(_) => crate::bank_payin::evolve(self, event),
            Event::FileUploaded(_) => crate::file::evolve(self, event),
            Event::FxRateSet(_) | Event::FxRateRemoved(_) => crate::fx_rate::evolve(self, event),
            Event::ConsumerPositionCommitted(_) => crate::consumer::evolve(self, event),
            Event::DeploymentBootstrapped(_) => crate::deployment::evolve(self, event),
            Event::IdempotencyKeyUsed(_) => self.evolve_idempotency(event),
        }
    }

    /// An event that does not belong to this state: a bug, caught in debug
    /// builds; release builds keep the state.
    pub(crate) fn misapplied(self, event: &Event) -> Self {
        debug_assert!(false, "{} does not apply to {self:?}", event.event_type());
        self
    }

    /// Applies the record of an idempotency key's use (the decision
    /// context's own guard stream, not a family's).
    fn evolve_idempotency(self, event: &Event) -> Self {
        match (self, event) {
            (Self::Empty | Self::Idempotency(_), Event::IdempotencyKeyUsed(e)) => {
                Self::Idempotency(IdempotencyRecord {
                    request_hash: e.request_hash,
                    resource: e.resource,
                    used_at: e.used_at,
                })
            }
            (state, event) => state.misapplied(event),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }

    pub fn as_project(&self) -> Option<&Project> {
        match self {
            Self::Project(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_api_key(&self) -> Option<&ApiKey> {
        match self {
            Self::ApiKey(k) => Some(k),
            _ => None,
        }
    }

    pub fn as_customer(&self) -> Option<&Customer> {
        match self {
            Self::Customer(c) => Some(c),
            _ => None,
        }
    }

    pub fn as_account(&self) -> Option<&Account> {
        match self {
            Self::Account(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_transfer(&self) -> Option<&Transfer> {
        match self {
            Self::Transfer(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_card_token(&self) -> Option<&CardToken> {
        match self {
            Self::CardToken(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_card(&self) -> Option<&Card> {
        match self {
            Self::Card(c) => Some(c),
            _ => None,
        }
    }

    pub fn as_card_payin(&self) -> Option<&CardPayin> {
        match self {
            Self::CardPayin(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_card_payin_refund(&self) -> Option<&CardPayinRefund> {
        match self {
            Self::CardPayinRefund(r) => Some(r),
            _ => None,
        }
    }

    pub fn as_bank_account(&self) -> Option<&BankAccount> {
        match self {
            Self::BankAccount(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_bank_payout(&self) -> Option<&BankPayout> {
        match self {
            Self::BankPayout(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_bank_payin_reference(&self) -> Option<&BankPayinReference> {
        match self {
            Self::BankPayinReference(r) => Some(r),
            _ => None,
        }
    }

    pub fn as_bank_payin(&self) -> Option<&BankPayin> {
        match self {
            Self::BankPayin(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_file(&self) -> Option<&StoredFile> {
        match self {
            Self::File(f) => Some(f),
            _ => None,
        }
    }

    pub fn as_fx_rate(&self) -> Option<&FxRateEntry> {
        match self {
            Self::FxRate(r) => Some(r),
            _ => None,
        }
    }

    pub fn as_bootstrap(&self) -> Option<&Bootstrap> {
        match self {
            Self::Bootstrap(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_consumer(&self) -> Option<&ConsumerCheckpoint> {
        match self {
            Self::Consumer(c) => Some(c),
            _ => None,
        }
    }

    /// The project the aggregate belongs to, if it is a resource of one.
    pub fn project_id(&self) -> Option<ProjectId> {
        match self {
            Self::Project(p) => Some(p.id),
            Self::ApiKey(k) => Some(k.project_id),
            Self::Customer(c) => Some(c.project_id),
            Self::Account(a) => Some(a.project_id),
            Self::Transfer(t) => Some(t.project_id),
            Self::CardToken(t) => Some(t.project_id),
            Self::Card(c) => Some(c.project_id),
            Self::CardPayin(p) => Some(p.project_id),
            Self::CardPayinRefund(r) => Some(r.project_id),
            Self::BankAccount(b) => Some(b.project_id),
            Self::BankPayout(p) => Some(p.project_id),
            Self::BankPayinReference(r) => Some(r.project_id),
            Self::BankPayin(p) => Some(p.project_id),
            Self::File(f) => Some(f.project_id),
            Self::Consumer(c) => Some(c.project_id),
            // Shared by every project (or a write-side guard).
            Self::Empty
            | Self::ProjectBalance(_)
            | Self::Idempotency(_)
            | Self::PayoutDestination(_)
            | Self::PayinReferenceCode(_)
            | Self::FxRate(_)
            | Self::Bootstrap(_) => None,
        }
    }
}
