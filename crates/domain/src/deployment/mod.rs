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

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::context::{Context, Decided};
use crate::events::Event;
use crate::kernel::error::DomainError;
use crate::kernel::id::ProjectId;
use crate::kernel::meta::Meta;
use crate::kernel::stream::StreamRef;
use crate::kernel::time::Timestamp;
use crate::project::Environment;

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
    pub(crate) fn bootstrap_deployment(&self, id: ProjectId, name: &str) -> Result<Decided, DomainError> {
        if let Some(done) = self.lookup.get(&StreamRef::Deployment).as_bootstrap() {
            return Err(DomainError::AlreadyExists {
                kind: ALREADY_BOOTSTRAPPED,
                id: done.sandbox_project_id.to_string(),
            });
        }
        let (mut events, resource) = self.create_project(id, name, Environment::Sandbox, &Meta::default())?;
        events.push((
            StreamRef::Deployment,
            Event::DeploymentBootstrapped(DeploymentBootstrapped {
                sandbox_project_id: id,
                bootstrapped_at: self.now(),
            }),
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

/// Applies the bootstrap event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty, Event::DeploymentBootstrapped(e)) => Aggregate::Bootstrap(Bootstrap {
            sandbox_project_id: e.sandbox_project_id,
            bootstrapped_at: e.bootstrapped_at,
        }),
        (state, event) => state.misapplied(event),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use uuid::Uuid;

    use super::*;
    use crate::aggregate::Aggregate;
    use crate::command::{Command, CommandEnvelope, Decision, Lookup, decide};

    #[derive(Default)]
    struct States(HashMap<StreamRef, Aggregate>);

    static EMPTY: Aggregate = Aggregate::Empty;

    impl Lookup for States {
        fn get(&self, stream: &StreamRef) -> &Aggregate {
            self.0.get(stream).unwrap_or(&EMPTY)
        }
    }

    fn bootstrap(project: u128) -> CommandEnvelope {
        let id = ProjectId::from_uuid(Uuid::from_u128(project));
        CommandEnvelope {
            project_id: id,
            now: Timestamp::from_micros(1_700_000_000_000_000),
            idempotency: None,
            command: Command::BootstrapDeployment {
                id,
                name: "Sandbox".into(),
            },
        }
    }

    fn apply(states: &mut States, decision: Decision) {
        let Decision::Apply { events, .. } = decision else {
            panic!("expected events, got {decision:?}");
        };
        for (stream, event) in events {
            let state = states.0.remove(&stream).unwrap_or_default().evolve(&event);
            states.0.insert(stream, state);
        }
    }

    #[test]
    fn the_first_bootstrap_creates_the_sandbox_project_and_later_ones_name_it() {
        let mut states = States::default();
        let first = bootstrap(1);
        assert!(first.streams().contains(&StreamRef::Deployment));
        let decision = decide(&first, &states).unwrap();
        apply(&mut states, decision);
        let project = states
            .get(&StreamRef::Project(first.project_id))
            .as_project()
            .unwrap();
        assert_eq!(project.environment, Environment::Sandbox);
        assert_eq!(
            states
                .get(&StreamRef::Deployment)
                .as_bootstrap()
                .unwrap()
                .sandbox_project_id,
            first.project_id
        );

        let second = bootstrap(2);
        assert_eq!(
            decide(&second, &states),
            Err(DomainError::AlreadyExists {
                kind: ALREADY_BOOTSTRAPPED,
                id: first.project_id.to_string(),
            })
        );
    }
}
