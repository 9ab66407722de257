//! Catch-up-then-live subscription to `$all`, for any backend.
//!
//! The subscription reads `$all` in batches from its next position while that
//! position is below the store's committed watermark
//! ([`EventStore::committed`]), and waits for the watermark to move once it has
//! caught up. Because it only ever asks for "the events from `next` on" and
//! checks that the answer starts exactly at `next` and is dense, it cannot skip
//! or repeat an event, whatever interleaving of commits and reads happens;
//! and because it never reads at or past the watermark, a backend whose
//! positions can become visible out of order only has to keep the watermark
//! below the first gap.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use crate::api::{EventStore, Position, RecordedEvent};
use crate::error::StoreError;

/// Default number of events fetched per read while catching up.
pub const DEFAULT_SUBSCRIPTION_BATCH: usize = 1024;

/// A subscription to `$all` from a position; see the module docs.
///
/// Errors leave the subscription where it was: calling `next` again after an
/// error retries from the same position.
pub struct Subscription<S: ?Sized + EventStore = dyn EventStore> {
    store: Arc<S>,
    committed: watch::Receiver<Position>,
    next: Position,
    buffered: VecDeque<RecordedEvent>,
    batch: usize,
}

/// Subscribes to `$all` from position `from` (inclusive): the first event
/// returned is the one at `from`, once it exists. Works with
/// `Arc<dyn EventStore>` as well as with a concrete `Arc<S>`.
pub fn subscribe_all<S: ?Sized + EventStore>(store: Arc<S>, from: Position) -> Subscription<S> {
    let committed = store.committed();
    Subscription {
        store,
        committed,
        next: from,
        buffered: VecDeque::new(),
        batch: DEFAULT_SUBSCRIPTION_BATCH,
    }
}

impl<S: ?Sized + EventStore> Subscription<S> {
    /// Sets how many events one catch-up read fetches (at least 1).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// The position of the next event this subscription returns.
    pub fn position(&self) -> Position {
        self.next - self.buffered.len() as Position
    }

    /// The next event, waiting for it if the subscriber has caught up.
    ///
    /// Returns [`StoreError::Closed`] once every event committed before the
    /// store closed has been returned.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Ok(event);
            }
            let batch = self.fetch(self.batch).await?;
            self.buffered.extend(batch);
        }
    }

    /// Between 1 and `max` consecutive events (`max` 0 counts as 1), waiting
    /// for at least one if the subscriber has caught up. Projections use this
    /// to apply events in batches.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = max.max(1);
        if !self.buffered.is_empty() {
            let take = max.min(self.buffered.len());
            return Ok(self.buffered.drain(..take).collect());
        }
        self.fetch(max).await
    }

    /// Reads the next non-empty run of events below the watermark.
    async fn fetch(&mut self, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        loop {
            let committed = *self.committed.borrow_and_update();
            if self.next < committed {
                let want = usize::try_from(committed - self.next)
                    .unwrap_or(usize::MAX)
                    .min(max);
                let mut events = self.store.read_all(self.next, want).await?;
                events.truncate(want);
                check_dense(self.next, &events)?;
                self.next += events.len() as Position;
                return Ok(events);
            }
            if self.committed.changed().await.is_err() {
                // The store is gone. Deliver whatever was committed before
                // that, then report the end.
                if self.next < *self.committed.borrow() {
                    continue;
                }
                return Err(StoreError::Closed);
            }
        }
    }
}

fn check_dense(from: Position, events: &[RecordedEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::Unavailable(format!(
            "$all has no event at position {from}, although it is below the committed watermark"
        )));
    }
    for (expected, event) in (from..).zip(events) {
        if event.position != expected {
            return Err(StoreError::Unavailable(format!(
                "$all read from {from} returned position {} where {expected} was expected",
                event.position
            )));
        }
    }
    Ok(())
}

impl<S: ?Sized + EventStore> fmt::Debug for Subscription<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("store", &self.store)
            .field("position", &self.position())
            .field("buffered", &self.buffered.len())
            .finish()
    }
}
