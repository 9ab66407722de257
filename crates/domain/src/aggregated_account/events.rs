//! The aggregated account family's events and the values they carry.
//!
//! **Personal data** (what a bank says about a person: names, IBANs and
//! account numbers, owners, counterparties, descriptions, the bank's own
//! account reference) sits only in the `personal` fields
//! ([`AccountPersonal`], [`TransactionPersonal`]), never in IDs or stream
//! names, so a later crypto-shredding can encrypt exactly those fields under
//! a per-connection key and erase them by forgetting the key. What stays
//! readable after that is what the invariants need: IDs, the account's type
//! and currency, the transactions' bank IDs, dates, amounts and statuses.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kernel::date::Date;
use crate::kernel::iban::Iban;
use crate::kernel::id::{
    AggregatedAccountId, AggregatedTransactionId, AggregationConnectionId, AggregationImportId, CustomerId,
    ProjectId,
};
use crate::kernel::money::{Currency, Money};
use crate::kernel::time::Timestamp;

/// The longest bank ID (of a transaction or an account) accepted.
pub const MAX_BANK_ID_CHARS: usize = 128;

/// An ID the bank gives (a transaction's, an account's): 1 to 128
/// characters, no control characters. Opaque to paycore.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct BankId(String);

impl TryFrom<String> for BankId {
    type Error = InvalidBankId;

    /// Decoding checks like parsing: a stored ID is a valid one.
    fn try_from(text: String) -> Result<Self, InvalidBankId> {
        Self::parse(&text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {MAX_BANK_ID_CHARS} characters, without control characters")]
pub struct InvalidBankId;

impl BankId {
    pub fn parse(text: &str) -> Result<Self, InvalidBankId> {
        let chars = text.chars().count();
        if (1..=MAX_BANK_ID_CHARS).contains(&chars) && !text.chars().any(char::is_control) {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidBankId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BankId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BankId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// How the bank identifies an account: an IBAN, or another scheme (a
/// domestic account number, a masked card number). Personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountIdentifier {
    Iban(Iban),
    Other { scheme: String, value: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggregatedAccountType {
    Current,
    Savings,
    CreditCard,
    Loan,
    Investment,
    Other,
}

/// The kinds of balance banks report (Berlin Group's `balanceType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BalanceType {
    ClosingBooked,
    Expected,
    InterimAvailable,
    InterimBooked,
    OpeningBooked,
    ForwardAvailable,
    /// A credit card's or overdraft's limit.
    CreditLimit,
}

/// One balance as the bank reported it, on a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub balance_type: BalanceType,
    pub amount: Money,
    pub date: Date,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OwnerRole {
    Owner,
    CoOwner,
    /// An authorised user or representative, not an owner.
    Representative,
}

/// An owner or co-owner as the bank names them. Personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountOwner {
    pub name: String,
    pub role: OwnerRole,
}

/// Everything personal about an aggregated account (crypto-shredding
/// erases exactly this). Before the end user consents, only `name` is kept
/// (the bank reference too: syncs match accounts by it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPersonal {
    /// The bank's own reference of the account (its resource ID): syncs
    /// match the accounts they find by it. Personal because some banks use
    /// the account number.
    pub bank_account_id: BankId,
    pub name: String,
    pub identifier: Option<AccountIdentifier>,
    pub owners: Vec<AccountOwner>,
}

impl AccountPersonal {
    /// What is kept of an account before the end user consents.
    pub fn before_consent(&self) -> Self {
        Self {
            bank_account_id: self.bank_account_id.clone(),
            name: self.name.clone(),
            identifier: None,
            owners: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransactionStatus {
    Pending,
    Booked,
}

/// The other side of a transaction. Personal data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterparty {
    pub name: Option<String>,
    pub identifier: Option<AccountIdentifier>,
}

/// Everything personal about a transaction (crypto-shredding erases
/// exactly this).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionPersonal {
    pub counterparty: Option<Counterparty>,
    /// The bank's text (remittance information).
    pub description: String,
}

/// A transaction as recorded, once: its stable ID is derived from the
/// account and the bank's ID ([`super::transaction_id`]), so every sync
/// names it the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedTransaction {
    pub id: AggregatedTransactionId,
    pub bank_transaction_id: BankId,
    pub status: TransactionStatus,
    pub booking_date: Date,
    pub value_date: Option<Date>,
    /// Signed, in the account's currency: negative goes out.
    pub amount: Money,
    /// The pending transaction this booked one replaces (its own ID when
    /// the bank kept the ID from pending to booked): readers drop that one.
    pub replaces: Option<AggregatedTransactionId>,
    pub personal: TransactionPersonal,
}

/// A sync found an account for the first time: disabled until the end user
/// consents, so only its name is kept (`personal.before_consent()`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedAccountDiscovered {
    pub id: AggregatedAccountId,
    pub project_id: ProjectId,
    pub connection_id: AggregationConnectionId,
    pub customer_id: CustomerId,
    pub account_type: AggregatedAccountType,
    pub currency: Currency,
    pub personal: AccountPersonal,
    pub discovered_at: Timestamp,
}

/// What a sync found changed (a disabled account: its name only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedAccountUpdated {
    pub account_type: AggregatedAccountType,
    pub personal: AccountPersonal,
    pub balances: Vec<Balance>,
    pub updated_at: Timestamp,
}

/// The end user consented to share the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedAccountEnabled {
    pub enabled_at: Timestamp,
}

/// A sync no longer found the account: not listed by default, still
/// readable by ID, no new transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedAccountArchived {
    pub archived_at: Timestamp,
}

/// A sync found an archived account again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedAccountUnarchived {
    pub unarchived_at: Timestamp,
}

/// A batch of new transactions of one account (one sync page): each
/// recorded once, however often the bank shows it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedTransactionsRecorded {
    pub import_id: Option<AggregationImportId>,
    pub transactions: Vec<AggregatedTransaction>,
    pub recorded_at: Timestamp,
}

/// Transactions the bank no longer lists (a pending one dropped, a booked
/// one reversed): marked removed, never recorded again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatedTransactionsRemoved {
    pub import_id: Option<AggregationImportId>,
    pub transaction_ids: Vec<AggregatedTransactionId>,
    pub removed_at: Timestamp,
}

/// The aggregated account family's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggregatedAccountEvent {
    AggregatedAccountDiscovered(AggregatedAccountDiscovered),
    AggregatedAccountUpdated(AggregatedAccountUpdated),
    AggregatedAccountEnabled(AggregatedAccountEnabled),
    AggregatedAccountArchived(AggregatedAccountArchived),
    AggregatedAccountUnarchived(AggregatedAccountUnarchived),
    AggregatedTransactionsRecorded(AggregatedTransactionsRecorded),
    AggregatedTransactionsRemoved(AggregatedTransactionsRemoved),
}
