//! The customer family's events (type names, versions and codec in
//! [`crate::events`]).

use serde::{Deserialize, Serialize};

use super::identity::Identity;
use crate::kernel::id::{CustomerId, ProjectId};
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCreated {
    pub id: CustomerId,
    pub project_id: ProjectId,
    pub identity: Option<Identity>,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerIdentityUpdated {
    pub identity: Option<Identity>,
}

/// The customer family's events: what its deciders emit and its `evolve`
/// folds (the routers' `Event` wraps each as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomerEvent {
    CustomerCreated(CustomerCreated),
    CustomerIdentityUpdated(CustomerIdentityUpdated),
    CustomerMetaUpdated(MetaUpdated),
}
