//! The customer family: customers and their identity.

mod decide;
mod events;
pub mod identity;
mod state;

pub(crate) use decide::identity_files;
pub use events::{CustomerCreated, CustomerIdentityUpdated};
pub use state::Customer;
pub(crate) use state::evolve;
