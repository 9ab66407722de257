//! A projection's rows in the model store, as the folds write them
//! ([`RowsMut`]) and the queries read them ([`RowsRead`]).
//!
//! Lists keep their items in creation order, packed into chunks of
//! consecutive items (`chunk.rs`) under `list key ++ sequence number of the
//! chunk's first item` (big-endian, so a list is one contiguous key range
//! and newest first is a reverse range scan); nothing is ever removed from
//! a list, so a page token's sequence number stays valid while new items
//! arrive. A resource's key leads to its row wherever it lives: through an
//! entry of its own in `ids`, or through a run of IDs whose rows follow one
//! another (`id_runs`, see `id_runs.rs`).

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use paycore_domain::kernel::money::Currency;
use paycore_domain::{
    AccountId, AggregatedAccountId, AggregatedTransactionId, AggregationConnectionId, CardPayinId,
    CustomerId, ProjectId, ResourceRef, TransactionId, TransferId,
};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use smallvec::SmallVec;

use crate::chunk::{self, Chunk};
use crate::db::{ModelError, Namespace, Tables};
use crate::id_runs;
use crate::models::{DueKind, ResourceKind};
use crate::overlay::Layer;

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
    // Open banking (`models/open_banking.rs`).
    AggregationConnections(ProjectId),
    CustomerAggregationConnections(CustomerId),
    ConnectionImports(AggregationConnectionId),
    AggregatedAccounts(ProjectId),
    ConnectionAggregatedAccounts(AggregationConnectionId),
    CustomerAggregatedAccounts(CustomerId),
    /// Sorted: an account's transactions by booking date and ID.
    AggregatedTransactions(AggregatedAccountId),
    /// Sorted: the pending ones only.
    PendingAggregatedTransactions(AggregatedAccountId),
    /// Where a transaction's sorted rows are.
    AggregatedTransactionAt(AggregatedTransactionId),
    /// Sorted: imports not finished, by ID.
    UnfinishedAggregationImports,
    /// Sorted: connections with something due, by time.
    AggregationDue(DueKind),
    /// Sorted: pending transfers by `expires_at`, then ID
    /// (`models/transfers.rs`).
    PendingTransfersDue,
}

impl Key {
    fn bytes(&self) -> RowKey {
        let mut buffer = [0u8; KEY_BYTES];
        // Encoding IDs and enums cannot fail, and every key fits.
        let encoded = postcard::to_slice(self, &mut buffer)
            .map(|key| key.len())
            .unwrap_or_default();
        debug_assert!(encoded > 0, "{self:?} does not fit a row key");
        RowKey::from_slice(&buffer[..encoded])
    }
}

/// The key of the sorted row `suffix` under `prefix`.
fn sorted_key(prefix: Key, suffix: &[u8]) -> RowKey {
    let mut key = prefix.bytes();
    key.extend_from_slice(suffix);
    key
}

/// Where an item of a list lives: its list's key and its sequence number.
/// A chunk's entry is keyed by the item key of its first item.
pub(crate) fn item_key(list: &[u8], seq: u64) -> RowKey {
    let mut key = RowKey::new();
    key.extend_from_slice(list);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The list and sequence number of an item key.
pub(crate) fn split_item_key(location: &[u8]) -> Result<(&[u8], u64), ModelError> {
    let at = location
        .len()
        .checked_sub(8)
        .ok_or_else(|| ModelError::corrupt("a list location", "shorter than a sequence number"))?;
    let (list, seq) = location.split_at(at);
    Ok((list, decode_seq(seq)?))
}

/// Bytes first reserved for an encoded row: most rows fit, so encoding
/// does not grow the buffer a few bytes at a time.
const ROW_BYTES: usize = 256;

fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, ModelError> {
    postcard::to_extend(value, Vec::with_capacity(ROW_BYTES))
        .map_err(|error| ModelError::Storage(format!("encoding a row: {error}")))
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

fn malformed(list: &[u8], first: u64) -> ModelError {
    ModelError::corrupt(
        format!("list chunk {}@{first}", hex::encode(list)),
        chunk::Malformed,
    )
}

/// A suffix bound under `prefix` as a bound of full keys.
fn full_bounds(
    prefix: &[u8],
    (lower, upper): (Bound<&[u8]>, Bound<&[u8]>),
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let join = |suffix: &[u8]| [prefix, suffix].concat();
    let lower = match lower {
        Bound::Included(suffix) => Bound::Included(join(suffix)),
        Bound::Excluded(suffix) => Bound::Excluded(join(suffix)),
        Bound::Unbounded => Bound::Included(prefix.to_vec()),
    };
    let upper = match upper {
        Bound::Included(suffix) => Bound::Included(join(suffix)),
        Bound::Excluded(suffix) => Bound::Excluded(join(suffix)),
        Bound::Unbounded => prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded),
    };
    (lower, upper)
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Whether no key is within `range`.
fn is_empty((lower, upper): (Bound<&[u8]>, Bound<&[u8]>)) -> bool {
    match (lower, upper) {
        (Bound::Included(low), Bound::Included(high)) => low > high,
        (Bound::Included(low) | Bound::Excluded(low), Bound::Excluded(high))
        | (Bound::Excluded(low), Bound::Included(high)) => low >= high,
        _ => false,
    }
}

fn as_ref_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

type Bytes = &'static [u8];

/// An index list's item: a sequence number of the list it indexes.
const INDEX_ITEM_BYTES: usize = 8;

/// The longest key: a variant and two IDs, or a list key and a sequence number.
const KEY_BYTES: usize = 48;

/// A key or an item location, kept inline (no allocation per key).
pub(crate) type RowKey = SmallVec<[u8; KEY_BYTES]>;

type Hasher = foldhash::fast::RandomState;

/// A list's chunks held in memory, by the sequence number of their first item.
type ListChunks = BTreeMap<u64, Chunk>;

/// An item key's sequence number: big-endian, after the list's key.
const SEQ_BYTES: usize = 8;

/// One projection's rows changed and not yet written to the model store:
/// the chunks changed (whole), lists' new lengths, new resources'
/// locations and single rows. A batch of the follower gathers its changes
/// in one, merged into the models' active changes once the whole batch
/// applied ([`Pending::absorb`]); those are written to the store every
/// [`crate::overlay::FLUSH_EVERY`] in one transaction, and queries read
/// them over the store meanwhile.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pending {
    /// By list, then by the sequence number of the chunk's first item. A
    /// lookup hashes the list's key once and then compares numbers, where
    /// one ordered map of every chunk compared whole keys at each of its
    /// levels (a tenth of a rebuild's folding).
    chunks: HashMap<RowKey, ListChunks, Hasher>,
    lens: HashMap<RowKey, u64, Hasher>,
    ids: HashMap<RowKey, RowKey, Hasher>,
    values: HashMap<RowKey, Arc<[u8]>, Hasher>,
    /// Rows read in key order (`sorted_*`), kept in the `values` table
    /// under keys no other row has (their prefix is a [`Key`] of their
    /// own); `None` removes the row.
    sorted: BTreeMap<RowKey, Option<Arc<[u8]>>>,
    /// Bytes taken in since the last write (an upper bound of the memory
    /// held: a chunk changed twice counts twice).
    bytes: usize,
    /// A follower's batch only: items of index lists (an account's
    /// transactions) whose last chunk the active changes under the batch
    /// hold, by list: the position of the first and the items one after
    /// the other. They are appended to that chunk when the batch is
    /// absorbed ([`Pending::absorb`]) instead of a copy of it being taken
    /// into every batch: with an account touched about once per batch,
    /// those copies were a quarter of applying a transfer. No fold reads an
    /// index list, so nothing in the batch misses them.
    deferred: HashMap<RowKey, (u64, Vec<u8>), Hasher>,
}

impl Pending {
    /// Empty, with room for as many changes as `previous` held: the
    /// follower's next changes are about as many, and its maps then do not
    /// grow by rehashing everything a few times over.
    pub fn sized_like(previous: &Pending) -> Self {
        Self {
            lens: HashMap::with_capacity_and_hasher(previous.lens.len(), Hasher::default()),
            ids: HashMap::with_capacity_and_hasher(previous.ids.len(), Hasher::default()),
            values: HashMap::with_capacity_and_hasher(previous.values.len(), Hasher::default()),
            ..Self::default()
        }
    }

    /// Takes in the changes of `batch`, made over these.
    pub fn absorb(&mut self, batch: Pending) {
        for (list, chunks) in batch.chunks {
            match self.chunks.entry(list) {
                Entry::Occupied(mut held) => held.get_mut().extend(chunks),
                Entry::Vacant(vacant) => {
                    vacant.insert(chunks);
                }
            }
        }
        self.lens.extend(batch.lens);
        self.ids.extend(batch.ids);
        self.values.extend(batch.values);
        self.sorted.extend(batch.sorted);
        self.bytes += batch.bytes;
        for (list, (first, items)) in batch.deferred {
            for (position, item) in (first..).zip(items.chunks_exact(INDEX_ITEM_BYTES)) {
                self.append_at(&list, position, item);
            }
        }
    }

    /// Appends `row` to `list` as its item `position` (its length): to the
    /// chunk this holds ending there if that takes it, else to a new chunk
    /// (a list's chunks need not be full: a new chunk is always right).
    fn append_at(&mut self, list: &[u8], position: u64, row: &[u8]) {
        let tail = match position.checked_sub(1) {
            Some(last) => self.chunk_mut(list, last),
            None => None,
        };
        if let Some(fresh) = push_or_start(tail, position, row) {
            self.insert_chunk(list, fresh);
        }
    }

    /// The chunk of `list` holding item `seq`, if this holds it.
    fn chunk(&self, list: &[u8], seq: u64) -> Option<&Chunk> {
        let (_, chunk) = self.chunks.get(list)?.range(..=seq).next_back()?;
        chunk.contains(seq).then_some(chunk)
    }

    /// [`Self::chunk`], to be changed.
    fn chunk_mut(&mut self, list: &[u8], seq: u64) -> Option<&mut Chunk> {
        let (_, chunk) = self.chunks.get_mut(list)?.range_mut(..=seq).next_back()?;
        chunk.contains(seq).then_some(chunk)
    }

    /// Takes in `chunk` of `list`, in place of any chunk starting where it does.
    fn insert_chunk(&mut self, list: &[u8], chunk: Chunk) {
        // Counted as the entry it will be: the item key and the chunk.
        self.bytes += chunk.size() + list.len() + SEQ_BYTES;
        let chunks = match self.chunks.get_mut(list) {
            Some(chunks) => chunks,
            None => self.chunks.entry(RowKey::from_slice(list)).or_default(),
        };
        chunks.insert(chunk.first, chunk);
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
            && self.deferred.is_empty()
            && self.lens.is_empty()
            && self.ids.is_empty()
            && self.values.is_empty()
            && self.sorted.is_empty()
    }

    /// Writes every change into the tables of `txn`.
    pub fn write(&self, txn: &WriteTransaction, tables: &Tables) -> Result<(), ModelError> {
        debug_assert!(
            self.deferred.is_empty(),
            "only a follower's batch defers, and it is absorbed"
        );
        // Lists in key order, each list's chunks in theirs: the item keys
        // in order, for the B-tree's sake as below (keys of one variant of
        // [`Key`] have one length, so no list's key starts another's).
        let mut items = txn.open_table(Tables::bytes(&tables.items))?;
        for (list, chunks) in sorted(&self.chunks) {
            for chunk in chunks.values() {
                debug_assert!(chunk.end() > chunk.first, "a written chunk holds an item");
                items.insert(item_key(list, chunk.first).as_slice(), chunk.encode().as_slice())?;
            }
        }
        // The hash maps' entries in key order: inserting into a B-tree in
        // order touches each leaf once in a row and fills the leaves it
        // splits (new IDs mostly sort after the stored ones), where their
        // own order would jump between leaves.
        let mut lens = txn.open_table(Tables::counts(&tables.lens))?;
        for (list, len) in sorted(&self.lens) {
            lens.insert(list.as_slice(), *len)?;
        }
        let mut ids = txn.open_table(Tables::bytes(&tables.ids))?;
        let mut id_runs = txn.open_table(Tables::bytes(&tables.id_runs))?;
        let newest = newest_id(&ids, Some(&id_runs))?;
        let entries = sorted(&self.ids)
            .into_iter()
            .map(|(id, location)| (id.as_slice(), location.as_slice()));
        id_runs::group(entries, newest.as_deref(), |entry| {
            match entry {
                id_runs::Entry::Single { id, location } => ids.insert(id, location)?,
                id_runs::Entry::Run { first, value } => id_runs.insert(first, value.as_slice())?,
            };
            Ok(())
        })?;
        let mut values = txn.open_table(Tables::bytes(&tables.values))?;
        for (key, value) in sorted(&self.values) {
            values.insert(key.as_slice(), &**value)?;
        }
        for (key, value) in &self.sorted {
            match value {
                Some(value) => values.insert(key.as_slice(), &**value)?,
                None => values.remove(key.as_slice())?,
            };
        }
        Ok(())
    }
}

/// The greatest ID stored, on its own or in a run.
fn newest_id(
    ids: &impl ReadableTable<Bytes, Bytes>,
    id_runs: Option<&impl ReadableTable<Bytes, Bytes>>,
) -> Result<Option<RowKey>, ModelError> {
    let single = ids.last()?.map(|(id, _)| RowKey::from_slice(id.value()));
    let in_runs = match id_runs.map(|id_runs| id_runs.last()).transpose()?.flatten() {
        Some((first, run)) => Some(id_runs::last(first.value(), run.value())?),
        None => None,
    };
    Ok(single.into_iter().chain(in_runs).max())
}

/// Pushes `row`, a list's item `position`, onto the list's last chunk
/// `tail` if that takes it; otherwise answers a new chunk starting with it.
fn push_or_start(tail: Option<&mut Chunk>, position: u64, row: &[u8]) -> Option<Chunk> {
    debug_assert!(
        tail.as_ref().is_none_or(|tail| tail.end() == position),
        "an item is appended after the list's last"
    );
    match tail {
        Some(tail) if tail.takes(row) => {
            tail.push(row);
            None
        }
        _ => {
            let mut fresh = Chunk::new(position);
            fresh.push(row);
            Some(fresh)
        }
    }
}

/// The entries of `map` in key order.
fn sorted<V>(map: &HashMap<RowKey, V, Hasher>) -> Vec<(&RowKey, &V)> {
    // Compared by their first bytes as one number, and whole only when
    // those are equal: comparing whole keys (a `memcmp` call each) was
    // most of a write's sorting.
    let mut entries: Vec<_> = map
        .iter()
        .map(|(key, value)| (leading(key), key, value))
        .collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    entries.into_iter().map(|(_, key, value)| (key, value)).collect()
}

/// The first 16 bytes of `key` (zeros past its end) as a big-endian
/// number: keys whose numbers differ are in the same order as those.
fn leading(key: &[u8]) -> u128 {
    let mut bytes = [0; 16];
    let len = key.len().min(bytes.len());
    bytes[..len].copy_from_slice(&key[..len]);
    u128::from_be_bytes(bytes)
}

/// A projection's tables as the model store holds them (in a read or a
/// write transaction).
pub(crate) struct Stored<I, L> {
    items: I,
    ids: I,
    /// `None` in a read of models written before runs existed, which have
    /// no such table until a server opens them.
    id_runs: Option<I>,
    lens: L,
    values: I,
}

pub(crate) type StoredRead = Stored<ReadOnlyTable<Bytes, Bytes>, ReadOnlyTable<Bytes, u64>>;

impl StoredRead {
    pub fn open(txn: &ReadTransaction, tables: &Tables) -> Result<Self, ModelError> {
        let id_runs = match txn.open_table(Tables::bytes(&tables.id_runs)) {
            Ok(table) => Some(table),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(error) => return Err(error.into()),
        };
        Ok(Self {
            items: txn.open_table(Tables::bytes(&tables.items))?,
            ids: txn.open_table(Tables::bytes(&tables.ids))?,
            id_runs,
            lens: txn.open_table(Tables::counts(&tables.lens))?,
            values: txn.open_table(Tables::bytes(&tables.values))?,
        })
    }
}

impl<'t> Stored<Table<'t, Bytes, Bytes>, Table<'t, Bytes, u64>> {
    /// The tables as `txn` sees them, for reading only: close (drop) them
    /// before writing [`Pending`] into `txn`.
    pub fn open_in(txn: &'t WriteTransaction, tables: &Tables) -> Result<Self, ModelError> {
        Ok(Self {
            items: txn.open_table(Tables::bytes(&tables.items))?,
            ids: txn.open_table(Tables::bytes(&tables.ids))?,
            id_runs: Some(txn.open_table(Tables::bytes(&tables.id_runs))?),
            lens: txn.open_table(Tables::counts(&tables.lens))?,
            values: txn.open_table(Tables::bytes(&tables.values))?,
        })
    }
}

/// A projection's tables in a read transaction, opened on first use: most
/// batches concern a few projections only, and opening four tables costs
/// four lookups.
pub(crate) struct LazyStored<'t> {
    txn: &'t ReadTransaction,
    namespace: Namespace,
    projection: &'static str,
    opened: std::cell::OnceCell<StoredRead>,
}

impl<'t> LazyStored<'t> {
    /// The tables of `projection` in `namespace`; not even their names are
    /// made before they are read.
    pub fn new(txn: &'t ReadTransaction, namespace: Namespace, projection: &'static str) -> Self {
        Self {
            txn,
            namespace,
            projection,
            opened: std::cell::OnceCell::new(),
        }
    }

    fn get(&self) -> Result<&StoredRead, ModelError> {
        if let Some(opened) = self.opened.get() {
            return Ok(opened);
        }
        let opened = StoredRead::open(self.txn, &Tables::of(self.namespace, self.projection))?;
        Ok(self.opened.get_or_init(|| opened))
    }
}

impl StoredRows for LazyStored<'_> {
    fn chunk(&self, list: &[u8], seq: u64) -> Result<Option<Chunk>, ModelError> {
        self.get()?.chunk(list, seq)
    }

    fn location(&self, id: &[u8]) -> Result<Option<RowKey>, ModelError> {
        self.get()?.location(id)
    }

    fn last_id(&self) -> Result<Option<RowKey>, ModelError> {
        self.get()?.last_id()
    }

    fn len(&self, list: &[u8]) -> Result<Option<u64>, ModelError> {
        self.get()?.len(list)
    }

    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ModelError> {
        self.get()?.value(key)
    }

    fn sorted(&self, range: KeyRange<'_>, descending: bool, each: SortedVisit<'_>) -> Result<(), ModelError> {
        self.get()?.sorted(range, descending, each)
    }
}

/// A sorted row changed and not yet written: its key, and its value
/// (`None`: removed).
type Change<'a> = (&'a [u8], Option<&'a [u8]>);

/// A range of full row keys, for [`StoredRows::sorted`].
pub(crate) type KeyRange<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

/// Called with each stored sorted row (key, value) in order; answers
/// whether to go on.
pub(crate) type SortedVisit<'v> = &'v mut dyn FnMut(&[u8], &[u8]) -> Result<bool, ModelError>;

/// What the folds and the queries read of the stored rows.
pub(crate) trait StoredRows {
    /// The chunk of `list` holding item `seq`.
    fn chunk(&self, list: &[u8], seq: u64) -> Result<Option<Chunk>, ModelError>;
    /// Where resource `id`'s row lives (an item key).
    fn location(&self, id: &[u8]) -> Result<Option<RowKey>, ModelError>;
    /// The greatest resource ID stored.
    fn last_id(&self) -> Result<Option<RowKey>, ModelError>;
    fn len(&self, list: &[u8]) -> Result<Option<u64>, ModelError>;
    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ModelError>;
    /// The stored rows of `range`, in key order or its reverse.
    fn sorted(&self, range: KeyRange<'_>, descending: bool, each: SortedVisit<'_>) -> Result<(), ModelError>;
}

impl<I: ReadableTable<Bytes, Bytes>, L: ReadableTable<Bytes, u64>> StoredRows for Stored<I, L> {
    fn chunk(&self, list: &[u8], seq: u64) -> Result<Option<Chunk>, ModelError> {
        let (from, to) = (item_key(list, 0), item_key(list, seq));
        let Some(entry) = self.items.range(from.as_slice()..=to.as_slice())?.next_back() else {
            return Ok(None);
        };
        let (key, value) = entry?;
        let (_, first) = split_item_key(key.value())?;
        let chunk = Chunk::decode(first, value.value()).map_err(|_| malformed(list, first))?;
        Ok(chunk.contains(seq).then_some(chunk))
    }

    fn location(&self, id: &[u8]) -> Result<Option<RowKey>, ModelError> {
        if let Some(id_runs) = &self.id_runs
            && let Some(entry) = id_runs.range(..=id)?.next_back()
        {
            let (first, run) = entry?;
            if let Some(found) = id_runs::find(first.value(), run.value(), id)? {
                return Ok(Some(found));
            }
        }
        Ok(self.ids.get(id)?.map(|found| RowKey::from_slice(found.value())))
    }

    fn last_id(&self) -> Result<Option<RowKey>, ModelError> {
        newest_id(&self.ids, self.id_runs.as_ref())
    }

    fn len(&self, list: &[u8]) -> Result<Option<u64>, ModelError> {
        Ok(self.lens.get(list)?.map(|len| len.value()))
    }

    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ModelError> {
        Ok(self.values.get(key)?.map(|row| row.value().to_vec()))
    }

    fn sorted(&self, range: KeyRange<'_>, descending: bool, each: SortedVisit<'_>) -> Result<(), ModelError> {
        let rows = self.values.range(range)?;
        let mut visit = |entry: Result<
            (redb::AccessGuard<'_, Bytes>, redb::AccessGuard<'_, Bytes>),
            redb::StorageError,
        >| {
            let (key, value) = entry?;
            each(key.value(), value.value())
        };
        if descending {
            for entry in rows.rev() {
                if !visit(entry)? {
                    break;
                }
            }
        } else {
            for entry in rows {
                if !visit(entry)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The rows as changes not yet written (newest first) over the store
/// show them: the first layer holding a chunk, length, location or value
/// answers.
struct Layers<'a> {
    pending: [Option<&'a Pending>; 3],
    stored: &'a dyn StoredRows,
}

impl<'a> Layers<'a> {
    fn pending(&self) -> impl Iterator<Item = &'a Pending> + '_ {
        self.pending.iter().flatten().copied()
    }

    fn chunk(&self, list: &[u8], seq: u64) -> Result<Option<Cow<'a, Chunk>>, ModelError> {
        if let Some(chunk) = self.pending().find_map(|layer| layer.chunk(list, seq)) {
            return Ok(Some(Cow::Borrowed(chunk)));
        }
        Ok(self.stored.chunk(list, seq)?.map(Cow::Owned))
    }

    fn len(&self, list: &[u8]) -> Result<u64, ModelError> {
        if let Some(len) = self.pending().find_map(|layer| layer.lens.get(list)) {
            return Ok(*len);
        }
        Ok(self.stored.len(list)?.unwrap_or(0))
    }

    fn location(&self, id: &[u8]) -> Result<Option<RowKey>, ModelError> {
        if let Some(location) = self.pending().find_map(|layer| layer.ids.get(id)) {
            return Ok(Some(location.clone()));
        }
        self.stored.location(id)
    }

    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ModelError> {
        if let Some(value) = self.pending().find_map(|layer| layer.values.get(key)) {
            return Ok(Some(value.to_vec()));
        }
        self.stored.value(key)
    }

    /// The sorted rows under `prefix` whose suffixes are within `bounds`, the
    /// layers' changes over the stored rows, in key order (or its reverse),
    /// each given to `each` (suffix, value) until it answers `false`.
    fn sorted(
        &self,
        prefix: &[u8],
        bounds: (Bound<&[u8]>, Bound<&[u8]>),
        descending: bool,
        each: SortedVisit<'_>,
    ) -> Result<(), ModelError> {
        let (lower, upper) = full_bounds(prefix, bounds);
        let range = (as_ref_bound(&lower), as_ref_bound(&upper));
        if is_empty(range) {
            // BTreeMap::range panics on a start past the end.
            return Ok(());
        }
        // The changes in range, older layers first so newer ones win.
        let mut changed: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
        for layer in self.pending.iter().rev().flatten() {
            for (key, value) in layer.sorted.range::<[u8], _>(range) {
                changed.insert(key.as_slice(), value.as_deref());
            }
        }
        let mut changes: Box<dyn Iterator<Item = Change<'_>>> = if descending {
            Box::new(changed.into_iter().rev())
        } else {
            Box::new(changed.into_iter())
        };
        let mut next_change = changes.next();
        let mut going = true;
        let before = |a: &[u8], b: &[u8]| if descending { a > b } else { a < b };
        let mut emit = |key: &[u8], value: Option<&[u8]>, going: &mut bool| -> Result<(), ModelError> {
            if let Some(value) = value {
                *going = each(&key[prefix.len()..], value)?;
            }
            Ok(())
        };
        self.stored.sorted(range, descending, &mut |key, value| {
            while going && let Some((changed_key, changed_value)) = next_change {
                if before(changed_key, key) {
                    emit(changed_key, changed_value, &mut going)?;
                    next_change = changes.next();
                } else {
                    break;
                }
            }
            if !going {
                return Ok(false);
            }
            match next_change {
                Some((changed_key, changed_value)) if changed_key == key => {
                    emit(changed_key, changed_value, &mut going)?;
                    next_change = changes.next();
                }
                _ => emit(key, Some(value), &mut going)?,
            }
            Ok(going)
        })?;
        while going && let Some((changed_key, changed_value)) = next_change {
            emit(changed_key, changed_value, &mut going)?;
            next_change = changes.next();
        }
        Ok(())
    }

    /// The row of resource `id`.
    fn get<V: DeserializeOwned>(&self, id: Key) -> Result<Option<V>, ModelError> {
        let Some(location) = self.location(&id.bytes())? else {
            return Ok(None);
        };
        let (list, seq) = split_item_key(&location)?;
        match self.chunk(list, seq)?.as_deref().and_then(|chunk| chunk.get(seq)) {
            Some(row) => decode(&id, row).map(Some),
            None => Err(ModelError::corrupt(format!("{id:?}"), "its list item is missing")),
        }
    }
}

/// Where resources' rows live, kept across batches: a row never moves once
/// written (lists only grow), so a location found once holds until the
/// projection's tables are replaced (a rebuild swapped in, which clears
/// these). An account changed by every transfer is then looked up in the
/// store once, not once per batch. Bounded: forgets everything once it
/// holds [`Locations::MAX`].
///
/// They also keep a bound of the IDs in the store: no ID stored or being
/// written sorts after it. IDs are UUID v7, so a new resource's ID sorts
/// after the older ones, and a creation is told new without a B-tree
/// lookup. The bound is read once (the store's greatest ID and the changes
/// held over it), then raised by each layer of changes frozen for writing
/// ([`Locations::saw_frozen`]), the only way IDs reach the store.
#[derive(Debug, Default)]
pub(crate) struct Locations {
    by_id: HashMap<RowKey, RowKey, Hasher>,
    /// `None` until read.
    ids_bound: Option<Option<RowKey>>,
}

impl Locations {
    /// About 2 MiB of keys and locations at most.
    const MAX: usize = 16_384;

    fn get(&self, id: &[u8]) -> Option<&RowKey> {
        self.by_id.get(id)
    }

    fn remember(&mut self, id: &[u8], location: RowKey) {
        if self.by_id.len() >= Self::MAX {
            self.by_id.clear();
        }
        self.by_id.insert(RowKey::from_slice(id), location);
    }

    /// One, empty, for each of `count` projections.
    pub fn fresh(count: usize) -> Vec<Self> {
        std::iter::repeat_with(Self::default).take(count).collect()
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
        self.ids_bound = None;
    }

    /// [`Self::saw_frozen`] for each projection's changes in `frozen`
    /// (in the registry's order, as `located`).
    pub fn saw_frozen_layer(located: &mut [Self], frozen: &Layer) {
        debug_assert_eq!(located.len(), frozen.pending.len());
        for (located, pending) in located.iter_mut().zip(&frozen.pending) {
            located.saw_frozen(pending);
        }
    }

    /// Raises the bound of stored IDs with the IDs of `frozen`, changes
    /// frozen to be written to the store.
    pub fn saw_frozen(&mut self, frozen: &Pending) {
        if let (Some(bound), Some(highest)) = (&mut self.ids_bound, frozen.ids.keys().max())
            && bound.as_ref().is_none_or(|bound| highest > bound)
        {
            *bound = Some(highest.clone());
        }
    }

    /// Whether `id` may be in the store (or in the changes `under` it).
    fn may_be_stored(
        &mut self,
        id: &[u8],
        stored: &dyn StoredRows,
        under: &[Option<&Pending>],
    ) -> Result<bool, ModelError> {
        let bound = match &self.ids_bound {
            Some(bound) => bound,
            None => {
                let held = under.iter().flatten().filter_map(|layer| layer.ids.keys().max());
                let bound = held.cloned().chain(stored.last_id()?).max();
                self.ids_bound.insert(bound)
            }
        };
        Ok(bound.as_ref().is_some_and(|bound| id <= bound.as_slice()))
    }
}

/// A projection's rows as a batch of the follower (or a rebuild) changes
/// them: reads go through the changes not yet written to the store
/// (`under`, newest first), every change goes into `pending`. The
/// locations of the resources the batch touched are kept here, so
/// changing an account a hundred times in a batch looks it up once.
pub(crate) struct RowsMut<'a> {
    pending: &'a mut Pending,
    under: [Option<&'a Pending>; 2],
    stored: &'a dyn StoredRows,
    located: &'a mut Locations,
    /// Whether items of index lists are deferred to the active changes
    /// (`under[0]`) when those hold the list's last chunk.
    defers_index: bool,
}

impl<'a> RowsMut<'a> {
    /// Changes into `pending`, over `under` (the models' changes not yet
    /// written to the store, newest first) over `stored`; locations found
    /// are kept in `located`.
    pub fn new(
        pending: &'a mut Pending,
        under: [Option<&'a Pending>; 2],
        stored: &'a dyn StoredRows,
        located: &'a mut Locations,
    ) -> Self {
        Self {
            pending,
            under,
            stored,
            located,
            defers_index: false,
        }
    }

    /// For a follower's batch, whose changes are absorbed into `under[0]`
    /// (the active changes) once it applied: items of index lists whose
    /// last chunk those hold are appended there at absorption, not to a
    /// copy of that chunk taken into the batch.
    pub fn deferring_index_items(mut self) -> Self {
        self.defers_index = true;
        self
    }

    fn layers(&self) -> Layers<'_> {
        Layers {
            pending: [Some(&*self.pending), self.under[0], self.under[1]],
            stored: self.stored,
        }
    }

    /// The chunk of `list` holding `seq`, copied into `pending` to be changed.
    fn chunk_mut(&mut self, list: &[u8], seq: u64) -> Result<Option<&mut Chunk>, ModelError> {
        if self.pending.chunk(list, seq).is_none() {
            let chunk = match self.layers().chunk(list, seq)? {
                Some(Cow::Borrowed(chunk)) => chunk.copy_to_change(),
                Some(Cow::Owned(mut chunk)) => {
                    chunk.make_room();
                    chunk
                }
                None => return Ok(None),
            };
            self.pending.insert_chunk(list, chunk);
        }
        Ok(self.pending.chunk_mut(list, seq))
    }

    /// Appends `row` to `list`, in its last chunk if that takes it;
    /// answers its sequence number.
    fn append(&mut self, list: &[u8], row: &[u8]) -> Result<u64, ModelError> {
        let seq = self.layers().len(list)?;
        // The tail is taken into `pending` even when it is full (once per
        // chunk): looking it up once costs less than looking twice.
        let tail = match seq.checked_sub(1) {
            Some(last) => match self.chunk_mut(list, last)? {
                Some(tail) => Some(tail),
                None => return Err(ModelError::corrupt(hex::encode(list), "its last item is missing")),
            },
            None => None,
        };
        if let Some(fresh) = push_or_start(tail, seq, row) {
            self.pending.insert_chunk(list, fresh);
        }
        self.pending.bytes += row.len() + 2 * list.len();
        self.pending.lens.insert(RowKey::from_slice(list), seq + 1);
        Ok(seq)
    }

    /// Appends `value` to `list` as resource `id`; an ID seen before is
    /// ignored (events are applied once: this only guards against a log
    /// that repeats a creation). Answers the item's sequence number.
    pub fn insert<V: Serialize>(&mut self, list: Key, id: Key, value: &V) -> Result<Option<u64>, ModelError> {
        let id = id.bytes();
        if self.exists(&id)? {
            return Ok(None);
        }
        let list = list.bytes();
        let seq = self.append(&list, &encode(value)?)?;
        let location = item_key(&list, seq);
        self.pending.bytes += id.len() + location.len();
        self.pending.ids.insert(id, location);
        Ok(Some(seq))
    }

    /// Appends the sequence number of an item of another list (an index
    /// such as an account's transactions).
    pub fn push_index(&mut self, list: Key, seq: u64) -> Result<(), ModelError> {
        let list = list.bytes();
        let item = seq.to_be_bytes();
        if self.defers_index
            && let Some(position) = self.deferrable(&list)?
        {
            self.pending.bytes += item.len() + 2 * list.len();
            self.pending.lens.insert(list.clone(), position + 1);
            let (_, items) = self
                .pending
                .deferred
                .entry(list)
                .or_insert_with(|| (position, Vec::new()));
            items.extend_from_slice(&item);
            return Ok(());
        }
        self.append(&list, &item)?;
        Ok(())
    }

    /// Where the next item of index list `list` goes, if it is to be
    /// deferred: the list has items deferred in this batch already, or the
    /// active changes under the batch hold its last chunk (and the batch
    /// does not).
    fn deferrable(&self, list: &[u8]) -> Result<Option<u64>, ModelError> {
        let position = self.layers().len(list)?;
        if self.pending.deferred.contains_key(list) {
            return Ok(Some(position));
        }
        let Some(last) = position.checked_sub(1) else {
            return Ok(None);
        };
        let in_active = self.under[0].is_some_and(|active| active.chunk(list, last).is_some());
        Ok((in_active && self.pending.chunk(list, last).is_none()).then_some(position))
    }

    /// Whether resource `id` has a row.
    fn exists(&mut self, id: &[u8]) -> Result<bool, ModelError> {
        if self.located.get(id).is_some() || self.layers().pending().any(|layer| layer.ids.contains_key(id)) {
            return Ok(true);
        }
        let under = self.under;
        Ok(self.located.may_be_stored(id, self.stored, &under)? && self.stored.location(id)?.is_some())
    }

    /// Where resource `id`'s row lives, if it exists.
    fn location(&mut self, id: &[u8]) -> Result<Option<RowKey>, ModelError> {
        if let Some(location) = self.located.get(id) {
            return Ok(Some(location.clone()));
        }
        // A row of this batch's own is not remembered: the batch may yet
        // fail, and its rows with it.
        if let Some(location) = self.pending.ids.get(id) {
            return Ok(Some(location.clone()));
        }
        let found = self.layers().location(id)?;
        if let Some(found) = &found {
            self.located.remember(id, found.clone());
        }
        Ok(found)
    }

    /// The row of resource `id`.
    pub fn get<V: DeserializeOwned>(&mut self, id: Key) -> Result<Option<V>, ModelError> {
        let Some(location) = self.location(&id.bytes())? else {
            return Ok(None);
        };
        let (list, seq) = split_item_key(&location)?;
        match self
            .layers()
            .chunk(list, seq)?
            .as_deref()
            .and_then(|chunk| chunk.get(seq))
        {
            Some(row) => decode(&id, row).map(Some),
            None => Err(ModelError::corrupt(format!("{id:?}"), "its list item is missing")),
        }
    }

    /// Replaces the row of resource `id` by a function of it, in place.
    pub fn update<V: Serialize + DeserializeOwned>(
        &mut self,
        id: Key,
        change: impl FnOnce(V) -> V,
    ) -> Result<(), ModelError> {
        let Some(location) = self.location(&id.bytes())? else {
            return Ok(());
        };
        let (list, seq) = split_item_key(&location)?;
        let missing = || ModelError::corrupt(format!("{id:?}"), "its list item is missing");
        let chunk = self.chunk_mut(list, seq)?.ok_or_else(missing)?;
        let stored = chunk.get(seq).ok_or_else(missing)?;
        let old_len = stored.len();
        let old = decode::<V>(&id, stored)?;
        let new = encode(&change(old))?;
        let replaced = chunk.replace(seq, &new);
        debug_assert!(replaced, "the chunk holds the item it was found by");
        // The whole chunk was counted when it was taken in (`chunk_mut`);
        // replacing a row in place grows it by the difference only.
        // Counting the whole row again made a rebuild, which keeps chunks
        // over many batches, write far sooner than its budget (an account
        // changed by every transfer counted once per event).
        self.pending.bytes += new.len().saturating_sub(old_len);
        Ok(())
    }

    pub fn value<V: DeserializeOwned>(&self, key: Key) -> Result<Option<V>, ModelError> {
        self.layers()
            .value(&key.bytes())?
            .map(|row| decode(&key, &row))
            .transpose()
    }

    /// Writes the sorted row `prefix ++ suffix` (read back in key order by
    /// [`RowsRead::sorted`]).
    pub fn put_sorted<V: Serialize>(
        &mut self,
        prefix: Key,
        suffix: &[u8],
        value: &V,
    ) -> Result<(), ModelError> {
        let key = sorted_key(prefix, suffix);
        let value = encode(value)?;
        self.pending.bytes += key.len() + value.len();
        self.pending.sorted.insert(key, Some(value.into()));
        Ok(())
    }

    /// Removes the sorted row `prefix ++ suffix`, if there is one.
    pub fn remove_sorted(&mut self, prefix: Key, suffix: &[u8]) {
        let key = sorted_key(prefix, suffix);
        self.pending.bytes += key.len();
        self.pending.sorted.insert(key, None);
    }

    pub fn set_value<V: Serialize>(&mut self, key: Key, value: &V) -> Result<(), ModelError> {
        let key = key.bytes();
        let value = encode(value)?;
        self.pending.bytes += key.len() + value.len();
        self.pending.values.insert(key, value.into());
        Ok(())
    }
}

/// A projection's rows as one query sees them: the changes not yet
/// written (as they were when the query began) over one read transaction,
/// so every query sees one position of the log.
pub(crate) struct RowsRead<'a> {
    pending: [Option<&'a Pending>; 2],
    stored: StoredRead,
}

impl<'a> RowsRead<'a> {
    /// The rows of `tables` in `txn`, under `pending` (newest first).
    pub fn open(
        txn: &ReadTransaction,
        tables: &Tables,
        pending: [Option<&'a Pending>; 2],
    ) -> Result<Self, ModelError> {
        Ok(Self {
            pending,
            stored: StoredRead::open(txn, tables)?,
        })
    }

    fn layers(&self) -> Layers<'_> {
        Layers {
            pending: [self.pending[0], self.pending[1], None],
            stored: &self.stored,
        }
    }

    pub fn get<V: DeserializeOwned>(&self, id: Key) -> Result<Option<V>, ModelError> {
        self.layers().get(id)
    }

    /// Number of items in `list` (0 for a list never written).
    pub fn len(&self, list: Key) -> Result<u64, ModelError> {
        self.layers().len(&list.bytes())
    }

    /// Calls `each` with the items `range` of `list` (oldest = 0), newest
    /// first, reading each chunk once.
    fn each_newest_first(
        &self,
        list: &[u8],
        range: std::ops::Range<u64>,
        mut each: impl FnMut(&[u8]) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let layers = self.layers();
        let mut next = range.end;
        while next > range.start {
            let Some(chunk) = layers.chunk(list, next - 1)? else {
                return Err(ModelError::corrupt(
                    hex::encode(list),
                    format!("item {} is missing", next - 1),
                ));
            };
            let from = chunk.first.max(range.start);
            for seq in (from..next).rev() {
                if let Some(row) = chunk.get(seq) {
                    each(row)?;
                }
            }
            next = from;
        }
        Ok(())
    }

    /// Items `range` of `list` (oldest = 0), newest first.
    pub fn newest_first<V: DeserializeOwned>(
        &self,
        list: Key,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<V>, ModelError> {
        let mut items = Vec::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
        self.each_newest_first(&list.bytes(), range, |row| {
            items.push(decode(&list, row)?);
            Ok(())
        })?;
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
        let mut seqs = Vec::new();
        self.each_newest_first(&index.bytes(), range, |row| {
            seqs.push(decode_seq(row)?);
            Ok(())
        })?;
        let layers = self.layers();
        let target_bytes = target.bytes();
        seqs.into_iter()
            .map(|seq| {
                let chunk = layers.chunk(&target_bytes, seq)?;
                let row = chunk
                    .as_deref()
                    .and_then(|chunk| chunk.get(seq))
                    .ok_or_else(|| ModelError::corrupt(format!("{index:?}"), "points at no item"))?;
                decode(&target, row)
            })
            .collect()
    }

    pub fn value<V: DeserializeOwned>(&self, key: Key) -> Result<Option<V>, ModelError> {
        self.layers()
            .value(&key.bytes())?
            .map(|row| decode(&key, &row))
            .transpose()
    }

    /// The sorted rows under `prefix` with suffixes within `bounds`, in
    /// key order or its reverse, decoded, for as long as `each` answers
    /// `true`.
    pub fn sorted<V: DeserializeOwned>(
        &self,
        prefix: Key,
        bounds: (Bound<&[u8]>, Bound<&[u8]>),
        descending: bool,
        mut each: impl FnMut(&[u8], V) -> Result<bool, ModelError>,
    ) -> Result<(), ModelError> {
        let prefix_bytes = prefix.bytes();
        self.layers()
            .sorted(&prefix_bytes, bounds, descending, &mut |suffix, row| {
                each(suffix, decode(&prefix, row)?)
            })
    }

    /// Every single row (small tables only, such as exchange rates).
    pub fn all_values<V: DeserializeOwned>(&self) -> Result<Vec<V>, ModelError> {
        let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for entry in self.stored.values.iter()? {
            let (key, value) = entry?;
            rows.insert(key.value().to_vec(), value.value().to_vec());
        }
        // Older layers first, so newer ones replace their rows.
        for layer in self.pending.iter().rev().flatten() {
            for (key, value) in &layer.values {
                rows.insert(key.to_vec(), value.to_vec());
            }
        }
        rows.values().map(|row| decode(&"a value row", row)).collect()
    }
}

pub(crate) mod fuzzing {
    use paycore_domain::Aggregate;
    use paycore_domain::aggregate::{Account, Customer, Project, Transfer};
    use paycore_domain::fx_rate::FxRateEntry;
    use paycore_domain::{Timestamp, Transaction};

    use super::{decode, decode_seq};
    use crate::chunk::Chunk;
    use crate::db::Checkpoint;

    /// Kinds of rows: checkpoint, project, customer, account, transfer,
    /// transaction, resource (aggregate state), exchange rate, timestamp,
    /// list index entry, list chunk.
    pub const ROW_KINDS: u8 = 11;

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
            9 => decode_seq(bytes).is_ok(),
            _ => Chunk::decode(0, bytes).is_ok(),
        }
    }

    /// The rows a state is kept as: as a resource, and as its own row kind.
    pub fn encode_row(state: &Aggregate) -> Vec<(u8, Vec<u8>)> {
        let resource = postcard::to_stdvec(state).unwrap_or_default();
        let mut chunk = Chunk::new(0);
        chunk.push(&resource);
        chunk.push(&7u64.to_be_bytes());
        let mut rows = vec![(10, chunk.encode()), (6, resource)];
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failure is the test failing

    use paycore_domain::{AccountId, ProjectId, TransactionId};
    use proptest::prelude::*;
    use uuid::Uuid;

    use std::collections::HashMap;

    use super::{Hasher, Key, Locations, Pending, RowKey, RowsMut, RowsRead, StoredRead, sorted};
    use crate::db::{ModelDb, ModelStorage, Namespace, Tables, create_tables};

    fn project() -> ProjectId {
        ProjectId::from_uuid(Uuid::from_u128(1))
    }

    fn transaction(n: u64) -> Key {
        Key::Transaction(TransactionId::from_uuid(Uuid::from_u128(u128::from(n) + 100)))
    }

    fn account(n: u8) -> Key {
        Key::AccountTransactions(AccountId::from_uuid(Uuid::from_u128(u128::from(n) + 7)))
    }

    /// What the rows layer is asked to do; `Insert` carries the row's size.
    #[derive(Clone, Debug)]
    enum Op {
        Insert { size: usize, account: u8 },
        Update { which: usize, size: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (prop_oneof![1usize..40, 100usize..700, Just(5_000)], 0u8..3)
                .prop_map(|(size, account)| Op::Insert { size, account }),
            1 => (any::<usize>(), 1usize..900).prop_map(|(which, size)| Op::Update { which, size }),
        ]
    }

    /// A row that says which item and version it is, padded to `size`.
    fn row(item: u64, version: u32, size: usize) -> Vec<u8> {
        let mut row = format!("{item}.{version}.").into_bytes();
        row.resize(size.max(row.len()), b'x');
        row
    }

    /// A creation repeated after the first one's changes were frozen and
    /// written is still told apart, though the bound of stored IDs was read
    /// before that write: freezing raised it.
    #[test]
    fn a_repeated_creation_is_ignored_across_writes() {
        let db = ModelDb::open(&ModelStorage::in_memory()).unwrap();
        let tables = Tables::of(Namespace::Served, "test");
        db.write(true, |txn| create_tables(txn, &tables)).unwrap();
        let mut located = Locations::default();
        let list = Key::Transactions(project());
        let insert = |located: &mut Locations, n: u64| {
            let txn = db.read().unwrap();
            let stored = StoredRead::open(&txn, &tables).unwrap();
            let mut pending = Pending::default();
            let seq = RowsMut::new(&mut pending, [None, None], &stored, located)
                .insert(list, transaction(n), &row(n, 0, 8))
                .unwrap();
            (seq, pending)
        };
        // The bound is read here, from an empty store.
        let (first, frozen) = insert(&mut located, 1);
        assert_eq!(first, Some(0));
        located.saw_frozen(&frozen);
        db.write(true, |txn| frozen.write(txn, &tables)).unwrap();

        let (again, changes) = insert(&mut located, 1);
        assert_eq!(
            again, None,
            "the transaction exists: its creation is not applied twice"
        );
        assert!(changes.is_empty());
        let (next, _) = insert(&mut located, 2);
        assert_eq!(next, Some(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Lists, indexes, updates and pages read back as a plain model says,
        /// whatever the batches' boundaries and the rows' sizes (rows from a
        /// few bytes to larger than a chunk; lists across many chunks).
        #[test]
        fn lists_read_back_what_batches_wrote(
            batches in proptest::collection::vec(
                (proptest::collection::vec(op(), 1..60), 0u8..3),
                1..10,
            ),
        ) {
            let db = ModelDb::open(&ModelStorage::in_memory()).unwrap();
            let tables = Tables::of(Namespace::Served, "test");
            db.write(true, |txn| create_tables(txn, &tables)).unwrap();
            let list = Key::Transactions(project());
            // The model: each item's row, and each account's item numbers.
            let mut model: Vec<Vec<u8>> = Vec::new();
            let mut versions: Vec<u32> = Vec::new();
            let mut indexes: Vec<Vec<u64>> = vec![Vec::new(); 3];
            // As the follower holds them: changes gathering, changes frozen.
            let mut active = Pending::default();
            let mut frozen: Option<Pending> = None;
            for (batch, then) in &batches {
                let txn = db.read().unwrap();
                let stored = StoredRead::open(&txn, &tables).unwrap();
                let mut batch_changes = Pending::default();
                let mut located = Locations::default();
                let rows = RowsMut::new(&mut batch_changes, [Some(&active), frozen.as_ref()], &stored, &mut located);
                // As the follower applies: index items deferred to the
                // active changes (most batches); as a rebuild: not.
                let mut rows = if *then == 1 { rows } else { rows.deferring_index_items() };
                for op in batch {
                    match *op {
                        Op::Insert { size, account: owner } => {
                            let item = model.len() as u64;
                            let value = row(item, 0, size);
                            let seq = rows.insert(list, transaction(item), &value).unwrap().unwrap();
                            prop_assert_eq!(seq, item);
                            // A repeated creation is ignored.
                            prop_assert_eq!(rows.insert(list, transaction(item), &value).unwrap(), None);
                            rows.push_index(account(owner), seq).unwrap();
                            model.push(value);
                            versions.push(0);
                            indexes[usize::from(owner)].push(seq);
                        }
                        Op::Update { which, size } if !model.is_empty() => {
                            let item = which % model.len();
                            versions[item] += 1;
                            let value = row(item as u64, versions[item], size);
                            let expected = model[item].clone();
                            let mut seen = None;
                            rows.update(transaction(item as u64), |old: Vec<u8>| {
                                seen = Some(old);
                                value.clone()
                            })
                            .unwrap();
                            prop_assert_eq!(seen, Some(expected));
                            model[item] = value;
                        }
                        Op::Update { .. } => {}
                    }
                }
                drop(stored);
                drop(txn);
                active.absorb(batch_changes);
                // Then, as the follower may: nothing, freeze, or write the
                // frozen changes to the store.
                match then {
                    1 if frozen.is_none() => frozen = Some(std::mem::take(&mut active)),
                    2 => {
                        if let Some(written) = frozen.take() {
                            db.write(false, |txn| written.write(txn, &tables)).unwrap();
                        }
                    }
                    _ => {}
                }
            }
            check(&db, &tables, [Some(&active), frozen.as_ref()], &model, &indexes)?;
            // Everything written: the store alone answers the same.
            for written in [frozen, Some(active)].into_iter().flatten() {
                db.write(false, |txn| written.write(txn, &tables)).unwrap();
            }
            check(&db, &tables, [None, None], &model, &indexes)?;
        }
    }

    /// What a batch does to sorted rows: put (key, value size) or remove.
    #[derive(Clone, Debug)]
    enum SortedOp {
        Put(u8, usize),
        Remove(u8),
    }

    fn sorted_op() -> impl Strategy<Value = SortedOp> {
        prop_oneof![
            3 => (any::<u8>(), 0usize..20).prop_map(|(key, size)| SortedOp::Put(key, size)),
            1 => any::<u8>().prop_map(SortedOp::Remove),
        ]
    }

    proptest! {
        /// A write's entries come in key order, keys of any length (zero
        /// bytes, common prefixes longer than the leading number) included.
        #[test]
        fn entries_are_written_in_key_order(
            keys in proptest::collection::hash_set(
                proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8), any::<u8>()], 0..40),
                0..200,
            ),
        ) {
            let map: HashMap<RowKey, usize, Hasher> = keys
                .iter()
                .enumerate()
                .map(|(index, key)| (RowKey::from_slice(key), index))
                .collect();
            let mut expected: Vec<&Vec<u8>> = keys.iter().collect();
            expected.sort();
            let written: Vec<&[u8]> = sorted(&map).into_iter().map(|(key, _)| key.as_slice()).collect();
            let expected: Vec<&[u8]> = expected.into_iter().map(Vec::as_slice).collect();
            prop_assert_eq!(written, expected);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Sorted rows read back in key order and its reverse, within
        /// bounds and stopped early, exactly as a map says, whichever layer
        /// (active changes, frozen ones, the store) holds each put or
        /// removal.
        #[test]
        fn sorted_rows_read_back_in_order_through_every_layer(
            batches in proptest::collection::vec(
                (proptest::collection::vec(sorted_op(), 1..30), 0u8..3),
                1..10,
            ),
            lower in proptest::option::of(any::<u8>()),
            upper in proptest::option::of(any::<u8>()),
            limit in 1usize..300,
        ) {
            let db = ModelDb::open(&ModelStorage::in_memory()).unwrap();
            let tables = Tables::of(Namespace::Served, "test");
            db.write(true, |txn| create_tables(txn, &tables)).unwrap();
            let prefix = Key::AggregatedTransactions(paycore_domain::AggregatedAccountId::from_uuid(Uuid::from_u128(3)));
            // Another prefix's rows, which no read may return.
            let other = Key::AggregatedTransactions(paycore_domain::AggregatedAccountId::from_uuid(Uuid::from_u128(4)));
            let mut model: std::collections::BTreeMap<u8, Vec<u8>> = Default::default();
            let mut active = Pending::default();
            let mut frozen: Option<Pending> = None;
            for (n, (batch, then)) in batches.iter().enumerate() {
                let txn = db.read().unwrap();
                let stored = StoredRead::open(&txn, &tables).unwrap();
                let mut changes = Pending::default();
                let mut located = Locations::default();
                let mut rows = RowsMut::new(&mut changes, [Some(&active), frozen.as_ref()], &stored, &mut located);
                for op in batch {
                    match *op {
                        SortedOp::Put(key, size) => {
                            let value = vec![n as u8; size];
                            rows.put_sorted(prefix, &[key], &value).unwrap();
                            rows.put_sorted(other, &[key], &value).unwrap();
                            model.insert(key, value);
                        }
                        SortedOp::Remove(key) => {
                            rows.remove_sorted(prefix, &[key]);
                            model.remove(&key);
                        }
                    }
                }
                drop(stored);
                drop(txn);
                active.absorb(changes);
                match then {
                    1 if frozen.is_none() => frozen = Some(std::mem::take(&mut active)),
                    2 => {
                        if let Some(written) = frozen.take() {
                            db.write(false, |txn| written.write(txn, &tables)).unwrap();
                        }
                    }
                    _ => {}
                }
            }
            let (lo, hi) = ([lower.unwrap_or(0)], [upper.unwrap_or(0)]);
            let bounds = (
                lower.map_or(std::ops::Bound::Unbounded, |_| std::ops::Bound::Included(&lo[..])),
                upper.map_or(std::ops::Bound::Unbounded, |_| std::ops::Bound::Excluded(&hi[..])),
            );
            let in_range = |key: &u8| lower.is_none_or(|l| *key >= l) && upper.is_none_or(|u| *key < u);
            let expected: Vec<(u8, Vec<u8>)> = model
                .iter()
                .filter(|(key, _)| in_range(key))
                .map(|(key, value)| (*key, value.clone()))
                .collect();
            for descending in [false, true] {
                let txn = db.read().unwrap();
                let read = RowsRead::open(&txn, &tables, [Some(&active), frozen.as_ref()]).unwrap();
                let mut got = Vec::new();
                read.sorted(prefix, bounds, descending, |suffix, value: Vec<u8>| {
                    got.push((suffix[0], value));
                    Ok(got.len() < limit)
                })
                .unwrap();
                let mut want = expected.clone();
                if descending {
                    want.reverse();
                }
                want.truncate(limit);
                prop_assert_eq!(got, want);
            }
        }
    }

    fn check(
        db: &ModelDb,
        tables: &Tables,
        pending: [Option<&Pending>; 2],
        model: &[Vec<u8>],
        indexes: &[Vec<u64>],
    ) -> Result<(), TestCaseError> {
        let list = Key::Transactions(project());
        let txn = db.read().unwrap();
        let read = RowsRead::open(&txn, tables, pending).unwrap();
        let len = model.len() as u64;
        prop_assert_eq!(read.len(list).unwrap(), len);
        for (item, value) in model.iter().enumerate() {
            prop_assert_eq!(
                &read.get::<Vec<u8>>(transaction(item as u64)).unwrap().unwrap(),
                value
            );
        }
        prop_assert_eq!(read.get::<Vec<u8>>(transaction(len)).unwrap(), None);
        // Pages of 7, newest first, down to the first item.
        let mut end = len;
        while end > 0 {
            let start = end.saturating_sub(7);
            let page: Vec<Vec<u8>> = read.newest_first(list, start..end).unwrap();
            let expected: Vec<Vec<u8>> = model[start as usize..end as usize]
                .iter()
                .rev()
                .cloned()
                .collect();
            prop_assert_eq!(page, expected);
            end = start;
        }
        for (owner, index) in indexes.iter().enumerate() {
            let key = account(owner as u8);
            prop_assert_eq!(read.len(key).unwrap(), index.len() as u64);
            let all: Vec<Vec<u8>> = read
                .newest_first_through(key, list, 0..index.len() as u64)
                .unwrap();
            let expected: Vec<Vec<u8>> = index
                .iter()
                .rev()
                .map(|&seq| model[seq as usize].clone())
                .collect();
            prop_assert_eq!(all, expected);
        }
        Ok(())
    }
}
