//! The customer family's commands.

use super::CustomerEvent;
use super::decide::identity_files;
use super::identity::Identity;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{CustomerId, ProjectId};
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum CustomerCommand {
    CreateCustomer {
        id: CustomerId,
        identity: Option<Identity>,
        meta: Meta,
    },
    UpdateCustomer {
        id: CustomerId,
        /// `Some(None)` clears the identity.
        identity: Option<Option<Identity>>,
        meta: Option<Meta>,
    },
}

impl<E: From<CustomerEvent>> FamilyCommand<E> for CustomerCommand {
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        // The files an identity's document refers to must be the project's.
        match self {
            Self::CreateCustomer { id, identity, .. } => {
                streams.push(StreamRef::Customer(*id));
                streams.extend(identity_files(identity.as_ref()).map(StreamRef::File));
            }
            Self::UpdateCustomer { id, identity, .. } => {
                streams.push(StreamRef::Customer(*id));
                streams
                    .extend(identity_files(identity.as_ref().and_then(Option::as_ref)).map(StreamRef::File));
            }
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateCustomer { id, .. } => Some(StreamRef::Customer(*id)),
            Self::UpdateCustomer { .. } => None,
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateCustomer { id, identity, meta } => ctx.create_customer(*id, identity, meta),
            Self::UpdateCustomer { id, identity, meta } => ctx.update_customer(*id, identity, meta),
        }
    }
}
