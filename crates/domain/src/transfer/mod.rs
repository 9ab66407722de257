//! The transfer family: money moved between two accounts of a project,
//! across currencies at the configured exchange rate, and two-phase
//! (pending) transfers that hold an amount until they are posted, voided or
//! expire (`two_phase.rs`).

mod command;
mod decide;
mod events;
mod state;
mod two_phase;

pub use command::{PendingTerms, TransferCommand};
pub use events::{
    Exchange, PendingTransferCreated, PendingTransferExpired, PendingTransferPosted, PendingTransferVoided,
    TransferCreated, TransferCreatedV1, TransferEvent,
};
pub(crate) use state::evolve;
pub use state::{Transfer, TransferStatus};
