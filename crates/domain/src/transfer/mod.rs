//! The transfer family: money moved between two accounts of a project,
//! across currencies at the configured exchange rate.

mod command;
mod decide;
mod events;
mod state;

pub use command::TransferCommand;
pub use events::{Exchange, TransferCreated, TransferCreatedV1, TransferEvent};
pub use state::Transfer;
pub(crate) use state::evolve;
