//! Domain errors: each maps to one precise API status at the edge.

use std::fmt;

/// One invalid field of a request, named by its path in the API (`value.amount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Why a command that is well-formed cannot be carried out in the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The account would go below zero and does not allow a negative balance.
    InsufficientFunds,
    /// The sum of the project's balances in a currency would go below zero.
    ProjectBalanceNegative,
    /// A balance would leave the range of a 64-bit amount.
    BalanceOverflow,
    /// A transfer between currencies for which no exchange rate is configured.
    FxRateUnavailable,
    /// An operation reserved to sandbox projects was attempted on a live project.
    SandboxOnly,
    /// The idempotency key was already used with different parameters.
    IdempotencyKeyReused,
    /// The API key has been revoked.
    ApiKeyRevoked,
    /// A card token was already used (tokens are single-use).
    CardTokenUsed,
    /// A card token is older than its 10-minute lifetime.
    CardTokenExpired,
    /// Only an authorized card payin can be settled.
    CardPayinNotAuthorized,
    /// Only a settled card payin can be refunded.
    CardPayinNotSettled,
    /// The card payin is not waiting for 3-D Secure authentication.
    CardPayinNotAwaitingAuthentication,
    /// A refund would take more than what is left of the payin.
    RefundExceedsPayin,
    /// Only a processing refund can complete or fail.
    RefundNotProcessing,
    /// Only a processing payout can complete or fail.
    PayoutNotProcessing,
    /// Only a completed payout can be returned by the destination bank.
    PayoutNotCompleted,
    /// The concept of an incoming transfer names no reference of the project.
    UnknownPayinReference,
    /// Every code of a code space is taken (reference codes, minirefs).
    CodesExhausted,
    /// A currency conversion that cannot be done (it rounds to nothing, or overflows).
    FxConversionImpossible,
    /// A consumer's checkpoint would move back without `reset`.
    ConsumerPositionBehind,
    /// The project has not activated the institution (or deactivated it).
    InstitutionNotActive,
    /// A connection's status change the lifecycle diagram does not draw.
    ConnectionTransitionNotAllowed,
    /// The connection has not connected yet (its first sign-in is not done).
    ConnectionNotConnected,
    /// Bank data is recorded only while its connection is `UPDATING`.
    ConnectionNotUpdating,
    /// The connection has no consent of the end user yet.
    ConsentMissing,
    /// The connection's consent has expired (PSD2: renewed every 180 days).
    ConsentExpired,
    /// The consent is still valid: it cannot be expired yet.
    ConsentNotExpired,
    /// An import's status change its lifecycle does not allow.
    ImportTransitionNotAllowed,
    /// The aggregated account is disabled until the end user consents.
    AggregatedAccountDisabled,
    /// The aggregated account was no longer found at the bank (archived).
    AggregatedAccountArchived,
    // Two-phase transfers (new variants go at the end).
    /// A pending transfer between accounts of different currencies: its
    /// hold would have to lock an exchange rate until it is posted, which
    /// paycore does not do (the destination account's currency, a state,
    /// forbids it; the request itself is well-formed).
    PendingTransferAcrossCurrencies,
    /// The transfer is not pending (a plain transfer, or already posted,
    /// voided or expired).
    TransferNotPending,
    /// The pending transfer's `expires_at` has passed: it can only expire.
    PendingTransferExpired,
    /// The pending transfer's `expires_at` has not come yet.
    PendingTransferNotExpired,
}

impl Refusal {
    /// Stable machine-readable reason, used as `ErrorInfo.reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::InsufficientFunds => "INSUFFICIENT_FUNDS",
            Self::ProjectBalanceNegative => "PROJECT_BALANCE_NEGATIVE",
            Self::BalanceOverflow => "BALANCE_OVERFLOW",
            Self::FxRateUnavailable => "FX_RATE_NOT_CONFIGURED",
            Self::SandboxOnly => "SANDBOX_ONLY",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::ApiKeyRevoked => "API_KEY_REVOKED",
            Self::CardTokenUsed => "CARD_TOKEN_ALREADY_USED",
            Self::CardTokenExpired => "CARD_TOKEN_EXPIRED",
            Self::CardPayinNotAuthorized => "CARD_PAYIN_NOT_AUTHORIZED",
            Self::CardPayinNotSettled => "CARD_PAYIN_NOT_SETTLED",
            Self::CardPayinNotAwaitingAuthentication => "CARD_PAYIN_NOT_AWAITING_AUTHENTICATION",
            Self::RefundExceedsPayin => "REFUND_EXCEEDS_PAYIN",
            Self::RefundNotProcessing => "REFUND_NOT_PROCESSING",
            Self::PayoutNotProcessing => "PAYOUT_NOT_PROCESSING",
            Self::PayoutNotCompleted => "PAYOUT_NOT_COMPLETED",
            Self::UnknownPayinReference => "UNKNOWN_PAYIN_REFERENCE",
            Self::CodesExhausted => "CODES_EXHAUSTED",
            Self::FxConversionImpossible => "FX_CONVERSION_IMPOSSIBLE",
            Self::ConsumerPositionBehind => "CONSUMER_POSITION_BEHIND",
            Self::InstitutionNotActive => "INSTITUTION_NOT_ACTIVE",
            Self::ConnectionTransitionNotAllowed => "CONNECTION_TRANSITION_NOT_ALLOWED",
            Self::ConnectionNotConnected => "CONNECTION_NOT_CONNECTED",
            Self::ConnectionNotUpdating => "CONNECTION_NOT_UPDATING",
            Self::ConsentMissing => "CONSENT_MISSING",
            Self::ConsentExpired => "CONSENT_EXPIRED",
            Self::ConsentNotExpired => "CONSENT_NOT_EXPIRED",
            Self::ImportTransitionNotAllowed => "IMPORT_TRANSITION_NOT_ALLOWED",
            Self::AggregatedAccountDisabled => "AGGREGATED_ACCOUNT_DISABLED",
            Self::AggregatedAccountArchived => "AGGREGATED_ACCOUNT_ARCHIVED",
            Self::PendingTransferAcrossCurrencies => "PENDING_TRANSFER_ACROSS_CURRENCIES",
            Self::TransferNotPending => "TRANSFER_NOT_PENDING",
            Self::PendingTransferExpired => "PENDING_TRANSFER_EXPIRED",
            Self::PendingTransferNotExpired => "PENDING_TRANSFER_NOT_EXPIRED",
        }
    }
}

/// What the deciders answer when they refuse a command. Nothing is written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// One or more fields are invalid.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// The resource does not exist in the caller's project.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// A resource with this ID already exists.
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    /// The command is valid but the current state forbids it.
    #[error("{message}")]
    Refused { refusal: Refusal, message: String },
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|violation| format!("{}: {}", violation.field, violation.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }

    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    pub fn refused(refusal: Refusal, message: impl Into<String>) -> Self {
        Self::Refused {
            refusal,
            message: message.into(),
        }
    }
}

/// Collects field violations so a request reports all its bad fields at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records the error of `result` under `field` and returns its value, if any.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|error| self.add(field, error.to_string())).ok()
    }

    pub fn extend(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(self.0))
        }
    }
}

/// A balance or total that would not fit: refused, never wrapped.
pub(crate) fn overflow() -> DomainError {
    DomainError::refused(Refusal::BalanceOverflow, "the resulting balance would overflow")
}
