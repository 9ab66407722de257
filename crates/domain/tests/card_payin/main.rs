//! The card payin family: payins (direct and 3-D Secure, declines,
//! settlements) and their refunds.
//!
//! Commands run against the mini event store of `common` (the world is
//! `common::money`), which checks the engine's contract: the decider reads
//! and writes only the streams that `streams()` and `dependent_streams()`
//! (asked until it names nothing new) declare, and a refused command
//! changes nothing.

#![allow(clippy::unwrap_used)]

use paycore_domain::card::CardSource;
use paycore_domain::card_payin::{
    AuthenticationType, CardPayinState, DeclineReason, NetworkVerdict, NewCardPayin, PayinAuthorization,
    RefundState,
};
use paycore_domain::events::*;
use paycore_domain::sandbox_network::{self, Authentication, Behaviour};
use paycore_domain::*;

#[path = "../common/mod.rs"]
mod common;
mod payins;
mod refunds;

use common::money::*;
use common::*;
