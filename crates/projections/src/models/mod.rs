//! The read models: plain data folded from events, no I/O. Each one is a
//! [`Projection`] with its own name, version and checkpoint, so one can be
//! rebuilt without the others.

mod accounts;
mod directory;
mod fx_rates;
mod resources;
mod transactions;
mod transfers;

use std::collections::HashMap;
use std::hash::Hash;

use paycore_domain::{Aggregate, Event, ResourceRef, StreamRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub(crate) use accounts::Accounts;
pub(crate) use directory::Directory;
pub(crate) use fx_rates::FxRates;
pub(crate) use resources::Resources;
pub(crate) use transactions::Transactions;
pub(crate) use transfers::Transfers;

/// The maps of the read models. Their keys are IDs the server generated;
/// foldhash (seeded per process) hashes them several times faster than
/// SipHash, which was a large part of rebuilding and loading.
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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

/// A read model folded from `$all`, in order, each event once.
pub(crate) trait Projection: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What operators call it (`paycore projections rebuild <name>`).
    const NAME: &'static str;
    /// Bump whenever what the projection keeps, or how an event folds into
    /// it, changes: a snapshot of another version is then ignored and the
    /// projection is rebuilt from the log on start.
    const VERSION: u32;
    /// One line for `projections status`.
    const DESCRIPTION: &'static str;

    fn apply(&mut self, applied: &Applied<'_>);
}

/// Items in the order they were created, addressable by ID. Lists page over
/// them backwards (newest first); indices never change because nothing is
/// ever removed, which keeps page tokens stable while new items arrive.
///
/// Items live in fixed-size chunks and the ID map holds only indices, so
/// growing a large list never copies its items (no stall while it grows).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CreationOrdered<K: Eq + Hash, V> {
    chunks: Vec<Vec<V>>,
    len: usize,
    index: Map<K, u32>,
}

const CHUNK: usize = 4_096;

impl<K: Eq + Hash, V> Default for CreationOrdered<K, V> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
            index: Map::default(),
        }
    }
}

impl<K: Eq + Hash + Copy, V> CreationOrdered<K, V> {
    /// Appends a new item; an ID seen before is ignored (events are applied
    /// once, so this only guards against a log that repeats a creation).
    pub(crate) fn insert(&mut self, id: K, value: V) -> Option<usize> {
        if self.index.contains_key(&id) {
            return None;
        }
        let position = self.len;
        let slot = u32::try_from(position).ok()?;
        if position.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut()?.push(value);
        self.index.insert(id, slot);
        self.len += 1;
        Some(position)
    }

    pub fn get(&self, id: &K) -> Option<&V> {
        self.at(*self.index.get(id)? as usize)
    }

    fn get_mut(&mut self, id: &K) -> Option<&mut V> {
        let position = *self.index.get(id)? as usize;
        self.chunks.get_mut(position / CHUNK)?.get_mut(position % CHUNK)
    }

    /// Replaces an item by a function of its old value, keeping its place.
    pub(crate) fn update(&mut self, id: &K, change: impl FnOnce(&V) -> V) {
        if let Some(item) = self.get_mut(id) {
            *item = change(item);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The item created `index`-th (0 = oldest).
    pub fn at(&self, index: usize) -> Option<&V> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }
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
            | ResourceRef::FxRate(..) => return None,
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
