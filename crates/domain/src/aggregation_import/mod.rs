//! The import family: one job importing a connection's data, default
//! (everything) or advanced (chosen parts, a history window up to 5 years),
//! `PENDING → RUNNING → SUCCEEDED / FAILED` with a reason, and its progress
//! counts. One stream per import, `aggregationimport-imp_…`. The job itself
//! (paging through the bank, recording accounts and transactions) runs
//! outside the domain; it reports here.

mod command;
mod decide;
mod events;
mod state;

pub use command::AggregationImportCommand;
pub use decide::{AdvancedScope, HISTORY_LIMIT_DAYS, MAX_FAILURE_DETAIL_CHARS, oldest_history_date};
pub use events::*;
pub(crate) use state::evolve;
pub use state::{AggregationImport, ImportStatus};
