//! `AggregationConnectionService`: customers' connections to their banks
//! (`proto/paycore/v1/aggregation.proto`), created here, read from the
//! `open-banking` read model.

pub mod convert;

use paycore_bank_connector::{Institution, Source};
use paycore_domain::aggregation_connection::{AggregationConnectionCommand, NewSource, SourceKind};
use paycore_domain::{AggregationConnectionId, CustomerId, DomainError, Violations};
use tonic::{Request, Response, Status};

use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::convert as shared;
use crate::errors::{domain_status, page_status};
use crate::pb::{self, aggregation_connection_service_server::AggregationConnectionService};
use paycore_projections::PageError;

#[tonic::async_trait]
impl AggregationConnectionService for Handlers {
    async fn create_aggregation_connection(
        &self,
        request: Request<pb::CreateAggregationConnectionRequest>,
    ) -> Result<Response<pb::AggregationConnection>, Status> {
        let mut v = Violations::new();
        let (caller, key) = self
            .create_caller(&request, methods::CREATE_AGGREGATION_CONNECTION, &mut v)
            .await?;
        let asked = convert::create_request(request.get_ref(), &mut v);
        let asked = finish(v, asked)?;
        let sources = match &asked.institution {
            Some(id) => sources_of(&self.institution(id).await?),
            None => Vec::new(),
        };
        let command = AggregationConnectionCommand::CreateAggregationConnection {
            id: AggregationConnectionId::from_uuid(self.new_uuid()),
            customer_id: asked.customer,
            institution_id: asked.institution,
            sources,
            redirect_url: asked.redirect_url,
        };
        let state = self
            .execute(&caller, correlation_id(request.metadata()), key, command.into())
            .await?;
        let connection = state
            .as_aggregation_connection()
            .ok_or_else(|| unexpected("aggregation connection", &state))?;
        Ok(Response::new(convert::aggregation_connection_pb(connection)))
    }

    async fn get_aggregation_connection(
        &self,
        request: Request<pb::GetAggregationConnectionRequest>,
    ) -> Result<Response<pb::AggregationConnection>, Status> {
        let id = &request.get_ref().connection_id;
        let connection = self
            .get_one(
                &request,
                "connection_id",
                id,
                "aggregation connection",
                |read, project, id: AggregationConnectionId| read.aggregation_connection(project, id),
            )
            .await?;
        Ok(Response::new(convert::aggregation_connection_pb(&connection)))
    }

    async fn list_aggregation_connections(
        &self,
        request: Request<pb::ListAggregationConnectionsRequest>,
    ) -> Result<Response<pb::ListAggregationConnectionsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let customer = shared::id::<CustomerId>(&body.customer_id, "customer_id", &mut v);
        let page = shared::page_request(body.page_size, &body.page_token, &mut v);
        let (customer, page) = finish(v, customer.zip(page))?;
        let page = self
            .state
            .read
            .list_aggregation_connections(caller.project_id, customer, &page)
            .map_err(|e| match e {
                PageError::ParentNotFound => domain_status(&DomainError::not_found("customer", customer)),
                other => page_status(&other, None),
            })?;
        Ok(Response::new(pb::ListAggregationConnectionsResponse {
            items: page
                .items
                .iter()
                .map(convert::aggregation_connection_pb)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn delete_aggregation_connection(
        &self,
        request: Request<pb::DeleteAggregationConnectionRequest>,
    ) -> Result<Response<pb::AggregationConnection>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let id =
            shared::id::<AggregationConnectionId>(&request.get_ref().connection_id, "connection_id", &mut v);
        let id = finish(v, id)?;
        let command = AggregationConnectionCommand::DeleteAggregationConnection { id };
        let state = self
            .execute(&caller, correlation_id(request.metadata()), None, command.into())
            .await?;
        let connection = state
            .as_aggregation_connection()
            .ok_or_else(|| unexpected("aggregation connection", &state))?;
        Ok(Response::new(convert::aggregation_connection_pb(connection)))
    }
}

/// A connection's sources: the institution's, in its order of preference.
pub(crate) fn sources_of(institution: &Institution) -> Vec<NewSource> {
    institution
        .sources
        .iter()
        .zip(0u8..)
        .map(|(source, priority)| NewSource {
            kind: match source {
                Source::Psd2 => SourceKind::Psd2Api,
                Source::Web => SourceKind::Web,
            },
            priority,
            disabled: false,
        })
        .collect()
}
