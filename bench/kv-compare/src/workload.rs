//! The paycore-shaped workload: IDs, keys and postcard rows.
//!
//! Everything is a pure function of the global sequence number, so the
//! writer and the readers agree on IDs without keeping 5 million of them in
//! memory (which would show up in the RSS figures).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The one project every transaction belongs to.
pub const PROJECT: [u8; 16] = [
    0x01, 0x9a, 0x2b, 0x3c, 0x00, 0x00, 0x70, 0x00, 0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
];

/// 2026-09-21 in ms since the epoch: the first transaction's timestamp.
const BASE_MS: u64 = 1_790_000_000_000;
/// Transactions created per millisecond (UUID v7 `rand_a` counter range).
const PER_MS: u64 = 64;

pub const ITEM_KEY_LEN: usize = 25;

pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small fast PRNG for picking read targets.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        splitmix64(self.0)
    }

    /// Uniform in `lo..=hi` (the modulo bias is irrelevant here).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// RFC 9562 UUID v7: 48-bit ms timestamp, version, 12-bit counter, variant,
/// 62 random bits. IDs created later sort later, as paycore's do.
fn uuid_v7(ms: u64, counter: u16, random: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x70 | ((counter >> 8) as u8 & 0x0f);
    b[7] = counter as u8;
    let r = random.to_be_bytes();
    b[8] = 0x80 | (r[0] & 0x3f);
    b[9..].copy_from_slice(&r[1..]);
    b
}

/// The ID of the transaction with global sequence number `seq` (from 1).
pub fn tx_id(seq: u64) -> [u8; 16] {
    let i = seq - 1;
    uuid_v7(
        BASE_MS + i / PER_MS,
        (i % PER_MS) as u16,
        splitmix64(i ^ 0x7458_0000_0000_0000),
    )
}

/// The ID of account number `a` (created before every transaction).
pub fn account_id(a: u32) -> [u8; 16] {
    uuid_v7(
        BASE_MS - 86_400_000 + u64::from(a) * 10,
        0,
        splitmix64(u64::from(a) ^ 0x4143_0000_0000_0000),
    )
}

/// Which account transaction `seq` moves money on (uniform over accounts).
pub fn account_of(seq: u64, accounts: u32) -> u32 {
    (splitmix64(seq ^ 0x6163_6300_0000_0000) % u64::from(accounts)) as u32
}

fn list_key(kind: u8, owner: &[u8; 16], seq: u64) -> [u8; ITEM_KEY_LEN] {
    let mut k = [0u8; ITEM_KEY_LEN];
    k[0] = kind;
    k[1..17].copy_from_slice(owner);
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The project's transaction list: (b'T', project id, seq BE) → transaction.
pub fn item_key(seq: u64) -> [u8; ITEM_KEY_LEN] {
    list_key(b'T', &PROJECT, seq)
}

/// An account's transaction list: (b'A', account id, account seq BE) → global seq.
pub fn account_item_key(account: &[u8; 16], account_seq: u64) -> [u8; ITEM_KEY_LEN] {
    list_key(b'A', account, account_seq)
}

#[derive(Serialize, Deserialize)]
struct Money {
    amount: i64,
    currency: [u8; 3],
}

#[derive(Serialize, Deserialize)]
enum TransactionKind {
    Transfer { transfer_id: [u8; 16] },
    CardPayin { payin_id: [u8; 16] },
}

/// Shaped like `paycore_domain::events::Transaction`.
#[derive(Serialize, Deserialize)]
struct TransactionRow {
    id: [u8; 16],
    account_id: [u8; 16],
    project_id: [u8; 16],
    kind: TransactionKind,
    value: Money,
    balance_after: Money,
    created_at: (i64, u32),
}

/// Shaped like `paycore_domain::aggregate::Account`, plus the length of its
/// transaction list (the next per-account sequence number comes from here).
#[derive(Serialize, Deserialize)]
struct AccountRow {
    id: [u8; 16],
    project_id: [u8; 16],
    customer_id: Option<[u8; 16]>,
    balance: Money,
    allow_negative_balance: bool,
    meta: Vec<(String, String)>,
    created_at: (i64, u32),
    last_transaction: Option<[u8; 16]>,
    transactions: u64,
}

const EUR: [u8; 3] = *b"EUR";

fn timestamp(ms: u64) -> (i64, u32) {
    ((ms / 1000) as i64, (ms % 1000) as u32 * 1_000_000 + 123_456)
}

/// The initial row of account `a` (balance zero, no transactions).
pub fn account_row(a: u32) -> Result<Vec<u8>> {
    let r = splitmix64(u64::from(a) ^ 0x6d65_7461_0000_0000);
    let row = AccountRow {
        id: account_id(a),
        project_id: PROJECT,
        customer_id: Some(uuid_v7(BASE_MS - 90_000_000, 0, r)),
        balance: Money {
            amount: 0,
            currency: EUR,
        },
        allow_negative_balance: true,
        meta: vec![
            ("_name".into(), format!("Operating account {a:05}")),
            ("cost_center".into(), format!("CC-{:04}-ops", r % 10_000)),
            ("owner".into(), "treasury@example.com".into()),
            ("external_ref".into(), format!("ERP-{r:016x}")),
        ],
        created_at: timestamp(BASE_MS - 86_400_000 + u64::from(a) * 10),
        last_transaction: None,
        transactions: 0,
    };
    Ok(postcard::to_stdvec(&row)?)
}

/// Everything one transaction event writes.
#[derive(Debug)]
pub struct EventRows {
    pub id: [u8; 16],
    pub item_key: [u8; ITEM_KEY_LEN],
    pub item_value: Vec<u8>,
    pub account_item_key: [u8; ITEM_KEY_LEN],
    pub account_value: Vec<u8>,
}

/// Applies transaction `seq` to its account's current row `account` (read
/// by the caller): returns the new account row and the rows to insert.
pub fn event_rows(seq: u64, account: &[u8]) -> Result<EventRows> {
    let mut acc: AccountRow = postcard::from_bytes(account).context("decoding an account row")?;
    let r = splitmix64(seq ^ 0x7661_6c00_0000_0000);
    let magnitude = (r % 250_000) as i64 + 1;
    let amount = if r >> 63 == 0 { magnitude } else { -magnitude };
    let id = tx_id(seq);
    acc.balance.amount += amount;
    acc.transactions += 1;
    acc.last_transaction = Some(id);
    let kind_id = uuid_v7(BASE_MS + (seq - 1) / PER_MS, 0, r);
    let row = TransactionRow {
        id,
        account_id: acc.id,
        project_id: PROJECT,
        kind: if r & 7 == 0 {
            TransactionKind::CardPayin { payin_id: kind_id }
        } else {
            TransactionKind::Transfer { transfer_id: kind_id }
        },
        value: Money {
            amount,
            currency: EUR,
        },
        balance_after: Money {
            amount: acc.balance.amount,
            currency: EUR,
        },
        created_at: timestamp(BASE_MS + (seq - 1) / PER_MS),
    };
    Ok(EventRows {
        id,
        item_key: item_key(seq),
        item_value: postcard::to_stdvec(&row)?,
        account_item_key: account_item_key(&acc.id, acc.transactions),
        account_value: postcard::to_stdvec(&acc)?,
    })
}

/// The number of transactions on an account row.
pub fn account_transactions(account: &[u8]) -> Result<u64> {
    let acc: AccountRow = postcard::from_bytes(account).context("decoding an account row")?;
    Ok(acc.transactions)
}

/// Checks that a transaction row read back is the one with this ID (the
/// postcard encoding of `TransactionRow` starts with the 16 raw ID bytes).
pub fn check_item(id: &[u8; 16], value: &[u8]) -> Result<()> {
    anyhow::ensure!(
        value.len() > 16 && value[..16] == id[..],
        "the row found for a transaction ID is another transaction's"
    );
    Ok(())
}
