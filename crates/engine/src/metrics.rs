//! The engine's metrics, recorded through the `metrics` facade (a no-op
//! until a binary installs an exporter).

/// Commands decided into one batch (one atomic append).
pub const BATCH_COMMANDS: &str = "paycore_engine_batch_commands";
/// Time from sending a batch's append to its answer from the store.
pub const APPEND_SECONDS: &str = "paycore_engine_append_seconds";
/// Batches another writer's append conflicted with (PostgreSQL with
/// several servers): their commands are decided again one by one.
pub const CONFLICTED_BATCHES: &str = "paycore_engine_conflicted_batches_total";
/// A command decided again after a conflict (optimistic-concurrency
/// retries).
pub const COMMAND_RETRIES: &str = "paycore_engine_command_retries_total";
/// Lookups of a stream's state in the cache that found it.
pub const CACHE_HITS: &str = "paycore_engine_state_cache_hits_total";
/// Lookups that missed it (the state is then loaded from the store).
pub const CACHE_MISSES: &str = "paycore_engine_state_cache_misses_total";
/// States evicted for the budget.
pub const CACHE_EVICTIONS: &str = "paycore_engine_state_cache_evictions_total";
/// What the cache holds now, and its budget.
pub const CACHE_BYTES: &str = "paycore_engine_state_cache_bytes";
pub const CACHE_ENTRIES: &str = "paycore_engine_state_cache_entries";
pub const CACHE_BUDGET_BYTES: &str = "paycore_engine_state_cache_budget_bytes";

/// Registers the help texts with the installed exporter (and the
/// unlabelled counters at 0).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        BATCH_COMMANDS,
        "commands decided into one batch, written by one atomic append"
    );
    describe_histogram!(
        APPEND_SECONDS,
        Unit::Seconds,
        "one batch's append, from sending it to the store's answer (durable)"
    );
    describe_counter!(
        CONFLICTED_BATCHES,
        "batches whose append met another server's write; their commands are decided again"
    );
    describe_counter!(
        COMMAND_RETRIES,
        "commands decided again after a conflict with another server"
    );
    describe_counter!(CACHE_HITS, "state lookups the engine's cache answered");
    describe_counter!(
        CACHE_MISSES,
        "state lookups the cache missed (loaded from snapshots and the log)"
    );
    describe_counter!(
        CACHE_EVICTIONS,
        "states evicted from the engine's cache for its budget"
    );
    describe_gauge!(
        CACHE_BYTES,
        Unit::Bytes,
        "memory the engine's cache holds, as it weighs states"
    );
    describe_gauge!(CACHE_ENTRIES, "states in the engine's cache");
    describe_gauge!(
        CACHE_BUDGET_BYTES,
        Unit::Bytes,
        "the engine's cache budget (--state-cache-bytes)"
    );
    // Present from the start at 0, so rates and dashboards need no first event.
    metrics::counter!(CONFLICTED_BATCHES).increment(0);
    metrics::counter!(COMMAND_RETRIES).increment(0);
    metrics::counter!(CACHE_HITS).increment(0);
    metrics::counter!(CACHE_MISSES).increment(0);
    metrics::counter!(CACHE_EVICTIONS).increment(0);
}

/// Sets the cache gauges (sampled by the binary, not on every lookup).
pub fn record_cache_usage(usage: &crate::StateCacheUsage) {
    metrics::gauge!(CACHE_BYTES).set(usage.bytes as f64);
    metrics::gauge!(CACHE_ENTRIES).set(usage.entries as f64);
    metrics::gauge!(CACHE_BUDGET_BYTES).set(usage.budget as f64);
}
