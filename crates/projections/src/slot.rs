//! What the follower and the rebuild jobs know of a projection without
//! naming its type, and how a batch of `$all` is applied to projections'
//! rows.

use paycore_domain::Event;
use paycore_store::RecordedEvent;
use redb::{ReadTransaction, WriteTransaction};

use crate::ProjectionError;
use crate::db::{self, Checkpoint, ModelError, Namespace, Tables};
use crate::models::{Applied, Projection};
use crate::overlay::Layer;
use crate::rows::{LazyStored, Locations, Pending, RowsMut, Stored};

/// An event of `$all` and its decoded form.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub recorded: RecordedEvent,
    pub event: Event,
    /// Where the stream name's category ends: found once here rather than
    /// by every projection for every event.
    category_len: usize,
}

impl Decoded {
    fn new(recorded: RecordedEvent, event: Event) -> Self {
        let category_len = recorded.stream.category().len();
        Self {
            recorded,
            event,
            category_len,
        }
    }

    fn category(&self) -> &str {
        &self.recorded.stream.as_str()[..self.category_len]
    }

    /// The part after the first `-` (empty when there is none).
    fn stream_id(&self) -> &str {
        self.recorded
            .stream
            .as_str()
            .get(self.category_len + 1..)
            .unwrap_or("")
    }
}

/// Decodes a batch read from `$all`; an event this build cannot read stops
/// the projections (serving stale models beats guessing; the audit names it).
pub(crate) fn decode(batch: Vec<RecordedEvent>) -> Result<Vec<Decoded>, ProjectionError> {
    decode_into(batch, Vec::new())
}

/// [`decode`] into `decoded` (emptied first), reusing its memory.
pub(crate) fn decode_into(
    batch: Vec<RecordedEvent>,
    mut decoded: Vec<Decoded>,
) -> Result<Vec<Decoded>, ProjectionError> {
    decoded.clear();
    decoded.reserve(batch.len());
    for recorded in batch {
        match Event::decode(&recorded.event_type, recorded.schema_version, &recorded.payload) {
            Ok(event) => decoded.push(Decoded::new(recorded, event)),
            Err(error) => {
                return Err(ProjectionError::Decode {
                    position: recorded.position,
                    reason: error.to_string(),
                });
            }
        }
    }
    Ok(decoded)
}

/// What every projection offers without naming its type.
#[derive(Clone, Copy, Debug)]
pub struct ProjectionInfo {
    pub name: &'static str,
    pub version: u32,
    /// The earlier version whose rows this one continues (see
    /// `Projection::CONTINUES`).
    pub continues: Option<u32>,
    pub description: &'static str,
    pub(crate) apply: fn(&mut RowsMut<'_>, &Applied<'_>) -> Result<(), ModelError>,
}

impl ProjectionInfo {
    pub(crate) fn of<P: Projection>() -> Self {
        Self {
            name: P::NAME,
            version: P::VERSION,
            continues: P::CONTINUES,
            description: P::DESCRIPTION,
            apply: P::apply,
        }
    }

    pub(crate) fn tables(&self, namespace: Namespace) -> Tables {
        Tables::of(namespace, self.name)
    }

    /// Whether this version goes on from rows and a checkpoint `version`
    /// wrote: its own, or the earlier one it continues.
    pub fn continues_from(&self, version: u32) -> bool {
        version == self.version || Some(version) == self.continues
    }

    /// `checkpoint`, of this version or the earlier one it continues, as
    /// this version's: the rows go on as they are.
    pub(crate) fn continued(&self, checkpoint: Checkpoint) -> Checkpoint {
        debug_assert!(self.continues_from(checkpoint.version));
        Checkpoint {
            version: self.version,
            ..checkpoint
        }
    }

    /// Where a projection of this version starts: nothing applied.
    pub(crate) fn empty(&self) -> Checkpoint {
        Checkpoint {
            version: self.version,
            next_position: 0,
            last_hash: None,
        }
    }
}

/// A projection and how far it has applied `$all`.
pub(crate) type Progress = (ProjectionInfo, Checkpoint);

/// The smallest checkpoint: events below it are applied by every one.
pub(crate) fn lowest(progress: &[Progress]) -> paycore_store::Position {
    progress
        .iter()
        .map(|(_, checkpoint)| checkpoint.next_position)
        .min()
        .unwrap_or_default()
}

/// Applies to one projection the events of `batch` it has not applied
/// yet, through `rows`, advancing `checkpoint`; answers whether it moved.
fn apply_to(
    info: &ProjectionInfo,
    checkpoint: &mut Checkpoint,
    rows: &mut RowsMut<'_>,
    batch: &[Decoded],
) -> Result<bool, ModelError> {
    // Positions grow through a batch: find where this projection starts
    // by bisection rather than testing each event it has already applied.
    let from = checkpoint.next_position;
    let start = batch.partition_point(|decoded| decoded.recorded.position < from);
    let mut changed = false;
    for decoded in &batch[start..] {
        let recorded = &decoded.recorded;
        debug_assert_eq!(
            recorded.position, checkpoint.next_position,
            "events are applied in order, once"
        );
        (info.apply)(
            rows,
            &Applied {
                category: decoded.category(),
                stream_id: decoded.stream_id(),
                event: &decoded.event,
            },
        )?;
        checkpoint.next_position = recorded.position + 1;
        checkpoint.last_hash = Some(recorded.hash);
        changed = true;
    }
    Ok(changed)
}

/// Applies to each projection the events of `batch` it has not applied
/// yet, and records its new checkpoint, all inside `txn`: the rows and the
/// checkpoint commit together (rebuilds). Answers the new checkpoints.
pub(crate) fn apply_batch(
    txn: &WriteTransaction,
    namespace: Namespace,
    progress: &[Progress],
    batch: &[Decoded],
) -> Result<Vec<Progress>, ModelError> {
    let mut updated = Vec::with_capacity(progress.len());
    for &(info, mut checkpoint) in progress {
        let tables = info.tables(namespace);
        let mut pending = Pending::default();
        let changed = {
            let stored = Stored::open_in(txn, &tables)?;
            let mut located = Locations::default();
            let mut rows = RowsMut::new(&mut pending, [None, None], &stored, &mut located);
            apply_to(&info, &mut checkpoint, &mut rows, batch)?
        };
        pending.write(txn, &tables)?;
        if changed {
            db::write_checkpoint(txn, &tables, &checkpoint)?;
        }
        updated.push((info, checkpoint));
    }
    Ok(updated)
}

/// A batch of the follower this long or longer is folded into its
/// projections side by side ([`side_by_side`]): a `CreateTransfers` call
/// of thousands of transfers is one append of three times as many events,
/// and its answer waits for them. Shorter ones are folded one projection
/// after the other, since a thread costs more than they take.
pub(crate) const SIDE_BY_SIDE_EVENTS: usize = 1_024;

/// Applies `batch` in memory to the projections of `active` (their tables
/// in `namespace`): answers each projection's changes, made over `active`
/// over `frozen` (being written) over the store as `txn` shows it, and its
/// new checkpoint (the follower). `located` holds each projection's rows'
/// locations found in earlier batches. Up to `threads` projections fold
/// side by side.
pub(crate) fn apply_in_memory(
    txn: &ReadTransaction,
    namespace: Namespace,
    active: &Layer,
    frozen: Option<&Layer>,
    batch: &[Decoded],
    located: &mut [Locations],
    threads: usize,
) -> Result<(Vec<Pending>, Vec<Progress>), ModelError> {
    debug_assert_eq!(located.len(), active.progress.len());
    let mut progress = active.progress.clone();
    let jobs = progress.iter_mut().zip(located.iter_mut()).enumerate();
    let changes = side_by_side(jobs, threads, |(index, ((info, checkpoint), located))| {
        let stored = LazyStored::new(txn, namespace, info.name);
        let under = [
            active.pending.get(index),
            frozen.and_then(|frozen| frozen.pending.get(index)),
        ];
        let mut pending = Pending::default();
        let mut rows = RowsMut::new(&mut pending, under, &stored, located).deferring_index_items();
        apply_to(info, checkpoint, &mut rows, batch)?;
        Ok(pending)
    })?;
    Ok((changes, progress))
}

/// Applies `batch` to the projections of `layer` (their tables in
/// `namespace`) straight into its changes, over `frozen` (being written)
/// over the store as `txn` shows it (a rebuild gathering many batches).
/// Up to `threads` projections fold side by side.
///
/// Unlike [`apply_in_memory`], a batch's changes are not gathered apart:
/// no query reads `layer`, and a batch that fails fails the rebuild, whose
/// changes are then dropped unwritten. So the chunks a batch changes are
/// changed in place, not copied once per batch and merged.
pub(crate) fn apply_gathering(
    txn: &ReadTransaction,
    namespace: Namespace,
    layer: &mut Layer,
    frozen: Option<&Layer>,
    batch: &[Decoded],
    located: &mut [Locations],
    threads: usize,
) -> Result<(), ModelError> {
    let Layer {
        pending,
        progress,
        moved,
    } = layer;
    debug_assert_eq!(located.len(), progress.len());
    let jobs = progress
        .iter_mut()
        .zip(pending.iter_mut())
        .zip(located.iter_mut())
        .enumerate();
    let changed = side_by_side(
        jobs,
        threads,
        |(index, (((info, checkpoint), pending), located))| {
            let stored = LazyStored::new(txn, namespace, info.name);
            let under = [frozen.and_then(|frozen| frozen.pending.get(index)), None];
            let mut rows = RowsMut::new(pending, under, &stored, located);
            apply_to(info, checkpoint, &mut rows, batch)
        },
    )?;
    *moved |= changed.into_iter().any(|changed| changed);
    Ok(())
}

/// Folds each of `jobs` (one per projection: its rows, changes and
/// checkpoint are its own) with `fold`, up to `threads` side by side, each
/// thread taking the next job not taken (the registry lists the costliest
/// projection, transactions, early); answers the outcomes in the jobs'
/// order, or the first error.
fn side_by_side<J: Send, R: Send>(
    jobs: impl ExactSizeIterator<Item = J> + Send,
    threads: usize,
    fold: impl Fn(J) -> Result<R, ModelError> + Sync,
) -> Result<Vec<R>, ModelError> {
    let count = jobs.len();
    let helpers = threads.min(count).saturating_sub(1);
    if helpers == 0 {
        return jobs.map(fold).collect();
    }
    let jobs = parking_lot::Mutex::new(jobs.enumerate());
    let work = || -> Result<Vec<(usize, R)>, ModelError> {
        let mut done = Vec::new();
        // The lock is held only to take a job, not while folding it.
        while let Some((index, job)) = { jobs.lock().next() } {
            done.push((index, fold(job)?));
        }
        Ok(done)
    };
    let outcomes = std::thread::scope(|scope| {
        let spawned: Vec<_> = (0..helpers).map(|_| scope.spawn(work)).collect();
        let mut outcomes = vec![work()];
        for helper in spawned {
            // A panic while folding is a bug: surface it rather than hide it.
            outcomes.push(
                helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        outcomes
    });
    let mut done = Vec::with_capacity(count);
    for outcome in outcomes {
        done.extend(outcome?);
    }
    done.sort_unstable_by_key(|(index, _)| *index);
    debug_assert_eq!(done.len(), count, "every job folded once");
    Ok(done.into_iter().map(|(_, outcome)| outcome).collect())
}
