//! Test helpers: every test gets its own schema, migrated, and dropped again
//! when its guard is dropped, so parallel test processes never collide.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use paycore_store_postgres::{PgOptions, PgStore};

#[allow(unused_imports)] // each test file uses its own part
pub use paycore_store_postgres::testing::{SchemaGuard, database_url, execute, unique_schema};

/// Options for a test store on `schema`: a small pool, a fast head poll and
/// an application name of its own (so a test can kill exactly its
/// connections).
pub fn options(schema: &str) -> PgOptions {
    PgOptions {
        pool_size: 4,
        application_name: Some(format!("paycore-test-{}", uuid::Uuid::now_v7().simple())),
        poll_interval: Duration::from_millis(100),
        operation_timeout: Duration::from_secs(20),
        ..PgOptions::with_schema(schema)
    }
}

/// A store of the test's schema, with the test options.
pub trait StoreOf {
    async fn store(&self) -> Arc<PgStore>;
}

impl StoreOf for SchemaGuard {
    async fn store(&self) -> Arc<PgStore> {
        Arc::new(
            PgStore::connect(&self.url, options(&self.schema))
                .await
                .expect("connect"),
        )
    }
}

/// A fresh store on a fresh schema; the guard drops the schema after the
/// store is dropped (conformance factory).
pub async fn fresh_store() -> (Arc<PgStore>, SchemaGuard) {
    let guard = SchemaGuard::new().await;
    let store = guard.store().await;
    (store, guard)
}
