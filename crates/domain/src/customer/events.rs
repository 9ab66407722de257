//! The customer family's events (type names, versions and codec in
//! [`crate::events`]).

use serde::{Deserialize, Serialize};

use super::identity::Identity;
use crate::kernel::id::{CustomerId, ProjectId};
use crate::kernel::meta::Meta;
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
