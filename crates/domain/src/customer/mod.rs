//! The customer family: customers and their identity.

mod decide;
mod events;
pub mod identity;
mod state;

pub(crate) use decide::identity_files;
pub use events::{CustomerCreated, CustomerEvent, CustomerIdentityUpdated};
pub use state::Customer;
pub(crate) use state::evolve;
