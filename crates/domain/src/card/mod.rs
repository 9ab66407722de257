//! The card family: card tokens (single-use, short-lived card details for
//! public clients) and stored cards, and the card value types (`info.rs`:
//! number, expiry, brand, masked [`CardInfo`], keyed fingerprint; the CVC).
//!
//! Other families take a card through [`CardSource`] and
//! `Context::use_token` (a payin made from a token uses it up).

mod command;
mod decide;
mod events;
mod info;
mod state;

pub use command::CardCommand;
pub use events::{CardCreated, CardEvent, CardTokenCreated, CardTokenUsed, TokenUse};
pub use info::*;
pub(crate) use state::evolve;
pub use state::{CARD_TOKEN_LIFETIME_SECONDS, Card, CardAggregate, CardSource, CardToken};
