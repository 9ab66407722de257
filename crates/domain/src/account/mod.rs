//! The account family: accounts, their transactions, and the ledger every
//! family that moves money goes through ([`Context::movement`]: one balance
//! change, and the project's total in the currency when money enters or
//! leaves the project).
//!
//! [`Context::movement`]: crate::context::Context::movement

mod command;
mod decide;
mod events;
mod ledger;
mod state;

pub use command::AccountCommand;
pub use events::{
    AccountEvent, AccountOpened, NegativeBalanceAllowanceChanged, PendingPhase, PendingTransaction,
    PendingTransactionRecorded, ProjectBalanceChanged, Transaction, TransactionKind, TransactionRecorded,
};
pub(crate) use state::evolve;
pub use state::{Account, AccountAggregate, ProjectBalance};
