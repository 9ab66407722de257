//! Commands and the decider: `decide(state, command) -> events`, pure.
//!
//! IDs and the current time arrive inside the command; the caller loads the
//! state of every stream [`CommandEnvelope::streams`] names and passes it in
//! through [`Lookup`].

use crate::aggregate::{Account, Aggregate};
use crate::api_key::KeyKind;
use crate::error::{DomainError, Refusal, Violations};
use crate::events::*;
use crate::id::{AccountId, ApiKeyId, CustomerId, ProjectId, TransactionId, TransferId};
use crate::identity::Identity;
use crate::meta::Meta;
use crate::money::{Currency, Money};
use crate::project::Environment;
use crate::stream::StreamRef;
use crate::time::Timestamp;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_SECONDS: i64 = 24 * 60 * 60;
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    CreateProject {
        id: ProjectId,
        name: String,
        environment: Environment,
        meta: Meta,
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
}

/// An idempotency key as sent by the client, with the hash of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: [u8; 32],
}

impl IdempotencyKey {
    /// Checks the key's shape: 1–255 printable ASCII characters.
    pub fn new(key: String, request_hash: [u8; 32]) -> Result<Self, DomainError> {
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_CHARS
            || !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(DomainError::invalid(
                "idempotency-key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters without spaces"),
            ));
        }
        Ok(Self { key, request_hash })
    }
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
            Command::CreateApiKey { id, .. } | Command::RevokeApiKey { id } => {
                streams.push(StreamRef::ApiKey(*id))
            }
            Command::CreateCustomer { id, .. } | Command::UpdateCustomer { id, .. } => {
                streams.push(StreamRef::Customer(*id))
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
        }
        if let Some(key) = &self.idempotency {
            streams.push(StreamRef::Idempotency(project, key.key.clone()));
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
            Command::CreateProject { id, .. } => Some(StreamRef::Project(*id)),
            Command::CreateApiKey { id, .. } => Some(StreamRef::ApiKey(*id)),
            Command::CreateCustomer { id, .. } => Some(StreamRef::Customer(*id)),
            Command::CreateAccount { id, .. } => Some(StreamRef::Account(*id)),
            Command::CreateTransfer { id, .. } => Some(StreamRef::Transfer(*id)),
            Command::UpdateProject { .. }
            | Command::RevokeApiKey { .. }
            | Command::UpdateCustomer { .. }
            | Command::UpdateAccount { .. }
            | Command::UpdateTransfer { .. } => None,
        }
    }
}

/// Decides what `envelope` does to the state visible through `lookup`.
pub fn decide(envelope: &CommandEnvelope, lookup: &dyn Lookup) -> Result<Decision, DomainError> {
    let Some(key) = &envelope.idempotency else {
        let (events, resource) = decide_command(envelope, lookup)?;
        return Ok(Decision::Apply { events, resource });
    };
    let stream = StreamRef::Idempotency(envelope.project_id, key.key.clone());
    if let Aggregate::Idempotency(record) = lookup.get(&stream)
        && envelope.now < record.used_at.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS)
    {
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
        stream,
        Event::IdempotencyKeyUsed(IdempotencyKeyUsed {
            project_id: envelope.project_id,
            key: key.key.clone(),
            request_hash: key.request_hash,
            resource,
            used_at: envelope.now,
        }),
    ));
    Ok(Decision::Apply { events, resource })
}

type Decided = (Vec<(StreamRef, Event)>, ResourceRef);

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
    }
}

struct Context<'a> {
    envelope: &'a CommandEnvelope,
    lookup: &'a dyn Lookup,
}

impl Context<'_> {
    fn project(&self) -> Result<&crate::aggregate::Project, DomainError> {
        let id = self.envelope.project_id;
        self.lookup
            .get(&StreamRef::Project(id))
            .as_project()
            .ok_or_else(|| DomainError::not_found("project", id))
    }

    /// The aggregate at `stream` if it belongs to the caller's project: another
    /// project's resource is indistinguishable from a missing one.
    fn owned(&self, stream: &StreamRef) -> Option<&Aggregate> {
        let state = self.lookup.get(stream);
        (state.project_id() == Some(self.envelope.project_id)).then_some(state)
    }

    fn account(&self, id: AccountId) -> Result<&Account, DomainError> {
        self.owned(&StreamRef::Account(id))
            .and_then(Aggregate::as_account)
            .ok_or_else(|| DomainError::not_found("account", id))
    }

    fn must_be_new(
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

    fn create_project(
        &self,
        id: ProjectId,
        name: &str,
        environment: Environment,
        meta: &Meta,
    ) -> Result<Decided, DomainError> {
        if id != self.envelope.project_id {
            return Err(DomainError::invalid(
                "id",
                "a new project's ID must be the envelope's project ID",
            ));
        }
        let stream = StreamRef::Project(id);
        self.must_be_new(&stream, "project", id)?;
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(DomainError::invalid("name", "must be 1 to 100 characters"));
        }
        let event = Event::ProjectCreated(ProjectCreated {
            id,
            name: name.to_owned(),
            environment,
            meta: meta.clone(),
            created_at: self.envelope.now,
        });
        Ok((vec![(stream, event)], ResourceRef::Project(id)))
    }

    fn update_project(&self, meta: &Meta) -> Result<Decided, DomainError> {
        let project = self.project()?;
        let event = Event::ProjectMetaUpdated(MetaUpdated { meta: meta.clone() });
        Ok((
            vec![(StreamRef::Project(project.id), event)],
            ResourceRef::Project(project.id),
        ))
    }

    fn create_api_key(
        &self,
        id: ApiKeyId,
        kind: KeyKind,
        secret_hash: [u8; 32],
    ) -> Result<Decided, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::ApiKey(id);
        self.must_be_new(&stream, "api key", id)?;
        let event = Event::ApiKeyCreated(ApiKeyCreated {
            id,
            project_id: project.id,
            kind,
            secret_hash,
            created_at: self.envelope.now,
        });
        Ok((vec![(stream, event)], ResourceRef::ApiKey(id)))
    }

    fn revoke_api_key(&self, id: ApiKeyId) -> Result<Decided, DomainError> {
        let stream = StreamRef::ApiKey(id);
        let key = self
            .owned(&stream)
            .and_then(Aggregate::as_api_key)
            .ok_or_else(|| DomainError::not_found("api key", id))?;
        if key.revoked_at.is_some() {
            return Err(DomainError::refused(
                Refusal::ApiKeyRevoked,
                format!("api key {id} is already revoked"),
            ));
        }
        let event = Event::ApiKeyRevoked(ApiKeyRevoked {
            revoked_at: self.envelope.now,
        });
        Ok((vec![(stream, event)], ResourceRef::ApiKey(id)))
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
        let totals = StreamRef::ProjectBalance(project.id, target.currency);
        let total = match self.lookup.get(&totals) {
            Aggregate::ProjectBalance(balance) => balance.total,
            _ => Money::zero(target.currency),
        };
        let total_after = total.checked_add(delta).map_err(|_| overflow())?;
        if total_after.is_negative() {
            return Err(DomainError::refused(
                Refusal::ProjectBalanceNegative,
                format!(
                    "the sum of the project's {} balances would be {total_after}; it must stay at or above zero",
                    target.currency
                ),
            ));
        }
        let transaction = Transaction {
            id: transaction_id,
            account_id: account.id,
            project_id: project.id,
            kind: TransactionKind::Magic,
            value: delta,
            balance_after: target,
            created_at: self.envelope.now,
        };
        Ok(vec![
            (
                StreamRef::Account(account.id),
                Event::TransactionRecorded(TransactionRecorded { transaction }),
            ),
            (
                totals,
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: project.id,
                    delta,
                    total_after,
                    account_id: account.id,
                    transaction_id,
                }),
            ),
        ])
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
        if source.currency() != destination.currency() {
            return Err(DomainError::refused(
                Refusal::CrossCurrencyTransfer,
                format!(
                    "transfers between currencies ({} to {}) are not supported yet",
                    source.currency(),
                    destination.currency()
                ),
            ));
        }
        if value.currency != source.currency() {
            return Err(DomainError::invalid(
                "value.currency",
                format!("must be the accounts' currency, {}", source.currency()),
            ));
        }
        let debit = value.checked_neg().map_err(|_| overflow())?;
        let source_after = source.balance.checked_add(debit).map_err(|_| overflow())?;
        if source_after.is_negative() && !source.allow_negative_balance {
            return Err(DomainError::refused(
                Refusal::InsufficientFunds,
                format!("account {source_id} has {}, cannot send {value}", source.balance),
            ));
        }
        let destination_after = destination.balance.checked_add(value).map_err(|_| overflow())?;
        // A same-currency transfer leaves the project's total unchanged, so the
        // project-wide rule (total >= 0) needs no check here.
        let now = self.envelope.now;
        let project_id = self.envelope.project_id;
        let leg = |tx_id, account_id, kind, value, balance_after| {
            (
                StreamRef::Account(account_id),
                Event::TransactionRecorded(TransactionRecorded {
                    transaction: Transaction {
                        id: tx_id,
                        account_id,
                        project_id,
                        kind,
                        value,
                        balance_after,
                        created_at: now,
                    },
                }),
            )
        };
        let created = Event::TransferCreated(TransferCreated {
            id,
            project_id,
            source_account_id: source_id,
            destination_account_id: destination_id,
            source_transaction_id: source_tx,
            destination_transaction_id: destination_tx,
            value,
            meta: meta.clone(),
            created_at: now,
        });
        Ok((
            vec![
                (stream, created),
                leg(
                    source_tx,
                    source_id,
                    TransactionKind::TransferSource(id),
                    debit,
                    source_after,
                ),
                leg(
                    destination_tx,
                    destination_id,
                    TransactionKind::TransferDestination(id),
                    value,
                    destination_after,
                ),
            ],
            ResourceRef::Transfer(id),
        ))
    }

    fn update_transfer(&self, id: TransferId, meta: &Meta) -> Result<Decided, DomainError> {
        let stream = StreamRef::Transfer(id);
        self.owned(&stream)
            .and_then(Aggregate::as_transfer)
            .ok_or_else(|| DomainError::not_found("transfer", id))?;
        Ok((
            vec![(
                stream,
                Event::TransferMetaUpdated(MetaUpdated { meta: meta.clone() }),
            )],
            ResourceRef::Transfer(id),
        ))
    }
}

fn overflow() -> DomainError {
    DomainError::refused(Refusal::BalanceOverflow, "the resulting balance would overflow")
}

fn validate_identity(identity: &Option<Identity>) -> Result<(), DomainError> {
    let mut violations = Violations::new();
    if let Some(identity) = identity {
        identity.validate("identity", &mut violations);
    }
    violations.into_result()
}
