//! The shared kernel at the bottom of the domain: identifiers, money, meta,
//! time, errors, exchange-rate arithmetic, stream names and the value types they are built from, and
//! idempotency keys. It imports nothing else of the crate (`tests/layers.rs`
//! checks), so every family and router can build on it.

pub mod bank;
pub mod consumer_name;
pub mod date;
pub mod error;
pub mod fx;
pub mod iban;
pub mod id;
pub mod idempotency;
pub mod institution;
pub mod meta;
pub mod money;
pub mod stream;
pub mod time;
