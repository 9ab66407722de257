//! Aggregate states and how events evolve them. `evolve` is total: an event
//! that does not belong to the aggregate is a bug, caught by a debug assert.

use serde::{Deserialize, Serialize};

use crate::api_key::KeyKind;
use crate::events::{Event, ResourceRef};
use crate::id::{AccountId, ApiKeyId, CustomerId, ProjectId, TransactionId, TransferId};
use crate::identity::Identity;
use crate::meta::Meta;
use crate::money::{Currency, Money};
use crate::project::Environment;
use crate::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub environment: Environment,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub project_id: ProjectId,
    pub kind: KeyKind,
    pub secret_hash: [u8; 32],
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: CustomerId,
    pub project_id: ProjectId,
    pub identity: Option<Identity>,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub project_id: ProjectId,
    pub customer_id: Option<CustomerId>,
    pub balance: Money,
    pub allow_negative_balance: bool,
    pub meta: Meta,
    pub created_at: Timestamp,
    pub last_transaction: Option<TransactionId>,
}

impl Account {
    pub fn currency(&self) -> Currency {
        self.balance.currency
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: TransferId,
    pub project_id: ProjectId,
    pub source_account_id: AccountId,
    pub destination_account_id: AccountId,
    pub source_transaction_id: TransactionId,
    pub destination_transaction_id: TransactionId,
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

/// Sum of one project's balances in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectBalance {
    pub total: Money,
}

/// The last use of an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: [u8; 32],
    pub resource: ResourceRef,
    pub used_at: Timestamp,
}

/// The state of any aggregate; `Empty` before its first event.
// Variants differ in size (a customer carries an identity), but states are
// cached by value and moved rarely; boxing would cost an allocation per evolve.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Aggregate {
    #[default]
    Empty,
    Project(Project),
    ApiKey(ApiKey),
    Customer(Customer),
    Account(Account),
    Transfer(Transfer),
    ProjectBalance(ProjectBalance),
    Idempotency(IdempotencyRecord),
}

impl Aggregate {
    /// Folds a stream's events from `Empty`.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        events.into_iter().fold(Self::Empty, Self::evolve)
    }

    pub fn evolve(self, event: &Event) -> Self {
        match (self, event) {
            (Self::Empty, Event::ProjectCreated(e)) => Self::Project(Project {
                id: e.id,
                name: e.name.clone(),
                environment: e.environment,
                meta: e.meta.clone(),
                created_at: e.created_at,
            }),
            (Self::Project(p), Event::ProjectMetaUpdated(e)) => Self::Project(Project {
                meta: e.meta.clone(),
                ..p
            }),
            (Self::Empty, Event::ApiKeyCreated(e)) => Self::ApiKey(ApiKey {
                id: e.id,
                project_id: e.project_id,
                kind: e.kind,
                secret_hash: e.secret_hash,
                created_at: e.created_at,
                revoked_at: None,
            }),
            (Self::ApiKey(k), Event::ApiKeyRevoked(e)) => Self::ApiKey(ApiKey {
                revoked_at: Some(e.revoked_at),
                ..k
            }),
            (Self::Empty, Event::CustomerCreated(e)) => Self::Customer(Customer {
                id: e.id,
                project_id: e.project_id,
                identity: e.identity.clone(),
                meta: e.meta.clone(),
                created_at: e.created_at,
            }),
            (Self::Customer(c), Event::CustomerIdentityUpdated(e)) => Self::Customer(Customer {
                identity: e.identity.clone(),
                ..c
            }),
            (Self::Customer(c), Event::CustomerMetaUpdated(e)) => Self::Customer(Customer {
                meta: e.meta.clone(),
                ..c
            }),
            (Self::Empty, Event::AccountOpened(e)) => Self::Account(Account {
                id: e.id,
                project_id: e.project_id,
                customer_id: e.customer_id,
                balance: Money::zero(e.currency),
                allow_negative_balance: e.allow_negative_balance,
                meta: e.meta.clone(),
                created_at: e.created_at,
                last_transaction: None,
            }),
            (Self::Account(a), Event::NegativeBalanceAllowanceChanged(e)) => Self::Account(Account {
                allow_negative_balance: e.allow_negative_balance,
                ..a
            }),
            (Self::Account(a), Event::AccountMetaUpdated(e)) => Self::Account(Account {
                meta: e.meta.clone(),
                ..a
            }),
            (Self::Account(a), Event::TransactionRecorded(e)) => {
                let tx = &e.transaction;
                debug_assert_eq!(a.balance.checked_add(tx.value), Ok(tx.balance_after));
                Self::Account(Account {
                    balance: tx.balance_after,
                    last_transaction: Some(tx.id),
                    ..a
                })
            }
            (Self::Empty, Event::TransferCreated(e)) => Self::Transfer(Transfer {
                id: e.id,
                project_id: e.project_id,
                source_account_id: e.source_account_id,
                destination_account_id: e.destination_account_id,
                source_transaction_id: e.source_transaction_id,
                destination_transaction_id: e.destination_transaction_id,
                value: e.value,
                meta: e.meta.clone(),
                created_at: e.created_at,
            }),
            (Self::Transfer(t), Event::TransferMetaUpdated(e)) => Self::Transfer(Transfer {
                meta: e.meta.clone(),
                ..t
            }),
            (Self::Empty | Self::ProjectBalance(_), Event::ProjectBalanceChanged(e)) => {
                Self::ProjectBalance(ProjectBalance { total: e.total_after })
            }
            (Self::Empty | Self::Idempotency(_), Event::IdempotencyKeyUsed(e)) => {
                Self::Idempotency(IdempotencyRecord {
                    request_hash: e.request_hash,
                    resource: e.resource,
                    used_at: e.used_at,
                })
            }
            (state, event) => {
                debug_assert!(false, "{} does not apply to {state:?}", event.event_type());
                state
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }

    pub fn as_project(&self) -> Option<&Project> {
        match self {
            Self::Project(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_api_key(&self) -> Option<&ApiKey> {
        match self {
            Self::ApiKey(k) => Some(k),
            _ => None,
        }
    }

    pub fn as_customer(&self) -> Option<&Customer> {
        match self {
            Self::Customer(c) => Some(c),
            _ => None,
        }
    }

    pub fn as_account(&self) -> Option<&Account> {
        match self {
            Self::Account(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_transfer(&self) -> Option<&Transfer> {
        match self {
            Self::Transfer(t) => Some(t),
            _ => None,
        }
    }

    /// The project the aggregate belongs to, if it is a resource of one.
    pub fn project_id(&self) -> Option<ProjectId> {
        match self {
            Self::Project(p) => Some(p.id),
            Self::ApiKey(k) => Some(k.project_id),
            Self::Customer(c) => Some(c.project_id),
            Self::Account(a) => Some(a.project_id),
            Self::Transfer(t) => Some(t.project_id),
            Self::Empty | Self::ProjectBalance(_) | Self::Idempotency(_) => None,
        }
    }
}
