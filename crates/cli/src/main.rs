//! `paycore`: the server and its administration commands.

mod audit;
mod backup;
mod balance;
mod banks;
mod expiry;
mod fx;
mod institutions;
mod metrics;
mod projections;
mod serve;
mod sync;

// The server allocates many small short-lived objects per request (HTTP/2
// frames, protobuf messages, events); mimalloc handles that pattern with
// far less contention and fragmentation than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use paycore_domain::history::AsOf;
use paycore_domain::project::api_key::KeyKind;
use paycore_domain::{AccountId, ApiKeyId, Environment, ProjectId, Timestamp};
use paycore_grpc::admin;

/// paycore: an event-sourced payments core.
///
/// Money lives in accounts and moves by transfers; every change is an event
/// in an append-only log: the embedded log under the data directory, or a
/// PostgreSQL database shared by several servers (--store). `paycore serve` answers
/// gRPC (package paycore.v1) with health checking and reflection, so grpcurl
/// works out of the box.
#[derive(Debug, Parser)]
#[command(name = "paycore", version, propagate_version = true)]
struct Cli {
    /// Where the event log (embedded store), the read models and the admin
    /// socket live.
    #[arg(long, global = true, env = "PAYCORE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,

    /// The event store: leave out for the embedded log in the data directory;
    /// `postgres://user@host:port/database` to share one PostgreSQL database
    /// between several servers (run `paycore db migrate` first). TLS as in
    /// libpq: `?sslmode=verify-full&sslrootcert=ca.pem` (modes disable,
    /// prefer (the default), require, verify-ca, verify-full; `sslcert` and
    /// `sslkey` for a client certificate).
    #[arg(long, global = true, env = "PAYCORE_STORE")]
    store: Option<String>,

    /// PostgreSQL schema holding paycore's tables.
    #[arg(long, global = true, env = "PAYCORE_PG_SCHEMA", default_value = "paycore")]
    pg_schema: String,

    /// How logs are written to stderr: `text` for people, `json` (one
    /// object per line: timestamp, level, target, message, fields, spans,
    /// and for lines of a gRPC call its trace_id, span_id and request_id)
    /// for log collectors. PAYCORE_LOG sets the filter (default `info`).
    #[arg(
        long,
        global = true,
        env = "PAYCORE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC server (on the embedded event store unless --store says otherwise).
    ///
    /// On the first start against an empty data directory it creates a
    /// sandbox project and prints its secret API key once.
    Serve(Box<ServeArgs>),
    /// Create projects.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Create and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the PostgreSQL schema.
    #[command(subcommand)]
    Db(DbCommand),
    /// Replay the event log and check its rules, without a server.
    ///
    /// Checks: every frame of the log reads back intact (a damaged frame is
    /// reported with its file, offset and position, and the audit goes on at
    /// the next intact frame; the read models are then not compared); the
    /// hash chain and contiguous positions; contiguous versions in
    /// every stream; every event decodes; every transaction's balance_after is
    /// the previous balance plus its value; every transfer's two legs net to
    /// zero on the accounts it names; no account below zero without its
    /// allowance; no project's per-currency total below zero, and its recorded
    /// totals match; and (for the whole log) the read models show the
    /// recomputed balances. Open banking: connections change status only
    /// along the lifecycle diagram (aggregation_connection_transition_in_diagram)
    /// and nothing follows their deletion (aggregation_connection_deleted_is_terminal),
    /// consent expires only once signed in and on time
    /// (aggregation_consent_expiry_after_sign_in, aggregation_consent_expiry_on_time),
    /// imports go PENDING → RUNNING → SUCCEEDED / FAILED with growing counts
    /// (aggregation_import_transition_allowed, aggregation_import_progress_grows),
    /// and no transaction is recorded on a deleted connection's, disabled or
    /// archived account (aggregated_transaction_on_deleted_connection,
    /// aggregated_transaction_on_disabled_account,
    /// aggregated_transaction_on_archived_account), with an ID not derived
    /// from the bank's (aggregated_transaction_id_derived), twice on one
    /// account (aggregated_transaction_recorded_once), more than 5 years back
    /// (aggregated_transaction_within_history) or in another currency than
    /// its account's (aggregated_transaction_currency); bank data only while
    /// the connection is UPDATING (aggregated_data_while_updating), by a
    /// RUNNING import of the connection (aggregated_data_import_running), and
    /// accounts enabled only under a live consent
    /// (aggregated_account_enabled_with_consent). Each violation names the
    /// rule and the event (stream, version, position).
    ///
    /// The embedded log must not be held by a running server.
    ///
    /// Exit codes: 0 no violations; 1 violations found; 2 the audit could not
    /// run (bad arguments, I/O error, log in use).
    Audit(AuditArgs),
    /// Read accounts from the event log, without a server.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Set, remove, list and import the platform's exchange rates, which
    /// transfers between accounts of different currencies convert at.
    #[command(subcommand)]
    Fx(fx::FxCommand),
    /// Open banking: list the banks of the connector's catalogue, and
    /// activate or deactivate them for a project's customers.
    Institutions(institutions::InstitutionsArgs),
    /// The read models: their status, and rebuilding them from the log.
    #[command(subcommand)]
    Projections(projections::ProjectionsCommand),
    /// Copy the embedded log, side storage and vault key to DEST while the
    /// server runs (a consistent cut of the log at a durable position, then
    /// checked by its hash chain), or `backup verify DEST` an earlier one.
    Backup(backup::BackupArgs),
    /// Put a verified backup in place as the data directory (--data-dir),
    /// which must hold nothing and have no server running.
    Restore(backup::RestoreArgs),
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Print an account's balance, pending debits and credits, available
    /// balance, its transactions and its pending transfers' holds (oldest
    /// first) as of a global log position or a time; now when neither is
    /// given.
    ///
    /// Reads the log directly: the embedded log must not be held by a
    /// running server (or pass --store postgres://…).
    Balance {
        /// The account (acc_…).
        account: AccountId,
        /// Up to and including this global position of the log (beyond the
        /// end means now).
        #[arg(long, value_name = "N", conflicts_with = "at_time")]
        at_position: Option<u64>,
        /// The events committed at or before this time (RFC 3339, e.g.
        /// 2026-01-31T12:00:00Z).
        #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339_micros)]
        at_time: Option<i64>,
    },
}

#[derive(Debug, Args)]
struct AuditArgs {
    /// Print the report as JSON on stdout (events/s goes to stderr).
    #[arg(long)]
    json: bool,
    /// Audit up to and including this global position (a limit inside an
    /// append extends to the append's last event, so a transfer, a hold or
    /// a post is never cut in half). The read-model
    /// comparison only runs on the whole log.
    #[arg(long, value_name = "N")]
    up_to_position: Option<u64>,
    /// Audit the events recorded up to this time (RFC 3339, e.g.
    /// 2026-01-31T12:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339_micros)]
    up_to_time: Option<i64>,
}

/// An RFC 3339 time as microseconds since the Unix epoch.
fn parse_rfc3339_micros(text: &str) -> Result<i64, String> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|error| format!("not an RFC 3339 time: {error}"))?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000).map_err(|_| "time out of range".to_owned())
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Create or upgrade paycore's tables in the --store database. Running it
    /// again is harmless; a schema newer than this binary is refused.
    Migrate,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (use port 0 for any free port; the chosen address
    /// is printed on stdout).
    #[arg(long, env = "PAYCORE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// File holding the 32-byte key (64 hex characters) that encrypts stored
    /// card numbers. With the embedded store and no file given,
    /// <data dir>/vault.key is created on first start; with PostgreSQL it is
    /// required and must be the same on every server.
    #[arg(long, env = "PAYCORE_VAULT_KEY_FILE")]
    vault_key_file: Option<PathBuf>,
    /// The largest file an upload may carry, in bytes.
    #[arg(long, env = "PAYCORE_MAX_FILE_BYTES", default_value_t = paycore_grpc::DEFAULT_MAX_FILE_BYTES)]
    max_file_bytes: usize,
    /// Where 3-D Secure challenges are sent: a payin's authentication_url is
    /// this followed by /<card payin id>?token=<link token> (with
    /// --pages-listen, the pages' own challenge unless this is given).
    #[arg(long, env = "PAYCORE_AUTHENTICATION_URL_BASE", default_value = paycore_grpc::DEFAULT_AUTHENTICATION_URL_BASE)]
    authentication_url_base: String,
    /// The embedded log's background scrub re-reads every frame and checks
    /// its checksum at most this fast, in bytes per second (K, M, G: KiB,
    /// MiB, GiB; 0 turns it off). Damage it finds is logged with file and
    /// offset and turns health NOT_SERVING. A pass over a log of S bytes
    /// takes S / this.
    #[arg(long, env = "PAYCORE_SCRUB_BYTES_PER_SECOND", default_value = "16M", value_parser = serve::parse_bytes)]
    scrub_bytes_per_second: u64,
    /// A scrub pass starts this long after the previous one started (e.g.
    /// 30m, 1h, 1d), or at once if that one took longer; the first one this
    /// long after the start (whose verification read every frame). Damage
    /// is found within the longer of this and one pass, plus one pass.
    #[arg(long, env = "PAYCORE_SCRUB_INTERVAL", default_value = "1h", value_parser = serve::parse_duration)]
    scrub_interval: std::time::Duration,
    /// Verify the checksum of every frame of the embedded log before
    /// answering, so that damage anywhere stops the start (naming file,
    /// offset and position). Without it the frames under the log's index
    /// are verified beside serving, at 64 MiB/s, and the start takes the
    /// same time at any history size; damage found then is logged, turns
    /// health NOT_SERVING and answers DATA_LOSS to the requests that need
    /// it, like damage the scrub finds. The frames after the index (the
    /// last ones written) are verified before answering either way.
    #[arg(long, env = "PAYCORE_VERIFY_LOG_BEFORE_SERVING")]
    verify_log_before_serving: bool,
    /// Memory for the read models' page cache (e.g. 64M, 1G): their rows
    /// live on disk in <data dir>/projections/models.redb; this is what of
    /// them stays in memory, whatever the size of the history.
    #[arg(long, env = "PAYCORE_READ_MODEL_CACHE_BYTES", default_value = "128M", value_parser = serve::parse_bytes)]
    read_model_cache_bytes: u64,
    /// The most memory the engine's cache of committed states (accounts,
    /// transfers, idempotency records, …) may take, in bytes (K, M, G: KiB,
    /// MiB, GiB). Beyond it the least used are evicted and read again from
    /// the log when a command needs them; idempotency records leave when
    /// their 24-hour window ends. 0 keeps none.
    #[arg(long, env = "PAYCORE_STATE_CACHE_BYTES", default_value = serve::DEFAULT_STATE_CACHE_BYTES, value_parser = serve::parse_bytes)]
    state_cache_bytes: u64,
    /// With a PostgreSQL store: do not take part in writing the read-model
    /// tables (projects, customers, accounts, transactions, transfers,
    /// resources, fx_rates beside the log, for reporting with SQL). One
    /// server of those that take part writes them at a time.
    #[arg(long, env = "PAYCORE_NO_READ_MODEL_TABLES")]
    no_read_model_tables: bool,
    /// With a PostgreSQL store: answer the payments queries (projects,
    /// customers, accounts, transactions, transfers, cards, payins, bank
    /// resources, files, exchange rates) from the read-model tables every
    /// server shares, instead of this server's own read models; a server
    /// joining late answers them at once, without replaying the log first.
    /// A command's answer waits until the tables show it. Give it to every
    /// server of the deployment (page tokens of one source are not valid on
    /// the other); open banking is always answered from the server's own.
    #[arg(long, env = "PAYCORE_QUERIES_FROM_TABLES")]
    queries_from_tables: bool,
    /// Serve Prometheus metrics (text format) on GET /metrics of this
    /// address, e.g. 0.0.0.0:9090 (port 0: any free port, printed on
    /// stdout). Off unless set. Plain HTTP on its own port, never the gRPC
    /// one: expose it to the monitoring network only.
    #[arg(long, env = "PAYCORE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the hosted pages on this address (plain HTTP; put TLS in front
    /// for anything but a laptop): the 3-D Secure challenge a payin's
    /// authentication_url opens (in sandbox projects: code 123456 passes).
    /// Off unless set; then payins' authentication_url points here.
    #[arg(long, env = "PAYCORE_PAGES_LISTEN")]
    pages_listen: Option<SocketAddr>,
    /// How browsers reach the pages' listener, e.g. https://pay.example.com
    /// (default: http://<the bound address>).
    #[arg(long, env = "PAYCORE_PAGES_PUBLIC_URL", requires = "pages_listen")]
    pages_public_url: Option<String>,
    /// Export traces (OpenTelemetry, OTLP over gRPC) to this collector, e.g.
    /// http://127.0.0.1:4317 (https:// checks the collector's certificate
    /// against the system's CA roots). Off unless set. Service name
    /// `paycore` unless OTEL_SERVICE_NAME says otherwise. A call's W3C
    /// `traceparent` metadata makes its spans part of the caller's trace:
    /// the call, the command (decide, append), the log's group commit,
    /// write and fsync (or the PostgreSQL append), the wait for the read
    /// models and their applying the events. Events carry the command's
    /// trace context to subscribers (`traceparent` in the event envelope and
    /// as a NATS header); without this option, the caller's own.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM, the server's
    /// certificate first); needs --tls-key. SIGHUP reads the files again
    /// without a restart (new connections use them).
    #[arg(long, env = "PAYCORE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "PAYCORE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: accept only clients with a certificate signed by this CA
    /// (PEM); each connection's certificate subject is logged.
    #[arg(long, env = "PAYCORE_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Publish every event to NATS JetStream (nats://host:port, or several
    /// comma-separated): subjects <prefix>.<project>.<category>.<EventType>,
    /// payload the EventEnvelope of SubscribeEvents, each event once, in log
    /// order, resuming from the stream's last message. With PostgreSQL, one
    /// server of those given this option publishes at a time. A NATS that is
    /// down is retried with backoff; the server serves meanwhile.
    #[arg(long, env = "PAYCORE_RELAY_NATS", value_name = "URL")]
    relay_nats: Option<String>,
    /// The JetStream stream the relay publishes into (created if missing,
    /// capturing <prefix>.>).
    #[arg(long, env = "PAYCORE_RELAY_STREAM", default_value = paycore_relay::DEFAULT_STREAM, requires = "relay_nats")]
    relay_stream: String,
    /// The first subject token(s) of every published event; give each
    /// deployment sharing a NATS its own.
    #[arg(long, env = "PAYCORE_RELAY_SUBJECT_PREFIX", default_value = paycore_relay::subject::DEFAULT_SUBJECT_PREFIX, requires = "relay_nats")]
    relay_subject_prefix: String,
    /// Read open banking from the Berlin Group NextGenPSD2 (AIS) banks this
    /// JSON file lists (each bank's institution and base URL; see the
    /// README, "Open banking") instead of the in-process sandbox bank. They
    /// are the catalogue institutions are activated from. A file that does
    /// not check stops the start, naming the field.
    #[arg(long, env = "PAYCORE_BERLIN_GROUP_BANKS", value_name = "FILE")]
    berlin_group_banks: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// Create a project and print its first secret API key.
    Create {
        /// A name for people to recognise it by.
        #[arg(long)]
        name: String,
        /// Create a live project (real money; sandbox-only calls refused).
        #[arg(long)]
        live: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an API key for a project and print it (it is shown only once).
    Create {
        /// The project the key gives access to (prj_…).
        #[arg(long)]
        project: ProjectId,
        /// Secret keys can do everything; public keys only create card tokens.
        #[arg(long, value_enum, default_value_t = KindArg::Secret)]
        kind: KindArg,
    },
    /// Revoke an API key: it stops working at once.
    Revoke {
        /// The key's ID: `key_` followed by the third `_`-separated part of the key.
        key_id: ApiKeyId,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KindArg {
    Secret,
    Public,
}

impl From<KindArg> for KeyKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Secret => Self::Secret,
            KindArg::Public => Self::Public,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = paycore_telemetry::TelemetryConfig {
        log_format: match cli.log_format {
            LogFormat::Text => paycore_telemetry::LogFormat::Text,
            LogFormat::Json => paycore_telemetry::LogFormat::Json,
        },
        log_filter: std::env::var("PAYCORE_LOG").ok(),
        // Only a server exports traces; the other commands log.
        otlp_endpoint: match &cli.command {
            Command::Serve(args) => args.otlp_endpoint.clone(),
            _ => None,
        },
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                // Inside the runtime: the OTLP exporter's connection lives there.
                let endpoint = telemetry.otlp_endpoint.clone();
                let telemetry = paycore_telemetry::init(&telemetry).context("setting up logs and traces")?;
                if telemetry.exporting() {
                    tracing::info!(
                        endpoint = endpoint.as_deref().unwrap_or_default(),
                        service = %paycore_telemetry::service_name(),
                        "exporting traces over OTLP"
                    );
                }
                let result = run(cli).await;
                // Export what is still queued before the process ends.
                let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
                result
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<audit::ViolationsFound>() => {
            eprintln!("{error}");
            ExitCode::from(audit::EXIT_VIOLATIONS)
        }
        Err(error) if error.is::<audit::CannotAudit>() => {
            eprintln!("error: {error:#}");
            ExitCode::from(audit::EXIT_CANNOT_AUDIT)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The relay's options, checked before the server starts: a bad URL or
/// name stops it here with a precise message.
fn relay_options(args: &ServeArgs) -> anyhow::Result<Option<paycore_relay::RelayOptions>> {
    let Some(urls) = &args.relay_nats else {
        return Ok(None);
    };
    let options = paycore_relay::RelayOptions::new(urls)
        .and_then(|options| options.with_stream(&args.relay_stream))
        .and_then(|options| options.with_subject_prefix(&args.relay_subject_prefix))
        .map_err(|error| anyhow::anyhow!("--relay-nats: {error}"))?;
    Ok(Some(options))
}

/// A refusal from the admin socket, as the server worded it.
fn refused(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", status.message())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir;
    let store = serve::StoreChoice::parse(cli.store.as_deref(), &cli.pg_schema).map_err(|error| {
        if matches!(cli.command, Command::Audit(_)) {
            error.context(audit::CannotAudit)
        } else {
            error
        }
    })?;
    match cli.command {
        Command::Serve(args) => {
            let relay = relay_options(&args)?;
            // Checked before the data directory is opened: a bad file stops here.
            let bank = args
                .berlin_group_banks
                .as_deref()
                .map(banks::berlin_group)
                .transpose()?;
            if let Some(file) = &args.berlin_group_banks {
                tracing::info!(file = %file.display(), "open banking reads the Berlin Group banks of this file");
            }
            let options = serve::ServeOptions {
                listen: args.listen,
                vault_key_file: args.vault_key_file,
                max_file_bytes: args.max_file_bytes,
                authentication_url_base: args.authentication_url_base,
                read_model_cache_bytes: usize::try_from(args.read_model_cache_bytes).unwrap_or(usize::MAX),
                scrub: (args.scrub_bytes_per_second > 0).then_some(paycore_store::log::ScrubOptions {
                    bytes_per_second: args.scrub_bytes_per_second,
                    interval: args.scrub_interval,
                }),
                covered_frames: if args.verify_log_before_serving {
                    paycore_store::log::CoveredFrames::VerifyBeforeOpen
                } else {
                    paycore_store::log::CoveredFrames::VerifyInBackground
                },
                state_cache_bytes: args.state_cache_bytes,
                read_model_tables: !args.no_read_model_tables,
                queries_from_tables: args.queries_from_tables,
                metrics_listen: args.metrics_listen,
                pages_listen: args.pages_listen,
                pages_public_url: args.pages_public_url,
                tls: match (args.tls_cert, args.tls_key) {
                    (Some(cert), Some(key)) => Some(paycore_grpc::tls::TlsFiles {
                        cert,
                        key,
                        client_ca: args.tls_client_ca,
                    }),
                    _ => None,
                },
                relay,
                bank,
            };
            serve::serve(&data_dir, &store, options).await
        }
        Command::Db(DbCommand::Migrate) => serve::migrate(&store).await,
        Command::Fx(command) => fx::run(&data_dir, &store, command).await,
        Command::Institutions(command) => institutions::run(&data_dir, &store, command).await,
        Command::Projections(command) => projections::run(&data_dir, &store, command).await,
        Command::Backup(args) => backup::backup(&data_dir, &store, args).await,
        Command::Restore(args) => backup::restore(&data_dir, args).await,
        Command::Audit(args) => {
            let options = audit::AuditOptions {
                json: args.json,
                limit: paycore_audit::Limit {
                    up_to_position: args.up_to_position,
                    up_to_timestamp: args.up_to_time,
                },
            };
            audit::audit(&data_dir, &store, options).await
        }
        Command::Accounts(AccountsCommand::Balance {
            account,
            at_position,
            at_time,
        }) => {
            let as_of = at_position
                .map(AsOf::Position)
                .or_else(|| at_time.map(|micros| AsOf::Time(Timestamp::from_micros(micros))));
            balance::balance(&data_dir, &store, account, as_of).await
        }
        Command::Projects(ProjectsCommand::Create { name, live }) => {
            let environment = if live {
                Environment::Live
            } else {
                Environment::Sandbox
            };
            let project_name = name.clone();
            let direct = serve::with_engine(&data_dir, &store, |engine| async move {
                let (project, key) = admin::create_project(&engine, &project_name, environment).await?;
                Ok((project.to_string(), key.to_string()))
            });
            let (project, key) = match direct.await? {
                Some(created) => created,
                None => {
                    let request = admin::pb::CreateProjectRequest { name, live };
                    let created = admin_client(&data_dir)
                        .await?
                        .create_project(request)
                        .await
                        .map_err(refused)?
                        .into_inner();
                    (created.project_id, created.secret_key)
                }
            };
            println!("project:    {project}");
            println!("secret key: {key}");
            println!("(the key is shown only this once: keep it somewhere safe)");
            Ok(())
        }
        Command::Keys(KeysCommand::Create { project, kind }) => {
            let direct = serve::with_engine(&data_dir, &store, |engine| async move {
                Ok(admin::create_key(&engine, project, kind.into())
                    .await?
                    .to_string())
            });
            let key = match direct.await? {
                Some(key) => key,
                None => {
                    let kind = match kind {
                        KindArg::Secret => admin::pb::KeyKind::Secret,
                        KindArg::Public => admin::pb::KeyKind::Public,
                    };
                    let request = admin::pb::CreateApiKeyRequest {
                        project_id: project.to_string(),
                        kind: kind.into(),
                    };
                    admin_client(&data_dir)
                        .await?
                        .create_api_key(request)
                        .await
                        .map_err(refused)?
                        .into_inner()
                        .key
                }
            };
            println!("{key}");
            Ok(())
        }
        Command::Keys(KeysCommand::Revoke { key_id }) => {
            let direct = serve::with_engine(&data_dir, &store, |engine| async move {
                Ok(admin::revoke_key(&engine, key_id).await?.to_string())
            });
            let project = match direct.await? {
                Some(project) => project,
                None => {
                    let request = admin::pb::RevokeApiKeyRequest {
                        key_id: key_id.to_string(),
                    };
                    admin_client(&data_dir)
                        .await?
                        .revoke_api_key(request)
                        .await
                        .map_err(refused)?
                        .into_inner()
                        .project_id
                }
            };
            println!("revoked {key_id} of project {project}");
            Ok(())
        }
    }
}

/// The admin service of the server that holds `data_dir`.
async fn admin_client(
    data_dir: &std::path::Path,
) -> anyhow::Result<admin::AdminServiceClient<tonic::transport::Channel>> {
    admin::connect(data_dir).await.with_context(|| {
        format!(
            "{} is held by a running paycore server, but its admin socket ({}) does not answer",
            data_dir.display(),
            data_dir.join(admin::SOCKET_NAME).display()
        )
    })
}
