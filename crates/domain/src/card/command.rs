//! The card family's commands: card tokens and cards.

use super::{CardEvent, CardInfo, CardSource};
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{CardId, CardTokenId, CustomerId, ProjectId};
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum CardCommand {
    CreateCardToken {
        id: CardTokenId,
        card_info: CardInfo,
    },
    CreateCard {
        id: CardId,
        source: CardSource,
        customer_id: Option<CustomerId>,
        meta: Meta,
    },
    UpdateCard {
        id: CardId,
        meta: Meta,
    },
}

impl<E: From<CardEvent>> FamilyCommand<E> for CardCommand {
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CreateCardToken { id, .. } => streams.push(StreamRef::CardToken(*id)),
            Self::CreateCard {
                id,
                source,
                customer_id,
                ..
            } => {
                streams.push(StreamRef::Card(*id));
                streams.extend(source.stream());
                streams.extend(customer_id.map(StreamRef::Customer));
            }
            Self::UpdateCard { id, .. } => streams.push(StreamRef::Card(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateCardToken { id, .. } => Some(StreamRef::CardToken(*id)),
            Self::CreateCard { id, .. } => Some(StreamRef::Card(*id)),
            Self::UpdateCard { .. } => None,
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateCardToken { id, card_info } => ctx.create_card_token(*id, card_info),
            Self::CreateCard {
                id,
                source,
                customer_id,
                meta,
            } => ctx.create_card(*id, source, *customer_id, meta),
            Self::UpdateCard { id, meta } => ctx.update_card(*id, meta),
        }
    }
}
