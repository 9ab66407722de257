//! Opening the data directory and running the server.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use paycore_engine::{Engine, EngineConfig};
use paycore_grpc::tls::TlsIncoming;
use paycore_projections::{ModelStorage, ReadModels};
use paycore_projections_postgres::{TablesWriter, WriterOptions};
use paycore_relay::{Election, Relay, RelayOptions};
use paycore_store::log::CoveredFrames;
use paycore_store::log::ScrubOptions;
use paycore_store::{AggregateSnapshots, DirSnapshots, EventStore, LogOptions, LogStore, StoreError};
use paycore_store_postgres::{PgOptions, PgStore};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::TcpIncoming;

use paycore_grpc::admin;

use crate::expiry::TransferExpiry;

/// Exit code when the engine stopped for good: the store failed in a way
/// that makes continuing unsafe, or a bug panicked its decider task.
const EXIT_ENGINE_FATAL: i32 = 70;

/// How long a graceful stop waits for requests in flight (and streams whose
/// clients stopped reading) before closing their connections.
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Where the read models live inside the data directory (`models.redb`).
pub const PROJECTIONS_DIR: &str = "projections";
/// The single read-model snapshot of earlier versions, replaced by one
/// snapshot per projection in [`PROJECTIONS_DIR`].
const LEGACY_SNAPSHOT: &str = "readmodels.snapshot";

/// `--state-cache-bytes` unless given: the engine's default
/// ([`paycore_engine::DEFAULT_STATE_CACHE_BYTES`], checked by a test).
pub const DEFAULT_STATE_CACHE_BYTES: &str = "256M";

/// Which event store to run on.
#[derive(Clone, Debug)]
pub enum StoreChoice {
    /// The embedded log in `<data dir>/log` (the default).
    Embedded,
    /// A PostgreSQL database shared by several servers.
    Postgres { url: String, schema: String },
}

impl StoreChoice {
    /// `None` or an empty value: the embedded log; `postgres://…` or
    /// `postgresql://…`: PostgreSQL.
    pub fn parse(store: Option<&str>, schema: &str) -> anyhow::Result<Self> {
        match store.map(str::trim).filter(|url| !url.is_empty()) {
            None => Ok(Self::Embedded),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Self::Postgres {
                    url: url.to_owned(),
                    schema: schema.to_owned(),
                })
            }
            Some(other) => anyhow::bail!(
                "unsupported --store {other:?}: leave it out for the embedded log, or give a postgres:// URL"
            ),
        }
    }

    fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }
}

struct Opened {
    /// Set for the embedded log, which must be closed (flush, unlock).
    log: Option<Arc<LogStore>>,
    store: Arc<dyn EventStore>,
    engine: Engine,
}

impl Opened {
    fn close(&self) -> anyhow::Result<()> {
        if let Some(log) = &self.log {
            log.close().context("closing the event log")?;
        }
        Ok(())
    }
}

/// The data directory is held by a running server.
#[derive(Debug, thiserror::Error)]
#[error("the data directory {0} is in use by another paycore process")]
pub struct InUse(std::path::PathBuf);

/// The store of a data directory, before an engine runs on it.
struct Backend {
    /// The embedded log, to close at the end; `None` on PostgreSQL.
    log: Option<Arc<LogStore>>,
    store: Arc<dyn EventStore>,
    /// Snapshots of aggregate state are a cache: if they cannot be opened
    /// the server runs without them (loads fold whole streams).
    snapshots: Option<Arc<dyn AggregateSnapshots>>,
}

async fn open_backend(
    data_dir: &Path,
    choice: &StoreChoice,
    covered_frames: CoveredFrames,
) -> anyhow::Result<Backend> {
    match choice {
        StoreChoice::Embedded => {
            let log_dir = data_dir.join("log");
            let log_options = LogOptions {
                covered_frames,
                ..LogOptions::default()
            };
            let (log, _report) = match LogStore::open(&log_dir, log_options) {
                Ok(opened) => opened,
                Err(StoreError::Locked(dir)) => return Err(InUse(dir).into()),
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("opening the event log in {}", log_dir.display()));
                }
            };
            // The store logs what it recovered (events, truncated tail) itself.
            let log = Arc::new(log);
            let snapshots_dir = data_dir.join("snapshots");
            let snapshots = DirSnapshots::open(&snapshots_dir)
                .inspect_err(|error| {
                    tracing::warn!(%error, dir = %snapshots_dir.display(), "aggregate snapshots unavailable")
                })
                .ok()
                .map(|snapshots| Arc::new(snapshots) as Arc<dyn AggregateSnapshots>);
            Ok(Backend {
                log: Some(log.clone()),
                store: log,
                snapshots,
            })
        }
        StoreChoice::Postgres { url, schema } => {
            let options = PgOptions::with_schema(schema.clone());
            let store = PgStore::connect(url, options)
                .await
                .with_context(|| format!("connecting to the PostgreSQL event store (schema {schema})"))?;
            let snapshots: Arc<dyn AggregateSnapshots> = Arc::new(store.snapshots());
            Ok(Backend {
                log: None,
                store: Arc::new(store),
                snapshots: Some(snapshots),
            })
        }
    }
}

async fn open(
    data_dir: &Path,
    choice: &StoreChoice,
    state_cache_bytes: u64,
    covered_frames: CoveredFrames,
) -> anyhow::Result<Opened> {
    let Backend {
        log,
        store,
        snapshots,
    } = open_backend(data_dir, choice, covered_frames).await?;
    let config = EngineConfig {
        follow_other_writers: choice.is_shared(),
        snapshots,
        state_cache_bytes,
        ..EngineConfig::default()
    };
    let engine = Engine::start(store.clone(), config);
    Ok(Opened { log, store, engine })
}

/// Runs `work` with an engine on the store, for the admin commands.
/// `Ok(None)` when a running server holds the embedded log: then the caller
/// goes through the server's admin socket. A shared store (PostgreSQL) is
/// always written directly; running servers see the change in the log.
pub async fn with_engine<F, Fut, T>(
    data_dir: &Path,
    choice: &StoreChoice,
    work: F,
) -> anyhow::Result<Option<T>>
where
    F: FnOnce(Engine) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    // One command's engine: the default cache is more than it will use. It
    // verifies the whole log before it runs, as it always did: a one-off
    // command has no health check to report damage through.
    let opened = match open(
        data_dir,
        choice,
        paycore_engine::DEFAULT_STATE_CACHE_BYTES,
        CoveredFrames::VerifyBeforeOpen,
    )
    .await
    {
        Ok(opened) => opened,
        Err(error) if error.is::<InUse>() => return Ok(None),
        Err(error) => return Err(error),
    };
    let result = work(opened.engine.clone()).await;
    opened.close()?;
    result.map(Some)
}

/// Creates or upgrades the PostgreSQL schema.
pub async fn migrate(choice: &StoreChoice) -> anyhow::Result<()> {
    let StoreChoice::Postgres { url, schema } = choice else {
        anyhow::bail!("`db migrate` is for a PostgreSQL store: give --store postgres://… (or PAYCORE_STORE)");
    };
    let report = paycore_store_postgres::migrate(url, schema).await?;
    if report.applied.is_empty() {
        println!(
            "schema {} is up to date (version {})",
            report.schema, report.to_version
        );
    } else {
        let applied: Vec<String> = report.applied.iter().map(ToString::to_string).collect();
        println!(
            "schema {} migrated from version {} to {} (applied {})",
            report.schema,
            report.from_version,
            report.to_version,
            applied.join(", ")
        );
    }
    Ok(())
}

/// Holds `<data dir>/server.lock` for the server's life, so two servers
/// never share a data directory (its admin socket and read-model snapshot).
pub(crate) fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("server.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| InUse(data_dir.to_owned()))?;
    Ok(file)
}

/// Where sealed card numbers and file contents live: beside the embedded
/// log in the data directory, or in the PostgreSQL schema every server
/// shares. The key comes from `vault_key_file`; with the embedded log and no
/// key file, `<data dir>/vault.key` is created on first start.
async fn side_storage(
    data_dir: &Path,
    choice: &StoreChoice,
    vault_key_file: Option<&Path>,
) -> anyhow::Result<paycore_grpc::SideStorage> {
    use paycore_sidestore::{Blobs, DirBlobs, PgBlobs, VaultKey};
    let key = match (vault_key_file, choice) {
        (Some(path), _) => {
            VaultKey::load(path).with_context(|| format!("reading the vault key {}", path.display()))?
        }
        (None, StoreChoice::Embedded) => {
            let path = data_dir.join("vault.key");
            VaultKey::load_or_create(&path)
                .with_context(|| format!("opening the vault key {}", path.display()))?
        }
        (None, StoreChoice::Postgres { .. }) => anyhow::bail!(
            "with a PostgreSQL store every server must use the same card vault key: \
             give --vault-key-file (or PAYCORE_VAULT_KEY_FILE), a file holding 64 hex characters"
        ),
    };
    let blobs: Arc<dyn Blobs> = match choice {
        StoreChoice::Embedded => {
            let root = data_dir.join("sidestore");
            Arc::new(DirBlobs::open(root.clone()).with_context(|| format!("opening {}", root.display()))?)
        }
        StoreChoice::Postgres { url, schema } => Arc::new(
            PgBlobs::connect(url, schema)
                .await
                .with_context(|| format!("connecting the side storage to PostgreSQL (schema {schema})"))?,
        ),
    };
    Ok(paycore_grpc::SideStorage::new(key, blobs))
}

/// The read-model tables the payments queries are answered from, with
/// `--queries-from-tables` on a PostgreSQL store.
async fn tables_for_queries(
    choice: &StoreChoice,
    queries_from_tables: bool,
) -> anyhow::Result<Option<Arc<paycore_grpc::queries::Tables>>> {
    if !queries_from_tables {
        return Ok(None);
    }
    let StoreChoice::Postgres { url, schema } = choice else {
        anyhow::bail!(
            "--queries-from-tables needs a PostgreSQL store (--store postgres://…): \
             the embedded log keeps its read models in the data directory only"
        );
    };
    let queries = paycore_projections_postgres::TableQueries::connect(url, schema)
        .await
        .with_context(|| format!("connecting the queries to the read-model tables (schema {schema})"))?;
    let name = format!("{} pid {}", host_name(), std::process::id());
    let progress = paycore_projections_postgres::TablesProgress::spawn(url, schema, &name)
        .map_err(anyhow::Error::msg)
        .context("following the read-model tables' checkpoints")?;
    tracing::info!(%schema, "answering the payments queries from the read-model tables");
    Ok(Some(Arc::new(paycore_grpc::queries::Tables {
        queries,
        progress,
    })))
}

/// What `paycore serve` is configured with beyond the store.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub vault_key_file: Option<std::path::PathBuf>,
    pub max_file_bytes: usize,
    pub authentication_url_base: String,
    /// redb's page cache for the read models.
    pub read_model_cache_bytes: usize,
    /// The background scrub of the embedded log; `None`: off.
    pub scrub: Option<ScrubOptions>,
    /// When the embedded log verifies the frames under its index: before
    /// serving, or beside it (the default, so a start does not read the
    /// whole history).
    pub covered_frames: CoveredFrames,
    /// [`EngineConfig::state_cache_bytes`].
    pub state_cache_bytes: u64,
    /// On PostgreSQL: take part in writing the read-model tables.
    pub read_model_tables: bool,
    /// On PostgreSQL: answer the payments queries from the tables.
    pub queries_from_tables: bool,
    /// Where to serve Prometheus metrics; `None`: off.
    pub metrics_listen: Option<SocketAddr>,
    /// Where to serve the hosted pages (the 3-D Secure challenge); `None`: off.
    pub pages_listen: Option<SocketAddr>,
    /// How browsers reach the pages' listener (`https://pay.example.com`),
    /// when not at its bound address (behind a proxy).
    pub pages_public_url: Option<String>,
    /// TLS on the gRPC port; `None`: plaintext.
    pub tls: Option<paycore_grpc::tls::TlsFiles>,
    /// Publish the log to NATS JetStream (`--relay-nats`).
    pub relay: Option<RelayOptions>,
    /// The banks of `--berlin-group-banks`; `None`: the sandbox bank.
    pub bank: Option<Arc<dyn paycore_bank_connector::BankConnector>>,
}

pub async fn serve(data_dir: &Path, choice: &StoreChoice, options: ServeOptions) -> anyhow::Result<()> {
    let listen = options.listen;
    // Installed before anything else, so a signal at any moment after start
    // is a graceful stop rather than the default action (termination).
    let stop_requested = shutdown_signal()?;
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let _data_dir_lock = lock_data_dir(data_dir)?;
    // Before anything records, so the start's appends are counted too.
    let metrics = options
        .metrics_listen
        .map(|_| crate::metrics::install())
        .transpose()?;
    remove_legacy_snapshot(data_dir);
    // The model store opens while the log does: after a crash both may have
    // recovery work to do.
    let storage =
        ModelStorage::at(data_dir.join(PROJECTIONS_DIR)).with_cache_bytes(options.read_model_cache_bytes);
    let preloaded = ReadModels::preload(storage);
    let opened = open(
        data_dir,
        choice,
        options.state_cache_bytes,
        options.covered_frames,
    )
    .await?;
    let (store, engine) = (opened.store.clone(), opened.engine.clone());
    let read = ReadModels::start_preloaded(store.clone(), preloaded)
        .await
        .context("starting the read models")?;
    if *store.committed().borrow() == 0 {
        bootstrap(&engine).await?;
    }

    let side = side_storage(data_dir, choice, options.vault_key_file.as_deref()).await?;
    let mut state = paycore_grpc::AppState::new(engine.clone(), read.clone(), side);
    state.tables = tables_for_queries(choice, options.queries_from_tables).await?;
    state.max_file_bytes = options.max_file_bytes;
    state.authentication_url_base = options.authentication_url_base;
    let mut sync_config = paycore_aggregation_sync::SyncerConfig::default();
    let pages = match options.pages_listen {
        Some(listen) => {
            let listener = paycore_pages::bind(listen)
                .await
                .with_context(|| format!("listening for the hosted pages on {listen}"))?;
            let public = match &options.pages_public_url {
                Some(url) => url.trim_end_matches('/').to_owned(),
                None => format!("http://{}", listener.local_addr()?),
            };
            // An explicit --authentication-url-base wins (a proxy of its own).
            if state.authentication_url_base == paycore_grpc::DEFAULT_AUTHENTICATION_URL_BASE {
                state.authentication_url_base = format!("{public}{}", paycore_pages::CHALLENGE_PATH);
            }
            state.connect_url_base = Some(format!("{public}{}", paycore_pages::CONNECT_PATH));
            // The sandbox's web authentication user is sent to the page here
            // (real banks send theirs to their own pages).
            if options.bank.is_none() {
                state.bank = Arc::new(paycore_bank_connector::SandboxBank::with_authorize_base(format!(
                    "{public}{}",
                    paycore_pages::SANDBOX_BANK_PATH
                )));
            }
            sync_config.bank_redirect_uri = format!("{public}{}", paycore_pages::CALLBACK_PATH);
            Some((listener, public))
        }
        None => None,
    };
    // Before `with_sync`, which builds the syncer over the state's bank.
    if let Some(bank) = options.bank.clone() {
        state.bank = bank;
    }
    let state = state.with_sync(sync_config);
    let bank = state.bank.clone();
    let pages = pages.map(|(listener, public)| (listener, public, state.clone()));
    let sync_election = match choice {
        StoreChoice::Embedded => Election::Alone,
        StoreChoice::Postgres { url, schema } => Election::Postgres {
            url: url.clone(),
            schema: schema.clone(),
            name: format!("{} pid {}", host_name(), std::process::id()),
        },
    };
    let expiry = TransferExpiry::new(engine.clone(), read.clone(), state.clock.clone());
    let expiry = tokio::spawn(crate::expiry::run(expiry, sync_election.clone()));
    let sync = tokio::spawn(crate::sync::run(state.syncer.clone(), sync_election));
    let api = paycore_grpc::Api::build(state).await?;
    if let Some(log) = &opened.log {
        report_damage_on_health(log, api.clone());
        if let Some(scrub) = options.scrub {
            log.start_scrub(scrub).context("starting the log scrub")?;
        }
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let address = listener.local_addr()?;
    // How the other servers of a shared store see this one.
    let server_name = format!("{} pid {} {address}", host_name(), std::process::id());
    let tables = match choice {
        StoreChoice::Postgres { url, schema } if options.read_model_tables => {
            let mut writer = WriterOptions::new(url, schema, server_name.clone());
            if options.queries_from_tables {
                // Every command's answer waits for the tables: write each
                // batch as soon as the log has it, rather than pacing
                // batches for a cheaper database.
                writer.pace = std::time::Duration::ZERO;
            }
            Some(TablesWriter::spawn(store.clone(), writer))
        }
        _ => None,
    };
    let incoming = match &options.tls {
        None => Incoming::Plain(listener),
        Some(files) => {
            let tls = TlsIncoming::new(files.clone()).context("loading the TLS certificate and key")?;
            reload_tls_on_hangup(tls.clone())?;
            Incoming::Tls(tls.accept(listener))
        }
    };
    let relay = options.relay.map(|relay_options| {
        let election = match choice {
            StoreChoice::Embedded => Election::Alone,
            StoreChoice::Postgres { url, schema } => Election::Postgres {
                url: url.clone(),
                schema: schema.clone(),
                name: server_name.clone(),
            },
        };
        tracing::info!(
            nats = relay_options.servers_display(),
            stream = %relay_options.stream,
            subject_prefix = %relay_options.subject_prefix,
            "relaying events to NATS JetStream"
        );
        Relay::spawn(store.clone(), relay_options, election)
    });
    tracing::info!(
        %address,
        tls = options.tls.is_some(),
        client_certificates = options.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some()),
        data_dir = %data_dir.display(),
        state_cache_bytes = options.state_cache_bytes,
        "paycore serving gRPC"
    );
    if let (Some(handle), Some(listen)) = (metrics, options.metrics_listen) {
        let metrics_address = crate::metrics::serve(listen, handle.clone()).await?;
        let relay_lag = relay.as_ref().map(|relay| {
            let (status, head) = (relay.status(), store.committed());
            Box::new(move || status.borrow().lag(*head.borrow())) as crate::metrics::RelayLag
        });
        crate::metrics::sample(handle, engine.clone(), read.clone(), relay_lag);
        tracing::info!(address = %metrics_address, "serving Prometheus metrics on /metrics");
        println!("paycore metrics on http://{metrics_address}/metrics");
    }
    // Tests and scripts read the bound address from stdout.
    println!("paycore listening on {address}");

    let mut fatal = engine.fatal();
    let draining = api.clone();
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    if let Some((listener, public, state)) = pages {
        let address = listener.local_addr()?;
        let router = paycore_pages::router(
            paycore_grpc::challenge::Challenges::new(state.clone()),
            paycore_grpc::connect::Connections::new(state),
        );
        let mut stop = stopping.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            if let Err(error) = paycore_pages::serve(listener, router, stopped).await {
                tracing::error!(%error, "the hosted pages' listener failed");
            }
        });
        tracing::info!(%address, %public, "serving the hosted pages (3-D Secure challenge, bank connections)");
        println!("paycore pages on http://{address} (links use {public})");
    }
    let shutdown = async move {
        tokio::select! {
            () = stop_requested => tracing::info!("shutting down: finishing requests in flight"),
            _ = fatal.wait_for(Option::is_some) => {}
        }
        let _ = stopping_tx.send(true);
        // Load balancers watching grpc.health.v1 stop sending new work.
        draining.set_not_serving().await;
    };
    // A client that stopped reading its stream could hold the stop forever.
    let drain_deadline = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(DRAIN_DEADLINE).await;
    };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay_probe = relay.as_ref().map(|relay| relay_probe(relay, &store));
    let admin = serve_admin(
        data_dir,
        engine.clone(),
        read.clone(),
        bank,
        relay_probe,
        async move {
            let _ = admin_stopped.await;
        },
    )?;
    let routes = paycore_grpc::edge::server().add_routes(api.routes());
    let serving: std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
        match incoming {
            // Replies are small and latency-bound: no Nagle delay.
            Incoming::Plain(listener) => Box::pin(routes.serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )),
            Incoming::Tls(accepted) => Box::pin(routes.serve_with_incoming_shutdown(accepted, shutdown)),
        };
    let served = tokio::select! {
        served = serving => served,
        () = drain_deadline => {
            tracing::warn!(
                seconds = DRAIN_DEADLINE.as_secs(),
                "requests still in flight after the drain deadline; closing their connections"
            );
            Ok(())
        }
    };
    let _ = stop_admin.send(());
    if let Err(error) = admin.await {
        tracing::warn!(%error, "admin socket task failed");
    }
    let _ = std::fs::remove_file(data_dir.join(admin::SOCKET_NAME));
    served.context("serving gRPC")?;

    if let Some(reason) = engine.fatal().borrow().clone() {
        tracing::error!(%reason, "the engine stopped; exiting without writing anything else");
        std::process::exit(EXIT_ENGINE_FATAL);
    }
    let cache = engine.state_cache_usage();
    tracing::info!(
        entries = cache.entries,
        bytes = cache.bytes,
        budget = cache.budget,
        "engine state cache at stop"
    );
    // Imports in flight stop here; the next start resumes them.
    sync.abort();
    // A pending transfer due meanwhile is expired by the next start.
    expiry.abort();
    if let Some(tables) = tables {
        tables.stop().await;
    }
    if let Some(relay) = relay {
        if let Some(lag) = relay.lag() {
            tracing::info!(
                lag_events = lag,
                "relay stopped; the next start resumes from the stream's last message"
            );
        }
        relay.stop().await;
    }
    let last = store.committed().borrow().saturating_sub(1);
    read.wait_for(last).await;
    if let Err(error) = read.persist().await {
        tracing::warn!(%error, "could not save the read models; the next start rebuilds them from the log");
    }
    opened.close()?;
    tracing::info!("stopped");
    Ok(())
}

/// Where the gRPC connections come from.
enum Incoming {
    Plain(tokio::net::TcpListener),
    Tls(paycore_grpc::tls::Accepted),
}

/// SIGHUP reads the TLS certificate, key and client CA again; the next
/// connections use them. Files that do not load leave the old ones.
fn reload_tls_on_hangup(tls: TlsIncoming) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded; new connections use it"),
                Err(error) => {
                    tracing::error!(%error, "TLS certificate not reloaded; still serving the previous one")
                }
            }
        }
    });
    Ok(())
}

/// This machine's name, for telling servers apart in the database.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Damage found in the log after the start (by a read or by the scrub; the
/// store logs file and offset at error level) turns every service NOT_SERVING
/// on `grpc.health.v1`, so load balancers and operators see it. Requests
/// that do not need the damaged frame still answer; those that do answer
/// DATA_LOSS. Restoring the segment needs a restart, and a start refuses a
/// damaged log.
fn report_damage_on_health(log: &LogStore, api: paycore_grpc::Api) {
    let mut damage = log.damage();
    tokio::spawn(async move {
        let found = match damage.wait_for(Option::is_some).await {
            Ok(found) => found.clone(),
            Err(_) => return,
        };
        if let Some(found) = found {
            tracing::error!(
                file = %found.file.display(),
                offset = found.offset,
                position = found.position,
                reason = %found.reason,
                "the event log is damaged: health is NOT_SERVING until the segment is restored \
                 from a backup and the server restarted"
            );
        }
        for name in paycore_grpc::SERVICE_NAMES.iter().copied().chain([""]) {
            api.health()
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
    });
}

/// A byte count with an optional binary suffix: `1048576`, `512K`, `16M`,
/// `1G` (also `KiB`, `MiB`, `GiB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count (e.g. 16M, 512K, 1048576)"))?;
    let shift = match suffix.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        other => return Err(format!("unknown unit {other:?} (use K, M or G)")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A duration: a number and a unit, `s`, `m`, `h` or `d` (e.g. `30s`, `1h`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 15m, 1h, 1d)"))?;
    let seconds = match unit.trim() {
        "ms" => return Ok(std::time::Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "" => return Err(format!("{text:?} needs a unit: s, m, h or d")),
        other => return Err(format!("unknown unit {other:?} (use s, m, h or d)")),
    };
    number
        .checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Earlier versions kept every read model in one snapshot; it is never
/// read now (the projections rebuild from the log once), so it only wastes space.
fn remove_legacy_snapshot(data_dir: &Path) {
    let legacy = data_dir.join(LEGACY_SNAPSHOT);
    match std::fs::remove_file(&legacy) {
        Ok(()) => {
            tracing::info!(path = %legacy.display(), "removed the read-model snapshot of an earlier version")
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %legacy.display(), %error, "could not remove an old read-model snapshot")
        }
    }
}

/// Serves the admin service on `<data_dir>/admin.sock`, readable and
/// writable by the owner only: access to the data directory is the
/// permission to administer.
/// What `GetProjectionStatus` says of the relay: its state and lag, now.
fn relay_probe(relay: &Relay, store: &Arc<dyn EventStore>) -> admin::RelayProbe {
    use paycore_relay::RelayState;
    let (status, head, stream) = (relay.status(), store.committed(), relay.stream().to_owned());
    admin::RelayProbe(Arc::new(move || {
        let status = status.borrow().clone();
        let head = *head.borrow();
        let (state, error) = match &status.state {
            RelayState::Starting => ("starting", String::new()),
            RelayState::Standby => ("standby", String::new()),
            RelayState::Publishing => ("publishing", String::new()),
            RelayState::Retrying { error } => ("retrying", error.clone()),
        };
        paycore_grpc::admin::pb::RelayStatus {
            stream: stream.clone(),
            state: state.to_owned(),
            error,
            published_before: status.published_before,
            head,
            lag: status.lag(head),
        }
    }))
}

fn serve_admin(
    data_dir: &Path,
    engine: Engine,
    read: ReadModels,
    bank: Arc<dyn paycore_bank_connector::BankConnector>,
    relay: Option<admin::RelayProbe>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>> {
    use std::os::unix::fs::PermissionsExt;
    let socket = data_dir.join(admin::SOCKET_NAME);
    // We hold the log's lock, so a socket file left here is a dead server's.
    match std::fs::remove_file(&socket) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("removing stale {}", socket.display()));
        }
        _ => {}
    }
    let listener =
        tokio::net::UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", socket.display()))?;
    Ok(tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(admin::AdminService::server_with_read_models(
                engine, read, relay, bank,
            ))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown),
    ))
}

/// First start on an empty store: a sandbox project and a key to use it,
/// unless another server sharing the store made them at the same moment.
async fn bootstrap(engine: &Engine) -> anyhow::Result<()> {
    match admin::bootstrap_deployment(engine).await? {
        admin::Bootstrap::Created(project, key) => {
            println!("created sandbox project {project}");
            println!("secret API key (shown only once, keep it safe): {key}");
        }
        admin::Bootstrap::ByAnotherServer(project) => {
            tracing::info!(%project, "another server bootstrapped this store at the same moment");
            println!(
                "another server started on this empty store at the same moment and created sandbox \
                 project {project}; its key was printed by that server"
            );
        }
    }
    println!("more projects and keys: `paycore projects create --help`, `paycore keys create --help`");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are registered when
/// this is called, not when the future is first polled.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn byte_counts_and_durations() {
        assert_eq!(parse_bytes("16M"), Ok(16 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert!(parse_bytes("16 furlongs").is_err());
        assert!(parse_bytes("M").is_err());
        assert_eq!(
            parse_bytes(DEFAULT_STATE_CACHE_BYTES),
            Ok(paycore_engine::DEFAULT_STATE_CACHE_BYTES)
        );
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1y").is_err());
    }
}
