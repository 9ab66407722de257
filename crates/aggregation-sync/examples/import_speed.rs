//! How long a default import of the sandbox's `user_good` takes: 5
//! accounts, 5 years, on the embedded durable log (fsync on). Run it in
//! release mode:
//!
//! ```text
//! cargo run --release -p paycore-aggregation-sync --example import_speed
//! ```
//!
//! It prints the import's time (from `refresh` until the job finished),
//! with the per-institution pacing off (the sandbox answers in-process)
//! and with the default pacing (20 calls a second).
#![allow(clippy::unwrap_used)] // a measurement: a failure is the measurement failing

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use paycore_aggregation_sync::SyncerConfig;
use paycore_bank_connector::SandboxBank;
use paycore_store::{EventStore, LogOptions, LogStore};

async fn measure(label: &str, config: SyncerConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LogStore::open(dir.path(), LogOptions::default()).unwrap();
    let store: Arc<dyn EventStore> = Arc::new(store);
    let world = World::on(store).await;
    let syncer = world.syncer_with(Arc::new(SandboxBank::new()), world.clock.clone(), config);
    let connection = world.signed_in(&syncer, RHEINBANK, "user_good").await;
    world.enable_all(connection).await;
    world.clock.advance(3_600 * SECOND);
    let start = Instant::now();
    let import = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    let elapsed = start.elapsed();
    let import = world.import(import).await;
    let recorded = world.recorded(connection).await;
    println!(
        "{label}: {:?} in {:.3} s: {} transactions recorded ({} seen) on {} accounts, {} batches",
        import.status,
        elapsed.as_secs_f64(),
        import.progress.transactions_recorded,
        import.progress.transactions_seen,
        import.progress.accounts_done,
        recorded.batches,
    );
}

#[tokio::main]
async fn main() {
    let unpaced = SyncerConfig {
        bank_calls_per_second: 0,
        ..SyncerConfig::default()
    };
    measure("default import, no pacing", unpaced).await;
    measure("default import, 20 calls/s", SyncerConfig::default()).await;
}
