//! Card tokens, cards, card payins and refunds, by their former path: they
//! live in the [`crate::card`] and [`crate::card_payin`] families now.

pub use crate::card::{CARD_TOKEN_LIFETIME_SECONDS, Card, CardSource, CardToken};
pub use crate::card_payin::*;
