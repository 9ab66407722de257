//! The states of card tokens and cards, and how their events evolve them.

use serde::{Deserialize, Serialize};

use super::events::{CardEvent, TokenUse};
use super::info::CardInfo;
use crate::context::{Owned, misapplied};
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

impl Owned for CardToken {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

impl Owned for Card {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// The card family's aggregates: a card token's stream and a card's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardAggregate {
    CardToken(CardToken),
    Card(Card),
}

/// Applies a card token or card event to the state of its stream (`None`
/// before the first).
pub(crate) fn evolve(state: Option<CardAggregate>, event: CardEvent) -> Option<CardAggregate> {
    use CardAggregate as A;
    use CardEvent as E;
    Some(match (state, event) {
        (None, E::CardTokenCreated(e)) => A::CardToken(CardToken {
            id: e.id,
            project_id: e.project_id,
            card_info: e.card_info,
            created_at: e.created_at,
            expires_at: e.expires_at,
            used: None,
        }),
        (Some(A::CardToken(t)), E::CardTokenUsed(e)) => A::CardToken(CardToken {
            used: Some((e.used_by, e.used_at)),
            ..t
        }),
        (None, E::CardCreated(e)) => A::Card(Card {
            id: e.id,
            project_id: e.project_id,
            customer_id: e.customer_id,
            card_info: e.card_info,
            card_token_id: e.card_token_id,
            meta: e.meta,
            created_at: e.created_at,
        }),
        (Some(A::Card(c)), E::CardMetaUpdated(e)) => A::Card(Card { meta: e.meta, ..c }),
        (state, event) => return misapplied(state, &event),
    })
}
