//! [`FileStore`]: uploaded file contents, stored once by their SHA-256.
//!
//! Events about a file (`file_…` resources: identity documents) carry its
//! [`FileDigest`]; the bytes live here, in namespace `files` under the
//! digest's lowercase hex. Content addressing gives three things for free:
//! the same document uploaded twice is stored once; a retried upload is
//! harmless; and every read can check that the bytes are the ones the event
//! log refers to ([`SideStoreError::Corrupt`] otherwise).

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::{Blobs, SideStoreError};

/// The [`Blobs`] namespace of file contents.
pub const NAMESPACE: &str = "files";

/// The SHA-256 of a file's content: its identity in side storage.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileDigest([u8; 32]);

impl FileDigest {
    /// The digest of `content`.
    pub fn of(content: &[u8]) -> Self {
        Self(Sha256::digest(content).into())
    }

    /// A digest from its 32 bytes (as stored in an event).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hexadecimal digits (either case); `None` otherwise.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hexadecimal digits: the storage key.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Standard base64 with padding (44 characters), as HTTP's
    /// `Digest: sha-256=…` and most APIs show a SHA-256.
    pub fn base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

/// The hex digits.
impl fmt::Display for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for FileDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileDigest({})", self.hex())
    }
}

/// File contents in side storage, addressed by their SHA-256.
#[derive(Debug, Clone)]
pub struct FileStore {
    blobs: Arc<dyn Blobs>,
}

impl FileStore {
    /// A file store over `blobs` (namespace [`NAMESPACE`]).
    pub fn new(blobs: Arc<dyn Blobs>) -> Self {
        Self { blobs }
    }

    /// Stores `content` (durably when this returns) and returns its digest.
    /// Content already stored is not written again.
    pub async fn put(&self, content: &[u8]) -> Result<FileDigest, SideStoreError> {
        let digest = FileDigest::of(content);
        self.put_hashed(digest, content).await?;
        Ok(digest)
    }

    /// Stores a finished upload, using the digest it computed while the
    /// chunks arrived (no second pass over the bytes).
    pub async fn put_upload(&self, upload: UploadBuffer) -> Result<FileDigest, SideStoreError> {
        let (content, digest) = upload.finish();
        self.put_hashed(digest, &content).await?;
        Ok(digest)
    }

    /// The content whose digest is `digest`, or `None`. The bytes read are
    /// hashed again: a mismatch is [`SideStoreError::Corrupt`], never wrong
    /// content handed out.
    pub async fn get(&self, digest: FileDigest) -> Result<Option<Vec<u8>>, SideStoreError> {
        let key = digest.hex();
        let Some(content) = self.blobs.get(NAMESPACE, &key).await? else {
            return Ok(None);
        };
        if FileDigest::of(&content) == digest {
            Ok(Some(content))
        } else {
            Err(SideStoreError::Corrupt {
                namespace: NAMESPACE.to_owned(),
                key,
                reason: "the content does not match its SHA-256".to_owned(),
            })
        }
    }

    async fn put_hashed(&self, digest: FileDigest, content: &[u8]) -> Result<(), SideStoreError> {
        match self.blobs.put(NAMESPACE, &digest.hex(), content).await {
            // Only if the stored bytes are damaged: the key is their hash.
            Err(SideStoreError::Conflict { namespace, key }) => Err(SideStoreError::Corrupt {
                namespace,
                key,
                reason: "the stored content does not match its SHA-256".to_owned(),
            }),
            other => other,
        }
    }
}

/// An upload arriving in chunks, refused as soon as it grows past its
/// limit, with its SHA-256 computed as the chunks arrive.
pub struct UploadBuffer {
    limit: usize,
    content: Vec<u8>,
    hasher: Sha256,
}

/// The chunk would take the upload past its limit; the chunk was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the file is larger than the limit of {limit} bytes")]
pub struct TooLarge {
    pub limit: usize,
}

impl UploadBuffer {
    /// An empty upload that accepts at most `limit` bytes in total.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            content: Vec::new(),
            hasher: Sha256::new(),
        }
    }

    /// Appends `chunk`, or refuses it (leaving the upload as it was) if the
    /// total would exceed the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        let fits = self
            .content
            .len()
            .checked_add(chunk.len())
            .is_some_and(|total| total <= self.limit);
        if !fits {
            return Err(TooLarge { limit: self.limit });
        }
        self.content.extend_from_slice(chunk);
        self.hasher.update(chunk);
        Ok(())
    }

    /// Bytes received so far.
    pub fn len(&self) -> usize {
        self.content.len()
    }

    /// Whether nothing was received yet.
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }

    /// The limit given to [`UploadBuffer::new`].
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The content and its digest.
    pub fn finish(self) -> (Vec<u8>, FileDigest) {
        (self.content, FileDigest(self.hasher.finalize().into()))
    }
}

/// Sizes only: the content may be a personal document.
impl fmt::Debug for UploadBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadBuffer")
            .field("len", &self.content.len())
            .field("limit", &self.limit)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
    const ABC_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digest_renderings() {
        let digest = FileDigest::of(b"abc");
        assert_eq!(digest.hex(), ABC_HEX);
        assert_eq!(digest.base64(), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
        assert_eq!(digest.to_string(), ABC_HEX);
        assert_eq!(format!("{digest:?}"), format!("FileDigest({ABC_HEX})"));
        assert_eq!(FileDigest::from_hex(ABC_HEX), Some(digest));
        assert_eq!(FileDigest::from_hex(&ABC_HEX.to_uppercase()), Some(digest));
        assert_eq!(FileDigest::from_hex("abc"), None);
        assert_eq!(FileDigest::from_bytes(*digest.as_bytes()), digest);
    }

    #[test]
    fn upload_buffer_hashes_incrementally_and_enforces_its_limit() {
        let mut upload = UploadBuffer::new(5);
        assert!(upload.is_empty());
        assert_eq!(upload.push(b"ab"), Ok(()));
        assert_eq!(upload.push(b"c"), Ok(()));
        assert_eq!(upload.push(b"def"), Err(TooLarge { limit: 5 }));
        assert_eq!(upload.len(), 3);
        assert_eq!(upload.push(b"de"), Ok(()));
        assert_eq!(upload.push(b""), Ok(()));
        assert_eq!(upload.push(b"f"), Err(TooLarge { limit: 5 }));
        assert_eq!(format!("{upload:?}"), "UploadBuffer { len: 5, limit: 5 }");
        let (content, digest) = upload.finish();
        assert_eq!(content, b"abcde");
        assert_eq!(digest, FileDigest::of(b"abcde"));
    }

    #[test]
    fn too_large_message() {
        assert_eq!(
            TooLarge { limit: 10 }.to_string(),
            "the file is larger than the limit of 10 bytes"
        );
    }
}
