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
/// a call (durable commit + read-your-writes). Then the single-transfer
/// operations, each measured alone with `--two-phase-clients` clients:
/// plain `CreateTransfer` (the rate to compare with, in the same run),
/// creating pending transfers, posting half of those and voiding the
/// other half. Afterwards it checks that money is conserved and
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
        "of plain",
    ]);
    eprintln!(
        "running single and two-phase transfers with {} clients…",
        args.two_phase_clients
    );
    let phases = run_two_phase(args, server, &auth, &ids).await?;
    let per_sec = |phase: &Phase| phase.ok as f64 / phase.window.as_secs_f64().max(f64::EPSILON);
    let plain = per_sec(&phases[0]);
    for (name, phase) in [
        ("plain transfer", &phases[0]),
        ("create pending", &phases[1]),
        ("post", &phases[2]),
        ("void", &phases[3]),
    ] {
        let [p50, p99, _, max] = latency_columns(&phase.latency);
        table.row(vec![
            name.into(),
            args.two_phase_clients.to_string(),
            thousands(phase.ok),
            rate(per_sec(phase)),
            p50,
            p99,
            max,
            thousands(phase.refused),
            percent(Some(100.0 * per_sec(phase) / plain.max(f64::EPSILON))),
        ]);
    }
    println!(
        "Single-transfer operations, each alone (CreateTransfer, then CreateTransfer with a \
         pending_timeout for {} s after {} s warm-up, then PostPendingTransfer on half of those \
         and VoidPendingTransfer on the other half until they run out or {} s pass)",
        args.seconds, args.warmup, args.seconds
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

/// The single-transfer operations, each measured alone with every client
/// doing it: plain `CreateTransfer` (the rate the two-phase ones are
/// compared with, in the same run), then creating pending transfers, then
/// posting half of them and voiding the other half. Posts and voids run
/// until the transfers created run out or the window ends; whatever is left
/// is voided afterwards, unmeasured, so no hold stays.
async fn run_two_phase(
    args: &BatchesArgs,
    server: &Server,
    auth: &AsciiMetadataValue,
    ids: &Arc<Vec<String>>,
) -> anyhow::Result<[Phase; 4]> {
    let mut channels = Vec::new();
    for _ in 0..args.two_phase_clients.div_ceil(8) {
        channels.push(connect(server).await?);
    }
    let contexts = |seed: u64| {
        (0..args.two_phase_clients)
            .map(|client| ClientContext {
                client: TransferServiceClient::new(channels[client / 8].clone()),
                auth: auth.clone(),
                ids: ids.clone(),
                rng: Rng::new(seed + client as u64 * 7919),
            })
            .collect::<Vec<_>>()
    };
    let plain = run_operation(args, contexts(0x51D6), |mut cx| async move {
        let request = authorized(cx.transfer(), &cx.auth);
        let answer = cx.client.create_transfer(request).await;
        (cx, answer.is_ok())
    })
    .await?;
    let created = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let pending = {
        let created = created.clone();
        run_operation(args, contexts(0x2F4A5E), move |mut cx| {
            let created = created.clone();
            async move {
                let mut request = cx.transfer();
                request.pending_timeout = Some(prost_types::Duration {
                    seconds: 3_600,
                    nanos: 0,
                });
                let answer = cx.client.create_transfer(authorized(request, &cx.auth)).await;
                let ok = match answer {
                    Ok(created_transfer) => {
                        created.lock().await.push(created_transfer.into_inner().id);
                        true
                    }
                    Err(_) => false,
                };
                (cx, ok)
            }
        })
        .await?
    };
    let created = std::mem::take(&mut *created.lock().await);
    let (to_post, to_void): (Vec<_>, Vec<_>) = created
        .into_iter()
        .enumerate()
        .partition(|(index, _)| index % 2 == 0);
    let to_post = Arc::new(tokio::sync::Mutex::new(
        to_post.into_iter().map(|(_, id)| id).collect::<Vec<_>>(),
    ));
    let to_void = Arc::new(tokio::sync::Mutex::new(
        to_void.into_iter().map(|(_, id)| id).collect::<Vec<_>>(),
    ));
    let posted = {
        let to_post = to_post.clone();
        run_until_empty(
            args,
            contexts(0x9057),
            to_post,
            |mut cx, transfer_id| async move {
                let post = pb::PostPendingTransferRequest {
                    transfer_id,
                    value: None,
                };
                let answer = cx.client.post_pending_transfer(authorized(post, &cx.auth)).await;
                (cx, answer.is_ok())
            },
        )
        .await?
    };
    let voided = {
        let to_void = to_void.clone();
        run_until_empty(args, contexts(0x701D), to_void, void_call).await?
    };
    // Unmeasured: end whatever the windows left pending.
    let mut left = std::mem::take(&mut *to_post.lock().await);
    left.append(&mut *to_void.lock().await);
    let mut cx = contexts(0).swap_remove(0);
    for transfer_id in left {
        let (back, ok) = void_call(cx, transfer_id.clone()).await;
        cx = back;
        anyhow::ensure!(
            ok,
            "voiding pending transfer {transfer_id} after the windows failed"
        );
    }
    Ok([plain, pending, posted, voided])
}

async fn void_call(mut cx: ClientContext, transfer_id: String) -> (ClientContext, bool) {
    let void = pb::VoidPendingTransferRequest { transfer_id };
    let answer = cx.client.void_pending_transfer(authorized(void, &cx.auth)).await;
    (cx, answer.is_ok())
}

/// Every client calling `operation` in a closed loop for the warm-up and
/// the window; the calls answered inside the window are counted.
async fn run_operation<F, Fut>(
    args: &BatchesArgs,
    contexts: Vec<ClientContext>,
    operation: F,
) -> anyhow::Result<Phase>
where
    F: Fn(ClientContext) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (ClientContext, bool)> + Send,
{
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for mut cx in contexts {
        let operation = operation.clone();
        tasks.spawn(async move {
            let mut phase = Phase::new()?;
            while Instant::now() < end {
                let sent = Instant::now();
                let (back, ok) = operation(cx).await;
                cx = back;
                phase.count(sent, ok, measure_from, end);
            }
            Ok::<_, anyhow::Error>(phase)
        });
    }
    Phase::merge(tasks, Duration::from_secs_f64(args.seconds)).await
}

/// Every client calling `operation` on the IDs of `work` until none is
/// left or the window ends (no warm-up: the server is warm by then); the
/// rate is over the time the calls took.
async fn run_until_empty<F, Fut>(
    args: &BatchesArgs,
    contexts: Vec<ClientContext>,
    work: Arc<tokio::sync::Mutex<Vec<String>>>,
    operation: F,
) -> anyhow::Result<Phase>
where
    F: Fn(ClientContext, String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (ClientContext, bool)> + Send,
{
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for mut cx in contexts {
        let (operation, work) = (operation.clone(), work.clone());
        tasks.spawn(async move {
            let mut phase = Phase::new()?;
            while Instant::now() < end {
                let Some(id) = work.lock().await.pop() else { break };
                let sent = Instant::now();
                let (back, ok) = operation(cx, id).await;
                cx = back;
                phase.count(sent, ok, start, end);
            }
            Ok::<_, anyhow::Error>(phase)
        });
    }
    let mut phase = Phase::merge(tasks, Duration::ZERO).await?;
    phase.window = start.elapsed().min(Duration::from_secs_f64(args.seconds));
    Ok(phase)
}

/// One operation's counts.
struct Phase {
    ok: u64,
    refused: u64,
    latency: Histogram<u64>,
    /// The time the counted calls were made in.
    window: Duration,
}

impl Phase {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            ok: 0,
            refused: 0,
            latency: report::latency_histogram()?,
            window: Duration::ZERO,
        })
    }

    /// A call sent at `sent`: counted when refused, or answered between
    /// `from` and `end`.
    fn count(&mut self, sent: Instant, ok: bool, from: Instant, end: Instant) {
        let done = Instant::now();
        if !ok {
            self.refused += 1;
        } else if done >= from && done <= end {
            self.ok += 1;
            report::record(&mut self.latency, done - sent);
        }
    }

    /// The clients' counts together, over `window`.
    async fn merge(
        mut tasks: tokio::task::JoinSet<anyhow::Result<Phase>>,
        window: Duration,
    ) -> anyhow::Result<Phase> {
        let mut total = Phase::new()?;
        total.window = window;
        while let Some(joined) = tasks.join_next().await {
            let phase = joined.context("a client task failed")??;
            total.ok += phase.ok;
            total.refused += phase.refused;
            total.latency.add(phase.latency).context("merging histograms")?;
        }
        Ok(total)
    }
}
