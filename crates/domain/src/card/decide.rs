//! Deciding `CreateCardToken` and `CreateCard`, and `use_token`, by which
//! a card or a card payin uses up a token.

use super::events::{CardCreated, CardEvent, CardTokenCreated, CardTokenUsed, TokenUse};
use super::info::CardInfo;
use super::state::{CARD_TOKEN_LIFETIME_SECONDS, Card, CardSource, CardToken};
use crate::context::{Context, Decided};
use crate::kernel::error::{DomainError, Refusal};
use crate::kernel::id::*;
use crate::kernel::meta::Meta;
use crate::kernel::stream::{ResourceRef, StreamRef};

impl Context<'_> {
    /// A card of the caller's project: how card payins read the card they
    /// charge.
    pub(crate) fn card(&self, id: CardId) -> Result<&Card, DomainError> {
        self.owned::<Card>(&StreamRef::Card(id))
            .ok_or_else(|| DomainError::not_found("card", id))
    }

    pub(crate) fn create_card_token<E: From<CardEvent>>(
        &self,
        id: CardTokenId,
        card_info: &CardInfo,
    ) -> Result<Decided<E>, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::CardToken(id);
        self.must_be_new(&stream, "card token", id)?;
        let now = self.now();
        let event = CardEvent::CardTokenCreated(CardTokenCreated {
            id,
            project_id: project.id,
            card_info: card_info.clone(),
            created_at: now,
            expires_at: now.plus_seconds(CARD_TOKEN_LIFETIME_SECONDS),
        });
        Ok((vec![(stream, event.into())], ResourceRef::CardToken(id)))
    }

    /// The token's card info, with the event that uses it up.
    pub(crate) fn use_token<E: From<CardEvent>>(
        &self,
        id: CardTokenId,
        used_by: TokenUse,
    ) -> Result<(CardInfo, (StreamRef, E)), DomainError> {
        let stream = StreamRef::CardToken(id);
        let token = self
            .owned::<CardToken>(&stream)
            .ok_or_else(|| DomainError::not_found("card token", id))?;
        if token.used.is_some() {
            return Err(DomainError::refused(
                Refusal::CardTokenUsed,
                format!("card token {id} was already used; tokens are single-use"),
            ));
        }
        if self.now() >= token.expires_at {
            return Err(DomainError::refused(
                Refusal::CardTokenExpired,
                format!("card token {id} expired 10 minutes after its creation"),
            ));
        }
        let event = CardEvent::CardTokenUsed(CardTokenUsed {
            used_by,
            used_at: self.now(),
        });
        Ok((token.card_info.clone(), (stream, event.into())))
    }

    pub(crate) fn create_card<E: From<CardEvent>>(
        &self,
        id: CardId,
        source: &CardSource,
        customer_id: Option<CustomerId>,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::Card(id);
        self.must_be_new(&stream, "card", id)?;
        if let Some(customer_id) = customer_id {
            self.customer(customer_id)?;
        }
        let mut events = Vec::new();
        let (card_info, card_token_id) = match source {
            CardSource::Info(info) => (info.clone(), None),
            CardSource::Token(token_id) => {
                let (info, used) = self.use_token(*token_id, TokenUse::Card(id))?;
                events.push(used);
                (info, Some(*token_id))
            }
            CardSource::Card(_) => {
                return Err(DomainError::invalid(
                    "card_id",
                    "a card is made from card_info or a card_token_id",
                ));
            }
        };
        let created = CardEvent::CardCreated(CardCreated {
            id,
            project_id: project.id,
            customer_id,
            card_info,
            card_token_id,
            meta: meta.clone(),
            created_at: self.now(),
        });
        events.insert(0, (stream, created.into()));
        Ok((events, ResourceRef::Card(id)))
    }

    pub(crate) fn update_card<E: From<CardEvent>>(
        &self,
        id: CardId,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        self.replace_meta::<Card, _>(ResourceRef::Card(id), "card", meta, |meta| {
            CardEvent::CardMetaUpdated(meta).into()
        })
    }
}
