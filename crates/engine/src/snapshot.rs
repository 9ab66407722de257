//! Snapshots of aggregate state, so that loading a stream with a long
//! history folds only its tail.
//!
//! A snapshot is a cache (see `paycore_store::AggregateSnapshots`): it is
//! used only if it was written in this engine's [`AGGREGATE_SNAPSHOT_FORMAT`]
//! and the event at its version in the store carries the chain hash recorded
//! with it (so it was folded from this very log). Anything else — no
//! snapshot, an unreadable one, another format, another log — means folding
//! from version 0, which gives the same state: deleting snapshots changes no
//! answer. A command never fails because of a snapshot.
//!
//! Snapshots are written by one background task, fed through a bounded
//! queue that drops requests when full, so the write path never waits for
//! one: after the decider commits a state whose stream crossed a multiple
//! of [`EngineConfig::snapshot_every`] events, and after a load that had to
//! fold at least that many events.
//!
//! [`EngineConfig::snapshot_every`]: crate::EngineConfig::snapshot_every

use std::sync::Arc;

use paycore_domain::{Aggregate, StreamRef};
use paycore_store::{
    AggregateSnapshots, ChainHash, EventStore, ReadDirection, StoreError, StoredSnapshot, StreamName, Version,
};
use tokio::sync::{mpsc, oneshot};

use crate::cache::Cached;

/// The encoding and fold a snapshot's state was made with: postcard of
/// [`Aggregate`] as folded by `Aggregate::evolve` (crates/domain/src/aggregate.rs).
///
/// **Bump it whenever `Aggregate` (or any type inside it) changes shape, or
/// `evolve` folds any event differently.** Snapshots of another format are
/// then ignored (the streams are folded from the start and snapshotted
/// anew), where a stale one would silently yield the old fold's state. A
/// test (`snapshot_encoding_is_that_of_the_format`) fails when the encoding
/// of sample states changes; a change of the fold it cannot see.
pub const AGGREGATE_SNAPSHOT_FORMAT: u32 = 2;

/// Snapshot requests waiting for the writer; more are dropped (a later
/// crossing or load asks again).
const QUEUE: usize = 1_024;

enum Job {
    Save(StreamRef, Cached),
    Remove(StreamName),
    Flush(oneshot::Sender<()>),
}

/// Reads snapshots for loads and queues snapshot writes.
#[derive(Debug)]
pub(crate) struct Snapshotter {
    snapshots: Arc<dyn AggregateSnapshots>,
    every: u64,
    jobs: mpsc::Sender<Job>,
}

/// A snapshot that may be the start of a load: its state, and the hash the
/// event at its version must have.
pub(crate) struct Restored {
    pub cached: Cached,
    pub event_hash: ChainHash,
}

impl Snapshotter {
    /// Starts the writer task on the current runtime. It ends when the last
    /// `Snapshotter` handle is dropped.
    pub fn start(
        store: Arc<dyn EventStore>,
        snapshots: Arc<dyn AggregateSnapshots>,
        every: u64,
    ) -> Arc<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_snapshots(store, snapshots.clone(), queue));
        Arc::new(Self {
            snapshots,
            every,
            jobs,
        })
    }

    /// Whether a committed stream whose last version is now `version`
    /// crossed a snapshot boundary with its latest event.
    pub fn is_boundary(&self, version: Version) -> bool {
        self.every > 0 && (version + 1).is_multiple_of(self.every)
    }

    /// The stream's snapshot, if there is one this engine can start from.
    pub async fn restore(&self, stream: &StreamName) -> Option<Restored> {
        let snapshot = match self.snapshots.load(stream).await {
            Ok(snapshot) => snapshot?,
            Err(error) => {
                tracing::warn!(%stream, %error, "reading an aggregate snapshot failed; folding the stream instead");
                return None;
            }
        };
        if snapshot.format != AGGREGATE_SNAPSHOT_FORMAT {
            // Written before an upgrade (replaced by the next save) or by a
            // newer binary during a rolling one (left alone).
            tracing::debug!(
                %stream,
                format = snapshot.format,
                ours = AGGREGATE_SNAPSHOT_FORMAT,
                "aggregate snapshot of another format ignored"
            );
            return None;
        }
        let Some(state) = decode_state(&snapshot.state) else {
            tracing::warn!(%stream, "aggregate snapshot does not decode; ignored and removed");
            self.remove(stream.clone());
            return None;
        };
        Some(Restored {
            cached: Cached {
                state: Arc::new(state),
                version: Some(snapshot.version),
            },
            event_hash: snapshot.event_hash,
        })
    }

    /// Asks for a snapshot of `cached` after a load that folded it from
    /// `started` (the snapshot's version, or `None`: from the start), if that
    /// took at least `every` events.
    pub fn after_load(&self, stream: &StreamRef, started: Option<Version>, cached: &Cached) {
        let folded = match (cached.version, started) {
            (Some(last), Some(start)) => last.saturating_sub(start),
            (Some(last), None) => last + 1,
            (None, _) => 0,
        };
        if self.every > 0 && folded >= self.every {
            self.save(stream.clone(), cached.clone());
        }
    }

    /// Queues a snapshot of a committed state; dropped if the queue is full.
    pub fn save(&self, stream: StreamRef, cached: Cached) {
        if self.jobs.try_send(Job::Save(stream, cached)).is_err() {
            tracing::debug!("aggregate snapshot queue full; snapshot skipped");
        }
    }

    /// Queues the removal of a snapshot that does not fit the log.
    pub fn remove(&self, stream: StreamName) {
        if self.jobs.try_send(Job::Remove(stream)).is_err() {
            tracing::debug!("aggregate snapshot queue full; removal skipped");
        }
    }

    /// Returns once every request queued before it is done (or dropped).
    pub async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        if self.jobs.send(Job::Flush(done)).await.is_ok() {
            let _ = finished.await;
        }
    }
}

/// Why a snapshot was not written. Only ever logged.
#[derive(Debug, thiserror::Error)]
enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("encoding the state: {0}")]
    Encode(#[from] postcard::Error),
    #[error("the store has no event at version {0}")]
    NoEvent(Version),
}

async fn write_snapshots(
    store: Arc<dyn EventStore>,
    snapshots: Arc<dyn AggregateSnapshots>,
    mut queue: mpsc::Receiver<Job>,
) {
    while let Some(job) = queue.recv().await {
        match job {
            Job::Save(stream, cached) => {
                let name = StreamName::from(stream.name());
                if let Err(error) = save(store.as_ref(), snapshots.as_ref(), &name, &cached).await {
                    tracing::warn!(stream = %name, %error, "writing an aggregate snapshot failed; it is only a cache");
                }
            }
            Job::Remove(name) => {
                if let Err(error) = snapshots.remove(&name).await {
                    tracing::warn!(stream = %name, %error, "removing an unusable aggregate snapshot failed");
                }
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Saves `cached` (a committed state) with the hash of its last event,
/// read back from the store: the append does not report hashes, and reading
/// it here also proves the state's version is in this log.
async fn save(
    store: &dyn EventStore,
    snapshots: &dyn AggregateSnapshots,
    name: &StreamName,
    cached: &Cached,
) -> Result<(), SnapshotError> {
    let Some(version) = cached.version else {
        return Ok(());
    };
    let events = store
        .read_stream(name, version, ReadDirection::Forward, 1)
        .await?;
    let event = events
        .first()
        .filter(|event| event.version == version)
        .ok_or(SnapshotError::NoEvent(version))?;
    let snapshot = StoredSnapshot {
        version,
        event_hash: event.hash,
        format: AGGREGATE_SNAPSHOT_FORMAT,
        state: postcard::to_stdvec(&*cached.state)?.into(),
    };
    snapshots.save(name, snapshot).await?;
    Ok(())
}

/// The state, if `bytes` are exactly one encoded [`Aggregate`]. Public
/// (hidden) for the fuzzers of `paycore-fuzz` only.
pub fn decode_state(bytes: &[u8]) -> Option<Aggregate> {
    match postcard::take_from_bytes::<Aggregate>(bytes) {
        Ok((state, [])) => Some(state),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use paycore_domain::aggregate::{Account, ProjectBalance, Transfer};
    use paycore_domain::transfer::TransferStatus;
    use paycore_domain::{AccountId, Currency, Meta, Money, ProjectId, Timestamp, TransactionId, TransferId};
    use sha2::{Digest, Sha256};
    use uuid::Uuid;

    use super::*;

    fn samples() -> Vec<Aggregate> {
        let project_id = ProjectId::from_uuid(Uuid::from_u128(1));
        let account = |n: u128| AccountId::from_uuid(Uuid::from_u128(n));
        let mut violations = paycore_domain::Violations::new();
        let meta = Meta::parse([("k".to_owned(), "v".to_owned())], "meta", &mut violations).unwrap();
        vec![
            Aggregate::Empty,
            Aggregate::Account(Account {
                id: account(2),
                project_id,
                customer_id: None,
                balance: Money::new(-12_345, Currency::EUR),
                pending_debits: Money::new(100, Currency::EUR),
                pending_credits: Money::zero(Currency::EUR),
                allow_negative_balance: true,
                meta: meta.clone(),
                created_at: Timestamp::from_micros(1_700_000_000_000_000),
                last_transaction: Some(TransactionId::from_uuid(Uuid::from_u128(3))),
            }),
            Aggregate::ProjectBalance(ProjectBalance {
                total: Money::new(99, Currency::USD),
            }),
            Aggregate::Transfer(Transfer {
                id: TransferId::from_uuid(Uuid::from_u128(4)),
                project_id,
                source_account_id: account(2),
                destination_account_id: account(5),
                source_transaction_id: TransactionId::from_uuid(Uuid::from_u128(6)),
                destination_transaction_id: TransactionId::from_uuid(Uuid::from_u128(7)),
                value: Money::new(500, Currency::EUR),
                meta,
                created_at: Timestamp::from_micros(1_700_000_000_000_001),
                exchange: None,
                status: TransferStatus::Pending {
                    expires_at: Timestamp::from_micros(1_700_000_060_000_000),
                },
            }),
        ]
    }

    #[test]
    fn states_round_trip_and_trailing_bytes_are_refused() {
        for state in samples() {
            let bytes = postcard::to_stdvec(&state).unwrap();
            assert_eq!(decode_state(&bytes), Some(state));
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode_state(&longer), None);
        }
        assert_eq!(decode_state(&[0xFF, 0xFF, 0xFF]), None);
    }

    /// If this fails, the encoding of `Aggregate` changed: bump
    /// `AGGREGATE_SNAPSHOT_FORMAT`, then update the fingerprint here.
    #[test]
    fn snapshot_encoding_is_that_of_the_format() {
        let mut digest = Sha256::new();
        for state in samples() {
            digest.update(postcard::to_stdvec(&state).unwrap());
        }
        let fingerprint: String = digest.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            (AGGREGATE_SNAPSHOT_FORMAT, fingerprint.as_str()),
            (2, "e839afc5f26442fc"),
            "the encoding of Aggregate changed: bump AGGREGATE_SNAPSHOT_FORMAT and update this fingerprint"
        );
    }
}
