//! The embedded log's metrics, recorded through the `metrics` facade (a
//! no-op until a binary installs an exporter, as `paycore serve
//! --metrics-listen` does).

/// Time of each group's `fdatasync` (one per group commit), in seconds.
pub const FSYNC_SECONDS: &str = "paycore_log_fsync_seconds";
/// Time from a group's first write to its acknowledgement: write, fsync,
/// index, in seconds.
pub const GROUP_COMMIT_SECONDS: &str = "paycore_log_group_commit_seconds";
/// Events appended to the log.
pub const APPENDED_EVENTS: &str = "paycore_log_appended_events_total";
/// Bytes of frames appended to the log.
pub const APPENDED_BYTES: &str = "paycore_log_appended_bytes_total";
/// Appends (requests) per group commit.
pub const GROUP_APPENDS: &str = "paycore_log_group_appends";
/// Events in the log (its next position).
pub const EVENTS: &str = "paycore_log_events";

/// Registers the help texts with the installed exporter (and the
/// unlabelled counters at 0).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        FSYNC_SECONDS,
        Unit::Seconds,
        "fdatasync of one group commit of the embedded log"
    );
    describe_histogram!(
        GROUP_COMMIT_SECONDS,
        Unit::Seconds,
        "one group commit of the embedded log: write, fdatasync and index, before the acknowledgements"
    );
    describe_counter!(APPENDED_EVENTS, "events appended to the embedded log");
    describe_counter!(
        APPENDED_BYTES,
        Unit::Bytes,
        "bytes of frames appended to the embedded log"
    );
    describe_histogram!(
        GROUP_APPENDS,
        "appends (atomic requests) written by one group commit"
    );
    describe_gauge!(EVENTS, "events in the embedded log (its next position)");
    // Present from the start at 0, so rates and dashboards need no first event.
    metrics::counter!(APPENDED_EVENTS).increment(0);
    metrics::counter!(APPENDED_BYTES).increment(0);
}
