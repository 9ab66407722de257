//! What can go wrong talking to a bank, typed so that the server can move a
//! connection to the state that fits (consent expired → `ACTION_REQUIRED`,
//! rate limited → `REFRESH_DELAYED` until `retry_after`, …).

use time::OffsetDateTime;

use crate::model::Permission;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    #[error("unknown institution {0}")]
    UnknownInstitution(String),
    /// Not (or no longer) at the bank: an account closed since the last
    /// sync answers this.
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error("unknown credit card {0}")]
    UnknownCard(String),
    /// A session, challenge, redirect state, consent or cursor this
    /// connector did not hand out, or that does not belong to the call.
    #[error("invalid {what}")]
    InvalidToken { what: &'static str },
    #[error("session expired at {expired_at}")]
    SessionExpired { expired_at: OffsetDateTime },
    /// The user must consent again (PSD2: every 180 days, or the bank
    /// revoked it).
    #[error("consent expired at {expired_at}")]
    ConsentExpired { expired_at: OffsetDateTime },
    #[error("the consent does not cover {0}")]
    OutOfScope(Permission),
    /// The bank demands strong customer authentication again: sign in anew.
    #[error("strong customer authentication required")]
    ScaRequired,
    /// HTTP 429, or the consent's `frequencyPerDay` used up.
    #[error("rate limited, retry at {retry_after}")]
    RateLimited { retry_after: OffsetDateTime },
    #[error("bank unavailable")]
    BankUnavailable { retry_after: Option<OffsetDateTime> },
    #[error("{0} not offered by this institution")]
    Unsupported(&'static str),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The bank's answer could not be understood.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The bank could not be reached (timeout, connection refused, TLS).
    #[error("transport error: {0}")]
    Transport(String),
}

impl ConnectorError {
    /// Whether trying the same call later may succeed without the user.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::RateLimited { .. }
                | ConnectorError::BankUnavailable { .. }
                | ConnectorError::Transport(_)
        )
    }

    /// Whether the user must act (sign in or consent again).
    pub fn needs_user(&self) -> bool {
        matches!(
            self,
            ConnectorError::SessionExpired { .. }
                | ConnectorError::ConsentExpired { .. }
                | ConnectorError::ScaRequired
        )
    }

    /// The earliest time to try again, when the bank said.
    pub fn retry_after(&self) -> Option<OffsetDateTime> {
        match self {
            ConnectorError::RateLimited { retry_after } => Some(*retry_after),
            ConnectorError::BankUnavailable { retry_after } => *retry_after,
            _ => None,
        }
    }
}
