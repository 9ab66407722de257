//! The states of projects and API keys, and how their events evolve them.

use serde::{Deserialize, Serialize};

use super::Environment;
use super::api_key::KeyKind;
use crate::aggregate::Aggregate;
use crate::events::Event;
use crate::kernel::id::{ApiKeyId, ProjectId};
use crate::kernel::meta::Meta;
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub environment: Environment,
    pub meta: Meta,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub project_id: ProjectId,
    pub kind: KeyKind,
    pub secret_hash: [u8; 32],
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Applies a project or API key event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty, Event::ProjectCreated(e)) => Aggregate::Project(Project {
            id: e.id,
            name: e.name.clone(),
            environment: e.environment,
            meta: e.meta.clone(),
            created_at: e.created_at,
        }),
        (Aggregate::Project(p), Event::ProjectMetaUpdated(e)) => Aggregate::Project(Project {
            meta: e.meta.clone(),
            ..p
        }),
        (Aggregate::Empty, Event::ApiKeyCreated(e)) => Aggregate::ApiKey(ApiKey {
            id: e.id,
            project_id: e.project_id,
            kind: e.kind,
            secret_hash: e.secret_hash,
            created_at: e.created_at,
            revoked_at: None,
        }),
        (Aggregate::ApiKey(k), Event::ApiKeyRevoked(e)) => Aggregate::ApiKey(ApiKey {
            revoked_at: Some(e.revoked_at),
            ..k
        }),
        (state, event) => state.misapplied(event),
    }
}
