//! The router of states: [`Aggregate`], the state of any stream, one
//! variant per family state, and [`Aggregate::evolve`], which hands each
//! event to its family's `evolve` with the state as that family's own type.
//! `evolve` is total: an event that does not belong to the aggregate is a
//! bug, caught by a debug assert.

use std::any::Any;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

pub use crate::account::{Account, AccountAggregate, ProjectBalance};
pub use crate::aggregated_account::AggregatedAccount;
pub use crate::aggregation_connection::AggregationConnection;
pub use crate::aggregation_import::AggregationImport;
use crate::bank_account::BankAccount;
use crate::bank_payin::{BankPayin, BankPayinAggregate, BankPayinReference, ReferenceCodeClaim};
use crate::bank_payout::{BankPayout, BankPayoutAggregate, PayoutDestination};
use crate::card::{Card, CardAggregate, CardToken};
use crate::card_payin::{CardPayin, CardPayinAggregate, CardPayinRefund};
use crate::consumer::ConsumerCheckpoint;
use crate::context::misapplied;
pub use crate::customer::Customer;
use crate::deployment::Bootstrap;
use crate::events::{Event, FamilyEvent, IdempotencyEvent, ResourceRef};
pub use crate::file::StoredFile;
pub use crate::fx_rate::{FxRateEntry, FxRateValue};
pub use crate::institution::InstitutionActivation;
use crate::kernel::id::ProjectId;
use crate::kernel::time::Timestamp;
pub use crate::project::{ApiKey, Project, ProjectAggregate};
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
            .plus_seconds(crate::kernel::idempotency::IDEMPOTENCY_WINDOW_SECONDS)
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
    Institution(InstitutionActivation),
    AggregationConnection(AggregationConnection),
    AggregationImport(AggregationImport),
    AggregatedAccount(AggregatedAccount),
}

impl Aggregate {
    /// Folds a stream's events from `Empty`.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        events.into_iter().fold(Self::Empty, Self::evolve)
    }

    /// Applies a copy of `event`'s payload (see [`Aggregate::apply`]).
    /// Families fold their events by value, moving the payload's fields into
    /// the state, so the copy costs about what cloning those fields cost
    /// before.
    pub fn evolve(self, event: &Event) -> Self {
        self.route(event.to_family())
    }

    /// Routes `event` to the `evolve` of its family, with this state as the
    /// family's own state type (exhaustive: an unrouted family does not
    /// compile).
    pub fn apply(self, event: Event) -> Self {
        self.route(event.into_family())
    }

    fn route(self, event: FamilyEvent) -> Self {
        match event {
            FamilyEvent::Project(event) => self.fold(event, crate::project::evolve),
            FamilyEvent::Customer(event) => self.fold(event, crate::customer::evolve),
            FamilyEvent::Account(event) => self.fold(event, crate::account::evolve),
            FamilyEvent::Transfer(event) => self.fold(event, crate::transfer::evolve),
            FamilyEvent::Idempotency(event) => self.fold(event, evolve_idempotency),
            FamilyEvent::Card(event) => self.fold(event, crate::card::evolve),
            FamilyEvent::CardPayin(event) => self.fold(event, crate::card_payin::evolve),
            FamilyEvent::BankAccount(event) => self.fold(event, crate::bank_account::evolve),
            FamilyEvent::BankPayout(event) => self.fold(event, crate::bank_payout::evolve),
            FamilyEvent::BankPayin(event) => self.fold(event, crate::bank_payin::evolve),
            FamilyEvent::File(event) => self.fold(event, crate::file::evolve),
            FamilyEvent::FxRate(event) => self.fold(event, crate::fx_rate::evolve),
            FamilyEvent::Consumer(event) => self.fold(event, crate::consumer::evolve),
            FamilyEvent::Deployment(event) => self.fold(event, crate::deployment::evolve),
            FamilyEvent::Institution(event) => self.fold(event, crate::institution::evolve),
            FamilyEvent::AggregationConnection(event) => {
                self.fold(event, crate::aggregation_connection::evolve)
            }
            FamilyEvent::AggregationImport(event) => self.fold(event, crate::aggregation_import::evolve),
            FamilyEvent::AggregatedAccount(event) => self.fold(event, crate::aggregated_account::evolve),
        }
    }

    /// Hands `event` to a family's `evolve` if this state is empty or the
    /// family's; another family's state is left as it is (a bug).
    fn fold<S: FamilyState, E: Debug>(
        self,
        event: E,
        evolve: impl FnOnce(Option<S>, E) -> Option<S>,
    ) -> Self {
        if S::holds(&self) {
            evolve(S::take(self), event).map_or(Self::Empty, S::into_aggregate)
        } else {
            misapplied(self, &event)
        }
    }

    /// The state as its family's own type (`None` when empty): what the
    /// decision context reads.
    pub(crate) fn family_state(&self) -> Option<&dyn Any> {
        match self {
            Self::Empty => None,
            Self::Project(state) => Some(state),
            Self::ApiKey(state) => Some(state),
            Self::Customer(state) => Some(state),
            Self::Account(state) => Some(state),
            Self::Transfer(state) => Some(state),
            Self::ProjectBalance(state) => Some(state),
            Self::Idempotency(state) => Some(state),
            Self::CardToken(state) => Some(state),
            Self::Card(state) => Some(state),
            Self::CardPayin(state) => Some(state),
            Self::CardPayinRefund(state) => Some(state),
            Self::BankAccount(state) => Some(state),
            Self::BankPayout(state) => Some(state),
            Self::PayoutDestination(state) => Some(state),
            Self::BankPayinReference(state) => Some(state),
            Self::PayinReferenceCode(state) => Some(state),
            Self::BankPayin(state) => Some(state),
            Self::File(state) => Some(state),
            Self::FxRate(state) => Some(state),
            Self::Consumer(state) => Some(state),
            Self::Bootstrap(state) => Some(state),
            Self::Institution(state) => Some(state),
            Self::AggregationConnection(state) => Some(state),
            Self::AggregationImport(state) => Some(state),
            Self::AggregatedAccount(state) => Some(state),
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

    pub fn as_institution_activation(&self) -> Option<&InstitutionActivation> {
        match self {
            Self::Institution(state) => Some(state),
            _ => None,
        }
    }

    pub fn as_aggregation_connection(&self) -> Option<&AggregationConnection> {
        match self {
            Self::AggregationConnection(state) => Some(state),
            _ => None,
        }
    }

    pub fn as_aggregation_import(&self) -> Option<&AggregationImport> {
        match self {
            Self::AggregationImport(state) => Some(state),
            _ => None,
        }
    }

    pub fn as_aggregated_account(&self) -> Option<&AggregatedAccount> {
        match self {
            Self::AggregatedAccount(state) => Some(state),
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
            Self::Institution(state) => Some(state.project_id),
            Self::AggregationConnection(state) => Some(state.project_id),
            Self::AggregationImport(state) => Some(state.project_id),
            Self::AggregatedAccount(state) => Some(state.project_id),
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

/// Applies the record of an idempotency key's use (the command router's own
/// guard stream, not a family's): the latest use replaces the one before.
fn evolve_idempotency(
    _state: Option<IdempotencyRecord>,
    event: IdempotencyEvent,
) -> Option<IdempotencyRecord> {
    let IdempotencyEvent::IdempotencyKeyUsed(e) = event;
    Some(IdempotencyRecord {
        request_hash: e.request_hash,
        resource: e.resource,
        used_at: e.used_at,
    })
}

/// A family's state type as the [`Aggregate`] holds it.
trait FamilyState: Sized {
    /// Whether `aggregate` is empty or holds a state of the family.
    fn holds(aggregate: &Aggregate) -> bool;
    /// The family's state in `aggregate`; `None` when it holds none.
    fn take(aggregate: Aggregate) -> Option<Self>;
    fn into_aggregate(self) -> Aggregate;
}

/// Families with one kind of stream: the state type is one variant.
macro_rules! single_states {
    ($($state:ty => $variant:ident),+ $(,)?) => {$(
        impl FamilyState for $state {
            fn holds(aggregate: &Aggregate) -> bool {
                matches!(aggregate, Aggregate::Empty | Aggregate::$variant(_))
            }

            fn take(aggregate: Aggregate) -> Option<Self> {
                match aggregate {
                    Aggregate::$variant(state) => Some(state),
                    _ => None,
                }
            }

            fn into_aggregate(self) -> Aggregate {
                Aggregate::$variant(self)
            }
        }
    )+};
}

/// Families with several kinds of streams: the family's enum, whose
/// variants are named like the `Aggregate` variants they map to.
macro_rules! family_states {
    ($($family:ty { $($variant:ident),+ $(,)? }),+ $(,)?) => {$(
        impl FamilyState for $family {
            fn holds(aggregate: &Aggregate) -> bool {
                matches!(aggregate, Aggregate::Empty $(| Aggregate::$variant(_))+)
            }

            fn take(aggregate: Aggregate) -> Option<Self> {
                match aggregate {
                    $(Aggregate::$variant(state) => Some(Self::$variant(state)),)+
                    _ => None,
                }
            }

            fn into_aggregate(self) -> Aggregate {
                match self {
                    $(Self::$variant(state) => Aggregate::$variant(state),)+
                }
            }
        }
    )+};
}

single_states! {
    Customer => Customer,
    Transfer => Transfer,
    IdempotencyRecord => Idempotency,
    BankAccount => BankAccount,
    StoredFile => File,
    FxRateEntry => FxRate,
    ConsumerCheckpoint => Consumer,
    Bootstrap => Bootstrap,
    InstitutionActivation => Institution,
    AggregationConnection => AggregationConnection,
    AggregationImport => AggregationImport,
    AggregatedAccount => AggregatedAccount,
}

family_states! {
    ProjectAggregate { Project, ApiKey },
    AccountAggregate { Account, ProjectBalance },
    CardAggregate { CardToken, Card },
    CardPayinAggregate { CardPayin, CardPayinRefund },
    BankPayoutAggregate { BankPayout, PayoutDestination },
    BankPayinAggregate { BankPayinReference, PayinReferenceCode, BankPayin },
}
