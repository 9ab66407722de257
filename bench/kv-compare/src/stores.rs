//! The three candidates behind one interface. Each keeps four tables:
//!
//! - `items`: (b'T', project id, seq u64 BE) → transaction row (postcard)
//! - `ids`: transaction id (16 bytes) → seq
//! - `account_items`: (b'A', account id, account seq u64 BE) → global seq
//! - `accounts`: account id → account row (postcard), rewritten per event

use crate::workload::{self, ITEM_KEY_LEN, account_id, account_item_key, item_key};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Redb,
    Fjall,
    Lmdb,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Redb => "redb",
            Kind::Fjall => "fjall",
            Kind::Lmdb => "lmdb",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sync {
    /// No fsync per batch; a durable commit every N batches or T ms.
    Periodic,
    /// Every batch's commit is durable (fsync) before the next starts.
    EveryBatch,
}

pub trait Store {
    /// Writes the initial account rows, durably.
    fn write_accounts(&mut self, rows: &[([u8; 16], Vec<u8>)]) -> Result<()>;
    /// One write transaction: the events `first..first + count`, each
    /// inserting its item, ID and account-list rows and rewriting its
    /// account row. `durable`: the commit is on disk when this returns.
    fn write_batch(&mut self, first: u64, count: u64, accounts: u32, durable: bool) -> Result<()>;
    /// Point read by transaction ID: ID index → seq, then the item.
    fn get_by_id(&self, id: &[u8; 16], out: &mut Vec<u8>) -> Result<()>;
    /// Up to `n` items of the project list before `before`, newest first.
    fn page_project(&self, before: u64, n: usize, out: &mut Vec<u8>) -> Result<usize>;
    /// Up to `n` items of one account's list before `before`, newest first
    /// (a reverse scan of the account list, then a read of each item).
    fn page_account(&self, account: &[u8; 16], before: u64, n: usize, out: &mut Vec<u8>) -> Result<usize>;
    /// The number of transactions on an account, from its row.
    fn account_transactions(&self, account: &[u8; 16]) -> Result<u64>;
    /// Background work still under way (flushes, compactions), if any.
    fn background(&self) -> Option<String> {
        None
    }
    fn close(self: Box<Self>) -> Result<()>;
}

pub struct Options {
    pub cache_bytes: u64,
    pub sync: Sync,
    pub lmdb_map_bytes: u64,
    /// fjall: flush the memtables at close, so the next open has no
    /// journal to replay (uses fjall's `#[doc(hidden)]`
    /// `Keyspace::rotate_memtable_and_wait`).
    pub fjall_flush_on_close: bool,
}

pub fn open(kind: Kind, dir: &Path, opts: &Options) -> Result<Box<dyn Store>> {
    std::fs::create_dir_all(dir)?;
    Ok(match kind {
        Kind::Redb => Box::new(Redb::open(dir, opts)?),
        Kind::Fjall => Box::new(Fjall::open(dir, opts)?),
        Kind::Lmdb => Box::new(Lmdb::open(dir, opts)?),
    })
}

fn seq_from(bytes: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(
        bytes.try_into().context("a sequence number is not 8 bytes")?,
    ))
}

// ---------------------------------------------------------------- redb

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

const R_ITEMS: TableDefinition<&[u8; ITEM_KEY_LEN], &[u8]> = TableDefinition::new("items");
const R_IDS: TableDefinition<&[u8; 16], u64> = TableDefinition::new("ids");
const R_ACCOUNT_ITEMS: TableDefinition<&[u8; ITEM_KEY_LEN], u64> = TableDefinition::new("account_items");
const R_ACCOUNTS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("accounts");

struct Redb {
    db: redb::Database,
    sync: Sync,
}

impl Redb {
    fn open(dir: &Path, opts: &Options) -> Result<Self> {
        let db = redb::Database::builder()
            .set_cache_size(opts.cache_bytes as usize)
            .create(dir.join("paycore.redb"))?;
        Ok(Self { db, sync: opts.sync })
    }

    fn durability(&self, durable: bool) -> redb::Durability {
        if durable || self.sync == Sync::EveryBatch {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        }
    }
}

impl Store for Redb {
    fn write_accounts(&mut self, rows: &[([u8; 16], Vec<u8>)]) -> Result<()> {
        let wtx = self.db.begin_write()?;
        {
            let mut accounts = wtx.open_table(R_ACCOUNTS)?;
            for (id, row) in rows {
                accounts.insert(id, row.as_slice())?;
            }
            // Create the other tables so readers can open them.
            wtx.open_table(R_ITEMS)?;
            wtx.open_table(R_IDS)?;
            wtx.open_table(R_ACCOUNT_ITEMS)?;
        }
        wtx.commit()?;
        Ok(())
    }

    fn write_batch(&mut self, first: u64, count: u64, accounts: u32, durable: bool) -> Result<()> {
        let mut wtx = self.db.begin_write()?;
        wtx.set_durability(self.durability(durable))?;
        {
            let mut items = wtx.open_table(R_ITEMS)?;
            let mut ids = wtx.open_table(R_IDS)?;
            let mut account_items = wtx.open_table(R_ACCOUNT_ITEMS)?;
            let mut account_rows = wtx.open_table(R_ACCOUNTS)?;
            for seq in first..first + count {
                let account = account_id(workload::account_of(seq, accounts));
                let old = account_rows
                    .get(&account)?
                    .context("missing account row")?
                    .value()
                    .to_vec();
                let rows = workload::event_rows(seq, &old)?;
                account_rows.insert(&account, rows.account_value.as_slice())?;
                items.insert(&rows.item_key, rows.item_value.as_slice())?;
                ids.insert(&rows.id, seq)?;
                account_items.insert(&rows.account_item_key, seq)?;
            }
        }
        wtx.commit()?;
        Ok(())
    }

    fn get_by_id(&self, id: &[u8; 16], out: &mut Vec<u8>) -> Result<()> {
        let rtx = self.db.begin_read()?;
        let ids = rtx.open_table(R_IDS)?;
        let seq = ids.get(id)?.context("ID not found")?.value();
        let items = rtx.open_table(R_ITEMS)?;
        let value = items.get(&item_key(seq))?.context("item not found")?;
        workload::check_item(id, value.value())?;
        out.clear();
        out.extend_from_slice(value.value());
        Ok(())
    }

    fn page_project(&self, before: u64, n: usize, out: &mut Vec<u8>) -> Result<usize> {
        let rtx = self.db.begin_read()?;
        let items = rtx.open_table(R_ITEMS)?;
        let (lo, hi) = (item_key(0), item_key(before));
        out.clear();
        let mut found = 0;
        for row in items.range(&lo..&hi)?.rev().take(n) {
            let (_, value) = row?;
            out.extend_from_slice(value.value());
            found += 1;
        }
        Ok(found)
    }

    fn page_account(&self, account: &[u8; 16], before: u64, n: usize, out: &mut Vec<u8>) -> Result<usize> {
        let rtx = self.db.begin_read()?;
        let account_items = rtx.open_table(R_ACCOUNT_ITEMS)?;
        let items = rtx.open_table(R_ITEMS)?;
        let (lo, hi) = (account_item_key(account, 0), account_item_key(account, before));
        out.clear();
        let mut found = 0;
        for row in account_items.range(&lo..&hi)?.rev().take(n) {
            let (_, seq) = row?;
            let value = items.get(&item_key(seq.value()))?.context("item not found")?;
            out.extend_from_slice(value.value());
            found += 1;
        }
        Ok(found)
    }

    fn account_transactions(&self, account: &[u8; 16]) -> Result<u64> {
        let rtx = self.db.begin_read()?;
        let accounts = rtx.open_table(R_ACCOUNTS)?;
        let row = accounts.get(account)?.context("missing account row")?;
        workload::account_transactions(row.value())
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self.db);
        Ok(())
    }
}

// ---------------------------------------------------------------- fjall

use fjall::{Database as FjallDb, Keyspace, KeyspaceCreateOptions, PersistMode};

struct Fjall {
    db: FjallDb,
    items: Keyspace,
    ids: Keyspace,
    account_items: Keyspace,
    accounts: Keyspace,
    sync: Sync,
    flush_on_close: bool,
}

impl Fjall {
    fn open(dir: &Path, opts: &Options) -> Result<Self> {
        let db = FjallDb::builder(dir).cache_size(opts.cache_bytes).open()?;
        let ks = |name| db.keyspace(name, KeyspaceCreateOptions::default);
        Ok(Self {
            items: ks("items")?,
            ids: ks("ids")?,
            account_items: ks("account_items")?,
            accounts: ks("accounts")?,
            sync: opts.sync,
            flush_on_close: opts.fjall_flush_on_close,
            db,
        })
    }

    fn batch(&self) -> fjall::OwnedWriteBatch {
        let batch = self.db.batch();
        match self.sync {
            // The default: written to the OS (page cache), no fsync.
            Sync::Periodic => batch,
            Sync::EveryBatch => batch.durability(Some(PersistMode::SyncData)),
        }
    }
}

impl Store for Fjall {
    fn write_accounts(&mut self, rows: &[([u8; 16], Vec<u8>)]) -> Result<()> {
        let mut batch = self.db.batch();
        for (id, row) in rows {
            batch.insert(&self.accounts, &id[..], row.as_slice());
        }
        batch.commit()?;
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    fn write_batch(&mut self, first: u64, count: u64, accounts: u32, durable: bool) -> Result<()> {
        // A write batch cannot read its own writes: the account rows this
        // batch changed are kept here and written once at the end.
        let mut changed: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut batch = self.batch();
        for seq in first..first + count {
            let a = workload::account_of(seq, accounts);
            let rows = match changed.get(&a) {
                Some(row) => workload::event_rows(seq, row)?,
                None => {
                    let row = self.accounts.get(account_id(a))?.context("missing account row")?;
                    workload::event_rows(seq, &row)?
                }
            };
            batch.insert(&self.items, &rows.item_key[..], rows.item_value);
            batch.insert(&self.ids, &rows.id[..], &seq.to_be_bytes()[..]);
            batch.insert(
                &self.account_items,
                &rows.account_item_key[..],
                &seq.to_be_bytes()[..],
            );
            changed.insert(a, rows.account_value);
        }
        for (a, row) in changed {
            batch.insert(&self.accounts, &account_id(a)[..], row);
        }
        batch.commit()?;
        if durable && self.sync == Sync::Periodic {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    fn get_by_id(&self, id: &[u8; 16], out: &mut Vec<u8>) -> Result<()> {
        let seq = seq_from(&self.ids.get(id)?.context("ID not found")?)?;
        let value = self.items.get(item_key(seq))?.context("item not found")?;
        workload::check_item(id, &value)?;
        out.clear();
        out.extend_from_slice(&value);
        Ok(())
    }

    fn page_project(&self, before: u64, n: usize, out: &mut Vec<u8>) -> Result<usize> {
        out.clear();
        let mut found = 0;
        for guard in self.items.range(item_key(0)..item_key(before)).rev().take(n) {
            out.extend_from_slice(&guard.value()?);
            found += 1;
        }
        Ok(found)
    }

    fn page_account(&self, account: &[u8; 16], before: u64, n: usize, out: &mut Vec<u8>) -> Result<usize> {
        out.clear();
        let mut found = 0;
        let range = account_item_key(account, 0)..account_item_key(account, before);
        for guard in self.account_items.range(range).rev().take(n) {
            let seq = seq_from(&guard.value()?)?;
            let value = self.items.get(item_key(seq))?.context("item not found")?;
            out.extend_from_slice(&value);
            found += 1;
        }
        Ok(found)
    }

    fn account_transactions(&self, account: &[u8; 16]) -> Result<u64> {
        let row = self.accounts.get(account)?.context("missing account row")?;
        workload::account_transactions(&row)
    }

    fn background(&self) -> Option<String> {
        let flushes = self.db.outstanding_flushes();
        let compactions = self.db.active_compactions();
        let l0: usize = [&self.items, &self.ids, &self.account_items, &self.accounts]
            .iter()
            .map(|k| k.l0_table_count())
            .sum();
        let tables: usize = [&self.items, &self.ids, &self.account_items, &self.accounts]
            .iter()
            .map(|k| k.table_count())
            .sum();
        (flushes > 0 || compactions > 0).then(|| {
            format!(
                "{flushes} flushes, {compactions} compactions under way; \
                 {tables} tables ({l0} in L0), {} journals",
                self.db.journal_count()
            )
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        let Self {
            db,
            items,
            ids,
            account_items,
            accounts,
            flush_on_close,
            ..
        } = *self;
        if flush_on_close {
            for keyspace in [&items, &ids, &account_items, &accounts] {
                keyspace.rotate_memtable_and_wait()?;
            }
        }
        drop((items, ids, account_items, accounts));
        db.persist(PersistMode::SyncAll)?;
        drop(db);
        Ok(())
    }
}

// ---------------------------------------------------------------- LMDB

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions};

type HeedDb = heed::Database<'static, Bytes, Bytes>;

struct Lmdb {
    env: heed::Env,
    items: HeedDb,
    ids: HeedDb,
    account_items: HeedDb,
    accounts: HeedDb,
    sync: Sync,
}

fn lmdb_range<'a>(lo: &'a [u8], hi: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (Bound::Included(lo), Bound::Excluded(hi))
}

impl Lmdb {
    fn open(dir: &Path, opts: &Options) -> Result<Self> {
        let mut env_opts = EnvOpenOptions::new();
        env_opts.map_size(opts.lmdb_map_bytes as usize).max_dbs(8);
        if opts.sync == Sync::Periodic {
            // SAFETY: MDB_NOSYNC only drops the fsync at commit; a durable
            // point is made with `force_sync`. (An OS crash between those
            // can corrupt the file: see the report's caveats.)
            unsafe {
                env_opts.flags(EnvFlags::NO_SYNC);
            }
        }
        // SAFETY: this process opens the environment once and nothing else
        // maps or truncates the file while it is open.
        let env = unsafe { env_opts.open(dir)? };
        let wtxn = env.write_txn()?;
        let [items, ids, account_items, accounts] = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                let mut create = |name| opener.create_database::<Bytes, Bytes>(wtxn, Some(name));
                Ok(CommitOrAbort::<_, ()>::Commit([
                    create("items")?,
                    create("ids")?,
                    create("account_items")?,
                    create("accounts")?,
                ]))
            })?
            .unwrap_commit();
        Ok(Self {
            env,
            items,
            ids,
            account_items,
            accounts,
            sync: opts.sync,
        })
    }
}

impl Store for Lmdb {
    fn write_accounts(&mut self, rows: &[([u8; 16], Vec<u8>)]) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for (id, row) in rows {
            self.accounts.put(&mut wtxn, &id[..], row)?;
        }
        wtxn.commit()?;
        self.env.force_sync()?;
        Ok(())
    }

    fn write_batch(&mut self, first: u64, count: u64, accounts: u32, durable: bool) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for seq in first..first + count {
            let account = account_id(workload::account_of(seq, accounts));
            let old = self
                .accounts
                .get(&wtxn, &account[..])?
                .context("missing account row")?
                .to_vec();
            let rows = workload::event_rows(seq, &old)?;
            self.accounts.put(&mut wtxn, &account[..], &rows.account_value)?;
            self.items.put(&mut wtxn, &rows.item_key[..], &rows.item_value)?;
            self.ids.put(&mut wtxn, &rows.id[..], &seq.to_be_bytes())?;
            self.account_items
                .put(&mut wtxn, &rows.account_item_key[..], &seq.to_be_bytes())?;
        }
        wtxn.commit()?;
        if durable && self.sync == Sync::Periodic {
            self.env.force_sync()?;
        }
        Ok(())
    }

    fn get_by_id(&self, id: &[u8; 16], out: &mut Vec<u8>) -> Result<()> {
        let rtxn = self.env.read_txn()?;
        let seq = seq_from(self.ids.get(&rtxn, &id[..])?.context("ID not found")?)?;
        let value = self
            .items
            .get(&rtxn, &item_key(seq)[..])?
            .context("item not found")?;
        workload::check_item(id, value)?;
        out.clear();
        out.extend_from_slice(value);
        Ok(())
    }

    fn page_project(&self, before: u64, n: usize, out: &mut Vec<u8>) -> Result<usize> {
        let rtxn = self.env.read_txn()?;
        let (lo, hi) = (item_key(0), item_key(before));
        out.clear();
        let mut found = 0;
        for row in self.items.rev_range(&rtxn, &lmdb_range(&lo, &hi))?.take(n) {
            let (_, value) = row?;
            out.extend_from_slice(value);
            found += 1;
        }
        Ok(found)
    }

    fn page_account(&self, account: &[u8; 16], before: u64, n: usize, out: &mut Vec<u8>) -> Result<usize> {
        let rtxn = self.env.read_txn()?;
        let (lo, hi) = (account_item_key(account, 0), account_item_key(account, before));
        out.clear();
        let mut found = 0;
        for row in self
            .account_items
            .rev_range(&rtxn, &lmdb_range(&lo, &hi))?
            .take(n)
        {
            let (_, seq) = row?;
            let value = self
                .items
                .get(&rtxn, &item_key(seq_from(seq)?)[..])?
                .context("item not found")?;
            out.extend_from_slice(value);
            found += 1;
        }
        Ok(found)
    }

    fn account_transactions(&self, account: &[u8; 16]) -> Result<u64> {
        let rtxn = self.env.read_txn()?;
        let row = self
            .accounts
            .get(&rtxn, &account[..])?
            .context("missing account row")?;
        workload::account_transactions(row)
    }

    fn close(self: Box<Self>) -> Result<()> {
        if self.sync == Sync::Periodic {
            self.env.force_sync()?;
        }
        self.env.prepare_for_closing().wait();
        Ok(())
    }
}
