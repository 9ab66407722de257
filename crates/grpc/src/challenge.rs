//! The cardholder's side of 3-D Secure, for the hosted challenge page
//! (`paycore-pages`): the link a payin's `authentication_url` carries, and
//! completing the payin's authentication as the cardholder, with the same
//! rules as `CompleteCardPayinAuthentication` (sandbox projects only; the
//! network's answer recorded by the same command).
//!
//! The link names the payin and carries a token (`link.rs`), so only
//! whoever was given the URL can answer the challenge.

use paycore_domain::card_payin::{CardPayin, CardPayinState};
use paycore_domain::sandbox_network::Authentication;
use paycore_domain::{CardPayinId, Environment, StreamRef};
use tonic::Status;

use crate::AppState;
use crate::link;
use crate::services::Handlers;
use crate::services::card_payin::Cardholder;

/// The actor the events of an answered challenge record.
pub const CHALLENGE_ACTOR: &str = "3-D Secure challenge page";

/// The context of a challenge link's MAC.
const CONTEXT: &[u8] = b"paycore 3-D Secure challenge link v1\0";

/// The token of `payin`'s challenge link.
pub fn link_token(server_secret: &[u8; 32], payin: CardPayinId) -> String {
    link::token(server_secret, CONTEXT, &payin.to_string())
}

/// A payin's `authentication_url`: `<base>/<payin ID>?token=<token>`.
pub fn authentication_url(base: &str, server_secret: &[u8; 32], payin: CardPayinId) -> String {
    format!("{base}/{payin}?token={}", link_token(server_secret, payin))
}

/// Why a challenge link is not answered.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// A malformed payin ID, a wrong token, or no such payin: one case, so
    /// a link cannot be used to learn which payins exist.
    #[error("this authentication link is not valid")]
    UnknownLink,
    /// The payin's project is live: no card network is connected to live
    /// projects yet, so no challenge can be answered there.
    #[error("3-D Secure challenges are answered here for sandbox projects only")]
    NotSandbox,
    #[error("{}", .0.message())]
    Failed(Status),
}

impl From<Status> for ChallengeError {
    fn from(status: Status) -> Self {
        Self::Failed(status)
    }
}

/// Answers challenges on behalf of cardholders. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Challenges {
    handlers: Handlers,
    server_secret: [u8; 32],
}

impl Challenges {
    pub fn new(state: AppState) -> Self {
        let server_secret = state.side.fingerprint_secret;
        Self {
            handlers: Handlers::new(state),
            server_secret,
        }
    }

    /// The payin a link names, in whatever state it is, if the link is
    /// genuine.
    pub async fn payin(&self, id: &str, token: &str) -> Result<CardPayin, ChallengeError> {
        let id: CardPayinId = id.parse().map_err(|_| ChallengeError::UnknownLink)?;
        if !link::is_genuine(&self.server_secret, CONTEXT, &id.to_string(), token) {
            return Err(ChallengeError::UnknownLink);
        }
        let state = self.handlers.load(&StreamRef::CardPayin(id)).await?;
        state.as_card_payin().cloned().ok_or(ChallengeError::UnknownLink)
    }

    /// Answers the challenge of the payin a link names: passed or failed.
    /// A payin no longer awaiting authentication (answered already, say in
    /// another tab) is returned as it is, with nothing recorded.
    pub async fn answer(&self, id: &str, token: &str, passed: bool) -> Result<CardPayin, ChallengeError> {
        let payin = self.payin(id, token).await?;
        if payin.state != CardPayinState::AuthenticationPending {
            return Ok(payin);
        }
        let project = self.handlers.load(&StreamRef::Project(payin.project_id)).await?;
        let environment = project
            .as_project()
            .map(|project| project.environment)
            .ok_or(ChallengeError::UnknownLink)?;
        if environment != Environment::Sandbox {
            return Err(ChallengeError::NotSandbox);
        }
        let cardholder = Cardholder {
            project_id: payin.project_id,
            environment,
            actor: CHALLENGE_ACTOR.to_owned(),
        };
        let authentication = if passed {
            Authentication::Passed
        } else {
            Authentication::Failed
        };
        let answered = self
            .handlers
            .complete_authentication(&cardholder, payin.id, authentication, (None, None))
            .await;
        match answered {
            Ok(payin) => Ok(payin),
            Err(status) => {
                // Answered meanwhile (two submits racing): show what won.
                let now = self.payin(id, token).await?;
                if now.state == CardPayinState::AuthenticationPending {
                    Err(status.into())
                } else {
                    Ok(now)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn payin(n: u128) -> CardPayinId {
        CardPayinId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000 | n))
    }

    #[test]
    fn a_link_is_bound_to_its_payin_and_to_the_deployments_secret() {
        let secret = [7u8; 32];
        let token = link_token(&secret, payin(1));
        assert_eq!(token.len(), 2 * link::TOKEN_BYTES);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(token, link_token(&secret, payin(1)), "the same on every server");
        assert_ne!(token, link_token(&secret, payin(2)), "another payin");
        assert_ne!(token, link_token(&[8u8; 32], payin(1)), "another deployment");
        assert_eq!(
            authentication_url("https://pay.example/3ds", &secret, payin(1)),
            format!("https://pay.example/3ds/{}?token={token}", payin(1))
        );
    }
}
