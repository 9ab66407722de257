//! The read models' store on disk: one redb database (`models.redb`) holding
//! every projection's rows and its checkpoint.
//!
//! Each projection owns four tables, named after it: `items` (list key +
//! sequence number → row), `ids` (resource key → where its row lives),
//! `lens` (list key → length) and `values` (rows that are not in a list).
//! Its checkpoint (version, next position, chain hash of the last event
//! applied) is a row of the shared `checkpoints` table, written in the same
//! transaction as the rows: a crash leaves both at the same commit, so a
//! restart continues from the checkpoint and never applies an event twice
//! or skips one.
//!
//! A rebuild writes the same tables under the `rebuild/` prefix and swaps
//! them in (a rename, in one transaction) once they have caught up, so a
//! query sees the old model or the new one, never half of one.
//!
//! Commits are not synced one by one: the models are derived from the log,
//! and a crash only takes them back to the last synced commit (at most
//! [`ModelStorage::durable_every`] old), from where the follower replays the
//! log. Synced commits also save redb's allocator state ("quick repair"),
//! so opening after a crash does not walk the whole file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use paycore_store::{ChainHash, Position};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

/// The file inside the projections directory.
pub const MODELS_FILE: &str = "models.redb";

/// Default size of redb's page cache: the read models' share of memory.
pub const DEFAULT_CACHE_BYTES: usize = 128 << 20;

const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");

/// Where the read models live and how much memory they may use.
#[derive(Clone, Debug)]
pub struct ModelStorage {
    /// The directory of `models.redb`; `None` keeps them in memory (tests).
    pub dir: Option<PathBuf>,
    /// redb's cache of pages, in bytes.
    pub cache_bytes: usize,
    /// Longest time between synced commits.
    pub durable_every: Duration,
}

impl ModelStorage {
    pub fn in_memory() -> Self {
        Self {
            dir: None,
            cache_bytes: 16 << 20,
            // Nothing to sync in memory; a synced commit lets redb reuse
            // the pages earlier commits freed.
            durable_every: Duration::ZERO,
        }
    }

    /// `dir/models.redb`, synced at least once a second.
    pub fn at(dir: PathBuf) -> Self {
        Self {
            dir: Some(dir),
            cache_bytes: DEFAULT_CACHE_BYTES,
            durable_every: Duration::from_secs(1),
        }
    }

    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The database file, if on disk.
    pub fn file(&self) -> Option<PathBuf> {
        self.dir.as_deref().map(|dir| dir.join(MODELS_FILE))
    }
}

/// The read models' store failed, or holds a row this build cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("read model store: {0}")]
    Storage(String),
    #[error("read model row {what} does not decode: {reason}")]
    Corrupt { what: String, reason: String },
}

impl ModelError {
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

macro_rules! storage_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for ModelError {
            fn from(error: $error) -> Self {
                Self::Storage(error.to_string())
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Which copy of a projection: the served one or a rebuild's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Namespace {
    Served,
    Rebuild,
}

/// The names of one projection's tables in one namespace.
#[derive(Clone, Debug)]
pub(crate) struct Tables {
    pub checkpoint: String,
    pub items: String,
    pub ids: String,
    /// Runs of IDs with consecutive rows (`id_runs.rs`).
    pub id_runs: String,
    pub lens: String,
    pub values: String,
}

impl Tables {
    pub fn of(namespace: Namespace, projection: &str) -> Self {
        let prefix = match namespace {
            Namespace::Served => "",
            Namespace::Rebuild => "rebuild/",
        };
        Self {
            checkpoint: format!("{prefix}{projection}"),
            items: format!("{prefix}{projection}.items"),
            ids: format!("{prefix}{projection}.ids"),
            id_runs: format!("{prefix}{projection}.id_runs"),
            lens: format!("{prefix}{projection}.lens"),
            values: format!("{prefix}{projection}.values"),
        }
    }

    pub fn bytes(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
        TableDefinition::new(name)
    }

    pub fn counts(name: &str) -> TableDefinition<'_, &'static [u8], u64> {
        TableDefinition::new(name)
    }

    fn byte_tables(&self) -> [&str; 4] {
        [&self.items, &self.ids, &self.id_runs, &self.values]
    }
}

/// How far a projection (in one namespace) has applied `$all`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// The projection version that wrote the rows.
    pub version: u32,
    /// Events at positions below this are applied.
    pub next_position: Position,
    /// Chain hash of the event at `next_position - 1`: proves the rows were
    /// built from the log they are about to follow.
    pub last_hash: Option<ChainHash>,
}

/// Whether opening failed because of what the file holds: damaged pages or
/// header, not a redb file at all (redb reports it as `InvalidData`), or a
/// file format this redb does not read.
fn is_damaged(error: &redb::DatabaseError) -> bool {
    match error {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            io.kind() == std::io::ErrorKind::InvalidData
        }
        redb::DatabaseError::UpgradeRequired(_) => true,
        _ => false,
    }
}

/// The open database.
pub(crate) struct ModelDb {
    db: Database,
    path: Option<PathBuf>,
    durable_every: Duration,
    last_durable: Mutex<Instant>,
}

impl std::fmt::Debug for ModelDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ModelDb {
    /// [`ModelDb::open`], except that a file redb recognises as damaged, or
    /// as no redb database of a format it reads, is renamed aside
    /// (`models.redb.damaged-<unix seconds>`, kept for inspection) and an
    /// empty store takes its place: the models are derived from the log,
    /// so the follower rebuilds them, and a damaged cache of answers never
    /// keeps the server from starting. Other failures (I/O, permissions,
    /// the file in use) are returned: those are not the file's fault.
    pub fn open_or_set_aside(storage: &ModelStorage) -> Result<Self, ModelError> {
        let error = match Self::open_redb(storage)? {
            Ok(db) => return Ok(Self::new(db, storage)),
            Err(error) if is_damaged(&error) => error,
            Err(error) => return Err(error.into()),
        };
        let Some(path) = storage.file() else {
            return Err(error.into());
        };
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let aside = path.with_file_name(format!("{MODELS_FILE}.damaged-{seconds}"));
        std::fs::rename(&path, &aside)
            .map_err(|rename| ModelError::Storage(format!("setting aside {}: {rename}", path.display())))?;
        tracing::warn!(
            %error,
            damaged = %aside.display(),
            "the read-model store is damaged: set aside, rebuilding the models from the log"
        );
        Self::open(storage)
    }

    pub fn open(storage: &ModelStorage) -> Result<Self, ModelError> {
        let db = Self::open_redb(storage)??;
        Ok(Self::new(db, storage))
    }

    fn new(db: Database, storage: &ModelStorage) -> Self {
        Self {
            db,
            path: storage.file(),
            durable_every: storage.durable_every,
            last_durable: Mutex::new(Instant::now()),
        }
    }

    /// Opens or creates the database (its directory failing is the outer
    /// error, redb's answer the inner one).
    fn open_redb(storage: &ModelStorage) -> Result<Result<Database, redb::DatabaseError>, ModelError> {
        let mut builder = Database::builder();
        builder.set_cache_size(storage.cache_bytes);
        match storage.file() {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|error| ModelError::Storage(format!("{}: {error}", dir.display())))?;
                }
                Ok(builder.create(&path))
            }
            None => Ok(builder.create_with_backend(redb::backends::InMemoryBackend::new())),
        }
    }

    pub fn read(&self) -> Result<ReadTransaction, ModelError> {
        Ok(self.db.begin_read()?)
    }

    /// Runs `write` in one write transaction and commits it: synced when
    /// `sync` says so or when the last synced commit is older than
    /// [`ModelStorage::durable_every`]. Blocks while another write runs.
    pub fn write<T>(
        &self,
        sync: bool,
        write: impl FnOnce(&WriteTransaction) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let mut txn = self.db.begin_write()?;
        let mut last_durable = self.last_durable.lock();
        let durable = sync || last_durable.elapsed() >= self.durable_every;
        if durable {
            txn.set_quick_repair(true);
        } else {
            txn.set_durability(Durability::None)?;
        }
        let value = write(&txn)?;
        txn.commit()?;
        if durable {
            *last_durable = Instant::now();
        }
        Ok(value)
    }
}

/// Creates a projection's tables (empty) if they are missing.
pub(crate) fn create_tables(txn: &WriteTransaction, tables: &Tables) -> Result<(), ModelError> {
    for name in tables.byte_tables() {
        txn.open_table(Tables::bytes(name))?;
    }
    txn.open_table(Tables::counts(&tables.lens))?;
    txn.open_table(CHECKPOINTS)?;
    Ok(())
}

/// Empties a projection's tables and forgets its checkpoint.
pub(crate) fn clear(txn: &WriteTransaction, tables: &Tables) -> Result<(), ModelError> {
    for name in tables.byte_tables() {
        txn.delete_table(Tables::bytes(name))?;
    }
    txn.delete_table(Tables::counts(&tables.lens))?;
    txn.open_table(CHECKPOINTS)?.remove(tables.checkpoint.as_str())?;
    create_tables(txn, tables)
}

/// Replaces the served tables of `projection` by its rebuild's, with the
/// rebuild's checkpoint.
pub(crate) fn swap_in_rebuild(txn: &WriteTransaction, projection: &str) -> Result<(), ModelError> {
    let served = Tables::of(Namespace::Served, projection);
    let rebuilt = Tables::of(Namespace::Rebuild, projection);
    let checkpoint = read_checkpoint_in(txn, &rebuilt)?;
    for (from, to) in rebuilt.byte_tables().into_iter().zip(served.byte_tables()) {
        txn.delete_table(Tables::bytes(to))?;
        txn.rename_table(Tables::bytes(from), Tables::bytes(to))?;
    }
    txn.delete_table(Tables::counts(&served.lens))?;
    txn.rename_table(Tables::counts(&rebuilt.lens), Tables::counts(&served.lens))?;
    let mut checkpoints = txn.open_table(CHECKPOINTS)?;
    checkpoints.remove(rebuilt.checkpoint.as_str())?;
    drop(checkpoints);
    write_checkpoint(txn, &served, &checkpoint.unwrap_or_default())
}

pub(crate) fn write_checkpoint(
    txn: &WriteTransaction,
    tables: &Tables,
    checkpoint: &Checkpoint,
) -> Result<(), ModelError> {
    let bytes = postcard::to_stdvec(checkpoint).map_err(|error| ModelError::Storage(error.to_string()))?;
    txn.open_table(CHECKPOINTS)?
        .insert(tables.checkpoint.as_str(), bytes.as_slice())?;
    Ok(())
}

fn decode_checkpoint(name: &str, bytes: &[u8]) -> Result<Checkpoint, ModelError> {
    postcard::from_bytes(bytes).map_err(|error| ModelError::corrupt(format!("checkpoint {name}"), error))
}

/// A projection's checkpoint as of the write transaction.
pub(crate) fn read_checkpoint_in(
    txn: &WriteTransaction,
    tables: &Tables,
) -> Result<Option<Checkpoint>, ModelError> {
    let checkpoints = txn.open_table(CHECKPOINTS)?;
    let found = checkpoints.get(tables.checkpoint.as_str())?;
    found
        .map(|bytes| decode_checkpoint(&tables.checkpoint, bytes.value()))
        .transpose()
}

/// A projection's checkpoint as of the read transaction (`None` when the
/// database has never held it).
pub(crate) fn read_checkpoint(
    txn: &ReadTransaction,
    tables: &Tables,
) -> Result<Option<Checkpoint>, ModelError> {
    let checkpoints = match txn.open_table(CHECKPOINTS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let found = checkpoints.get(tables.checkpoint.as_str())?;
    found
        .map(|bytes| decode_checkpoint(&tables.checkpoint, bytes.value()))
        .transpose()
}
