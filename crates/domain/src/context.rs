//! The decision context, between the kernel and the families: what a
//! decider reads ([`Context`] over [`States`]) and what it answers
//! ([`Decided`]). It names no family and no router (`tests/layers.rs`
//! checks): a decider reads each stream as its family's own state type and
//! emits its family's own events into any `E` the router can build from
//! them (`E: From<TransferEvent> + From<AccountEvent>` says which families'
//! events a decider writes). Each family's command enum implements
//! [`FamilyCommand`]; the routers implement [`States`] over `Lookup` and
//! hand each command to its family's `FamilyCommand` implementation.

use std::any::Any;
use std::fmt::Debug;

use crate::kernel::error::DomainError;
use crate::kernel::id::ProjectId;
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

/// The loaded state of the streams a command declared, each as its
/// family's own state type (`Account`, `CardPayin`, …), `None` before the
/// stream's first event.
pub(crate) trait States {
    fn state(&self, stream: &StreamRef) -> Option<&dyn Any>;
}

/// A state that belongs to one project (a resource), as opposed to the
/// shared and guard streams' states.
pub(crate) trait Owned: Any {
    fn project_id(&self) -> ProjectId;
}

/// What a decider answers: the events to append atomically, in order, each
/// with its stream, and the resource the command created or changed.
pub(crate) type Decided<E> = (Vec<(StreamRef, E)>, ResourceRef);

/// A family's commands as the command router sees them: the streams each
/// reads, and what it decides into the router's event type `E` (the
/// family's `impl` bounds `E` by the families whose events it writes, as
/// its deciders do). The router adds what no family owns: the caller's
/// project stream in front and the idempotency key's record around.
pub(crate) trait FamilyCommand<E> {
    /// Appends the streams `decide` reads that the command names by itself,
    /// in a stable order (`project` is the caller's project).
    fn streams(&self, project: ProjectId, streams: &mut Vec<StreamRef>);

    /// The stream of the resource the command creates under an ID the
    /// caller generated fresh for it, if it creates one: its state is known
    /// without reading it (empty).
    fn created_stream(&self) -> Option<StreamRef> {
        None
    }

    /// Streams `decide` also reads, named by the state of those loaded so
    /// far (see `CommandEnvelope::dependent_streams`).
    fn dependent_streams(&self, _ctx: &Context<'_>) -> Vec<StreamRef> {
        Vec::new()
    }

    /// Decides the command against the loaded states.
    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError>;
}

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
    states: &'a dyn States,
}

impl<'a> Context<'a> {
    pub(crate) fn new(project_id: ProjectId, now: Timestamp, states: &'a dyn States) -> Self {
        Self {
            project_id,
            now,
            states,
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    /// The state at `stream` if it is a `T`, whichever project it belongs to
    /// (for shared and guard streams, and for naming dependent streams).
    pub(crate) fn state<T: Any>(&self, stream: &StreamRef) -> Option<&T> {
        self.states.state(stream)?.downcast_ref()
    }

    /// The state at `stream` if it is a `T` of the caller's project: another
    /// project's resource is indistinguishable from a missing one.
    pub(crate) fn owned<T: Owned>(&self, stream: &StreamRef) -> Option<&T> {
        self.state::<T>(stream)
            .filter(|state| state.project_id() == self.project_id)
    }

    /// Whether `stream` has no event yet.
    pub(crate) fn is_new(&self, stream: &StreamRef) -> bool {
        self.states.state(stream).is_none()
    }

    pub(crate) fn must_be_new(
        &self,
        stream: &StreamRef,
        kind: &'static str,
        id: impl std::fmt::Display,
    ) -> Result<(), DomainError> {
        if self.is_new(stream) {
            Ok(())
        } else {
            Err(DomainError::AlreadyExists {
                kind,
                id: id.to_string(),
            })
        }
    }

    /// Replaces the meta of `resource`, a `T` of the caller's project
    /// (`kind` names it in the not-found error), with the event `updated`
    /// builds.
    pub(crate) fn replace_meta<T: Owned, E>(
        &self,
        resource: ResourceRef,
        kind: &'static str,
        meta: &Meta,
        updated: impl FnOnce(MetaUpdated) -> E,
    ) -> Result<Decided<E>, DomainError> {
        let stream = resource.stream();
        if self.owned::<T>(&stream).is_none() {
            return Err(DomainError::not_found(kind, stream.instance()));
        }
        let event = updated(MetaUpdated { meta: meta.clone() });
        Ok((vec![(stream, event)], resource))
    }
}

/// An event that does not apply to `state`: a bug, caught in debug builds;
/// release builds keep the state. Every family's `evolve` ends with it.
pub(crate) fn misapplied<S: Debug, E: Debug>(state: S, event: &E) -> S {
    debug_assert!(false, "{event:?} does not apply to {state:?}");
    state
}
