//! The states of card tokens and cards, and how their events evolve them.

use serde::{Deserialize, Serialize};

use super::events::TokenUse;
use super::info::CardInfo;
use crate::aggregate::Aggregate;
use crate::events::Event;
use crate::kernel::id::*;
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;
use crate::kernel::time::Timestamp;

/// How long a card token can be used after its creation.
pub const CARD_TOKEN_LIFETIME_SECONDS: i64 = 10 * 60;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardToken {
    pub id: CardTokenId,
    pub project_id: ProjectId,
    pub card_info: CardInfo,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used: Option<(TokenUse, Timestamp)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub id: CardId,
    pub project_id: ProjectId,
    pub customer_id: Option<CustomerId>,
    pub card_info: CardInfo,
    pub card_token_id: Option<CardTokenId>,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// Where the card of a new card or payin comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardSource {
    /// Card info sent with the request (validated and masked by the caller).
    Info(CardInfo),
    Token(CardTokenId),
    /// A stored card (payins only).
    Card(CardId),
}

impl CardSource {
    /// The stream a card source reads, if it names a token or a stored card.
    pub(crate) fn stream(&self) -> Option<StreamRef> {
        match self {
            Self::Info(_) => None,
            Self::Token(id) => Some(StreamRef::CardToken(*id)),
            Self::Card(id) => Some(StreamRef::Card(*id)),
        }
    }
}

/// Applies a card token or card event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty, Event::CardTokenCreated(e)) => Aggregate::CardToken(CardToken {
            id: e.id,
            project_id: e.project_id,
            card_info: e.card_info.clone(),
            created_at: e.created_at,
            expires_at: e.expires_at,
            used: None,
        }),
        (Aggregate::CardToken(t), Event::CardTokenUsed(e)) => Aggregate::CardToken(CardToken {
            used: Some((e.used_by, e.used_at)),
            ..t
        }),
        (Aggregate::Empty, Event::CardCreated(e)) => Aggregate::Card(Card {
            id: e.id,
            project_id: e.project_id,
            customer_id: e.customer_id,
            card_info: e.card_info.clone(),
            card_token_id: e.card_token_id,
            meta: e.meta.clone(),
            created_at: e.created_at,
        }),
        (Aggregate::Card(c), Event::CardMetaUpdated(e)) => Aggregate::Card(Card {
            meta: e.meta.clone(),
            ..c
        }),
        (state, event) => state.misapplied(event),
    }
}
