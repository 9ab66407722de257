//! The states of projects and API keys, and how their events evolve them.

use serde::{Deserialize, Serialize};

use super::Environment;
use super::api_key::KeyKind;
use super::events::ProjectEvent;
use crate::context::{Owned, misapplied};
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

impl Owned for Project {
    fn project_id(&self) -> ProjectId {
        self.id
    }
}

impl Owned for ApiKey {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

/// The project family's aggregates: a project's stream and an API key's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectAggregate {
    Project(Project),
    ApiKey(ApiKey),
}

/// Applies a project or API key event to the state of its stream (`None`
/// before the first).
pub(crate) fn evolve(state: Option<ProjectAggregate>, event: ProjectEvent) -> Option<ProjectAggregate> {
    use ProjectAggregate as A;
    use ProjectEvent as E;
    Some(match (state, event) {
        (None, E::ProjectCreated(e)) => A::Project(Project {
            id: e.id,
            name: e.name,
            environment: e.environment,
            meta: e.meta,
            created_at: e.created_at,
        }),
        (Some(A::Project(p)), E::ProjectMetaUpdated(e)) => A::Project(Project { meta: e.meta, ..p }),
        (None, E::ApiKeyCreated(e)) => A::ApiKey(ApiKey {
            id: e.id,
            project_id: e.project_id,
            kind: e.kind,
            secret_hash: e.secret_hash,
            created_at: e.created_at,
            revoked_at: None,
        }),
        (Some(A::ApiKey(k)), E::ApiKeyRevoked(e)) => A::ApiKey(ApiKey {
            revoked_at: Some(e.revoked_at),
            ..k
        }),
        (state, event) => return misapplied(state, &event),
    })
}
