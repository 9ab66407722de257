//! `AggregationConnectionService`: customers' connections to their banks
//! (`proto/paycore/v1/aggregation.proto`), created here, read from the
//! `open-banking` read model.

pub mod convert;

use paycore_aggregation_sync::{SignInStep, SyncError};
use paycore_bank_connector::RedirectCallback;
use paycore_bank_connector::{Institution, Source};
use paycore_domain::aggregate::AggregationConnection;
use paycore_domain::aggregation_connection::{AggregationConnectionCommand, NewSource, SourceKind};
use paycore_domain::{
    AggregationConnectionId, AggregationImportId, CustomerId, DomainError, StreamRef, Violations,
};
use tonic::{Request, Response, Status};

use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::connect;
use crate::convert as shared;
use crate::errors::{domain_status, page_status, sync_status};
use crate::pb::{self, aggregation_connection_service_server::AggregationConnectionService};
use crate::services::aggregation_import::convert::aggregation_import_pb;
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
        Ok(Response::new(self.connection_pb(connection)))
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
                async |read, project, id: AggregationConnectionId| {
                    read.local().aggregation_connection(project, id)
                },
            )
            .await?;
        Ok(Response::new(self.connection_pb(&connection)))
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
        let id = self.connection_id(&request.get_ref().connection_id)?;
        self.state
            .syncer
            .delete_connection(caller.project_id, id)
            .await
            .map_err(|error| self.sync_status(&error))?;
        let state = self.load(&StreamRef::AggregationConnection(id)).await?;
        let connection = state
            .as_aggregation_connection()
            .ok_or_else(|| unexpected("aggregation connection", &state))?;
        self.caught_up().await;
        Ok(Response::new(self.connection_pb(connection)))
    }

    async fn refresh_aggregation_connection(
        &self,
        request: Request<pb::RefreshAggregationConnectionRequest>,
    ) -> Result<Response<pb::AggregationImport>, Status> {
        let caller = self.caller(&request).await?;
        let id = self.connection_id(&request.get_ref().connection_id)?;
        let import = self
            .state
            .syncer
            .refresh(caller.project_id, id)
            .await
            .map_err(|error| self.sync_status(&error))?;
        self.import_pb(import).await
    }

    async fn submit_aggregation_credentials(
        &self,
        request: Request<pb::SubmitAggregationCredentialsRequest>,
    ) -> Result<Response<pb::AggregationSignInStep>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let id = shared::id::<AggregationConnectionId>(&body.connection_id, "connection_id", &mut v);
        if body.username.trim().is_empty() {
            v.add("username", "must not be empty");
        }
        let id = finish(v, id)?;
        let step = self
            .state
            .syncer
            .submit_credentials(caller.project_id, id, body.username.trim(), &body.password)
            .await;
        self.sign_in_step(id, step).await
    }

    async fn submit_aggregation_one_time_code(
        &self,
        request: Request<pb::SubmitAggregationOneTimeCodeRequest>,
    ) -> Result<Response<pb::AggregationSignInStep>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let id = shared::id::<AggregationConnectionId>(&body.connection_id, "connection_id", &mut v);
        if body.code.trim().is_empty() {
            v.add("code", "must not be empty");
        }
        let id = finish(v, id)?;
        let step = self
            .state
            .syncer
            .submit_one_time_code(caller.project_id, id, body.code.trim())
            .await;
        self.sign_in_step(id, step).await
    }

    async fn poll_aggregation_sca(
        &self,
        request: Request<pb::PollAggregationScaRequest>,
    ) -> Result<Response<pb::AggregationSignInStep>, Status> {
        let caller = self.caller(&request).await?;
        let id = self.connection_id(&request.get_ref().connection_id)?;
        let step = self.state.syncer.poll_sca(caller.project_id, id).await;
        self.sign_in_step(id, step).await
    }

    async fn complete_aggregation_redirect(
        &self,
        request: Request<pb::CompleteAggregationRedirectRequest>,
    ) -> Result<Response<pb::AggregationSignInStep>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.get_ref();
        let mut v = Violations::new();
        let id = shared::id::<AggregationConnectionId>(&body.connection_id, "connection_id", &mut v);
        if body.state.is_empty() {
            v.add("state", "must not be empty");
        }
        let id = finish(v, id)?;
        let callback = RedirectCallback {
            state: body.state.clone(),
            code: body.code.clone(),
            error: body.error.clone(),
        };
        let step = self
            .state
            .syncer
            .complete_redirect(caller.project_id, id, callback)
            .await;
        self.sign_in_step(id, step).await
    }
}

impl Handlers {
    fn connection_id(&self, raw: &str) -> Result<AggregationConnectionId, Status> {
        let mut v = Violations::new();
        let id = shared::id::<AggregationConnectionId>(raw, "connection_id", &mut v);
        finish(v, id)
    }

    pub(crate) fn sync_status(&self, error: &SyncError) -> Status {
        sync_status(error, self.state.clock.now())
    }

    /// An import just started, as the models show it once they applied it.
    pub(crate) async fn import_pb(
        &self,
        id: AggregationImportId,
    ) -> Result<Response<pb::AggregationImport>, Status> {
        let state = self.load(&StreamRef::AggregationImport(id)).await?;
        let import = state
            .as_aggregation_import()
            .ok_or_else(|| unexpected("aggregation import", &state))?;
        self.caught_up().await;
        Ok(Response::new(aggregation_import_pb(import)))
    }

    /// Waits (up to the read-your-writes timeout) until the read models
    /// applied everything committed so far: what the syncer wrote.
    pub(crate) async fn caught_up(&self) {
        // `committed` counts the events: the last one is at one less.
        let Some(last) = self.state.engine.store().committed().borrow().checked_sub(1) else {
            return;
        };
        let waited = tokio::time::timeout(
            self.state.read_your_writes_timeout,
            self.state.read.wait_for(last),
        )
        .await;
        if waited.is_err() {
            tracing::warn!(
                position = last,
                "read models did not reach the syncer's writes in time"
            );
        }
    }

    /// A sign-in step's answer: the step and the connection after it.
    async fn sign_in_step(
        &self,
        id: AggregationConnectionId,
        step: Result<SignInStep, SyncError>,
    ) -> Result<Response<pb::AggregationSignInStep>, Status> {
        use pb::aggregation_sign_in_step::Next;
        let next = match step.map_err(|error| self.sync_status(&error))? {
            SignInStep::Connected { import_id } => Next::SignedIn(pb::AggregationSignedIn {
                import_id: import_id.to_string(),
            }),
            SignInStep::OneTimeCodeRequired { prompt } => {
                Next::OneTimeCodeRequired(pb::AggregationSignInPrompt { prompt })
            }
            SignInStep::RedirectRequired { url } => {
                Next::RedirectRequired(pb::AggregationSignInRedirect { url })
            }
            SignInStep::ScaRequired { prompt } => Next::ScaRequired(pb::AggregationSignInPrompt { prompt }),
            SignInStep::Failed { reason, detail } => Next::Failed(pb::AggregationSignInFailure {
                reason: convert::action_required_reason_pb(reason).into(),
                detail,
            }),
        };
        let state = self.load(&StreamRef::AggregationConnection(id)).await?;
        let connection = state
            .as_aggregation_connection()
            .ok_or_else(|| unexpected("aggregation connection", &state))?;
        self.caught_up().await;
        Ok(Response::new(pb::AggregationSignInStep {
            connection: Some(self.connection_pb(connection)),
            next: Some(next),
        }))
    }

    /// A connection as the services answer it: with the link to the hosted
    /// pages when they are served.
    fn connection_pb(&self, connection: &AggregationConnection) -> pb::AggregationConnection {
        let mut answered = convert::aggregation_connection_pb(connection);
        answered.authentication_url = self
            .state
            .connect_url_base
            .as_deref()
            .map(|base| connect::connect_url(base, &self.state.side.fingerprint_secret, connection.id));
        answered
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
