//! Everything that can happen, as stored in the log, and its codec.
//!
//! Each event has a stable type name and a schema version. Payloads are
//! postcard-encoded structs. Changing a payload's shape means: keep the old
//! struct as `…V<n>`, bump the payload's [`Versioned::VERSION`] and implement
//! [`Versioned::upcast`] to decode the old version into the new shape.

use serde::{Deserialize, Serialize};

use crate::api_key::KeyKind;
use crate::id::{AccountId, ApiKeyId, CustomerId, ProjectId, TransactionId, TransferId};
use crate::identity::Identity;
use crate::meta::Meta;
use crate::money::Money;
use crate::project::Environment;
use crate::stream::StreamRef;
use crate::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectCreated {
    pub id: ProjectId,
    pub name: String,
    pub environment: Environment,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaUpdated {
    pub meta: Meta,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    pub id: ApiKeyId,
    pub project_id: ProjectId,
    pub kind: KeyKind,
    /// SHA-256 of the secret part of the key; the key itself is never stored.
    pub secret_hash: [u8; 32],
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub revoked_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCreated {
    pub id: CustomerId,
    pub project_id: ProjectId,
    pub identity: Option<Identity>,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerIdentityUpdated {
    pub identity: Option<Identity>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountOpened {
    pub id: AccountId,
    pub project_id: ProjectId,
    pub customer_id: Option<CustomerId>,
    pub currency: crate::money::Currency,
    pub allow_negative_balance: bool,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegativeBalanceAllowanceChanged {
    pub allow_negative_balance: bool,
}

/// What caused a transaction, with the ID of the cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionKind {
    /// Sandbox-only direct balance change.
    Magic,
    TransferSource(TransferId),
    TransferDestination(TransferId),
}

impl TransactionKind {
    /// The API's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Magic => "magic",
            Self::TransferSource(_) => "transfer_source",
            Self::TransferDestination(_) => "transfer_destination",
        }
    }

    pub fn transfer_id(self) -> Option<TransferId> {
        match self {
            Self::TransferSource(id) | Self::TransferDestination(id) => Some(id),
            Self::Magic => None,
        }
    }
}

/// One balance change of one account. Final: never changed or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: TransactionId,
    pub account_id: AccountId,
    pub project_id: ProjectId,
    pub kind: TransactionKind,
    /// Signed: positive adds funds, negative removes them. Never zero.
    pub value: Money,
    pub balance_after: Money,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecorded {
    pub transaction: Transaction,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferCreated {
    pub id: TransferId,
    pub project_id: ProjectId,
    pub source_account_id: AccountId,
    pub destination_account_id: AccountId,
    pub source_transaction_id: TransactionId,
    pub destination_transaction_id: TransactionId,
    /// Always positive.
    pub value: Money,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectBalanceChanged {
    pub project_id: ProjectId,
    pub delta: Money,
    pub total_after: Money,
    pub account_id: AccountId,
    pub transaction_id: TransactionId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKeyUsed {
    pub project_id: ProjectId,
    pub key: String,
    /// Hash of the request's parameters; a retry must match it.
    pub request_hash: [u8; 32],
    /// The resource the original request produced.
    pub resource: ResourceRef,
    pub used_at: Timestamp,
}

/// The resource a command created or changed, as a serializable reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceRef {
    Project(ProjectId),
    ApiKey(ApiKeyId),
    Customer(CustomerId),
    Account(AccountId),
    Transfer(TransferId),
}

impl ResourceRef {
    pub fn stream(self) -> StreamRef {
        match self {
            Self::Project(id) => StreamRef::Project(id),
            Self::ApiKey(id) => StreamRef::ApiKey(id),
            Self::Customer(id) => StreamRef::Customer(id),
            Self::Account(id) => StreamRef::Account(id),
            Self::Transfer(id) => StreamRef::Transfer(id),
        }
    }
}

/// Every event of the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    ProjectCreated(ProjectCreated),
    ProjectMetaUpdated(MetaUpdated),
    ApiKeyCreated(ApiKeyCreated),
    ApiKeyRevoked(ApiKeyRevoked),
    CustomerCreated(CustomerCreated),
    CustomerIdentityUpdated(CustomerIdentityUpdated),
    CustomerMetaUpdated(MetaUpdated),
    AccountOpened(AccountOpened),
    NegativeBalanceAllowanceChanged(NegativeBalanceAllowanceChanged),
    AccountMetaUpdated(MetaUpdated),
    TransactionRecorded(TransactionRecorded),
    TransferCreated(TransferCreated),
    TransferMetaUpdated(MetaUpdated),
    ProjectBalanceChanged(ProjectBalanceChanged),
    IdempotencyKeyUsed(IdempotencyKeyUsed),
}

/// An event ready for the store: type name, schema version, payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedEvent {
    pub event_type: &'static str,
    pub schema_version: u16,
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("event type {event_type} has schema version {found}, newer than this build knows ({known})")]
    FutureVersion {
        event_type: String,
        found: u16,
        known: u16,
    },
    #[error("event type {event_type} v{version}: payload does not decode: {reason}")]
    Payload {
        event_type: String,
        version: u16,
        reason: String,
    },
}

/// A payload's schema versions and how older ones become the current shape.
///
/// Changing a payload's shape: keep the old struct (e.g. `TransferCreatedV1`),
/// bump `VERSION`, and implement `upcast` to decode the old bytes and convert
/// them. Events are never rewritten in the log; they are upcast on read.
pub trait Versioned: Sized + serde::de::DeserializeOwned {
    /// The version this build writes.
    const VERSION: u16 = 1;

    /// Decodes `payload` written at an older `version` into the current
    /// shape; `None` for a version this type never had.
    fn upcast(version: u16, payload: &[u8]) -> Option<Result<Self, postcard::Error>> {
        let _ = (version, payload);
        None
    }
}

/// Decodes a payload of type `T` written at `version`, upcasting older ones.
pub fn decode_payload<T: Versioned>(
    event_type: &str,
    version: u16,
    payload: &[u8],
) -> Result<T, DecodeError> {
    let bad = |error: postcard::Error| DecodeError::Payload {
        event_type: event_type.to_owned(),
        version,
        reason: error.to_string(),
    };
    if version == T::VERSION {
        return postcard::from_bytes(payload).map_err(bad);
    }
    if version > T::VERSION {
        return Err(DecodeError::FutureVersion {
            event_type: event_type.to_owned(),
            found: version,
            known: T::VERSION,
        });
    }
    match T::upcast(version, payload) {
        Some(upcast) => upcast.map_err(bad),
        None => Err(DecodeError::Payload {
            event_type: event_type.to_owned(),
            version,
            reason: format!("no upcaster from version {version} to {}", T::VERSION),
        }),
    }
}

macro_rules! event_codec {
    ($($variant:ident: $payload:ty),* $(,)?) => {
        impl Event {
            /// The stable name stored in the envelope.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => stringify!($variant),)*
                }
            }

            /// Every event type name this build knows.
            pub const TYPES: &'static [&'static str] = &[$(stringify!($variant)),*];

            pub fn encode(&self) -> EncodedEvent {
                let (schema_version, payload) = match self {
                    $(Self::$variant(payload) => (<$payload as Versioned>::VERSION, postcard::to_stdvec(payload)),)*
                };
                EncodedEvent {
                    event_type: self.event_type(),
                    schema_version,
                    // Encoding into a Vec only fails for types serde cannot
                    // represent, and every payload here is plain data.
                    payload: payload.unwrap_or_default(),
                }
            }

            /// Decodes a stored event, upcasting older schema versions.
            pub fn decode(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Self, DecodeError> {
                match event_type {
                    $(stringify!($variant) => {
                        decode_payload::<$payload>(event_type, schema_version, payload).map(Self::$variant)
                    })*
                    _ => Err(DecodeError::UnknownType(event_type.to_owned())),
                }
            }
        }
    };
}

// Every payload is at its first schema version so far.
impl Versioned for ProjectCreated {}
impl Versioned for MetaUpdated {}
impl Versioned for ApiKeyCreated {}
impl Versioned for ApiKeyRevoked {}
impl Versioned for CustomerCreated {}
impl Versioned for CustomerIdentityUpdated {}
impl Versioned for AccountOpened {}
impl Versioned for NegativeBalanceAllowanceChanged {}
impl Versioned for TransactionRecorded {}
impl Versioned for TransferCreated {}
impl Versioned for ProjectBalanceChanged {}
impl Versioned for IdempotencyKeyUsed {}

event_codec! {
    ProjectCreated: ProjectCreated,
    ProjectMetaUpdated: MetaUpdated,
    ApiKeyCreated: ApiKeyCreated,
    ApiKeyRevoked: ApiKeyRevoked,
    CustomerCreated: CustomerCreated,
    CustomerIdentityUpdated: CustomerIdentityUpdated,
    CustomerMetaUpdated: MetaUpdated,
    AccountOpened: AccountOpened,
    NegativeBalanceAllowanceChanged: NegativeBalanceAllowanceChanged,
    AccountMetaUpdated: MetaUpdated,
    TransactionRecorded: TransactionRecorded,
    TransferCreated: TransferCreated,
    TransferMetaUpdated: MetaUpdated,
    ProjectBalanceChanged: ProjectBalanceChanged,
    IdempotencyKeyUsed: IdempotencyKeyUsed,
}
