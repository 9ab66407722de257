//! Index runs: the on-disk part of the log's index.
//!
//! A run is an immutable file that indexes the events of one range of
//! positions `[start, end)`: for every stream with events in the range, the
//! positions of those events (a stream's versions inside one range are
//! contiguous), sorted by stream; and the location of every frame whose first
//! position is in the range, sorted by position. Runs are written from the
//! in-memory tail of the index when it fills up (and on close), and merged
//! in the background, so that a lookup consults a handful of files. Only
//! their small parts stay in memory: a Bloom filter over the streams and
//! one directory entry per page. Format and rules in [`crate::log`]'s docs.
//!
//! Runs are a cache of the log: every part is checksummed, a run that fails a
//! check at open is dropped (its range is scanned again from the segments),
//! and a page that fails its checksum later fails the read that needs it.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::api::{ChainHash, Position, Version};

const MAGIC: &[u8; 8] = b"PCLOGRN1";
/// A page of stream records is closed once it holds at least this much.
const STREAM_PAGE_BYTES: usize = 4096;
/// Frames per frame page (32 bytes each).
const FRAMES_PER_PAGE: usize = 128;
const FRAME_RECORD_BYTES: usize = 32;
/// Bloom filter bits per stream record.
const BLOOM_BITS_PER_KEY: u64 = 10;
/// Bits set per key, all in one 512-bit block.
const BLOOM_PROBES: u32 = 6;
const FOOTER_BYTES: usize = 8 * 4 + 32 + 8 + 8 * 4 + 4 + 4 + 8;

/// The stable 64-bit hash of a stream name that orders the records of a run
/// and feeds its Bloom filter: FNV-1a, then the MurmurHash3 finalizer to
/// spread the bits. Part of the file format: never change it without
/// changing the magic.
pub(crate) fn stream_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    fmix64(h)
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// A run's file name: `<start>-<end>.run`, both zero padded to 20 digits.
pub(crate) fn file_name(start: Position, end: Position) -> String {
    format!("{start:020}-{end:020}.run")
}

pub(crate) fn parse_file_name(name: &str) -> Option<(Position, Position)> {
    let stem = name.strip_suffix(".run")?;
    let (start, end) = stem.split_once('-')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(start) || !digits(end) {
        return None;
    }
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (start < end).then_some((start, end))
}

/// Where the log stands at the end of a run: what the scan after it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunEnd {
    /// First position of the segment holding the run's last frame.
    pub segment: Position,
    /// Offset in that segment just past the run's last frame (a group
    /// boundary).
    pub offset: u64,
    pub last_hash: ChainHash,
    pub last_recorded_at: i64,
}

/// A frame as a run records it (the segment by its first position, which
/// never changes, rather than by ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunFrame {
    pub first_position: Position,
    pub segment: Position,
    pub offset: u64,
    pub body_len: u32,
}

/// A stream's events in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamRecord {
    pub hash: u64,
    pub name: String,
    pub first_version: Version,
    pub positions: Vec<Position>,
}

impl StreamRecord {
    fn key_cmp(&self, other: &Self) -> Ordering {
        (self.hash, self.name.as_str()).cmp(&(other.hash, other.name.as_str()))
    }
}

#[derive(Debug, Clone, Copy)]
struct StreamPage {
    first_hash: u64,
    offset: u64,
    len: u32,
    crc: u32,
}

#[derive(Debug, Clone, Copy)]
struct FramePage {
    first_position: Position,
    offset: u64,
    count: u32,
    crc: u32,
}

/// Why a run cannot be used: damaged, or not a run of this format.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("offset {offset}: {reason}")]
    Damaged { offset: u64, reason: String },
}

fn damaged(offset: u64, reason: impl Into<String>) -> RunError {
    RunError::Damaged {
        offset,
        reason: reason.into(),
    }
}

/// An index run, open for lookups. Only the footer, the Bloom filter and the
/// page directories are in memory.
/// Where a run's bytes come from: its file, or (for the fuzzers) memory.
#[derive(Debug)]
enum Source {
    File(File),
    Bytes(Vec<u8>),
}

impl Source {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Self::File(file) => file.read_exact_at(buf, offset),
            Self::Bytes(bytes) => {
                let from = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
                let slice = from
                    .checked_add(buf.len())
                    .and_then(|to| bytes.get(from..to))
                    .ok_or(io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(slice);
                Ok(())
            }
        }
    }

    fn len(&self) -> io::Result<u64> {
        match self {
            Self::File(file) => Ok(file.metadata()?.len()),
            Self::Bytes(bytes) => Ok(bytes.len() as u64),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Run {
    pub path: PathBuf,
    file: Source,
    pub start: Position,
    pub end: Position,
    pub run_end: RunEnd,
    pub stream_records: u64,
    pub frames: u64,
    bloom: Vec<u64>,
    stream_pages: Vec<StreamPage>,
    frame_pages: Vec<FramePage>,
}

struct Bloom;

impl Bloom {
    fn words_for(keys: u64) -> usize {
        let bits = keys.saturating_mul(BLOOM_BITS_PER_KEY).max(512);
        let blocks = bits.div_ceil(512);
        usize::try_from(blocks * 8).unwrap_or(usize::MAX)
    }

    /// The block (8 words) and the bits in it for `hash`.
    fn probes(words: usize, hash: u64) -> (usize, impl Iterator<Item = (usize, u64)>) {
        let blocks = (words / 8) as u64;
        let block = ((u128::from(hash) * u128::from(blocks)) >> 64) as usize;
        let h2 = fmix64(hash ^ 0x9e37_79b9_7f4a_7c15);
        let bits = (0..BLOOM_PROBES).map(move |i| {
            let bit = ((h2 >> (9 * i)) & 511) as usize;
            (block * 8 + bit / 64, 1u64 << (bit % 64))
        });
        (block, bits)
    }

    fn insert(words: &mut [u64], hash: u64) {
        let (_, bits) = Self::probes(words.len(), hash);
        for (word, mask) in bits {
            words[word] |= mask;
        }
    }

    fn may_contain(words: &[u64], hash: u64) -> bool {
        if words.is_empty() {
            return false;
        }
        let (_, mut bits) = Self::probes(words.len(), hash);
        bits.all(|(word, mask)| words[word] & mask != 0)
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len())?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Some(slice)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Parses the stream records of one page (checksum already verified).
fn parse_stream_page(bytes: &[u8]) -> Option<Vec<StreamRecord>> {
    let mut c = Cursor { bytes, at: 0 };
    let mut out = Vec::new();
    while !c.done() {
        let hash = c.u64()?;
        let first_version = c.u64()?;
        let count = c.u32()? as usize;
        let name_len = c.u32()? as usize;
        let name = std::str::from_utf8(c.take(name_len)?).ok()?.to_owned();
        if count == 0 || count > (bytes.len() - c.at) / 8 || stream_hash(&name) != hash {
            return None;
        }
        let mut positions = Vec::with_capacity(count);
        for _ in 0..count {
            positions.push(c.u64()?);
        }
        out.push(StreamRecord {
            hash,
            name,
            first_version,
            positions,
        });
    }
    Some(out)
}

fn put_stream_record(out: &mut Vec<u8>, record: &StreamRecord) {
    out.extend_from_slice(&record.hash.to_le_bytes());
    out.extend_from_slice(&record.first_version.to_le_bytes());
    out.extend_from_slice(&(record.positions.len() as u32).to_le_bytes());
    out.extend_from_slice(&(record.name.len() as u32).to_le_bytes());
    out.extend_from_slice(record.name.as_bytes());
    for p in &record.positions {
        out.extend_from_slice(&p.to_le_bytes());
    }
}

fn put_frame(out: &mut Vec<u8>, frame: &RunFrame) {
    out.extend_from_slice(&frame.first_position.to_le_bytes());
    out.extend_from_slice(&frame.segment.to_le_bytes());
    out.extend_from_slice(&frame.offset.to_le_bytes());
    out.extend_from_slice(&frame.body_len.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

fn parse_frame(b: &[u8]) -> RunFrame {
    let u64_at = |i: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    RunFrame {
        first_position: u64_at(0),
        segment: u64_at(8),
        offset: u64_at(16),
        body_len: u32::from_le_bytes([b[24], b[25], b[26], b[27]]),
    }
}

impl Run {
    /// Opens the run at `path` and loads its footer, Bloom filter and page
    /// directories, checking their checksums and structure.
    pub fn open(path: &Path) -> Result<Self, RunError> {
        Self::load(path, Source::File(File::open(path)?))
    }

    fn load(path: &Path, file: Source) -> Result<Self, RunError> {
        let len = file.len()?;
        if len < (MAGIC.len() + FOOTER_BYTES) as u64 {
            return Err(damaged(0, "shorter than a run"));
        }
        let mut head = [0; 8];
        file.read_exact_at(&mut head, 0)?;
        if &head != MAGIC {
            return Err(damaged(0, "not a run of this format"));
        }
        let footer_at = len - FOOTER_BYTES as u64;
        let mut footer = vec![0; FOOTER_BYTES];
        file.read_exact_at(&mut footer, footer_at)?;
        if &footer[FOOTER_BYTES - 8..] != MAGIC {
            return Err(damaged(footer_at, "no footer"));
        }
        let crc_at = FOOTER_BYTES - 12;
        let stored_crc = u32::from_le_bytes([
            footer[crc_at],
            footer[crc_at + 1],
            footer[crc_at + 2],
            footer[crc_at + 3],
        ]);
        if crc32c::crc32c(&footer[..crc_at]) != stored_crc {
            return Err(damaged(footer_at, "footer checksum mismatch"));
        }
        let bad_footer = || damaged(footer_at, "bad footer");
        let mut c = Cursor {
            bytes: &footer[..crc_at],
            at: 0,
        };
        let start = c.u64().ok_or_else(bad_footer)?;
        let end = c.u64().ok_or_else(bad_footer)?;
        let segment = c.u64().ok_or_else(bad_footer)?;
        let offset = c.u64().ok_or_else(bad_footer)?;
        let mut last_hash = [0; 32];
        last_hash.copy_from_slice(c.take(32).ok_or_else(bad_footer)?);
        let last_recorded_at = c.u64().ok_or_else(bad_footer)? as i64;
        let stream_records = c.u64().ok_or_else(bad_footer)?;
        let frames = c.u64().ok_or_else(bad_footer)?;
        let meta_offset = c.u64().ok_or_else(bad_footer)?;
        let meta_len = c.u64().ok_or_else(bad_footer)?;
        let meta_crc = c.u32().ok_or_else(bad_footer)?;
        if start >= end
            || meta_offset < MAGIC.len() as u64
            || meta_offset.checked_add(meta_len) != Some(footer_at)
        {
            return Err(bad_footer());
        }
        let mut meta = vec![0; usize::try_from(meta_len).map_err(|_| bad_footer())?];
        file.read_exact_at(&mut meta, meta_offset)?;
        if crc32c::crc32c(&meta) != meta_crc {
            return Err(damaged(meta_offset, "directory checksum mismatch"));
        }
        let bad_meta = || damaged(meta_offset, "bad directory");
        let mut c = Cursor { bytes: &meta, at: 0 };
        let words = usize::try_from(c.u64().ok_or_else(bad_meta)?).map_err(|_| bad_meta())?;
        if words % 8 != 0 || words > meta.len() / 8 {
            return Err(bad_meta());
        }
        let mut bloom = Vec::with_capacity(words);
        for _ in 0..words {
            bloom.push(c.u64().ok_or_else(bad_meta)?);
        }
        let count = usize::try_from(c.u64().ok_or_else(bad_meta)?).map_err(|_| bad_meta())?;
        if count > meta.len() / 24 {
            return Err(bad_meta());
        }
        let mut stream_pages = Vec::with_capacity(count);
        let mut expected_offset = MAGIC.len() as u64;
        for _ in 0..count {
            let page = StreamPage {
                first_hash: c.u64().ok_or_else(bad_meta)?,
                offset: c.u64().ok_or_else(bad_meta)?,
                len: c.u32().ok_or_else(bad_meta)?,
                crc: c.u32().ok_or_else(bad_meta)?,
            };
            let sorted = stream_pages
                .last()
                .is_none_or(|p: &StreamPage| p.first_hash <= page.first_hash);
            if page.offset != expected_offset || page.len == 0 || !sorted {
                return Err(bad_meta());
            }
            expected_offset += u64::from(page.len);
            stream_pages.push(page);
        }
        let count = usize::try_from(c.u64().ok_or_else(bad_meta)?).map_err(|_| bad_meta())?;
        if count > meta.len() / 24 {
            return Err(bad_meta());
        }
        let mut frame_pages = Vec::with_capacity(count);
        let mut counted = 0u64;
        for _ in 0..count {
            let page = FramePage {
                first_position: c.u64().ok_or_else(bad_meta)?,
                offset: c.u64().ok_or_else(bad_meta)?,
                count: c.u32().ok_or_else(bad_meta)?,
                crc: c.u32().ok_or_else(bad_meta)?,
            };
            let sorted = frame_pages
                .last()
                .is_none_or(|p: &FramePage| p.first_position < page.first_position);
            let first_ok = !frame_pages.is_empty() || page.first_position == start;
            if page.offset != expected_offset
                || page.count == 0
                || page.count as usize > FRAMES_PER_PAGE
                || !sorted
                || !first_ok
                || page.first_position >= end
            {
                return Err(bad_meta());
            }
            expected_offset += u64::from(page.count) * FRAME_RECORD_BYTES as u64;
            counted += u64::from(page.count);
            frame_pages.push(page);
        }
        if !c.done() || expected_offset != meta_offset || counted != frames || frame_pages.is_empty() {
            return Err(bad_meta());
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            start,
            end,
            run_end: RunEnd {
                segment,
                offset,
                last_hash,
                last_recorded_at,
            },
            stream_records,
            frames,
            bloom,
            stream_pages,
            frame_pages,
        })
    }

    fn read_page(&self, offset: u64, len: usize, crc: u32) -> Result<Vec<u8>, RunError> {
        let mut bytes = vec![0; len];
        self.file.read_exact_at(&mut bytes, offset)?;
        if crc32c::crc32c(&bytes) != crc {
            return Err(damaged(offset, "page checksum mismatch"));
        }
        Ok(bytes)
    }

    fn stream_page(&self, i: usize) -> Result<Vec<StreamRecord>, RunError> {
        let page = self.stream_pages[i];
        let bytes = self.read_page(page.offset, page.len as usize, page.crc)?;
        parse_stream_page(&bytes).ok_or_else(|| damaged(page.offset, "bad stream page"))
    }

    /// The record of `name` (whose hash is `hash`) in this run, if any.
    pub fn find_stream(&self, name: &str, hash: u64) -> Result<Option<StreamRecord>, RunError> {
        if !Bloom::may_contain(&self.bloom, hash) {
            return Ok(None);
        }
        // The record is in the last page starting below its hash, or in a
        // page starting at it (several only when hashes collide).
        let mut i = self
            .stream_pages
            .partition_point(|p| p.first_hash < hash)
            .saturating_sub(1);
        while i < self.stream_pages.len() && self.stream_pages[i].first_hash <= hash {
            for record in self.stream_page(i)? {
                if record.hash == hash && record.name == name {
                    return Ok(Some(record));
                }
                if record.hash > hash {
                    return Ok(None);
                }
            }
            i += 1;
        }
        Ok(None)
    }

    pub fn frame_page(&self, i: usize) -> Result<Vec<RunFrame>, RunError> {
        let page = self.frame_pages[i];
        let len = page.count as usize * FRAME_RECORD_BYTES;
        let bytes = self.read_page(page.offset, len, page.crc)?;
        let frames: Vec<RunFrame> = bytes.chunks_exact(FRAME_RECORD_BYTES).map(parse_frame).collect();
        let in_order = frames
            .windows(2)
            .all(|w| w[0].first_position < w[1].first_position);
        if !in_order || frames.first().map(|f| f.first_position) != Some(page.first_position) {
            return Err(damaged(page.offset, "bad frame page"));
        }
        Ok(frames)
    }

    /// The frame page holding `position` (in this run), and the positions
    /// it covers.
    pub fn frame_page_for(&self, position: Position) -> (usize, Position, Position) {
        let i = self
            .frame_pages
            .partition_point(|p| p.first_position <= position)
            .saturating_sub(1);
        let end = self.frame_pages.get(i + 1).map_or(self.end, |p| p.first_position);
        (i, self.frame_pages[i].first_position, end)
    }

    /// The frames of this run that hold positions in `[from, to)`, in order.
    pub fn frames_between(&self, from: Position, to: Position) -> Result<Vec<RunFrame>, RunError> {
        let mut out = Vec::new();
        let mut i = self
            .frame_pages
            .partition_point(|p| p.first_position <= from)
            .saturating_sub(1);
        while i < self.frame_pages.len() && self.frame_pages[i].first_position < to {
            for frame in self.frame_page(i)? {
                // A frame holds positions up to the next frame's first.
                if frame.first_position < to {
                    out.push(frame);
                }
            }
            i += 1;
        }
        // Drop the frames that end before `from`: every frame but the last
        // one starting at or before `from`.
        let keep_from = out
            .partition_point(|f| f.first_position <= from)
            .saturating_sub(1);
        out.drain(..keep_from);
        Ok(out)
    }

    /// The last frame of the run.
    pub fn last_frame(&self) -> Result<RunFrame, RunError> {
        let last = self.frame_pages.len() - 1;
        self.frame_page(last)?
            .pop()
            .ok_or_else(|| damaged(self.frame_pages[last].offset, "empty frame page"))
    }

    /// Every stream record, page by page, in order (for merging).
    fn stream_records(&self) -> impl Iterator<Item = Result<Vec<StreamRecord>, RunError>> + '_ {
        (0..self.stream_pages.len()).map(|i| self.stream_page(i))
    }

    fn all_frames(&self) -> impl Iterator<Item = Result<Vec<RunFrame>, RunError>> + '_ {
        (0..self.frame_pages.len()).map(|i| self.frame_page(i))
    }

    /// Checks the checksum of every page, reading the file sequentially in
    /// large pieces (open does this for every run it keeps, so that a
    /// damaged run is rebuilt rather than met by a read later).
    pub fn verify_pages(&self) -> Result<(), RunError> {
        const WINDOW: u64 = 8 << 20;
        let pages = self
            .stream_pages
            .iter()
            .map(|p| (p.offset, u64::from(p.len), p.crc))
            .chain(
                self.frame_pages
                    .iter()
                    .map(|p| (p.offset, u64::from(p.count) * FRAME_RECORD_BYTES as u64, p.crc)),
            );
        let mut buf = Vec::new();
        let mut buf_start = 0u64;
        for (offset, len, crc) in pages {
            if offset < buf_start || offset + len > buf_start + buf.len() as u64 {
                buf_start = offset;
                buf.resize(len.max(WINDOW) as usize, 0);
                let available = self.file.len()?.saturating_sub(offset);
                buf.truncate(available.min(buf.len() as u64) as usize);
                self.file.read_exact_at(&mut buf, offset)?;
                if (buf.len() as u64) < len {
                    return Err(damaged(offset, "page past the end of the file"));
                }
            }
            let at = (offset - buf_start) as usize;
            if crc32c::crc32c(&buf[at..at + len as usize]) != crc {
                return Err(damaged(offset, "page checksum mismatch"));
            }
        }
        Ok(())
    }

    /// Bytes of memory this run keeps (filter and directories).
    pub fn resident_bytes(&self) -> usize {
        self.bloom.len() * 8 + self.stream_pages.len() * 24 + self.frame_pages.len() * 24
    }
}

/// Writes a run file: records and frames streamed in, in order.
struct Builder {
    out: BufWriter<File>,
    at: u64,
    page: Vec<u8>,
    page_first_hash: u64,
    bloom: Vec<u64>,
    stream_pages: Vec<StreamPage>,
    frame_pages: Vec<FramePage>,
    frame_page: Vec<RunFrame>,
    records: u64,
    frames: u64,
    last_key: Option<(u64, String)>,
    last_frame: Option<Position>,
}

impl Builder {
    fn new(file: File, expected_records: u64) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            at: MAGIC.len() as u64,
            page: Vec::with_capacity(2 * STREAM_PAGE_BYTES),
            page_first_hash: 0,
            bloom: vec![0; Bloom::words_for(expected_records)],
            stream_pages: Vec::new(),
            frame_pages: Vec::new(),
            frame_page: Vec::with_capacity(FRAMES_PER_PAGE),
            records: 0,
            frames: 0,
            last_key: None,
            last_frame: None,
        })
    }

    fn record(&mut self, record: &StreamRecord) -> io::Result<()> {
        let key = (record.hash, record.name.clone());
        if self.last_key.as_ref().is_some_and(|last| *last >= key) || record.positions.is_empty() {
            return Err(io::Error::other("stream records out of order"));
        }
        self.last_key = Some(key);
        if self.page.is_empty() {
            self.page_first_hash = record.hash;
        }
        put_stream_record(&mut self.page, record);
        Bloom::insert(&mut self.bloom, record.hash);
        self.records += 1;
        if self.page.len() >= STREAM_PAGE_BYTES {
            self.close_stream_page()?;
        }
        Ok(())
    }

    fn close_stream_page(&mut self) -> io::Result<()> {
        if self.page.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(self.page.len()).map_err(|_| io::Error::other("page too large"))?;
        self.stream_pages.push(StreamPage {
            first_hash: self.page_first_hash,
            offset: self.at,
            len,
            crc: crc32c::crc32c(&self.page),
        });
        self.out.write_all(&self.page)?;
        self.at += u64::from(len);
        self.page.clear();
        Ok(())
    }

    fn frame(&mut self, frame: RunFrame) -> io::Result<()> {
        if self.last_frame.is_some_and(|last| last >= frame.first_position) {
            return Err(io::Error::other("frames out of order"));
        }
        self.close_stream_page()?;
        self.last_frame = Some(frame.first_position);
        self.frame_page.push(frame);
        self.frames += 1;
        if self.frame_page.len() == FRAMES_PER_PAGE {
            self.close_frame_page()?;
        }
        Ok(())
    }

    fn close_frame_page(&mut self) -> io::Result<()> {
        let Some(first) = self.frame_page.first() else {
            return Ok(());
        };
        let first_position = first.first_position;
        self.page.clear();
        for frame in &self.frame_page {
            put_frame(&mut self.page, frame);
        }
        self.frame_pages.push(FramePage {
            first_position,
            offset: self.at,
            count: self.frame_page.len() as u32,
            crc: crc32c::crc32c(&self.page),
        });
        self.out.write_all(&self.page)?;
        self.at += self.page.len() as u64;
        self.page.clear();
        self.frame_page.clear();
        Ok(())
    }

    /// Writes the directories and the footer. The file is not fsync'd: a
    /// run is a cache, and one that a power loss left incomplete or empty
    /// fails its footer or page checksums at open and is rebuilt. (Syncing
    /// runs measurably slowed the log's own fdatasyncs on the same disk.)
    fn finish(mut self, start: Position, end: Position, run_end: RunEnd) -> io::Result<()> {
        self.close_stream_page()?;
        self.close_frame_page()?;
        if self.frame_pages.is_empty() || self.frame_pages[0].first_position != start {
            return Err(io::Error::other("a run must start with a frame at its start"));
        }
        let mut meta = Vec::with_capacity(16 + self.bloom.len() * 8 + 24 * self.stream_pages.len());
        meta.extend_from_slice(&(self.bloom.len() as u64).to_le_bytes());
        for w in &self.bloom {
            meta.extend_from_slice(&w.to_le_bytes());
        }
        meta.extend_from_slice(&(self.stream_pages.len() as u64).to_le_bytes());
        for p in &self.stream_pages {
            meta.extend_from_slice(&p.first_hash.to_le_bytes());
            meta.extend_from_slice(&p.offset.to_le_bytes());
            meta.extend_from_slice(&p.len.to_le_bytes());
            meta.extend_from_slice(&p.crc.to_le_bytes());
        }
        meta.extend_from_slice(&(self.frame_pages.len() as u64).to_le_bytes());
        for p in &self.frame_pages {
            meta.extend_from_slice(&p.first_position.to_le_bytes());
            meta.extend_from_slice(&p.offset.to_le_bytes());
            meta.extend_from_slice(&p.count.to_le_bytes());
            meta.extend_from_slice(&p.crc.to_le_bytes());
        }
        let meta_offset = self.at;
        self.out.write_all(&meta)?;
        let mut footer = Vec::with_capacity(FOOTER_BYTES);
        for v in [start, end, run_end.segment, run_end.offset] {
            footer.extend_from_slice(&v.to_le_bytes());
        }
        footer.extend_from_slice(&run_end.last_hash);
        footer.extend_from_slice(&run_end.last_recorded_at.to_le_bytes());
        for v in [self.records, self.frames, meta_offset, meta.len() as u64] {
            footer.extend_from_slice(&v.to_le_bytes());
        }
        footer.extend_from_slice(&crc32c::crc32c(&meta).to_le_bytes());
        let crc = crc32c::crc32c(&footer);
        footer.extend_from_slice(&crc.to_le_bytes());
        footer.extend_from_slice(MAGIC);
        self.out.write_all(&footer)?;
        self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    }
}

/// Where a run of `[start, end)` is written before it is complete.
fn tmp_path(dir: &Path, start: Position, end: Position) -> PathBuf {
    dir.join(format!("{}.tmp", file_name(start, end)))
}

/// Writes the run `[start, end)` of `dir` from `records` (sorted by hash,
/// then name) and `frames` (by position): to a temporary file, then renamed
/// into place, so that a run under its name was written whole (short of a
/// power loss, which the checksums at open catch).
pub(crate) fn write(
    dir: &Path,
    start: Position,
    end: Position,
    run_end: RunEnd,
    records: &[StreamRecord],
    frames: &[RunFrame],
) -> io::Result<Run> {
    let tmp = tmp_path(dir, start, end);
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut builder = Builder::new(file, records.len() as u64)?;
        for record in records {
            builder.record(record)?;
        }
        for frame in frames {
            builder.frame(*frame)?;
        }
        let path = dir.join(file_name(start, end));
        builder.finish(start, end, run_end)?;
        std::fs::rename(&tmp, &path)?;
        Run::open(&path).map_err(|e| io::Error::other(e.to_string()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Sorts records into run order.
pub(crate) fn sort_records(records: &mut [StreamRecord]) {
    records.sort_unstable_by(StreamRecord::key_cmp);
}

/// The next record of one input of a merge.
struct Head {
    record: StreamRecord,
    input: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    /// Reversed (the heap is a max-heap): smallest key first, and for one
    /// stream the older input first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.record
            .key_cmp(&other.record)
            .then(self.input.cmp(&other.input))
            .reverse()
    }
}

/// Merges adjacent runs (oldest first, each starting where the previous
/// ends) into one run of their whole range, streaming page by page.
/// `stop` is polled between pages: a merge can be abandoned (`Ok(None)`).
pub(crate) fn merge(dir: &Path, inputs: &[&Run], stop: &dyn Fn() -> bool) -> Result<Option<Run>, RunError> {
    let (Some(first), Some(last)) = (inputs.first(), inputs.last()) else {
        return Ok(None);
    };
    if inputs.windows(2).any(|w| w[0].end != w[1].start) {
        return Err(damaged(0, "merged runs are not adjacent"));
    }
    let (start, end) = (first.start, last.end);
    let tmp = tmp_path(dir, start, end);
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let expected: u64 = inputs.iter().map(|r| r.stream_records).sum();
        let mut builder = Builder::new(file, expected)?;
        let mut pages: Vec<_> = inputs.iter().map(|r| r.stream_records()).collect();
        let mut buffered: Vec<std::vec::IntoIter<StreamRecord>> = Vec::with_capacity(inputs.len());
        let mut heap = BinaryHeap::new();
        for (input, iter) in pages.iter_mut().enumerate() {
            buffered.push(Vec::new().into_iter());
            if let Some(record) = next_record(iter, &mut buffered[input])? {
                heap.push(Head { record, input });
            }
        }
        let mut pending: Option<StreamRecord> = None;
        let mut since_poll = 0u32;
        while let Some(Head { record, input }) = heap.pop() {
            if let Some(next) = next_record(&mut pages[input], &mut buffered[input])? {
                heap.push(Head { record: next, input });
            }
            match &mut pending {
                Some(p) if p.hash == record.hash && p.name == record.name => {
                    // The same stream in the next run: its versions go on.
                    if p.first_version + p.positions.len() as u64 != record.first_version {
                        return Err(damaged(
                            0,
                            format!("stream {} has a version gap across runs", p.name),
                        ));
                    }
                    p.positions.extend_from_slice(&record.positions);
                }
                _ => {
                    if let Some(done) = pending.replace(record) {
                        builder.record(&done)?;
                    }
                }
            }
            since_poll += 1;
            if since_poll >= 4096 {
                since_poll = 0;
                if stop() {
                    return Ok(None);
                }
            }
        }
        if let Some(done) = pending {
            builder.record(&done)?;
        }
        for run in inputs {
            for page in run.all_frames() {
                for frame in page? {
                    builder.frame(frame)?;
                }
            }
            if stop() {
                return Ok(None);
            }
        }
        let path = dir.join(file_name(start, end));
        builder.finish(start, end, last.run_end)?;
        std::fs::rename(&tmp, &path)?;
        Ok(Some(Run::open(&path)?))
    })();
    if !matches!(result, Ok(Some(_))) {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn next_record(
    pages: &mut impl Iterator<Item = Result<Vec<StreamRecord>, RunError>>,
    buffered: &mut std::vec::IntoIter<StreamRecord>,
) -> Result<Option<StreamRecord>, RunError> {
    loop {
        if let Some(record) = buffered.next() {
            return Ok(Some(record));
        }
        match pages.next() {
            Some(page) => *buffered = page?.into_iter(),
            None => return Ok(None),
        }
    }
}

/// Parses a run file's bytes as `open` does (footer, directories, then
/// every page): for the fuzzers. Returns the run's range.
pub(crate) fn parse_bytes(bytes: &[u8]) -> Result<(Position, Position), String> {
    let run = Run::load(Path::new("<fuzz>"), Source::Bytes(bytes.to_vec())).map_err(|e| e.to_string())?;
    for page in run.stream_records() {
        page.map_err(|e| e.to_string())?;
    }
    for page in run.all_frames() {
        page.map_err(|e| e.to_string())?;
    }
    Ok((run.start, run.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, first_version: Version, positions: &[Position]) -> StreamRecord {
        StreamRecord {
            hash: stream_hash(name),
            name: name.to_owned(),
            first_version,
            positions: positions.to_vec(),
        }
    }

    fn frame(first_position: Position) -> RunFrame {
        RunFrame {
            first_position,
            segment: 0,
            offset: first_position * 64,
            body_len: 40,
        }
    }

    fn end() -> RunEnd {
        RunEnd {
            segment: 0,
            offset: 0,
            last_hash: [7; 32],
            last_recorded_at: 5,
        }
    }

    #[test]
    fn a_written_run_answers_lookups_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut records: Vec<StreamRecord> = (0..2000)
            .map(|i| record(&format!("s-{i}"), 0, &[i as u64 * 2, i as u64 * 2 + 1]))
            .collect();
        sort_records(&mut records);
        let frames: Vec<RunFrame> = (0..4000).step_by(2).map(frame).collect();
        let run = write(dir.path(), 0, 4000, end(), &records, &frames).expect("write");
        let run = Run::open(&run.path).expect("reopen");
        for i in 0..2000u64 {
            let name = format!("s-{i}");
            let found = run
                .find_stream(&name, stream_hash(&name))
                .expect("find")
                .expect("present");
            assert_eq!(found.positions, [i * 2, i * 2 + 1]);
        }
        assert!(
            run.find_stream("absent", stream_hash("absent"))
                .expect("find")
                .is_none()
        );
        let between = run.frames_between(101, 106).expect("frames");
        assert_eq!(
            between.iter().map(|f| f.first_position).collect::<Vec<_>>(),
            [100, 102, 104]
        );
        assert_eq!(run.last_frame().expect("last").first_position, 3998);
        assert_eq!(run.run_end, end());
    }

    #[test]
    fn merging_joins_a_stream_across_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(
            dir.path(),
            0,
            3,
            end(),
            &{
                let mut r = vec![record("x", 0, &[0, 1]), record("y", 0, &[2])];
                sort_records(&mut r);
                r
            },
            &[frame(0), frame(2)],
        )
        .expect("a");
        let b = write(
            dir.path(),
            3,
            5,
            end(),
            &{
                let mut r = vec![record("x", 2, &[3]), record("z", 0, &[4])];
                sort_records(&mut r);
                r
            },
            &[frame(3)],
        )
        .expect("b");
        let merged = merge(dir.path(), &[&a, &b], &|| false)
            .expect("merge")
            .expect("done");
        assert_eq!((merged.start, merged.end), (0, 5));
        let x = merged
            .find_stream("x", stream_hash("x"))
            .expect("x")
            .expect("x present");
        assert_eq!((x.first_version, x.positions), (0, vec![0, 1, 3]));
        assert!(merged.find_stream("z", stream_hash("z")).expect("z").is_some());
        assert_eq!(merged.frames, 3);
    }

    #[test]
    fn a_flipped_byte_is_caught() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = write(dir.path(), 0, 1, end(), &[record("x", 0, &[0])], &[frame(0)]).expect("write");
        let path = run.path.clone();
        drop(run);
        let clean = std::fs::read(&path).expect("read");
        for at in 0..clean.len() {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x10;
            std::fs::write(&path, &bytes).expect("write");
            let outcome = Run::open(&path).and_then(|run| {
                run.find_stream("x", stream_hash("x"))?;
                run.last_frame()
            });
            assert!(outcome.is_err(), "a flip at byte {at} went unnoticed");
        }
    }
}
