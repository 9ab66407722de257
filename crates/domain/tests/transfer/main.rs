//! The transfer family: transfers in one currency (`same_currency`, the
//! ledger world) and across currencies (`across_currencies`, the money
//! world).
//!
//! Commands run against the mini event store of `common` (the worlds are
//! `common::ledger` and `common::money`), which checks the engine's contract: the decider reads
//! and writes only the streams that `streams()` and `dependent_streams()`
//! (asked until it names nothing new) declare, and a refused command
//! changes nothing.

#![allow(clippy::unwrap_used)]

use paycore_domain::events::*;
use paycore_domain::kernel::fx::{self, Quote};
use paycore_domain::*;

mod across_currencies;
#[path = "../common/mod.rs"]
mod common;
mod same_currency;
mod two_phase;

use common::money::*;
use common::*;
