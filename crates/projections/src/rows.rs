//! A projection's rows in the model store, as the folds write them
//! ([`RowsMut`]) and the queries read them ([`RowsRead`]).
//!
//! Lists keep their items in creation order under `list key ++ sequence
//! number` (big-endian, so a list is one contiguous key range and newest
//! first is a reverse range scan); nothing is ever removed from a list, so
//! a page token's sequence number stays valid while new items arrive. A
//! resource's key (`ids`) leads to its row wherever it lives.

use std::collections::HashMap;

use paycore_domain::money::Currency;
use paycore_domain::{AccountId, CardPayinId, CustomerId, ProjectId, ResourceRef, TransactionId, TransferId};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::{ModelError, Tables};
use crate::models::ResourceKind;

/// The key of a list, a resource or a single row. Encoded with postcard:
/// the variant first, then fixed-size IDs, so the keys of one variant all
/// have the same length and a list's items never interleave with another's.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) enum Key {
    Project(ProjectId),
    Customers(ProjectId),
    Customer(CustomerId),
    Accounts(ProjectId),
    Account(AccountId),
    Transfers(ProjectId),
    Transfer(TransferId),
    Transactions(ProjectId),
    Transaction(TransactionId),
    AccountTransactions(AccountId),
    Resources(ProjectId, ResourceKind),
    Resource(ResourceRef),
    PayinRefunds(CardPayinId),
    FxRate(Currency, Currency),
    VerbatimIdempotencyUntil,
}

impl Key {
    fn bytes(&self) -> Vec<u8> {
        // Encoding IDs and enums into a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }
}

/// Where an item of a list lives: its list's key and its sequence number.
fn item_key(list: &[u8], seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(list.len() + 8);
    key.extend_from_slice(list);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, ModelError> {
    postcard::to_stdvec(value).map_err(|error| ModelError::Storage(format!("encoding a row: {error}")))
}

fn decode<V: DeserializeOwned>(what: &dyn std::fmt::Debug, bytes: &[u8]) -> Result<V, ModelError> {
    postcard::from_bytes(bytes).map_err(|error| ModelError::corrupt(format!("{what:?}"), error))
}

fn decode_seq(bytes: &[u8]) -> Result<u64, ModelError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| ModelError::corrupt("a list index entry", "not 8 bytes"))?;
    Ok(u64::from_be_bytes(array))
}

type Bytes = &'static [u8];

/// The row of resource `id`: its location in `ids`, then the item there.
fn row_of<V: DeserializeOwned>(
    ids: &impl ReadableTable<Bytes, Bytes>,
    items: &impl ReadableTable<Bytes, Bytes>,
    id: Key,
) -> Result<Option<V>, ModelError> {
    let Some(location) = ids.get(id.bytes().as_slice())? else {
        return Ok(None);
    };
    let Some(row) = items.get(location.value())? else {
        return Err(ModelError::corrupt(format!("{id:?}"), "its list item is missing"));
    };
    decode(&id, row.value()).map(Some)
}

/// A projection's tables inside a write transaction. List lengths are kept
/// here while the batch is applied and written once by [`RowsMut::finish`]
/// (the hot lists grow by thousands of items per batch).
pub(crate) struct RowsMut<'t> {
    items: Table<'t, Bytes, Bytes>,
    ids: Table<'t, Bytes, Bytes>,
    lens: Table<'t, Bytes, u64>,
    values: Table<'t, Bytes, Bytes>,
    pending_lens: HashMap<Vec<u8>, u64, foldhash::fast::RandomState>,
}

impl<'t> RowsMut<'t> {
    pub fn open(txn: &'t WriteTransaction, tables: &Tables) -> Result<Self, ModelError> {
        Ok(Self {
            items: txn.open_table(Tables::bytes(&tables.items))?,
            ids: txn.open_table(Tables::bytes(&tables.ids))?,
            lens: txn.open_table(Tables::counts(&tables.lens))?,
            values: txn.open_table(Tables::bytes(&tables.values))?,
            pending_lens: HashMap::default(),
        })
    }

    /// Writes the lists' new lengths.
    pub fn finish(mut self) -> Result<(), ModelError> {
        for (list, len) in self.pending_lens.drain() {
            self.lens.insert(list.as_slice(), len)?;
        }
        Ok(())
    }

    fn len_of(&mut self, list: &[u8]) -> Result<u64, ModelError> {
        if let Some(&len) = self.pending_lens.get(list) {
            return Ok(len);
        }
        Ok(self.lens.get(list)?.map_or(0, |len| len.value()))
    }

    /// Appends `value` to `list` as resource `id`; an ID seen before is
    /// ignored (events are applied once: this only guards against a log
    /// that repeats a creation). Answers the item's sequence number.
    pub fn insert<V: Serialize>(&mut self, list: Key, id: Key, value: &V) -> Result<Option<u64>, ModelError> {
        let id = id.bytes();
        if self.ids.get(id.as_slice())?.is_some() {
            return Ok(None);
        }
        let list = list.bytes();
        let seq = self.len_of(&list)?;
        let location = item_key(&list, seq);
        self.items
            .insert(location.as_slice(), encode(value)?.as_slice())?;
        self.ids.insert(id.as_slice(), location.as_slice())?;
        self.pending_lens.insert(list, seq + 1);
        Ok(Some(seq))
    }

    /// Appends the sequence number of an item of another list (an index
    /// such as an account's transactions).
    pub fn push_index(&mut self, list: Key, seq: u64) -> Result<(), ModelError> {
        let list = list.bytes();
        let next = self.len_of(&list)?;
        self.items
            .insert(item_key(&list, next).as_slice(), seq.to_be_bytes().as_slice())?;
        self.pending_lens.insert(list, next + 1);
        Ok(())
    }

    /// The row of resource `id`.
    pub fn get<V: DeserializeOwned>(&self, id: Key) -> Result<Option<V>, ModelError> {
        row_of(&self.ids, &self.items, id)
    }

    /// Replaces the row of resource `id` by a function of it, in place.
    pub fn update<V: Serialize + DeserializeOwned>(
        &mut self,
        id: Key,
        change: impl FnOnce(V) -> V,
    ) -> Result<(), ModelError> {
        let Some(location) = self
            .ids
            .get(id.bytes().as_slice())?
            .map(|found| found.value().to_vec())
        else {
            return Ok(());
        };
        let old = match self.items.get(location.as_slice())? {
            Some(row) => decode::<V>(&id, row.value())?,
            None => return Err(ModelError::corrupt(format!("{id:?}"), "its list item is missing")),
        };
        let new = encode(&change(old))?;
        self.items.insert(location.as_slice(), new.as_slice())?;
        Ok(())
    }

    pub fn value<V: DeserializeOwned>(&self, key: Key) -> Result<Option<V>, ModelError> {
        self.values
            .get(key.bytes().as_slice())?
            .map(|row| decode(&key, row.value()))
            .transpose()
    }

    pub fn set_value<V: Serialize>(&mut self, key: Key, value: &V) -> Result<(), ModelError> {
        self.values
            .insert(key.bytes().as_slice(), encode(value)?.as_slice())?;
        Ok(())
    }
}

/// A projection's tables as of one read transaction: every query of it
/// sees one position of the log.
pub(crate) struct RowsRead {
    items: ReadOnlyTable<Bytes, Bytes>,
    ids: ReadOnlyTable<Bytes, Bytes>,
    lens: ReadOnlyTable<Bytes, u64>,
    values: ReadOnlyTable<Bytes, Bytes>,
}

impl RowsRead {
    pub fn open(txn: &ReadTransaction, tables: &Tables) -> Result<Self, ModelError> {
        Ok(Self {
            items: txn.open_table(Tables::bytes(&tables.items))?,
            ids: txn.open_table(Tables::bytes(&tables.ids))?,
            lens: txn.open_table(Tables::counts(&tables.lens))?,
            values: txn.open_table(Tables::bytes(&tables.values))?,
        })
    }

    pub fn get<V: DeserializeOwned>(&self, id: Key) -> Result<Option<V>, ModelError> {
        row_of(&self.ids, &self.items, id)
    }

    /// Number of items in `list` (0 for a list never written).
    pub fn len(&self, list: Key) -> Result<u64, ModelError> {
        Ok(self
            .lens
            .get(list.bytes().as_slice())?
            .map_or(0, |len| len.value()))
    }

    /// Items `range` of `list` (oldest = 0), newest first.
    pub fn newest_first<V: DeserializeOwned>(
        &self,
        list: Key,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<V>, ModelError> {
        let bytes = list.bytes();
        let (from, to) = (item_key(&bytes, range.start), item_key(&bytes, range.end));
        let mut items = Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
        for entry in self.items.range(from.as_slice()..to.as_slice())?.rev() {
            let (_, row) = entry?;
            items.push(decode(&list, row.value())?);
        }
        Ok(items)
    }

    /// Items `range` of an index list (sequence numbers into `target`),
    /// resolved to the target's items, newest first.
    pub fn newest_first_through<V: DeserializeOwned>(
        &self,
        index: Key,
        target: Key,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<V>, ModelError> {
        let seqs: Vec<u64> = {
            let bytes = index.bytes();
            let (from, to) = (item_key(&bytes, range.start), item_key(&bytes, range.end));
            let mut seqs = Vec::new();
            for entry in self.items.range(from.as_slice()..to.as_slice())?.rev() {
                seqs.push(decode_seq(entry?.1.value())?);
            }
            seqs
        };
        let target_bytes = target.bytes();
        seqs.into_iter()
            .map(|seq| {
                let row = self.items.get(item_key(&target_bytes, seq).as_slice())?;
                let row =
                    row.ok_or_else(|| ModelError::corrupt(format!("{index:?}"), "points at no item"))?;
                decode(&target, row.value())
            })
            .collect()
    }

    pub fn value<V: DeserializeOwned>(&self, key: Key) -> Result<Option<V>, ModelError> {
        self.values
            .get(key.bytes().as_slice())?
            .map(|row| decode(&key, row.value()))
            .transpose()
    }

    /// Every single row (small tables only, such as exchange rates).
    pub fn all_values<V: DeserializeOwned>(&self) -> Result<Vec<V>, ModelError> {
        let mut values = Vec::new();
        for entry in self.values.iter()? {
            values.push(decode(&"a value row", entry?.1.value())?);
        }
        Ok(values)
    }
}

pub(crate) mod fuzzing {
    use paycore_domain::Aggregate;
    use paycore_domain::aggregate::{Account, Customer, Project, Transfer};
    use paycore_domain::fx_rate::FxRateEntry;
    use paycore_domain::{Timestamp, Transaction};

    use super::{decode, decode_seq};
    use crate::db::Checkpoint;

    /// Kinds of rows: checkpoint, project, customer, account, transfer,
    /// transaction, resource (aggregate state), exchange rate, timestamp,
    /// list index entry.
    pub const ROW_KINDS: u8 = 10;

    /// Decodes `bytes` as the row kind `kind` (modulo [`ROW_KINDS`]) as the
    /// queries and folds do; answers whether it decoded.
    pub fn decode_row(kind: u8, bytes: &[u8]) -> bool {
        let what = &"a fuzzed row";
        match kind % ROW_KINDS {
            0 => decode::<Checkpoint>(what, bytes).is_ok(),
            1 => decode::<Project>(what, bytes).is_ok(),
            2 => decode::<Customer>(what, bytes).is_ok(),
            3 => decode::<Account>(what, bytes).is_ok(),
            4 => decode::<Transfer>(what, bytes).is_ok(),
            5 => decode::<Transaction>(what, bytes).is_ok(),
            6 => decode::<Aggregate>(what, bytes).is_ok(),
            7 => decode::<FxRateEntry>(what, bytes).is_ok(),
            8 => decode::<Timestamp>(what, bytes).is_ok(),
            _ => decode_seq(bytes).is_ok(),
        }
    }

    /// The rows a state is kept as: as a resource, and as its own row kind.
    pub fn encode_row(state: &Aggregate) -> Vec<(u8, Vec<u8>)> {
        let mut rows = vec![(6, postcard::to_stdvec(state).unwrap_or_default())];
        let own = match state {
            Aggregate::Project(project) => Some((1, postcard::to_stdvec(project))),
            Aggregate::Customer(customer) => Some((2, postcard::to_stdvec(customer))),
            Aggregate::Account(account) => Some((3, postcard::to_stdvec(account))),
            Aggregate::Transfer(transfer) => Some((4, postcard::to_stdvec(transfer))),
            _ => None,
        };
        if let Some((kind, Ok(bytes))) = own {
            rows.push((kind, bytes));
        }
        rows
    }
}
