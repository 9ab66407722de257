//! The pure domain of paycore: identifiers, money, metadata, the aggregates
//! as deciders, and their events. No I/O, no async, no clock, no randomness:
//! time and new IDs arrive inside commands.
//!
//! Layers, bottom up (`tests/layers.rs` checks the imports): the `kernel`,
//! the decision context (`context`), one module per aggregate family, and
//! the routers `command`, `aggregate` and `events` with the views beside
//! them (`history`, `footprint`, `sandbox_network`). Each family owns its
//! commands, events, states, deciders and `evolve`; the routers wrap them.
//! See ARCHITECTURE.md.
//!
//! Every module has one path (`kernel::money`, `project::api_key`,
//! `customer::identity`); the root re-exports only the items used
//! everywhere.

pub mod kernel;

pub mod account;
pub mod aggregate;
pub mod aggregated_account;
pub mod aggregation_connection;
pub mod aggregation_import;
pub mod bank_account;
pub mod bank_payin;
pub mod bank_payout;
pub mod card;
pub mod card_payin;
pub mod command;
pub mod consumer;
mod context;
pub mod customer;
pub mod deployment;
pub mod events;
pub mod file;
mod footprint;
pub mod fx_rate;
pub mod history;
pub mod institution;
pub mod project;
pub mod sandbox_network;
pub mod transfer;

pub use aggregate::Aggregate;
pub use command::{Command, CommandEnvelope, Decision, IdempotencyKey, Lookup, decide};
pub use events::{Event, ResourceRef, Transaction, TransactionKind};
pub use history::{AccountHistory, AsOf};
pub use kernel::error::{DomainError, FieldViolation, Refusal, Violations};
pub use kernel::id::*;
pub use kernel::meta::Meta;
pub use kernel::money::{Currency, Money};
pub use kernel::stream::StreamRef;
pub use kernel::time::Timestamp;
pub use project::Environment;
