//! Which transactions an aggregated account has recorded: what makes "each
//! transaction recorded once, however often the bank shows it again" cheap
//! without keeping the transactions in the account's state.
//!
//! A transaction's paycore ID is derived from the account and the bank's
//! own transaction ID ([`transaction_id`]: SHA-256, as a UUID v8), so the
//! state needs no map from bank IDs to paycore IDs: it keeps a 64-bit
//! **digest** per transaction (the ID's last 8 bytes with bit 0 cleared;
//! 61 random bits, so among the 100,000 transactions of a very busy
//! account two collide with a probability of about 2·10⁻⁹), in
//! **buckets by booking month**, each sorted. Bit 0 set marks a
//! transaction no longer live (removed by the bank, or a pending one
//! replaced by its booked version): still seen, never recorded again.
//! Pending transactions are kept apart (few: they are booked within days).
//!
//! **Bounded**: banks give at most 5 years of history, and a batch drops
//! what is booked earlier than 5 years before its time
//! (`aggregation_import::oldest_history_date`), so buckets more than 5
//! years and a month older than the latest batch can never match again and
//! are dropped when a batch is folded. The state of a busy account is
//! measured in `tests/aggregated_account.rs`
//! (`five_years_of_a_busy_account_fit_in_a_bounded_state`): 50 transactions
//! a day for 5 years (91,350 transactions) take 61 buckets, about 0.73 MB
//! in memory (8 bytes a transaction) and about 0.91 MB as a snapshot
//! (postcard writes a random `u64` in 9 to 10 bytes); a typical personal
//! account (5 a day) takes a tenth of that. The engine's cache weighs it
//! through `Aggregate::approx_bytes` like any state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::events::{AggregatedTransaction, BankId, TransactionStatus};
use crate::kernel::date::Date;
use crate::kernel::id::{AggregatedAccountId, AggregatedTransactionId};

/// The stable paycore ID of the bank's transaction `bank_id` on `account`:
/// the same at every sync, different on another account.
pub fn transaction_id(account: AggregatedAccountId, bank_id: &BankId) -> AggregatedTransactionId {
    let mut hasher = Sha256::new();
    hasher.update(b"paycore/aggregated-transaction/v1\0");
    hasher.update(account.uuid().as_bytes());
    hasher.update(bank_id.as_str().as_bytes());
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    // RFC 9562 UUID version 8 (custom), variant 10.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    AggregatedTransactionId::from_uuid(uuid::Uuid::from_bytes(bytes))
}

const GONE: u64 = 1;

/// The digest of a transaction ID (bit 0 clear).
pub fn digest(id: AggregatedTransactionId) -> u64 {
    (id.uuid().as_u128() as u64) & !GONE
}

/// What the account knows of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Never recorded (or recorded more than 5 years ago and forgotten).
    New,
    /// Recorded as pending, not booked yet.
    Pending,
    /// Recorded as booked (`live`), or removed or replaced (not `live`).
    Settled { live: bool },
}

/// The digests of the transactions an account recorded (see the module).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenTransactions {
    /// Booked, removed or replaced transactions by booking month
    /// ([`Date::month_index`]), each bucket sorted.
    settled: BTreeMap<u32, Vec<u64>>,
    /// Pending transactions (digest, booking month), sorted.
    pending: Vec<(u64, u32)>,
    /// Transactions recorded over the account's life.
    recorded: u64,
}

impl SeenTransactions {
    pub fn lookup(&self, id: AggregatedTransactionId) -> Seen {
        let d = digest(id);
        if self.pending_index(d).is_ok() {
            return Seen::Pending;
        }
        match self.settled_at(d) {
            Some((month, index)) => Seen::Settled {
                live: self
                    .settled
                    .get(&month)
                    .and_then(|b| b.get(index))
                    .is_some_and(|v| v & GONE == 0),
            },
            None => Seen::New,
        }
    }

    /// Transactions recorded over the account's life (not only those still
    /// in the buckets).
    pub fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Digests kept (settled and pending).
    pub fn len(&self) -> usize {
        self.settled.values().map(Vec::len).sum::<usize>() + self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Months with settled transactions.
    pub fn months(&self) -> usize {
        self.settled.len()
    }

    /// Heap bytes, for the engine's cache budget.
    pub fn heap_bytes(&self) -> usize {
        const NODE: usize = 8 + 4 + 11 * (4 + 24);
        self.settled.len().div_ceil(6) * NODE
            + self.settled.values().map(|b| b.capacity() * 8).sum::<usize>()
            + self.pending.capacity() * 16
    }

    fn pending_index(&self, d: u64) -> Result<usize, usize> {
        self.pending.binary_search_by_key(&d, |(digest, _)| *digest)
    }

    /// Where `d` (live or gone) is among the settled digests.
    fn settled_at(&self, d: u64) -> Option<(u32, usize)> {
        self.settled.iter().find_map(|(month, bucket)| {
            let index = bucket.partition_point(|v| *v < d);
            bucket
                .get(index)
                .filter(|v| *v & !GONE == d)
                .map(|_| (*month, index))
        })
    }

    /// Folds a batch of recorded transactions, then forgets the months
    /// before `oldest_month`.
    pub(crate) fn record(&mut self, transactions: &[AggregatedTransaction], oldest_month: u32) {
        let mut touched = Vec::new();
        let mut settle = |settled: &mut BTreeMap<u32, Vec<u64>>, value: u64, month: u32| {
            settled.entry(month).or_default().push(value);
            if !touched.contains(&month) {
                touched.push(month);
            }
        };
        for transaction in transactions {
            let d = digest(transaction.id);
            let month = transaction.booking_date.month_index();
            match transaction.status {
                TransactionStatus::Booked => {
                    for replaced in transaction.replaces.iter().chain([&transaction.id]) {
                        let r = digest(*replaced);
                        if let Ok(index) = self.pending_index(r) {
                            let (_, pending_month) = self.pending.remove(index);
                            if r != d {
                                settle(&mut self.settled, r | GONE, pending_month);
                            }
                        }
                    }
                    settle(&mut self.settled, d, month);
                }
                TransactionStatus::Pending => {
                    if let Err(index) = self.pending_index(d) {
                        self.pending.insert(index, (d, month));
                    }
                }
            }
            self.recorded += 1;
        }
        for month in touched {
            if let Some(bucket) = self.settled.get_mut(&month) {
                bucket.sort_unstable();
                bucket.dedup();
            }
        }
        self.forget_before(oldest_month);
    }

    /// Marks transactions removed (pending ones become settled and gone).
    pub(crate) fn remove(&mut self, ids: &[AggregatedTransactionId], oldest_month: u32) {
        for id in ids {
            let d = digest(*id);
            if let Ok(index) = self.pending_index(d) {
                let (_, month) = self.pending.remove(index);
                let bucket = self.settled.entry(month).or_default();
                let at = bucket.partition_point(|v| *v < d);
                bucket.insert(at, d | GONE);
            } else if let Some((month, index)) = self.settled_at(d)
                && let Some(value) = self.settled.get_mut(&month).and_then(|b| b.get_mut(index))
            {
                *value |= GONE;
            }
        }
        self.forget_before(oldest_month);
    }

    fn forget_before(&mut self, oldest_month: u32) {
        if self
            .settled
            .first_key_value()
            .is_some_and(|(month, _)| *month < oldest_month)
        {
            self.settled = self.settled.split_off(&oldest_month);
        }
        self.pending.retain(|(_, month)| *month >= oldest_month);
    }
}

/// The first month a batch folded at `date` keeps: 5 years and a month
/// back (a month more than any batch accepts, for clocks a little apart).
pub(crate) fn oldest_kept_month(date: Option<Date>, history_limit_days: i64) -> u32 {
    date.and_then(|date| date.plus_days(-(history_limit_days + 31)))
        .map_or(0, Date::month_index)
}
