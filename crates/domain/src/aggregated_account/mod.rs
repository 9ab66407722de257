//! The aggregated account family: accounts at other banks found through a
//! connection, and their transactions. One stream per account,
//! `aggregatedaccount-aacc_…`, carrying its discovery, updates, consent,
//! archiving and its transactions **in batches** (one event per sync
//! page, up to 5,000 transactions), so a default import of tens of
//! thousands of transactions is a few dozen commands, not one per
//! transaction. Each transaction is recorded once: its ID is derived from
//! the account and the bank's ID, and the state keeps only compact digests
//! of what it recorded ([`SeenTransactions`], bounded to 5 years). Personal
//! data sits in the events' `personal` fields only.

mod command;
mod decide;
mod events;
mod rules;
mod seen;
mod state;

pub use command::AggregatedAccountCommand;
pub use decide::{
    FoundAccount, ImportedTransaction, MAX_ACCOUNTS_PER_CONNECTION, MAX_BALANCES, MAX_BATCH_TEXT_BYTES,
    MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_OWNERS, MAX_TRANSACTIONS_PER_BATCH,
};
pub use events::*;
pub use rules::{TransactionRule, check_recorded};
pub use seen::{Seen, SeenTransactions, digest, transaction_id};
pub use state::AggregatedAccount;
pub(crate) use state::evolve;
