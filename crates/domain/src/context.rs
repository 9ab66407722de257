//! The decision context: what a decider reads ([`Lookup`], [`Context`]) and
//! what it answers ([`Decision`]). Families build their deciders on it; the
//! crate-wide [`crate::decide`] (in `command.rs`) routes each command to
//! the decider of its family.

use crate::aggregate::Aggregate;
use crate::events::Event;
use crate::kernel::error::DomainError;
use crate::kernel::id::ProjectId;
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

/// Read access to the current state of the streams a command needs.
pub trait Lookup {
    fn get(&self, stream: &StreamRef) -> &Aggregate;
}

/// What a command decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// New events to append atomically, in order; `resource` is what the
    /// command created or changed.
    Apply {
        events: Vec<(StreamRef, Event)>,
        resource: ResourceRef,
    },
    /// A retry of an earlier request with the same idempotency key and
    /// parameters: nothing to write, answer with the original resource.
    Replay { resource: ResourceRef },
}

pub(crate) type Decided = (Vec<(StreamRef, Event)>, ResourceRef);

/// What every decider sees: the caller's project, the time, and the state
/// of the streams the command declared. Each family adds its deciders (and
/// the accessors other families may use, such as `account` or `customer`)
/// as `impl Context` blocks in its own module.
pub(crate) struct Context<'a> {
    /// The project the command acts in.
    pub(crate) project_id: ProjectId,
    /// The command's time (time arrives with the command: the domain has no
    /// clock).
    pub(crate) now: Timestamp,
    pub(crate) lookup: &'a dyn Lookup,
}

impl Context<'_> {
    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    /// Replaces the meta of `resource`, a resource of the caller's project
    /// (`kind` names it in the not-found error).
    pub(crate) fn replace_meta(
        &self,
        resource: ResourceRef,
        kind: &'static str,
        meta: &Meta,
        updated: fn(MetaUpdated) -> Event,
    ) -> Result<Decided, DomainError> {
        let stream = resource.stream();
        // A stream's category fixes its aggregate's kind: owning it is enough.
        if self.owned(&stream).is_none() {
            return Err(DomainError::not_found(kind, stream.instance()));
        }
        let event = updated(MetaUpdated { meta: meta.clone() });
        Ok((vec![(stream, event)], resource))
    }

    /// The aggregate at `stream` if it belongs to the caller's project: another
    /// project's resource is indistinguishable from a missing one.
    pub(crate) fn owned(&self, stream: &StreamRef) -> Option<&Aggregate> {
        let state = self.lookup.get(stream);
        (state.project_id() == Some(self.project_id)).then_some(state)
    }

    pub(crate) fn must_be_new(
        &self,
        stream: &StreamRef,
        kind: &'static str,
        id: impl std::fmt::Display,
    ) -> Result<(), DomainError> {
        if self.lookup.get(stream).is_empty() {
            Ok(())
        } else {
            Err(DomainError::AlreadyExists {
                kind,
                id: id.to_string(),
            })
        }
    }
}
