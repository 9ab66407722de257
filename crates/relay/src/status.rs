//! What the relay is doing and how far behind the log it is: the lag an
//! operator watches (logged every `report_every` today; the `watch` is what
//! a metrics exporter reads).

use std::sync::Arc;
use std::time::Duration;

use paycore_store::{EventStore, Position};
use tokio::sync::watch;

/// The relay's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayState {
    /// Not connected yet.
    Starting,
    /// Another server of the shared store publishes (PostgreSQL election).
    Standby,
    /// Connected and publishing (or caught up and waiting for events).
    Publishing,
    /// The last session failed; the relay tries again after a pause.
    Retrying { error: String },
}

/// A snapshot of the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayStatus {
    pub state: RelayState,
    /// Every event before this position is in the stream (or is never
    /// published); `None` until the relay has read the stream once.
    pub published_before: Option<Position>,
}

impl RelayStatus {
    pub(crate) fn starting() -> Self {
        Self {
            state: RelayState::Starting,
            published_before: None,
        }
    }

    /// Positions of the log not yet in the stream, given the log's head (the
    /// number of committed events): `head - published_before`. Counted in
    /// positions, so events that are never published count until the relay
    /// has passed them. `None` while unknown.
    pub fn lag(&self, head: Position) -> Option<u64> {
        self.published_before
            .map(|published| head.saturating_sub(published))
    }
}

/// Logs the lag every `every`: at info while behind or not publishing, at
/// debug when caught up, so a healthy relay stays quiet.
pub(crate) async fn report(
    store: Arc<dyn EventStore>,
    status: watch::Receiver<RelayStatus>,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let head = *store.committed().borrow();
        let current = status.borrow().clone();
        let lag = current.lag(head);
        match (&current.state, lag) {
            (RelayState::Standby, _) => {
                tracing::debug!("relay: another server publishes the events");
            }
            (RelayState::Publishing, Some(0)) => {
                tracing::debug!(head, lag_events = 0, "relay caught up");
            }
            (state, lag) => tracing::info!(
                head,
                published_before = current.published_before,
                lag_events = lag,
                ?state,
                "relay lag"
            ),
        }
    }
}
