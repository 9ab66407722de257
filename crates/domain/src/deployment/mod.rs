//! The first start of a deployment: exactly one sandbox project, however
//! many servers start at once on one empty store.
//!
//! A server that finds the log empty creates a sandbox project and a key, so
//! a new user can call the API at once. Several servers sharing a PostgreSQL
//! store may all find it empty at the same moment. The bootstrap therefore
//! also writes `DeploymentBootstrapped` on the one platform stream
//! `deployment-bootstrap`, expecting it to be new: the store lets one such
//! append through, and every other server's command is decided again
//! against it and refused with the winner's project, which that server
//! reports instead of creating its own.

mod command;
pub use command::DeploymentCommand;

use serde::{Deserialize, Serialize};

use crate::context::{Context, Decided, misapplied};
use crate::kernel::error::DomainError;
use crate::kernel::id::ProjectId;
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;
use crate::kernel::time::Timestamp;
use crate::project::{Environment, ProjectEvent};

/// The state of `deployment-bootstrap`: which project the first start made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    pub sandbox_project_id: ProjectId,
    pub bootstrapped_at: Timestamp,
}

/// What [`DomainError::AlreadyExists`] names when another server bootstrapped
/// the deployment first; its `id` is that server's sandbox project.
pub const ALREADY_BOOTSTRAPPED: &str = "first-start sandbox project";

impl Context<'_> {
    /// Creates the deployment's sandbox project `id`, unless a bootstrap
    /// happened already: then refuses with [`ALREADY_BOOTSTRAPPED`] and the
    /// project that bootstrap created.
    pub(crate) fn bootstrap_deployment<E>(&self, id: ProjectId, name: &str) -> Result<Decided<E>, DomainError>
    where
        E: From<ProjectEvent> + From<DeploymentEvent>,
    {
        if let Some(done) = self.state::<Bootstrap>(&StreamRef::Deployment) {
            return Err(DomainError::AlreadyExists {
                kind: ALREADY_BOOTSTRAPPED,
                id: done.sandbox_project_id.to_string(),
            });
        }
        let (mut events, resource) = self.create_project(id, name, Environment::Sandbox, &Meta::default())?;
        events.push((
            StreamRef::Deployment,
            DeploymentEvent::DeploymentBootstrapped(DeploymentBootstrapped {
                sandbox_project_id: id,
                bootstrapped_at: self.now(),
            })
            .into(),
        ));
        Ok((events, resource))
    }
}

/// The first start of a deployment created its sandbox project (see
/// [`crate::deployment`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentBootstrapped {
    pub sandbox_project_id: ProjectId,
    pub bootstrapped_at: Timestamp,
}

/// The deployment family's event: what its decider emits and its `evolve`
/// folds (the routers' `Event` wraps it as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeploymentEvent {
    DeploymentBootstrapped(DeploymentBootstrapped),
}

/// Applies the bootstrap event to `deployment-bootstrap` (`None` before it).
pub(crate) fn evolve(state: Option<Bootstrap>, event: DeploymentEvent) -> Option<Bootstrap> {
    match (state, event) {
        (None, DeploymentEvent::DeploymentBootstrapped(e)) => Some(Bootstrap {
            sandbox_project_id: e.sandbox_project_id,
            bootstrapped_at: e.bootstrapped_at,
        }),
        (state, event) => misapplied(state, &event),
    }
}
