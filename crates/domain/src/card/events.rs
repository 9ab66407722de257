//! The card family's events (type names, versions and codec in
//! [`crate::events`]).

use serde::{Deserialize, Serialize};

use super::info::CardInfo;
use crate::kernel::id::*;
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardTokenCreated {
    pub id: CardTokenId,
    pub project_id: ProjectId,
    pub card_info: CardInfo,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What consumed a single-use card token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenUse {
    Card(CardId),
    CardPayin(CardPayinId),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardTokenUsed {
    pub used_by: TokenUse,
    pub used_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardCreated {
    pub id: CardId,
    pub project_id: ProjectId,
    pub customer_id: Option<CustomerId>,
    pub card_info: CardInfo,
    /// The token the card was made from, if any.
    pub card_token_id: Option<CardTokenId>,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// The card family's events: what its deciders emit and its `evolve` folds
/// (the routers' `Event` wraps each as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardEvent {
    CardTokenCreated(CardTokenCreated),
    CardTokenUsed(CardTokenUsed),
    CardCreated(CardCreated),
    CardMetaUpdated(MetaUpdated),
}
