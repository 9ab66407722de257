//! `AggregationImportService`: the imports of a connection
//! (`proto/paycore/v1/aggregation.proto`), read from the `open-banking`
//! read model.

pub mod convert;

use paycore_domain::{AggregationConnectionId, AggregationImportId, DomainError, Violations};
use paycore_projections::PageError;
use tonic::{Request, Response, Status};

use super::{Handlers, finish};
use crate::convert as shared;
use crate::errors::{domain_status, page_status};
use crate::pb::{self, aggregation_import_service_server::AggregationImportService};

#[tonic::async_trait]
impl AggregationImportService for Handlers {
    async fn start_aggregation_import(
        &self,
        request: Request<pb::StartAggregationImportRequest>,
    ) -> Result<Response<pb::AggregationImport>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let asked = convert::start_request(request.get_ref(), &mut v);
        let (connection, scope) = finish(v, asked)?;
        let import = self
            .state
            .syncer
            .start_import(caller.project_id, connection, scope)
            .await
            .map_err(|error| self.sync_status(&error))?;
        self.import_pb(import).await
    }

    async fn get_aggregation_import(
        &self,
        request: Request<pb::GetAggregationImportRequest>,
    ) -> Result<Response<pb::AggregationImport>, Status> {
        let id = &request.get_ref().import_id;
        let import = self
            .get_one(
                &request,
                "import_id",
                id,
                "aggregation import",
                async |read, project, id: AggregationImportId| read.local().aggregation_import(project, id),
            )
            .await?;
        Ok(Response::new(convert::aggregation_import_pb(&import)))
    }

    async fn list_aggregation_imports(
        &self,
        request: Request<pb::ListAggregationImportsRequest>,
    ) -> Result<Response<pb::ListAggregationImportsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let connection = shared::id::<AggregationConnectionId>(&body.connection_id, "connection_id", &mut v);
        let page = shared::page_request(body.page_size, &body.page_token, &mut v);
        let (connection, page) = finish(v, connection.zip(page))?;
        let page = self
            .state
            .read
            .list_aggregation_imports(caller.project_id, connection, &page)
            .map_err(|e| match e {
                PageError::ParentNotFound => {
                    domain_status(&DomainError::not_found("aggregation connection", connection))
                }
                other => page_status(&other, None),
            })?;
        Ok(Response::new(pb::ListAggregationImportsResponse {
            items: page.items.iter().map(convert::aggregation_import_pb).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }
}
