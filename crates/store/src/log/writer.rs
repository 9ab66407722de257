//! The writer thread: group commit.
//!
//! One std thread owns the active segment. It takes the first queued request,
//! drains whatever else is queued (up to [`MAX_GROUP_REQUESTS`] /
//! [`MAX_GROUP_BYTES`]), checks every request's expectations in order (against
//! the index plus the earlier requests of the group), encodes the accepted
//! ones as one frame each into one buffer, writes it with one `pwrite`, makes
//! it durable with one `fdatasync`, publishes it to the index and the
//! committed watermark, and only then replies. A failed write or fsync is
//! never retried: the store turns fatal (see [`StoreError::Fatal`]).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use tokio::sync::{oneshot, watch};

use crate::api::{AppendRequest, AppendResult, ChainHash, Position, RecordedEvent, StreamName, Version};
use crate::error::StoreError;
use crate::request::{now_micros, plan};

use super::codec::{PendingFrame, encode_commit, seal};
use super::fsutil::{preallocate, segment_file_name, sync_dir};
use super::index::{EndPoint, FrameLoc, MAX_FROZEN, Memtable, SegmentRef};
use super::indexer::Indexer;
use super::{Shared, SyncMode};

/// Most requests committed by one fsync.
pub(crate) const MAX_GROUP_REQUESTS: usize = 4096;
/// Stop draining the queue once the group's estimated size reaches this.
pub(crate) const MAX_GROUP_BYTES: usize = 8 << 20;

pub(crate) type Reply = oneshot::Sender<Result<AppendResult, StoreError>>;

pub(crate) enum Msg {
    Append {
        request: AppendRequest,
        /// Upper bound of the encoded size, from `validate`.
        size: usize,
        reply: Reply,
        /// The caller's span (the engine's `append`): the group commit that
        /// makes the request durable is traced under it.
        span: tracing::Span,
    },
    Shutdown,
}

/// The segment the writer appends to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub file: File,
    pub ordinal: u32,
    pub path: PathBuf,
    /// Preallocated length: writes never go past it.
    pub allocated: u64,
    /// Where the next frame goes.
    pub end: u64,
}

/// What the writer needs from recovery.
#[derive(Debug)]
pub(crate) struct WriterState {
    pub active: ActiveSegment,
    pub next: Position,
    pub last_hash: ChainHash,
    pub last_recorded_at: i64,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Msg>,
    committed: watch::Sender<Position>,
    state: WriterState,
    /// Group buffer, reused.
    buf: Vec<u8>,
    /// The group's events on their way to the index cache, reused.
    events: Vec<RecordedEvent>,
    /// Events evicted from the cache, dropped after the index lock is released.
    evicted: Vec<RecordedEvent>,
    /// Stream heads as left by the accepted requests of the current group.
    overlay: HashMap<StreamName, Version>,
    /// Writes the frozen memtables as runs and merges runs.
    indexer: Indexer,
}

struct Accepted {
    request: AppendRequest,
    firsts: Vec<Version>,
    reply: Reply,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Msg>,
        committed: watch::Sender<Position>,
        state: WriterState,
        indexer: Indexer,
    ) -> Self {
        Self {
            shared,
            rx,
            committed,
            state,
            buf: Vec::new(),
            events: Vec::new(),
            evicted: Vec::new(),
            overlay: HashMap::new(),
            indexer,
        }
    }

    pub fn run(mut self) {
        let mut group = Vec::new();
        loop {
            let Ok(first) = self.rx.recv() else { break };
            let mut shutdown = false;
            let mut bytes = 0usize;
            match first {
                Msg::Shutdown => shutdown = true,
                Msg::Append {
                    request,
                    size,
                    reply,
                    span,
                } => {
                    bytes += size;
                    group.push((request, reply, span));
                }
            }
            while !shutdown && group.len() < MAX_GROUP_REQUESTS && bytes < MAX_GROUP_BYTES {
                match self.rx.try_recv() {
                    Ok(Msg::Append {
                        request,
                        size,
                        reply,
                        span,
                    }) => {
                        bytes += size;
                        group.push((request, reply, span));
                    }
                    Ok(Msg::Shutdown) => shutdown = true,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(&mut group);
            }
            if shutdown {
                break;
            }
        }
        self.finish();
    }

    fn commit_group(&mut self, group: &mut Vec<(AppendRequest, Reply, tracing::Span)>) {
        if let Some(reason) = self.shared.fatal.get() {
            for (_, reply, _) in group.drain(..) {
                let _ = reply.send(Err(StoreError::Fatal(reason.clone())));
            }
            return;
        }
        let span = group_commit_span(group);
        let _entered = span.enter();

        // 1. Expectations, in arrival order.
        self.overlay.clear();
        let mut accepted = Vec::with_capacity(group.len());
        {
            let index = self.shared.index.read();
            for (request, reply, _) in group.drain(..) {
                let overlay = &self.overlay;
                // A head the index cannot read fails the request (after
                // `plan`, which takes an infallible lookup).
                let lookup_error = std::cell::RefCell::new(None);
                let planned = plan(&request, |stream| {
                    overlay.get(stream).copied().or_else(|| {
                        index.head(stream.as_str()).unwrap_or_else(|e| {
                            lookup_error.borrow_mut().get_or_insert(e);
                            None
                        })
                    })
                });
                let planned = match lookup_error.into_inner() {
                    Some(e) => Err(e),
                    None => planned,
                };
                match planned {
                    Ok(firsts) => {
                        for (write, first) in request.writes.iter().zip(&firsts) {
                            self.overlay
                                .insert(write.stream.clone(), first + write.events.len() as u64 - 1);
                        }
                        accepted.push(Accepted {
                            request,
                            firsts,
                            reply,
                        });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
        if accepted.is_empty() {
            return;
        }

        // 2. Encode: positions, hashes, one frame per request.
        let recorded_at = now_micros(self.state.last_recorded_at);
        let group_first = self.state.next;
        let mut position = group_first;
        let mut hash = self.state.last_hash;
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let mut frames: Vec<PendingFrame> = Vec::with_capacity(accepted.len());
        let mut replies = Vec::with_capacity(accepted.len());
        // (stream, first version, first position, count) per write, for the index.
        let mut writes: Vec<(StreamName, Version, Position, u64)> = Vec::new();
        self.buf.clear();
        for Accepted {
            request,
            firsts,
            reply,
        } in accepted
        {
            let first_position = position;
            let mut versions = Vec::with_capacity(firsts.len());
            let mut at = position;
            for (write, first) in request.writes.iter().zip(&firsts) {
                let n = write.events.len() as u64;
                versions.push(first + n - 1);
                writes.push((write.stream.clone(), *first, at, n));
                at += n;
            }
            let frame = encode_commit(
                &mut self.buf,
                request,
                &firsts,
                group_first,
                first_position,
                recorded_at,
                &mut hash,
                &mut events,
            );
            position = at;
            frames.push(frame);
            replies.push((
                reply,
                AppendResult {
                    first_position,
                    last_position: position - 1,
                    versions,
                    recorded_at_micros: recorded_at,
                },
            ));
        }

        // 3. Room: a group never spans segments.
        let len = self.buf.len() as u64;
        let room = if self.state.active.end + len > self.state.active.allocated {
            self.make_room(len)
        } else {
            Ok(())
        };
        if let Err(e) = room {
            tracing::warn!(error = %e, "append refused");
            for (reply, _) in replies {
                let _ = reply.send(Err(clone_error(&e)));
            }
            return;
        }
        let base = self.state.active.end;
        seal(&mut self.buf, &frames, base + len);
        let started = std::time::Instant::now();

        // 4. Write and sync. Never retried: after a failed fsync the page
        // cache may hold data the disk does not, so nothing can be trusted.
        if let Err(reason) = self.write_and_sync(base) {
            tracing::error!(
                segment = %self.state.active.path.display(),
                offset = base,
                "{reason}; the event store stops accepting appends"
            );
            let _ = self.shared.fatal.set(reason.clone());
            for (reply, _) in replies {
                let _ = reply.send(Err(StoreError::Fatal(reason.clone())));
            }
            return;
        }

        // 5. Publish, then acknowledge.
        let frozen = {
            let mut index = self.shared.index.write();
            let segment = self.state.active.ordinal;
            let tail = &mut index.tail;
            for frame in &frames {
                tail.frames.push(FrameLoc {
                    first_position: frame.first_position,
                    offset: base + frame.start as u64,
                    segment,
                    body_len: frame.body_len,
                });
            }
            for (stream, first_version, first, n) in writes {
                tail.push_events(&stream, first_version, first, n);
            }
            tail.end = position;
            tail.end_point = Some(EndPoint {
                segment,
                offset: base + len,
                last_hash: hash,
                last_recorded_at: recorded_at,
            });
            index.tail_end = (segment, base + len);
            index.next = position;
            index.push_recent(&mut events, &mut self.evicted);
            self.freeze_if_full(&mut index)
        };
        self.events = events;
        self.evicted.clear();
        self.state.active.end += len;
        self.state.next = position;
        self.state.last_hash = hash;
        self.state.last_recorded_at = recorded_at;
        self.committed.send_replace(position);
        span.record("first_position", group_first);
        span.record("last_position", position.saturating_sub(1));
        span.record("events", position - group_first);
        span.record("bytes", len);
        metrics::histogram!(crate::metrics::GROUP_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(crate::metrics::GROUP_APPENDS).record(replies.len() as f64);
        metrics::counter!(crate::metrics::APPENDED_EVENTS).increment(position - group_first);
        metrics::counter!(crate::metrics::APPENDED_BYTES).increment(len);
        metrics::gauge!(crate::metrics::EVENTS).set(position as f64);
        for (reply, result) in replies {
            // A caller that went away still got its events committed.
            let _ = reply.send(Ok(result));
        }
        if let Some(frozen) = frozen {
            self.indexer.flush(frozen);
            self.wait_for_indexer();
        }
    }

    /// Freezes the tail of the index once it holds `index_flush_events`
    /// (always at a group boundary): it is queued for the indexer, which
    /// writes it as a run.
    fn freeze_if_full(&self, index: &mut super::index::Index) -> Option<Arc<Memtable>> {
        let every = self.shared.options.index_flush_events;
        if every == 0 || index.tail.events() < every {
            return None;
        }
        Some(freeze(index))
    }

    /// Appends wait while the indexer is more than [`MAX_FROZEN`] memtables
    /// behind: the memory of the index stays bounded. Writing a run is far
    /// faster than appending its events, so this only happens when the disk
    /// stalls.
    fn wait_for_indexer(&self) {
        let mut guard = self.shared.flush_lock.lock();
        while self.shared.index.read().frozen.len() > MAX_FROZEN {
            self.shared
                .flushed
                .wait_for(&mut guard, std::time::Duration::from_millis(100));
        }
    }

    fn write_and_sync(&mut self, base: u64) -> Result<(), String> {
        #[cfg(test)]
        if self
            .shared
            .faults
            .fail_write
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            // Half a group reaches the file, as a real failure might leave it.
            let half = &self.buf[..self.buf.len() / 2];
            let _ = self.state.active.file.write_all_at(half, base);
            return Err("write failed: injected fault".into());
        }
        tracing::debug_span!(target: "paycore::store", "write", bytes = self.buf.len(), offset = base)
            .in_scope(|| self.state.active.file.write_all_at(&self.buf, base))
            .map_err(|e| format!("write failed: {e}"))?;
        if self.shared.options.sync == SyncMode::Fsync {
            let _fsync = tracing::debug_span!(target: "paycore::store", "fsync").entered();
            let syncing = std::time::Instant::now();
            self.state
                .active
                .file
                .sync_data()
                .map_err(|e| format!("fdatasync failed: {e}"))?;
            metrics::histogram!(crate::metrics::FSYNC_SECONDS).record(syncing.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Makes `len` bytes of preallocated room for the next group: grows the
    /// active segment while it is empty, otherwise starts a new segment
    /// named after the group's first position. Nothing is written when this
    /// fails, and the store stays usable.
    fn make_room(&mut self, len: u64) -> Result<(), StoreError> {
        let options = &self.shared.options;
        let size = options.segment_bytes.max(len);
        let active = &mut self.state.active;
        #[cfg(test)]
        if self
            .shared
            .faults
            .fail_preallocate
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StoreError::DiskFull("injected fault".into()));
        }
        if active.end == 0 {
            preallocate(&active.file, size).map_err(|e| e.into_store_error(&active.path))?;
            active.allocated = size;
            return Ok(());
        }
        let first_position = self.state.next;
        let segments_dir = self.shared.segments_dir();
        let (file, path) = create_segment(&segments_dir, first_position, size)?;
        let reader =
            File::open(&path).map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        let ordinal = {
            let mut index = self.shared.index.write();
            index.segments.push(Arc::new(SegmentRef {
                first_position,
                path: path.clone(),
                file: reader,
            }));
            (index.segments.len() - 1) as u32
        };
        tracing::debug!(segment = %path.display(), "new segment");
        self.state.active = ActiveSegment {
            file,
            ordinal,
            path,
            allocated: size,
            end: 0,
        };
        Ok(())
    }

    /// Clean stop: the queue is closed; the tail of the index is written
    /// as a run, so the next open scans nothing.
    fn finish(&mut self) {
        if self.shared.fatal.get().is_none() {
            let frozen = {
                let mut index = self.shared.index.write();
                (index.tail.events() > 0).then(|| freeze(&mut index))
            };
            if let Some(frozen) = frozen {
                self.indexer.flush(frozen);
            }
        }
        self.indexer.finish();
    }
}

/// Moves the tail of `index` to its frozen memtables.
pub(crate) fn freeze(index: &mut super::index::Index) -> Arc<Memtable> {
    let next = index.tail.end;
    let frozen = Arc::new(std::mem::replace(&mut index.tail, Memtable::new(next)));
    index.frozen.push_back(frozen.clone());
    frozen
}

/// Creates and preallocates a segment, then makes its directory entry durable.
/// On failure the file is removed again and nothing was written.
pub(crate) fn create_segment(
    segments_dir: &std::path::Path,
    first_position: Position,
    size: u64,
) -> Result<(File, PathBuf), StoreError> {
    let path = segments_dir.join(segment_file_name(first_position));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
                StoreError::DiskFull(format!("cannot create {}: {e}", path.display()))
            } else {
                StoreError::io(format!("creating {}", path.display()), e)
            }
        })?;
    if let Err(e) = preallocate(&file, size) {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(e.into_store_error(&path));
    }
    if let Err(e) = sync_dir(segments_dir) {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(StoreError::io(format!("syncing {}", segments_dir.display()), e));
    }
    Ok((file, path))
}

/// `StoreError` is not `Clone` (it holds an `io::Error`); the errors
/// `make_room` returns are re-created for each waiting caller.
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::DiskFull(m) => StoreError::DiskFull(m.clone()),
        StoreError::Io { context, source } => StoreError::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Most appends a `group_commit` span links to besides its parent.
const MAX_GROUP_LINKS: usize = 64;

/// The span of one group commit (checks, encoding, one write, one fsync):
/// a child of the first request's span, linked to the others' (up to
/// [`MAX_GROUP_LINKS`]), since one fsync makes them all durable.
fn group_commit_span(group: &[(AppendRequest, Reply, tracing::Span)]) -> tracing::Span {
    let parent = group.first().map(|(_, _, span)| span.id());
    let span = tracing::debug_span!(
        target: "paycore::store",
        parent: parent.flatten(),
        "group_commit",
        appends = group.len(),
        events = tracing::field::Empty,
        bytes = tracing::field::Empty,
        first_position = tracing::field::Empty,
        last_position = tracing::field::Empty,
    );
    for (_, _, request_span) in group.iter().skip(1).take(MAX_GROUP_LINKS) {
        span.follows_from(request_span);
    }
    span
}
