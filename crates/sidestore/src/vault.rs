//! [`CardVault`]: full card numbers, sealed, outside the event log.
//!
//! The domain's rule (`paycore_domain::card`) is that a full card number is
//! never in the event log, a read model, a response, an error or a log line,
//! and is kept only encrypted, elsewhere, for later payins with a stored
//! card. This module is that "elsewhere".
//!
//! # Format of a sealed entry
//!
//! Namespace `cards`, key = the card resource's ID, content:
//!
//! ```text
//! version (1 byte, = 1) | nonce (24 bytes) | XChaCha20-Poly1305 ciphertext of the digits + tag (16 bytes)
//! ```
//!
//! - **XChaCha20-Poly1305** (RustCrypto's `chacha20poly1305`): an AEAD, so a
//!   changed byte fails to open instead of decrypting to another number; its
//!   24-byte nonce is large enough to draw at random for every seal (from the
//!   operating system) with no risk of reuse and no counter to keep.
//! - **Associated data** `<project id> NUL <resource id>` binds the entry to
//!   where it belongs: an entry copied under another resource ID, or read on
//!   behalf of another project, fails to open ([`VaultError::Tampered`]). The
//!   IDs are not stored in the entry; the reader supplies them.
//! - The **version byte** lets a later format (another cipher, a key ID for
//!   rotation) live beside this one.
//!
//! # Keys
//!
//! One [`VaultKey`] (32 bytes) per deployment, in a file of 64 hex digits
//! ([`VaultKey::load`]; [`VaultKey::load_or_create`] makes one on first start
//! for `make run`). The card fingerprint secret is derived from it
//! ([`VaultKey::fingerprint_secret`]) under a separate label, so the key that
//! encrypts numbers is never itself used as an HMAC key. Losing the key file
//! makes every sealed number unreadable; keep it with the backups, not with
//! the data.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use paycore_domain::ProjectId;
use paycore_domain::card::CardNumber;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::Sha256;

use crate::fsutil::{self, Written};
use crate::{Blobs, SideStoreError};

/// The [`Blobs`] namespace of sealed card numbers.
pub const NAMESPACE: &str = "cards";
/// The format written by [`CardVault::seal`].
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// The HMAC label under which the fingerprint secret is derived.
const FINGERPRINT_LABEL: &[u8] = b"paycore card fingerprint v1";

/// The vault's 32-byte secret key. Its `Debug` is `VaultKey(<redacted>)`,
/// it has no `Display`, and no error ever contains it or the file it came
/// from.
#[derive(Clone)]
pub struct VaultKey([u8; 32]);

/// Why a [`VaultKey`] could not be read or made. Messages never contain the
/// key or any part of the key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not 64 hexadecimal digits.
    #[error("a vault key must be 64 hexadecimal digits (32 bytes)")]
    Malformed,
    /// The key file does not hold 64 hexadecimal digits (surrounding
    /// whitespace is allowed).
    #[error("vault key file {} must hold 64 hexadecimal digits (32 bytes)", path.display())]
    MalformedFile { path: PathBuf },
    /// [`VaultKey::load`] found no file.
    #[error("vault key file {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The operating system gave no randomness for a new key.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

impl VaultKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from 64 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| KeyError::Malformed)?;
        Ok(Self(bytes))
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Reads the key from a file holding 64 hexadecimal digits (surrounding
    /// whitespace, such as a final newline, is ignored). Logs a warning if
    /// the file is readable by other users.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(key_io(format!("reading vault key file {}", path.display()), e)),
        };
        warn_if_shared(path);
        Self::from_hex(text.trim()).map_err(|_| KeyError::MalformedFile {
            path: path.to_path_buf(),
        })
    }

    /// Reads the key file at `path`, or, if there is none, creates it with a
    /// new random key (mode 0600, its directory 0700 if missing; written to
    /// a temporary file, fsynced and linked into place, so a crash never
    /// leaves half a key, and two processes starting at once end up with the
    /// same key). For development and the default data directory: production
    /// keys are made and backed up deliberately.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match Self::load(path) {
            Err(KeyError::Missing { .. }) => Self::create(path),
            other => other,
        }
    }

    fn create(path: &Path) -> Result<Self, KeyError> {
        let (dir, name) = split(path)?;
        fsutil::create_private_dir(&dir).map_err(|e| key_io(format!("creating {}", dir.display()), e))?;
        let key = Self::generate()?;
        let text = format!("{}\n", hex::encode(key.0));
        let written = fsutil::write_new(&dir, &name, text.as_bytes())
            .map_err(|e| key_io(format!("writing vault key file {}", path.display()), e))?;
        match written {
            Written::Created => {
                tracing::info!(path = %path.display(), "created a new vault key");
                Ok(key)
            }
            // Another process created it first: use theirs.
            Written::Existed => Self::load(path),
        }
    }

    /// The secret for card fingerprints: HMAC-SHA256(key, `"paycore card
    /// fingerprint v1"`). Pass it to `paycore_domain::card::fingerprint_key`
    /// to get a project's fingerprint key. Derived under its own label so
    /// that the encryption key is used for nothing but encryption.
    pub fn fingerprint_secret(&self) -> [u8; 32] {
        self.derive(FINGERPRINT_LABEL)
    }

    /// A secret for another use than sealing card numbers:
    /// HMAC-SHA256(key, `label`). Each use has its own label (open banking's
    /// sealed consents use one), so the key that encrypts card numbers is
    /// never itself used for anything else, and the uses' secrets are
    /// independent of one another.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length (RFC 2104), so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey(<redacted>)")
    }
}

fn key_io(context: String, source: io::Error) -> KeyError {
    KeyError::Io { context, source }
}

/// The directory and file name of a key file path.
fn split(path: &Path) -> Result<(PathBuf, String), KeyError> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        key_io(
            format!("vault key file {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_owned()))
}

/// A key readable by group or others is worth a warning, not a refusal
/// (the operator may have reasons, e.g. a secrets volume).
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the vault key file is accessible to other users: chmod 600 it"
        );
    }
}

/// Why a card could not be sealed or opened. Messages name the resource ID
/// at most, never the number.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The side storage failed (I/O, database unavailable, invalid ID).
    #[error(transparent)]
    Store(#[from] SideStoreError),

    /// The entry failed authentication: its bytes were changed, it was
    /// copied from another resource, it is being read for another project,
    /// or it was sealed under another key.
    #[error(
        "sealed card {resource} failed authentication: altered, moved from another project or resource, \
         or sealed under another key"
    )]
    Tampered { resource: String },

    /// The entry is not in a format this vault reads.
    #[error("sealed card {resource} is unreadable: {reason}")]
    Corrupt { resource: String, reason: &'static str },

    /// The resource already has a sealed number, and it is another one:
    /// sealed entries are never replaced.
    #[error("card {resource} already has a different sealed number")]
    AlreadySealed { resource: String },

    /// Sealing failed for a reason other than storage (no randomness from
    /// the operating system for the nonce).
    #[error("cannot seal card {resource}: {reason}")]
    Seal { resource: String, reason: String },
}

/// Seals full card numbers into side storage and opens them again.
///
/// Cheap to share behind an `Arc`. The number exists in clear only in
/// memory, only for the duration of a call.
pub struct CardVault {
    cipher: XChaCha20Poly1305,
    blobs: Arc<dyn Blobs>,
}

impl CardVault {
    /// A vault that encrypts with `key` and stores in `blobs` (namespace
    /// [`NAMESPACE`]).
    pub fn new(key: VaultKey, blobs: Arc<dyn Blobs>) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&Key::from(key.0)),
            blobs,
        }
    }

    /// Encrypts `number` and stores it under `resource` (a card's ID),
    /// bound to `project`; durable when this returns `Ok`.
    ///
    /// Sealing the same number for the same resource again (a retry)
    /// succeeds and keeps the first entry; another number for a resource
    /// that already has one is [`VaultError::AlreadySealed`].
    pub async fn seal(
        &self,
        project: ProjectId,
        resource: &str,
        number: &CardNumber,
    ) -> Result<(), VaultError> {
        let sealed = self.encrypt(project, resource, number)?;
        match self.blobs.put(NAMESPACE, resource, &sealed).await {
            Ok(()) => Ok(()),
            // The random nonce makes every seal's bytes differ: compare numbers.
            Err(SideStoreError::Conflict { .. }) => match self.open(project, resource).await? {
                Some(existing) if existing == *number => Ok(()),
                Some(_) => Err(VaultError::AlreadySealed {
                    resource: resource.to_owned(),
                }),
                None => Err(SideStoreError::conflict(NAMESPACE, resource).into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The number sealed under `resource` for `project`, or `None` if there
    /// is none (never sealed, or forgotten). An entry that does not
    /// authenticate — altered, copied from another resource, or asked for by
    /// another project — is [`VaultError::Tampered`].
    pub async fn open(&self, project: ProjectId, resource: &str) -> Result<Option<CardNumber>, VaultError> {
        match self.blobs.get(NAMESPACE, resource).await? {
            Some(sealed) => self.decrypt(project, resource, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// Erases the sealed number of `resource`, durably; forgetting a number
    /// that is not there succeeds. The event log keeps only the masked
    /// number and fingerprint, so after this the full number is gone.
    pub async fn forget(&self, resource: &str) -> Result<(), VaultError> {
        Ok(self.blobs.delete(NAMESPACE, resource).await?)
    }

    /// Seals with a fresh nonce from the operating system.
    fn encrypt(
        &self,
        project: ProjectId,
        resource: &str,
        number: &CardNumber,
    ) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.try_fill_bytes(&mut nonce).map_err(|e| VaultError::Seal {
            resource: resource.to_owned(),
            reason: format!("no randomness from the operating system: {e}"),
        })?;
        self.encrypt_with(nonce, project, resource, number)
    }

    /// `version | nonce | ciphertext+tag` (see the module docs).
    fn encrypt_with(
        &self,
        nonce: [u8; NONCE_LEN],
        project: ProjectId,
        resource: &str,
        number: &CardNumber,
    ) -> Result<Vec<u8>, VaultError> {
        let aad = associated_data(project, resource);
        let payload = Payload {
            msg: number.digits().as_bytes(),
            aad: aad.as_bytes(),
        };
        let ciphertext =
            self.cipher
                .encrypt(&XNonce::from(nonce), payload)
                .map_err(|_| VaultError::Seal {
                    resource: resource.to_owned(),
                    reason: "encryption failed".to_owned(),
                })?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    fn decrypt(&self, project: ProjectId, resource: &str, sealed: &[u8]) -> Result<CardNumber, VaultError> {
        let corrupt = |reason| VaultError::Corrupt {
            resource: resource.to_owned(),
            reason,
        };
        let (&version, rest) = sealed.split_first().ok_or(corrupt("empty entry"))?;
        if version != FORMAT_V1 {
            return Err(corrupt("unknown format version"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(corrupt("entry too short"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| corrupt("entry too short"))?;
        let aad = associated_data(project, resource);
        let payload = Payload {
            msg: ciphertext,
            aad: aad.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(&nonce, payload)
            .map_err(|_| VaultError::Tampered {
                resource: resource.to_owned(),
            })?;
        // Authentic but not a card number: only if the key sealed something
        // else, which this vault never does.
        std::str::from_utf8(&plain)
            .ok()
            .and_then(|digits| CardNumber::parse(digits).ok())
            .ok_or(corrupt("does not hold a valid card number"))
    }
}

/// `<project id> NUL <resource id>`: what a sealed entry is bound to. NUL
/// cannot occur in either ID, so no two pairs give the same bytes.
fn associated_data(project: ProjectId, resource: &str) -> String {
    format!("{project}\0{resource}")
}

impl fmt::Debug for CardVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardVault").field("blobs", &self.blobs).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBlobs;

    /// Key 00..1f, nonce 64..7b, project `prj_00000000000000000000000001`,
    /// resource `card_1`, number 4242424242424242: computed independently
    /// (Python: HChaCha20 checked against the XChaCha draft's test vector,
    /// then `cryptography`'s ChaCha20Poly1305), so the format cannot drift
    /// unnoticed.
    const KNOWN_ANSWER: &str = "016465666768696a6b6c6d6e6f707172737475767778797a7b\
                                4841cd82cb1cbdb0b302a90d925d89fb351a3171d0379f59b2f1d8b592263640";

    fn vault() -> CardVault {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        CardVault::new(VaultKey::from_bytes(key), Arc::new(MemoryBlobs::new()))
    }

    fn project() -> ProjectId {
        ProjectId::from_uuid(uuid::Uuid::from_u128(1))
    }

    fn number() -> CardNumber {
        CardNumber::parse("4242424242424242").expect("test number")
    }

    fn known_answer() -> Vec<u8> {
        hex::decode(KNOWN_ANSWER).expect("hex")
    }

    #[test]
    fn the_format_matches_an_independent_implementation() -> Result<(), VaultError> {
        assert_eq!(project().to_string(), "prj_00000000000000000000000001");
        let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| 100 + i as u8);
        let sealed = vault().encrypt_with(nonce, project(), "card_1", &number())?;
        assert_eq!(hex::encode(&sealed), KNOWN_ANSWER);
        assert_eq!(vault().decrypt(project(), "card_1", &known_answer())?, number());
        Ok(())
    }

    #[test]
    fn an_authentic_entry_that_is_not_a_card_number_is_corrupt() {
        let vault = vault();
        let nonce = [9u8; NONCE_LEN];
        let aad = associated_data(project(), "card_1");
        let payload = Payload {
            msg: b"not digits",
            aad: aad.as_bytes(),
        };
        let ciphertext = vault
            .cipher
            .encrypt(&XNonce::from(nonce), payload)
            .expect("encrypt");
        let sealed = [&[FORMAT_V1][..], &nonce, &ciphertext].concat();
        assert!(matches!(
            vault.decrypt(project(), "card_1", &sealed),
            Err(VaultError::Corrupt { .. })
        ));
    }
}
