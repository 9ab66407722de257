//! The project family's commands: projects and their API keys.

use super::api_key::KeyKind;
use super::{Environment, ProjectEvent};
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{ApiKeyId, ProjectId};
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum ProjectCommand {
    CreateProject {
        id: ProjectId,
        name: String,
        environment: Environment,
        meta: Meta,
    },
    UpdateProject {
        meta: Meta,
    },
    CreateApiKey {
        id: ApiKeyId,
        kind: KeyKind,
        secret_hash: [u8; 32],
    },
    RevokeApiKey {
        id: ApiKeyId,
    },
}

impl<E: From<ProjectEvent>> FamilyCommand<E> for ProjectCommand {
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            // The project's own stream is the one every command reads.
            Self::CreateProject { .. } | Self::UpdateProject { .. } => {}
            Self::CreateApiKey { id, .. } | Self::RevokeApiKey { id } => streams.push(StreamRef::ApiKey(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateProject { id, .. } => Some(StreamRef::Project(*id)),
            Self::CreateApiKey { id, .. } => Some(StreamRef::ApiKey(*id)),
            Self::UpdateProject { .. } | Self::RevokeApiKey { .. } => None,
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateProject {
                id,
                name,
                environment,
                meta,
            } => ctx.create_project(*id, name, *environment, meta),
            Self::UpdateProject { meta } => ctx.update_project(meta),
            Self::CreateApiKey {
                id,
                kind,
                secret_hash,
            } => ctx.create_api_key(*id, *kind, *secret_hash),
            Self::RevokeApiKey { id } => ctx.revoke_api_key(*id),
        }
    }
}
