//! Deciding the project family's commands.

use super::Environment;
use super::api_key::KeyKind;
use super::events::{ApiKeyCreated, ApiKeyRevoked, ProjectCreated, ProjectEvent};
use super::state::{ApiKey, Project};
use crate::context::{Context, Decided};
use crate::kernel::error::{DomainError, Refusal};
use crate::kernel::id::{ApiKeyId, ProjectId};
use crate::kernel::meta::{Meta, MetaUpdated};
use crate::kernel::stream::{ResourceRef, StreamRef};

impl Context<'_> {
    pub(crate) fn create_project<E: From<ProjectEvent>>(
        &self,
        id: ProjectId,
        name: &str,
        environment: Environment,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        if id != self.project_id {
            return Err(DomainError::invalid(
                "id",
                "a new project's ID must be the envelope's project ID",
            ));
        }
        let stream = StreamRef::Project(id);
        self.must_be_new(&stream, "project", id)?;
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(DomainError::invalid("name", "must be 1 to 100 characters"));
        }
        let event = ProjectEvent::ProjectCreated(ProjectCreated {
            id,
            name: name.to_owned(),
            environment,
            meta: meta.clone(),
            created_at: self.now,
        });
        Ok((vec![(stream, event.into())], ResourceRef::Project(id)))
    }

    pub(crate) fn update_project<E: From<ProjectEvent>>(
        &self,
        meta: &Meta,
    ) -> Result<Decided<E>, DomainError> {
        let project = self.project()?;
        let event = ProjectEvent::ProjectMetaUpdated(MetaUpdated { meta: meta.clone() });
        Ok((
            vec![(StreamRef::Project(project.id), event.into())],
            ResourceRef::Project(project.id),
        ))
    }

    pub(crate) fn create_api_key<E: From<ProjectEvent>>(
        &self,
        id: ApiKeyId,
        kind: KeyKind,
        secret_hash: [u8; 32],
    ) -> Result<Decided<E>, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::ApiKey(id);
        self.must_be_new(&stream, "api key", id)?;
        let event = ProjectEvent::ApiKeyCreated(ApiKeyCreated {
            id,
            project_id: project.id,
            kind,
            secret_hash,
            created_at: self.now,
        });
        Ok((vec![(stream, event.into())], ResourceRef::ApiKey(id)))
    }

    pub(crate) fn revoke_api_key<E: From<ProjectEvent>>(
        &self,
        id: ApiKeyId,
    ) -> Result<Decided<E>, DomainError> {
        let stream = StreamRef::ApiKey(id);
        let key = self
            .owned::<ApiKey>(&stream)
            .ok_or_else(|| DomainError::not_found("api key", id))?;
        if key.revoked_at.is_some() {
            return Err(DomainError::refused(
                Refusal::ApiKeyRevoked,
                format!("api key {id} is already revoked"),
            ));
        }
        let event = ProjectEvent::ApiKeyRevoked(ApiKeyRevoked { revoked_at: self.now });
        Ok((vec![(stream, event.into())], ResourceRef::ApiKey(id)))
    }

    /// The caller's project: how other families read it.
    pub(crate) fn require_sandbox(&self, what: &str) -> Result<(), DomainError> {
        if self.project()?.environment == Environment::Sandbox {
            Ok(())
        } else {
            Err(DomainError::refused(
                Refusal::SandboxOnly,
                format!("{what} is only possible in sandbox projects"),
            ))
        }
    }

    pub(crate) fn project(&self) -> Result<&Project, DomainError> {
        let id = self.project_id;
        self.state::<Project>(&StreamRef::Project(id))
            .ok_or_else(|| DomainError::not_found("project", id))
    }
}
