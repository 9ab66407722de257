//! Commands and the decider: `decide(state, command) -> events`, pure.
//!
//! IDs and the current time arrive inside the command; the caller loads the
//! state of every stream [`CommandEnvelope::streams`] names and passes it in
//! through [`Lookup`].

use crate::aggregate::{Account, Aggregate};
use crate::api_key::KeyKind;
use crate::bank::PayinReferenceCode;
use crate::banking::{IncomingBankTransfer, NewBankPayout, PayoutDestinationSource};
use crate::card::CardInfo;
use crate::consumer::PositionCommit;
use crate::error::{DomainError, Refusal, Violations};
use crate::events::*;
use crate::fx::Rate;
use crate::id::*;
use crate::identity::{Identity, IdentityDocument};
use crate::meta::Meta;
use crate::money::{Currency, Money};
use crate::payments::{CardSource, NetworkVerdict, NewCardPayin, NewRefund};
use crate::project::Environment;
use crate::stream::StreamRef;
use crate::time::Timestamp;

pub use crate::idempotency::{IDEMPOTENCY_WINDOW_SECONDS, IdempotencyKey, MAX_IDEMPOTENCY_KEY_CHARS};

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
                streams.extend(source_stream(source));
                streams.extend(customer_id.map(StreamRef::Customer));
            }
            Command::UpdateCard { id, .. } => streams.push(StreamRef::Card(*id)),
            Command::CreateCardPayin(new) => {
                streams.push(StreamRef::CardPayin(new.id));
                streams.push(StreamRef::Account(new.account_id));
                streams.extend(source_stream(&new.source));
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
                match &new.destination {
                    PayoutDestinationSource::BankAccount(id) => streams.push(StreamRef::BankAccount(*id)),
                    PayoutDestinationSource::Info(info) => {
                        streams.push(StreamRef::PayoutDestination(info.iban.clone()))
                    }
                }
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
        let project = self.project_id;
        let balance = |value: Money| StreamRef::ProjectBalance(project, value.currency);
        let mut streams = Vec::new();
        match &self.command {
            Command::CreateTransfer {
                source_account_id,
                destination_account_id,
                ..
            } => {
                let source = lookup.get(&StreamRef::Account(*source_account_id)).as_account();
                let destination = lookup
                    .get(&StreamRef::Account(*destination_account_id))
                    .as_account();
                if let (Some(source), Some(destination)) = (source, destination)
                    && source.currency() != destination.currency()
                {
                    streams.push(StreamRef::FxRate(source.currency(), destination.currency()));
                    streams.push(StreamRef::ProjectBalance(project, source.currency()));
                    streams.push(StreamRef::ProjectBalance(project, destination.currency()));
                }
            }
            Command::SettleCardPayin { id, .. } => {
                if let Some(payin) = lookup.get(&StreamRef::CardPayin(*id)).as_card_payin() {
                    streams.push(StreamRef::Account(payin.account_id));
                    streams.push(balance(payin.value));
                }
            }
            Command::CreateCardPayinRefund(new) => {
                if let Some(payin) = lookup
                    .get(&StreamRef::CardPayin(new.card_payin_id))
                    .as_card_payin()
                {
                    streams.push(StreamRef::Account(new.account_id.unwrap_or(payin.account_id)));
                    streams.push(balance(payin.value));
                }
            }
            Command::FailCardPayinRefund { id, .. } => {
                if let Some(refund) = lookup
                    .get(&StreamRef::CardPayinRefund(*id))
                    .as_card_payin_refund()
                {
                    streams.push(StreamRef::CardPayin(refund.card_payin_id));
                    streams.push(StreamRef::Account(refund.account_id));
                    streams.push(balance(refund.value));
                }
            }
            Command::CreateBankPayout(new) => {
                if let PayoutDestinationSource::BankAccount(id) = &new.destination
                    && let Some(stored) = lookup.get(&StreamRef::BankAccount(*id)).as_bank_account()
                {
                    streams.push(StreamRef::PayoutDestination(
                        stored.bank_account_info.iban.clone(),
                    ));
                }
            }
            Command::FailBankPayout { id, .. } | Command::ReturnBankPayout { id, .. } => {
                if let Some(payout) = lookup.get(&StreamRef::BankPayout(*id)).as_bank_payout() {
                    streams.push(StreamRef::Account(payout.account_id));
                    streams.push(balance(payout.value));
                }
            }
            Command::ReceiveBankPayin(incoming) => {
                let ctx = Context {
                    envelope: self,
                    lookup,
                };
                if let Some(reference_id) = ctx.claimed_reference(&incoming.candidate_codes()) {
                    let stream = StreamRef::BankPayinReference(reference_id);
                    if let Some(reference) = lookup.get(&stream).as_bank_payin_reference() {
                        streams.push(StreamRef::Account(reference.account_id));
                    }
                    streams.push(stream);
                }
            }
            _ => {}
        }
        streams
    }
}

/// The stream a card source reads, if it names a token or a stored card.
fn source_stream(source: &CardSource) -> Option<StreamRef> {
    match source {
        CardSource::Info(_) => None,
        CardSource::Token(id) => Some(StreamRef::CardToken(*id)),
        CardSource::Card(id) => Some(StreamRef::Card(*id)),
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

pub(crate) type Decided = (Vec<(StreamRef, Event)>, ResourceRef);

fn decide_command(envelope: &CommandEnvelope, lookup: &dyn Lookup) -> Result<Decided, DomainError> {
    let ctx = Context { envelope, lookup };
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
        Command::UpdateTransfer { id, meta } => ctx.replace_meta(
            ResourceRef::Transfer(*id),
            "transfer",
            meta,
            Event::TransferMetaUpdated,
        ),
        Command::CreateCardToken { id, card_info } => ctx.create_card_token(*id, card_info),
        Command::CreateCard {
            id,
            source,
            customer_id,
            meta,
        } => ctx.create_card(*id, source, *customer_id, meta),
        Command::UpdateCard { id, meta } => {
            ctx.replace_meta(ResourceRef::Card(*id), "card", meta, Event::CardMetaUpdated)
        }
        Command::CreateCardPayin(new) => ctx.create_card_payin(new),
        Command::CompleteCardPayinAuthentication { id, verdict } => {
            ctx.complete_card_payin_authentication(*id, *verdict)
        }
        Command::SettleCardPayin { id, transaction_id } => ctx.settle_card_payin(*id, *transaction_id),
        Command::UpdateCardPayin { id, meta } => ctx.replace_meta(
            ResourceRef::CardPayin(*id),
            "card payin",
            meta,
            Event::CardPayinMetaUpdated,
        ),
        Command::CreateCardPayinRefund(new) => ctx.create_refund(new),
        Command::CompleteCardPayinRefund { id } => ctx.complete_refund(*id),
        Command::FailCardPayinRefund {
            id,
            failure_transaction_id,
        } => ctx.fail_refund(*id, *failure_transaction_id),
        Command::UpdateCardPayinRefund { id, meta } => ctx.replace_meta(
            ResourceRef::CardPayinRefund(*id),
            "card payin refund",
            meta,
            Event::CardPayinRefundMetaUpdated,
        ),
        Command::CreateBankAccount {
            id,
            info,
            customer_id,
            meta,
        } => ctx.create_bank_account(*id, info, *customer_id, meta),
        Command::UpdateBankAccount { id, meta } => ctx.replace_meta(
            ResourceRef::BankAccount(*id),
            "bank account",
            meta,
            Event::BankAccountMetaUpdated,
        ),
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
        Command::UpdateBankPayout { id, meta } => ctx.replace_meta(
            ResourceRef::BankPayout(*id),
            "bank payout",
            meta,
            Event::BankPayoutMetaUpdated,
        ),
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
        Command::UpdateBankPayin { id, meta } => ctx.replace_meta(
            ResourceRef::BankPayin(*id),
            "bank payin",
            meta,
            Event::BankPayinMetaUpdated,
        ),
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

pub(crate) struct Context<'a> {
    pub(crate) envelope: &'a CommandEnvelope,
    pub(crate) lookup: &'a dyn Lookup,
}

impl Context<'_> {
    pub(crate) fn now(&self) -> Timestamp {
        self.envelope.now
    }

    pub(crate) fn require_sandbox(&self, what: &str) -> Result<(), DomainError> {
        if self.project()?.environment == Environment::Sandbox {
            Ok(())
        } else {
            Err(DomainError::refused(
                Refusal::SandboxOnly,
                format!("{what} is only possible in sandbox projects"),
            ))
        }
    }

    /// Replaces the meta of `resource`, a resource of the caller's project
    /// (`kind` names it in the not-found error).
    fn replace_meta(
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

    pub(crate) fn customer(&self, id: CustomerId) -> Result<&crate::aggregate::Customer, DomainError> {
        self.owned(&StreamRef::Customer(id))
            .and_then(Aggregate::as_customer)
            .ok_or_else(|| DomainError::not_found("customer", id))
    }

    /// One balance change of `account`: the transaction, and when money
    /// enters or leaves the project (`crosses_boundary`), the change of the
    /// project's total in the currency. Refuses what would take the account
    /// below zero (unless it allows it) or the project's total below zero.
    pub(crate) fn movement(
        &self,
        account: &Account,
        kind: TransactionKind,
        value: Money,
        transaction_id: TransactionId,
        crosses_boundary: bool,
    ) -> Result<Vec<(StreamRef, Event)>, DomainError> {
        debug_assert_eq!(value.currency, account.currency());
        debug_assert_ne!(value.amount, 0);
        let balance_after = account.balance.checked_add(value).map_err(|_| overflow())?;
        if value.is_negative() && balance_after.is_negative() && !account.allow_negative_balance {
            return Err(DomainError::refused(
                Refusal::InsufficientFunds,
                format!(
                    "account {} has {}, cannot take {}",
                    account.id,
                    account.balance,
                    value.checked_neg().map_err(|_| overflow())?
                ),
            ));
        }
        let transaction = Transaction {
            id: transaction_id,
            account_id: account.id,
            project_id: account.project_id,
            kind,
            value,
            balance_after,
            created_at: self.now(),
        };
        let mut events = vec![(
            StreamRef::Account(account.id),
            Event::TransactionRecorded(TransactionRecorded { transaction }),
        )];
        if crosses_boundary {
            events.push(self.project_total_change(account, value, transaction_id)?);
        }
        Ok(events)
    }

    fn project_total_change(
        &self,
        account: &Account,
        delta: Money,
        transaction_id: TransactionId,
    ) -> Result<(StreamRef, Event), DomainError> {
        let totals = StreamRef::ProjectBalance(account.project_id, delta.currency);
        let total = match self.lookup.get(&totals) {
            Aggregate::ProjectBalance(balance) => balance.total,
            _ => Money::zero(delta.currency),
        };
        let total_after = total.checked_add(delta).map_err(|_| overflow())?;
        if delta.is_negative() && total_after.is_negative() {
            return Err(DomainError::refused(
                Refusal::ProjectBalanceNegative,
                format!(
                    "the sum of the project's {} balances would be {total_after}; it must stay at or above zero",
                    delta.currency
                ),
            ));
        }
        Ok((
            totals,
            Event::ProjectBalanceChanged(ProjectBalanceChanged {
                project_id: account.project_id,
                delta,
                total_after,
                account_id: account.id,
                transaction_id,
            }),
        ))
    }

    pub(crate) fn project(&self) -> Result<&crate::aggregate::Project, DomainError> {
        let id = self.envelope.project_id;
        self.lookup
            .get(&StreamRef::Project(id))
            .as_project()
            .ok_or_else(|| DomainError::not_found("project", id))
    }

    /// The aggregate at `stream` if it belongs to the caller's project: another
    /// project's resource is indistinguishable from a missing one.
    pub(crate) fn owned(&self, stream: &StreamRef) -> Option<&Aggregate> {
        let state = self.lookup.get(stream);
        (state.project_id() == Some(self.envelope.project_id)).then_some(state)
    }

    pub(crate) fn account(&self, id: AccountId) -> Result<&Account, DomainError> {
        self.owned(&StreamRef::Account(id))
            .and_then(Aggregate::as_account)
            .ok_or_else(|| DomainError::not_found("account", id))
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

    fn create_customer(
        &self,
        id: CustomerId,
        identity: &Option<Identity>,
        meta: &Meta,
    ) -> Result<Decided, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::Customer(id);
        self.must_be_new(&stream, "customer", id)?;
        validate_identity(identity)?;
        self.identity_files_exist(identity.as_ref())?;
        let event = Event::CustomerCreated(CustomerCreated {
            id,
            project_id: project.id,
            identity: identity.clone(),
            meta: meta.clone(),
            created_at: self.envelope.now,
        });
        Ok((vec![(stream, event)], ResourceRef::Customer(id)))
    }

    fn update_customer(
        &self,
        id: CustomerId,
        identity: &Option<Option<Identity>>,
        meta: &Option<Meta>,
    ) -> Result<Decided, DomainError> {
        let stream = StreamRef::Customer(id);
        self.owned(&stream)
            .and_then(Aggregate::as_customer)
            .ok_or_else(|| DomainError::not_found("customer", id))?;
        let mut events = Vec::new();
        if let Some(identity) = identity {
            validate_identity(identity)?;
            self.identity_files_exist(identity.as_ref())?;
            events.push((
                stream.clone(),
                Event::CustomerIdentityUpdated(CustomerIdentityUpdated {
                    identity: identity.clone(),
                }),
            ));
        }
        if let Some(meta) = meta {
            events.push((
                stream,
                Event::CustomerMetaUpdated(MetaUpdated { meta: meta.clone() }),
            ));
        }
        Ok((events, ResourceRef::Customer(id)))
    }

    /// Every file an identity document refers to is an upload of this
    /// project: another project's file is not found, like a missing one.
    fn identity_files_exist(&self, identity: Option<&Identity>) -> Result<(), DomainError> {
        for file in identity_files(identity) {
            self.owned(&StreamRef::File(file))
                .and_then(Aggregate::as_file)
                .ok_or_else(|| DomainError::not_found("file", file))?;
        }
        Ok(())
    }

    fn create_account(
        &self,
        id: AccountId,
        currency: Currency,
        customer_id: Option<CustomerId>,
        allow_negative_balance: bool,
        meta: &Meta,
    ) -> Result<Decided, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::Account(id);
        self.must_be_new(&stream, "account", id)?;
        if let Some(customer_id) = customer_id {
            self.owned(&StreamRef::Customer(customer_id))
                .and_then(Aggregate::as_customer)
                .ok_or_else(|| DomainError::not_found("customer", customer_id))?;
        }
        let event = Event::AccountOpened(AccountOpened {
            id,
            project_id: project.id,
            customer_id,
            currency,
            allow_negative_balance,
            meta: meta.clone(),
            created_at: self.envelope.now,
        });
        Ok((vec![(stream, event)], ResourceRef::Account(id)))
    }

    fn update_account(
        &self,
        id: AccountId,
        allow_negative_balance: Option<bool>,
        meta: &Option<Meta>,
        balance: Option<(Money, TransactionId)>,
    ) -> Result<Decided, DomainError> {
        let account = self.account(id)?;
        let stream = StreamRef::Account(id);
        let mut events = Vec::new();
        let allow_negative = allow_negative_balance.unwrap_or(account.allow_negative_balance);
        if let Some(allow) = allow_negative_balance.filter(|allow| *allow != account.allow_negative_balance) {
            events.push((
                stream.clone(),
                Event::NegativeBalanceAllowanceChanged(NegativeBalanceAllowanceChanged {
                    allow_negative_balance: allow,
                }),
            ));
        }
        let final_balance = match balance {
            Some((target, transaction_id)) => {
                events.extend(self.magic_balance(account, target, transaction_id, allow_negative)?);
                target
            }
            None => account.balance,
        };
        if !allow_negative && final_balance.is_negative() {
            return Err(DomainError::refused(
                Refusal::InsufficientFunds,
                format!(
                    "account {id} has a negative balance ({final_balance}); it must allow a negative balance"
                ),
            ));
        }
        if let Some(meta) = meta {
            events.push((
                stream,
                Event::AccountMetaUpdated(MetaUpdated { meta: meta.clone() }),
            ));
        }
        Ok((events, ResourceRef::Account(id)))
    }

    /// Sets an account's balance directly (sandbox only), keeping the project's
    /// total in the currency at or above zero.
    fn magic_balance(
        &self,
        account: &Account,
        target: Money,
        transaction_id: TransactionId,
        allow_negative: bool,
    ) -> Result<Vec<(StreamRef, Event)>, DomainError> {
        let project = self.project()?;
        if project.environment != Environment::Sandbox {
            return Err(DomainError::refused(
                Refusal::SandboxOnly,
                "setting a balance directly is only possible in sandbox projects",
            ));
        }
        if target.currency != account.currency() {
            return Err(DomainError::invalid(
                "balance.currency",
                format!("must be the account's currency, {}", account.currency()),
            ));
        }
        if target.is_negative() && !allow_negative {
            return Err(DomainError::invalid(
                "balance.amount",
                "negative balance requires allow_negative_balance",
            ));
        }
        let delta = target.checked_sub(account.balance).map_err(|_| overflow())?;
        if delta.amount == 0 {
            return Ok(Vec::new());
        }
        // The allowance may change in this same command.
        let account = Account {
            allow_negative_balance: allow_negative,
            ..account.clone()
        };
        self.movement(&account, TransactionKind::Magic, delta, transaction_id, true)
    }

    fn create_transfer(
        &self,
        id: TransferId,
        (source_id, source_tx): (AccountId, TransactionId),
        (destination_id, destination_tx): (AccountId, TransactionId),
        value: Money,
        meta: &Meta,
    ) -> Result<Decided, DomainError> {
        let mut violations = Violations::new();
        if value.amount <= 0 {
            violations.add("value.amount", "must be positive");
        }
        if source_id == destination_id {
            violations.add("destination_account_id", "must differ from source_account_id");
        }
        violations.into_result()?;
        let stream = StreamRef::Transfer(id);
        self.must_be_new(&stream, "transfer", id)?;
        let source = self.account(source_id)?;
        let destination = self.account(destination_id)?;
        if value.currency != source.currency() {
            return Err(DomainError::invalid(
                "value.currency",
                format!("must be the source account's currency, {}", source.currency()),
            ));
        }
        let exchange = self.exchange(value, destination.currency())?;
        let credit = exchange.map_or(value, |exchange| exchange.destination_value);
        let debit = value.checked_neg().map_err(|_| overflow())?;
        // A same-currency transfer leaves the project's total unchanged; an
        // exchange takes from one currency's total and adds to another's.
        let crosses = exchange.is_some();
        let mut events = vec![(
            stream,
            Event::TransferCreated(TransferCreated {
                id,
                project_id: self.envelope.project_id,
                source_account_id: source_id,
                destination_account_id: destination_id,
                source_transaction_id: source_tx,
                destination_transaction_id: destination_tx,
                value,
                meta: meta.clone(),
                created_at: self.now(),
                exchange,
            }),
        )];
        events.extend(self.movement(
            source,
            TransactionKind::TransferSource(id),
            debit,
            source_tx,
            crosses,
        )?);
        events.extend(self.movement(
            destination,
            TransactionKind::TransferDestination(id),
            credit,
            destination_tx,
            crosses,
        )?);
        Ok((events, ResourceRef::Transfer(id)))
    }

    /// The conversion of `value` into `to`, at the configured rate; `None`
    /// when no conversion is needed.
    fn exchange(&self, value: Money, to: Currency) -> Result<Option<Exchange>, DomainError> {
        let from = value.currency;
        if from == to {
            return Ok(None);
        }
        let unavailable = || {
            DomainError::refused(
                Refusal::FxRateUnavailable,
                format!("no exchange rate is configured from {from} to {to}"),
            )
        };
        let rate = match self.lookup.get(&StreamRef::FxRate(from, to)) {
            Aggregate::FxRate(entry) => entry.current.ok_or_else(unavailable)?,
            _ => return Err(unavailable()),
        };
        let impossible = |error: crate::fx::FxError| {
            DomainError::refused(
                Refusal::FxConversionImpossible,
                format!("{value} cannot be converted to {to}: {error}"),
            )
        };
        let quote = crate::fx::Quote::new(from, to, rate.mid_rate, rate.spread_bps).map_err(impossible)?;
        let conversion = crate::fx::convert(value, quote).map_err(impossible)?;
        Ok(Some(Exchange {
            destination_value: conversion.destination,
            mid_rate: rate.mid_rate,
            spread_bps: rate.spread_bps,
            rate_used: conversion.rate_used,
        }))
    }
}

pub(crate) fn overflow() -> DomainError {
    DomainError::refused(Refusal::BalanceOverflow, "the resulting balance would overflow")
}

/// The files an identity's document refers to, if any.
fn identity_files(identity: Option<&Identity>) -> impl Iterator<Item = FileId> + '_ {
    identity
        .and_then(|identity| identity.document.as_ref())
        .into_iter()
        .flat_map(IdentityDocument::file_ids)
}

fn validate_identity(identity: &Option<Identity>) -> Result<(), DomainError> {
    let mut violations = Violations::new();
    if let Some(identity) = identity {
        identity.validate("identity", &mut violations);
    }
    violations.into_result()
}
