//! Durable consumers' checkpoints (`CommitConsumerPosition`), decided and
//! folded through the routers.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use uuid::Uuid;

use paycore_domain::aggregate::Project;
use paycore_domain::consumer::ConsumerCommand;
use paycore_domain::consumer::{ConsumerName, PositionCommit};
use paycore_domain::kernel::error::Refusal;
use paycore_domain::*;

static EMPTY: Aggregate = Aggregate::Empty;

#[derive(Default)]
struct States(HashMap<StreamRef, Aggregate>);

impl Lookup for States {
    fn get(&self, stream: &StreamRef) -> &Aggregate {
        self.0.get(stream).unwrap_or(&EMPTY)
    }
}

fn project() -> ProjectId {
    ProjectId::from_uuid(Uuid::from_u128(7))
}

fn with_project() -> States {
    let mut states = States::default();
    let project = Project {
        id: project(),
        name: "p".into(),
        environment: Environment::Live,
        meta: Meta::default(),
        created_at: Timestamp::from_micros(0),
    };
    states
        .0
        .insert(StreamRef::Project(project.id), Aggregate::Project(project));
    states
}

fn commit(position: u64, head: u64, reset: bool) -> CommandEnvelope {
    CommandEnvelope {
        project_id: project(),
        now: Timestamp::from_micros(position as i64),
        idempotency: None,
        command: ConsumerCommand::CommitConsumerPosition(PositionCommit {
            consumer: ConsumerName::parse("billing").unwrap(),
            position,
            head,
            reset,
        })
        .into(),
    }
}

/// Decides `envelope` and applies what it wrote; answers the events.
fn run(states: &mut States, envelope: &CommandEnvelope) -> Result<Vec<Event>, DomainError> {
    let Decision::Apply { events, resource } = decide(envelope, states)? else {
        panic!("a commit is never a replay");
    };
    assert_eq!(resource, ResourceRef::Project(project()));
    for (stream, event) in &events {
        assert!(envelope.streams().contains(stream), "{stream} is declared");
        let state = states.0.remove(stream).unwrap_or_default().evolve(event);
        states.0.insert(stream.clone(), state);
    }
    Ok(events.into_iter().map(|(_, event)| event).collect())
}

fn checkpoint(states: &States) -> Option<u64> {
    let stream = StreamRef::Consumer(project(), ConsumerName::parse("billing").unwrap());
    let state = states.get(&stream);
    assert!(state.is_empty() || state.project_id() == Some(project()));
    state.as_consumer().map(|c| c.position)
}

#[test]
fn checkpoints_move_forward_and_back_only_with_reset() {
    let mut states = with_project();
    assert_eq!(run(&mut states, &commit(5, 10, false)).unwrap().len(), 1);
    assert_eq!(checkpoint(&states), Some(5));
    // The same position again writes nothing: retries are harmless.
    assert_eq!(run(&mut states, &commit(5, 10, false)), Ok(Vec::new()));
    assert_eq!(run(&mut states, &commit(5, 10, true)), Ok(Vec::new()));
    let behind = run(&mut states, &commit(3, 10, false)).unwrap_err();
    assert!(matches!(
        behind,
        DomainError::Refused {
            refusal: Refusal::ConsumerPositionBehind,
            ..
        }
    ));
    assert_eq!(checkpoint(&states), Some(5));
    run(&mut states, &commit(3, 10, true)).unwrap();
    assert_eq!(checkpoint(&states), Some(3));
    run(&mut states, &commit(9, 10, false)).unwrap();
    assert_eq!(checkpoint(&states), Some(9));
}

#[test]
fn positions_must_exist_and_the_project_too() {
    let mut states = with_project();
    for (position, head) in [(10, 10), (11, 10), (0, 0)] {
        let error = run(&mut states, &commit(position, head, true)).unwrap_err();
        let DomainError::Invalid(violations) = error else {
            panic!("{position}/{head}: {error:?}");
        };
        assert_eq!(violations[0].field, "position");
    }
    assert_eq!(checkpoint(&states), None);
    let error = run(&mut States::default(), &commit(1, 10, false)).unwrap_err();
    assert!(matches!(error, DomainError::NotFound { kind: "project", .. }));
}
