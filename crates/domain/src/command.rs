//! The router of commands: `decide(state, command) -> events`, pure.
//!
//! IDs and the current time arrive inside the command; the caller loads the
//! state of every stream [`CommandEnvelope::streams`] names and passes it in
//! through [`Lookup`]. Each command goes to its family's decider, which reads
//! the loaded states through the decision context (as its family's own
//! types) and emits its families' events, wrapped here as [`Event`]s. The
//! router's own concern is idempotency: a key's record is read and written
//! here, around whatever the family decides.

use std::any::Any;

use crate::aggregate::Aggregate;
use crate::api_key::KeyKind;
use crate::bank::PayinReferenceCode;
use crate::bank_payin::IncomingBankTransfer;
use crate::bank_payout::NewBankPayout;
use crate::card::{CardInfo, CardSource};
use crate::card_payin::{NetworkVerdict, NewCardPayin, NewRefund};
use crate::consumer::PositionCommit;
use crate::customer::identity_files;
use crate::error::{DomainError, Refusal};
use crate::events::*;
use crate::id::*;
use crate::identity::Identity;
use crate::kernel::fx::Rate;
use crate::meta::Meta;
use crate::money::{Currency, Money};
use crate::project::Environment;
use crate::stream::StreamRef;
use crate::time::Timestamp;

use crate::context::{Context, Decided, States};
pub use crate::idempotency::{IDEMPOTENCY_WINDOW_SECONDS, IdempotencyKey, MAX_IDEMPOTENCY_KEY_CHARS};

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    CreateProject {
        id: ProjectId,
        name: String,
        environment: Environment,
        meta: Meta,
    },
    /// The first start of a deployment: its sandbox project, created once
    /// however many servers start on one empty store ([`crate::deployment`]).
    BootstrapDeployment {
        id: ProjectId,
        name: String,
    },
    UpdateProject {
        meta: Meta,
    },
    CreateApiKey {
        id: ApiKeyId,
        kind: KeyKind,
        secret_hash: [u8; 32],
    },
    RevokeApiKey {
        id: ApiKeyId,
    },
    CreateCustomer {
        id: CustomerId,
        identity: Option<Identity>,
        meta: Meta,
    },
    UpdateCustomer {
        id: CustomerId,
        /// `Some(None)` clears the identity.
        identity: Option<Option<Identity>>,
        meta: Option<Meta>,
    },
    CreateAccount {
        id: AccountId,
        currency: Currency,
        customer_id: Option<CustomerId>,
        allow_negative_balance: bool,
        meta: Meta,
    },
    UpdateAccount {
        id: AccountId,
        allow_negative_balance: Option<bool>,
        meta: Option<Meta>,
        /// Sandbox only: set the balance, recorded as a `magic` transaction
        /// with this ID.
        balance: Option<(Money, TransactionId)>,
    },
    CreateTransfer {
        id: TransferId,
        source_account_id: AccountId,
        destination_account_id: AccountId,
        value: Money,
        meta: Meta,
        source_transaction_id: TransactionId,
        destination_transaction_id: TransactionId,
    },
    UpdateTransfer {
        id: TransferId,
        meta: Meta,
    },
    CreateCardToken {
        id: CardTokenId,
        card_info: CardInfo,
    },
    CreateCard {
        id: CardId,
        source: CardSource,
        customer_id: Option<CustomerId>,
        meta: Meta,
    },
    UpdateCard {
        id: CardId,
        meta: Meta,
    },
    CreateCardPayin(NewCardPayin),
    /// Sandbox: the cardholder went through 3-D Secure; `verdict` is the
    /// network's answer after it.
    CompleteCardPayinAuthentication {
        id: CardPayinId,
        verdict: NetworkVerdict,
    },
    /// Sandbox: the card network settled the payin.
    SettleCardPayin {
        id: CardPayinId,
        transaction_id: TransactionId,
    },
    UpdateCardPayin {
        id: CardPayinId,
        meta: Meta,
    },
    CreateCardPayinRefund(NewRefund),
    /// Sandbox: the refund reached the cardholder.
    CompleteCardPayinRefund {
        id: CardPayinRefundId,
    },
    /// Sandbox: the refund failed; its funds come back.
    FailCardPayinRefund {
        id: CardPayinRefundId,
        failure_transaction_id: TransactionId,
    },
    UpdateCardPayinRefund {
        id: CardPayinRefundId,
        meta: Meta,
    },
    CreateBankAccount {
        id: BankAccountId,
        info: BankAccountInfo,
        customer_id: Option<CustomerId>,
        meta: Meta,
    },
    UpdateBankAccount {
        id: BankAccountId,
        meta: Meta,
    },
    CreateBankPayout(NewBankPayout),
    /// Sandbox: the bank transfer was sent.
    CompleteBankPayout {
        id: BankPayoutId,
    },
    /// Sandbox: the bank transfer could not be sent; its funds come back.
    FailBankPayout {
        id: BankPayoutId,
        failure_transaction_id: TransactionId,
    },
    /// Sandbox: the destination bank sent a completed transfer back.
    ReturnBankPayout {
        id: BankPayoutId,
        failure_transaction_id: TransactionId,
    },
    UpdateBankPayout {
        id: BankPayoutId,
        meta: Meta,
    },
    CreateBankPayinReference {
        id: BankPayinReferenceId,
        account_id: AccountId,
        /// Generated codes to try, in order (see [`crate::bank`]).
        candidates: Vec<PayinReferenceCode>,
        meta: Meta,
    },
    UpdateBankPayinReference {
        id: BankPayinReferenceId,
        account_id: Option<AccountId>,
        meta: Option<Meta>,
    },
    /// Sandbox: an incoming bank transfer arrived.
    ReceiveBankPayin(IncomingBankTransfer),
    UpdateBankPayin {
        id: BankPayinId,
        meta: Meta,
    },
    RecordFile {
        id: FileId,
        sha256: [u8; 32],
        name: String,
        size: u64,
    },
    /// Platform-wide (not tied to the envelope's project).
    SetFxRate {
        from: Currency,
        to: Currency,
        mid_rate: Rate,
        spread_bps: u32,
    },
    RemoveFxRate {
        from: Currency,
        to: Currency,
    },
    /// A durable subscription consumer processed everything up to a position.
    /// Answers with the project as its resource (`ResourceRef` is `Copy` and
    /// names no consumer); read the consumer's stream for its checkpoint.
    CommitConsumerPosition(PositionCommit),
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
        match &self.command {
            Command::CreateProject { .. } | Command::UpdateProject { .. } => {}
            Command::BootstrapDeployment { .. } => streams.push(StreamRef::Deployment),
            Command::CreateApiKey { id, .. } | Command::RevokeApiKey { id } => {
                streams.push(StreamRef::ApiKey(*id))
            }
            Command::CreateCustomer { id, identity, .. } => {
                streams.push(StreamRef::Customer(*id));
                streams.extend(identity_files(identity.as_ref()).map(StreamRef::File));
            }
            Command::UpdateCustomer { id, identity, .. } => {
                streams.push(StreamRef::Customer(*id));
                streams
                    .extend(identity_files(identity.as_ref().and_then(Option::as_ref)).map(StreamRef::File));
            }
            Command::CreateAccount { id, customer_id, .. } => {
                streams.push(StreamRef::Account(*id));
                streams.extend(customer_id.map(StreamRef::Customer));
            }
            Command::UpdateAccount { id, balance, .. } => {
                streams.push(StreamRef::Account(*id));
                if let Some((value, _)) = balance {
                    streams.push(StreamRef::ProjectBalance(project, value.currency));
                }
            }
            Command::CreateTransfer {
                id,
                source_account_id,
                destination_account_id,
                ..
            } => {
                streams.push(StreamRef::Transfer(*id));
                streams.push(StreamRef::Account(*source_account_id));
                streams.push(StreamRef::Account(*destination_account_id));
            }
            Command::UpdateTransfer { id, .. } => streams.push(StreamRef::Transfer(*id)),
            Command::CreateCardToken { id, .. } => streams.push(StreamRef::CardToken(*id)),
            Command::CreateCard {
                id,
                source,
                customer_id,
                ..
            } => {
                streams.push(StreamRef::Card(*id));
                streams.extend(source.stream());
                streams.extend(customer_id.map(StreamRef::Customer));
            }
            Command::UpdateCard { id, .. } => streams.push(StreamRef::Card(*id)),
            Command::CreateCardPayin(new) => {
                streams.push(StreamRef::CardPayin(new.id));
                streams.push(StreamRef::Account(new.account_id));
                streams.extend(new.source.stream());
            }
            Command::CompleteCardPayinAuthentication { id, .. }
            | Command::SettleCardPayin { id, .. }
            | Command::UpdateCardPayin { id, .. } => streams.push(StreamRef::CardPayin(*id)),
            Command::CreateCardPayinRefund(new) => {
                streams.push(StreamRef::CardPayinRefund(new.id));
                streams.push(StreamRef::CardPayin(new.card_payin_id));
                streams.extend(new.account_id.map(StreamRef::Account));
            }
            Command::CompleteCardPayinRefund { id }
            | Command::FailCardPayinRefund { id, .. }
            | Command::UpdateCardPayinRefund { id, .. } => streams.push(StreamRef::CardPayinRefund(*id)),
            Command::CreateBankAccount { id, customer_id, .. } => {
                streams.push(StreamRef::BankAccount(*id));
                streams.extend(customer_id.map(StreamRef::Customer));
            }
            Command::UpdateBankAccount { id, .. } => streams.push(StreamRef::BankAccount(*id)),
            Command::CreateBankPayout(new) => {
                streams.push(StreamRef::BankPayout(new.id));
                streams.push(StreamRef::Account(new.account_id));
                streams.push(StreamRef::ProjectBalance(project, new.value.currency));
                streams.push(new.destination.stream());
            }
            Command::CompleteBankPayout { id }
            | Command::FailBankPayout { id, .. }
            | Command::ReturnBankPayout { id, .. }
            | Command::UpdateBankPayout { id, .. } => streams.push(StreamRef::BankPayout(*id)),
            Command::CreateBankPayinReference {
                id,
                account_id,
                candidates,
                ..
            } => {
                streams.push(StreamRef::BankPayinReference(*id));
                streams.push(StreamRef::Account(*account_id));
                streams.extend(candidates.iter().map(|code| StreamRef::PayinReferenceCode(*code)));
            }
            Command::UpdateBankPayinReference { id, account_id, .. } => {
                streams.push(StreamRef::BankPayinReference(*id));
                streams.extend(account_id.map(StreamRef::Account));
            }
            Command::ReceiveBankPayin(incoming) => {
                streams.push(StreamRef::BankPayin(incoming.id));
                streams.push(StreamRef::ProjectBalance(project, incoming.value.currency));
                streams.extend(
                    incoming
                        .candidate_codes()
                        .into_iter()
                        .map(StreamRef::PayinReferenceCode),
                );
            }
            Command::UpdateBankPayin { id, .. } => streams.push(StreamRef::BankPayin(*id)),
            Command::RecordFile { id, .. } => streams.push(StreamRef::File(*id)),
            Command::SetFxRate { from, to, .. } | Command::RemoveFxRate { from, to } => {
                streams.push(StreamRef::FxRate(*from, *to))
            }
            Command::CommitConsumerPosition(commit) => {
                streams.push(StreamRef::Consumer(project, commit.consumer.clone()))
            }
        }
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
        match &self.command {
            Command::CreateProject { id, .. } | Command::BootstrapDeployment { id, .. } => {
                Some(StreamRef::Project(*id))
            }
            Command::CreateApiKey { id, .. } => Some(StreamRef::ApiKey(*id)),
            Command::CreateCustomer { id, .. } => Some(StreamRef::Customer(*id)),
            Command::CreateAccount { id, .. } => Some(StreamRef::Account(*id)),
            Command::CreateTransfer { id, .. } => Some(StreamRef::Transfer(*id)),
            Command::CreateCardToken { id, .. } => Some(StreamRef::CardToken(*id)),
            Command::CreateCard { id, .. } => Some(StreamRef::Card(*id)),
            Command::CreateCardPayin(new) => Some(StreamRef::CardPayin(new.id)),
            Command::CreateCardPayinRefund(new) => Some(StreamRef::CardPayinRefund(new.id)),
            Command::CreateBankAccount { id, .. } => Some(StreamRef::BankAccount(*id)),
            Command::CreateBankPayout(new) => Some(StreamRef::BankPayout(new.id)),
            Command::CreateBankPayinReference { id, .. } => Some(StreamRef::BankPayinReference(*id)),
            Command::ReceiveBankPayin(incoming) => Some(StreamRef::BankPayin(incoming.id)),
            Command::RecordFile { id, .. } => Some(StreamRef::File(*id)),
            _ => None,
        }
    }

    /// Streams `decide` also reads, whose names depend on the state of the
    /// streams loaded so far (the account of a payin, the exchange rate of a
    /// transfer's currencies, the reference a concept names …). Callers load
    /// these and ask again until nothing new is named; every answer is a
    /// subset of the next, and the chain is at most three steps long.
    pub fn dependent_streams(&self, lookup: &dyn Lookup) -> Vec<StreamRef> {
        let loaded = Loaded(lookup);
        let ctx = Context::new(self.project_id, self.now, &loaded);
        match &self.command {
            Command::CreateTransfer {
                source_account_id,
                destination_account_id,
                ..
            } => ctx.dependent_streams_of_transfer(*source_account_id, *destination_account_id),
            Command::SettleCardPayin { id, .. } => ctx.dependent_streams_of_settlement(*id),
            Command::CreateCardPayinRefund(new) => ctx.dependent_streams_of_refund(new),
            Command::FailCardPayinRefund { id, .. } => ctx.dependent_streams_of_refund_failure(*id),
            Command::CreateBankPayout(new) => ctx.dependent_streams_of_payout(new),
            Command::FailBankPayout { id, .. } | Command::ReturnBankPayout { id, .. } => {
                ctx.dependent_streams_of_payout_reversal(*id)
            }
            Command::ReceiveBankPayin(incoming) => ctx.dependent_streams_of_bank_payin(incoming),
            _ => Vec::new(),
        }
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
) -> Option<&'a crate::aggregate::IdempotencyRecord> {
    key.streams(project).find_map(|stream| match lookup.get(&stream) {
        Aggregate::Idempotency(record) if now < record.window_ends_at() => Some(record),
        _ => None,
    })
}

fn decide_command(envelope: &CommandEnvelope, lookup: &dyn Lookup) -> Result<Decided<Event>, DomainError> {
    let loaded = Loaded(lookup);
    let ctx = Context::new(envelope.project_id, envelope.now, &loaded);
    match &envelope.command {
        Command::CreateProject {
            id,
            name,
            environment,
            meta,
        } => ctx.create_project(*id, name, *environment, meta),
        Command::UpdateProject { meta } => ctx.update_project(meta),
        Command::BootstrapDeployment { id, name } => ctx.bootstrap_deployment(*id, name),
        Command::CreateApiKey {
            id,
            kind,
            secret_hash,
        } => ctx.create_api_key(*id, *kind, *secret_hash),
        Command::RevokeApiKey { id } => ctx.revoke_api_key(*id),
        Command::CreateCustomer { id, identity, meta } => ctx.create_customer(*id, identity, meta),
        Command::UpdateCustomer { id, identity, meta } => ctx.update_customer(*id, identity, meta),
        Command::CreateAccount {
            id,
            currency,
            customer_id,
            allow_negative_balance,
            meta,
        } => ctx.create_account(*id, *currency, *customer_id, *allow_negative_balance, meta),
        Command::UpdateAccount {
            id,
            allow_negative_balance,
            meta,
            balance,
        } => ctx.update_account(*id, *allow_negative_balance, meta, *balance),
        Command::CreateTransfer {
            id,
            source_account_id,
            destination_account_id,
            value,
            meta,
            source_transaction_id,
            destination_transaction_id,
        } => ctx.create_transfer(
            *id,
            (*source_account_id, *source_transaction_id),
            (*destination_account_id, *destination_transaction_id),
            *value,
            meta,
        ),
        Command::UpdateTransfer { id, meta } => ctx.update_transfer(*id, meta),
        Command::CreateCardToken { id, card_info } => ctx.create_card_token(*id, card_info),
        Command::CreateCard {
            id,
            source,
            customer_id,
            meta,
        } => ctx.create_card(*id, source, *customer_id, meta),
        Command::UpdateCard { id, meta } => ctx.update_card(*id, meta),
        Command::CreateCardPayin(new) => ctx.create_card_payin(new),
        Command::CompleteCardPayinAuthentication { id, verdict } => {
            ctx.complete_card_payin_authentication(*id, *verdict)
        }
        Command::SettleCardPayin { id, transaction_id } => ctx.settle_card_payin(*id, *transaction_id),
        Command::UpdateCardPayin { id, meta } => ctx.update_card_payin(*id, meta),
        Command::CreateCardPayinRefund(new) => ctx.create_refund(new),
        Command::CompleteCardPayinRefund { id } => ctx.complete_refund(*id),
        Command::FailCardPayinRefund {
            id,
            failure_transaction_id,
        } => ctx.fail_refund(*id, *failure_transaction_id),
        Command::UpdateCardPayinRefund { id, meta } => ctx.update_card_payin_refund(*id, meta),
        Command::CreateBankAccount {
            id,
            info,
            customer_id,
            meta,
        } => ctx.create_bank_account(*id, info, *customer_id, meta),
        Command::UpdateBankAccount { id, meta } => ctx.update_bank_account(*id, meta),
        Command::CreateBankPayout(new) => ctx.create_bank_payout(new),
        Command::CompleteBankPayout { id } => ctx.complete_bank_payout(*id),
        Command::FailBankPayout {
            id,
            failure_transaction_id,
        } => ctx.reverse_bank_payout(*id, *failure_transaction_id, false),
        Command::ReturnBankPayout {
            id,
            failure_transaction_id,
        } => ctx.reverse_bank_payout(*id, *failure_transaction_id, true),
        Command::UpdateBankPayout { id, meta } => ctx.update_bank_payout(*id, meta),
        Command::CreateBankPayinReference {
            id,
            account_id,
            candidates,
            meta,
        } => ctx.create_bank_payin_reference(*id, *account_id, candidates, meta),
        Command::UpdateBankPayinReference { id, account_id, meta } => {
            ctx.update_bank_payin_reference(*id, *account_id, meta)
        }
        Command::ReceiveBankPayin(incoming) => ctx.receive_bank_payin(incoming),
        Command::UpdateBankPayin { id, meta } => ctx.update_bank_payin(*id, meta),
        Command::RecordFile {
            id,
            sha256,
            name,
            size,
        } => ctx.record_file(*id, *sha256, name, *size),
        Command::SetFxRate {
            from,
            to,
            mid_rate,
            spread_bps,
        } => ctx.set_fx_rate(*from, *to, *mid_rate, *spread_bps),
        Command::RemoveFxRate { from, to } => ctx.remove_fx_rate(*from, *to),
        Command::CommitConsumerPosition(commit) => ctx.commit_consumer_position(commit),
    }
}
