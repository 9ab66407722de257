//! API keys: `<environment>_<kind>key_<key id>_<secret>`.
//!
//! The key ID is in the clear so the server finds the key without a scan; the
//! secret (32 random bytes, hex) is only ever stored as its SHA-256.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Environment;
use crate::kernel::id::{self, ApiKeyId};

/// Secret keys may do everything in their project; public keys may only
/// create card tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyKind {
    Secret,
    Public,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Public => "public",
        }
    }
}

/// A full API key as the client presents it. Never stored, never logged:
/// `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyToken {
    pub environment: Environment,
    pub kind: KeyKind,
    pub key_id: ApiKeyId,
    secret: [u8; 32],
}

/// The presented string is not shaped like one of our keys.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed API key")]
pub struct MalformedKey;

impl ApiKeyToken {
    pub fn new(environment: Environment, kind: KeyKind, key_id: ApiKeyId, secret: [u8; 32]) -> Self {
        Self {
            environment,
            kind,
            key_id,
            secret,
        }
    }

    /// What the log keeps of the key.
    pub fn secret_hash(&self) -> [u8; 32] {
        hash_secret(&self.secret)
    }

    pub fn parse(text: &str) -> Result<Self, MalformedKey> {
        let mut parts = text.splitn(4, '_');
        let (Some(environment), Some(kind), Some(id), Some(secret)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedKey);
        };
        let environment = match environment {
            "sandbox" => Environment::Sandbox,
            "live" => Environment::Live,
            _ => return Err(MalformedKey),
        };
        let kind = match kind {
            "secretkey" => KeyKind::Secret,
            "publickey" => KeyKind::Public,
            _ => return Err(MalformedKey),
        };
        let key_id = ApiKeyId::from_uuid(
            id::parse_prefixed(&format!("{}_{id}", ApiKeyId::PREFIX), ApiKeyId::PREFIX)
                .map_err(|_| MalformedKey)?,
        );
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(secret, &mut bytes).map_err(|_| MalformedKey)?;
        Ok(Self::new(environment, kind, key_id, bytes))
    }
}

pub fn hash_secret(secret: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl fmt::Display for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.key_id.to_string();
        let id = id.strip_prefix("key_").unwrap_or(&id);
        write!(
            f,
            "{}_{}key_{}_{}",
            self.environment.as_str(),
            self.kind.as_str(),
            id,
            hex::encode(self.secret)
        )
    }
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ApiKeyToken({:?}, {:?}, {}, <secret>)",
            self.environment, self.kind, self.key_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn round_trips_and_hides_secret() {
        let token = ApiKeyToken::new(
            Environment::Sandbox,
            KeyKind::Secret,
            ApiKeyId::from_uuid(Uuid::from_u128(7)),
            [0xab; 32],
        );
        let text = token.to_string();
        assert!(text.starts_with("sandbox_secretkey_"));
        assert_eq!(ApiKeyToken::parse(&text), Ok(token.clone()));
        assert!(!format!("{token:?}").contains("abab"));
        for bad in [
            "",
            "sandbox_secretkey_x_y",
            &text.replace("secretkey", "otherkey"),
            &text[..text.len() - 1],
        ] {
            assert_eq!(ApiKeyToken::parse(bad), Err(MalformedKey), "{bad}");
        }
    }
}
