//! The first start's bootstrap (`BootstrapDeployment`), decided and folded
//! through the routers.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use uuid::Uuid;

use paycore_domain::deployment::ALREADY_BOOTSTRAPPED;
use paycore_domain::deployment::DeploymentCommand;
use paycore_domain::*;

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
        command: DeploymentCommand::BootstrapDeployment {
            id,
            name: "Sandbox".into(),
        }
        .into(),
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
