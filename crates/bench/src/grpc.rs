//! `paycore-bench grpc`: end-to-end transfer throughput and latency against
//! the real server binary over loopback gRPC.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use paycore_grpc::pb;
use paycore_grpc::{AccountServiceClient, TransferServiceClient};
use tokio::sync::mpsc;
use tonic::Request;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::report::{
    self, CpuSample, CpuUse, Machine, Rng, Table, latency_columns, percent, rate, thousands,
};

/// Targets at 64 clients on the reference 2-core VM.
const TARGET_CLIENTS: usize = 64;
const TARGET_TRANSFERS_PER_SEC: f64 = 20_000.0;
const TARGET_P99_MICROS: u64 = 10_000;

/// How many distinct errors are printed in full.
const ERRORS_SHOWN: usize = 5;

const CURRENCY: &str = "EUR";
const KEY_LINE: &str = "secret API key (shown only once, keep it safe): ";
const LISTEN_LINE: &str = "paycore listening on ";

/// Measure durable transfers end to end through the real server.
///
/// Starts `<server-bin> serve` on a fresh data directory and a free loopback
/// port, reads the bootstrap API key and address from its stdout, opens
/// `--accounts` EUR accounts and funds them (sandbox balance update). Then for
/// each level of `--clients`, runs that many closed-loop clients for
/// `--seconds` (after `--warmup`), each calling
/// `TransferService.CreateTransfer` for a small amount between two random
/// distinct accounts, over one HTTP/2 connection per `--clients-per-conn`
/// clients. Reports transfers/s, latency percentiles (client side, call to
/// answer, which includes fdatasync and the read-your-writes wait), errors,
/// and the CPU used by the server and by this load generator (they share the
/// machine).
///
/// Afterwards it reads every account back and checks that money is conserved
/// (the sum of balances is unchanged) and that each balance matches the
/// client-side ledger of acknowledged transfers, then stops the server with
/// SIGTERM and checks that it exits 0. A failed check makes the command
/// fail; missed performance targets do not.
#[derive(Debug, Args)]
pub struct GrpcArgs {
    /// How long each level is measured, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,

    /// Warm-up before each level's measurement, in seconds (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,

    /// Concurrency levels (closed-loop clients), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,

    /// Clients sharing one HTTP/2 connection.
    #[arg(long, default_value_t = 8)]
    clients_per_conn: usize,

    /// Accounts transfers are spread over (0: twice the largest level, at
    /// least 2). Fewer accounts means more contention on each.
    #[arg(long, default_value_t = 0)]
    accounts: usize,

    /// Also run every level with a "hot account": every transfer has one
    /// extra account as its source or destination (alternately), the worst
    /// case of contention.
    #[arg(long)]
    hot_account: bool,

    /// The paycore server binary.
    #[arg(long, default_value = "./target/release/paycore")]
    server_bin: PathBuf,

    /// Where the server's fresh data directory is created (removed at the
    /// end). Must be on the disk to measure, not a tmpfs.
    #[arg(long, default_value = "./target/bench-data")]
    dir: PathBuf,

    /// Keep the server's data directory (its path is printed).
    #[arg(long)]
    keep_data: bool,

    /// Starting balance of every account, in cents.
    #[arg(long, default_value_t = 100_000_000)]
    initial_balance: i64,

    /// Send every transfer with its own idempotency key, as careful clients
    /// do (each leaves a record the server keeps for 24 hours).
    #[arg(long)]
    idempotency_keys: bool,

    /// Serve gRPC over TLS (a certificate made for the run, rustls on both
    /// sides), to measure what encryption costs.
    #[arg(long)]
    tls: bool,
}

pub async fn run(mut args: GrpcArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be positive");
    anyhow::ensure!(args.warmup >= 0.0, "--warmup must not be negative");
    anyhow::ensure!(
        !args.clients.is_empty() && args.clients.iter().all(|&c| c > 0),
        "--clients needs positive levels"
    );
    anyhow::ensure!(args.clients_per_conn > 0, "--clients-per-conn must be positive");
    anyhow::ensure!(args.initial_balance > 0, "--initial-balance must be positive");
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    args.dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", args.dir.display()))?;
    let data = tempfile::Builder::new()
        .prefix("grpc-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a directory in {}", args.dir.display()))?;
    let machine = Machine::describe(data.path()).await?;
    println!("paycore-bench grpc: durable transfers through the paycore server\n");
    println!("{}", machine.render());

    let tls = if args.tls {
        Some(TlsFiles::make(data.path())?)
    } else {
        None
    };
    let mut server = Server::start(&args.server_bin, data.path(), tls).await?;
    println!(
        "Server: {} (pid {}) listening on {}",
        args.server_bin.display(),
        server.pid(),
        server.address
    );
    // The server inherits PAYCORE_STORE / PAYCORE_PG_SCHEMA from this process.
    match std::env::var("PAYCORE_STORE")
        .ok()
        .filter(|store| !store.is_empty())
    {
        Some(_) => println!(
            "Store: PostgreSQL, schema {}",
            std::env::var("PAYCORE_PG_SCHEMA").unwrap_or_else(|_| "paycore".into())
        ),
        None => println!("Store: embedded log in {}", data.path().display()),
    }
    if args.tls {
        println!("Transport: gRPC over TLS (rustls, a certificate made for this run)");
    }
    let result = bench(&args, &mut server).await;
    if result.is_err() {
        server.print_log_tail();
    }
    let stopped = server.stop().await;
    if args.keep_data {
        let kept = data.keep();
        println!("data kept in {}", kept.display());
    }
    let verdict = result?;
    let status = stopped?;
    let exit_ok = status.success();
    println!(
        "Server stop (SIGTERM): {status} — {}",
        if exit_ok { "OK" } else { "FAIL" }
    );
    if !verdict || !exit_ok {
        bail!("the benchmark's checks failed (see above)");
    }
    Ok(())
}

/// Everything between server start and stop. Returns whether the checks passed.
async fn bench(args: &GrpcArgs, server: &mut Server) -> anyhow::Result<bool> {
    let auth: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {}", server.key))
        .context("the API key is not valid metadata")?;
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);
    let accounts = if args.accounts == 0 {
        (2 * max_clients).max(2)
    } else {
        args.accounts.max(2)
    };
    let setup = connect(server).await?;

    // Pool accounts, plus the hot one last.
    let total = accounts + usize::from(args.hot_account);
    let started = Instant::now();
    let ids = open_accounts(&setup, &auth, total, args.initial_balance).await?;
    let initial_sum: i128 = i128::from(args.initial_balance) * total as i128;
    println!(
        "Setup: {} {CURRENCY} accounts opened and funded with {} cents each in {:.2} s\n",
        total,
        thousands(args.initial_balance as u64),
        started.elapsed().as_secs_f64()
    );

    let ids = Arc::new(ids);
    let mut ledger = vec![0i64; total];
    let mut table = Table::new(&[
        "scenario",
        "clients",
        "conns",
        "transfers",
        "transfers/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "errors",
        "server CPU",
        "bench CPU",
        "others CPU",
        "target<",
    ]);
    let mut errors_seen: Vec<String> = Vec::new();
    let mut total_errors = 0u64;
    let mut hot_modes = vec![false];
    if args.hot_account {
        hot_modes.push(true);
    }
    for hot in hot_modes {
        for &clients in &args.clients {
            let name = if hot { "hot account" } else { "spread" };
            eprintln!(
                "running {name} with {clients} clients ({} s warm-up + {} s)…",
                args.warmup, args.seconds
            );
            let level = run_level(args, server, &auth, &ids, accounts, clients, hot).await?;
            for (account, delta) in ledger.iter_mut().zip(&level.ledger) {
                *account += delta;
            }
            total_errors += level.errors;
            for error in &level.first_errors {
                if errors_seen.len() < ERRORS_SHOWN {
                    errors_seen.push(format!("[{name}, {clients} clients] {error}"));
                }
            }
            let secs = level.window.as_secs_f64();
            let per_sec = level.ok as f64 / secs;
            let [p50, p99, p999, max] = latency_columns(&level.latency);
            let target = if clients == TARGET_CLIENTS && !hot {
                let p99_us = level.latency.value_at_quantile(0.99);
                format!(
                    "≥ {}/s {}, p99 < {} {}",
                    rate(TARGET_TRANSFERS_PER_SEC),
                    if per_sec >= TARGET_TRANSFERS_PER_SEC {
                        "MET"
                    } else {
                        "MISSED"
                    },
                    report::micros(TARGET_P99_MICROS),
                    if p99_us < TARGET_P99_MICROS {
                        "MET"
                    } else {
                        "MISSED"
                    },
                )
            } else {
                String::new()
            };
            table.row(vec![
                name.into(),
                clients.to_string(),
                clients.div_ceil(args.clients_per_conn).to_string(),
                thousands(level.ok),
                rate(per_sec),
                p50,
                p99,
                p999,
                max,
                thousands(level.errors),
                percent(level.cpu.server),
                percent(level.cpu.bench),
                percent(level.cpu.others),
                target,
            ]);
        }
    }
    println!(
        "Transfers (CreateTransfer, closed loop, {} s measured per level after {} s warm-up)",
        args.seconds, args.warmup
    );
    print!("{}", table.render());
    println!(
        "  latency: client side, call to answer (durable commit + read-your-writes). \
         CPU: % of one core over the measured window"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "  ({} cores = {} %; \"others\" = every other process on the machine). Accounts: {} \
         (random distinct pairs){}.",
        cores,
        cores * 100,
        accounts,
        if args.hot_account { " + 1 hot" } else { "" }
    );
    if errors_seen.is_empty() {
        println!("  errors (non-OK answers, warm-up included): none");
    } else {
        println!("  errors (non-OK answers, warm-up included), the first ones:");
        for error in &errors_seen {
            println!("    {error}");
        }
    }
    println!();

    // Conservation: read every account back.
    let balances = read_balances(&setup, &auth, &ids).await?;
    let final_sum: i128 = balances.iter().map(|&b| i128::from(b)).sum();
    let conserved = final_sum == initial_sum;
    let mismatched = balances
        .iter()
        .zip(&ledger)
        .filter(|&(&balance, &delta)| balance != args.initial_balance + delta)
        .count();
    println!(
        "Money conserved: sum of {} balances before {}, after {} — {}",
        total,
        eur(initial_sum),
        eur(final_sum),
        if conserved { "OK" } else { "FAIL" }
    );
    // A failed call may still have been carried out (its answer lost), so
    // the ledger can only be held to account when every call answered OK.
    let ledger_ok = mismatched == 0 || total_errors > 0;
    println!(
        "Balances match the client ledger of acknowledged transfers: {}",
        if mismatched == 0 {
            "OK".to_owned()
        } else if total_errors > 0 {
            format!("{mismatched} of {total} accounts differ (calls that failed may have been carried out)")
        } else {
            format!("FAIL: {mismatched} of {total} accounts differ although every call answered OK")
        }
    );
    Ok(conserved && ledger_ok)
}

/// An amount in cents as `1,234.56 EUR`.
fn eur(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let units = u64::try_from(abs / 100).unwrap_or(u64::MAX);
    format!("{sign}{}.{:02} {CURRENCY}", thousands(units), abs % 100)
}

/// Outcome of one concurrency level.
#[derive(Debug)]
struct Level {
    ok: u64,
    errors: u64,
    first_errors: Vec<String>,
    latency: Histogram<u64>,
    window: Duration,
    /// Net change per account from the transfers acknowledged (warm-up included).
    ledger: Vec<i64>,
    cpu: CpuUse,
}

/// What one client reports.
struct ClientOutcome {
    ok: u64,
    errors: u64,
    latency: Histogram<u64>,
    ledger: Vec<i64>,
}

async fn run_level(
    args: &GrpcArgs,
    server: &Server,
    auth: &AsciiMetadataValue,
    ids: &Arc<Vec<String>>,
    accounts: usize,
    clients: usize,
    hot: bool,
) -> anyhow::Result<Level> {
    let connections = clients.div_ceil(args.clients_per_conn);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(connect(server).await?);
    }
    let first_errors = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let window = Duration::from_secs_f64(args.seconds);
    let end = measure_from + window;
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let channel = channels[client / args.clients_per_conn].clone();
        let context = ClientContext {
            client: TransferServiceClient::new(channel),
            auth: auth.clone(),
            ids: ids.clone(),
            accounts,
            hot,
            rng: Rng::new(0xC0FFEE + client as u64 * 7919 + u64::from(hot)),
            measure_from,
            end,
            first_errors: first_errors.clone(),
            idempotency_prefix: args
                .idempotency_keys
                .then(|| format!("bench-{clients}-{}-{client}-", u8::from(hot))),
        };
        tasks.spawn(client_loop(context));
    }
    // CPU accounting over the measured window only.
    tokio::time::sleep_until(measure_from.into()).await;
    let before = CpuSample::take(Some(server.pid()));
    tokio::time::sleep_until(end.into()).await;
    let cpu = CpuUse::between(&before, &CpuSample::take(Some(server.pid())));

    let mut level = Level {
        ok: 0,
        errors: 0,
        first_errors: Vec::new(),
        latency: report::latency_histogram()?,
        window,
        ledger: vec![0; ids.len()],
        cpu,
    };
    while let Some(result) = tasks.join_next().await {
        let outcome = result.context("a client task failed")??;
        level.ok += outcome.ok;
        level.errors += outcome.errors;
        level.latency.add(outcome.latency).context("merging histograms")?;
        for (account, delta) in level.ledger.iter_mut().zip(&outcome.ledger) {
            *account += delta;
        }
    }
    level.first_errors = first_errors
        .lock()
        .map(|errors| errors.clone())
        .unwrap_or_default();
    Ok(level)
}

struct ClientContext {
    client: TransferServiceClient<Channel>,
    auth: AsciiMetadataValue,
    ids: Arc<Vec<String>>,
    /// Pool size; the hot account, if any, is `ids[accounts]`.
    accounts: usize,
    hot: bool,
    rng: Rng,
    measure_from: Instant,
    end: Instant,
    first_errors: Arc<Mutex<Vec<String>>>,
    /// Each call's idempotency key is this and the call's number.
    idempotency_prefix: Option<String>,
}

/// One closed-loop client: a transfer, wait for the answer, repeat, until the
/// end of the window. Counts and times the calls answered inside the window;
/// errors are counted over the whole run, warm-up included.
async fn client_loop(mut cx: ClientContext) -> anyhow::Result<ClientOutcome> {
    let mut out = ClientOutcome {
        ok: 0,
        errors: 0,
        latency: report::latency_histogram()?,
        ledger: vec![0; cx.ids.len()],
    };
    let pool = cx.accounts as u64;
    let mut flip = false;
    let mut calls = 0u64;
    while Instant::now() < cx.end {
        let (source, destination) = if cx.hot {
            let other = cx.rng.below(pool) as usize;
            flip = !flip;
            if flip {
                (cx.accounts, other)
            } else {
                (other, cx.accounts)
            }
        } else {
            let source = cx.rng.below(pool);
            let destination = (source + 1 + cx.rng.below(pool - 1)) % pool;
            (source as usize, destination as usize)
        };
        let amount = 1 + cx.rng.below(100) as i64;
        let mut request = Request::new(pb::CreateTransferRequest {
            source_account_id: cx.ids[source].clone(),
            destination_account_id: cx.ids[destination].clone(),
            value: Some(pb::Money {
                currency: CURRENCY.into(),
                amount,
            }),
            ..Default::default()
        });
        request.metadata_mut().insert("authorization", cx.auth.clone());
        if let Some(prefix) = &cx.idempotency_prefix {
            let key = AsciiMetadataValue::try_from(format!("{prefix}{calls}"))
                .context("an idempotency key is not valid metadata")?;
            request.metadata_mut().insert("idempotency-key", key);
        }
        calls += 1;
        let sent = Instant::now();
        let answer = cx.client.create_transfer(request).await;
        let done = Instant::now();
        match answer {
            Ok(_) => {
                out.ledger[source] -= amount;
                out.ledger[destination] += amount;
                if done >= cx.measure_from && done <= cx.end {
                    out.ok += 1;
                    report::record(&mut out.latency, done - sent);
                }
            }
            Err(status) => {
                out.errors += 1;
                if let Ok(mut errors) = cx.first_errors.lock()
                    && errors.len() < ERRORS_SHOWN
                {
                    errors.push(format!("{:?}: {}", status.code(), status.message()));
                }
            }
        }
    }
    Ok(out)
}

pub(crate) async fn connect(server: &Server) -> anyhow::Result<Channel> {
    let address = server.address;
    let endpoint = match &server.tls {
        None => Endpoint::from_shared(format!("http://{address}")).context("server address")?,
        Some(tls) => Endpoint::from_shared(format!("https://localhost:{}", address.port()))
            .context("server address")?
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .domain_name("localhost"),
            )
            .context("TLS settings")?,
    };
    endpoint
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connecting to {address}"))
}

pub(crate) fn authorized<T>(message: T, auth: &AsciiMetadataValue) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

/// Opens `count` accounts and sets each balance to `balance` (sandbox magic
/// update), 16 at a time. Returns their IDs in order.
pub(crate) async fn open_accounts(
    channel: &Channel,
    auth: &AsciiMetadataValue,
    count: usize,
    balance: i64,
) -> anyhow::Result<Vec<String>> {
    let mut ids = vec![String::new(); count];
    let mut next = 0;
    while next < count {
        let mut batch = tokio::task::JoinSet::new();
        for index in next..(next + 16).min(count) {
            let mut client = AccountServiceClient::new(channel.clone());
            let auth = auth.clone();
            batch.spawn(async move {
                let account = client
                    .create_account(authorized(
                        pb::CreateAccountRequest {
                            currency: CURRENCY.into(),
                            ..Default::default()
                        },
                        &auth,
                    ))
                    .await
                    .context("CreateAccount")?
                    .into_inner();
                let funded = client
                    .update_account(authorized(
                        pb::UpdateAccountRequest {
                            account_id: account.id.clone(),
                            update_mask: Some(prost_types::FieldMask {
                                paths: vec!["balance".into()],
                            }),
                            balance: Some(pb::Money {
                                currency: CURRENCY.into(),
                                amount: balance,
                            }),
                            ..Default::default()
                        },
                        &auth,
                    ))
                    .await
                    .context("UpdateAccount (funding)")?
                    .into_inner();
                let got = funded.balance.map(|m| m.amount);
                anyhow::ensure!(
                    got == Some(balance),
                    "account {} funded to {got:?}, expected {balance}",
                    account.id
                );
                Ok::<_, anyhow::Error>((index, account.id))
            });
        }
        while let Some(result) = batch.join_next().await {
            let (index, id) = result.context("account setup task")??;
            ids[index] = id;
        }
        next = (next + 16).min(count);
    }
    Ok(ids)
}

pub(crate) async fn read_balances(
    channel: &Channel,
    auth: &AsciiMetadataValue,
    ids: &[String],
) -> anyhow::Result<Vec<i64>> {
    let mut client = AccountServiceClient::new(channel.clone());
    let mut balances = Vec::with_capacity(ids.len());
    for id in ids {
        let account = client
            .get_account(authorized(
                pb::GetAccountRequest {
                    account_id: id.clone(),
                },
                auth,
            ))
            .await
            .with_context(|| format!("GetAccount {id}"))?
            .into_inner();
        let balance = account
            .balance
            .with_context(|| format!("account {id} has no balance"))?;
        anyhow::ensure!(
            balance.currency == CURRENCY,
            "account {id} is in {}",
            balance.currency
        );
        balances.push(balance.amount);
    }
    Ok(balances)
}

/// The server process.
pub(crate) struct Server {
    child: Child,
    pub(crate) address: SocketAddr,
    pub(crate) key: String,
    log: PathBuf,
    tls: Option<TlsFiles>,
}

/// A CA and a server certificate for `localhost`, made for one run.
pub(crate) struct TlsFiles {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    fn make(dir: &Path) -> anyhow::Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "paycore-bench CA");
        let ca_pem = ca.self_signed(&ca_key)?.pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate()?;
        let certificate = CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &issuer)?;
        let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
        std::fs::write(&cert_path, certificate.pem()).context("writing the server certificate")?;
        std::fs::write(&key_path, key.serialize_pem()).context("writing the server key")?;
        Ok(Self {
            ca_pem,
            cert: cert_path,
            key: key_path,
        })
    }
}

impl Server {
    /// Starts `bin serve` on `data_dir` (its stderr goes to `server.log`
    /// next to it) and waits for the API key and address on its stdout.
    pub(crate) async fn start(bin: &Path, data_dir: &Path, tls: Option<TlsFiles>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            bin.is_file(),
            "server binary {} not found (build it: cargo build --release -p paycore-cli)",
            bin.display()
        );
        let log = data_dir.join("server.log");
        let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir.join("data"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(tls.iter().flat_map(|tls| {
                [
                    "--tls-cert".as_ref(),
                    tls.cert.as_os_str(),
                    "--tls-key".as_ref(),
                    tls.key.as_os_str(),
                ]
            }))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        // A thread reads the server's stdout for its whole life, so the
        // pipe never fills up; the lines we wait for come over a channel.
        let (tx, mut rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("server-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            })
            .context("starting the stdout reader")?;
        let mut server_key = None;
        let mut server_address = None;
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = rx.recv().await {
                if let Some(key) = line.strip_prefix(KEY_LINE) {
                    server_key = Some(key.trim().to_owned());
                } else if let Some(address) = line.strip_prefix(LISTEN_LINE) {
                    server_address = Some(address.trim().to_owned());
                }
                if server_key.is_some() && server_address.is_some() {
                    break;
                }
            }
        })
        .await;
        let mut server = Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            key: String::new(),
            log,
            tls,
        };
        let failure = match (waited, server_key, server_address) {
            (Ok(()), Some(key), Some(address)) => match address.parse() {
                Ok(address) => {
                    server.address = address;
                    server.key = key;
                    None
                }
                Err(e) => Some(format!("unparsable address {address:?}: {e}")),
            },
            (Err(_), ..) => Some("no API key and address on stdout within 60 s".into()),
            (Ok(()), key, _) => Some(format!(
                "stdout closed before {} was printed (did the server exit?)",
                if key.is_none() {
                    "the API key"
                } else {
                    "the address"
                }
            )),
        };
        if let Some(failure) = failure {
            server.print_log_tail();
            bail!("the server did not start: {failure}");
        }
        Ok(server)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait up to 30 s for the exit (SIGKILL after that).
    pub(crate) async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait().context("polling the server")? {
            bail!("the server had already exited: {status}");
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill -TERM")?;
        anyhow::ensure!(sent.success(), "kill -TERM {} failed", self.pid());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for the server")? {
                if !status.success() {
                    self.print_log_tail();
                }
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.print_log_tail();
                bail!("the server did not exit within 30 s of SIGTERM (killed)");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn print_log_tail(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- last lines of the server log ({}) ---", self.log.display());
        for line in &lines[lines.len().saturating_sub(30)..] {
            eprintln!("{line}");
        }
        eprintln!("---");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never leave a server behind (on error paths).
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
