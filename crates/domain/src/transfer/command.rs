//! The transfer family's commands.

use super::TransferEvent;
use crate::account::AccountEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{AccountId, ProjectId, TransactionId, TransferId};
use crate::kernel::meta::Meta;
use crate::kernel::money::Money;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum TransferCommand {
    CreateTransfer {
        id: TransferId,
        source_account_id: AccountId,
        destination_account_id: AccountId,
        value: Money,
        meta: Meta,
        source_transaction_id: TransactionId,
        destination_transaction_id: TransactionId,
    },
    UpdateTransfer {
        id: TransferId,
        meta: Meta,
    },
}

impl<E> FamilyCommand<E> for TransferCommand
where
    E: From<TransferEvent> + From<AccountEvent>,
{
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CreateTransfer {
                id,
                source_account_id,
                destination_account_id,
                ..
            } => {
                streams.push(StreamRef::Transfer(*id));
                streams.push(StreamRef::Account(*source_account_id));
                streams.push(StreamRef::Account(*destination_account_id));
            }
            Self::UpdateTransfer { id, .. } => streams.push(StreamRef::Transfer(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateTransfer { id, .. } => Some(StreamRef::Transfer(*id)),
            Self::UpdateTransfer { .. } => None,
        }
    }

    fn dependent_streams(&self, ctx: &Context<'_>) -> Vec<StreamRef> {
        match self {
            Self::CreateTransfer {
                source_account_id,
                destination_account_id,
                ..
            } => ctx.dependent_streams_of_transfer(*source_account_id, *destination_account_id),
            Self::UpdateTransfer { .. } => Vec::new(),
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateTransfer {
                id,
                source_account_id,
                destination_account_id,
                value,
                meta,
                source_transaction_id,
                destination_transaction_id,
            } => ctx.create_transfer(
                *id,
                (*source_account_id, *source_transaction_id),
                (*destination_account_id, *destination_transaction_id),
                *value,
                meta,
            ),
            Self::UpdateTransfer { id, meta } => ctx.update_transfer(*id, meta),
        }
    }
}
