//! Chunks: how a list's items are laid out in the model store.
//!
//! A list's items are not one B-tree entry each but packed, in creation
//! order, into chunks of consecutive items: the entry `list key ++ first
//! sequence number` holds the items from that number on. Appending
//! thousands of transactions in a batch, or changing one account's balance
//! a hundred times in it, then rewrites a few chunks once at the end of the
//! batch instead of inserting into the B-tree per item: the B-tree work,
//! copied pages and commit size per event drop by an order of magnitude,
//! and that work sits on every command's read-your-writes path.
//!
//! A chunk is closed once it holds [`MAX_ROWS`] items or [`TARGET_BYTES`]
//! of them; a row that grows later (an update) stays in its chunk.
//!
//! Encoding: the number of items, then each item as its length and its
//! bytes; numbers are LEB128 varints (as postcard writes them).

/// Items per chunk at most: an account's list of transaction numbers (9
/// bytes each) closes here.
pub(crate) const MAX_ROWS: usize = 128;

/// A chunk takes no new item once it holds this many bytes: two chunks
/// then fit in one 4 KiB B-tree page.
pub(crate) const TARGET_BYTES: usize = 1_800;

/// Room kept past [`TARGET_BYTES`] in a chunk copied to be changed: the
/// last item may overrun the target, and an updated row may grow.
const ROOM_FOR_LAST: usize = 256;

/// Consecutive items of one list, starting at sequence number `first`:
/// their bytes one after the other, and where each ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub first: u64,
    data: Vec<u8>,
    ends: Vec<usize>,
}

/// The bytes are not a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed list chunk")]
pub(crate) struct Malformed;

impl Chunk {
    /// A new, empty chunk whose first item will be `first`.
    pub fn new(first: u64) -> Self {
        Self {
            first,
            data: Vec::new(),
            ends: Vec::new(),
        }
    }

    pub fn decode(first: u64, bytes: &[u8]) -> Result<Self, Malformed> {
        let rows = Rows::parse(bytes)?;
        let mut chunk = Self {
            first,
            data: Vec::with_capacity(bytes.len()),
            ends: Vec::with_capacity(usize::try_from(rows.left).unwrap_or(0)),
        };
        for row in rows {
            chunk.data.extend_from_slice(row);
            chunk.ends.push(chunk.data.len());
        }
        Ok(chunk)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2 * self.ends.len() + 2);
        write_varint(&mut out, self.ends.len() as u64);
        for row in self.rows() {
            write_varint(&mut out, row.len() as u64);
            out.extend_from_slice(row);
        }
        out
    }

    /// Bytes held, for the memory budget of changes not yet written.
    pub fn size(&self) -> usize {
        self.data.len() + self.ends.len() * std::mem::size_of::<usize>()
    }

    /// The sequence number after the last item.
    pub fn end(&self) -> u64 {
        self.first + self.ends.len() as u64
    }

    pub fn contains(&self, seq: u64) -> bool {
        (self.first..self.end()).contains(&seq)
    }

    /// Whether `row` still goes into this chunk (an empty chunk takes any).
    pub fn takes(&self, row: &[u8]) -> bool {
        self.ends.is_empty() || (self.ends.len() < MAX_ROWS && self.data.len() + row.len() <= TARGET_BYTES)
    }

    pub fn push(&mut self, row: &[u8]) {
        self.data.extend_from_slice(row);
        self.ends.push(self.data.len());
    }

    fn bounds(&self, index: usize) -> Option<std::ops::Range<usize>> {
        let end = *self.ends.get(index)?;
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        Some(start..end)
    }

    fn index(&self, seq: u64) -> Option<usize> {
        usize::try_from(seq.checked_sub(self.first)?).ok()
    }

    pub fn get(&self, seq: u64) -> Option<&[u8]> {
        let bounds = self.bounds(self.index(seq)?)?;
        self.data.get(bounds)
    }

    /// The items, oldest first.
    pub fn rows(&self) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        (0..self.ends.len()).filter_map(|index| self.bounds(index).and_then(|bounds| self.data.get(bounds)))
    }

    /// A copy to change: with room for the items an open chunk still
    /// takes, so appending to it does not reallocate (and copy) it again.
    pub fn copy_to_change(&self) -> Self {
        let (data, ends) = self.room();
        let mut data = Vec::with_capacity(data);
        data.extend_from_slice(&self.data);
        let mut ends = Vec::with_capacity(ends);
        ends.extend_from_slice(&self.ends);
        Self {
            first: self.first,
            data,
            ends,
        }
    }

    /// Makes the room [`Self::copy_to_change`] gives, in place.
    pub fn make_room(&mut self) {
        let (data, ends) = self.room();
        self.data.reserve(data - self.data.len());
        self.ends.reserve(ends - self.ends.len());
    }

    /// The capacities a chunk to be changed needs: its bytes and items.
    fn room(&self) -> (usize, usize) {
        let (data, ends) = if self.is_open() {
            (TARGET_BYTES + ROOM_FOR_LAST, MAX_ROWS)
        } else {
            (self.data.len() + ROOM_FOR_LAST, self.ends.len())
        };
        (data.max(self.data.len()), ends.max(self.ends.len()))
    }

    /// Whether the chunk still takes items.
    fn is_open(&self) -> bool {
        self.ends.len() < MAX_ROWS && self.data.len() < TARGET_BYTES
    }

    /// Replaces item `seq`; false if the chunk does not hold it.
    pub fn replace(&mut self, seq: u64, row: &[u8]) -> bool {
        let Some(index) = self.index(seq) else {
            return false;
        };
        let Some(bounds) = self.bounds(index) else {
            return false;
        };
        if row.len() == bounds.len() {
            // Mostly so (an account's balance changes, its row's length
            // rarely does): no bytes move and no end shifts.
            self.data[bounds].copy_from_slice(row);
            return true;
        }
        let grown = row.len() as isize - bounds.len() as isize;
        self.data.splice(bounds, row.iter().copied());
        for end in &mut self.ends[index..] {
            *end = end.saturating_add_signed(grown);
        }
        true
    }
}

/// The items of an encoded chunk, borrowed from its bytes (a read needs
/// one or a few items of it, not copies of all).
#[derive(Clone, Debug)]
pub(crate) struct Rows<'a> {
    rest: &'a [u8],
    left: u64,
}

impl<'a> Rows<'a> {
    /// Checks the whole encoding, so iterating cannot fail.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Malformed> {
        let mut rest = bytes;
        let count = read_varint(&mut rest)?;
        let items = rest;
        for _ in 0..count {
            let len = usize::try_from(read_varint(&mut rest)?).map_err(|_| Malformed)?;
            rest = rest.get(len..).ok_or(Malformed)?;
        }
        if !rest.is_empty() {
            return Err(Malformed);
        }
        Ok(Self {
            rest: items,
            left: count,
        })
    }
}

impl<'a> Iterator for Rows<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // `parse` checked every length against the bytes.
        let len = usize::try_from(read_varint(&mut self.rest).ok()?).ok()?;
        let (row, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        Some(row)
    }
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(Malformed)?;
        *bytes = rest;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(Malformed);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_chunk_closes_at_its_row_count_or_its_size() {
        let mut chunk = Chunk::new(0);
        for _ in 0..MAX_ROWS {
            assert!(chunk.takes(&[1; 8]));
            chunk.push(&[1; 8]);
        }
        assert!(!chunk.takes(&[1; 8]));

        let mut chunk = Chunk::new(10);
        chunk.push(&[0; TARGET_BYTES - 10]);
        assert!(chunk.takes(&[0; 10]));
        assert!(!chunk.takes(&[0; 11]));
        // A row larger than a chunk still gets one of its own.
        assert!(Chunk::new(11).takes(&vec![0; 3 * TARGET_BYTES]));
    }

    #[test]
    fn items_are_found_by_sequence_number_and_replaced_in_place() {
        let mut chunk = Chunk::new(100);
        chunk.push(b"a");
        chunk.push(b"bb");
        chunk.push(b"c");
        assert_eq!(chunk.end(), 103);
        assert_eq!(chunk.get(101), Some(&b"bb"[..]));
        assert_eq!(chunk.get(99), None);
        assert_eq!(chunk.get(103), None);
        assert!(chunk.replace(100, b"longer"));
        assert!(chunk.replace(101, b""));
        assert!(chunk.replace(102, b"z"));
        assert!(!chunk.replace(103, b"x"));
        let decoded = Chunk::decode(100, &chunk.encode()).unwrap();
        assert_eq!(decoded, chunk);
        let rows: Vec<&[u8]> = decoded.rows().collect();
        assert_eq!(rows, vec![&b"longer"[..], b"", b"z"]);
    }

    #[test]
    fn truncated_or_padded_bytes_are_malformed() {
        let mut chunk = Chunk::new(0);
        chunk.push(&[7; 300]);
        let bytes = chunk.encode();
        assert!(Rows::parse(&bytes[..bytes.len() - 1]).is_err());
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(Rows::parse(&padded).is_err());
        assert!(Rows::parse(&[]).is_err());
        assert!(Rows::parse(&[0xff; 11]).is_err());
        assert_eq!(Rows::parse(&bytes).unwrap().count(), 1);
    }

    proptest! {
        #[test]
        fn encoding_round_trips(rows in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40)) {
            let mut chunk = Chunk::new(7);
            for row in &rows {
                chunk.push(row);
            }
            let bytes = chunk.encode();
            let read: Vec<&[u8]> = Rows::parse(&bytes).unwrap().collect();
            prop_assert_eq!(read.len(), rows.len());
            for (read, row) in read.iter().zip(&rows) {
                prop_assert_eq!(*read, row.as_slice());
            }
        }

        #[test]
        fn any_bytes_parse_or_are_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(rows) = Rows::parse(&bytes) {
                let _ = rows.count();
            }
        }
    }
}
