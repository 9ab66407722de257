//! The aggregation connection family: a customer's connection to an
//! institution (open banking, PSD2 account information), its lifecycle
//! `INITIAL_ACTION_REQUIRED → CONNECTING → UPDATING → CONNECTED` with
//! `ACTION_REQUIRED` and `REFRESH_DELAYED` (only the diagram's arrows:
//! [`ConnectionStatus::may_become`]), its sources, the end user's consent
//! (180 days at most) and deletion (terminal). One stream per connection,
//! `aggregationconnection-conn_…`. Other families read a connection through
//! `Context::aggregation_connection` (a deleted one is not found).

mod command;
mod decide;
mod events;
mod rules;
mod state;

pub use command::AggregationConnectionCommand;
pub use decide::{CONSENT_MAX_DAYS, MAX_REDIRECT_URL_CHARS, MAX_SOURCES, NewSource};
pub use events::*;
pub use rules::{ConnectionRule, check_consent_expired, check_status_changed};
pub use state::AggregationConnection;
pub(crate) use state::evolve;
