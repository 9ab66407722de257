//! Administration: projects, API keys and the platform's exchange rates,
//! for the CLI and first start.
//!
//! The same functions serve `paycore projects|keys|fx` directly on a data
//! directory (no server running) and, through [`AdminService`], on the Unix
//! socket of a running server — so there is one implementation either way.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use paycore_bank_connector::{BankConnector, ConnectorError, SandboxBank};
use paycore_domain::deployment::DeploymentCommand;
use paycore_domain::fx_rate::FxRateCommand;
use paycore_domain::fx_rate::FxRateEntry;
use paycore_domain::institution::InstitutionCommand;
use paycore_domain::kernel::fx::{Quote, Rate};
use paycore_domain::kernel::institution::InstitutionId;
use paycore_domain::project::ProjectCommand;
use paycore_domain::project::api_key::{ApiKeyToken, KeyKind};
use paycore_domain::{
    Aggregate, ApiKeyId, Command, CommandEnvelope, Currency, DomainError, Environment, Event, Meta,
    ProjectId, StreamRef, Violations,
};
use paycore_engine::{CommandMeta, Engine, EngineError, Executed};
use paycore_projections::ReadModels;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use uuid::Uuid;

mod backup;
mod projections;

pub use backup::{BackupPoint, backup_point};

use crate::errors::{domain_status, engine_status, model_status};
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
    include!(concat!(env!("OUT_DIR"), "/clients/paycore.admin.v1.rs"));
}

pub use pb::admin_service_client::AdminServiceClient;
use pb::admin_service_server::AdminServiceServer;

/// Name of the admin socket inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

async fn run(engine: &Engine, project_id: ProjectId, command: Command) -> Result<(), EngineError> {
    execute(engine, project_id, command).await.map(drop)
}

async fn execute(engine: &Engine, project_id: ProjectId, command: Command) -> Result<Executed, EngineError> {
    let envelope = CommandEnvelope {
        project_id,
        now: SystemClock.now(),
        idempotency: None,
        command,
    };
    let meta = CommandMeta {
        actor: Some("system:admin".into()),
        correlation_id: Some(Uuid::now_v7()),
        trace: None,
    };
    engine.execute_with(envelope, meta).await
}

/// What the first start of a deployment found.
#[derive(Debug)]
pub enum Bootstrap {
    /// This server created the sandbox project, and this is its first key.
    Created(ProjectId, ApiKeyToken),
    /// Another server sharing the store created it first: this project.
    ByAnotherServer(ProjectId),
}

/// The first start on an empty store: a sandbox project and a secret key,
/// created once however many servers race (see
/// `paycore_domain::deployment`).
pub async fn bootstrap_deployment(engine: &Engine) -> Result<Bootstrap, EngineError> {
    let id = ProjectId::from_uuid(Uuid::now_v7());
    let command = DeploymentCommand::BootstrapDeployment {
        id,
        name: "Sandbox".to_owned(),
    }
    .into();
    match run(engine, id, command).await {
        Ok(()) => Ok(Bootstrap::Created(
            id,
            create_key(engine, id, KeyKind::Secret).await?,
        )),
        Err(EngineError::Domain(DomainError::AlreadyExists { kind, id: winner }))
            if kind == paycore_domain::deployment::ALREADY_BOOTSTRAPPED =>
        {
            let winner = winner
                .parse()
                .map_err(|_| EngineError::Internal(format!("the bootstrap record names {winner:?}")))?;
            Ok(Bootstrap::ByAnotherServer(winner))
        }
        Err(error) => Err(error),
    }
}

/// Creates a project and its first secret key.
pub async fn create_project(
    engine: &Engine,
    name: &str,
    environment: Environment,
) -> Result<(ProjectId, ApiKeyToken), EngineError> {
    let id = ProjectId::from_uuid(Uuid::now_v7());
    let command = ProjectCommand::CreateProject {
        id,
        name: name.to_owned(),
        environment,
        meta: Meta::default(),
    }
    .into();
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
    let command = ProjectCommand::CreateApiKey {
        id,
        kind,
        secret_hash: token.secret_hash(),
    }
    .into();
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
    run(engine, project_id, ProjectCommand::RevokeApiKey { id }.into()).await?;
    Ok(project_id)
}

/// The project exchange-rate commands run under. Rates are platform-wide:
/// the decider ignores the envelope's project for them, and the nil ID
/// names no project, so no project's streams are involved.
fn platform() -> ProjectId {
    ProjectId::from_uuid(Uuid::nil())
}

/// The pair's state after an exchange-rate command.
fn fx_rate_state(executed: &Executed) -> Result<FxRateEntry, EngineError> {
    executed.state.as_fx_rate().cloned().ok_or_else(|| {
        EngineError::Internal(format!("an exchange-rate command answered {:?}", executed.state))
    })
}

/// Sets (or replaces) the exchange rate of `quote.from` → `quote.to`, for
/// every project. Answers the pair's new state and the log position that
/// recorded it.
pub async fn set_fx_rate(engine: &Engine, quote: Quote) -> Result<(FxRateEntry, u64), EngineError> {
    let command = FxRateCommand::SetFxRate {
        from: quote.from,
        to: quote.to,
        mid_rate: quote.mid,
        spread_bps: quote.spread_bps,
    }
    .into();
    let executed = execute(engine, platform(), command).await?;
    Ok((fx_rate_state(&executed)?, executed.position))
}

/// Removes the exchange rate of `from` → `to` (NOT_FOUND if it has none).
/// Answers the log position that recorded it.
pub async fn remove_fx_rate(engine: &Engine, from: Currency, to: Currency) -> Result<u64, EngineError> {
    let executed = execute(
        engine,
        platform(),
        FxRateCommand::RemoveFxRate { from, to }.into(),
    )
    .await?;
    Ok(executed.position)
}

/// Why a project's activation of an institution was not changed.
#[derive(Debug, thiserror::Error)]
pub enum InstitutionError {
    #[error("institution {0} is not in the bank connector's catalogue")]
    Unknown(InstitutionId),
    #[error("the bank connector is unavailable: {0}")]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Activates (or deactivates) `institution` for `project`'s customers.
/// Activation needs the institution in `bank`'s catalogue; deactivation
/// does not (an institution the connector dropped can still be turned
/// off). Answers the log position (nothing is written when it already is
/// as asked).
pub async fn set_institution_active(
    engine: &Engine,
    bank: &dyn BankConnector,
    project: ProjectId,
    institution: InstitutionId,
    active: bool,
) -> Result<u64, InstitutionError> {
    let command = if active {
        let known = bank
            .institutions()
            .await?
            .iter()
            .any(|known| known.id.as_str() == institution.as_str());
        if !known {
            return Err(InstitutionError::Unknown(institution));
        }
        InstitutionCommand::ActivateInstitution {
            institution_id: institution,
        }
    } else {
        InstitutionCommand::DeactivateInstitution {
            institution_id: institution,
        }
    };
    let executed = execute(engine, project, command.into()).await?;
    Ok(executed.position)
}

fn institution_status(error: &InstitutionError) -> Status {
    match error {
        InstitutionError::Unknown(_) => Status::not_found(error.to_string()),
        InstitutionError::Connector(_) => Status::unavailable(error.to_string()),
        InstitutionError::Engine(error) => engine_status(error),
    }
}

/// How many events a log scan reads at a time.
const SCAN_BATCH: usize = 4_096;

/// The configured exchange rates (removed ones left out), ordered by pair,
/// read from the whole log: without read models at hand (the CLI on a
/// stopped server, or an admin service built without them) nothing else
/// knows which pairs exist. Rates are rare events; the scan skips every
/// other event without decoding it.
pub async fn list_fx_rates(engine: &Engine) -> Result<Vec<FxRateEntry>, EngineError> {
    let store = engine.store();
    let mut pairs: BTreeMap<(Currency, Currency), Aggregate> = BTreeMap::new();
    let mut from = 0;
    loop {
        let batch = store.read_all(from, SCAN_BATCH).await?;
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        for recorded in batch
            .iter()
            .filter(|recorded| recorded.stream.category() == "fxrate")
        {
            let Some(StreamRef::FxRate(source, destination)) = StreamRef::parse(recorded.stream.as_str())
            else {
                continue;
            };
            let event = Event::decode(&recorded.event_type, recorded.schema_version, &recorded.payload)
                .map_err(|error| {
                    EngineError::Internal(format!("event at position {}: {error}", recorded.position))
                })?;
            let state = pairs.remove(&(source, destination)).unwrap_or_default();
            pairs.insert((source, destination), state.evolve(&event));
        }
    }
    Ok(pairs
        .values()
        .filter_map(Aggregate::as_fx_rate)
        .filter(|entry| entry.current.is_some())
        .cloned()
        .collect())
}

/// An exchange rate given as text (admin API, CLI), checked in full: every
/// bad field is reported at once, under the request's field names.
pub fn parse_quote(
    source_currency: &str,
    destination_currency: &str,
    mid_rate: &str,
    spread_bps: u32,
) -> Result<Quote, DomainError> {
    let mut v = Violations::new();
    let from = crate::convert::currency(source_currency, "source_currency", &mut v);
    let to = crate::convert::currency(destination_currency, "destination_currency", &mut v);
    let mid = v.check("mid_rate", Rate::parse(mid_rate));
    if spread_bps >= paycore_domain::kernel::fx::BPS_PER_UNIT {
        v.add("spread_bps", "must be 0 to 9999 basis points (below 100%)");
    }
    if from.is_some() && from == to {
        v.add("destination_currency", "must differ from source_currency");
    }
    v.into_result()?;
    match (from, to, mid) {
        (Some(from), Some(to), Some(mid)) => Quote::new(from, to, mid, spread_bps)
            .map_err(|error| DomainError::invalid("mid_rate", error.to_string())),
        _ => Err(DomainError::invalid("mid_rate", "could not be parsed")),
    }
}

/// A rate as the admin API shows it.
pub fn fx_rate_pb(entry: &FxRateEntry) -> Option<pb::FxRate> {
    let rate = entry.current?;
    Some(pb::FxRate {
        source_currency: entry.from.code().to_owned(),
        destination_currency: entry.to.code().to_owned(),
        mid_rate: rate.mid_rate.to_string(),
        spread_bps: rate.spread_bps,
        rate_used: crate::services::fx_rate::convert::rate_used_text(entry),
        updated_at_micros: entry.changed_at.micros(),
    })
}

/// The admin service over an engine.
#[derive(Clone, Debug)]
pub struct AdminService {
    engine: Engine,
    /// The server's read models, if given: `ListFxRates` answers from them
    /// instead of scanning the log, and rate changes wait until they show.
    read: Option<ReadModels>,
    /// The server's relay to NATS, if it runs one.
    relay: Option<RelayProbe>,
    /// The catalogue institutions are activated from.
    bank: Arc<dyn BankConnector>,
}

/// Reads the state of the server's relay to NATS now (the relay crate sits
/// above this one, so the server hands its view in as a function).
#[derive(Clone)]
pub struct RelayProbe(pub Arc<dyn Fn() -> pb::RelayStatus + Send + Sync>);

impl std::fmt::Debug for RelayProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayProbe")
    }
}

impl AdminService {
    pub fn server(engine: Engine) -> AdminServiceServer<Self> {
        AdminServiceServer::new(Self {
            engine,
            read: None,
            relay: None,
            bank: Arc::new(SandboxBank::new()),
        })
    }

    /// Like [`AdminService::server`], answering `ListFxRates` from `read`,
    /// reporting the relay's state with the projections', and activating
    /// institutions of `bank`'s catalogue (the server's own connector, so
    /// the admin socket accepts exactly what its customers can reach).
    pub fn server_with_read_models(
        engine: Engine,
        read: ReadModels,
        relay: Option<RelayProbe>,
        bank: Arc<dyn BankConnector>,
    ) -> AdminServiceServer<Self> {
        AdminServiceServer::new(Self {
            engine,
            read: Some(read),
            relay,
            bank,
        })
    }

    async fn set_institution(
        &self,
        request: pb::InstitutionActivationRequest,
        active: bool,
    ) -> Result<Response<pb::InstitutionActivation>, Status> {
        let project = parse::<ProjectId>(&request.project_id, "project_id")?;
        let institution = parse::<InstitutionId>(&request.institution_id, "institution_id")?;
        let position = set_institution_active(
            &self.engine,
            self.bank.as_ref(),
            project,
            institution.clone(),
            active,
        )
        .await
        .map_err(|error| institution_status(&error))?;
        self.wait_for(position).await;
        Ok(Response::new(pb::InstitutionActivation {
            project_id: project.to_string(),
            institution_id: institution.to_string(),
            active,
        }))
    }

    fn read_models(&self) -> Result<&ReadModels, Status> {
        self.read
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("this admin service serves no read models"))
    }

    /// Read-your-writes for the read models, when there are any.
    async fn wait_for(&self, position: u64) {
        if let Some(read) = &self.read {
            read.wait_for(position).await;
        }
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

    async fn set_fx_rate(
        &self,
        request: Request<pb::SetFxRateRequest>,
    ) -> Result<Response<pb::FxRate>, Status> {
        let request = request.into_inner();
        let quote = parse_quote(
            &request.source_currency,
            &request.destination_currency,
            &request.mid_rate,
            request.spread_bps,
        )
        .map_err(|error| domain_status(&error))?;
        let (entry, position) = set_fx_rate(&self.engine, quote)
            .await
            .map_err(|error| engine_status(&error))?;
        self.wait_for(position).await;
        fx_rate_pb(&entry)
            .map(Response::new)
            .ok_or_else(|| Status::internal("the rate just set is not configured"))
    }

    async fn activate_institution(
        &self,
        request: Request<pb::InstitutionActivationRequest>,
    ) -> Result<Response<pb::InstitutionActivation>, Status> {
        self.set_institution(request.into_inner(), true).await
    }

    async fn deactivate_institution(
        &self,
        request: Request<pb::InstitutionActivationRequest>,
    ) -> Result<Response<pb::InstitutionActivation>, Status> {
        self.set_institution(request.into_inner(), false).await
    }

    async fn remove_fx_rate(
        &self,
        request: Request<pb::RemoveFxRateRequest>,
    ) -> Result<Response<pb::RemoveFxRateResponse>, Status> {
        let request = request.into_inner();
        let from = parse::<Currency>(&request.source_currency, "source_currency")?;
        let to = parse::<Currency>(&request.destination_currency, "destination_currency")?;
        let position = remove_fx_rate(&self.engine, from, to)
            .await
            .map_err(|error| engine_status(&error))?;
        self.wait_for(position).await;
        Ok(Response::new(pb::RemoveFxRateResponse {}))
    }

    async fn list_fx_rates(
        &self,
        _request: Request<pb::ListFxRatesRequest>,
    ) -> Result<Response<pb::ListFxRatesResponse>, Status> {
        let entries = match &self.read {
            Some(read) => read.fx_rates().map_err(|error| model_status(&error))?,
            None => list_fx_rates(&self.engine)
                .await
                .map_err(|error| engine_status(&error))?,
        };
        Ok(Response::new(pb::ListFxRatesResponse {
            rates: entries.iter().filter_map(fx_rate_pb).collect(),
        }))
    }

    async fn get_projection_status(
        &self,
        _request: Request<pb::GetProjectionStatusRequest>,
    ) -> Result<Response<pb::GetProjectionStatusResponse>, Status> {
        let read = self.read_models()?;
        Ok(Response::new(pb::GetProjectionStatusResponse {
            projections: read
                .status()
                .map_err(|error| model_status(&error))?
                .iter()
                .map(projections::status_pb)
                .collect(),
            relay: self.relay.as_ref().map(|probe| (probe.0)()),
        }))
    }

    type RebuildProjectionsStream = projections::ProgressStream;

    async fn rebuild_projections(
        &self,
        request: Request<pb::RebuildProjectionsRequest>,
    ) -> Result<Response<Self::RebuildProjectionsStream>, Status> {
        let read = self.read_models()?;
        projections::rebuild(read, &request.into_inner().projections).map(Response::new)
    }

    async fn get_backup_point(
        &self,
        _request: Request<pb::GetBackupPointRequest>,
    ) -> Result<Response<pb::BackupPoint>, Status> {
        let point = backup_point(self.engine.store().as_ref())
            .await
            .map_err(|error| engine_status(&error.into()))?;
        Ok(Response::new(pb::BackupPoint {
            position: point.position,
            last_hash: point.last_hash.to_vec(),
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
