//! The deployment's one command: its first start.

use super::DeploymentEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::ProjectId;
use crate::kernel::stream::StreamRef;
use crate::project::ProjectEvent;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum DeploymentCommand {
    /// The first start of a deployment: its sandbox project, created once
    /// however many servers start on one empty store ([`crate::deployment`]).
    BootstrapDeployment { id: ProjectId, name: String },
}

impl<E> FamilyCommand<E> for DeploymentCommand
where
    E: From<ProjectEvent> + From<DeploymentEvent>,
{
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::BootstrapDeployment { .. } => streams.push(StreamRef::Deployment),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::BootstrapDeployment { id, .. } => Some(StreamRef::Project(*id)),
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::BootstrapDeployment { id, name } => ctx.bootstrap_deployment(*id, name),
        }
    }
}
