//! The project family: projects, which everything belongs to, and their API
//! keys.

pub mod api_key;
mod command;
mod decide;
mod environment;
mod events;
mod state;

pub use command::ProjectCommand;
pub use environment::Environment;
pub use events::{ApiKeyCreated, ApiKeyRevoked, ProjectCreated, ProjectEvent};
pub(crate) use state::evolve;
pub use state::{ApiKey, Project, ProjectAggregate};
