//! What the connector hands out and the next step needs, kept sealed in
//! side storage so that it survives a restart and any server of a
//! deployment reads it: a sign-in step's challenge token or redirect state,
//! and the granted consent (its ID is a bearer credential for the person's
//! accounts). The password is never kept.
//!
//! # Format
//!
//! Namespace `aggregation`, content `version (1) | nonce (24) |
//! XChaCha20-Poly1305(JSON) + tag`, as the card vault seals numbers, under
//! a key derived from the vault key with its own label. The associated
//! data `<project> NUL <entry key>` binds an entry to its project and
//! connection: copied elsewhere or read for another project, it does not
//! open.
//!
//! # Keys
//!
//! - `<connection>.step.<micros>`: the step waiting for the end user, keyed
//!   by the time the connection entered the status that waits for it
//!   (`status_changed_at`), so each step of a first sign-in has its own
//!   key. A re-sign-in from `ACTION_REQUIRED` changes no status (the
//!   diagram has no arrow for it), so its steps share the key and a new
//!   one replaces the last (delete, then put: entries are write-once).
//! - `<connection>.consent.<micros>`: the consent, keyed by the domain's
//!   `granted_at`; a renewal writes a new key and deletes the old one.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use paycore_domain::{AggregationConnectionId, ProjectId, Timestamp};
use paycore_sidestore::{Blobs, SideStoreError, VaultKey};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The [`Blobs`] namespace of open banking's sealed entries.
pub const NAMESPACE: &str = "aggregation";
/// The label the sealing key is derived from the vault key under.
const KEY_LABEL: &[u8] = b"paycore aggregation secrets v1";
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;

/// Why a sealed entry could not be kept or read. Messages name the entry's
/// key at most (a connection ID and a time), never its content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Store(#[from] SideStoreError),
    /// Altered, moved from another connection, read for another project,
    /// or sealed under another key.
    #[error("sealed entry {key} failed authentication")]
    Tampered { key: String },
    #[error("sealed entry {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: &'static str },
    #[error("cannot seal entry {key}: {reason}")]
    Seal { key: String, reason: String },
}

/// Seals entries into side storage and opens them again.
pub(crate) struct Secrets {
    cipher: XChaCha20Poly1305,
    blobs: Arc<dyn Blobs>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("blobs", &self.blobs)
            .finish_non_exhaustive()
    }
}

pub(crate) fn step_key(connection: AggregationConnectionId, since: Timestamp) -> String {
    format!("{connection}.step.{}", since.micros())
}

pub(crate) fn consent_key(connection: AggregationConnectionId, granted_at: Timestamp) -> String {
    format!("{connection}.consent.{}", granted_at.micros())
}

impl Secrets {
    pub(crate) fn new(key: &VaultKey, blobs: Arc<dyn Blobs>) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&Key::from(key.derive(KEY_LABEL))),
            blobs,
        }
    }

    /// Seals `value` under `key`, replacing what the key held.
    pub(crate) async fn replace<T: Serialize>(
        &self,
        project: ProjectId,
        key: &str,
        value: &T,
    ) -> Result<(), SecretError> {
        let sealed = self.seal(project, key, value)?;
        self.blobs.delete(NAMESPACE, key).await?;
        Ok(self.blobs.put(NAMESPACE, key, &sealed).await?)
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        project: ProjectId,
        key: &str,
    ) -> Result<Option<T>, SecretError> {
        match self.blobs.get(NAMESPACE, key).await? {
            Some(sealed) => self.open(project, key, &sealed).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), SecretError> {
        Ok(self.blobs.delete(NAMESPACE, key).await?)
    }

    fn seal<T: Serialize>(&self, project: ProjectId, key: &str, value: &T) -> Result<Vec<u8>, SecretError> {
        let failed = |reason: String| SecretError::Seal {
            key: key.to_owned(),
            reason,
        };
        let plain = serde_json::to_vec(value).map_err(|e| failed(e.to_string()))?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| failed(format!("no randomness from the operating system: {e}")))?;
        let aad = associated_data(project, key);
        let payload = Payload {
            msg: &plain,
            aad: aad.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| failed("encryption failed".into()))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    fn open<T: DeserializeOwned>(
        &self,
        project: ProjectId,
        key: &str,
        sealed: &[u8],
    ) -> Result<T, SecretError> {
        let corrupt = |reason| SecretError::Corrupt {
            key: key.to_owned(),
            reason,
        };
        let (&version, rest) = sealed.split_first().ok_or(corrupt("empty entry"))?;
        if version != FORMAT_V1 {
            return Err(corrupt("unknown format version"));
        }
        if rest.len() < NONCE_LEN {
            return Err(corrupt("too short"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| corrupt("too short"))?;
        let aad = associated_data(project, key);
        let payload = Payload {
            msg: ciphertext,
            aad: aad.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SecretError::Tampered { key: key.to_owned() })?;
        serde_json::from_slice(&plain).map_err(|_| corrupt("not the expected content"))
    }
}

fn associated_data(project: ProjectId, key: &str) -> String {
    format!("{project}\0{key}")
}

#[cfg(test)]
mod tests {
    use paycore_sidestore::MemoryBlobs;
    use uuid::Uuid;

    use super::*;

    fn secrets(blobs: Arc<dyn Blobs>) -> Secrets {
        Secrets::new(&VaultKey::from_bytes([7; 32]), blobs)
    }

    #[tokio::test]
    async fn an_entry_opens_only_for_its_project_and_key() -> Result<(), SecretError> {
        let blobs: Arc<dyn Blobs> = Arc::new(MemoryBlobs::new());
        let secrets = secrets(blobs.clone());
        let project = ProjectId::from_uuid(Uuid::now_v7());
        let other = ProjectId::from_uuid(Uuid::now_v7());
        let connection = AggregationConnectionId::from_uuid(Uuid::now_v7());
        let key = step_key(connection, Timestamp::from_micros(1));
        secrets.replace(project, &key, &"challenge-token").await?;
        assert_eq!(
            secrets.get::<String>(project, &key).await?.as_deref(),
            Some("challenge-token")
        );
        assert!(matches!(
            secrets.get::<String>(other, &key).await,
            Err(SecretError::Tampered { .. })
        ));
        // Moved under another connection's key: refused.
        let moved = step_key(
            AggregationConnectionId::from_uuid(Uuid::now_v7()),
            Timestamp::from_micros(1),
        );
        let bytes = blobs.get(NAMESPACE, &key).await?.unwrap_or_default();
        blobs.put(NAMESPACE, &moved, &bytes).await?;
        assert!(matches!(
            secrets.get::<String>(project, &moved).await,
            Err(SecretError::Tampered { .. })
        ));
        // Nothing of the content is readable in storage.
        assert!(!String::from_utf8_lossy(&bytes).contains("challenge"));
        secrets.replace(project, &key, &"next").await?;
        assert_eq!(
            secrets.get::<String>(project, &key).await?.as_deref(),
            Some("next")
        );
        secrets.delete(&key).await?;
        assert_eq!(secrets.get::<String>(project, &key).await?, None);
        Ok(())
    }
}
