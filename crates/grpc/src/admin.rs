//! Administration: projects and API keys, for the CLI and first start.
//!
//! The same functions serve `paycore projects|keys` directly on a data
//! directory (no server running) and, through [`AdminService`], on the Unix
//! socket of a running server — so there is one implementation either way.

use std::path::Path;

use paycore_domain::api_key::{ApiKeyToken, KeyKind};
use paycore_domain::{
    ApiKeyId, Command, CommandEnvelope, DomainError, Environment, Meta, ProjectId, StreamRef, Violations,
};
use paycore_engine::{CommandMeta, Engine, EngineError};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::errors::{domain_status, engine_status};
use crate::{Clock, SystemClock};

/// Generated messages, server and client of `paycore.admin.v1`.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    missing_docs,
    missing_debug_implementations
)]
pub mod pb {
    tonic::include_proto!("paycore.admin.v1");
}

pub use pb::admin_service_client::AdminServiceClient;
use pb::admin_service_server::AdminServiceServer;

/// Name of the admin socket inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

async fn run(engine: &Engine, project_id: ProjectId, command: Command) -> Result<(), EngineError> {
    let envelope = CommandEnvelope {
        project_id,
        now: SystemClock.now(),
        idempotency: None,
        command,
    };
    let meta = CommandMeta {
        actor: Some("system:admin".into()),
        correlation_id: Some(Uuid::now_v7()),
    };
    engine.execute_with(envelope, meta).await.map(drop)
}

/// Creates a project and its first secret key.
pub async fn create_project(
    engine: &Engine,
    name: &str,
    environment: Environment,
) -> Result<(ProjectId, ApiKeyToken), EngineError> {
    let id = ProjectId::from_uuid(Uuid::now_v7());
    let command = Command::CreateProject {
        id,
        name: name.to_owned(),
        environment,
        meta: Meta::default(),
    };
    run(engine, id, command).await?;
    Ok((id, create_key(engine, id, KeyKind::Secret).await?))
}

/// Creates a key and returns it in full: the only time it is ever visible.
pub async fn create_key(
    engine: &Engine,
    project_id: ProjectId,
    kind: KeyKind,
) -> Result<ApiKeyToken, EngineError> {
    let project = engine
        .load(&StreamRef::Project(project_id))
        .await?
        .as_project()
        .cloned()
        .ok_or_else(|| DomainError::not_found("project", project_id))?;
    let id = ApiKeyId::from_uuid(Uuid::now_v7());
    let token = ApiKeyToken::new(project.environment, kind, id, rand::random());
    let command = Command::CreateApiKey {
        id,
        kind,
        secret_hash: token.secret_hash(),
    };
    run(engine, project_id, command).await?;
    Ok(token)
}

/// Revokes a key of whichever project owns it; returns that project.
pub async fn revoke_key(engine: &Engine, id: ApiKeyId) -> Result<ProjectId, EngineError> {
    let project_id = engine
        .load(&StreamRef::ApiKey(id))
        .await?
        .as_api_key()
        .map(|key| key.project_id)
        .ok_or_else(|| DomainError::not_found("api key", id))?;
    run(engine, project_id, Command::RevokeApiKey { id }).await?;
    Ok(project_id)
}

/// The admin service over an engine.
#[derive(Clone, Debug)]
pub struct AdminService {
    engine: Engine,
}

impl AdminService {
    pub fn server(engine: Engine) -> AdminServiceServer<Self> {
        AdminServiceServer::new(Self { engine })
    }
}

fn parse<T: std::str::FromStr>(text: &str, field: &str) -> Result<T, Status>
where
    T::Err: std::fmt::Display,
{
    let mut violations = Violations::new();
    let value = violations.check(field, text.parse::<T>());
    violations.into_result().map_err(|error| domain_status(&error))?;
    value.ok_or_else(|| Status::internal("parse failed without a violation"))
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminService {
    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::CreateProjectResponse>, Status> {
        let request = request.into_inner();
        let environment = if request.live {
            Environment::Live
        } else {
            Environment::Sandbox
        };
        let (project, key) = create_project(&self.engine, &request.name, environment)
            .await
            .map_err(|error| engine_status(&error))?;
        Ok(Response::new(pb::CreateProjectResponse {
            project_id: project.to_string(),
            secret_key: key.to_string(),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let request = request.into_inner();
        let project = parse::<ProjectId>(&request.project_id, "project_id")?;
        let kind = match pb::KeyKind::try_from(request.kind) {
            Ok(pb::KeyKind::Public) => KeyKind::Public,
            Ok(pb::KeyKind::Secret) => KeyKind::Secret,
            _ => {
                return Err(domain_status(&DomainError::invalid(
                    "kind",
                    "must be SECRET or PUBLIC",
                )));
            }
        };
        let key = create_key(&self.engine, project, kind)
            .await
            .map_err(|error| engine_status(&error))?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            key_id: key.key_id.to_string(),
            key: key.to_string(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let id = parse::<ApiKeyId>(&request.into_inner().key_id, "key_id")?;
        let project = revoke_key(&self.engine, id)
            .await
            .map_err(|error| engine_status(&error))?;
        Ok(Response::new(pb::RevokeApiKeyResponse {
            project_id: project.to_string(),
        }))
    }
}

/// A client of the admin service of the server holding `data_dir`.
pub async fn connect(data_dir: &Path) -> Result<AdminServiceClient<Channel>, tonic::transport::Error> {
    let socket = data_dir.join(SOCKET_NAME);
    // The URI is required by the API but unused: the connector dials the socket.
    let channel = Endpoint::from_static("http://paycore.admin")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(AdminServiceClient::new(channel))
}
