pub mod convert;

use paycore_domain::{DomainError, StreamRef, Violations};
use tonic::{Request, Response, Status};

use super::{Handlers, correlation_id, finish, unexpected};
use crate::errors::{domain_status, engine_status, model_status};
use crate::pb::{self, project_service_server::ProjectService};

#[tonic::async_trait]
impl ProjectService for Handlers {
    async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = self.caller(&request).await?;
        let found = self
            .queries()
            .project(caller.project_id)
            .await
            .map_err(|error| model_status(&error))?;
        let project = match found {
            Some(project) => project,
            // Authentication found it in the log; the read model may still be
            // catching up after a start.
            None => self
                .state
                .engine
                .load(&StreamRef::Project(caller.project_id))
                .await
                .map_err(|e| engine_status(&e))?
                .as_project()
                .cloned()
                .ok_or_else(|| domain_status(&DomainError::not_found("project", caller.project_id)))?,
        };
        Ok(Response::new(convert::project_pb(&project)))
    }

    async fn update_project(
        &self,
        request: Request<pb::UpdateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let command = convert::update_project(request.get_ref(), &mut v);
        let command = finish(v, command)?;
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command)
            .await?;
        let project = state.as_project().ok_or_else(|| unexpected("project", &state))?;
        Ok(Response::new(convert::project_pb(project)))
    }
}
