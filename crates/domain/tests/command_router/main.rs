//! The command router: the idempotency key's record around every family's
//! decision, and the streams named through other streams
//! (`dependent_streams`).
//!
//! Commands run against the mini event store of `common` (the worlds are
//! `common::ledger` for idempotency and `common::money` for dependent
//! streams), which checks the engine's contract: the decider reads
//! and writes only the streams that `streams()` and `dependent_streams()`
//! (asked until it names nothing new) declare, and a refused command
//! changes nothing.

#![allow(clippy::unwrap_used)]

use paycore_domain::bank_payout::PayoutDestinationSource;
use paycore_domain::card_payin::NetworkVerdict;
use paycore_domain::*;

#[path = "../common/mod.rs"]
mod common;
mod dependent_streams;
mod idempotency;

use common::money::*;
use common::*;
