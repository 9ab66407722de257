//! Snapshots of aggregate state: a cache kept beside the log, never in it.
//!
//! A snapshot claims "folding the events `0..=version` of this stream gives
//! `state`". It is only ever a shortcut: whoever loads a stream with one
//! checks that the event at `version` still carries `event_hash` (so the
//! snapshot was made from this very log, not from another history that
//! reuses the stream name) and that `format` is the encoding and fold it
//! uses itself, then folds only the events after `version`. On any doubt it
//! folds from version 0. Deleting every snapshot therefore changes no
//! answer, only the time a first load takes; so does losing one in a crash,
//! which is why no backend here fsyncs.
//!
//! The store knows nothing of the state's encoding: `format` and `state` are
//! the engine's business.
//!
//! Backends: [`MemorySnapshots`] (tests), [`DirSnapshots`] (beside the
//! embedded log: one small file per stream) and `PgSnapshots` (in the
//! `paycore-store-postgres` crate, a table of the same schema).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::{ChainHash, StreamName, Version};
use crate::error::StoreError;

/// The state of one stream as of one of its events, as saved.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The version of the last event folded into `state`.
    pub version: Version,
    /// The chain hash of the event at `version` (unique per event of a log).
    pub event_hash: ChainHash,
    /// How `state` is encoded and which fold made it; chosen by the writer.
    pub format: u32,
    /// The encoded state; opaque to the store.
    pub state: Bytes,
}

impl StoredSnapshot {
    /// Whether `self` may replace `stored`: a newer `format` (a newer
    /// binary's fold), or the same format and a later version. So saves never
    /// move a snapshot backwards: a late save of an older state does not
    /// undo a newer one, and during a rolling upgrade the old binary does not
    /// replace what the new one wrote (it ignores those snapshots instead).
    pub fn supersedes(&self, stored: &StoredSnapshot) -> bool {
        (self.format, self.version) > (stored.format, stored.version)
    }
}

impl fmt::Debug for StoredSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSnapshot")
            .field("version", &self.version)
            .field("event_hash", &format_args!("{}", hex(&self.event_hash[..8])))
            .field("format", &self.format)
            .field("state_bytes", &self.state.len())
            .finish()
    }
}

/// Where snapshots are kept. At most one per stream.
#[async_trait::async_trait]
pub trait AggregateSnapshots: Send + Sync + fmt::Debug + 'static {
    /// The stream's snapshot, if there is a readable one. A damaged one reads
    /// as `None` (and is logged): it is a cache.
    async fn load(&self, stream: &StreamName) -> Result<Option<StoredSnapshot>, StoreError>;

    /// Saves `snapshot` unless the stored one is at least as new (see
    /// [`StoredSnapshot::supersedes`]); then it does nothing, successfully.
    async fn save(&self, stream: &StreamName, snapshot: StoredSnapshot) -> Result<(), StoreError>;

    /// Forgets the stream's snapshot (one found not to fit the log); no
    /// error if there is none.
    async fn remove(&self, stream: &StreamName) -> Result<(), StoreError>;
}

// ---------------------------------------------------------------- memory

/// Snapshots in memory, for tests.
#[derive(Debug, Default)]
pub struct MemorySnapshots {
    snapshots: Mutex<HashMap<StreamName, StoredSnapshot>>,
}

impl MemorySnapshots {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.snapshots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every snapshot.
    pub fn clear(&self) {
        self.snapshots.lock().clear();
    }

    /// A copy of every snapshot.
    pub fn entries(&self) -> Vec<(StreamName, StoredSnapshot)> {
        self.snapshots
            .lock()
            .iter()
            .map(|(stream, snapshot)| (stream.clone(), snapshot.clone()))
            .collect()
    }
}

#[async_trait::async_trait]
impl AggregateSnapshots for MemorySnapshots {
    async fn load(&self, stream: &StreamName) -> Result<Option<StoredSnapshot>, StoreError> {
        Ok(self.snapshots.lock().get(stream).cloned())
    }

    async fn save(&self, stream: &StreamName, snapshot: StoredSnapshot) -> Result<(), StoreError> {
        let mut snapshots = self.snapshots.lock();
        match snapshots.get(stream) {
            Some(stored) if !snapshot.supersedes(stored) => {}
            _ => {
                snapshots.insert(stream.clone(), snapshot);
            }
        }
        Ok(())
    }

    async fn remove(&self, stream: &StreamName) -> Result<(), StoreError> {
        self.snapshots.lock().remove(stream);
        Ok(())
    }
}

// ---------------------------------------------------------------- directory

/// Snapshots in a directory beside the embedded log: one file per stream,
/// `<dir>/<h[0..2]>/<h>.snap` where `h` is the hex of the first 16 bytes of
/// SHA-256(stream name) (stream names may hold characters a file name must
/// not; the two-character subdirectories keep directories small).
///
/// File: `PCS1`, crc32c of the body (u32 LE), then the postcard body
/// (stream name, version, event hash, format, state). The stream name
/// inside guards against a hash collision; the checksum against a torn or
/// damaged file, which then reads as no snapshot and is replaced by the next
/// save. A save writes `<h>.tmp` and renames it over the old file, without
/// fsync: after a crash a file may be missing, old or torn, and each of
/// those is just a cache miss.
///
/// The directory belongs to one process (the one holding the data
/// directory's lock). The names of the files present are listed once at
/// open and kept in memory, so loading a stream that has no snapshot (most
/// streams: only long ones get one) costs no system call.
#[derive(Clone)]
pub struct DirSnapshots {
    shared: Arc<DirShared>,
}

struct DirShared {
    dir: PathBuf,
    /// Keys of the `.snap` files present.
    present: Mutex<HashSet<FileKey>>,
    /// Serializes saves and removals (each reads, compares and replaces).
    writing: Mutex<()>,
}

type FileKey = [u8; 16];

const MAGIC: &[u8; 4] = b"PCS1";
const HEADER: usize = 8;

/// The file body. Field order is the file format.
#[derive(Serialize, Deserialize)]
struct FileBody<'a> {
    stream: &'a str,
    version: Version,
    event_hash: ChainHash,
    format: u32,
    state: &'a [u8],
}

impl DirSnapshots {
    /// Opens (creating it if needed) the snapshot directory `dir`, lists the
    /// snapshots in it and deletes the temporary files a crash left behind.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let present = scan(&dir)?;
        Ok(Self {
            shared: Arc::new(DirShared {
                dir,
                present: Mutex::new(present),
                writing: Mutex::new(()),
            }),
        })
    }

    /// The directory the snapshots live in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// How many snapshot files there are.
    pub fn len(&self) -> usize {
        self.shared.present.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file that holds (or would hold) `stream`'s snapshot.
    pub fn path_of(&self, stream: &StreamName) -> PathBuf {
        self.shared.path(&key(stream))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&DirShared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || work(&shared))
            .await
            .map_err(|e| StoreError::Unavailable(format!("snapshot task failed: {e}")))?
    }
}

impl DirShared {
    fn path(&self, key: &FileKey) -> PathBuf {
        let name = hex(key);
        self.dir.join(&name[..2]).join(format!("{name}.snap"))
    }

    fn read(&self, stream: &StreamName, key: &FileKey) -> Result<Option<StoredSnapshot>, StoreError> {
        let path = self.path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.present.lock().remove(key);
                return Ok(None);
            }
            Err(e) => return Err(StoreError::io(format!("reading {}", path.display()), e)),
        };
        let snapshot = decode(&bytes, stream);
        if snapshot.is_none() {
            tracing::warn!(path = %path.display(), %stream, "damaged aggregate snapshot ignored");
        }
        Ok(snapshot)
    }

    fn save(&self, stream: &StreamName, snapshot: &StoredSnapshot) -> Result<(), StoreError> {
        let key = key(stream);
        let _writing = self.writing.lock();
        let present = self.present.lock().contains(&key);
        if present
            && let Some(stored) = self.read(stream, &key)?
            && !snapshot.supersedes(&stored)
        {
            return Ok(());
        }
        let path = self.path(&key);
        let temporary = path.with_extension("tmp");
        let io = |doing: &str, e| StoreError::io(format!("{doing} {}", temporary.display()), e);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("creating the directory of", e))?;
        }
        let mut file = std::fs::File::create(&temporary).map_err(|e| io("creating", e))?;
        file.write_all(&encode(stream, snapshot))
            .map_err(|e| io("writing", e))?;
        drop(file);
        // No fsync, on purpose: see the type's docs.
        std::fs::rename(&temporary, &path).map_err(|e| io("renaming", e))?;
        self.present.lock().insert(key);
        Ok(())
    }

    fn remove(&self, stream: &StreamName) -> Result<(), StoreError> {
        let key = key(stream);
        let _writing = self.writing.lock();
        let path = self.path(&key);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(format!("removing {}", path.display()), e)),
        }
        self.present.lock().remove(&key);
        Ok(())
    }
}

impl fmt::Debug for DirSnapshots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirSnapshots")
            .field("dir", &self.shared.dir)
            .field("files", &self.len())
            .finish()
    }
}

#[async_trait::async_trait]
impl AggregateSnapshots for DirSnapshots {
    async fn load(&self, stream: &StreamName) -> Result<Option<StoredSnapshot>, StoreError> {
        let key = key(stream);
        if !self.shared.present.lock().contains(&key) {
            return Ok(None);
        }
        let stream = stream.clone();
        self.blocking(move |shared| shared.read(&stream, &key)).await
    }

    async fn save(&self, stream: &StreamName, snapshot: StoredSnapshot) -> Result<(), StoreError> {
        let stream = stream.clone();
        self.blocking(move |shared| shared.save(&stream, &snapshot)).await
    }

    async fn remove(&self, stream: &StreamName) -> Result<(), StoreError> {
        let stream = stream.clone();
        self.blocking(move |shared| shared.remove(&stream)).await
    }
}

fn key(stream: &StreamName) -> FileKey {
    let digest = Sha256::digest(stream.as_str().as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

fn parse_key(name: &str) -> Option<FileKey> {
    if name.len() != 32 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut key = [0; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

pub(crate) fn encode(stream: &StreamName, snapshot: &StoredSnapshot) -> Vec<u8> {
    let body = FileBody {
        stream: stream.as_str(),
        version: snapshot.version,
        event_hash: snapshot.event_hash,
        format: snapshot.format,
        state: &snapshot.state,
    };
    // Serializing plain integers, bytes and a string into a Vec cannot fail.
    let body = postcard::to_stdvec(&body).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The snapshot in `bytes`, if they are a whole, undamaged file of `stream`.
pub(crate) fn decode(bytes: &[u8], stream: &StreamName) -> Option<StoredSnapshot> {
    let (header, body) = bytes.split_at_checked(HEADER)?;
    let (magic, crc) = header.split_at(4);
    if magic != MAGIC || crc32c::crc32c(body).to_le_bytes() != crc {
        return None;
    }
    let (file, rest): (FileBody<'_>, _) = postcard::take_from_bytes(body).ok()?;
    if !rest.is_empty() || file.stream != stream.as_str() {
        return None;
    }
    Some(StoredSnapshot {
        version: file.version,
        event_hash: file.event_hash,
        format: file.format,
        state: Bytes::copy_from_slice(file.state),
    })
}

/// The keys of the snapshot files under `dir`; deletes leftover `.tmp` files.
fn scan(dir: &Path) -> Result<HashSet<FileKey>, StoreError> {
    let listing = |path: &Path| {
        std::fs::read_dir(path).map_err(|e| StoreError::io(format!("listing {}", path.display()), e))
    };
    let mut present = HashSet::new();
    for entry in listing(dir)? {
        let entry = entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        let sub = entry.path();
        if !sub.is_dir() {
            continue;
        }
        for file in listing(&sub)? {
            let file = file.map_err(|e| StoreError::io(format!("listing {}", sub.display()), e))?;
            let path = file.path();
            let (Some(stem), Some(extension)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            match (extension, parse_key(stem)) {
                ("snap", Some(key)) => {
                    present.insert(key);
                }
                ("tmp", Some(_)) => {
                    // A save a crash interrupted; the old file, if any, is intact.
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
    }
    Ok(present)
}

// ---------------------------------------------------------------- conformance

/// The contract every [`AggregateSnapshots`] backend keeps (feature
/// `conformance`), run on a fresh, empty backend.
#[cfg(feature = "conformance")]
pub mod conformance {
    use super::*;

    fn snapshot(version: Version, format: u32, state: &str) -> StoredSnapshot {
        StoredSnapshot {
            version,
            event_hash: [u8::try_from(version % 251).unwrap_or(0); 32],
            format,
            state: Bytes::copy_from_slice(state.as_bytes()),
        }
    }

    async fn load(snapshots: &dyn AggregateSnapshots, stream: &StreamName) -> Option<StoredSnapshot> {
        snapshots.load(stream).await.expect("load a snapshot")
    }

    async fn save(snapshots: &dyn AggregateSnapshots, stream: &StreamName, snapshot: StoredSnapshot) {
        snapshots.save(stream, snapshot).await.expect("save a snapshot");
    }

    /// Round trip, per stream, never backwards, newer format wins, removal.
    pub async fn check(snapshots: &dyn AggregateSnapshots) {
        let a = StreamName::from("account-acc_a");
        let b = StreamName::from("account-acc_b");
        assert_eq!(load(snapshots, &a).await, None);
        snapshots.remove(&a).await.expect("removing nothing is fine");

        save(snapshots, &a, snapshot(10, 1, "a10")).await;
        assert_eq!(load(snapshots, &a).await, Some(snapshot(10, 1, "a10")));
        assert_eq!(load(snapshots, &b).await, None, "snapshots are per stream");

        // Later versions replace; earlier ones and equal ones do not.
        save(snapshots, &a, snapshot(20, 1, "a20")).await;
        save(snapshots, &a, snapshot(15, 1, "a15")).await;
        save(snapshots, &a, snapshot(20, 1, "other")).await;
        assert_eq!(load(snapshots, &a).await, Some(snapshot(20, 1, "a20")));

        // A newer format replaces even an older version; an older format never.
        save(snapshots, &a, snapshot(5, 2, "a5f2")).await;
        assert_eq!(load(snapshots, &a).await, Some(snapshot(5, 2, "a5f2")));
        save(snapshots, &a, snapshot(99, 1, "a99f1")).await;
        assert_eq!(load(snapshots, &a).await, Some(snapshot(5, 2, "a5f2")));

        // Large states and arbitrary bytes round-trip.
        let big = StoredSnapshot {
            version: u64::MAX >> 1,
            event_hash: [0xAB; 32],
            format: u32::MAX,
            state: Bytes::from((0..100_000u32).map(|i| (i % 256) as u8).collect::<Vec<_>>()),
        };
        save(snapshots, &b, big.clone()).await;
        assert_eq!(load(snapshots, &b).await, Some(big));

        snapshots.remove(&a).await.expect("remove");
        assert_eq!(load(snapshots, &a).await, None);
        // After a removal any snapshot may be saved again.
        save(snapshots, &a, snapshot(1, 1, "again")).await;
        assert_eq!(load(snapshots, &a).await, Some(snapshot(1, 1, "again")));
        assert!(load(snapshots, &b).await.is_some(), "removal is per stream");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_snapshots_keep_the_contract() {
        conformance::check(&MemorySnapshots::new()).await;
    }

    #[tokio::test]
    async fn dir_snapshots_keep_the_contract_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = DirSnapshots::open(dir.path().join("snapshots")).unwrap();
        conformance::check(&snapshots).await;
        let a = StreamName::from("account-acc_a");
        let saved = snapshots.load(&a).await.unwrap().unwrap();
        drop(snapshots);
        let reopened = DirSnapshots::open(dir.path().join("snapshots")).unwrap();
        assert_eq!(reopened.len(), 2);
        assert_eq!(reopened.load(&a).await.unwrap(), Some(saved));
    }

    fn sample() -> StoredSnapshot {
        StoredSnapshot {
            version: 41,
            event_hash: [7; 32],
            format: 3,
            state: Bytes::from_static(b"state"),
        }
    }

    #[tokio::test]
    async fn a_damaged_or_torn_file_reads_as_no_snapshot_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = DirSnapshots::open(dir.path()).unwrap();
        let stream = StreamName::from("account-acc_x");
        snapshots.save(&stream, sample()).await.unwrap();
        let path = snapshots.path_of(&stream);
        let good = std::fs::read(&path).unwrap();

        // Every flipped byte and every truncation is caught.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(snapshots.load(&stream).await.unwrap(), None, "flipped byte {at}");
        }
        for len in 0..good.len() {
            std::fs::write(&path, &good[..len]).unwrap();
            assert_eq!(snapshots.load(&stream).await.unwrap(), None, "torn at {len}");
        }
        // A damaged file does not block a save of an older version.
        let older = StoredSnapshot {
            version: 1,
            ..sample()
        };
        snapshots.save(&stream, older.clone()).await.unwrap();
        assert_eq!(snapshots.load(&stream).await.unwrap(), Some(older));
    }

    #[tokio::test]
    async fn a_file_of_another_stream_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = DirSnapshots::open(dir.path()).unwrap();
        let (a, b) = (
            StreamName::from("account-acc_a"),
            StreamName::from("account-acc_b"),
        );
        snapshots.save(&a, sample()).await.unwrap();
        // As if b's name hashed to a's file.
        let target = snapshots.path_of(&b);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(snapshots.path_of(&a), target).unwrap();
        let reopened = DirSnapshots::open(dir.path()).unwrap();
        assert_eq!(reopened.load(&b).await.unwrap(), None);
        assert_eq!(reopened.load(&a).await.unwrap(), Some(sample()));
    }

    #[tokio::test]
    async fn leftover_temporary_files_are_deleted_and_deleting_files_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = DirSnapshots::open(dir.path()).unwrap();
        let stream = StreamName::from("account-acc_a");
        snapshots.save(&stream, sample()).await.unwrap();
        let path = snapshots.path_of(&stream);
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, b"half").unwrap();
        drop(snapshots);
        let reopened = DirSnapshots::open(dir.path()).unwrap();
        assert!(!temporary.exists());
        // Someone deletes the file behind our back: just no snapshot.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(reopened.load(&stream).await.unwrap(), None);
        assert!(reopened.is_empty());
    }

    #[test]
    fn file_keys_round_trip_through_their_names() {
        let key = key(&StreamName::from("account-acc_0123"));
        assert_eq!(parse_key(&hex(&key)), Some(key));
        assert_eq!(parse_key("xyz"), None);
        assert_eq!(parse_key(&"g".repeat(32)), None);
    }
}
