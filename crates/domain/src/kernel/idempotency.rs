//! Idempotency keys: a key has an effect at most once, and a retry within
//! [`IDEMPOTENCY_WINDOW_SECONDS`] with the same parameters answers with the
//! same resource.
//!
//! # The key is never kept
//!
//! Clients build keys from whatever they have, payment data included (card
//! numbers and e-mail addresses have been seen in the wild). The log is
//! immutable and replayed to every subscriber, so a key is kept only as a
//! keyed digest: HMAC-SHA-256 under the deployment's server secret (the one
//! card fingerprints derive from) over the project and the key, its first 16
//! bytes in hex, prefixed `h1-`. The record of a key's use lives on the
//! stream `idempotency-<project>.h1-<digest>`, and its event carries no key.
//!
//! # Logs written before keys were hashed
//!
//! Records written then are named by the key itself
//! (`idempotency-<project>.<key>`, [`IdempotencyKeyUsed::verbatim_key`] set).
//! While such a record may still be live (its use plus the window is after
//! now), a command also looks its key up under that name, so a retry across
//! the upgrade still has one effect; new records are always digests.
//!
//! [`IdempotencyKeyUsed::verbatim_key`]: crate::events::IdempotencyKeyUsed::verbatim_key

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::DomainError;
use super::id::ProjectId;
use super::stream::StreamRef;

/// How long a key's first use is remembered.
pub const IDEMPOTENCY_WINDOW_SECONDS: i64 = 24 * 60 * 60;
/// The longest key a client may send.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

const DIGEST_CONTEXT: &[u8] = b"paycore/idempotency-key/v1\0";
/// Marks the stored name of a key as a digest (version 1 of the scheme).
pub const DIGEST_PREFIX: &str = "h1-";

/// An idempotency key of a command: its stored name, and the hash of the
/// request it came with.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The name the key is kept under: `h1-` and the keyed digest.
    pub stored: String,
    /// The key as sent, only while records named by the key itself may
    /// still be live: looked up, never written.
    pub verbatim: Option<String>,
    pub request_hash: [u8; 32],
}

impl std::fmt::Debug for IdempotencyKey {
    // The key as sent may be payment data: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyKey")
            .field("stored", &self.stored)
            .field("verbatim", &self.verbatim.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl IdempotencyKey {
    /// Checks the key's shape (1–255 printable ASCII characters) and keeps
    /// its digest under `server_secret`. `look_up_verbatim` also looks the
    /// key up by itself, for records written before keys were hashed.
    pub fn new(
        key: &str,
        project: ProjectId,
        server_secret: &[u8],
        request_hash: [u8; 32],
        look_up_verbatim: bool,
    ) -> Result<Self, DomainError> {
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_CHARS
            || !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(DomainError::invalid(
                "idempotency-key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters without spaces"),
            ));
        }
        Ok(Self {
            stored: stored_name(server_secret, project, key),
            verbatim: look_up_verbatim.then(|| key.to_owned()),
            request_hash,
        })
    }

    /// The streams that may hold this key's record, the digest's first.
    pub fn streams(&self, project: ProjectId) -> impl Iterator<Item = StreamRef> + '_ {
        std::iter::once(&self.stored)
            .chain(&self.verbatim)
            .map(move |name| StreamRef::Idempotency(project, name.clone()))
    }
}

/// `h1-` and the first 16 bytes of HMAC-SHA-256(secret, context, project,
/// key), in lowercase hex.
fn stored_name(server_secret: &[u8], project: ProjectId, key: &str) -> String {
    // HMAC accepts a key of any length (RFC 2104 hashes or pads it).
    let mut mac = Hmac::<Sha256>::new_from_slice(server_secret).expect("HMAC takes keys of any length");
    mac.update(DIGEST_CONTEXT);
    mac.update(project.uuid().as_bytes());
    mac.update(key.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut name = String::with_capacity(DIGEST_PREFIX.len() + 32);
    name.push_str(DIGEST_PREFIX);
    for byte in &digest[..16] {
        let _ = write!(name, "{byte:02x}");
    }
    name
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn project(n: u128) -> ProjectId {
        ProjectId::from_uuid(Uuid::from_u128(n))
    }

    #[test]
    fn the_stored_name_is_a_keyed_digest_never_the_key() {
        let key = IdempotencyKey::new(
            "4242424242424242-ana@example.com",
            project(1),
            b"secret",
            [0; 32],
            false,
        )
        .unwrap();
        assert!(key.stored.starts_with(DIGEST_PREFIX), "{}", key.stored);
        assert_eq!(key.stored.len(), DIGEST_PREFIX.len() + 32);
        assert!(!key.stored.contains("4242") && !key.stored.contains("example"));
        assert_eq!(key.verbatim, None);
        assert!(!format!("{key:?}").contains("example"));
        let same = |secret: &[u8], p| {
            IdempotencyKey::new("4242424242424242-ana@example.com", p, secret, [9; 32], false)
                .unwrap()
                .stored
        };
        assert_eq!(same(b"secret", project(1)), key.stored, "stable");
        assert_ne!(same(b"other", project(1)), key.stored, "keyed by the deployment");
        assert_ne!(same(b"secret", project(2)), key.stored, "per project");
    }

    #[test]
    fn the_verbatim_name_is_looked_up_only_when_asked() {
        let key = IdempotencyKey::new("order-42", project(1), b"secret", [0; 32], true).unwrap();
        let names: Vec<String> = key.streams(project(1)).map(|s| s.name()).collect();
        assert_eq!(names.len(), 2);
        assert!(names[0].ends_with(&key.stored));
        assert!(names[1].ends_with(".order-42"));
    }
}
