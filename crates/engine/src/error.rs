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
            Self::Internal(reason) => Self::Internal(reason.clone()),
        }
    }
}
