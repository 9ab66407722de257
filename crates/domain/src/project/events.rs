//! The project family's events, as stored in the log (their type names,
//! versions and codec are in [`crate::events`]).

use serde::{Deserialize, Serialize};

use super::Environment;
use super::api_key::KeyKind;
use crate::kernel::id::{ApiKeyId, ProjectId};
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectCreated {
    pub id: ProjectId,
    pub name: String,
    pub environment: Environment,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    pub id: ApiKeyId,
    pub project_id: ProjectId,
    pub kind: KeyKind,
    /// SHA-256 of the secret part of the key; the key itself is never stored.
    pub secret_hash: [u8; 32],
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub revoked_at: Timestamp,
}

/// The project family's events: what its deciders emit and its `evolve`
/// folds (the routers' `Event` wraps each as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectEvent {
    ProjectCreated(ProjectCreated),
    ProjectMetaUpdated(MetaUpdated),
    ApiKeyCreated(ApiKeyCreated),
    ApiKeyRevoked(ApiKeyRevoked),
}
