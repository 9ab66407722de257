//! `paycore-bench batches`: transfers sent in batches (`CreateTransfers`) at
//! several batch sizes, and the two-phase operations (create pending, post,
//! void), against the real server binary over loopback gRPC.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use paycore_grpc::TransferServiceClient;
use paycore_grpc::pb;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

use crate::grpc::{Server, authorized, connect, open_accounts, read_balances};
use crate::report::{
    self, CpuSample, CpuUse, Machine, Rng, Table, latency_columns, percent, rate, thousands,
};

const CURRENCY: &str = "EUR";

/// The batched rate TigerBeetle 0.17.8 reached on the 2-core development
/// machine with batches of 8,189 (issue 14's target).
const TARGET_BATCHED_PER_SEC: f64 = 450_000.0;

/// Measure batched and two-phase transfers through the real server.
///
/// Starts `<server-bin> serve` on a fresh data directory, opens `--accounts`
/// funded EUR accounts, then for each `--batch-sizes` size runs
/// `--clients` closed-loop clients for `--seconds` (after `--warmup`), each
/// calling `CreateTransfers` with that many transfers of 1 to 100 cents
/// between random distinct accounts. Reports transfers/s and the latency of
/// a call (durable commit + read-your-writes). Then the two-phase
/// operations: `--clients` clients each creating a pending transfer and then
/// posting it (even calls) or voiding it (odd calls), one call at a time,
/// reported per operation. Afterwards it checks that money is conserved and
/// that no hold is left.
#[derive(Debug, Args)]
pub struct BatchesArgs {
    /// How long each level is measured, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,

    /// Warm-up before each level's measurement, in seconds (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,

    /// Transfers per `CreateTransfers` call, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000,8190")]
    batch_sizes: Vec<usize>,

    /// Closed-loop clients sending batches at once (one HTTP/2 connection
    /// each).
    #[arg(long, default_value_t = 4)]
    clients: usize,

    /// Clients of the two-phase scenario (one connection per 8).
    #[arg(long, default_value_t = 64)]
    two_phase_clients: usize,

    /// Accounts the transfers are spread over.
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,

    /// The paycore server binary.
    #[arg(long, default_value = "./target/release/paycore")]
    server_bin: PathBuf,

    /// Where the server's fresh data directory is created (removed at the
    /// end). Must be on the disk to measure, not a tmpfs.
    #[arg(long, default_value = "./target/bench-data")]
    dir: PathBuf,
}

pub async fn run(args: BatchesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seconds > 0.0 && args.warmup >= 0.0,
        "--seconds must be positive"
    );
    anyhow::ensure!(
        args.clients > 0 && args.two_phase_clients > 0,
        "clients must be positive"
    );
    anyhow::ensure!(args.accounts >= 2, "--accounts must be at least 2");
    anyhow::ensure!(
        args.batch_sizes.iter().all(|&size| (1..=8_190).contains(&size)),
        "--batch-sizes must be 1 to 8,190"
    );
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let data = tempfile::Builder::new()
        .prefix("batches-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a directory in {}", args.dir.display()))?;
    let machine = Machine::describe(data.path()).await?;
    println!("paycore-bench batches: batched and two-phase transfers through the paycore server\n");
    println!("{}", machine.render());
    let mut server = Server::start(&args.server_bin, data.path(), None).await?;
    let result = bench(&args, &server).await;
    let stopped = server.stop().await?;
    if !result? || !stopped.success() {
        bail!("the benchmark's checks failed (see above)");
    }
    Ok(())
}

async fn bench(args: &BatchesArgs, server: &Server) -> anyhow::Result<bool> {
    let auth: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {}", server.key))
        .context("the API key is not valid metadata")?;
    let setup = connect(server).await?;
    let balance = 1_000_000_000;
    let ids = Arc::new(open_accounts(&setup, &auth, args.accounts, balance).await?);
    let mut table = Table::new(&[
        "batch size",
        "clients",
        "transfers",
        "transfers/s",
        "call p50",
        "call p99",
        "call max",
        "refused",
        "server CPU",
        "bench CPU",
        "target",
    ]);
    for &size in &args.batch_sizes {
        eprintln!("running batches of {size} with {} clients…", args.clients);
        let level = run_level(args, server, &auth, &ids, size).await?;
        let per_sec = level.ok as f64 / level.window.as_secs_f64();
        let [p50, p99, _, max] = latency_columns(&level.latency);
        let target = if size == 8_190 {
            let met = if per_sec >= TARGET_BATCHED_PER_SEC {
                "MET"
            } else {
                "MISSED"
            };
            format!("≥ {}/s {met}", rate(TARGET_BATCHED_PER_SEC))
        } else {
            String::new()
        };
        table.row(vec![
            thousands(size as u64),
            args.clients.to_string(),
            thousands(level.ok),
            rate(per_sec),
            p50,
            p99,
            max,
            thousands(level.refused),
            percent(level.cpu.server),
            percent(level.cpu.bench),
            target,
        ]);
    }
    println!(
        "Batched transfers (CreateTransfers, closed loop, {} s measured per size after {} s warm-up)",
        args.seconds, args.warmup
    );
    print!("{}", table.render());
    println!(
        "  latency: one call, sent to answered (durable commit + read-your-writes); CPU: % of one core\n"
    );

    let mut table = Table::new(&[
        "operation",
        "clients",
        "calls",
        "calls/s",
        "p50",
        "p99",
        "max",
        "refused",
    ]);
    eprintln!("running two-phase with {} clients…", args.two_phase_clients);
    let phases = run_two_phase(args, server, &auth, &ids).await?;
    let window = args.seconds;
    for (name, phase) in [
        ("create pending", &phases[0]),
        ("post", &phases[1]),
        ("void", &phases[2]),
    ] {
        let [p50, p99, _, max] = latency_columns(&phase.latency);
        table.row(vec![
            name.into(),
            args.two_phase_clients.to_string(),
            thousands(phase.ok),
            rate(phase.ok as f64 / window),
            p50,
            p99,
            max,
            thousands(phase.refused),
        ]);
    }
    println!(
        "Two-phase transfers (each client: create pending, then post or void it; {} s measured)",
        args.seconds
    );
    print!("{}", table.render());
    println!();

    let balances = read_balances(&setup, &auth, &ids).await?;
    let sum: i128 = balances.iter().map(|&b| i128::from(b)).sum();
    let conserved = sum == i128::from(balance) * ids.len() as i128;
    println!(
        "Money conserved over {} accounts: {}",
        ids.len(),
        if conserved { "OK" } else { "FAIL" }
    );
    let held = holds_left(&setup, &auth, &ids).await?;
    println!(
        "Holds left after every pending transfer was posted or voided: {}",
        if held == 0 {
            "none, OK".to_owned()
        } else {
            format!("{held} accounts, FAIL")
        }
    );
    Ok(conserved && held == 0)
}

/// Accounts that still show pending debits or credits.
async fn holds_left(channel: &Channel, auth: &AsciiMetadataValue, ids: &[String]) -> anyhow::Result<usize> {
    let mut client = paycore_grpc::AccountServiceClient::new(channel.clone());
    let mut held = 0;
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
        let amount = |money: &Option<pb::Money>| money.as_ref().map_or(0, |m| m.amount);
        if amount(&account.pending_debits) != 0 || amount(&account.pending_credits) != 0 {
            held += 1;
        }
    }
    Ok(held)
}

/// What one scenario measured.
struct Level {
    /// Transfers (or calls) answered OK inside the window.
    ok: u64,
    /// Transfers (or calls) refused, over the whole run.
    refused: u64,
    latency: Histogram<u64>,
    window: Duration,
    cpu: CpuUse,
}

/// One client's connection, accounts and clock.
struct ClientContext {
    client: TransferServiceClient<Channel>,
    auth: AsciiMetadataValue,
    ids: Arc<Vec<String>>,
    rng: Rng,
}

impl ClientContext {
    fn pair(&mut self) -> (String, String) {
        let pool = self.ids.len() as u64;
        let source = self.rng.below(pool);
        let destination = (source + 1 + self.rng.below(pool - 1)) % pool;
        (
            self.ids[source as usize].clone(),
            self.ids[destination as usize].clone(),
        )
    }

    fn transfer(&mut self) -> pb::CreateTransferRequest {
        let (source, destination) = self.pair();
        pb::CreateTransferRequest {
            source_account_id: source,
            destination_account_id: destination,
            value: Some(pb::Money {
                currency: CURRENCY.into(),
                amount: 1 + self.rng.below(100) as i64,
            }),
            ..Default::default()
        }
    }
}

/// One call's outcome: transfers created and refused.
type Call = anyhow::Result<(u64, u64)>;

async fn batch_call(cx: &mut ClientContext, size: usize) -> Call {
    let transfers = (0..size)
        .map(|_| pb::BatchedTransfer {
            transfer: Some(cx.transfer()),
            ..Default::default()
        })
        .collect();
    let request = authorized(pb::CreateTransfersRequest { transfers }, &cx.auth);
    let results = match cx.client.create_transfers(request).await {
        Ok(response) => response.into_inner().results,
        // The server sheds load: nothing of the batch was written; a client
        // backs off and sends it again.
        Err(status) if status.code() == tonic::Code::Unavailable => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok((0, size as u64));
        }
        Err(status) => return Err(status.into()),
    };
    let refused = results.iter().filter(|result| result.error.is_some()).count() as u64;
    Ok((results.len() as u64 - refused, refused))
}

/// Runs `--clients` closed-loop clients, each sending batches of `size`,
/// and measures the window after the warm-up.
async fn run_level(
    args: &BatchesArgs,
    server: &Server,
    auth: &AsciiMetadataValue,
    ids: &Arc<Vec<String>>,
    size: usize,
) -> anyhow::Result<Level> {
    let clients = args.clients;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let window = Duration::from_secs_f64(args.seconds);
    let end = measure_from + window;
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let mut cx = ClientContext {
            client: TransferServiceClient::new(connect(server).await?)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            auth: auth.clone(),
            ids: ids.clone(),
            rng: Rng::new(0xBA7C4 + client as u64 * 7919),
        };
        tasks.spawn(async move {
            let mut latency = report::latency_histogram()?;
            let (mut ok, mut refused) = (0u64, 0u64);
            while Instant::now() < end {
                let sent = Instant::now();
                let (created, not) = batch_call(&mut cx, size).await?;
                let done = Instant::now();
                refused += not;
                if done >= measure_from && done <= end {
                    ok += created;
                    report::record(&mut latency, done - sent);
                }
            }
            Ok::<_, anyhow::Error>((ok, refused, latency))
        });
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let before = CpuSample::take(Some(server.pid()));
    tokio::time::sleep_until(end.into()).await;
    let cpu = CpuUse::between(&before, &CpuSample::take(Some(server.pid())));
    let mut level = Level {
        ok: 0,
        refused: 0,
        latency: report::latency_histogram()?,
        window,
        cpu,
    };
    while let Some(joined) = tasks.join_next().await {
        let (ok, refused, latency) = joined.context("a client task failed")??;
        level.ok += ok;
        level.refused += refused;
        level.latency.add(latency).context("merging histograms")?;
    }
    Ok(level)
}

/// The two-phase scenario: per operation (create pending, post, void).
async fn run_two_phase(
    args: &BatchesArgs,
    server: &Server,
    auth: &AsciiMetadataValue,
    ids: &Arc<Vec<String>>,
) -> anyhow::Result<[Phase; 3]> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let window = Duration::from_secs_f64(args.seconds);
    let end = measure_from + window;
    let mut channels = Vec::new();
    for _ in 0..args.two_phase_clients.div_ceil(8) {
        channels.push(connect(server).await?);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..args.two_phase_clients {
        let mut cx = ClientContext {
            client: TransferServiceClient::new(channels[client / 8].clone()),
            auth: auth.clone(),
            ids: ids.clone(),
            rng: Rng::new(0x2F4A5E + client as u64 * 7919),
        };
        tasks.spawn(async move {
            let mut phases = [Phase::new()?, Phase::new()?, Phase::new()?];
            let mut calls = 0u64;
            while Instant::now() < end {
                let mut request = cx.transfer();
                request.pending_timeout = Some(prost_types::Duration {
                    seconds: 3_600,
                    nanos: 0,
                });
                let timed = |phase: &mut Phase, sent: Instant, ok: bool| {
                    let done = Instant::now();
                    if !ok {
                        phase.refused += 1;
                    } else if done >= measure_from && done <= end {
                        phase.ok += 1;
                        report::record(&mut phase.latency, done - sent);
                    }
                };
                let sent = Instant::now();
                let created = cx.client.create_transfer(authorized(request, &cx.auth)).await;
                timed(&mut phases[0], sent, created.is_ok());
                let Ok(created) = created else { continue };
                let transfer_id = created.into_inner().id;
                let sent = Instant::now();
                calls += 1;
                if calls.is_multiple_of(2) {
                    let post = pb::PostPendingTransferRequest {
                        transfer_id,
                        value: None,
                    };
                    let answer = cx.client.post_pending_transfer(authorized(post, &cx.auth)).await;
                    timed(&mut phases[1], sent, answer.is_ok());
                } else {
                    let void = pb::VoidPendingTransferRequest { transfer_id };
                    let answer = cx.client.void_pending_transfer(authorized(void, &cx.auth)).await;
                    timed(&mut phases[2], sent, answer.is_ok());
                }
            }
            Ok::<_, anyhow::Error>(phases)
        });
    }
    tokio::time::sleep_until(end.into()).await;
    let mut levels = [Phase::new()?, Phase::new()?, Phase::new()?];
    while let Some(joined) = tasks.join_next().await {
        let phases = joined.context("a client task failed")??;
        for (total, phase) in levels.iter_mut().zip(phases) {
            total.ok += phase.ok;
            total.refused += phase.refused;
            total.latency.add(phase.latency).context("merging histograms")?;
        }
    }
    Ok(levels)
}

/// One two-phase operation's counts.
struct Phase {
    ok: u64,
    refused: u64,
    latency: Histogram<u64>,
}

impl Phase {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            ok: 0,
            refused: 0,
            latency: report::latency_histogram()?,
        })
    }
}
