//! Projects: everything belongs to one.

use serde::{Deserialize, Serialize};

/// Sandbox projects move pretend money and allow the sandbox-only calls
/// (magic balances); live projects move real money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Environment {
    Sandbox,
    Live,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Live => "live",
        }
    }
}
