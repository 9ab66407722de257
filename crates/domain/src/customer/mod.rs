//! The customer family: customers and their identity.

mod command;
mod decide;
mod events;
pub mod identity;
mod state;

pub use command::CustomerCommand;
pub use events::{CustomerCreated, CustomerEvent, CustomerIdentityUpdated};
pub use state::Customer;
pub(crate) use state::evolve;
