//! The gRPC facade of paycore: tonic services generated from `proto/`,
//! authentication, request parsing and the error model.
//!
//! Mounting it (what `paycore serve` does):
//!
//! ```text
//! let state = paycore_grpc::AppState::new(engine, read_models, side_storage);
//! let api = paycore_grpc::Api::build(state).await?;
//! tonic::transport::Server::builder()
//!     .add_routes(api.routes())
//!     .serve_with_shutdown(addr, shutdown)
//!     .await?;
//! ```
//!
//! The routes hold the paycore services ([`SERVICE_NAMES`]),
//! `grpc.health.v1.Health` (every service SERVING) and server reflection
//! (v1 and v1alpha, our own: see `reflection.rs`).

pub mod admin;
pub mod auth;
pub mod call_trace;
pub mod challenge;
pub mod codec;
pub mod connect;
pub mod convert;
pub mod edge;
pub mod errors;
pub mod idempotency;
mod link;
pub mod metrics;
pub mod queries;
mod reflection;
pub mod services;
pub mod sync_index;
pub mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use paycore_aggregation_sync::{Syncer, SyncerConfig, SyncerParts};
use paycore_bank_connector::{BankConnector, SandboxBank};
use paycore_engine::Engine;
use paycore_projections::ReadModels;
use paycore_sidestore::{Blobs, CardVault, FileStore, MemoryBlobs, VaultKey};
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use auth::{AuthError, Caller};
pub use services::{REQUEST_ID, methods};

/// Generated messages, servers and clients of `paycore.v1`.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    missing_docs,
    missing_debug_implementations
)]
pub mod pb {
    tonic::include_proto!("paycore.v1");
    include!(concat!(env!("OUT_DIR"), "/clients/paycore.v1.rs"));
}

pub use pb::account_service_client::AccountServiceClient;
pub use pb::aggregated_account_service_client::AggregatedAccountServiceClient;
pub use pb::aggregation_connection_service_client::AggregationConnectionServiceClient;
pub use pb::aggregation_import_service_client::AggregationImportServiceClient;
pub use pb::bank_account_service_client::BankAccountServiceClient;
pub use pb::bank_payin_reference_service_client::BankPayinReferenceServiceClient;
pub use pb::bank_payin_service_client::BankPayinServiceClient;
pub use pb::bank_payout_service_client::BankPayoutServiceClient;
pub use pb::card_payin_service_client::CardPayinServiceClient;
pub use pb::card_service_client::CardServiceClient;
pub use pb::card_token_service_client::CardTokenServiceClient;
pub use pb::customer_service_client::CustomerServiceClient;
pub use pb::event_service_client::EventServiceClient;
pub use pb::file_service_client::FileServiceClient;
pub use pb::fx_rate_service_client::FxRateServiceClient;
pub use pb::institution_service_client::InstitutionServiceClient;
pub use pb::project_service_client::ProjectServiceClient;
pub use pb::transaction_service_client::TransactionServiceClient;
pub use pb::transfer_service_client::TransferServiceClient;

/// The encoded `FileDescriptorSet` of `proto/paycore/v1` and its imports, as
/// served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/paycore_descriptor.bin"));

/// Where handlers (and the open banking syncer) get the time and new IDs
/// from: the domain never reads a clock; this is the one place the facade
/// does. The syncer's trait, so both always read the same clock.
pub use paycore_aggregation_sync::{Clock, SystemClock};

/// Data kept beside the event log: sealed card numbers and file contents,
/// and the secret card fingerprints are keyed with.
#[derive(Clone)]
pub struct SideStorage {
    pub vault: Arc<CardVault>,
    pub files: Arc<FileStore>,
    /// Where both live, and the open banking syncer seals the banks'
    /// sign-in steps and consents.
    pub blobs: Arc<dyn Blobs>,
    /// The deployment's vault key (the syncer's sealing key derives from it).
    pub key: VaultKey,
    /// The deployment's server secret: per-project fingerprint keys derive
    /// from it (`paycore_domain::card::fingerprint_key`), and idempotency
    /// keys are kept as digests keyed with it
    /// (`paycore_domain::kernel::idempotency`), each under its own context label.
    pub fingerprint_secret: [u8; 32],
}

impl fmt::Debug for SideStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SideStorage").finish_non_exhaustive()
    }
}

impl SideStorage {
    /// Card vault and file store on `blobs`, encrypting with `key`.
    pub fn new(key: VaultKey, blobs: Arc<dyn Blobs>) -> Self {
        let fingerprint_secret = key.fingerprint_secret();
        Self {
            vault: Arc::new(CardVault::new(key.clone(), blobs.clone())),
            files: Arc::new(FileStore::new(blobs.clone())),
            blobs,
            key,
            fingerprint_secret,
        }
    }

    /// In memory with a fresh random key, for tests.
    pub fn in_memory() -> Result<Self, paycore_sidestore::KeyError> {
        Ok(Self::new(VaultKey::generate()?, Arc::new(MemoryBlobs::new())))
    }

    /// The key card fingerprints of `project` are computed with: equal
    /// numbers match within a project, never across projects.
    pub fn fingerprint_key(&self, project: paycore_domain::ProjectId) -> [u8; 32] {
        paycore_domain::card::fingerprint_key(&self.fingerprint_secret, project)
    }
}

/// The largest file `FileService.UploadFile` accepts by default.
pub const DEFAULT_MAX_FILE_BYTES: usize = 10 * 1024 * 1024;

/// Where a 3-D Secure challenge is sent when no challenge page is served
/// (`paycore serve --pages-listen` serves one; without it,
/// `CompleteCardPayinAuthentication` plays the cardholder).
pub const DEFAULT_AUTHENTICATION_URL_BASE: &str = "https://3ds.sandbox.paycore.invalid/challenge";

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Engine,
    pub read: ReadModels,
    pub side: SideStorage,
    pub clock: Arc<dyn Clock>,
    /// How long a command's answer waits for the read models to apply it
    /// (read-your-writes). Past that it answers anyway and logs a warning.
    pub read_your_writes_timeout: Duration,
    /// The largest file an upload may carry.
    pub max_file_bytes: usize,
    /// A payin's `authentication_url` is this followed by `/<card payin id>`
    /// and its link token (`challenge::authentication_url`).
    pub authentication_url_base: String,
    /// The banks open banking reads from (the sandbox bank by default).
    pub bank: Arc<dyn BankConnector>,
    /// Where the hosted connection pages are (`<public URL>/connect`), when
    /// the pages' listener is on: a connection's `authentication_url` is
    /// this followed by `/<connection id>` and its link token.
    pub connect_url_base: Option<String>,
    /// Drives connections: sign-in steps, imports, the refresh schedule
    /// (rebuilt by [`AppState::with_clock`] and [`AppState::with_sync`], so
    /// it always uses this state's engine, bank, clock and read models).
    pub syncer: Syncer,
    syncer_config: SyncerConfig,
    /// The PostgreSQL read-model tables, when the payments queries are
    /// answered from them (`paycore serve --queries-from-tables`).
    pub tables: Option<Arc<queries::Tables>>,
}

impl AppState {
    /// State with the system clock, a 10 s read-your-writes wait and the
    /// default limits.
    pub fn new(engine: Engine, read: ReadModels, side: SideStorage) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let bank: Arc<dyn BankConnector> = Arc::new(SandboxBank::new());
        let syncer = syncer(&engine, &read, &side, &clock, &bank, SyncerConfig::default());
        Self {
            engine,
            read,
            side,
            clock,
            read_your_writes_timeout: Duration::from_secs(10),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            authentication_url_base: DEFAULT_AUTHENTICATION_URL_BASE.to_owned(),
            bank,
            connect_url_base: None,
            syncer,
            syncer_config: SyncerConfig::default(),
            tables: None,
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        let config = self.syncer_config.clone();
        self.with_sync(config)
    }

    /// How the syncer is configured.
    pub fn sync_config(&self) -> &SyncerConfig {
        &self.syncer_config
    }

    /// The syncer, rebuilt with `config` over this state's bank and clock.
    pub fn with_sync(mut self, config: SyncerConfig) -> Self {
        self.syncer = syncer(
            &self.engine,
            &self.read,
            &self.side,
            &self.clock,
            &self.bank,
            config.clone(),
        );
        self.syncer_config = config;
        self
    }
}

fn syncer(
    engine: &Engine,
    read: &ReadModels,
    side: &SideStorage,
    clock: &Arc<dyn Clock>,
    bank: &Arc<dyn BankConnector>,
    config: SyncerConfig,
) -> Syncer {
    Syncer::new(SyncerParts {
        engine: engine.clone(),
        bank: bank.clone(),
        clock: clock.clone(),
        index: Arc::new(sync_index::ReadModelsIndex(read.clone())),
        blobs: side.blobs.clone(),
        vault_key: side.key.clone(),
        config,
    })
}

/// Building the API failed (only the embedded descriptors can make it fail).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("reflection service: cannot decode the descriptors: {0}")]
    Reflection(#[from] prost::DecodeError),
}

type ProjectServer = pb::project_service_server::ProjectServiceServer<services::Handlers>;
type CustomerServer = pb::customer_service_server::CustomerServiceServer<services::Handlers>;
type AccountServer = pb::account_service_server::AccountServiceServer<services::Handlers>;
type TransactionServer = pb::transaction_service_server::TransactionServiceServer<services::Handlers>;
type TransferServer = pb::transfer_service_server::TransferServiceServer<services::Handlers>;
type BankAccountServer = pb::bank_account_service_server::BankAccountServiceServer<services::Handlers>;
type BankPayoutServer = pb::bank_payout_service_server::BankPayoutServiceServer<services::Handlers>;
type BankPayinReferenceServer =
    pb::bank_payin_reference_service_server::BankPayinReferenceServiceServer<services::Handlers>;
type BankPayinServer = pb::bank_payin_service_server::BankPayinServiceServer<services::Handlers>;
type FileServer = pb::file_service_server::FileServiceServer<services::Handlers>;
type FxRateServer = pb::fx_rate_service_server::FxRateServiceServer<services::Handlers>;
type InstitutionServer = pb::institution_service_server::InstitutionServiceServer<services::Handlers>;
type AggregationConnectionServer =
    pb::aggregation_connection_service_server::AggregationConnectionServiceServer<services::Handlers>;
type AggregationImportServer =
    pb::aggregation_import_service_server::AggregationImportServiceServer<services::Handlers>;
type AggregatedAccountServer =
    pb::aggregated_account_service_server::AggregatedAccountServiceServer<services::Handlers>;
type CardTokenServer = pb::card_token_service_server::CardTokenServiceServer<services::Handlers>;
type CardServer = pb::card_service_server::CardServiceServer<services::Handlers>;
type CardPayinServer = pb::card_payin_service_server::CardPayinServiceServer<services::Handlers>;
type EventServer = pb::event_service_server::EventServiceServer<services::Handlers>;

/// Fully-qualified names of the paycore services. A slice, so adding a
/// service is one line.
pub const SERVICE_NAMES: &[&str] = &[
    ProjectServer::NAME,
    CustomerServer::NAME,
    AccountServer::NAME,
    TransactionServer::NAME,
    TransferServer::NAME,
    BankAccountServer::NAME,
    BankPayoutServer::NAME,
    BankPayinReferenceServer::NAME,
    BankPayinServer::NAME,
    FileServer::NAME,
    FxRateServer::NAME,
    InstitutionServer::NAME,
    AggregationConnectionServer::NAME,
    AggregationImportServer::NAME,
    AggregatedAccountServer::NAME,
    CardTokenServer::NAME,
    CardServer::NAME,
    CardPayinServer::NAME,
    EventServer::NAME,
];

/// The assembled API: routes to serve and the health reporter behind them.
#[derive(Clone)]
pub struct Api {
    routes: Routes,
    health: HealthReporter,
    drain: services::Drain,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

impl Api {
    /// Builds every service, health (all SERVING) and reflection.
    pub async fn build(state: AppState) -> Result<Self, BuildError> {
        let handlers = services::Handlers::new(state);
        let drain = handlers.drain();
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in SERVICE_NAMES {
            health.set_service_status(*name, ServingStatus::Serving).await;
        }
        let reflection = reflection::Reflection::new(&[
            FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ])?;
        let routes = Routes::new(ProjectServer::new(handlers.clone()))
            .add_service(CustomerServer::new(handlers.clone()))
            .add_service(AccountServer::new(handlers.clone()))
            .add_service(TransactionServer::new(handlers.clone()))
            .add_service(TransferServer::new(handlers.clone()))
            .add_service(CardTokenServer::new(handlers.clone()))
            .add_service(CardServer::new(handlers.clone()))
            .add_service(CardPayinServer::new(handlers.clone()))
            .add_service(BankAccountServer::new(handlers.clone()))
            .add_service(BankPayoutServer::new(handlers.clone()))
            .add_service(BankPayinReferenceServer::new(handlers.clone()))
            .add_service(BankPayinServer::new(handlers.clone()))
            .add_service(FileServer::new(handlers.clone()))
            .add_service(EventServer::new(handlers.clone()))
            .add_service(InstitutionServer::new(handlers.clone()))
            .add_service(AggregationConnectionServer::new(handlers.clone()))
            .add_service(AggregationImportServer::new(handlers.clone()))
            .add_service(AggregatedAccountServer::new(handlers.clone()))
            .add_service(FxRateServer::new(handlers))
            .add_service(health_service)
            .add_service(reflection.v1())
            .add_service(reflection.v1alpha());
        Ok(Self {
            routes,
            health,
            drain,
        })
    }

    /// The routes to hand to `tonic::transport::Server::builder().add_routes(..)`.
    pub fn routes(&self) -> Routes {
        self.routes.clone()
    }

    /// The health reporter, e.g. to report NOT_SERVING while draining.
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// Marks every service (and the server as a whole, `""`) NOT_SERVING, for
    /// a graceful shutdown, and ends the open event subscriptions (with
    /// UNAVAILABLE): they never end by themselves, and a graceful shutdown
    /// waits for every call in flight.
    pub async fn set_not_serving(&self) {
        self.drain.start();
        for name in SERVICE_NAMES.iter().copied().chain([""]) {
            self.health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    }
}

/// Shorthand for `Api::build(state).await?.routes()`.
pub async fn routes(state: AppState) -> Result<Routes, BuildError> {
    Ok(Api::build(state).await?.routes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn descriptor_set_names_every_service_and_hashed_method() {
        let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
        let mut methods_found = Vec::new();
        for file in set.file.iter().filter(|f| f.package() == "paycore.v1") {
            for service in &file.service {
                for method in &service.method {
                    methods_found.push(format!("/paycore.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
        for name in SERVICE_NAMES {
            assert!(
                methods_found.iter().any(|m| m.starts_with(&format!("/{name}/"))),
                "{name}"
            );
        }
        // Counted from the descriptor rather than hard-coded, so adding a
        // method needs no edit here: every method belongs to a served
        // service, and none is listed twice.
        for method in &methods_found {
            assert!(
                SERVICE_NAMES
                    .iter()
                    .any(|name| method.starts_with(&format!("/{name}/"))),
                "{method} belongs to a service missing from SERVICE_NAMES"
            );
        }
        let distinct: std::collections::BTreeSet<&String> = methods_found.iter().collect();
        assert_eq!(distinct.len(), methods_found.len());
        // Every method name hashed with an idempotency key exists.
        for method in [
            methods::CREATE_ACCOUNT,
            methods::CREATE_CUSTOMER,
            methods::CREATE_TRANSFER,
            methods::CREATE_TRANSFERS,
            methods::POST_PENDING_TRANSFER,
            methods::VOID_PENDING_TRANSFER,
            methods::CREATE_BANK_ACCOUNT,
            methods::CREATE_BANK_PAYOUT,
            methods::COMPLETE_BANK_PAYOUT,
            methods::FAIL_BANK_PAYOUT,
            methods::RETURN_BANK_PAYOUT,
            methods::CREATE_BANK_PAYIN_REFERENCE,
            methods::SIMULATE_BANK_PAYIN,
            methods::UPLOAD_FILE,
            methods::CREATE_CARD_TOKEN,
            methods::CREATE_CARD,
            methods::CREATE_CARD_PAYIN,
            methods::COMPLETE_CARD_PAYIN_AUTHENTICATION,
            methods::SETTLE_CARD_PAYIN,
            methods::CREATE_CARD_PAYIN_REFUND,
            methods::COMPLETE_CARD_PAYIN_REFUND,
            methods::FAIL_CARD_PAYIN_REFUND,
        ] {
            assert!(methods_found.iter().any(|m| m == method), "{method}");
        }
        // Imports are included, so reflection can resolve every type.
        assert!(
            set.file
                .iter()
                .any(|f| f.name() == "google/protobuf/timestamp.proto")
        );
    }

    #[test]
    fn system_clock_is_in_microseconds() {
        let now = SystemClock.now().micros();
        assert!(now > 1_700_000_000_000_000 && now < 10_000_000_000_000_000);
        assert_ne!(SystemClock.new_uuid(), SystemClock.new_uuid());
    }
}
