//! The indexer threads: one writes frozen memtables as runs, in order; the
//! other merges runs in the background so that a lookup consults few of
//! them. Both swap their result into the index under its write lock, so a
//! reader sees the old pieces or the new one, never a gap.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::StoreError;

use super::Shared;
use super::index::{Index, Memtable, SegmentRef};
use super::runs::{self, Run, RunEnd, RunFrame, StreamRecord, stream_hash};

/// Runs of one level merged at a time (and the ratio between levels).
const FANOUT: u64 = 4;
/// Pause before writing a run again after a failure.
const RETRY: Duration = Duration::from_secs(1);

pub(crate) const INDEX_DIR: &str = "index";

/// Writes `memtable` as the run `[start, end)` in `dir`.
pub(crate) fn write_memtable(
    dir: &Path,
    segments: &[Arc<SegmentRef>],
    memtable: &Memtable,
) -> io::Result<Run> {
    let end_point = memtable
        .end_point
        .ok_or_else(|| io::Error::other("an empty memtable has no run"))?;
    let segment_first = |ordinal: u32| {
        segments
            .get(ordinal as usize)
            .map(|s| s.first_position)
            .ok_or_else(|| io::Error::other("a frame names an unknown segment"))
    };
    let mut records: Vec<StreamRecord> = memtable
        .streams
        .iter()
        .map(|(name, entry)| StreamRecord {
            hash: stream_hash(name.as_str()),
            name: name.as_str().to_owned(),
            first_version: entry.first_version,
            positions: entry.positions.clone(),
        })
        .collect();
    runs::sort_records(&mut records);
    let frames = memtable
        .frames
        .iter()
        .map(|f| {
            Ok(RunFrame {
                first_position: f.first_position,
                segment: segment_first(f.segment)?,
                offset: f.offset,
                body_len: f.body_len,
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    let run_end = RunEnd {
        segment: segment_first(end_point.segment)?,
        offset: end_point.offset,
        last_hash: end_point.last_hash,
        last_recorded_at: end_point.last_recorded_at,
    };
    runs::write(dir, memtable.start, memtable.end, run_end, &records, &frames)
}

/// The running indexer threads.
#[derive(Debug)]
pub(crate) struct Indexer {
    flush_tx: Option<Sender<Arc<Memtable>>>,
    flusher: Option<JoinHandle<()>>,
    merge_tx: Option<Sender<()>>,
    merger: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Indexer {
    pub fn start(shared: Arc<Shared>) -> Result<Self, StoreError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (merge_tx, merge_rx) = mpsc::channel();
        let merger = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("paycore-log-merge".into())
                .spawn(move || merge_loop(&shared, &merge_rx, &stop))
                .map_err(|e| StoreError::io("starting the log index merge thread", e))?
        };
        let (flush_tx, flush_rx) = mpsc::channel();
        let flusher = {
            let merge_tx = merge_tx.clone();
            std::thread::Builder::new()
                .name("paycore-log-index".into())
                .spawn(move || flush_loop(&shared, &flush_rx, &merge_tx))
                .map_err(|e| StoreError::io("starting the log index thread", e))?
        };
        // Runs left unmerged by the last process (or a fresh rebuild).
        let _ = merge_tx.send(());
        Ok(Self {
            flush_tx: Some(flush_tx),
            flusher: Some(flusher),
            merge_tx: Some(merge_tx),
            merger: Some(merger),
            stop,
        })
    }

    /// Queues a frozen memtable (already in `Index::frozen`).
    pub fn flush(&self, memtable: Arc<Memtable>) {
        if let Some(tx) = &self.flush_tx {
            let _ = tx.send(memtable);
        }
    }

    /// Writes every queued memtable, abandons a merge under way, and joins
    /// the threads.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.flush_tx.take();
        if let Some(handle) = self.flusher.take() {
            let _ = handle.join();
        }
        self.merge_tx.take();
        if let Some(handle) = self.merger.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.finish();
    }
}

fn flush_loop(shared: &Shared, rx: &Receiver<Arc<Memtable>>, merge: &Sender<()>) {
    let dir = shared.dir.join(INDEX_DIR);
    while let Ok(memtable) = rx.recv() {
        loop {
            let segments = shared.index.read().segments.clone();
            match write_memtable(&dir, &segments, &memtable) {
                Ok(run) => {
                    {
                        let mut index = shared.index.write();
                        debug_assert!(index.frozen.front().is_some_and(|m| Arc::ptr_eq(m, &memtable)));
                        index.frozen.pop_front();
                        index.runs.push(Arc::new(run));
                    }
                    shared.flushed.notify_all();
                    let _ = merge.send(());
                    break;
                }
                Err(e) => {
                    // Derived data: the events stay indexed in memory (and
                    // a restart scans them again); try again shortly.
                    tracing::warn!(error = %e, start = memtable.start, end = memtable.end, "cannot write a log index run");
                    if shared.closed.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(RETRY);
                }
            }
        }
    }
}

/// The level of a run of `events`: 0 up to `FANOUT` base units, etc.
fn level(events: u64, base: u64) -> u32 {
    let mut units = events / base.max(1);
    let mut level = 0;
    while units >= FANOUT {
        units /= FANOUT;
        level += 1;
    }
    level
}

/// The oldest `FANOUT` runs of the lowest level that has `FANOUT` adjacent
/// runs, if any.
pub(crate) fn pick(index: &Index, base: u64) -> Option<Vec<Arc<Run>>> {
    let levels: Vec<u32> = index.runs.iter().map(|r| level(r.end - r.start, base)).collect();
    let mut best: Option<(u32, usize)> = None;
    let mut i = 0;
    while i < levels.len() {
        let mut j = i;
        while j < levels.len() && levels[j] == levels[i] {
            j += 1;
        }
        if (j - i) as u64 >= FANOUT && best.is_none_or(|(l, _)| levels[i] < l) {
            best = Some((levels[i], i));
        }
        i = j;
    }
    let (_, at) = best?;
    Some(index.runs[at..at + FANOUT as usize].to_vec())
}

fn merge_loop(shared: &Shared, rx: &Receiver<()>, stop: &AtomicBool) {
    let dir = shared.dir.join(INDEX_DIR);
    let base = shared.options.index_flush_events.max(1);
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while !stop.load(Ordering::SeqCst) {
            let Some(inputs) = pick(&shared.index.read(), base) else {
                break;
            };
            let refs: Vec<&Run> = inputs.iter().map(|r| r.as_ref()).collect();
            let started = std::time::Instant::now();
            match runs::merge(&dir, &refs, &|| stop.load(Ordering::SeqCst)) {
                Ok(Some(merged)) => {
                    let (start, end) = (merged.start, merged.end);
                    let swapped = {
                        let mut index = shared.index.write();
                        let at = index.runs.iter().position(|r| Arc::ptr_eq(r, &inputs[0]));
                        match at {
                            Some(at)
                                if index.runs.len() >= at + inputs.len()
                                    && inputs
                                        .iter()
                                        .zip(&index.runs[at..])
                                        .all(|(a, b)| Arc::ptr_eq(a, b)) =>
                            {
                                index.runs.splice(at..at + inputs.len(), [Arc::new(merged)]);
                                true
                            }
                            _ => false,
                        }
                    };
                    if swapped {
                        remove_files(inputs.iter().map(|r| r.path.clone()));
                        tracing::debug!(
                            start,
                            end,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "log index runs merged"
                        );
                    } else {
                        remove_files([dir.join(runs::file_name(start, end))].into_iter());
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot merge log index runs");
                    // Try again on the next flush (or in a minute).
                    break;
                }
            }
        }
    }
}

/// Deletes runs that a merge replaced. Readers that still hold them keep
/// reading through their open files.
fn remove_files(paths: impl Iterator<Item = PathBuf>) {
    for path in paths {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a merged log index run");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_grow_by_the_fanout() {
        assert_eq!(level(1, 100), 0);
        assert_eq!(level(399, 100), 0);
        assert_eq!(level(400, 100), 1);
        assert_eq!(level(1_600, 100), 2);
    }
}
