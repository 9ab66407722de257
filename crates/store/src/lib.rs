//! paycore's append-only event store.
//!
//! [`EventStore`] is the contract; [`MemoryStore`] (tests) and [`LogStore`]
//! (the embedded durable log, the default) implement it. The same
//! conformance suite (`conformance` feature) runs against every backend.
//!
//! - [`subscribe_all`]: catch-up-then-live subscription to `$all`, for any backend.
//! - [`chain_hash`], [`verify_chain`], [`ChainVerifier`]: the tamper-evident hash chain.
//! - [`log`]: the embedded log's file format and recovery rules.
//! - [`AggregateSnapshots`] ([`MemorySnapshots`], [`DirSnapshots`]): snapshots
//!   of aggregate state, a cache beside the log.

mod api;
mod chain;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod log;
mod memory;
pub mod metrics;
mod request;
mod snapshots;
mod subscription;

pub use api::*;
pub use chain::{ChainError, ChainVerifier, MAX_FIELD_BYTES, chain_hash, verify_chain};
pub use error::StoreError;
pub use log::{LogOptions, LogStore, OpenReport, SyncMode};
pub use memory::MemoryStore;
pub use request::MAX_REQUEST_BYTES;
#[cfg(feature = "conformance")]
pub use snapshots::conformance as snapshot_conformance;
pub use snapshots::{AggregateSnapshots, DirSnapshots, MemorySnapshots, StoredSnapshot};
pub use subscription::{DEFAULT_SUBSCRIPTION_BATCH, Subscription, subscribe_all};
