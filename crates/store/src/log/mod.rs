//! The embedded durable log: paycore's default backend.
//!
//! An append-only, segmented log in one data directory, written by one thread
//! with group commit (many appends, one `fdatasync`), read through an index
//! that lives on disk (immutable, checksummed *runs*) except for its most
//! recent part. An append is acknowledged only after its bytes are on stable
//! storage. Memory does not grow with the history: it is set by
//! [`LogOptions::index_flush_events`] and [`LogOptions::cache_events`] (plus a
//! Bloom filter and page directory per run, about 1.5 bytes per stream).
//!
//! # Data directory
//!
//! ```text
//! <dir>/LOCK                           exclusive flock, held while open
//! <dir>/segments/<20-digit first position>.log
//! <dir>/index/<start>-<end>.run        index runs (20-digit positions); derived: may be deleted
//!                                      at any time (the next open indexes the log again)
//! <dir>/index/*.tmp                    leftover of an interrupted run write (removed on open)
//! <dir>/index/*.damaged                a run set aside after a read found it damaged
//! <dir>/index.snapshot                 only from builds before the runs: converted into the
//!                                      first run on open, then deleted
//! ```
//!
//! A segment is named after the global position of its first event (zero
//! padded to 20 digits, so names sort like positions). Segments are
//! preallocated (`fallocate`) to [`LogOptions::segment_bytes`] when created
//! and the directory is fsync'd before anything is written into them. The
//! unused end of a segment reads as zeros. A group of commits never spans two
//! segments; a group larger than `segment_bytes` (one very large request) gets
//! a segment of its own, as large as needed.
//!
//! # Frames
//!
//! A segment is a sequence of frames, one per commit (one [`AppendRequest`],
//! the unit of atomicity), each starting at a multiple of 8 bytes. All
//! integers are little-endian.
//!
//! ```text
//! u32  body_len
//! u32  !body_len                 bitwise complement, catches torn/garbled headers
//! u32  crc32c(body)              Castagnoli CRC of the body bytes
//! [u8; body_len] body
//! zero padding to the next multiple of 8
//! ```
//!
//! The body:
//!
//! ```text
//! u64  group_first_position      first position of the commit group (one write + one fsync)
//! u64  group_end                 offset in this segment just past the group's last frame
//! u64  first_position            position of this commit's first event
//! i64  recorded_at_micros        commit time, shared by all its events
//! u32  event_count               >= 1; positions are first_position .. + event_count
//! event_count times:
//!   u8   flags                   bit 0: same stream as the previous event of this frame
//!                                bit 1: same event type as the previous event
//!                                bit 2: same metadata as the previous event
//!                                (other bits zero)
//!   [u32 len, UTF-8 stream]      unless flags bit 0
//!   u64  version                 per-stream version
//!   [u32 len, UTF-8 event_type]  unless flags bit 1
//!   u16  schema_version
//!   [metadata]                   unless flags bit 2; the canonical encoding of
//!                                crate::chain: u8 presence bits, then
//!                                16-byte UUIDs, u32-length-prefixed strings
//!                                and the 25-byte trace context (bit 5)
//!   u32 len, payload bytes
//!   [u8; 32] hash                SHA-256 chain hash, see crate::chain
//! ```
//!
//! A frame that passes its header and CRC checks must also fit the log: its
//! first position is the next expected position, every stream's versions are
//! contiguous from 0, every hash equals `chain_hash(previous hash, event)`,
//! and its group fields agree with the frames before it (a frame with
//! `group_first_position == first_position` starts a group, exactly where the
//! previous group ended; other frames repeat their group's fields). A CRC-valid
//! frame that does not fit is corruption, never a torn write.
//!
//! # Recovery rules (on open)
//!
//! 1. Take the lock; a second open of the directory, from this process or
//!    another, fails with [`StoreError::Locked`].
//! 2. Load the index runs: from position 0, at each step the longest run
//!    starting there whose footer, directories and every page pass their
//!    checksums and structure checks; the chain stops at the first gap or
//!    damaged run, and every run file not in it is deleted. The last run of
//!    the chain must agree with the segments (its last frame is on disk where
//!    it says, ends a commit group, ends at its end position with its last
//!    hash); otherwise it is dropped and the one before it checked. Whatever
//!    the runs no longer cover is scanned again (rule 3), and indexed anew.
//!    Without runs, a valid `index.snapshot` of an older build that agrees
//!    with the segments (same segment names; its last frame on disk where it
//!    says, ending at its event count with its last hash) becomes the first
//!    run, and is deleted either way.
//!
//!    The frames the runs cover are not decoded again, but every one of them
//!    is checked, on a thread of its own while the runs load (whole segments
//!    read sequentially in 8 MiB reads): its header (length and complement),
//!    its CRC, and that it starts at the position where the frame before it
//!    ended. Every segment before the segment where the runs end must hold
//!    frames exactly up to where the runs say and zeros after them (rule 4),
//!    and that segment intact frames up to the runs' end. Any failure is
//!    corruption (rule 5): `open` fails with [`StoreError::Corrupt`] naming
//!    the segment, the frame's offset and the position it should start at,
//!    exactly as without runs. The hash chain of those frames is not
//!    recomputed here (the audit does that).
//!
//!    With [`CoveredFrames::VerifyInBackground`] the same check runs, but
//!    `open` does not wait for it: it goes on beside serving, so an open
//!    takes the same time at any size of history, and what it finds is
//!    reported like damage found by a read or the scrub
//!    ([`LogStore::damage`], [`LogStore::covered_frames_check`]). Nothing
//!    damaged is served meanwhile either: every read checks the CRC of the
//!    frames it reads, and the frames after the runs (rule 3: the latest
//!    writes, the only ones a crash can tear) are checked before `open`
//!    returns in both modes.
//! 3. Scan every frame after that point, in order, across segments. Each
//!    segment's name must be the position the log before it ended at, and the
//!    first segment (without runs) must be `0`.
//! 4. Within a segment, the data ends at offset `X` when the rest of the file
//!    from `X` is zeros (or absent). Otherwise a frame at `X` that cannot be
//!    read (a header shorter than 12 bytes, a header failing the complement
//!    check — including a zeroed header followed by data —, a frame extending
//!    past the end of the file, or a CRC mismatch) is a *bad frame*.
//! 5. A bad frame in any segment but the last is corruption: `open` fails
//!    with [`StoreError::Corrupt`] naming the segment, the frame's offset and
//!    the position it should start at.
//! 6. A bad frame at `X` in the last segment is a **torn tail** — the remains
//!    of the last group write, which was never acknowledged — iff every byte
//!    after the region that write may have covered is zero or absent. That
//!    region ends at:
//!    - the group's `group_end`, when the frame before `X` belongs to a group
//!      that extends past `X` (a disk may persist the pages of one write in
//!      any order, so any part of the group may be missing);
//!    - otherwise (the bad frame starts a group): the end of the bad frame when
//!      its header passes the complement check, else `X + 12`; extended to
//!      the `group_end` of the first intact frame after `X` (searched at
//!      8-byte steps) if that frame belongs to the same group
//!      (`group_first_position` equal to the expected position). An intact
//!      frame of a *later* group after `X` proves the bad frame was durable
//!      before it: corruption.
//!
//!    A torn tail is cut off: the file is truncated to `X` and preallocated
//!    again (so the segment stays zero beyond its data), the cut is logged at
//!    warn level and reported in [`OpenReport::truncated_tail_bytes`] (the
//!    size of the discarded region, `min(region end, file length) - X`). Any
//!    other bad frame is corruption; nothing is ever skipped silently.
//!
//!    No format can tell a torn write from damage to the very last durable
//!    frame when nothing follows it; both are treated as a torn tail.
//! 7. The last segment becomes the active one, preallocated back to
//!    `segment_bytes` if it is shorter.
//!
//! # Index
//!
//! Lookups (a stream's head or versions, the frame of a position) consult,
//! newest first: the *tail* (the index of the latest events, in memory), up
//! to [`MAX_FROZEN`](index::MAX_FROZEN) *frozen* tails waiting to be written,
//! and the runs on disk. When the tail holds
//! [`LogOptions::index_flush_events`] events, the writer freezes it at a group
//! boundary and a background thread writes it as a run (appends wait only if
//! that thread falls more than four tails behind). A second background thread
//! merges runs: whenever four adjacent runs have the same *level* (level 0
//! holds less than 4 × `index_flush_events` events, each level 4 times more),
//! it merges them into one, so a log of N events has at most 3 runs per
//! level, O(log N) in all. Merged inputs are deleted once the merged run is
//! in place; a crash in between leaves both, and open takes the longer one.
//! After a crash, open scans at most the events after the last run: the tail
//! and frozen tails that were not written yet.
//!
//! A run is a cache of the log: damage found at open drops it (rule 2);
//! damage found by a later read fails that read with [`StoreError::Corrupt`]
//! naming the run file (never a wrong answer) and renames the run
//! `*.damaged`, so the next open indexes its range again. What the index
//! points to is checked against the log as it is read: a frame's first
//! position, and for a stream read every event's stream and consecutive
//! versions.
//!
//! ## Run files
//!
//! All integers little-endian. A run covers positions `[start, end)`, both in
//! its name.
//!
//! ```text
//! [u8; 8] "PCLOGRN1"
//! stream pages: records sorted by (hash, name), a page closed once it
//!   holds >= 4096 bytes; each record:
//!     u64 hash                  stream_hash(name): FNV-1a 64, then the
//!                               MurmurHash3 fmix64 finalizer
//!     u64 first version         of the stream in this run (its versions in
//!                               a run are contiguous)
//!     u32 count >= 1, u32 name length, UTF-8 name
//!     count × u64 position      of each version, ascending
//! frame pages: up to 128 frames each, 32 bytes per frame:
//!     u64 first position, u64 segment (its first position), u64 offset,
//!     u32 body length, u32 0
//! meta:
//!     u64 W, W × u64            Bloom filter: 512-bit blocks, 10 bits per
//!                               record; a key sets 6 bits of one block
//!     u64 n, n × (u64 first hash, u64 offset, u32 length, u32 crc32c)   stream pages
//!     u64 m, m × (u64 first position, u64 offset, u32 count, u32 crc32c) frame pages
//! footer (120 bytes):
//!     u64 start, u64 end
//!     u64 segment, u64 offset   where the run's last frame ends (a group
//!                               boundary): the scan after the run resumes there
//!     [u8; 32] hash of position end - 1, i64 its recorded_at
//!     u64 stream records, u64 frames, u64 meta offset, u64 meta length
//!     u32 crc32c(meta), u32 crc32c(footer up to here), [u8; 8] "PCLOGRN1"
//! ```
//!
//! A run is written to `<name>.tmp` and renamed: a run under its name was
//! written whole. It is not fsync'd (fsyncing runs slowed the log's own
//! fdatasyncs on the same disk by 10–25% in `paycore-bench store`): after a
//! power loss a run that did not reach the disk fails its checksums at open
//! and is rebuilt from the segments, like any damaged run. Only its footer, filter and
//! directories stay in memory while it is open; pages are read (and their
//! checksums checked) on demand, through the page cache.
//!
//! ## Index snapshot of older builds
//!
//! Builds before the runs kept the whole index in memory and saved it to
//! `index.snapshot`; this build reads it once (rule 2). All fixed-size
//! integers little-endian; `varint` is unsigned LEB128.
//!
//! ```text
//! [u8; 8] "PCLOGIX2"
//! u64  event count N (the snapshot covers positions 0 .. N)
//! [u8; 32] hash of position N-1 (zeros when N = 0)
//! i64  recorded_at of position N-1
//! u32  resume segment (ordinal in the table below; always the last)
//! u64  resume offset (end of the frame holding position N-1)
//! u32  segment count S, then S × u64 segment first position
//! u64  frame count F, then F frames, each four varints, delta-encoded:
//!        first position − previous frame's first position,
//!        segment ordinal − previous frame's ordinal,
//!        offset − (previous frame's end if same segment, else 0),
//!        body_len
//!      (the "previous frame" of the first is position 0, ordinal 0, end 0)
//! streams, each: u8 1, u32 len, UTF-8 name, u64 count,
//!        count varints: position of version 0, then differences to the previous
//! u8   0
//! u32  crc32c of everything above
//! ```
//!
//! # Damage after open
//!
//! Every frame read from a file checks its header and CRC again; a read that
//! meets a damaged frame fails with [`StoreError::Corrupt`] (file, offset,
//! and the frame's first position). Frames nobody reads are re-checked by the
//! scrub ([`LogStore::start_scrub`], off unless started): a low-priority
//! thread that walks every segment's committed frames pass after pass at a
//! fixed rate (direct I/O where the file system allows, so it reads the disk
//! rather than the page cache; each sealed segment's zero tail too). Damage
//! found either way is logged at error level with file and offset (once per
//! place) and published on [`LogStore::damage`], for the server to stop
//! advertising itself as healthy. Nothing is repaired or skipped: the damaged
//! frame's events stay unreadable until the segment is restored, and the next
//! `open` refuses the log.
//!
//! `paycore audit` reads a log that `open` refuses with [`salvage()`]: frame by
//! frame, reporting each damaged frame and carrying on at the next intact one.
//!
//! # Backups
//!
//! Segments are append-only and a frame is never rewritten, so a live log
//! can be copied as it runs: [`backup::copy_prefix`] copies every frame up
//! to a durable position (the committed position, which always ends a
//! commit group) and cuts each copied segment after its last frame (no zero
//! tail: rule 4 treats an absent tail like a zero one, rule 7 preallocates
//! the last segment on open). Index runs are not copied; the first open of
//! the copy indexes it. [`backup::check_prefix`] reads such a copy back.
//!
//! # Failures
//!
//! - A full disk is detected when a segment is preallocated, before any byte
//!   of the group is written: the group's appends fail with
//!   [`StoreError::DiskFull`] and the store stays usable.
//! - A failed write or `fdatasync` is never retried (after a failed fsync the
//!   page cache can no longer be trusted): the appends waiting on it and every
//!   later append fail with [`StoreError::Fatal`], the failure is logged at
//!   error level, and the process is expected to exit. Whatever part of the
//!   group reached the disk is unacknowledged and is cut as a torn tail on
//!   the next open.
//!
//! [`AppendRequest`]: crate::AppendRequest

pub mod backup;
mod codec;
mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod indexer;
mod recovery;
mod runs;
pub mod salvage;
mod snapshot;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{oneshot, watch};

use crate::api::{
    AppendRequest, AppendResult, EventStore, Position, ReadDirection, RecordedEvent, StreamName, Version,
};
use crate::error::StoreError;
use crate::request::validate;

use self::index::{Index, ReadPlan};
use self::indexer::Indexer;
use self::verify::{BackgroundVerification, Scrubber};
use self::writer::{Msg, Writer};

pub use self::backup::{PrefixReport, SegmentFile, check_prefix, copy_prefix};
pub use self::salvage::{LostFrames, SalvageReport, Salvaged, salvage};
pub use self::verify::{CoveredFramesCheck, Damage, ScrubOptions};

/// Whether each group commit is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `fdatasync` after every group write: acknowledged means durable.
    #[default]
    Fsync,
    /// No `fdatasync` on commits. Only for benchmarks that measure the cost of
    /// durability; a crash can lose acknowledged appends.
    NoSync,
}

/// Tuning of the embedded log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Size of a new segment (preallocated), at least 4096. Default 128 MiB.
    pub segment_bytes: u64,
    pub sync: SyncMode,
    /// The in-memory tail of the index is written to disk as a run once it
    /// holds this many events (0: only on close). It bounds both the memory
    /// of the index (a few tails of this size) and the events a start after
    /// a crash scans again. Default 262,144.
    pub index_flush_events: u64,
    /// How many of the most recent events stay decoded in memory for reads.
    /// Default 65,536.
    pub cache_events: usize,
    /// When the checksums of the frames under the on-disk index are
    /// verified. Default [`CoveredFrames::VerifyBeforeOpen`].
    pub covered_frames: CoveredFrames,
}

/// When [`LogStore::open`] verifies the checksums of the frames its on-disk
/// index covers (the frames after the index are always scanned, decoded and
/// checked before open returns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CoveredFrames {
    /// Before open returns: damage anywhere fails the open. Reading the
    /// whole log makes the open's time grow with history (about a second
    /// per 5 GB from the page cache, at disk speed otherwise).
    #[default]
    VerifyBeforeOpen,
    /// On a thread of its own, started at the end of open and not waited
    /// for, at 64 MiB/s with direct I/O (so that the first requests' cold
    /// reads keep their latency): the open takes the same time at any
    /// history size. Damage it
    /// finds is reported like damage found by a read or the scrub (logged,
    /// published to [`LogStore::damage`]); until then, a read that meets a
    /// damaged frame still fails on its checksum, so nothing damaged is
    /// ever served.
    VerifyInBackground,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 128 << 20,
            sync: SyncMode::Fsync,
            index_flush_events: 1 << 18,
            cache_events: 1 << 16,
            covered_frames: CoveredFrames::VerifyBeforeOpen,
        }
    }
}

/// What [`LogStore::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Number of events in the log (the next position).
    pub events: u64,
    /// Bytes of a torn tail cut off the last segment (0 when none).
    pub truncated_tail_bytes: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Whether the index came from disk: its runs (or the `index.snapshot`
    /// of an older build, converted).
    pub index_loaded_from_snapshot: bool,
    /// Events scanned from the segments: those after the last run (all of
    /// them without runs).
    pub replayed_events_after_snapshot: u64,
    /// Bytes of frames under the on-disk index whose checksums were
    /// verified (0 without runs: the scan verifies everything; 0 when the
    /// verification goes on in the background).
    pub verified_bytes: u64,
    /// Whether the frames under the index are being verified in the
    /// background ([`CoveredFrames::VerifyInBackground`] with a non-empty
    /// index).
    pub verifying_in_background: bool,
}

/// State shared by the store handle, the writer and indexer threads.
#[derive(Debug)]
pub(crate) struct Shared {
    dir: PathBuf,
    options: LogOptions,
    index: RwLock<Index>,
    /// With `flushed`: appends wait for the indexer when it is far behind.
    flush_lock: Mutex<()>,
    /// Notified whenever a frozen memtable became a run.
    flushed: Condvar,
    /// Set once when a write or fsync fails; every later append fails.
    fatal: OnceLock<String>,
    closed: AtomicBool,
    /// The first damage found after open (by a read or the scrub).
    damage: watch::Sender<Option<Damage>>,
    /// Every place reported, so each is logged once, not once per read.
    damage_logged: Mutex<HashSet<(PathBuf, u64)>>,
    /// Scrub passes completed.
    scrub_passes: AtomicU64,
    #[cfg(test)]
    faults: tests::Faults,
}

/// Places remembered as logged; past this, every report is logged again.
const DAMAGE_LOGGED_MAX: usize = 1024;

impl Shared {
    fn segments_dir(&self) -> PathBuf {
        self.dir.join(fsutil::SEGMENTS_DIR)
    }

    /// Records damage found after open: logged at error level (once per
    /// place) and published to [`LogStore::damage`].
    pub(crate) fn report_damage(&self, damage: &Damage, found_by: &str) {
        let first_time = {
            let mut logged = self.damage_logged.lock();
            if logged.len() >= DAMAGE_LOGGED_MAX {
                logged.clear();
            }
            logged.insert((damage.file.clone(), damage.offset))
        };
        if first_time {
            tracing::error!(
                file = %damage.file.display(),
                offset = damage.offset,
                position = damage.position,
                reason = %damage.reason,
                found_by,
                "the event log is damaged: the frame at this file and offset cannot be served"
            );
        }
        self.damage.send_if_modified(|first| {
            if first.is_none() {
                *first = Some(damage.clone());
                true
            } else {
                false
            }
        });
    }
}

/// The embedded durable log. See the [module docs](self) for the format and
/// the recovery rules.
pub struct LogStore {
    shared: Arc<Shared>,
    tx: Sender<Msg>,
    committed: watch::Receiver<Position>,
    writer: Mutex<Option<JoinHandle<()>>>,
    scrubber: Mutex<Option<Scrubber>>,
    /// The background verification of the frames under the index.
    verification: Mutex<Option<BackgroundVerification>>,
    covered_frames_check: watch::Receiver<CoveredFramesCheck>,
    lock: Mutex<Option<File>>,
}

/// Reads of more bytes than this go to a blocking thread instead of running
/// on the async caller's thread.
const INLINE_READ_BYTES: u64 = 256 << 10;

impl LogStore {
    /// Opens (creating if needed) the log in `dir`, recovering it as the
    /// [module docs](self) describe, and starts its writer thread.
    ///
    /// This is a blocking call (it may scan the log); from async code, call
    /// it through `tokio::task::spawn_blocking`. It needs no runtime.
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<(Self, OpenReport), StoreError> {
        let dir = dir.as_ref().to_path_buf();
        if options.segment_bytes < 4096 {
            return Err(StoreError::InvalidRequest(
                "segment_bytes must be at least 4096".into(),
            ));
        }
        let created = !dir.exists();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        // A new directory's own entry must be durable too.
        if let Some(parent) = dir.parent().filter(|p| created && !p.as_os_str().is_empty()) {
            fsutil::sync_dir(parent)
                .map_err(|e| StoreError::io(format!("syncing {}", parent.display()), e))?;
        }
        let lock = fsutil::lock_dir(&dir)?;
        let segments_dir = dir.join(fsutil::SEGMENTS_DIR);
        if !segments_dir.exists() {
            std::fs::create_dir(&segments_dir)
                .map_err(|e| StoreError::io(format!("creating {}", segments_dir.display()), e))?;
            fsutil::sync_dir(&dir).map_err(|e| StoreError::io(format!("syncing {}", dir.display()), e))?;
        }
        let _ = std::fs::remove_file(dir.join(fsutil::SNAPSHOT_TMP_FILE));

        let mut recovered = recovery::recover(&dir, &options)?;
        let pending_verification = recovered.pending_verification.take();
        let report = recovered.report.clone();
        let runs = &recovered.index.runs;
        tracing::info!(
            runs = runs.len(),
            frames = runs.iter().map(|r| r.frames).sum::<u64>(),
            resident_bytes = runs.iter().map(|r| r.resident_bytes()).sum::<usize>(),
            "log index opened"
        );
        tracing::info!(
            dir = %dir.display(),
            events = report.events,
            segments = report.segments,
            from_index = report.index_loaded_from_snapshot,
            replayed = report.replayed_events_after_snapshot,
            verified_bytes = report.verified_bytes,
            verifying_in_background = report.verifying_in_background,
            truncated_tail_bytes = report.truncated_tail_bytes,
            "event log opened"
        );
        let (committed_tx, committed) = watch::channel(recovered.index.next);
        let shared = Arc::new(Shared {
            dir,
            options,
            index: RwLock::new(recovered.index),
            flush_lock: Mutex::new(()),
            flushed: Condvar::new(),
            fatal: OnceLock::new(),
            closed: AtomicBool::new(false),
            damage: watch::Sender::new(None),
            damage_logged: Mutex::new(HashSet::new()),
            scrub_passes: AtomicU64::new(0),
            #[cfg(test)]
            faults: tests::Faults::default(),
        });
        let (tx, rx) = mpsc::channel();
        let indexer = Indexer::start(shared.clone())?;
        let writer = Writer::new(shared.clone(), rx, committed_tx, recovered.writer, indexer);
        let handle = std::thread::Builder::new()
            .name("paycore-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::io("starting the log writer thread", e))?;
        let (check_tx, covered_frames_check) = watch::channel(CoveredFramesCheck::BeforeOpen);
        let verification = pending_verification
            .map(|pending| BackgroundVerification::start(shared.clone(), pending, check_tx))
            .transpose()?;
        Ok((
            Self {
                shared,
                tx,
                committed,
                writer: Mutex::new(Some(handle)),
                scrubber: Mutex::new(None),
                verification: Mutex::new(verification),
                covered_frames_check,
                lock: Mutex::new(Some(lock)),
            },
            report,
        ))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Starts the background scrub: a low-priority thread that re-reads
    /// every committed frame and checks its checksum, pass after pass, at
    /// `options.bytes_per_second` (bypassing the page cache where the file
    /// system allows), so damage to frames nobody reads is found within
    /// [`ScrubOptions::detection_bound`]. What it finds is logged at error
    /// level and published to [`Self::damage`]. Replaces a running scrub.
    pub fn start_scrub(&self, options: ScrubOptions) -> Result<(), StoreError> {
        if options.bytes_per_second == 0 {
            return Err(StoreError::InvalidRequest(
                "the scrub rate must be at least 1 byte per second".into(),
            ));
        }
        let scrubber = Scrubber::start(self.shared.clone(), options)?;
        if let Some(previous) = self.scrubber.lock().replace(scrubber) {
            previous.stop();
        }
        Ok(())
    }

    /// The first damage found since open, by a read, the scrub or the
    /// background verification of the frames under the index: `None` while
    /// none was. Damage found by open itself fails the open instead.
    pub fn damage(&self) -> watch::Receiver<Option<Damage>> {
        self.shared.damage.subscribe()
    }

    /// Where the verification of the frames under the index stands: done
    /// before open, or (with [`CoveredFrames::VerifyInBackground`]) running
    /// and then verified, failed or stopped.
    pub fn covered_frames_check(&self) -> watch::Receiver<CoveredFramesCheck> {
        self.covered_frames_check.clone()
    }

    /// Scrub passes completed since open.
    pub fn scrub_passes(&self) -> u64 {
        self.shared.scrub_passes.load(Ordering::SeqCst)
    }

    /// Stops the store cleanly: appends already queued are committed, later
    /// ones fail with [`StoreError::Closed`], the tail of the index is
    /// written as a run (a merge under way is abandoned),
    /// and the directory lock is released. Subscriptions end with `Closed`
    /// after the last committed event. Idempotent; also done on drop.
    ///
    /// Blocks until the writer has finished (normally milliseconds, longer if
    /// the tail is large).
    pub fn close(&self) -> Result<(), StoreError> {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(scrubber) = self.scrubber.lock().take() {
            scrubber.stop();
        }
        if let Some(verification) = self.verification.lock().take() {
            verification.stop();
        }
        let _ = self.tx.send(Msg::Shutdown);
        let handle = self.writer.lock().take();
        let result = match handle {
            Some(handle) => handle
                .join()
                .map_err(|_| StoreError::Fatal("the log writer thread panicked".into())),
            None => Ok(()),
        };
        self.lock.lock().take();
        result
    }

    /// Why the writer no longer answers.
    fn stopped(&self) -> StoreError {
        if let Some(reason) = self.shared.fatal.get() {
            StoreError::Fatal(reason.clone())
        } else if self.shared.closed.load(Ordering::SeqCst) {
            StoreError::Closed
        } else {
            StoreError::Fatal("the log writer thread stopped".into())
        }
    }

    /// Executes a read; damage it meets is reported (see [`Self::damage`]).
    async fn run_plan(&self, plan: Result<ReadPlan, StoreError>) -> Result<Vec<RecordedEvent>, StoreError> {
        let result = match plan {
            Ok(plan) => self.execute_plan(plan).await,
            Err(e) => Err(e),
        };
        if let Err(error) = &result
            && let Some(damage) = Damage::of(error)
        {
            self.shared.report_damage(&damage, "a read");
        }
        result
    }

    async fn execute_plan(&self, plan: ReadPlan) -> Result<Vec<RecordedEvent>, StoreError> {
        if plan.disk_bytes() <= INLINE_READ_BYTES {
            plan.execute()
        } else {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => handle
                    .spawn_blocking(move || plan.execute())
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?,
                Err(_) => plan.execute(),
            }
        }
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the event log");
        }
    }
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.shared.dir)
            .field("committed", &*self.committed.borrow())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl EventStore for LogStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        let size = validate(&request)?;
        if self.shared.fatal.get().is_some() || self.shared.closed.load(Ordering::SeqCst) {
            return Err(self.stopped());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Append {
                request,
                size,
                reply,
                span: tracing::Span::current(),
            })
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Version,
        direction: ReadDirection,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let plan = self
            .shared
            .index
            .read()
            .plan_read_stream(stream.as_str(), from, direction, max);
        self.run_plan(plan.map(|plan| plan.expecting(stream.clone())))
            .await
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let plan = self.shared.index.read().plan_read_all(from, max);
        self.run_plan(plan).await
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Option<Version>, StoreError> {
        self.shared.index.read().head(stream.as_str())
    }

    fn committed(&self) -> watch::Receiver<Position> {
        self.committed.clone()
    }
}
