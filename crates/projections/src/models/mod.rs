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
///
/// A snapshot stores the items and their keys in creation order, not the
/// map: loading rebuilds the map at its final size in one go, which is
/// several times faster than decoding a map entry by entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(
    try_from = "Stored<K, V>",
    bound(deserialize = "K: Deserialize<'de> + Copy + Eq + Hash, V: Deserialize<'de>")
)]
pub(crate) struct CreationOrdered<K: Eq + Hash, V> {
    chunks: Vec<Vec<V>>,
    len: usize,
    index: Map<K, u32>,
}

const CHUNK: usize = 4_096;

/// How a [`CreationOrdered`] is read from a snapshot.
#[derive(Deserialize)]
pub(crate) struct Stored<K, V> {
    chunks: Vec<Vec<V>>,
    /// The key of each item, in creation order.
    keys: Vec<K>,
}

/// How a [`CreationOrdered`] is written: the same fields as [`Stored`],
/// borrowing the items rather than copying them.
#[derive(Serialize)]
struct StoredRef<'a, K, V> {
    chunks: &'a [Vec<V>],
    keys: Vec<K>,
}

impl<K: Serialize + Eq + Hash + Copy, V: Serialize> Serialize for CreationOrdered<K, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut keys: Vec<Option<K>> = vec![None; self.len];
        for (key, &slot) in &self.index {
            if let Some(place) = keys.get_mut(slot as usize) {
                *place = Some(*key);
            }
        }
        debug_assert!(keys.iter().all(Option::is_some), "every item has its key");
        StoredRef {
            chunks: &self.chunks,
            keys: keys.into_iter().flatten().collect(),
        }
        .serialize(serializer)
    }
}

impl<K: Eq + Hash + Copy, V> TryFrom<Stored<K, V>> for CreationOrdered<K, V> {
    type Error = &'static str;

    fn try_from(stored: Stored<K, V>) -> Result<Self, Self::Error> {
        let len: usize = stored.chunks.iter().map(Vec::len).sum();
        let full_chunks = stored
            .chunks
            .iter()
            .rev()
            .skip(1)
            .all(|chunk| chunk.len() == CHUNK);
        if stored.keys.len() != len || !full_chunks || u32::try_from(len).is_err() {
            return Err("a list's keys and items do not match");
        }
        let mut index = Map::with_capacity_and_hasher(len, Default::default());
        for (slot, key) in stored.keys.into_iter().enumerate() {
            if index.insert(key, slot as u32).is_some() {
                return Err("a list holds a key twice");
            }
        }
        Ok(Self {
            chunks: stored.chunks,
            len,
            index,
        })
    }
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_list_round_trips_through_a_snapshot_with_its_order_and_index() {
        let mut list: CreationOrdered<u64, String> = CreationOrdered::default();
        for key in (0..10_000_u64).rev() {
            list.insert(key, format!("item {key}"));
        }
        let bytes = postcard::to_stdvec(&list).unwrap();
        let loaded: CreationOrdered<u64, String> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(loaded.len(), 10_000);
        assert_eq!(loaded.at(0).map(String::as_str), Some("item 9999"));
        assert_eq!(loaded.get(&42).map(String::as_str), Some("item 42"));
        assert!((0..10_000).all(|i| loaded.at(i) == list.at(i)));
    }

    #[test]
    fn a_list_whose_keys_do_not_match_its_items_is_refused() {
        let short = Stored::<u64, String> {
            chunks: vec![vec!["a".into(), "b".into()]],
            keys: vec![1],
        };
        assert!(CreationOrdered::try_from(short).is_err());
        let repeated = Stored::<u64, String> {
            chunks: vec![vec!["a".into(), "b".into()]],
            keys: vec![1, 1],
        };
        assert!(CreationOrdered::try_from(repeated).is_err());
    }
}
