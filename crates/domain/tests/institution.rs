//! Institution activations per project: what lets a project's customers
//! connect to a bank of the connector's catalogue.

#![allow(clippy::unwrap_used)]

mod common;

use common::open_banking::*;
use common::*;
use paycore_domain::aggregation_connection::AggregationConnectionCommand;
use paycore_domain::institution::InstitutionCommand;
use paycore_domain::kernel::error::Refusal;
use paycore_domain::kernel::institution::InstitutionId;
use paycore_domain::*;

fn activate(institution: InstitutionId) -> Command {
    InstitutionCommand::ActivateInstitution {
        institution_id: institution,
    }
    .into()
}

fn deactivate(institution: InstitutionId) -> Command {
    InstitutionCommand::DeactivateInstitution {
        institution_id: institution,
    }
    .into()
}

#[test]
fn activation_is_recorded_once_on_the_project_and_institution_stream() {
    let mut world = World::new();
    let events = world.events(activate(other_bank()));
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].0.name(),
        format!("institution-{}.SANDBOX_ES_BANK", prj(P))
    );
    assert!(matches!(&events[0].1, Event::InstitutionActivated(e) if e.institution_id == other_bank()));
    // Again: already active, nothing to write; the answer is the project.
    let again = world.ok(prj(P), activate(other_bank()));
    assert_eq!(
        again,
        Decision::Apply {
            events: vec![],
            resource: ResourceRef::Project(prj(P))
        }
    );
}

#[test]
fn deactivation_stops_new_connections_and_is_idempotent() {
    let mut world = World::new();
    assert_eq!(world.events(deactivate(bank())).len(), 1);
    assert!(world.events(deactivate(bank())).is_empty());
    // Never activated: nothing to deactivate.
    assert!(world.events(deactivate(other_bank())).is_empty());
    assert_refused(
        world.run(P, create_connection(conn(1), cus(C), Some(bank()))),
        Refusal::InstitutionNotActive,
    );
    world.ok(prj(P), activate(bank()));
    world.ok(prj(P), create_connection(conn(1), cus(C), Some(bank())));
}

#[test]
fn another_projects_activation_does_not_count() {
    let mut world = World::new();
    world.ok(prj(OTHER), activate(other_bank()));
    assert_refused(
        world.run(P, create_connection(conn(1), cus(C), Some(other_bank()))),
        Refusal::InstitutionNotActive,
    );
    // Choosing it on the bank-selection page is refused the same way.
    world.ok(prj(P), create_connection(conn(2), cus(C), None));
    assert_refused(
        world.run(
            P,
            AggregationConnectionCommand::ChooseAggregationInstitution {
                id: conn(2),
                institution_id: other_bank(),
                sources: sources(),
            }
            .into(),
        ),
        Refusal::InstitutionNotActive,
    );
}

#[test]
fn an_unknown_project_cannot_activate() {
    let mut world = World::new();
    match world.run(99, activate(bank())) {
        Err(DomainError::NotFound { kind: "project", .. }) => {}
        other => panic!("expected project not found, got {other:?}"),
    }
}
