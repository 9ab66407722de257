//! The read models' metrics: how far each projection is behind the log.
//! Sampled by the binary from [`crate::ReadModels::status`].

use std::collections::HashMap;
use std::time::Instant;

use crate::ProjectionStatus;

/// Events of the log a projection has not applied yet, by `projection`.
pub const LAG_EVENTS: &str = "paycore_projection_lag_events";
/// How long a projection has been behind the log (0 while it is caught
/// up), by `projection`, in seconds.
pub const LAG_SECONDS: &str = "paycore_projection_lag_seconds";
/// How long a command's answer waited for the read models to apply its
/// events (read-your-writes), in seconds.
pub const WAIT_SECONDS: &str = "paycore_read_models_wait_seconds";
/// How long the follower took to apply one batch of the log to the served
/// read models, in seconds.
pub const APPLY_SECONDS: &str = "paycore_read_models_apply_seconds";
/// Events in each batch the follower applied.
pub const APPLY_EVENTS: &str = "paycore_read_models_apply_events";

/// Registers the help texts with the installed exporter.
pub fn describe() {
    use metrics::{Unit, describe_gauge, describe_histogram};
    describe_gauge!(
        LAG_EVENTS,
        "events of the log a projection (read model) has not applied yet"
    );
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "how long a projection has been behind the log; 0 while it is caught up"
    );
    describe_histogram!(
        WAIT_SECONDS,
        Unit::Seconds,
        "how long a command's answer waited for the read models to apply its events (read-your-writes)"
    );
    describe_histogram!(
        APPLY_SECONDS,
        Unit::Seconds,
        "how long the read models took to apply one batch of the log"
    );
    describe_histogram!(APPLY_EVENTS, "events in each batch the read models applied");
}

/// Remembers when each projection was last caught up, to turn samples of
/// its lag in events into a lag in seconds.
#[derive(Debug, Default)]
pub struct LagClock {
    caught_up_at: HashMap<&'static str, Instant>,
}

impl LagClock {
    /// Sets both gauges of every projection from `statuses`, sampled now.
    pub fn record(&mut self, statuses: &[ProjectionStatus]) {
        let now = Instant::now();
        for status in statuses {
            let labels = [("projection", status.name)];
            let lag = status.lag();
            let since = self.caught_up_at.entry(status.name).or_insert(now);
            if lag == 0 {
                *since = now;
            }
            metrics::gauge!(LAG_EVENTS, &labels).set(lag as f64);
            metrics::gauge!(LAG_SECONDS, &labels).set(now.duration_since(*since).as_secs_f64());
        }
    }
}
