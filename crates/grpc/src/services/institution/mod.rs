//! `InstitutionService`: the bank connector's catalogue, with the caller's
//! project's activations (see `proto/paycore/v1/institution.proto`).

pub mod convert;

use paycore_bank_connector::Institution;
use paycore_domain::kernel::institution::InstitutionId;
use paycore_domain::{ProjectId, StreamRef, Violations};
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{Handlers, finish};
use crate::pb::{self, institution_service_server::InstitutionService};

#[tonic::async_trait]
impl InstitutionService for Handlers {
    async fn list_institutions(
        &self,
        request: Request<pb::ListInstitutionsRequest>,
    ) -> Result<Response<pb::ListInstitutionsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let filter = convert::filter(&body, &mut v);
        let filter = finish(v, filter)?;
        let mut institutions = Vec::new();
        for institution in self.catalogue().await? {
            if !filter.matches(&institution) {
                continue;
            }
            let active = self.is_active(caller.project_id, &institution).await?;
            if body.active_only && !active {
                continue;
            }
            institutions.push(convert::institution_pb(&institution, active));
        }
        institutions.sort_by(|a, b| (&a.country, &a.name, &a.id).cmp(&(&b.country, &b.name, &b.id)));
        Ok(Response::new(pb::ListInstitutionsResponse { institutions }))
    }

    async fn get_institution(
        &self,
        request: Request<pb::GetInstitutionRequest>,
    ) -> Result<Response<pb::Institution>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let id = convert::institution_id(&request.get_ref().institution_id, &mut v);
        let id = finish(v, id)?;
        let institution = self.institution(&id).await?;
        let active = self.is_active(caller.project_id, &institution).await?;
        Ok(Response::new(convert::institution_pb(&institution, active)))
    }
}

impl Handlers {
    /// The connector's catalogue.
    pub(crate) async fn catalogue(&self) -> Result<Vec<Institution>, Status> {
        self.state.bank.institutions().await.map_err(|error| {
            tracing::warn!(%error, "the bank connector's catalogue could not be read");
            Status::unavailable(format!("the bank connector is unavailable: {error}"))
        })
    }

    /// The catalogue's institution `id`, or NOT_FOUND.
    pub(crate) async fn institution(&self, id: &InstitutionId) -> Result<Institution, Status> {
        self.catalogue()
            .await?
            .into_iter()
            .find(|institution| institution.id.as_str() == id.as_str())
            .ok_or_else(|| {
                Status::with_error_details(
                    tonic::Code::NotFound,
                    format!("institution {id} not found"),
                    ErrorDetails::with_resource_info("institution", id.as_str(), "", ""),
                )
            })
    }

    /// Whether `project` activated `institution`.
    pub(crate) async fn is_active(
        &self,
        project: ProjectId,
        institution: &Institution,
    ) -> Result<bool, Status> {
        // A catalogue ID the domain cannot name was never activated.
        let Ok(id) = InstitutionId::parse(institution.id.as_str()) else {
            return Ok(false);
        };
        let state = self.load(&StreamRef::Institution(project, id)).await?;
        Ok(state
            .as_institution_activation()
            .is_some_and(|activation| activation.active))
    }
}
