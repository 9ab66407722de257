use paycore_domain::DomainError;
use paycore_domain::events::DecodeError;
use paycore_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The command was refused by the domain; nothing was written.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Other writers kept changing the command's streams; gave up after retries.
    #[error("conflicting concurrent writes: {0}")]
    Conflict(String),
    /// The store cannot be reached or the engine is stopping; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Too many commands are waiting; retry later.
    #[error("too many commands in flight")]
    Overloaded,
    /// The store failed in a way that stops this process.
    #[error("fatal store failure: {0}")]
    Fatal(String),
    /// Stored events cannot be read back intact (a damaged log): the data at
    /// `position` (the first position of the damaged frame, when known) is
    /// lost until the operator restores it. Never retried.
    #[error("data loss: {detail}")]
    DataLoss {
        position: Option<u64>,
        /// The store's description: file, offset, reason.
        detail: String,
    },
    /// A command of a linked chain that was not carried out because the
    /// chain's command at `failed_index` (its index in the job) was refused:
    /// nothing of the chain was written.
    #[error("not carried out: the linked command at index {failed_index} was refused")]
    LinkedCommandFailed { failed_index: usize },
    /// A bug or damaged data (an event that does not decode, …).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::WrongExpectedVersion { .. } => Self::Conflict(error.to_string()),
            StoreError::Unavailable(_) | StoreError::DiskFull(_) | StoreError::Closed => {
                Self::Unavailable(error.to_string())
            }
            StoreError::Fatal(reason) => Self::Fatal(reason),
            StoreError::Corrupt { position, .. } => Self::DataLoss {
                position,
                detail: error.to_string(),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<DecodeError> for EngineError {
    fn from(error: DecodeError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl Clone for EngineError {
    fn clone(&self) -> Self {
        match self {
            Self::Domain(error) => Self::Domain(error.clone()),
            Self::Conflict(reason) => Self::Conflict(reason.clone()),
            Self::Unavailable(reason) => Self::Unavailable(reason.clone()),
            Self::Overloaded => Self::Overloaded,
            Self::Fatal(reason) => Self::Fatal(reason.clone()),
            Self::DataLoss { position, detail } => Self::DataLoss {
                position: *position,
                detail: detail.clone(),
            },
            Self::LinkedCommandFailed { failed_index } => Self::LinkedCommandFailed {
                failed_index: *failed_index,
            },
            Self::Internal(reason) => Self::Internal(reason.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_log_is_data_loss_with_its_position() {
        let error = EngineError::from(StoreError::Corrupt {
            file: "log/segments/00000000000000000000.log".into(),
            offset: 4096,
            position: Some(57),
            reason: "CRC mismatch".into(),
        });
        match &error {
            EngineError::DataLoss { position, detail } => {
                assert_eq!(*position, Some(57));
                assert!(
                    detail.contains("00000000000000000000.log, offset 4096"),
                    "{detail}"
                );
                assert!(detail.contains("position 57"), "{detail}");
            }
            other => panic!("expected DataLoss, got {other:?}"),
        }
        assert!(matches!(
            error.clone(),
            EngineError::DataLoss {
                position: Some(57),
                ..
            }
        ));
    }
}
