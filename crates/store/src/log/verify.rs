//! Checksum verification without decoding: the frames the on-disk index
//! covers are verified on open (beside loading the index), and the
//! background scrub re-reads every committed frame periodically. Both walk a
//! segment's frames from offset 0 through large sequential reads and check
//! each frame's header, CRC and first position; neither decodes events nor
//! rebuilds the hash chain (the scan of frames after the snapshot and the
//! audit do that).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustix::io::Errno;
use tokio::sync::watch;

use crate::api::Position;
use crate::error::{StoreError, corrupt};

use super::Shared;
use super::codec::{HEADER_BYTES, RawHeader, decode_body_header, frame_end};
use super::index::SegmentRef;

/// Damage found in the log: a frame that does not read back as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment file.
    pub file: PathBuf,
    /// Offset of the damaged frame in the file.
    pub offset: u64,
    /// The first position the frame holds (or would hold), when known.
    pub position: Option<Position>,
    pub reason: String,
}

impl Damage {
    /// The damage a [`StoreError::Corrupt`] names; `None` for other errors.
    pub fn of(error: &StoreError) -> Option<Self> {
        match error {
            StoreError::Corrupt {
                file,
                offset,
                position,
                reason,
            } => Some(Self {
                file: file.clone(),
                offset: *offset,
                position: *position,
                reason: reason.clone(),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, offset {}", self.file.display(), self.offset)?;
        if let Some(position) = self.position {
            write!(f, " (position {position})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// How the background scrub re-reads the log (see [`super::LogStore::start_scrub`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubOptions {
    /// Read at most this many bytes per second (at least 1).
    pub bytes_per_second: u64,
    /// A pass starts this long after the previous one started, or as soon
    /// as it ends if it took longer. The first pass starts one interval
    /// after the store opened (open has just verified everything).
    pub interval: Duration,
}

impl Default for ScrubOptions {
    /// 16 MiB/s, a pass every hour.
    fn default() -> Self {
        Self {
            bytes_per_second: 16 << 20,
            interval: Duration::from_secs(3600),
        }
    }
}

impl ScrubOptions {
    /// An upper bound of the time from damage appearing to the scrub
    /// finding it, for a log of `log_bytes`: the wait for the next pass to
    /// start plus that pass.
    pub fn detection_bound(&self, log_bytes: u64) -> Duration {
        let pass = Duration::from_secs_f64(log_bytes as f64 / self.bytes_per_second.max(1) as f64);
        self.interval.max(pass) + pass
    }
}

/// Direct I/O needs buffers, offsets and lengths aligned to the device's
/// logical block size; 4 KiB covers the usual ones.
const ALIGN: usize = 4096;
/// Read size of the open-time verification.
const OPEN_CHUNK: usize = 8 << 20;
/// Read size of the scrub: small enough for a smooth pace.
const SCRUB_CHUNK: usize = 1 << 20;

/// A request to stop, shared between a thread and whoever stops it.
#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock()
    }

    /// Sleeps for `duration` unless stopped meanwhile; `true` when stopped.
    fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut stopped = self.stopped.lock();
        while !*stopped {
            if self.wake.wait_until(&mut stopped, deadline).timed_out() {
                break;
            }
        }
        *stopped
    }
}

#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// The scrub was asked to stop.
    Stopped,
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Keeps the scrub at its rate.
struct Pacer {
    bytes_per_second: u64,
    started: Instant,
    bytes: u64,
    stop: Arc<StopSignal>,
}

impl Pacer {
    fn consume(&mut self, bytes: usize) -> Result<(), ReadError> {
        self.bytes += bytes as u64;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second.max(1) as f64);
        let ahead = due.saturating_sub(self.started.elapsed());
        let stopped = if ahead.is_zero() {
            self.stop.is_stopped()
        } else {
            self.stop.sleep(ahead)
        };
        if stopped { Err(ReadError::Stopped) } else { Ok(()) }
    }
}

/// What the reads of a whole walk share: the buffer, the pace, the count.
struct ReadState {
    chunk: usize,
    /// `buf[pad..]` is aligned for direct I/O.
    buf: Vec<u8>,
    pad: usize,
    pacer: Option<Pacer>,
    bytes_read: u64,
}

impl ReadState {
    fn new(chunk: usize, pacer: Option<Pacer>) -> Self {
        Self {
            chunk,
            buf: Vec::new(),
            pad: 0,
            pacer,
            bytes_read: 0,
        }
    }
}

/// Sequential reads of one segment through a large buffer, with direct I/O
/// when asked for and available (the scrub must read the disk, not the page
/// cache).
struct SegmentReader<'s> {
    state: &'s mut ReadState,
    file: File,
    path: PathBuf,
    len: u64,
    direct: bool,
    /// `state.buf[pad..pad + filled]` holds the file from `start`.
    start: u64,
    filled: usize,
    /// Offset of the last read attempted (for reporting a failed one).
    last_read: u64,
    /// Reads stop here (rounded up to the alignment): past it the writer
    /// may be at work.
    read_end: u64,
}

fn open_direct(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
}

impl<'s> SegmentReader<'s> {
    /// Opens `path`, with direct I/O if `direct` and the file system takes it.
    fn open(state: &'s mut ReadState, path: &Path, direct: bool) -> io::Result<Self> {
        let (file, direct) = if direct {
            match open_direct(path) {
                Ok(file) => (file, true),
                Err(e) if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => (File::open(path)?, false),
                Err(e) => return Err(e),
            }
        } else {
            (File::open(path)?, false)
        };
        let len = file.metadata()?.len();
        Ok(Self {
            state,
            file,
            path: path.to_path_buf(),
            len,
            direct,
            start: 0,
            filled: 0,
            last_read: 0,
            read_end: u64::MAX,
        })
    }

    /// Reads nothing at or after `end` (beyond the alignment).
    fn read_up_to(&mut self, end: u64) {
        self.read_end = end.div_ceil(ALIGN as u64) * ALIGN as u64;
    }

    /// `len` bytes at `offset`, which must be inside the file.
    fn get(&mut self, offset: u64, len: usize) -> Result<&[u8], ReadError> {
        let end = offset + len as u64;
        let inside = offset >= self.start && end <= self.start + self.filled as u64;
        if !inside {
            self.fill(offset, len)?;
        }
        let at = self.state.pad + (offset - self.start) as usize;
        Ok(&self.state.buf[at..at + len])
    }

    fn fill(&mut self, offset: u64, len: usize) -> Result<(), ReadError> {
        let read_start = if self.direct {
            offset & !(ALIGN as u64 - 1)
        } else {
            offset
        };
        let need = (offset - read_start) as usize + len;
        let allowed = usize::try_from(self.read_end.saturating_sub(read_start)).unwrap_or(usize::MAX);
        let mut want = self.state.chunk.min(allowed).max(need);
        if self.direct {
            want = want.div_ceil(ALIGN) * ALIGN;
        }
        let state = &mut *self.state;
        if state.buf.len() < want + ALIGN {
            state.buf = vec![0; want + ALIGN];
            let misalignment = state.buf.as_ptr() as usize % ALIGN;
            state.pad = (ALIGN - misalignment) % ALIGN;
        }
        self.filled = 0;
        self.start = read_start;
        let mut got = 0;
        while got < want {
            let target = &mut state.buf[state.pad + got..state.pad + want];
            self.last_read = read_start + got as u64;
            let n = match self.file.read_at(target, self.last_read) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if self.direct && e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
                    // The file system takes O_DIRECT but not these
                    // alignments: read through the page cache instead.
                    tracing::debug!(file = %self.path.display(), "direct reads refused; reading through the page cache");
                    self.file = File::open(&self.path)?;
                    self.direct = false;
                    return self.fill(offset, len);
                }
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                break;
            }
            got += n;
            if self.direct && n % ALIGN != 0 {
                break; // the end of the file
            }
        }
        state.bytes_read += got as u64;
        if let Some(pacer) = &mut state.pacer {
            pacer.consume(got)?;
        }
        if got < need {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ends at offset {}",
                    self.path.display(),
                    read_start + got as u64
                ),
            )
            .into());
        }
        self.filled = got;
        Ok(())
    }

    /// Offset of the first non-zero byte in `[from, to)`, skipping holes
    /// (unwritten preallocated space) where the file system reports them.
    fn first_nonzero(&mut self, from: u64, to: u64) -> Result<Option<u64>, ReadError> {
        let mut at = from;
        while at < to {
            let Some((data, data_end)) = super::fsutil::next_data(&self.file, at, to) else {
                return Ok(None);
            };
            at = data;
            while at < data_end {
                let n = ((data_end - at) as usize).min(self.state.chunk);
                let bytes = self.get(at, n)?;
                if let Some(i) = bytes.iter().position(|&b| b != 0) {
                    return Ok(Some(at + i as u64));
                }
                at += n as u64;
            }
        }
        Ok(None)
    }
}

/// Where a walk over a segment stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// At this offset, which must be a frame boundary.
    At(u64),
    /// Where the data ends: a zeroed header with only zeros after it (a
    /// sealed segment).
    DataEnd,
}

/// A frame that failed its checks during a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadFrame {
    pub offset: u64,
    /// The position the frame should start at.
    pub position: Position,
    pub reason: String,
}

/// What a walk over one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Walk {
    /// Offset just past the last good frame.
    pub end: u64,
    /// The position after the last good frame.
    pub next: Position,
    pub frames: u64,
    /// Why the walk stopped early.
    pub bad: Option<BadFrame>,
}

/// Walks the frames of the segment `reader` has open, from offset 0 and
/// position `first_position`, checking each frame's header (length and its
/// complement), CRC, body header and first position (each frame starts
/// where the one before it ended), until `limit`.
fn walk(reader: &mut SegmentReader<'_>, first_position: Position, limit: Limit) -> Result<Walk, ReadError> {
    let len = reader.len;
    let mut walked = Walk {
        end: 0,
        next: first_position,
        frames: 0,
        bad: None,
    };
    let bad = |mut walked: Walk, reason: String| {
        walked.bad = Some(BadFrame {
            offset: walked.end,
            position: walked.next,
            reason,
        });
        Ok(walked)
    };
    loop {
        let at = walked.end;
        if let Limit::At(limit) = limit
            && at >= limit
        {
            return Ok(walked);
        }
        if at >= len || len - at < HEADER_BYTES as u64 {
            return match limit {
                Limit::DataEnd if reader.first_nonzero(at, len)?.is_none() => Ok(walked),
                Limit::DataEnd => bad(walked, "the file ends inside a frame header".into()),
                Limit::At(limit) => bad(walked, format!("the file ends before offset {limit}")),
            };
        }
        let mut header_bytes = [0; HEADER_BYTES];
        header_bytes.copy_from_slice(reader.get(at, HEADER_BYTES)?);
        if header_bytes == [0; HEADER_BYTES] {
            return match limit {
                Limit::DataEnd => match reader.first_nonzero(at, len)? {
                    None => Ok(walked),
                    Some(z) => bad(
                        walked,
                        format!("a zeroed frame header is followed by data at offset {z}"),
                    ),
                },
                Limit::At(_) => bad(walked, "a zeroed frame header where a frame should be".into()),
            };
        }
        let header = RawHeader::parse(&header_bytes);
        if !header.is_consistent() {
            return bad(walked, "the frame header fails its length check".into());
        }
        let body_len = header.body_len;
        let body_end = at + HEADER_BYTES as u64 + u64::from(body_len);
        if body_end > len {
            return bad(
                walked,
                format!("the frame ({body_len} bytes) extends past the end of the file"),
            );
        }
        if let Limit::At(limit) = limit
            && frame_end(at, body_len) > limit
        {
            return bad(
                walked,
                format!(
                    "the frame ({body_len} bytes) extends past offset {limit}, where the index snapshot ends"
                ),
            );
        }
        let body = reader.get(at + HEADER_BYTES as u64, body_len as usize)?;
        if crc32c::crc32c(body) != header.crc {
            return bad(walked, "CRC mismatch".into());
        }
        let body_header = match decode_body_header(body) {
            Ok(body_header) => body_header,
            Err(reason) => return bad(walked, reason),
        };
        if body_header.first_position != walked.next {
            let reason = format!(
                "frame starts at position {}, expected {}",
                body_header.first_position, walked.next
            );
            return bad(walked, reason);
        }
        walked.next = body_header.end_position();
        walked.frames += 1;
        walked.end = frame_end(at, body_len);
    }
}

fn read_error(path: &Path, e: io::Error) -> StoreError {
    StoreError::io(format!("verifying {}", path.display()), e)
}

// ---------------------------------------------------------------- on open

/// The verification of the frames under the index snapshot, running on its
/// own thread while the snapshot loads: every segment but the last is
/// walked to its data end as soon as it starts; the last one up to where
/// the snapshot's coverage ends, once [`CoverCheck::last_segment_limit`]
/// says where that is.
pub(crate) struct CoverCheck {
    handle: Option<JoinHandle<Result<Vec<Walk>, StoreError>>>,
    last_limit: mpsc::Sender<Option<u64>>,
    cancel: Arc<StopSignal>,
    started: Instant,
}

impl Drop for CoverCheck {
    /// Open failed or needs no verification: the thread stops after the
    /// segment it is reading.
    fn drop(&mut self) {
        self.cancel.stop();
        let _ = self.last_limit.send(None);
    }
}

impl CoverCheck {
    /// Starts verifying `segments` (path, first position), in order: as
    /// fast as the disk reads them through the page cache, or, `paced`,
    /// at [`BACKGROUND_VERIFY_BYTES_PER_SECOND`] with direct I/O.
    pub fn spawn(segments: Vec<(PathBuf, Position)>, paced: bool) -> Result<Self, StoreError> {
        let (last_limit, limit_rx) = mpsc::channel();
        let cancel = Arc::new(StopSignal::default());
        let stop = cancel.clone();
        let handle = std::thread::Builder::new()
            .name("paycore-log-verify".into())
            .spawn(move || verify_segments(&segments, &limit_rx, &stop, paced))
            .map_err(|e| StoreError::io("starting the log verification thread", e))?;
        Ok(Self {
            handle: Some(handle),
            last_limit,
            cancel,
            started: Instant::now(),
        })
    }

    /// Where the snapshot's coverage ends in the last segment (`None`: the
    /// snapshot does not resume in the last segment, or is not used).
    pub fn last_segment_limit(&self, limit: Option<u64>) {
        let _ = self.last_limit.send(limit);
    }

    /// Waits for the verification and judges the frames the index covers
    /// (`segment_ends[o]`: where the index says segment `o`'s frames end):
    /// every segment before `resume_segment` whole, and `resume_segment` up
    /// to `resume_offset`. Returns the bytes verified.
    pub fn finish(
        mut self,
        segments: &[Arc<SegmentRef>],
        segment_ends: &[u64],
        resume_segment: u32,
        resume_offset: u64,
    ) -> Result<u64, StoreError> {
        let walks = self
            .handle
            .take()
            .ok_or_else(|| StoreError::Fatal("the log verification ran twice".into()))?
            .join()
            .map_err(|_| StoreError::Fatal("the log verification thread panicked".into()))??;
        let resume = resume_segment as usize;
        let mut verified = 0;
        for (ordinal, walked) in walks.iter().enumerate().take(resume + 1) {
            let segment = &segments[ordinal];
            let covered_end = if ordinal == resume {
                resume_offset
            } else {
                segment_ends.get(ordinal).copied().unwrap_or(0)
            };
            if let Some(bad) = &walked.bad
                && (ordinal < resume || bad.offset < covered_end)
            {
                return Err(corrupt(
                    &segment.path,
                    bad.offset,
                    bad.position,
                    bad.reason.clone(),
                ));
            }
            if walked.end < covered_end {
                return Err(corrupt(
                    &segment.path,
                    walked.end,
                    walked.next,
                    format!(
                        "the frames end at offset {}, but the index snapshot has frames up to offset {covered_end}",
                        walked.end
                    ),
                ));
            }
            if ordinal < resume {
                let following = &segments[ordinal + 1];
                if following.first_position != walked.next {
                    return Err(corrupt(
                        &following.path,
                        0,
                        walked.next,
                        format!(
                            "segment starts at position {}, but the log before it ends at position {}",
                            following.first_position, walked.next
                        ),
                    ));
                }
            }
            verified += covered_end;
        }
        if walks.len() <= resume {
            return Err(StoreError::Fatal(
                "the log verification stopped before the end of the index snapshot".into(),
            ));
        }
        tracing::info!(
            bytes = verified,
            segments = resume + 1,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "verified the checksum of every frame under the index snapshot"
        );
        Ok(verified)
    }
}

/// The verification of the frames under the index with what judging it
/// needs, once the index is loaded.
pub(crate) struct PendingCoverCheck {
    pub cover: CoverCheck,
    pub segments: Vec<Arc<SegmentRef>>,
    /// Where the index says each segment before `resume_segment` ends.
    pub segment_ends: Vec<u64>,
    pub resume_segment: u32,
    pub resume_offset: u64,
}

impl PendingCoverCheck {
    /// Waits for the verification; see [`CoverCheck::finish`].
    pub fn finish(self) -> Result<u64, StoreError> {
        self.cover.finish(
            &self.segments,
            &self.segment_ends,
            self.resume_segment,
            self.resume_offset,
        )
    }
}

/// The frames under the index verified beside serving
/// ([`super::CoveredFrames::VerifyInBackground`]): what the verification
/// finds is reported as damage, like what a read or the scrub finds.
pub(crate) struct BackgroundVerification {
    cancel: Arc<StopSignal>,
    /// Set by [`Self::stop`]: an unfinished verification is then no finding.
    closing: Arc<AtomicBool>,
}

/// Where the verification of the frames under the log's index stands
/// ([`super::LogStore::covered_frames_check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoveredFramesCheck {
    /// Done before the open returned (or there was nothing to verify).
    BeforeOpen,
    /// Going on beside serving.
    Running,
    /// Every frame under the index read back intact.
    Verified { bytes: u64 },
    /// Damage was found (reported through [`super::LogStore::damage`]), or
    /// the segments could not be read: the reason.
    Failed(String),
    /// The store closed before the verification ended.
    Stopped,
}

impl BackgroundVerification {
    pub fn start(
        shared: Arc<Shared>,
        pending: PendingCoverCheck,
        state: watch::Sender<CoveredFramesCheck>,
    ) -> Result<Self, StoreError> {
        let cancel = pending.cover.cancel.clone();
        let closing = Arc::new(AtomicBool::new(false));
        let stopped = closing.clone();
        state.send_replace(CoveredFramesCheck::Running);
        std::thread::Builder::new()
            .name("paycore-log-verify-wait".into())
            .spawn(move || {
                let outcome = match pending.finish() {
                    Ok(bytes) => CoveredFramesCheck::Verified { bytes },
                    Err(_) if stopped.load(Ordering::SeqCst) => CoveredFramesCheck::Stopped,
                    Err(error) => {
                        match Damage::of(&error) {
                            Some(damage) => shared.report_damage(&damage, "the verification after open"),
                            None => tracing::error!(
                                error = %error,
                                "the frames under the log index could not be verified"
                            ),
                        }
                        CoveredFramesCheck::Failed(error.to_string())
                    }
                };
                state.send_replace(outcome);
            })
            .map_err(|e| StoreError::io("starting the log verification thread", e))?;
        Ok(Self { cancel, closing })
    }

    /// Asks the verification to stop (at its next paced read); does not
    /// wait for it (it only reads).
    pub fn stop(self) {
        self.closing.store(true, Ordering::SeqCst);
        self.cancel.stop();
    }
}

/// The pace of the verification beside serving: it reads the disk, not
/// the page cache, and slowly enough that the reads of requests (random,
/// small, cold after a start) keep their latency; 6.6 GB of log take about
/// two minutes.
pub(crate) const BACKGROUND_VERIFY_BYTES_PER_SECOND: u64 = 64 << 20;

fn verify_segments(
    segments: &[(PathBuf, Position)],
    last_limit: &mpsc::Receiver<Option<u64>>,
    cancel: &Arc<StopSignal>,
    paced: bool,
) -> Result<Vec<Walk>, StoreError> {
    let mut walks = Vec::with_capacity(segments.len());
    let pacer = paced.then(|| Pacer {
        bytes_per_second: BACKGROUND_VERIFY_BYTES_PER_SECOND,
        started: Instant::now(),
        bytes: 0,
        stop: cancel.clone(),
    });
    let chunk = if paced { SCRUB_CHUNK } else { OPEN_CHUNK };
    let mut state = ReadState::new(chunk, pacer);
    for (ordinal, (path, first_position)) in segments.iter().enumerate() {
        let limit = if ordinal + 1 < segments.len() {
            Limit::DataEnd
        } else {
            match last_limit.recv() {
                Ok(Some(limit)) => Limit::At(limit),
                Ok(None) | Err(_) => break,
            }
        };
        if cancel.is_stopped() {
            break;
        }
        let mut reader = SegmentReader::open(&mut state, path, paced).map_err(|e| read_error(path, e))?;
        if !paced {
            // Read ahead generously. (Its own file description: the store's
            // reads keep their normal read-ahead.)
            let _ = rustix::fs::fadvise(&reader.file, 0, None, rustix::fs::Advice::Sequential);
        }
        let walked = match walk(&mut reader, *first_position, limit) {
            Ok(walked) => walked,
            Err(ReadError::Io(e)) => return Err(read_error(path, e)),
            Err(ReadError::Stopped) => break,
        };
        let bad = walked.bad.is_some();
        walks.push(walked);
        if bad {
            break;
        }
    }
    Ok(walks)
}

// ---------------------------------------------------------------- scrub

/// The running scrub thread.
#[derive(Debug)]
pub(crate) struct Scrubber {
    stop: Arc<StopSignal>,
    handle: JoinHandle<()>,
}

impl Scrubber {
    pub fn start(shared: Arc<Shared>, options: ScrubOptions) -> Result<Self, StoreError> {
        let stop = Arc::new(StopSignal::default());
        let signal = stop.clone();
        let handle = std::thread::Builder::new()
            .name("paycore-log-scrub".into())
            .spawn(move || scrub(&shared, options, &signal))
            .map_err(|e| StoreError::io("starting the log scrub thread", e))?;
        Ok(Self { stop, handle })
    }

    pub fn stop(self) {
        self.stop.stop();
        let _ = self.handle.join();
    }
}

/// One segment as a scrub pass sees it.
struct Target {
    segment: Arc<SegmentRef>,
    /// End of its committed frames when the pass started.
    end: u64,
    /// A later segment exists: nothing is written here any more, and the
    /// rest of the file after its frames must be zeros.
    sealed: bool,
}

fn targets(shared: &Shared) -> Result<Vec<Target>, StoreError> {
    let index = shared.index.read();
    let count = index.segments.len();
    index
        .segments
        .iter()
        .enumerate()
        .map(|(ordinal, segment)| {
            Ok(Target {
                segment: segment.clone(),
                end: index.segment_end(ordinal)?,
                sealed: ordinal + 1 < count,
            })
        })
        .collect()
}

fn scrub(shared: &Shared, options: ScrubOptions, stop: &Arc<StopSignal>) {
    tracing::info!(
        bytes_per_second = options.bytes_per_second,
        interval_s = options.interval.as_secs_f64(),
        "log scrub started"
    );
    let mut next_pass = Instant::now() + options.interval;
    loop {
        if stop.sleep(next_pass.saturating_duration_since(Instant::now())) {
            return;
        }
        let started = Instant::now();
        next_pass = started + options.interval;
        let pacer = Pacer {
            bytes_per_second: options.bytes_per_second,
            started,
            bytes: 0,
            stop: stop.clone(),
        };
        let mut state = ReadState::new(SCRUB_CHUNK, Some(pacer));
        let targets = match targets(shared) {
            Ok(targets) => targets,
            Err(e) => {
                tracing::warn!(error = %e, "the log scrub cannot read the index; pass skipped");
                if let Some(damage) = Damage::of(&e) {
                    shared.report_damage(&damage, "the log scrub");
                }
                continue;
            }
        };
        let (mut frames, mut damaged, mut direct) = (0, 0, true);
        for target in &targets {
            if target.end == 0 && !target.sealed {
                continue;
            }
            match scrub_segment(&mut state, target) {
                Ok((Ok(walked), direct_io)) => {
                    frames += walked.frames;
                    direct &= direct_io;
                }
                Ok((Err(damage), _)) => {
                    damaged += 1;
                    shared.report_damage(&damage, "the log scrub");
                }
                Err(ReadError::Stopped) => return,
                Err(ReadError::Io(e)) => {
                    tracing::warn!(segment = %target.segment.path.display(), error = %e, "the log scrub cannot open a segment");
                }
            }
        }
        tracing::info!(
            segments = targets.len(),
            frames,
            bytes = state.bytes_read,
            damaged,
            elapsed_s = started.elapsed().as_secs_f64(),
            direct_io = direct,
            "log scrub pass done"
        );
        shared.scrub_passes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Re-reads one segment's committed frames; also says whether the reads
/// bypassed the page cache. A read error inside the frames is damage (a bad
/// sector is what a scrub is for); one opening the file is not.
fn scrub_segment(state: &mut ReadState, target: &Target) -> Result<(Result<Walk, Damage>, bool), ReadError> {
    let path = &target.segment.path;
    let mut reader = SegmentReader::open(state, path, true)?;
    let limit = if target.sealed {
        Limit::DataEnd
    } else {
        reader.read_up_to(target.end);
        Limit::At(target.end)
    };
    let damage = |offset, position, reason| Damage {
        file: path.clone(),
        offset,
        position,
        reason,
    };
    let walked = match walk(&mut reader, target.segment.first_position, limit) {
        Ok(walked) => walked,
        Err(ReadError::Io(e)) => {
            let found = damage(reader.last_read, None, format!("read error: {e}"));
            return Ok((Err(found), reader.direct));
        }
        Err(stopped) => return Err(stopped),
    };
    let found = if let Some(bad) = &walked.bad {
        Err(damage(bad.offset, Some(bad.position), bad.reason.clone()))
    } else if walked.end < target.end {
        Err(damage(
            walked.end,
            Some(walked.next),
            format!(
                "the frames end at offset {}, but the index has frames up to offset {}",
                walked.end, target.end
            ),
        ))
    } else {
        Ok(walked)
    };
    Ok((found, reader.direct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_bound_is_the_wait_plus_one_pass() {
        let options = ScrubOptions {
            bytes_per_second: 1 << 20,
            interval: Duration::from_secs(60),
        };
        // 10 s passes: at most 60 s until the next starts, then 10 s.
        assert_eq!(options.detection_bound(10 << 20), Duration::from_secs(70));
        // 100 s passes run back to back.
        assert_eq!(options.detection_bound(100 << 20), Duration::from_secs(200));
    }
}
