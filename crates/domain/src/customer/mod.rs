//! The customer family: customers and their identity.

mod command;
pub use command::CustomerCommand;

mod decide;
mod events;
pub mod identity;
mod state;

pub use events::{CustomerCreated, CustomerEvent, CustomerIdentityUpdated};
pub use state::Customer;
pub(crate) use state::evolve;
