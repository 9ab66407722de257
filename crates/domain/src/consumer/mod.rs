//! Durable consumers of event subscriptions: a named checkpoint per project.
//!
//! A consumer (say `billing`) records the position of the last event it has
//! processed; a subscription by that name resumes right after it. The
//! checkpoint is an event in the log, on the stream
//! `consumer-<project>.<name>`, so it survives restarts and is shared by
//! every server of a PostgreSQL store, and two servers committing at once
//! are ordered by the stream's version like any other write.

use serde::{Deserialize, Serialize};

pub use crate::kernel::consumer_name::{ConsumerName, ConsumerNameError};

use crate::aggregate::Aggregate;
use crate::context::{Context, Decided};
use crate::events::Event;
use crate::kernel::error::{DomainError, Refusal};
use crate::kernel::id::ProjectId;
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

/// Where a consumer stands: the state of its stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerCheckpoint {
    pub project_id: ProjectId,
    pub consumer: ConsumerName,
    /// The global position of the last event the consumer has processed.
    pub position: u64,
    pub committed_at: Timestamp,
}

/// `CommitConsumerPosition` as the decider sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionCommit {
    pub consumer: ConsumerName,
    /// The last event the consumer has processed.
    pub position: u64,
    /// The number of events in the log when the command was made (the next
    /// position): a consumer can only have processed events below it.
    pub head: u64,
    /// Allows moving the checkpoint back (to process events again).
    pub reset: bool,
}

impl Context<'_> {
    /// Records `commit.position` as the consumer's checkpoint. Committing the
    /// position it already has writes nothing, so retries are harmless.
    pub(crate) fn commit_consumer_position(&self, commit: &PositionCommit) -> Result<Decided, DomainError> {
        let project = self.project()?.id;
        let resource = ResourceRef::Project(project);
        if commit.position >= commit.head {
            return Err(DomainError::invalid(
                "position",
                format!(
                    "must be the position of an event in the log: below {}, got {}",
                    commit.head, commit.position
                ),
            ));
        }
        let stream = StreamRef::Consumer(project, commit.consumer.clone());
        if let Some(current) = self.lookup.get(&stream).as_consumer() {
            if current.position == commit.position {
                return Ok((Vec::new(), resource));
            }
            if commit.position < current.position && !commit.reset {
                return Err(DomainError::refused(
                    Refusal::ConsumerPositionBehind,
                    format!(
                        "consumer {} is at position {}; committing {} would move it back \
                         (set reset to do that on purpose)",
                        commit.consumer, current.position, commit.position
                    ),
                ));
            }
        }
        let event = Event::ConsumerPositionCommitted(ConsumerPositionCommitted {
            project_id: project,
            consumer: commit.consumer.clone(),
            position: commit.position,
            committed_at: self.now(),
        });
        Ok((vec![(stream, event)], resource))
    }
}

/// On a consumer's stream: the position of the last event it processed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerPositionCommitted {
    pub project_id: ProjectId,
    pub consumer: ConsumerName,
    pub position: u64,
    pub committed_at: Timestamp,
}

/// Applies a consumer checkpoint event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty | Aggregate::Consumer(_), Event::ConsumerPositionCommitted(e)) => {
            Aggregate::Consumer(ConsumerCheckpoint {
                project_id: e.project_id,
                consumer: e.consumer.clone(),
                position: e.position,
                committed_at: e.committed_at,
            })
        }
        (state, event) => state.misapplied(event),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use uuid::Uuid;

    use super::*;
    use crate::aggregate::{Aggregate, Project};
    use crate::command::{Command, CommandEnvelope, Decision, Lookup, decide};
    use crate::kernel::meta::Meta;
    use crate::project::Environment;

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
            command: Command::CommitConsumerPosition(PositionCommit {
                consumer: ConsumerName::parse("billing").unwrap(),
                position,
                head,
                reset,
            }),
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

    #[test]
    fn names() {
        for good in ["billing", "a", "ledger-sync_2", &"x".repeat(64)] {
            assert_eq!(
                ConsumerName::parse(good).map(|n| n.to_string()),
                Ok(good.to_owned())
            );
        }
        assert_eq!(
            ConsumerName::parse(""),
            Err(ConsumerNameError::Length { found: 0 })
        );
        assert_eq!(
            ConsumerName::parse(&"x".repeat(65)),
            Err(ConsumerNameError::Length { found: 65 })
        );
        for (bad, character, index) in [
            ("Billing", 'B', 0),
            ("a.b", '.', 1),
            ("a b", ' ', 1),
            ("é", 'é', 0),
        ] {
            assert_eq!(
                ConsumerName::parse(bad),
                Err(ConsumerNameError::Character { character, index }),
                "{bad}"
            );
        }
    }
}
