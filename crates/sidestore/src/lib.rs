//! Side storage of paycore: data kept **beside** the event log, never in it.
//!
//! Two kinds of data must not go into the append-only, hash-chained log:
//!
//! - **full card numbers**, which may only be kept encrypted and must be
//!   erasable (the log cannot forget anything); [`CardVault`] seals them;
//! - **uploaded file contents** (identity documents), which are large and
//!   would bloat every replay; [`FileStore`] keeps them by content hash, and
//!   the events carry only the hash.
//!
//! Both sit on one small abstraction, [`Blobs`]: durable, write-once
//! key → bytes storage in a few namespaces, with two backends that match the
//! two event-store backends:
//!
//! | backend | where | used with |
//! |---|---|---|
//! | [`DirBlobs`] | `<root>/<namespace>/<key>` files (written to a temp file, fsynced, linked into place, directory fsynced) | the embedded log (`data/`) |
//! | [`PgBlobs`] | the `side_blobs` table of the PostgreSQL schema (migration 2 of `paycore-store-postgres`) | the PostgreSQL store, so every server sees the same entries |
//! | [`MemoryBlobs`] | a map in memory | tests |
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! use std::sync::Arc;
//! use paycore_domain::{ProjectId, card::CardNumber};
//! use paycore_sidestore::{Blobs, CardVault, FileStore, MemoryBlobs, VaultKey};
//!
//! // A server uses DirBlobs::open(data_dir.join("side")) or PgBlobs::connect(url, schema).
//! let blobs: Arc<dyn Blobs> = Arc::new(MemoryBlobs::new());
//!
//! let vault = CardVault::new(VaultKey::generate()?, blobs.clone());
//! let project = ProjectId::from_uuid(uuid::Uuid::now_v7());
//! let number = CardNumber::parse("4242424242424242")?;
//! vault.seal(project, "card_0001", &number).await?;
//! assert_eq!(vault.open(project, "card_0001").await?, Some(number));
//!
//! let files = FileStore::new(blobs);
//! let digest = files.put(b"%PDF-1.7 ...").await?;
//! assert_eq!(files.get(digest).await?.as_deref(), Some(&b"%PDF-1.7 ..."[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
//!
//! # Write-once semantics
//!
//! An entry, once put, is never changed: putting the same key again with the
//! same content succeeds without writing anything, and with different content
//! fails with [`SideStoreError::Conflict`] (the first write wins). This is
//! what makes retries safe: a retried card seal or file upload either finds
//! its own earlier write or tells the caller that the key was already used
//! for something else. Entries can be deleted (a forgotten card); deleting is
//! idempotent.
//!
//! # Keys
//!
//! Namespaces are 1–32 characters `a-z`; keys are 1–128 characters
//! `A-Z a-z 0-9 _ . -`, not starting with `.` (so that a key is always a
//! plain file name: never `.`, `..`, a hidden or a temporary file). Anything
//! else is refused with [`SideStoreError::InvalidKey`] before any I/O.
//! Keys are case-sensitive; on a case-insensitive file system, keep
//! [`DirBlobs`] to keys that differ by more than case (paycore's IDs and hex
//! digests do).

mod blobs;
mod error;
pub mod files;
mod fsutil;
pub mod vault;

pub use blobs::{Blobs, DirBlobs, MemoryBlobs, PgBlobs};
pub use error::{MAX_KEY_LEN, MAX_NAMESPACE_LEN, SideStoreError, check_key};
pub use files::{FileDigest, FileStore, TooLarge, UploadBuffer};
pub use vault::{CardVault, KeyError, VaultError, VaultKey};
