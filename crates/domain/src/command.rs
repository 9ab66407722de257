//! The router of commands: `decide(state, command) -> events`, pure.
//!
//! IDs and the current time arrive inside the command; the caller loads the
//! state of every stream [`CommandEnvelope::streams`] names and passes it in
//! through [`Lookup`]. [`Command`] wraps each family's own command enum
//! (`TransferCommand`, …); the family says which streams its commands read
//! and decides them (its `FamilyCommand` implementation, in
//! `<family>/command.rs`), emitting its families' events, wrapped here as
//! [`Event`]s. The router's own concern is idempotency: a key's record is
//! read and written here, around whatever the family decides.

use std::any::Any;

use crate::account::AccountCommand;
use crate::aggregate::{Aggregate, IdempotencyRecord};
use crate::aggregated_account::AggregatedAccountCommand;
use crate::aggregation_connection::AggregationConnectionCommand;
use crate::aggregation_import::AggregationImportCommand;
use crate::bank_account::BankAccountCommand;
use crate::bank_payin::BankPayinCommand;
use crate::bank_payout::BankPayoutCommand;
use crate::card::CardCommand;
use crate::card_payin::CardPayinCommand;
use crate::consumer::ConsumerCommand;
use crate::context::{Context, Decided, FamilyCommand, States};
use crate::customer::CustomerCommand;
use crate::deployment::DeploymentCommand;
use crate::events::{Event, IdempotencyKeyUsed, ResourceRef};
use crate::file::FileCommand;
use crate::fx_rate::FxRateCommand;
use crate::institution::InstitutionCommand;
use crate::kernel::error::{DomainError, Refusal};
use crate::kernel::id::ProjectId;
use crate::kernel::stream::StreamRef;
use crate::kernel::time::Timestamp;
use crate::project::ProjectCommand;
use crate::transfer::TransferCommand;

pub use crate::kernel::idempotency::{IDEMPOTENCY_WINDOW_SECONDS, IdempotencyKey, MAX_IDEMPOTENCY_KEY_CHARS};

/// Read access to the current state of the streams a command needs.
pub trait Lookup {
    fn get(&self, stream: &StreamRef) -> &Aggregate;
}

/// The decision context's view of a [`Lookup`]: each stream's state as its
/// family's own type.
struct Loaded<'a>(&'a dyn Lookup);

impl States for Loaded<'_> {
    fn state(&self, stream: &StreamRef) -> Option<&dyn Any> {
        self.0.get(stream).family_state()
    }
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

/// `Command`, one variant per family wrapping that family's own command
/// enum, `From<…Command> for Command`, and the dispatch to the family's
/// [`FamilyCommand`] implementation: one line per family below.
macro_rules! command_families {
    ($($variant:ident($family_command:ident)),+ $(,)?) => {
        /// Every command of the domain: one variant per family, wrapping that
        /// family's own command enum. Build one from a family's command with
        /// `.into()` (`TransferCommand::CreateTransfer { .. }.into()`).
        // A customer's identity makes its variant the largest, as it made the
        // customer commands the largest of the flat enum before; a command is
        // built once and moved a few times, so boxing would only add an
        // allocation.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Command {
            $($variant($family_command),)+
        }

        $(impl From<$family_command> for Command {
            fn from(command: $family_command) -> Self {
                Self::$variant(command)
            }
        })+

        impl Command {
            /// The command as its family's, deciding into [`Event`].
            fn family(&self) -> &dyn FamilyCommand<Event> {
                match self {
                    $(Self::$variant(command) => command,)+
                }
            }

            /// The command's name, as its family's enum names it
            /// (`CreateTransfer`): for logs and traces, without its fields.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(command) => command.into(),)+
                }
            }
        }
    };
}

command_families! {
    Project(ProjectCommand),
    Deployment(DeploymentCommand),
    Customer(CustomerCommand),
    Account(AccountCommand),
    Transfer(TransferCommand),
    Card(CardCommand),
    CardPayin(CardPayinCommand),
    BankAccount(BankAccountCommand),
    BankPayout(BankPayoutCommand),
    BankPayin(BankPayinCommand),
    File(FileCommand),
    FxRate(FxRateCommand),
    Consumer(ConsumerCommand),
    Institution(InstitutionCommand),
    AggregationConnection(AggregationConnectionCommand),
    AggregationImport(AggregationImportCommand),
    AggregatedAccount(AggregatedAccountCommand),
}

/// A command in the context it runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandEnvelope {
    /// The project the caller acts in (for `CreateProject`, the new project).
    pub project_id: ProjectId,
    pub now: Timestamp,
    pub idempotency: Option<IdempotencyKey>,
    pub command: Command,
}

impl CommandEnvelope {
    /// Every stream whose state `decide` reads, in a stable order.
    pub fn streams(&self) -> Vec<StreamRef> {
        let project = self.project_id;
        let mut streams = vec![StreamRef::Project(project)];
        self.command.family().streams(project, &mut streams);
        if let Some(key) = &self.idempotency {
            streams.extend(key.streams(project));
        }
        streams
    }
}

impl CommandEnvelope {
    /// The stream of the resource this command creates, named by an ID the
    /// caller generated fresh for it. Its state is known without reading it:
    /// empty. (If it were not, the append's `NoStream` expectation fails.)
    pub fn created_stream(&self) -> Option<StreamRef> {
        self.command.family().created_stream()
    }

    /// Streams `decide` also reads, whose names depend on the state of the
    /// streams loaded so far (the account of a payin, the exchange rate of a
    /// transfer's currencies, the reference a concept names …). Callers load
    /// these and ask again until nothing new is named; every answer is a
    /// subset of the next, and the chain is at most three steps long.
    pub fn dependent_streams(&self, lookup: &dyn Lookup) -> Vec<StreamRef> {
        let loaded = Loaded(lookup);
        let ctx = Context::new(self.project_id, self.now, &loaded);
        self.command.family().dependent_streams(&ctx)
    }
}

/// Decides what `envelope` does to the state visible through `lookup`.
pub fn decide(envelope: &CommandEnvelope, lookup: &dyn Lookup) -> Result<Decision, DomainError> {
    let Some(key) = &envelope.idempotency else {
        let (events, resource) = decide_command(envelope, lookup)?;
        return Ok(Decision::Apply { events, resource });
    };
    if let Some(record) = live_record(key, envelope.project_id, envelope.now, lookup) {
        return if record.request_hash == key.request_hash {
            Ok(Decision::Replay {
                resource: record.resource,
            })
        } else {
            Err(DomainError::refused(
                Refusal::IdempotencyKeyReused,
                "idempotency key was already used with different parameters in the last 24 hours",
            ))
        };
    }
    let (mut events, resource) = decide_command(envelope, lookup)?;
    events.push((
        StreamRef::Idempotency(envelope.project_id, key.stored.clone()),
        Event::IdempotencyKeyUsed(IdempotencyKeyUsed {
            project_id: envelope.project_id,
            verbatim_key: None,
            request_hash: key.request_hash,
            resource,
            used_at: envelope.now,
        }),
    ));
    Ok(Decision::Apply { events, resource })
}

/// The live record of an earlier use of `key`, if any.
fn live_record<'a>(
    key: &IdempotencyKey,
    project: ProjectId,
    now: Timestamp,
    lookup: &'a dyn Lookup,
) -> Option<&'a IdempotencyRecord> {
    key.streams(project).find_map(|stream| match lookup.get(&stream) {
        Aggregate::Idempotency(record) if now < record.window_ends_at() => Some(record),
        _ => None,
    })
}

fn decide_command(envelope: &CommandEnvelope, lookup: &dyn Lookup) -> Result<Decided<Event>, DomainError> {
    let loaded = Loaded(lookup);
    let ctx = Context::new(envelope.project_id, envelope.now, &loaded);
    envelope.command.family().decide(&ctx)
}
