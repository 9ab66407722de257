//! The card family: card rules (numbers, brands, expiry, fingerprints,
//! what may be stored), card tokens and cards.
//!
//! Commands run against the mini event store of `common` (the world is
//! `common::money`), which checks the engine's contract: the decider reads
//! and writes only the streams that `streams()` and `dependent_streams()`
//! (asked until it names nothing new) declare, and a refused command
//! changes nothing.

#![allow(clippy::unwrap_used)]

use paycore_domain::card::{CARD_TOKEN_LIFETIME_SECONDS, CardSource};
use paycore_domain::card_payin::{NetworkVerdict, PayinAuthorization};
use paycore_domain::events::*;
use paycore_domain::*;

mod cards;
#[path = "../common/mod.rs"]
mod common;
mod rules;
mod tokens;

use common::money::*;
use common::*;
