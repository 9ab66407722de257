//! The conformance suite against the embedded log, one fresh data directory
//! per test. Small segments, so that several tests roll over; run three
//! times: with the default recent-events cache, with none (every read goes to
//! the files) and with a tiny one (reads mix both).

use std::sync::Arc;

use paycore_store::{LogOptions, LogStore};

async fn fresh(cache_events: usize) -> (Arc<LogStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions {
        segment_bytes: 64 << 10,
        cache_events,
        ..LogOptions::default()
    };
    let (store, _report) = LogStore::open(dir.path(), options).expect("open");
    (Arc::new(store), dir)
}

paycore_store::conformance_tests!(fresh(LogOptions::default().cache_events));

mod uncached {
    paycore_store::conformance_tests!(super::fresh(0));
}

mod tiny_cache {
    paycore_store::conformance_tests!(super::fresh(3));
}
