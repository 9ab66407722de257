//! A projection on disk: `<dir>/<name>.snapshot`, or `<dir>/<name>.rebuild`
//! for the partial result of an interrupted offline rebuild.
//!
//! ```text
//! [u8; 4]  "PCPJ"
//! u32      file format (1)
//! u16      name length, then the projection's name (UTF-8)
//! u32      projection version
//! u64      checkpoint (next position to apply)
//! u8       1 if a last hash follows, else 0; then [u8; 32] chain hash of
//!          the event at checkpoint - 1
//! u64      body length
//! u32      crc32c of the body
//! body     postcard encoding of the model
//! ```
//!
//! All integers little-endian. Written to a temporary file, fsync'd and
//! renamed over the old one, so a crash leaves the old or the new file, never
//! half of one. The checksum catches damage; a snapshot is only a cache, so
//! a damaged one is ignored and the projection rebuilt from the log.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use paycore_store::{ChainHash, Position};

use crate::models::Projection;
use crate::slot::Checkpointed;

const MAGIC: &[u8; 4] = b"PCPJ";
const FORMAT: u32 = 1;
/// Longest header: magic, format, name (u16 + up to 64), version,
/// checkpoint, hash flag + hash, body length, crc.
const MAX_HEADER: usize = 4 + 4 + 2 + 64 + 4 + 8 + 1 + 32 + 8 + 4;

/// Where projection `name`'s snapshot lives in `dir`.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.snapshot"))
}

/// Where an offline rebuild of `name` keeps its progress.
pub fn partial_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.rebuild"))
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a projection snapshot")]
    NotASnapshot,
    #[error("snapshot of projection {found:?}, not {expected:?}")]
    OtherProjection { found: String, expected: &'static str },
    #[error("made by projection version {found}; this build is version {expected}")]
    OtherVersion { found: u32, expected: u32 },
    #[error("damaged (checksum or encoding)")]
    Damaged,
}

/// What a snapshot file says about itself, read without its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub version: u32,
    pub checkpoint: Position,
    pub last_hash: Option<ChainHash>,
    body_len: u64,
    crc: u32,
    header_len: usize,
}

pub(crate) fn encode<P: Projection>(checkpointed: &Checkpointed<P>) -> Vec<u8> {
    encode_as(P::NAME, P::VERSION, checkpointed)
}

/// The snapshot of `checkpointed` as if made by projection `name` at `version`.
fn encode_as<P: Projection>(name: &str, version: u32, checkpointed: &Checkpointed<P>) -> Vec<u8> {
    // Encoding plain data into a Vec cannot fail; an empty body would be
    // caught as damage on load rather than trusted.
    let body = postcard::to_stdvec(&checkpointed.model).unwrap_or_default();
    let mut out = Vec::with_capacity(MAX_HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    debug_assert!(name.len() <= 64, "projection names are short");
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&checkpointed.next_position.to_le_bytes());
    match checkpointed.last_hash {
        Some(hash) => {
            out.push(1);
            out.extend_from_slice(&hash);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads fixed-size fields off the front of a byte slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

pub fn parse_header(bytes: &[u8]) -> Result<Header, SnapshotError> {
    let mut fields = Fields(bytes);
    let bad = || SnapshotError::NotASnapshot;
    if &fields.take::<4>().ok_or_else(bad)? != MAGIC
        || u32::from_le_bytes(fields.take().ok_or_else(bad)?) != FORMAT
    {
        return Err(bad());
    }
    let name_len = usize::from(u16::from_le_bytes(fields.take().ok_or_else(bad)?));
    let name = fields.0.get(..name_len).ok_or_else(bad)?;
    let name = String::from_utf8(name.to_vec()).map_err(|_| bad())?;
    fields.0 = &fields.0[name_len..];
    let version = u32::from_le_bytes(fields.take().ok_or_else(bad)?);
    let checkpoint = u64::from_le_bytes(fields.take().ok_or_else(bad)?);
    let last_hash = match fields.take::<1>().ok_or_else(bad)? {
        [0] => None,
        [1] => Some(fields.take::<32>().ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    let body_len = u64::from_le_bytes(fields.take().ok_or_else(bad)?);
    let crc = u32::from_le_bytes(fields.take().ok_or_else(bad)?);
    Ok(Header {
        name,
        version,
        checkpoint,
        last_hash,
        body_len,
        crc,
        header_len: bytes.len() - fields.0.len(),
    })
}

pub(crate) fn decode<P: Projection>(bytes: &[u8]) -> Result<Checkpointed<P>, SnapshotError> {
    let header = parse_header(bytes)?;
    if header.name != P::NAME {
        return Err(SnapshotError::OtherProjection {
            found: header.name,
            expected: P::NAME,
        });
    }
    if header.version != P::VERSION {
        return Err(SnapshotError::OtherVersion {
            found: header.version,
            expected: P::VERSION,
        });
    }
    let body = &bytes[header.header_len..];
    if body.len() as u64 != header.body_len || crc32c::crc32c(body) != header.crc {
        return Err(SnapshotError::Damaged);
    }
    let model = postcard::from_bytes(body).map_err(|_| SnapshotError::Damaged)?;
    Ok(Checkpointed {
        next_position: header.checkpoint,
        last_hash: header.last_hash,
        model,
    })
}

/// The header of the snapshot at `path`; `Ok(None)` when there is no file.
pub fn read_header(path: &Path) -> std::io::Result<Option<Result<Header, SnapshotError>>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut head = Vec::with_capacity(MAX_HEADER);
    Read::by_ref(&mut file)
        .take(MAX_HEADER as u64)
        .read_to_end(&mut head)?;
    Ok(Some(parse_header(&head)))
}

/// Writes `bytes` at `path` atomically (temporary file, fsync, rename,
/// directory fsync). Blocking.
pub(crate) fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use paycore_store::{EventStore, MemoryStore};

    use super::*;
    use crate::models::Transactions;
    use crate::test_support::ledger;
    use crate::{PageRequest, ReadModels, SnapshotPolicy};

    /// A snapshot claiming the whole log with an empty model: served as is
    /// if trusted, so whether it is trusted shows in the answers.
    async fn empty_snapshot_at_head(store: &dyn EventStore, version: u32) -> Vec<u8> {
        let head = *store.committed().borrow();
        let last = store.read_all(head - 1, 1).await.unwrap();
        let claimed = Checkpointed {
            next_position: head,
            last_hash: Some(last[0].hash),
            model: Transactions::default(),
        };
        encode_as(Transactions::NAME, version, &claimed)
    }

    #[tokio::test]
    async fn a_snapshot_of_another_projection_version_is_rebuilt_from_the_log() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let ledger = ledger(store.clone(), 3).await;
        let page = PageRequest {
            size: 100,
            token: None,
        };
        for (version, expected) in [(Transactions::VERSION, 0), (Transactions::VERSION + 1, 7)] {
            let dir = tempfile::tempdir().unwrap();
            let bytes = empty_snapshot_at_head(store.as_ref(), version).await;
            save(&path(dir.path(), Transactions::NAME), &bytes).unwrap();
            let read = ReadModels::start(store.clone(), SnapshotPolicy::read_only(dir.path().to_owned()))
                .await
                .unwrap();
            let found = read
                .list_transactions(ledger.project, None, &page)
                .unwrap()
                .items
                .len();
            assert_eq!(found, expected, "snapshot of version {version}");
        }
    }

    #[test]
    fn a_header_reads_back_and_a_damaged_body_is_refused() {
        let checkpointed = Checkpointed {
            next_position: 42,
            last_hash: Some([7; 32]),
            model: Transactions::default(),
        };
        let mut bytes = encode(&checkpointed);
        let header = parse_header(&bytes).unwrap();
        assert_eq!(
            (
                header.name.as_str(),
                header.version,
                header.checkpoint,
                header.last_hash
            ),
            (Transactions::NAME, Transactions::VERSION, 42, Some([7; 32]))
        );
        let decoded = decode::<Transactions>(&bytes).unwrap();
        assert_eq!(decoded.next_position, 42);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            decode::<Transactions>(&bytes),
            Err(SnapshotError::Damaged)
        ));
        assert!(matches!(
            decode::<crate::models::Accounts>(&encode(&checkpointed)),
            Err(SnapshotError::OtherProjection { .. })
        ));
    }
}
