//! Durable consumers of event subscriptions: a named checkpoint per project.
//!
//! A consumer (say `billing`) records the position of the last event it has
//! processed; a subscription by that name resumes right after it. The
//! checkpoint is an event in the log, on the stream
//! `consumer-<project>.<name>`, so it survives restarts and is shared by
//! every server of a PostgreSQL store, and two servers committing at once
//! are ordered by the stream's version like any other write.

mod command;
pub use command::ConsumerCommand;

use serde::{Deserialize, Serialize};

pub use crate::kernel::consumer_name::{ConsumerName, ConsumerNameError};

use crate::context::{Context, Decided, Owned};
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

impl Owned for ConsumerCheckpoint {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// The consumer family's event: what its decider emits and its `evolve`
/// folds (the routers' `Event` wraps it as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerEvent {
    ConsumerPositionCommitted(ConsumerPositionCommitted),
}

impl Context<'_> {
    /// Records `commit.position` as the consumer's checkpoint. Committing the
    /// position it already has writes nothing, so retries are harmless.
    pub(crate) fn commit_consumer_position<E: From<ConsumerEvent>>(
        &self,
        commit: &PositionCommit,
    ) -> Result<Decided<E>, DomainError> {
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
        if let Some(current) = self.state::<ConsumerCheckpoint>(&stream) {
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
        let event = ConsumerEvent::ConsumerPositionCommitted(ConsumerPositionCommitted {
            project_id: project,
            consumer: commit.consumer.clone(),
            position: commit.position,
            committed_at: self.now(),
        });
        Ok((vec![(stream, event.into())], resource))
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

/// Applies a consumer checkpoint event to the consumer's state (`None`
/// before the first).
/// (A checkpoint replaces the one before: every state takes it.)
pub(crate) fn evolve(_state: Option<ConsumerCheckpoint>, event: ConsumerEvent) -> Option<ConsumerCheckpoint> {
    let ConsumerEvent::ConsumerPositionCommitted(e) = event;
    Some(ConsumerCheckpoint {
        project_id: e.project_id,
        consumer: e.consumer,
        position: e.position,
        committed_at: e.committed_at,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
