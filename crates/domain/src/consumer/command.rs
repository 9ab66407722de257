//! The consumer family's command: committing a checkpoint.

use super::{ConsumerEvent, PositionCommit};
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::ProjectId;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum ConsumerCommand {
    /// A durable subscription consumer processed everything up to a position.
    /// Answers with the project as its resource (`ResourceRef` is `Copy` and
    /// names no consumer); read the consumer's stream for its checkpoint.
    CommitConsumerPosition(PositionCommit),
}

impl<E: From<ConsumerEvent>> FamilyCommand<E> for ConsumerCommand {
    fn streams(&self, project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CommitConsumerPosition(commit) => {
                streams.push(StreamRef::Consumer(project, commit.consumer.clone()))
            }
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CommitConsumerPosition(commit) => ctx.commit_consumer_position(commit),
        }
    }
}
