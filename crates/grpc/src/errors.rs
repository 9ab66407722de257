//! The error model: domain and engine errors as gRPC statuses with the
//! standard `google.rpc` details (`BadRequest`, `ErrorInfo`, `ResourceInfo`).
//!
//! | error | code | details |
//! |---|---|---|
//! | `DomainError::Invalid` | INVALID_ARGUMENT | `BadRequest`, one violation per field |
//! | `DomainError::NotFound` | NOT_FOUND | `ResourceInfo` |
//! | `DomainError::AlreadyExists` | ALREADY_EXISTS | `ResourceInfo` |
//! | `Refused(IdempotencyKeyReused)` | INVALID_ARGUMENT | `BadRequest` on `idempotency-key` + `ErrorInfo` |
//! | `Refused(other)` | FAILED_PRECONDITION | `ErrorInfo{reason, domain: "paycore"}` |
//! | `EngineError::Conflict` | ABORTED | `ErrorInfo{CONCURRENT_MODIFICATION}` |
//! | `EngineError::Unavailable` | UNAVAILABLE | `ErrorInfo{STORE_UNAVAILABLE}` |
//! | `EngineError::Overloaded` | UNAVAILABLE | `ErrorInfo{OVERLOADED}` |
//! | `EngineError::DataLoss` (a damaged log frame) | DATA_LOSS | `ErrorInfo{LOG_DAMAGED, position}`; file and offset only logged |
//! | `EngineError::LinkedCommandFailed` (a batch's linked chain broken elsewhere) | ABORTED | `ErrorInfo{LINKED_TRANSFER_FAILED, failed_index}` |
//! | `EngineError::Fatal` / `Internal` | INTERNAL | none; the detail is only logged |
//! | `ModelError::Storage` (the read models' store failed) | UNAVAILABLE | `ErrorInfo{READ_MODELS_UNAVAILABLE}`; the detail is only logged |
//! | `ModelError::Corrupt` (a read-model row does not decode) | DATA_LOSS | `ErrorInfo{READ_MODEL_DAMAGED}`; the detail is only logged |

use std::collections::HashMap;
use std::fmt;

use paycore_aggregation_sync::SyncError;
use paycore_domain::{AccountId, DomainError, FieldViolation, Refusal, Timestamp};
use paycore_engine::EngineError;
use paycore_projections::{ModelError, PageError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every error paycore reports.
pub const ERROR_DOMAIN: &str = "paycore";

/// The metadata key of idempotency keys, also the field name of its errors.
pub const IDEMPOTENCY_KEY_FIELD: &str = "idempotency-key";

/// `ErrorInfo.reason` of an optimistic-concurrency conflict the engine gave up on.
pub const REASON_CONCURRENT_MODIFICATION: &str = "CONCURRENT_MODIFICATION";
/// `ErrorInfo.reason` when the event store cannot be reached.
pub const REASON_STORE_UNAVAILABLE: &str = "STORE_UNAVAILABLE";
/// `ErrorInfo.reason` when the server sheds load.
pub const REASON_OVERLOADED: &str = "OVERLOADED";
/// `ErrorInfo.reason` when the answer needs events the log can no longer
/// read back intact (metadata `position`: the first position of the
/// damaged frame).
pub const REASON_LOG_DAMAGED: &str = "LOG_DAMAGED";

/// `ErrorInfo.reason` of a batched transfer that was not carried out
/// because another transfer of its linked chain was refused (metadata
/// `failed_index`: that transfer's index in the request).
pub const REASON_LINKED_TRANSFER_FAILED: &str = "LINKED_TRANSFER_FAILED";

fn error_info(details: &mut ErrorDetails, reason: &str) {
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::<String, String>::new());
}

/// INVALID_ARGUMENT with one `BadRequest` field violation per entry.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let message = if violations.is_empty() {
        "invalid request".to_owned()
    } else {
        format!(
            "invalid request: {}",
            violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let mut details = ErrorDetails::new();
    for violation in violations {
        details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// The status of a domain error.
pub fn domain_status(error: &DomainError) -> Status {
    let (code, reason) = domain_code(error);
    match error {
        DomainError::Invalid(violations) => invalid_argument(violations),
        DomainError::NotFound { kind, id } | DomainError::AlreadyExists { kind, id } => {
            let mut details = ErrorDetails::new();
            details.set_resource_info(*kind, id.clone(), "", error.to_string());
            Status::with_error_details(code, error.to_string(), details)
        }
        DomainError::Refused { refusal, message } => {
            let mut details = ErrorDetails::new();
            if *refusal == Refusal::IdempotencyKeyReused {
                details.add_bad_request_violation(IDEMPOTENCY_KEY_FIELD, message.clone());
            }
            if let Some(reason) = reason {
                error_info(&mut details, reason);
            }
            Status::with_error_details(code, message.clone(), details)
        }
    }
}

/// The status code a domain error answers with, and its `ErrorInfo.reason`
/// when it has one.
pub fn domain_code(error: &DomainError) -> (Code, Option<&'static str>) {
    match error {
        DomainError::Invalid(_) => (Code::InvalidArgument, None),
        DomainError::NotFound { .. } => (Code::NotFound, None),
        DomainError::AlreadyExists { .. } => (Code::AlreadyExists, None),
        DomainError::Refused {
            refusal: refusal @ Refusal::IdempotencyKeyReused,
            ..
        } => (Code::InvalidArgument, Some(refusal.reason())),
        DomainError::Refused { refusal, .. } => (Code::FailedPrecondition, Some(refusal.reason())),
    }
}

/// INTERNAL with a generic message; the detail goes to the log only.
pub fn internal(detail: impl fmt::Display) -> Status {
    tracing::error!(%detail, "internal error");
    Status::internal("internal error")
}

/// The status of an engine error. Infrastructure details are logged, never
/// sent to the client.
/// `ErrorInfo.reason` when the read models' store cannot be read.
pub const REASON_READ_MODELS_UNAVAILABLE: &str = "READ_MODELS_UNAVAILABLE";
/// `ErrorInfo.reason` when a read-model row cannot be decoded (rebuild the
/// projection: `paycore projections rebuild`).
pub const REASON_READ_MODEL_DAMAGED: &str = "READ_MODEL_DAMAGED";

/// A read model that could not answer: the server's failure, never the
/// caller's. The detail stays in the server's log.
pub fn model_status(error: &ModelError) -> Status {
    let (code, reason, message) = match error {
        ModelError::Storage(_) => (
            Code::Unavailable,
            REASON_READ_MODELS_UNAVAILABLE,
            "the read models cannot be read right now; retry later",
        ),
        ModelError::Corrupt { .. } => (
            Code::DataLoss,
            REASON_READ_MODEL_DAMAGED,
            "a read model is damaged; the operator can rebuild it from the log",
        ),
    };
    tracing::error!(%error, "read model failed to answer");
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

pub fn engine_status(error: &EngineError) -> Status {
    match error {
        EngineError::Domain(domain) => domain_status(domain),
        EngineError::Conflict(detail) => {
            tracing::warn!(%detail, "command aborted after concurrency retries");
            let mut details = ErrorDetails::new();
            error_info(&mut details, REASON_CONCURRENT_MODIFICATION);
            Status::with_error_details(
                Code::Aborted,
                "the resources changed concurrently; retry the request",
                details,
            )
        }
        EngineError::Unavailable(detail) => {
            tracing::warn!(%detail, "event store unavailable");
            let mut details = ErrorDetails::new();
            error_info(&mut details, REASON_STORE_UNAVAILABLE);
            Status::with_error_details(
                Code::Unavailable,
                "storage temporarily unavailable; retry later",
                details,
            )
        }
        EngineError::Overloaded => {
            let mut details = ErrorDetails::new();
            error_info(&mut details, REASON_OVERLOADED);
            Status::with_error_details(Code::Unavailable, "server overloaded; retry later", details)
        }
        EngineError::DataLoss { position, detail } => data_loss(*position, detail),
        EngineError::LinkedCommandFailed { failed_index } => {
            let mut details = ErrorDetails::new();
            details.set_error_info(
                REASON_LINKED_TRANSFER_FAILED,
                ERROR_DOMAIN,
                HashMap::from([("failed_index".to_owned(), failed_index.to_string())]),
            );
            Status::with_error_details(Code::Aborted, error.to_string(), details)
        }
        EngineError::Fatal(detail) | EngineError::Internal(detail) => internal(detail),
    }
}

/// `ErrorInfo.reason` when a bank cannot be reached (UNAVAILABLE, with a
/// `RetryInfo` when the bank said when to come back).
pub const REASON_BANK_UNAVAILABLE: &str = "BANK_UNAVAILABLE";
/// `ErrorInfo.reason` when a bank limits calls (RESOURCE_EXHAUSTED, with a
/// `RetryInfo`).
pub const REASON_BANK_RATE_LIMITED: &str = "BANK_RATE_LIMITED";
/// `ErrorInfo.reason` of a sign-in step the connection is not waiting for.
pub const REASON_SIGN_IN_STEP_NOT_EXPECTED: &str = "SIGN_IN_STEP_NOT_EXPECTED";
/// `ErrorInfo.reason` when the end user must act before the connection
/// syncs (metadata `action_required_reason`).
pub const REASON_END_USER_ACTION_REQUIRED: &str = "END_USER_ACTION_REQUIRED";
/// `ErrorInfo.reason` when an import is already running for the connection.
pub const REASON_ALREADY_UPDATING: &str = "ALREADY_UPDATING";

/// The status of an open banking sign-in step or import that could not go
/// on: the client's (or end user's) part is never INTERNAL.
pub fn sync_status(error: &SyncError, now: Timestamp) -> Status {
    let mut details = ErrorDetails::new();
    let retry_in = |details: &mut ErrorDetails, at: Timestamp| {
        let micros = u64::try_from(at.micros().saturating_sub(now.micros())).unwrap_or(0);
        details.set_retry_info(Some(std::time::Duration::from_micros(micros)));
    };
    let message = error.to_string();
    match error {
        SyncError::ConnectionNotFound(id) => {
            domain_status(&DomainError::not_found("aggregation connection", id))
        }
        SyncError::ImportNotFound(id) => domain_status(&DomainError::not_found("aggregation import", id)),
        SyncError::WrongStep { .. } | SyncError::StepMissing(_) => {
            error_info(&mut details, REASON_SIGN_IN_STEP_NOT_EXPECTED);
            Status::with_error_details(Code::FailedPrecondition, message, details)
        }
        SyncError::RedirectMismatch(_) => invalid_argument(&[FieldViolation::new("state", message)]),
        SyncError::BankUnavailable { retry_after } => {
            error_info(&mut details, REASON_BANK_UNAVAILABLE);
            if let Some(at) = retry_after {
                retry_in(&mut details, *at);
            }
            Status::with_error_details(Code::Unavailable, message, details)
        }
        SyncError::RateLimited { retry_after } => {
            error_info(&mut details, REASON_BANK_RATE_LIMITED);
            retry_in(&mut details, *retry_after);
            Status::with_error_details(Code::ResourceExhausted, message, details)
        }
        SyncError::ActionRequired { reason, .. } => {
            let metadata = HashMap::from([("action_required_reason".to_owned(), reason.name().to_owned())]);
            details.set_error_info(REASON_END_USER_ACTION_REQUIRED, ERROR_DOMAIN, metadata);
            Status::with_error_details(Code::FailedPrecondition, message, details)
        }
        SyncError::AlreadyUpdating { import, .. } => {
            let metadata: HashMap<String, String> = import
                .map(|import| ("import_id".to_owned(), import.to_string()))
                .into_iter()
                .collect();
            details.set_error_info(REASON_ALREADY_UPDATING, ERROR_DOMAIN, metadata);
            Status::with_error_details(Code::FailedPrecondition, message, details)
        }
        SyncError::Connector(_) => {
            tracing::warn!(%message, "the bank connector failed a step");
            error_info(&mut details, REASON_BANK_UNAVAILABLE);
            Status::with_error_details(Code::Unavailable, message, details)
        }
        SyncError::Engine(error) => engine_status(error),
        SyncError::Secrets(_) | SyncError::Index(_) | SyncError::Calendar => internal(message),
    }
}

/// DATA_LOSS for a read that met a damaged frame of the log: the client
/// learns the position, the log gets file and offset (`detail`).
pub fn data_loss(position: Option<u64>, detail: &str) -> Status {
    tracing::error!(%detail, "a request needs events the log cannot read back intact");
    let mut details = ErrorDetails::new();
    let mut metadata = HashMap::new();
    if let Some(position) = position {
        metadata.insert("position".to_owned(), position.to_string());
    }
    details.set_error_info(REASON_LOG_DAMAGED, ERROR_DOMAIN, metadata);
    let at = position.map_or_else(String::new, |position| format!(" at position {position}"));
    Status::with_error_details(
        Code::DataLoss,
        format!(
            "the event log is damaged{at}: the events there cannot be read until an operator restores it"
        ),
        details,
    )
}

/// The status of a list request the read models refused; `account` is the
/// account filter of a transaction list, if any.
pub fn page_status(error: &PageError, account: Option<AccountId>) -> Status {
    match error {
        PageError::InvalidToken => invalid_argument(&[FieldViolation::new(
            "page_token",
            "invalid page token: pass the next_page_token of a previous response to the same list",
        )]),
        PageError::AccountNotFound => {
            let id = account.map(|id| id.to_string()).unwrap_or_default();
            domain_status(&DomainError::not_found("account", id))
        }
        PageError::ParentNotFound => Status::not_found("the resource whose list was asked for was not found"),
        PageError::Storage(error) => model_status(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(status: &Status) -> ErrorDetails {
        status.get_error_details()
    }

    #[test]
    fn invalid_lists_every_field() {
        let status = domain_status(&DomainError::Invalid(vec![
            FieldViolation::new("value.amount", "must be positive"),
            FieldViolation::new("meta._x", "reserved"),
        ]));
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = details(&status).bad_request().cloned().unwrap();
        let fields: Vec<_> = bad.field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["value.amount", "meta._x"]);
        assert!(status.message().contains("value.amount: must be positive"));
    }

    #[test]
    fn not_found_and_already_exists_carry_resource_info() {
        let status = domain_status(&DomainError::not_found("account", "acc_1"));
        assert_eq!(status.code(), Code::NotFound);
        let info = details(&status).resource_info().cloned().unwrap();
        assert_eq!(
            (info.resource_type.as_str(), info.resource_name.as_str()),
            ("account", "acc_1")
        );
        let status = domain_status(&DomainError::AlreadyExists {
            kind: "transfer",
            id: "trf_1".into(),
        });
        assert_eq!(status.code(), Code::AlreadyExists);
    }

    #[test]
    fn refusals_are_failed_preconditions_with_reason() {
        let status = domain_status(&DomainError::refused(Refusal::InsufficientFunds, "no money"));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "no money");
        let info = details(&status).error_info().cloned().unwrap();
        assert_eq!(info.reason, "INSUFFICIENT_FUNDS");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn reused_idempotency_key_is_an_invalid_argument() {
        let status = domain_status(&DomainError::refused(Refusal::IdempotencyKeyReused, "reused"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = details(&status);
        assert_eq!(details.error_info().unwrap().reason, "IDEMPOTENCY_KEY_REUSED");
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            "idempotency-key"
        );
    }

    #[test]
    fn engine_errors_hide_details() {
        let status = engine_status(&EngineError::Conflict("streams x y".into()));
        assert_eq!(status.code(), Code::Aborted);
        assert!(!status.message().contains("streams"));
        let status = engine_status(&EngineError::Unavailable("/var/lib/x: EIO".into()));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("EIO"));
        assert_eq!(engine_status(&EngineError::Overloaded).code(), Code::Unavailable);
        let status = engine_status(&EngineError::Internal("secret detail".into()));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert_eq!(
            engine_status(&EngineError::Fatal("x".into())).code(),
            Code::Internal
        );
        let status = engine_status(&EngineError::Domain(DomainError::invalid("currency", "bad")));
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    #[test]
    fn a_damaged_log_is_data_loss_with_the_position_only() {
        let status = engine_status(&EngineError::DataLoss {
            position: Some(57),
            detail: "corrupt log: /data/log/segments/00000000000000000000.log, offset 4096: CRC mismatch"
                .into(),
        });
        assert_eq!(status.code(), Code::DataLoss);
        assert!(status.message().contains("position 57"), "{}", status.message());
        assert!(!status.message().contains("/data/log"), "{}", status.message());
        let info = details(&status).error_info().cloned().unwrap();
        assert_eq!(info.reason, REASON_LOG_DAMAGED);
        assert_eq!(info.metadata.get("position").map(String::as_str), Some("57"));
    }

    #[test]
    fn page_errors() {
        let status = page_status(&PageError::InvalidToken, None);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            details(&status).bad_request().unwrap().field_violations[0].field,
            "page_token"
        );
        assert_eq!(
            page_status(&PageError::AccountNotFound, None).code(),
            Code::NotFound
        );
    }
}
