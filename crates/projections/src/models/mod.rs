//! The read models: how each event folds into a projection's rows. Each one
//! is a [`Projection`] with its own name, version, tables and checkpoint, so
//! one can be rebuilt without the others.

mod accounts;
mod directory;
mod fx_rates;
mod open_banking;
mod resources;
mod transactions;
mod transfers;

use paycore_domain::{Aggregate, Event, ResourceRef, StreamRef};
use serde::{Deserialize, Serialize};

use crate::db::ModelError;
use crate::rows::RowsMut;

pub(crate) use accounts::Accounts;
pub(crate) use directory::Directory;
pub(crate) use fx_rates::FxRates;
pub use open_banking::DueKind;
pub(crate) use open_banking::{
    OpenBanking, Owner, TransactionAt, date_key, time_key, time_of_key, transaction_suffix,
};
pub(crate) use resources::Resources;
pub(crate) use transactions::Transactions;
pub(crate) use transfers::Transfers;

/// One event of `$all` as a projection sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Applied<'a> {
    pub category: &'a str,
    pub stream_id: &'a str,
    pub event: &'a Event,
}

impl Applied<'_> {
    /// The stream the event was written to, when it is one of the domain's.
    pub fn stream(&self) -> Option<StreamRef> {
        StreamRef::parse(&format!("{}-{}", self.category, self.stream_id))
    }
}

/// A read model folded from `$all`, in order, each event once, into its
/// rows in the model store.
pub(crate) trait Projection: Send + Sync + 'static {
    /// What operators call it (`paycore projections rebuild <name>`).
    const NAME: &'static str;
    /// Bump whenever what the projection keeps, or how an event folds into
    /// it, changes: rows written by another version are then dropped and the
    /// projection is rebuilt from the log on start.
    const VERSION: u32;
    /// An earlier version whose rows and checkpoint this one continues as
    /// they are, because only how rows are stored changed and the old form
    /// stays readable; `None`: rows of any other version are rebuilt.
    const CONTINUES: Option<u32> = None;
    /// One line for `projections status`.
    const DESCRIPTION: &'static str;

    fn apply(rows: &mut RowsMut<'_>, applied: &Applied<'_>) -> Result<(), ModelError>;
}

/// The resources kept as aggregate states, one list each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceKind {
    CardToken,
    Card,
    CardPayin,
    CardPayinRefund,
    BankAccount,
    BankPayout,
    BankPayinReference,
    BankPayin,
    File,
}

impl ResourceKind {
    /// The kind of a resource, if it is one of these.
    pub fn of(resource: ResourceRef) -> Option<Self> {
        Some(match resource {
            ResourceRef::CardToken(_) => Self::CardToken,
            ResourceRef::Card(_) => Self::Card,
            ResourceRef::CardPayin(_) => Self::CardPayin,
            ResourceRef::CardPayinRefund(_) => Self::CardPayinRefund,
            ResourceRef::BankAccount(_) => Self::BankAccount,
            ResourceRef::BankPayout(_) => Self::BankPayout,
            ResourceRef::BankPayinReference(_) => Self::BankPayinReference,
            ResourceRef::BankPayin(_) => Self::BankPayin,
            ResourceRef::File(_) => Self::File,
            ResourceRef::Project(_)
            | ResourceRef::ApiKey(_)
            | ResourceRef::Customer(_)
            | ResourceRef::Account(_)
            | ResourceRef::Transfer(_)
            | ResourceRef::FxRate(..)
            // Open banking has no read model yet (issue 13).
            | ResourceRef::AggregationConnection(_)
            | ResourceRef::AggregationImport(_)
            | ResourceRef::AggregatedAccount(_) => return None,
        })
    }
}

/// The resource a stream holds, for the kinds kept as aggregate states.
pub(crate) fn resource_of(stream: &StreamRef) -> Option<ResourceRef> {
    let resource = match stream {
        StreamRef::CardToken(id) => ResourceRef::CardToken(*id),
        StreamRef::Card(id) => ResourceRef::Card(*id),
        StreamRef::CardPayin(id) => ResourceRef::CardPayin(*id),
        StreamRef::CardPayinRefund(id) => ResourceRef::CardPayinRefund(*id),
        StreamRef::BankAccount(id) => ResourceRef::BankAccount(*id),
        StreamRef::BankPayout(id) => ResourceRef::BankPayout(*id),
        StreamRef::BankPayinReference(id) => ResourceRef::BankPayinReference(*id),
        StreamRef::BankPayin(id) => ResourceRef::BankPayin(*id),
        StreamRef::File(id) => ResourceRef::File(*id),
        _ => return None,
    };
    Some(resource)
}

/// The read model of an aggregate is its state: reuse the domain's `evolve`
/// so the two can never disagree.
pub(crate) fn evolve(state: Option<Aggregate>, event: &Event) -> Option<Aggregate> {
    Some(state.unwrap_or_default().evolve(event))
}

/// `Aggregate::evolve` keeps an aggregate's kind for the events of its own
/// stream, which are the only ones routed to it.
pub(crate) fn unreachable_state<T>() -> T {
    unreachable!("an aggregate's own events never change its kind")
}
