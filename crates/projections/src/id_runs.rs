//! Resources' locations stored as runs.
//!
//! Rows never move and IDs are UUID v7, so the IDs a write takes in that
//! are newer than every stored one mostly come in the order of their rows:
//! consecutive items of one list (a batch of transfers puts their
//! transactions one after the other in the project's list). Such a run is
//! one entry of a projection's `id_runs` table, keyed by its first ID and
//! holding that ID's location and the run's other IDs, where `ids` holds an
//! entry per ID. A B-tree insert costs about 5,300 instructions, and one per
//! ID was a quarter of rebuilding the models.
//!
//! Runs never overlap, which is what lets a lookup read one run: a run is
//! made only of IDs newer than everything stored when it is written, and of
//! IDs consecutive in that write's key order, so no ID stored before it or
//! written with it sorts inside its range. An ID written later that sorts
//! inside a run's range (chosen by a client, or arriving late) goes to
//! `ids` on its own. A lookup tries the one run whose first ID is the
//! greatest at or before the ID, then `ids`.
//!
//! An entry's value: the length of the first ID's location (one byte), that
//! location (an item key: list key and sequence number), then the run's
//! other IDs in key order, each as long as the first.

use crate::db::ModelError;
use crate::rows::{RowKey, item_key, split_item_key};

/// IDs of one run besides its first, at most: a run's entry stays a few
/// KiB (a lookup reads all of it).
const MAX_MEMBERS: usize = 255;

/// How one written ID, or run of IDs, is stored.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    /// In `ids`: the ID and its location.
    Single { id: &'a [u8], location: &'a [u8] },
    /// In `id_runs`: the run's first ID and the entry's value.
    Run { first: &'a [u8], value: Vec<u8> },
}

/// Groups a write's IDs and locations, in key order, into entries: runs of
/// IDs newer than `newest_stored` whose rows are consecutive items of one
/// list, and single entries for the rest.
pub(crate) fn group<'a>(
    sorted: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    newest_stored: Option<&[u8]>,
    mut emit: impl FnMut(Entry<'a>) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let mut open: Option<Open<'a>> = None;
    for (id, location) in sorted {
        debug_assert!(
            open.as_ref().is_none_or(|open| open.last() < id),
            "IDs come in key order"
        );
        let newer = newest_stored.is_none_or(|newest| id > newest);
        if newer
            && let Some(run) = &mut open
            && run.takes(id, location)?
        {
            run.push(id);
            continue;
        }
        if let Some(run) = open.take() {
            emit(run.close())?;
        }
        if newer {
            open = Some(Open::start(id, location)?);
        } else {
            emit(Entry::Single { id, location })?;
        }
    }
    if let Some(run) = open {
        emit(run.close())?;
    }
    Ok(())
}

/// A run being grouped.
struct Open<'a> {
    first: &'a [u8],
    location: &'a [u8],
    list: &'a [u8],
    /// The sequence number the next ID's row must have.
    next: u64,
    members: Vec<u8>,
}

impl<'a> Open<'a> {
    fn start(first: &'a [u8], location: &'a [u8]) -> Result<Self, ModelError> {
        let (list, seq) = split_item_key(location)?;
        Ok(Self {
            first,
            location,
            list,
            next: seq.saturating_add(1),
            members: Vec::new(),
        })
    }

    fn last(&self) -> &[u8] {
        match self.members.len().checked_sub(self.first.len()) {
            Some(at) => &self.members[at..],
            None => self.first,
        }
    }

    /// Whether `id` continues the run: as long as its first, of the same
    /// kind of key, its row the next item of the same list.
    fn takes(&self, id: &[u8], location: &[u8]) -> Result<bool, ModelError> {
        if id.len() != self.first.len()
            || id.first() != self.first.first()
            || self.members.len() >= MAX_MEMBERS * id.len()
        {
            return Ok(false);
        }
        let (list, seq) = split_item_key(location)?;
        Ok(list == self.list && seq == self.next)
    }

    fn push(&mut self, id: &[u8]) {
        self.members.extend_from_slice(id);
        self.next = self.next.saturating_add(1);
    }

    fn close(self) -> Entry<'a> {
        if self.members.is_empty() {
            return Entry::Single {
                id: self.first,
                location: self.location,
            };
        }
        let mut value = Vec::with_capacity(1 + self.location.len() + self.members.len());
        // An item key is a list key (at most a variant and two IDs) and a
        // sequence number: always shorter than 256 bytes.
        value.push(self.location.len() as u8);
        value.extend_from_slice(self.location);
        value.extend_from_slice(&self.members);
        Entry::Run {
            first: self.first,
            value,
        }
    }
}

/// The first ID's location and the other IDs of the run stored under `first`.
fn split<'v>(first: &[u8], value: &'v [u8]) -> Result<(&'v [u8], &'v [u8]), ModelError> {
    let malformed = |why: &str| ModelError::corrupt(format!("ID run {}", hex::encode(first)), why.to_owned());
    let (&length, rest) = value.split_first().ok_or_else(|| malformed("empty"))?;
    if rest.len() < usize::from(length) {
        return Err(malformed("shorter than its location"));
    }
    let (location, members) = rest.split_at(usize::from(length));
    if first.is_empty() || members.is_empty() || members.len() % first.len() != 0 {
        return Err(malformed("its IDs are not whole"));
    }
    Ok((location, members))
}

/// Where `id`'s row lives if it belongs to the run stored under `first`.
pub(crate) fn find(first: &[u8], value: &[u8], id: &[u8]) -> Result<Option<RowKey>, ModelError> {
    let (location, members) = split(first, value)?;
    if id == first {
        return Ok(Some(RowKey::from_slice(location)));
    }
    if id.len() != first.len() {
        return Ok(None);
    }
    let count = members.len() / id.len();
    let member = |index: usize| &members[index * id.len()..(index + 1) * id.len()];
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = low + (high - low) / 2;
        match member(middle).cmp(id) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => {
                let (list, seq) = split_item_key(location)?;
                let seq = seq.checked_add(middle as u64 + 1).ok_or_else(|| {
                    ModelError::corrupt(format!("ID run {}", hex::encode(first)), "past the end")
                })?;
                return Ok(Some(item_key(list, seq)));
            }
        }
    }
    Ok(None)
}

/// The greatest ID of the run stored under `first`.
pub(crate) fn last(first: &[u8], value: &[u8]) -> Result<RowKey, ModelError> {
    let (_, members) = split(first, value)?;
    Ok(RowKey::from_slice(&members[members.len() - first.len()..]))
}

/// Every ID of the run stored under `first` with its location: the form
/// `ids` held them in before runs (tests of models written then).
#[cfg(test)]
pub(crate) fn entries(first: &[u8], value: &[u8]) -> Result<Vec<(RowKey, RowKey)>, ModelError> {
    let (location, members) = split(first, value)?;
    let (list, seq) = split_item_key(location)?;
    let mut entries = vec![(RowKey::from_slice(first), RowKey::from_slice(location))];
    for (offset, id) in (1..).zip(members.chunks_exact(first.len())) {
        entries.push((RowKey::from_slice(id), item_key(list, seq + offset)));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn id(n: u32) -> Vec<u8> {
        let mut key = vec![7];
        key.extend_from_slice(&n.to_be_bytes());
        key
    }

    fn at(list: u8, seq: u64) -> Vec<u8> {
        item_key(&[3, list], seq).to_vec()
    }

    /// The stored form of `writes`, each written in turn: what `ids` and
    /// `id_runs` hold afterwards.
    type Tables = (BTreeMap<Vec<u8>, Vec<u8>>, BTreeMap<Vec<u8>, Vec<u8>>);

    fn write_all(writes: &[BTreeMap<Vec<u8>, Vec<u8>>]) -> Tables {
        let (mut ids, mut runs): Tables = Default::default();
        for write in writes {
            let newest = ids
                .keys()
                .next_back()
                .cloned()
                .into_iter()
                .chain(
                    runs.iter()
                        .next_back()
                        .map(|(first, run)| last(first, run).unwrap().to_vec()),
                )
                .max();
            group(
                write
                    .iter()
                    .map(|(id, location)| (id.as_slice(), location.as_slice())),
                newest.as_deref(),
                |entry| {
                    match entry {
                        Entry::Single { id, location } => ids.insert(id.to_vec(), location.to_vec()),
                        Entry::Run { first, value } => runs.insert(first.to_vec(), value),
                    };
                    Ok(())
                },
            )
            .unwrap();
        }
        (ids, runs)
    }

    fn lookup((ids, runs): &Tables, wanted: &[u8]) -> Option<Vec<u8>> {
        if let Some((first, run)) = runs.range(..=wanted.to_vec()).next_back()
            && let Some(found) = find(first, run, wanted).unwrap()
        {
            return Some(found.to_vec());
        }
        ids.get(wanted).cloned()
    }

    #[test]
    fn a_batch_of_consecutive_rows_is_one_entry() {
        let write: BTreeMap<_, _> = (0..100).map(|n| (id(10 + n), at(1, 5 + u64::from(n)))).collect();
        let tables = write_all(&[write]);
        assert!(tables.0.is_empty());
        assert_eq!(tables.1.len(), 1);
        assert_eq!(lookup(&tables, &id(10)), Some(at(1, 5)));
        assert_eq!(lookup(&tables, &id(57)), Some(at(1, 52)));
        assert_eq!(lookup(&tables, &id(109)), Some(at(1, 104)));
        assert_eq!(lookup(&tables, &id(110)), None);
        assert_eq!(lookup(&tables, &id(9)), None);
    }

    #[test]
    fn a_run_breaks_where_the_list_or_the_sequence_does_and_at_its_longest() {
        let mut write = BTreeMap::new();
        write.insert(id(1), at(1, 0));
        write.insert(id(2), at(1, 1));
        write.insert(id(3), at(2, 2)); // another list
        write.insert(id(4), at(2, 4)); // a gap
        for n in 0..300 {
            write.insert(id(10 + n), at(3, u64::from(n)));
        }
        let tables = write_all(&[write.clone()]);
        // [1, 2], [3], [4], then 300 IDs as 256 and 44.
        assert_eq!(tables.1.len(), 3);
        assert_eq!(tables.0.len(), 2);
        for (wanted, location) in &write {
            assert_eq!(lookup(&tables, wanted).as_ref(), Some(location));
        }
    }

    proptest! {
        /// Every ID written is found where its row is, whatever order the
        /// IDs arrive in across writes (older IDs written later sort inside
        /// earlier runs), and an ID never written is not found.
        #[test]
        fn every_id_written_is_found_and_no_other(
            writes in prop::collection::vec(prop::collection::vec((0u32..2_000, any::<bool>()), 0..120), 1..6),
            probes in prop::collection::vec(0u32..2_100, 0..60),
        ) {
            // Rows appended to two lists in the order the IDs are written;
            // an ID written twice keeps its first row (rows never move).
            let mut lens = [0u64; 2];
            let mut written = BTreeMap::new();
            let mut batches = Vec::new();
            for write in writes {
                let mut batch = BTreeMap::new();
                for (n, second_list) in write {
                    if written.contains_key(&id(n)) {
                        continue;
                    }
                    let list = usize::from(second_list);
                    let location = at(list as u8, lens[list]);
                    lens[list] += 1;
                    written.insert(id(n), location.clone());
                    batch.insert(id(n), location);
                }
                batches.push(batch);
            }
            let tables = write_all(&batches);
            for (wanted, location) in &written {
                prop_assert_eq!(lookup(&tables, wanted), Some(location.clone()));
            }
            for probe in probes {
                prop_assert_eq!(lookup(&tables, &id(probe)), written.get(&id(probe)).cloned());
            }
        }
    }
}
