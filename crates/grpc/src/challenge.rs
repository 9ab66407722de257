//! The cardholder's side of 3-D Secure, for the hosted challenge page
//! (`paycore-pages`): the link a payin's `authentication_url` carries, and
//! completing the payin's authentication as the cardholder, with the same
//! rules as `CompleteCardPayinAuthentication` (sandbox projects only; the
//! network's answer recorded by the same command).
//!
//! The link names the payin and carries a token: an HMAC of the payin ID
//! under the deployment's server secret (`SideStorage::fingerprint_secret`,
//! its own context label), so only whoever was given the URL can answer the
//! challenge, every server of a deployment accepts it, and nothing new is
//! stored.

use hmac::{Hmac, Mac};
use paycore_domain::card_payin::{CardPayin, CardPayinState};
use paycore_domain::sandbox_network::Authentication;
use paycore_domain::{CardPayinId, Environment, StreamRef};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::AppState;
use crate::services::Handlers;
use crate::services::card_payin::Cardholder;

/// The actor the events of an answered challenge record.
pub const CHALLENGE_ACTOR: &str = "3-D Secure challenge page";

/// Bytes of the HMAC a link carries (128 bits, 32 hex digits).
const TOKEN_BYTES: usize = 16;

/// The token of `payin`'s challenge link.
pub fn link_token(server_secret: &[u8; 32], payin: CardPayinId) -> String {
    hex::encode(link_mac(server_secret, payin))
}

fn link_mac(server_secret: &[u8; 32], payin: CardPayinId) -> [u8; TOKEN_BYTES] {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(server_secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts a 32-byte key"),
    };
    mac.update(b"paycore 3-D Secure challenge link v1\0");
    mac.update(payin.to_string().as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut token = [0u8; TOKEN_BYTES];
    token.copy_from_slice(&digest[..TOKEN_BYTES]);
    token
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
        let expected = link_mac(&self.server_secret, id);
        let given = hex::decode(token).map_err(|_| ChallengeError::UnknownLink)?;
        if !bool::from(given.ct_eq(&expected)) {
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
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
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
