//! Everything that can happen, as stored in the log, and its codec: the
//! router of events. Each family owns its events (payload structs and its
//! own event enum, such as `TransferEvent`); [`Event`] wraps every family's
//! events in one flat enum, names each (`event_type`), routes each to its
//! family ([`Event::into_family`], exhaustive) and builds from each family's
//! (`From<TransferEvent> for Event`, …).
//!
//! Each event has a stable type name and a schema version. Payloads are
//! postcard-encoded structs. Changing a payload's shape means: keep the old
//! struct as `…V<n>`, bump the payload's [`Versioned::VERSION`] and implement
//! [`Versioned::upcast`] to decode the old version into the new shape.

use serde::{Deserialize, Serialize};

pub use crate::account::{
    AccountOpened, NegativeBalanceAllowanceChanged, PendingPhase, PendingTransaction,
    PendingTransactionRecorded, ProjectBalanceChanged, Transaction, TransactionKind, TransactionRecorded,
};
pub use crate::aggregated_account::{
    AggregatedAccountArchived, AggregatedAccountDiscovered, AggregatedAccountEnabled,
    AggregatedAccountUnarchived, AggregatedAccountUpdated, AggregatedTransactionsRecorded,
    AggregatedTransactionsRemoved,
};
pub use crate::aggregation_connection::{
    AggregationConnectionAccountsFound, AggregationConnectionCreated, AggregationConnectionDeleted,
    AggregationConnectionStatusChanged, AggregationConsentExpired, AggregationConsentGranted,
    AggregationInstitutionChosen, AggregationSourceUpdated,
};
pub use crate::aggregation_import::{
    AggregationImportCreated, AggregationImportFailed, AggregationImportProgressed, AggregationImportStarted,
    AggregationImportSucceeded,
};
pub use crate::bank_account::{BankAccountCreated, BankAccountInfo};
pub use crate::bank_payin::{
    BankPayinReceived, BankPayinReferenceAccountChanged, BankPayinReferenceCreated, PayinReferenceCodeClaimed,
};
pub use crate::bank_payout::{BankPayoutCompleted, BankPayoutCreated, BankPayoutReversed, MinirefAssigned};
pub use crate::card::{CardCreated, CardTokenCreated, CardTokenUsed, TokenUse};
pub use crate::card_payin::{
    CardPayinAuthenticationRequested, CardPayinAuthorized, CardPayinCreated, CardPayinDeclined,
    CardPayinRefundChanged, CardPayinRefundCompleted, CardPayinRefundCreated, CardPayinRefundFailed,
    CardPayinSettled,
};
pub use crate::consumer::ConsumerPositionCommitted;
pub use crate::customer::{CustomerCreated, CustomerIdentityUpdated};
pub use crate::deployment::DeploymentBootstrapped;
pub use crate::file::FileUploaded;
pub use crate::fx_rate::{FxRateRemoved, FxRateSet};
pub use crate::institution::{InstitutionActivated, InstitutionDeactivated};
use crate::kernel::id::*;
pub use crate::kernel::meta::MetaUpdated;
pub use crate::kernel::stream::ResourceRef;
use crate::kernel::time::Timestamp;
pub use crate::project::{ApiKeyCreated, ApiKeyRevoked, ProjectCreated};
pub use crate::transfer::{
    Exchange, PendingTransferCreated, PendingTransferExpired, PendingTransferPosted, PendingTransferVoided,
    TransferCreated, TransferCreatedV1,
};

use crate::account::AccountEvent;
use crate::aggregated_account::AggregatedAccountEvent;
use crate::aggregation_connection::AggregationConnectionEvent;
use crate::aggregation_import::AggregationImportEvent;
use crate::bank_account::BankAccountEvent;
use crate::bank_payin::BankPayinEvent;
use crate::bank_payout::BankPayoutEvent;
use crate::card::CardEvent;
use crate::card_payin::CardPayinEvent;
use crate::consumer::ConsumerEvent;
use crate::customer::CustomerEvent;
use crate::deployment::DeploymentEvent;
use crate::file::FileEvent;
use crate::fx_rate::FxRateEvent;
use crate::institution::InstitutionEvent;
use crate::project::ProjectEvent;
use crate::transfer::TransferEvent;

/// The record of an idempotency key's use, on the command router's own
/// guard stream (`idempotency-…`, see [`crate::command::decide`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKeyUsed {
    pub project_id: ProjectId,
    /// The key as the client sent it, in records written before keys were
    /// hashed (schema v1); `None` since (v2): the record's stream names the
    /// key by its keyed digest only (see [`crate::kernel::idempotency`]).
    pub verbatim_key: Option<String>,
    /// Hash of the request's parameters; a retry must match it.
    pub request_hash: [u8; 32],
    /// The resource the original request produced.
    pub resource: ResourceRef,
    pub used_at: Timestamp,
}

/// The idempotency guard's only event, routed like a family's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyEvent {
    IdempotencyKeyUsed(IdempotencyKeyUsed),
}

/// Every event of the domain. Each variant wraps a family's payload under
/// the name its family's event enum gives it (`event_families!` below).
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
    CardTokenCreated(CardTokenCreated),
    CardTokenUsed(CardTokenUsed),
    CardCreated(CardCreated),
    CardMetaUpdated(MetaUpdated),
    CardPayinCreated(CardPayinCreated),
    CardPayinAuthenticationRequested(CardPayinAuthenticationRequested),
    CardPayinAuthorized(CardPayinAuthorized),
    CardPayinDeclined(CardPayinDeclined),
    CardPayinSettled(CardPayinSettled),
    CardPayinRefundChanged(CardPayinRefundChanged),
    CardPayinMetaUpdated(MetaUpdated),
    CardPayinRefundCreated(CardPayinRefundCreated),
    CardPayinRefundCompleted(CardPayinRefundCompleted),
    CardPayinRefundFailed(CardPayinRefundFailed),
    CardPayinRefundMetaUpdated(MetaUpdated),
    BankAccountCreated(BankAccountCreated),
    BankAccountMetaUpdated(MetaUpdated),
    BankPayoutCreated(BankPayoutCreated),
    BankPayoutCompleted(BankPayoutCompleted),
    BankPayoutFailed(BankPayoutReversed),
    BankPayoutReturned(BankPayoutReversed),
    BankPayoutMetaUpdated(MetaUpdated),
    MinirefAssigned(MinirefAssigned),
    BankPayinReferenceCreated(BankPayinReferenceCreated),
    BankPayinReferenceAccountChanged(BankPayinReferenceAccountChanged),
    BankPayinReferenceMetaUpdated(MetaUpdated),
    PayinReferenceCodeClaimed(PayinReferenceCodeClaimed),
    BankPayinReceived(BankPayinReceived),
    BankPayinMetaUpdated(MetaUpdated),
    FileUploaded(FileUploaded),
    FxRateSet(FxRateSet),
    FxRateRemoved(FxRateRemoved),
    ConsumerPositionCommitted(ConsumerPositionCommitted),
    DeploymentBootstrapped(DeploymentBootstrapped),
    InstitutionActivated(InstitutionActivated),
    InstitutionDeactivated(InstitutionDeactivated),
    AggregationConnectionCreated(AggregationConnectionCreated),
    AggregationInstitutionChosen(AggregationInstitutionChosen),
    AggregationConnectionStatusChanged(AggregationConnectionStatusChanged),
    AggregationSourceUpdated(AggregationSourceUpdated),
    AggregationConsentGranted(AggregationConsentGranted),
    AggregationConsentExpired(AggregationConsentExpired),
    AggregationConnectionAccountsFound(AggregationConnectionAccountsFound),
    AggregationConnectionDeleted(AggregationConnectionDeleted),
    AggregationImportCreated(AggregationImportCreated),
    AggregationImportStarted(AggregationImportStarted),
    AggregationImportProgressed(AggregationImportProgressed),
    AggregationImportSucceeded(AggregationImportSucceeded),
    AggregationImportFailed(AggregationImportFailed),
    AggregatedAccountDiscovered(AggregatedAccountDiscovered),
    AggregatedAccountUpdated(AggregatedAccountUpdated),
    AggregatedAccountEnabled(AggregatedAccountEnabled),
    AggregatedAccountArchived(AggregatedAccountArchived),
    AggregatedAccountUnarchived(AggregatedAccountUnarchived),
    AggregatedTransactionsRecorded(AggregatedTransactionsRecorded),
    AggregatedTransactionsRemoved(AggregatedTransactionsRemoved),
    // Two-phase transfers.
    PendingTransferCreated(PendingTransferCreated),
    PendingTransferPosted(PendingTransferPosted),
    PendingTransferVoided(PendingTransferVoided),
    PendingTransferExpired(PendingTransferExpired),
    PendingTransactionRecorded(PendingTransactionRecorded),
}

/// An event routed to its family, as that family's own event type.
macro_rules! event_families {
    ($($family:ident($family_event:ident) { $($variant:ident),+ $(,)? }),+ $(,)?) => {
        /// An [`Event`] as its family's own event (as large as the `Event`
        /// it was: it only changes the wrapping).
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub(crate) enum FamilyEvent {
            $($family($family_event),)+
        }

        impl Event {
            /// Routes the event to its family (exhaustive: an event no
            /// family claims does not compile).
            pub(crate) fn into_family(self) -> FamilyEvent {
                match self {
                    $($(Self::$variant(event) => FamilyEvent::$family($family_event::$variant(event)),)+)+
                }
            }

            /// [`Event::into_family`] of a copy: clones only the payload.
            pub(crate) fn to_family(&self) -> FamilyEvent {
                match self {
                    $($(Self::$variant(event) => FamilyEvent::$family($family_event::$variant(event.clone())),)+)+
                }
            }
        }

        $(impl From<$family_event> for Event {
            fn from(event: $family_event) -> Self {
                match event {
                    $($family_event::$variant(event) => Self::$variant(event),)+
                }
            }
        })+
    };
}

event_families! {
    Project(ProjectEvent) { ProjectCreated, ProjectMetaUpdated, ApiKeyCreated, ApiKeyRevoked },
    Customer(CustomerEvent) { CustomerCreated, CustomerIdentityUpdated, CustomerMetaUpdated },
    Account(AccountEvent) {
        AccountOpened,
        NegativeBalanceAllowanceChanged,
        AccountMetaUpdated,
        TransactionRecorded,
        ProjectBalanceChanged,
        PendingTransactionRecorded,
    },
    Transfer(TransferEvent) {
        TransferCreated,
        TransferMetaUpdated,
        PendingTransferCreated,
        PendingTransferPosted,
        PendingTransferVoided,
        PendingTransferExpired,
    },
    Idempotency(IdempotencyEvent) { IdempotencyKeyUsed },
    Card(CardEvent) { CardTokenCreated, CardTokenUsed, CardCreated, CardMetaUpdated },
    CardPayin(CardPayinEvent) {
        CardPayinCreated,
        CardPayinAuthenticationRequested,
        CardPayinAuthorized,
        CardPayinDeclined,
        CardPayinSettled,
        CardPayinRefundChanged,
        CardPayinMetaUpdated,
        CardPayinRefundCreated,
        CardPayinRefundCompleted,
        CardPayinRefundFailed,
        CardPayinRefundMetaUpdated,
    },
    BankAccount(BankAccountEvent) { BankAccountCreated, BankAccountMetaUpdated },
    BankPayout(BankPayoutEvent) {
        BankPayoutCreated,
        BankPayoutCompleted,
        BankPayoutFailed,
        BankPayoutReturned,
        BankPayoutMetaUpdated,
        MinirefAssigned,
    },
    BankPayin(BankPayinEvent) {
        BankPayinReferenceCreated,
        BankPayinReferenceAccountChanged,
        BankPayinReferenceMetaUpdated,
        PayinReferenceCodeClaimed,
        BankPayinReceived,
        BankPayinMetaUpdated,
    },
    File(FileEvent) { FileUploaded },
    FxRate(FxRateEvent) { FxRateSet, FxRateRemoved },
    Consumer(ConsumerEvent) { ConsumerPositionCommitted },
    Deployment(DeploymentEvent) { DeploymentBootstrapped },
    Institution(InstitutionEvent) { InstitutionActivated, InstitutionDeactivated },
    AggregationConnection(AggregationConnectionEvent) {
        AggregationConnectionCreated,
        AggregationInstitutionChosen,
        AggregationConnectionStatusChanged,
        AggregationSourceUpdated,
        AggregationConsentGranted,
        AggregationConsentExpired,
        AggregationConnectionAccountsFound,
        AggregationConnectionDeleted,
    },
    AggregationImport(AggregationImportEvent) {
        AggregationImportCreated,
        AggregationImportStarted,
        AggregationImportProgressed,
        AggregationImportSucceeded,
        AggregationImportFailed,
    },
    AggregatedAccount(AggregatedAccountEvent) {
        AggregatedAccountDiscovered,
        AggregatedAccountUpdated,
        AggregatedAccountEnabled,
        AggregatedAccountArchived,
        AggregatedAccountUnarchived,
        AggregatedTransactionsRecorded,
        AggregatedTransactionsRemoved,
    },
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

impl Versioned for TransferCreated {
    /// v2 added `exchange` (cross-currency transfers).
    const VERSION: u16 = 2;

    fn upcast(version: u16, payload: &[u8]) -> Option<Result<Self, postcard::Error>> {
        (version == 1).then(|| postcard::from_bytes::<TransferCreatedV1>(payload).map(Self::from))
    }
}

/// `IdempotencyKeyUsed` as written before keys were hashed.
#[derive(Deserialize)]
struct IdempotencyKeyUsedV1 {
    project_id: ProjectId,
    key: String,
    request_hash: [u8; 32],
    resource: ResourceRef,
    used_at: Timestamp,
}

impl Versioned for IdempotencyKeyUsed {
    /// v2 keeps no key: the record's stream names its keyed digest.
    const VERSION: u16 = 2;

    fn upcast(version: u16, payload: &[u8]) -> Option<Result<Self, postcard::Error>> {
        (version == 1).then(|| {
            postcard::from_bytes::<IdempotencyKeyUsedV1>(payload).map(|v1| Self {
                project_id: v1.project_id,
                verbatim_key: Some(v1.key),
                request_hash: v1.request_hash,
                resource: v1.resource,
                used_at: v1.used_at,
            })
        })
    }
}

// Every other payload is at its first schema version.
impl Versioned for ProjectCreated {}
impl Versioned for MetaUpdated {}
impl Versioned for ApiKeyCreated {}
impl Versioned for ApiKeyRevoked {}
impl Versioned for CustomerCreated {}
impl Versioned for CustomerIdentityUpdated {}
impl Versioned for AccountOpened {}
impl Versioned for NegativeBalanceAllowanceChanged {}
impl Versioned for TransactionRecorded {}
impl Versioned for ProjectBalanceChanged {}
impl Versioned for CardTokenCreated {}
impl Versioned for CardTokenUsed {}
impl Versioned for CardCreated {}
impl Versioned for CardPayinCreated {}
impl Versioned for CardPayinAuthenticationRequested {}
impl Versioned for CardPayinAuthorized {}
impl Versioned for CardPayinDeclined {}
impl Versioned for CardPayinSettled {}
impl Versioned for CardPayinRefundChanged {}
impl Versioned for CardPayinRefundCreated {}
impl Versioned for CardPayinRefundCompleted {}
impl Versioned for CardPayinRefundFailed {}
impl Versioned for BankAccountCreated {}
impl Versioned for BankPayoutCreated {}
impl Versioned for BankPayoutCompleted {}
impl Versioned for BankPayoutReversed {}
impl Versioned for MinirefAssigned {}
impl Versioned for BankPayinReferenceCreated {}
impl Versioned for BankPayinReferenceAccountChanged {}
impl Versioned for PayinReferenceCodeClaimed {}
impl Versioned for BankPayinReceived {}
impl Versioned for FileUploaded {}
impl Versioned for FxRateSet {}
impl Versioned for FxRateRemoved {}
impl Versioned for ConsumerPositionCommitted {}
impl Versioned for DeploymentBootstrapped {}
impl Versioned for InstitutionActivated {}
impl Versioned for InstitutionDeactivated {}
impl Versioned for AggregationConnectionCreated {}
impl Versioned for AggregationInstitutionChosen {}
impl Versioned for AggregationConnectionStatusChanged {}
impl Versioned for AggregationSourceUpdated {}
impl Versioned for AggregationConsentGranted {}
impl Versioned for AggregationConsentExpired {}
impl Versioned for AggregationConnectionAccountsFound {}
impl Versioned for AggregationConnectionDeleted {}
impl Versioned for AggregationImportCreated {}
impl Versioned for AggregationImportStarted {}
impl Versioned for AggregationImportProgressed {}
impl Versioned for AggregationImportSucceeded {}
impl Versioned for AggregationImportFailed {}
impl Versioned for AggregatedAccountDiscovered {}
impl Versioned for AggregatedAccountUpdated {}
impl Versioned for AggregatedAccountEnabled {}
impl Versioned for AggregatedAccountArchived {}
impl Versioned for AggregatedAccountUnarchived {}
impl Versioned for AggregatedTransactionsRecorded {}
impl Versioned for AggregatedTransactionsRemoved {}
impl Versioned for PendingTransferCreated {}
impl Versioned for PendingTransferPosted {}
impl Versioned for PendingTransferVoided {}
impl Versioned for PendingTransferExpired {}
impl Versioned for PendingTransactionRecorded {}

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
    CardTokenCreated: CardTokenCreated,
    CardTokenUsed: CardTokenUsed,
    CardCreated: CardCreated,
    CardMetaUpdated: MetaUpdated,
    CardPayinCreated: CardPayinCreated,
    CardPayinAuthenticationRequested: CardPayinAuthenticationRequested,
    CardPayinAuthorized: CardPayinAuthorized,
    CardPayinDeclined: CardPayinDeclined,
    CardPayinSettled: CardPayinSettled,
    CardPayinRefundChanged: CardPayinRefundChanged,
    CardPayinMetaUpdated: MetaUpdated,
    CardPayinRefundCreated: CardPayinRefundCreated,
    CardPayinRefundCompleted: CardPayinRefundCompleted,
    CardPayinRefundFailed: CardPayinRefundFailed,
    CardPayinRefundMetaUpdated: MetaUpdated,
    BankAccountCreated: BankAccountCreated,
    BankAccountMetaUpdated: MetaUpdated,
    BankPayoutCreated: BankPayoutCreated,
    BankPayoutCompleted: BankPayoutCompleted,
    BankPayoutFailed: BankPayoutReversed,
    BankPayoutReturned: BankPayoutReversed,
    BankPayoutMetaUpdated: MetaUpdated,
    MinirefAssigned: MinirefAssigned,
    BankPayinReferenceCreated: BankPayinReferenceCreated,
    BankPayinReferenceAccountChanged: BankPayinReferenceAccountChanged,
    BankPayinReferenceMetaUpdated: MetaUpdated,
    PayinReferenceCodeClaimed: PayinReferenceCodeClaimed,
    BankPayinReceived: BankPayinReceived,
    BankPayinMetaUpdated: MetaUpdated,
    FileUploaded: FileUploaded,
    FxRateSet: FxRateSet,
    FxRateRemoved: FxRateRemoved,
    ConsumerPositionCommitted: ConsumerPositionCommitted,
    DeploymentBootstrapped: DeploymentBootstrapped,
    InstitutionActivated: InstitutionActivated,
    InstitutionDeactivated: InstitutionDeactivated,
    AggregationConnectionCreated: AggregationConnectionCreated,
    AggregationInstitutionChosen: AggregationInstitutionChosen,
    AggregationConnectionStatusChanged: AggregationConnectionStatusChanged,
    AggregationSourceUpdated: AggregationSourceUpdated,
    AggregationConsentGranted: AggregationConsentGranted,
    AggregationConsentExpired: AggregationConsentExpired,
    AggregationConnectionAccountsFound: AggregationConnectionAccountsFound,
    AggregationConnectionDeleted: AggregationConnectionDeleted,
    AggregationImportCreated: AggregationImportCreated,
    AggregationImportStarted: AggregationImportStarted,
    AggregationImportProgressed: AggregationImportProgressed,
    AggregationImportSucceeded: AggregationImportSucceeded,
    AggregationImportFailed: AggregationImportFailed,
    AggregatedAccountDiscovered: AggregatedAccountDiscovered,
    AggregatedAccountUpdated: AggregatedAccountUpdated,
    AggregatedAccountEnabled: AggregatedAccountEnabled,
    AggregatedAccountArchived: AggregatedAccountArchived,
    AggregatedAccountUnarchived: AggregatedAccountUnarchived,
    AggregatedTransactionsRecorded: AggregatedTransactionsRecorded,
    AggregatedTransactionsRemoved: AggregatedTransactionsRemoved,
    PendingTransferCreated: PendingTransferCreated,
    PendingTransferPosted: PendingTransferPosted,
    PendingTransferVoided: PendingTransferVoided,
    PendingTransferExpired: PendingTransferExpired,
    PendingTransactionRecorded: PendingTransactionRecorded,
}
