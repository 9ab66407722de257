//! `paycore-bench history`: the history's users at scale. Generates a valid
//! log of `--events` events (10 million by default) once, then times what
//! operators run on it: `paycore audit`, `paycore projections rebuild`, and a
//! server start on that log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use paycore_domain::events::{
    AccountOpened, ApiKeyCreated, ProjectBalanceChanged, ProjectCreated, TransactionRecorded, TransferCreated,
};
use paycore_domain::project::api_key::{ApiKeyToken, KeyKind};
use paycore_domain::{
    AccountId, ApiKeyId, Currency, Environment, Event, Meta, Money, ProjectId, StreamRef, Timestamp,
    Transaction, TransactionId, TransactionKind, TransferId,
};
use paycore_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogOptions, LogStore, NewEvent, StreamWrite,
    SyncMode,
};
use uuid::Uuid;

use crate::cold_reads::{self, Reader};
use crate::report::{Machine, Rng, Table, rate, thousands};

/// Aims of the issue on memory bounded by configuration, on the reference
/// 2-core VM.
const TARGET_REBUILD_EVENTS_PER_SEC: f64 = 1_000_000.0;
const TARGET_START: Duration = Duration::from_secs(1);

/// Bump when the generated history changes, so an old one is regenerated.
const GENERATOR_VERSION: u32 = 2;
/// Beside the generated log: one line per account, `<API key> <account ID>`,
/// for the cold-read step.
const READERS_FILE: &str = "readers.txt";
const LISTEN_LINE: &str = "paycore listening on ";

/// Audit replay, projection rebuild and server start over a large log.
///
/// The log is generated once under `--data-dir` (reused while its event
/// count and generator version match): `--projects` sandbox projects with
/// `--accounts-per-project` EUR accounts each, funded once, then random
/// transfers (each one: the transfer and its two transactions, one atomic
/// append) until the log holds `--events` events. It is a valid history: the
/// audit must find no violation, or the benchmark fails.
///
/// Then it times, with the release binary: `paycore projections rebuild`
/// (every projection from position 0, no server running), `paycore audit`
/// (whole log; it compares with the read models of the snapshots just
/// written) and `paycore serve` from start to its first answer (read-model
/// snapshots present, as after any clean stop), then `--reads` reads on a
/// freshly started server (cold caches): their latency and the server's
/// resident set after them, per million events of history.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Events in the generated log.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,

    #[arg(long, default_value_t = 10)]
    projects: usize,

    #[arg(long, default_value_t = 1_000)]
    accounts_per_project: usize,

    /// Where the log is generated and kept between runs.
    #[arg(long, default_value = "target/bench-data/history")]
    data_dir: PathBuf,

    /// The `paycore` binary to time.
    #[arg(long, default_value = "target/release/paycore")]
    server_bin: PathBuf,

    /// Time only server starts (no rebuild, no audit): needs the read-model
    /// snapshots of an earlier full run.
    #[arg(long)]
    only_start: bool,

    /// How many server starts to time, one after the other.
    #[arg(long, default_value_t = 1)]
    starts: usize,

    /// Stop each timed server with SIGKILL instead of SIGTERM, so that every
    /// start but the first is a start after a crash.
    #[arg(long)]
    kill: bool,

    /// GetAccount and ListTransactions requests (half each, random accounts,
    /// one at a time) on a freshly started server; 0 skips the step.
    #[arg(long, default_value_t = 2_000)]
    reads: usize,
}

pub async fn run(args: HistoryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.server_bin.is_file(),
        "{} not found (build it: cargo build --release -p paycore-cli)",
        args.server_bin.display()
    );
    let generated = ensure_log(&args).await?;
    println!("{}", Machine::describe(&args.data_dir).await?.render());
    let mut table = Table::new(&["step", "events", "seconds", "events/s", "aim"]);
    if let Some((events, elapsed)) = generated {
        table.row(vec![
            "generate (append, no fsync)".into(),
            thousands(events),
            format!("{:.1}", elapsed.as_secs_f64()),
            rate(events as f64 / elapsed.as_secs_f64()),
            String::new(),
        ]);
    }
    let data = args.data_dir.join("data");
    if args.only_start {
        time_starts(&args, &data, table).await?;
        return time_reads(&args, &data).await;
    }

    let (rebuild, said) = time_command(&args.server_bin, &["projections", "rebuild", "--all"], &data)?;
    let rebuild_rate = args.events as f64 / rebuild.as_secs_f64();
    let aim = |rate_reached: f64| {
        format!(
            "≥ {} {}",
            rate(TARGET_REBUILD_EVENTS_PER_SEC),
            verdict(rate_reached >= TARGET_REBUILD_EVENTS_PER_SEC)
        )
    };
    table.row(vec![
        "paycore projections rebuild --all".into(),
        thousands(args.events),
        format!("{:.1}", rebuild.as_secs_f64()),
        rate(rebuild_rate),
        aim(rebuild_rate),
    ]);
    if let Some(folding) = folding_seconds(&said) {
        let folding_rate = args.events as f64 / folding;
        table.row(vec![
            "  of which read, decode, fold, write".into(),
            thousands(args.events),
            format!("{folding:.1}"),
            rate(folding_rate),
            aim(folding_rate),
        ]);
    }

    let (audit, _) = time_command(&args.server_bin, &["audit", "--json"], &data)?;
    let audit_rate = args.events as f64 / audit.as_secs_f64();
    table.row(vec![
        "paycore audit (whole log)".into(),
        thousands(args.events),
        format!("{:.1}", audit.as_secs_f64()),
        rate(audit_rate),
        String::new(),
    ]);

    println!(
        "audit and rebuild time whole commands: opening the log (its on-disk index), reading every \
         segment, decoding and folding every event, writing the result."
    );
    time_starts(&args, &data, table).await?;
    time_reads(&args, &data).await
}

/// Reads on a server started just before (its caches empty), with the
/// page cache of the OS dropped first when this process may.
async fn time_reads(args: &HistoryArgs, data: &Path) -> anyhow::Result<()> {
    if args.reads == 0 {
        return Ok(());
    }
    let readers = Reader::load(&args.data_dir.join(READERS_FILE))?;
    let os_cache = if cold_reads::drop_os_page_cache() {
        "OS page cache dropped before the start"
    } else {
        "OS page cache not dropped (needs root): the log and models may be in it"
    };
    let server = Server::start(&args.server_bin, data).await?;
    let rss_started = rss_kib(server.child.id());
    let measured = cold_reads::measure(&server.address, &readers, args.reads).await;
    let rss_after = rss_kib(server.child.id());
    server.stop(false)?;
    let measured = measured?;
    println!("{}", measured.render(os_cache));
    let millions = args.events as f64 / 1e6;
    println!(
        "server RSS: {} MiB after start, {} MiB after the reads; {:.1} MiB per million events of history",
        rss_started / 1024,
        rss_after / 1024,
        rss_after as f64 / 1024.0 / millions.max(f64::MIN_POSITIVE)
    );
    Ok(())
}

async fn time_starts(args: &HistoryArgs, data: &Path, mut table: Table) -> anyhow::Result<()> {
    for i in 0..args.starts.max(1) {
        let (start, rss_kib) = time_start(&args.server_bin, data, args.kill).await?;
        let after_crash = if args.kill && i > 0 { ", after kill -9" } else { "" };
        table.row(vec![
            format!(
                "paycore serve: start to first answer{after_crash} (RSS then {} MiB)",
                rss_kib / 1024
            ),
            thousands(args.events),
            format!("{:.2}", start.as_secs_f64()),
            String::new(),
            format!("< {} s {}", TARGET_START.as_secs(), verdict(start < TARGET_START)),
        ]);
    }
    println!("{}", table.render());
    Ok(())
}

/// The resident set of process `pid`, in KiB (0 when unknown).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn verdict(met: bool) -> &'static str {
    if met { "(met)" } else { "(missed)" }
}

/// Generates the log unless a matching one is there. Returns what was
/// generated (events, time), `None` when the old one was reused.
async fn ensure_log(args: &HistoryArgs) -> anyhow::Result<Option<(u64, Duration)>> {
    let marker = args.data_dir.join("GENERATED");
    let expected = format!(
        "generator {GENERATOR_VERSION}, {} events, {} projects, {} accounts per project\n",
        args.events, args.projects, args.accounts_per_project
    );
    if std::fs::read_to_string(&marker).is_ok_and(|found| found == expected) {
        println!("reusing the generated log in {}", args.data_dir.display());
        return Ok(None);
    }
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("removing the old {}", args.data_dir.display()))?;
    }
    let log_dir = args.data_dir.join("data").join("log");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    println!(
        "generating {} events in {} …",
        thousands(args.events),
        log_dir.display()
    );
    let started = Instant::now();
    let events = generate(args, &log_dir).await?;
    let elapsed = started.elapsed();
    std::fs::write(&marker, expected).with_context(|| format!("writing {}", marker.display()))?;
    Ok(Some((events, elapsed)))
}

/// Transfers per append request while generating.
const TRANSFERS_PER_APPEND: usize = 300;
/// What each generated account is funded with, in minor units (1,000,000.00 EUR).
const FUNDING: i64 = 100_000_000;

struct Generator {
    store: Arc<LogStore>,
    rng: Rng,
    /// Microseconds of the event being generated: one per event.
    clock: i64,
    events: u64,
}

struct GeneratedProject {
    id: ProjectId,
    /// The project's secret API key, as a client presents it.
    key: String,
    metadata: Arc<EventMetadata>,
    accounts: Vec<AccountId>,
    balances: Vec<i64>,
}

async fn generate(args: &HistoryArgs, log_dir: &Path) -> anyhow::Result<u64> {
    let options = LogOptions {
        sync: SyncMode::NoSync,
        ..LogOptions::default()
    };
    let (store, _) = LogStore::open(log_dir, options).context("opening the log to generate")?;
    let mut generator = Generator {
        store: Arc::new(store),
        rng: Rng::new(0x5eed),
        clock: 1_767_225_600_000_000, // 2026-01-01T00:00:00Z
        events: 0,
    };
    let mut projects = Vec::with_capacity(args.projects);
    for _ in 0..args.projects {
        projects.push(generator.open_project(args.accounts_per_project).await?);
    }
    while generator.events < args.events {
        let project = generator.rng.below(projects.len() as u64) as usize;
        let remaining = (args.events - generator.events).div_ceil(3);
        let transfers = TRANSFERS_PER_APPEND.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        generator.transfers(&mut projects[project], transfers).await?;
    }
    generator.store.close().context("closing the generated log")?;
    let readers: Vec<Reader> = projects
        .iter()
        .flat_map(|project| {
            project.accounts.iter().map(|account| Reader {
                key: project.key.clone(),
                account: account.to_string(),
            })
        })
        .collect();
    Reader::save(&args.data_dir.join(READERS_FILE), &readers)?;
    Ok(generator.events)
}

impl Generator {
    fn now(&mut self) -> Timestamp {
        self.clock += 1;
        Timestamp::from_micros(self.clock)
    }

    async fn append(
        &mut self,
        metadata: &Arc<EventMetadata>,
        events: Vec<(StreamRef, Event)>,
    ) -> anyhow::Result<()> {
        self.events += events.len() as u64;
        let writes = events
            .into_iter()
            .map(|(stream, event)| {
                let encoded = event.encode();
                StreamWrite {
                    stream: stream.name().into(),
                    expected: ExpectedVersion::Any,
                    events: vec![NewEvent {
                        event_type: encoded.event_type.into(),
                        schema_version: encoded.schema_version,
                        metadata: metadata.clone(),
                        payload: Bytes::from(encoded.payload),
                    }],
                }
            })
            .collect();
        self.store
            .append(AppendRequest { writes })
            .await
            .context("appending generated events")?;
        Ok(())
    }

    /// A project, its accounts, each funded by a sandbox balance update.
    async fn open_project(&mut self, accounts: usize) -> anyhow::Result<GeneratedProject> {
        let id = ProjectId::from_uuid(Uuid::now_v7());
        let metadata = Arc::new(EventMetadata {
            actor: Some("paycore-bench".into()),
            project_id: Some(id.to_string()),
            ..EventMetadata::default()
        });
        let created = Event::ProjectCreated(ProjectCreated {
            id,
            name: format!("bench {id}"),
            environment: Environment::Sandbox,
            meta: Meta::default(),
            created_at: self.now(),
        });
        self.append(&metadata, vec![(StreamRef::Project(id), created)])
            .await?;
        let key_id = ApiKeyId::from_uuid(Uuid::now_v7());
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        let key = ApiKeyToken::new(Environment::Sandbox, KeyKind::Secret, key_id, secret);
        let key_created = Event::ApiKeyCreated(ApiKeyCreated {
            id: key_id,
            project_id: id,
            kind: KeyKind::Secret,
            secret_hash: key.secret_hash(),
            created_at: self.now(),
        });
        self.append(&metadata, vec![(StreamRef::ApiKey(key_id), key_created)])
            .await?;
        let mut project = GeneratedProject {
            id,
            key: key.to_string(),
            metadata,
            accounts: Vec::with_capacity(accounts),
            balances: Vec::with_capacity(accounts),
        };
        let mut total = 0;
        for _ in 0..accounts {
            let account = AccountId::from_uuid(Uuid::now_v7());
            let opened = Event::AccountOpened(AccountOpened {
                id: account,
                project_id: id,
                customer_id: None,
                currency: Currency::EUR,
                allow_negative_balance: false,
                meta: Meta::default(),
                created_at: self.now(),
            });
            let funding = Transaction {
                id: TransactionId::from_uuid(Uuid::now_v7()),
                account_id: account,
                project_id: id,
                kind: TransactionKind::Magic,
                value: Money::new(FUNDING, Currency::EUR),
                balance_after: Money::new(FUNDING, Currency::EUR),
                created_at: self.now(),
            };
            total += FUNDING;
            let changed = Event::ProjectBalanceChanged(ProjectBalanceChanged {
                project_id: id,
                delta: Money::new(FUNDING, Currency::EUR),
                total_after: Money::new(total, Currency::EUR),
                account_id: account,
                transaction_id: funding.id,
            });
            let metadata = project.metadata.clone();
            self.append(&metadata, vec![(StreamRef::Account(account), opened)])
                .await?;
            self.append(
                &metadata,
                vec![
                    (
                        StreamRef::Account(account),
                        Event::TransactionRecorded(TransactionRecorded { transaction: funding }),
                    ),
                    (StreamRef::ProjectBalance(id, Currency::EUR), changed),
                ],
            )
            .await?;
            project.accounts.push(account);
            project.balances.push(FUNDING);
        }
        Ok(project)
    }

    /// `count` transfers between random distinct accounts of `project`, in
    /// one append (as one batch of the server's decider would be).
    async fn transfers(&mut self, project: &mut GeneratedProject, count: usize) -> anyhow::Result<()> {
        let accounts = project.accounts.len() as u64;
        let mut events = Vec::with_capacity(count * 3);
        for _ in 0..count {
            let from = self.rng.below(accounts) as usize;
            let to = (from + 1 + self.rng.below(accounts - 1) as usize) % accounts as usize;
            let value = 1 + self.rng.below(10_000) as i64;
            if project.balances[from] < value {
                continue;
            }
            project.balances[from] -= value;
            project.balances[to] += value;
            let id = TransferId::from_uuid(Uuid::now_v7());
            let created_at = self.now();
            let leg = |account: AccountId, kind, value: i64, after: i64| {
                Event::TransactionRecorded(TransactionRecorded {
                    transaction: Transaction {
                        id: TransactionId::from_uuid(Uuid::now_v7()),
                        account_id: account,
                        project_id: project.id,
                        kind,
                        value: Money::new(value, Currency::EUR),
                        balance_after: Money::new(after, Currency::EUR),
                        created_at,
                    },
                })
            };
            let source = leg(
                project.accounts[from],
                TransactionKind::TransferSource(id),
                -value,
                project.balances[from],
            );
            let destination = leg(
                project.accounts[to],
                TransactionKind::TransferDestination(id),
                value,
                project.balances[to],
            );
            let (Event::TransactionRecorded(source_tx), Event::TransactionRecorded(destination_tx)) =
                (&source, &destination)
            else {
                unreachable!("legs are transactions")
            };
            let created = Event::TransferCreated(TransferCreated {
                id,
                project_id: project.id,
                source_account_id: project.accounts[from],
                destination_account_id: project.accounts[to],
                source_transaction_id: source_tx.transaction.id,
                destination_transaction_id: destination_tx.transaction.id,
                value: Money::new(value, Currency::EUR),
                meta: Meta::default(),
                created_at,
                exchange: None,
            });
            events.push((StreamRef::Transfer(id), created));
            events.push((StreamRef::Account(project.accounts[from]), source));
            events.push((StreamRef::Account(project.accounts[to]), destination));
        }
        if events.is_empty() {
            return Ok(());
        }
        let metadata = project.metadata.clone();
        self.append(&metadata, events).await
    }
}

/// The seconds `paycore projections rebuild` reports for its own work
/// ("… N events in S s …"), without opening and closing the log.
fn folding_seconds(said: &str) -> Option<f64> {
    let (_, after) = said.split_once(" events in ")?;
    after.split_once(" s")?.0.parse().ok()
}

/// Runs `bin <args> --data-dir <data>` to completion and times it; a
/// non-zero exit fails the benchmark (with the command's stderr). Returns
/// the time and what the command printed.
fn time_command(bin: &Path, args: &[&str], data: &Path) -> anyhow::Result<(Duration, String)> {
    println!("running paycore {} …", args.join(" "));
    let started = Instant::now();
    let output = Command::new(bin)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!(
            "`paycore {}` failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((elapsed, String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// Starts `paycore serve` on `data`, times it until a health check answers
/// SERVING, reads its resident set then, and stops it with SIGTERM (or
/// SIGKILL with `kill`).
async fn time_start(bin: &Path, data: &Path, kill: bool) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let server = Server::start(bin, data).await?;
    let measured = (started.elapsed(), rss_kib(server.child.id()));
    server.stop(kill)?;
    Ok(measured)
}

/// A `paycore serve` child process that has answered a health check.
struct Server {
    child: std::process::Child,
    address: String,
}

impl Server {
    async fn start(bin: &Path, data: &Path) -> anyhow::Result<Self> {
        use std::io::{BufRead, BufReader};
        println!("starting paycore serve on the log …");
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let address = tokio::task::spawn_blocking(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| line.strip_prefix(LISTEN_LINE).map(str::to_owned))
        })
        .await?;
        let server = match address {
            Some(address) => Self { child, address },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server exited before listening");
            }
        };
        if let Err(error) = health_check(&server.address).await {
            server.stop(true)?;
            return Err(error);
        }
        Ok(server)
    }

    /// Stops the server with SIGTERM (a clean stop, which must succeed) or
    /// SIGKILL (`kill`).
    fn stop(mut self, kill: bool) -> anyhow::Result<()> {
        let signal = if kill { "-KILL" } else { "-TERM" };
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
        if !sent.is_ok_and(|sent| sent.success()) {
            let _ = self.child.kill();
        }
        let status = self.child.wait().context("waiting for the server to stop")?;
        anyhow::ensure!(kill || status.success(), "the server stopped with {status}");
        Ok(())
    }
}

async fn health_check(address: &str) -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect()
        .await
        .context("connecting to the server")?;
    let mut client = HealthClient::new(channel);
    let answer = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .context("health check")?;
    anyhow::ensure!(answer.into_inner().status == 1, "the server is not SERVING");
    Ok(())
}
