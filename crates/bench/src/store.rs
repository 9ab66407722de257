//! `paycore-bench store`: the raw append rate of the embedded log
//! (`paycore_store::LogStore`), in process, without the engine or gRPC.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use paycore_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogOptions, LogStore, NewEvent, StreamName,
    StreamWrite, SyncMode, Version,
};
use uuid::Uuid;

use crate::report::{
    self, CpuSample, CpuUse, Machine, Rng, Table, base32_id, latency_columns, percent, rate, thousands,
};

/// Target of the batch-1,000 scenario on the reference 2-core VM.
const TARGET_BATCH_EVENTS_PER_SEC: f64 = 1_000_000.0;

/// Measure the append rate of the embedded event log.
///
/// Opens a fresh `LogStore` (default options: 128 MiB segments, group commit)
/// for every scenario and appends closed-loop for `--seconds`:
///
///   a) batch 1, concurrent: `--tasks` tasks, each appending one event per
///      request to its own stream (expected version checked), so the writer's
///      group commit batches them: events/s and append latency;
///
///   b) batch 1,000: `--batch-tasks` tasks appending requests of
///      `--batch-size` events (`--events-per-write` events per stream, ~100-byte
///      payloads, envelope metadata like the engine writes): events/s;
///
///   c) batch 1, single task: one append at a time, so every append waits for
///      its own fdatasync: the raw durable-commit latency.
///
/// Every scenario runs in durable mode (fdatasync before acknowledging, the
/// default and what `paycore serve` uses) and, for comparison, in NoSync
/// mode (no fdatasync: what the log costs without durability). Probes of
/// the disk itself come first, as the floor of durable latency: a 4 KiB
/// pwrite and fdatasync over already-written blocks, and the same into
/// fallocate'd space (what the log does: each sync also commits the extent
/// conversion).
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// How long each scenario runs, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,

    /// Where the logs are written (a fresh subdirectory per scenario, removed
    /// afterwards). Must be on the disk to measure, not a tmpfs.
    #[arg(long, default_value = "./target/bench-data")]
    dir: PathBuf,

    /// Concurrent appenders of the batch-1 scenario.
    #[arg(long, default_value_t = 64)]
    tasks: usize,

    /// Concurrent appenders of the batch scenario.
    #[arg(long, default_value_t = 4)]
    batch_tasks: usize,

    /// Events per request of the batch scenario.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,

    /// Events per stream within a batch request (a transfer writes a few
    /// events per stream; the engine batches many commands per request).
    #[arg(long, default_value_t = 4)]
    events_per_write: usize,

    /// Payload size of every event, in bytes.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,

    /// Sync modes to run, comma separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fsync,nosync,postgres"
    )]
    modes: Vec<Mode>,

    /// The PostgreSQL database of the `postgres` mode.
    #[arg(
        long,
        env = "PAYCORE_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,

    /// Scenarios to run, comma separated (a, b, c: see above).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "a,b,c")]
    scenarios: Vec<Which>,

    /// Keep the logs written (their paths are printed).
    #[arg(long)]
    keep: bool,
}

/// A scenario of the store benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// Batch 1, many concurrent appenders.
    A,
    /// Large batches from a few appenders.
    B,
    /// Batch 1, one appender.
    C,
}

/// A sync mode of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// fdatasync before acknowledging (durable; the default of paycore).
    Fsync,
    /// No fdatasync (not durable; for comparison only).
    Nosync,
    /// The PostgreSQL backend (durable: synchronous commit), on a fresh
    /// schema of `--pg-url`; skipped with a note if the database is down.
    Postgres,
}

impl Mode {
    fn sync(self) -> SyncMode {
        match self {
            Self::Fsync | Self::Postgres => SyncMode::Fsync,
            Self::Nosync => SyncMode::NoSync,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Fsync => "durable",
            Self::Nosync => "NoSync",
            Self::Postgres => "postgres",
        }
    }
}

/// One scenario: how many tasks append requests of how many events.
#[derive(Debug, Clone)]
struct Scenario {
    which: Which,
    name: String,
    tasks: usize,
    batch: usize,
    events_per_write: usize,
    target: Option<f64>,
}

#[derive(Debug)]
struct Outcome {
    requests: u64,
    events: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    bytes_on_disk: u64,
    cpu: CpuUse,
}

pub async fn run(mut args: StoreArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be positive");
    anyhow::ensure!(
        args.tasks > 0 && args.batch_tasks > 0,
        "--tasks and --batch-tasks must be positive"
    );
    anyhow::ensure!(
        args.batch_size > 0 && args.events_per_write > 0,
        "--batch-size and --events-per-write must be positive"
    );
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    args.dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", args.dir.display()))?;
    let machine = Machine::describe(&args.dir).await?;
    println!("paycore-bench store: embedded event log (LogStore) append rate\n");
    println!("{}", machine.render());

    let duration = Duration::from_secs_f64(args.seconds);
    let probe_time = Duration::from_secs(1).min(duration);
    println!(
        "Disk probe: 4 KiB pwrite + fdatasync, one at a time, {} s each",
        probe_time.as_secs_f64()
    );
    let mut probes = Table::new(&["file<", "syncs/s", "p50", "p99", "p99.9", "max"]);
    for (kind, label) in [
        (ProbeKind::Overwrite, "overwrite of written blocks"),
        (ProbeKind::Fallocated, "into fallocate'd space (as the log)"),
    ] {
        let probe = disk_probe(&args.dir, probe_time, kind).await?;
        let [p50, p99, p999, max] = latency_columns(&probe.latency);
        probes.row(vec![
            label.into(),
            rate(probe.requests as f64 / probe.elapsed.as_secs_f64()),
            p50,
            p99,
            p999,
            max,
        ]);
    }
    println!("{}", probes.render());

    let scenarios = [
        Scenario {
            which: Which::A,
            name: "a) batch 1, concurrent".into(),
            tasks: args.tasks,
            batch: 1,
            events_per_write: 1,
            target: None,
        },
        Scenario {
            which: Which::B,
            name: format!("b) batch {}", thousands(args.batch_size as u64)),
            tasks: args.batch_tasks,
            batch: args.batch_size,
            events_per_write: args.events_per_write,
            target: Some(TARGET_BATCH_EVENTS_PER_SEC),
        },
        Scenario {
            which: Which::C,
            name: "c) batch 1, single task".into(),
            tasks: 1,
            batch: 1,
            events_per_write: 1,
            target: None,
        },
    ];
    let mut table = Table::new(&[
        "scenario",
        "mode<",
        "tasks",
        "events/req",
        "requests",
        "events",
        "events/s",
        "MB/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "CPU",
        "others CPU",
        "target (events/s)<",
    ]);
    for mode in &args.modes {
        for scenario in scenarios.iter().filter(|s| args.scenarios.contains(&s.which)) {
            eprintln!(
                "running {} ({}, {} s)…",
                scenario.name,
                mode.label(),
                args.seconds
            );
            let outcome = match run_scenario(&args, scenario, *mode, duration).await {
                Ok(outcome) => outcome,
                Err(error) if *mode == Mode::Postgres => {
                    eprintln!("  PostgreSQL scenario skipped: {error:#}");
                    continue;
                }
                Err(error) => return Err(error),
            };
            let secs = outcome.elapsed.as_secs_f64();
            let per_sec = outcome.events as f64 / secs;
            let [p50, p99, p999, max] = latency_columns(&outcome.latency);
            let target = match scenario.target {
                Some(target) if *mode == Mode::Fsync => format!(
                    "≥ {} {}",
                    rate(target),
                    if per_sec >= target { "MET" } else { "MISSED" }
                ),
                Some(_) => "(durable only)".into(),
                None => String::new(),
            };
            table.row(vec![
                scenario.name.clone(),
                mode.label().into(),
                scenario.tasks.to_string(),
                thousands(scenario.batch as u64),
                thousands(outcome.requests),
                thousands(outcome.events),
                rate(per_sec),
                format!("{:.1}", outcome.bytes_on_disk as f64 / secs / 1e6),
                p50,
                p99,
                p999,
                max,
                percent(outcome.cpu.bench),
                percent(outcome.cpu.others),
                target,
            ]);
        }
    }
    println!(
        "Append rate ({} s per scenario; latency = one append request, submit to durable ack)",
        args.seconds
    );
    print!("{}", table.render());
    println!(
        "  b): a request is {} writes of {} events, each to its own stream; payloads of {} bytes;",
        args.batch_size.div_ceil(args.events_per_write),
        args.events_per_write,
        args.payload_bytes
    );
    println!(
        "  MB/s: log bytes written (frames incl. envelope and hash chain). CPU: this process \
         (appenders + log writer), % of one core;"
    );
    println!(
        "  others CPU: every other process on the machine. \
         NoSync rows are NOT durable, shown only to price durability."
    );
    println!();
    Ok(())
}

/// Runs one scenario on a fresh log.
async fn run_scenario(
    args: &StoreArgs,
    scenario: &Scenario,
    mode: Mode,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("store-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a directory in {}", args.dir.display()))?;
    let (store, log): (Arc<dyn EventStore>, Option<Arc<LogStore>>) = if mode == Mode::Postgres {
        // A schema of its own, so runs never see each other's events.
        let schema = format!("bench_{}", Uuid::now_v7().simple());
        paycore_store_postgres::migrate(&args.pg_url, &schema).await?;
        let options = paycore_store_postgres::PgOptions::with_schema(schema);
        let store = paycore_store_postgres::PgStore::connect(&args.pg_url, options).await?;
        (Arc::new(store), None)
    } else {
        let options = LogOptions {
            sync: mode.sync(),
            ..LogOptions::default()
        };
        let path = dir.path().to_path_buf();
        let (store, _report) = tokio::task::spawn_blocking(move || LogStore::open(path, options))
            .await
            .context("opening the log")?
            .context("opening the log")?;
        let log = Arc::new(store);
        (log.clone(), Some(log))
    };
    let payload = {
        let mut rng = Rng::new(7);
        Bytes::from(
            (0..args.payload_bytes)
                .map(|_| rng.next_u64() as u8)
                .collect::<Vec<u8>>(),
        )
    };

    let cpu_before = CpuSample::take(None);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..scenario.tasks {
        let store = store.clone();
        let payload = payload.clone();
        tasks.spawn(append_loop(
            store,
            task,
            scenario.batch,
            scenario.events_per_write,
            payload,
            deadline,
        ));
    }
    let mut requests = 0;
    let mut events = 0;
    let mut latency = report::latency_histogram()?;
    while let Some(result) = tasks.join_next().await {
        let (r, e, h) = result.context("an appender task failed")??;
        requests += r;
        events += e;
        latency.add(h).context("merging histograms")?;
    }
    let elapsed = start.elapsed();
    let cpu = CpuUse::between(&cpu_before, &CpuSample::take(None));
    if let Some(log) = log {
        tokio::task::spawn_blocking(move || log.close())
            .await
            .context("closing the log")?
            .context("closing the log")?;
    }
    let bytes_on_disk = segment_bytes_used(dir.path());
    if args.keep {
        let kept = dir.keep();
        eprintln!("  kept {}", kept.display());
    }
    Ok(Outcome {
        requests,
        events,
        elapsed,
        latency,
        bytes_on_disk,
        cpu,
    })
}

/// One appender: closed loop until `deadline`. Returns (requests, events, latency).
async fn append_loop(
    store: Arc<dyn EventStore>,
    task: usize,
    batch: usize,
    events_per_write: usize,
    payload: Bytes,
    deadline: Instant,
) -> anyhow::Result<(u64, u64, Histogram<u64>)> {
    let mut latency = report::latency_histogram()?;
    let writes_per_request = batch.div_ceil(events_per_write);
    // This task's streams and their current versions.
    let mut streams: Vec<(StreamName, Option<Version>)> = (0..writes_per_request)
        .map(|i| {
            let id = ((task as u128) << 64) | i as u128;
            (
                StreamName::new("account", &base32_id("acc", id ^ 0x5eed_0000_0000)),
                None,
            )
        })
        .collect();
    let project = base32_id("prj", 0x0123_4567_89ab_cdef);
    let actor = base32_id("key", 0x0fed_cba9_8765_4321);
    let event_type: Arc<str> = Arc::from("TransactionRecorded");
    let mut counter: u128 = (task as u128) << 96;
    let (mut requests, mut events) = (0u64, 0u64);
    while Instant::now() < deadline {
        let mut writes = Vec::with_capacity(writes_per_request);
        let mut remaining = batch;
        for (stream, version) in &streams {
            let n = remaining.min(events_per_write);
            remaining -= n;
            // One command's events share their metadata, as in the engine.
            counter += 1;
            let metadata = Arc::new(EventMetadata {
                correlation_id: Some(Uuid::from_u128(counter)),
                causation_id: None,
                idempotency_key: None,
                actor: Some(actor.clone()),
                project_id: Some(project.clone()),
                trace: None,
            });
            let event = NewEvent {
                event_type: event_type.clone(),
                schema_version: 1,
                metadata,
                payload: payload.clone(),
            };
            writes.push(StreamWrite {
                stream: stream.clone(),
                expected: ExpectedVersion::from_current(*version),
                events: vec![event; n],
            });
        }
        let request = AppendRequest { writes };
        let count = request.event_count() as u64;
        let sent = Instant::now();
        let result = store
            .append(request)
            .await
            .with_context(|| format!("append by task {task}"))?;
        report::record(&mut latency, sent.elapsed());
        for ((_, version), last) in streams.iter_mut().zip(&result.versions) {
            *version = Some(*last);
        }
        requests += 1;
        events += count;
    }
    Ok((requests, events, latency))
}

/// Bytes of log data in the segments. Segments are preallocated, so file
/// lengths overstate the data: every segment but the last counts whole (a
/// group never spans segments, so at most its unused tail is overcounted),
/// the last one up to where its data ends.
fn segment_bytes_used(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir.join("segments")) else {
        return 0;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    let mut total = 0;
    for (i, path) in paths.iter().enumerate() {
        let Ok(len) = std::fs::metadata(path).map(|m| m.len()) else {
            continue;
        };
        total += if i + 1 == paths.len() {
            data_end(path, len).unwrap_or(len)
        } else {
            len
        };
    }
    total
}

/// Where the data of a preallocated segment ends: the start of the trailing
/// run of zero bytes (found by binary search over 64 KiB blocks, then exactly).
fn data_end(path: &Path, len: u64) -> Option<u64> {
    const BLOCK: u64 = 64 << 10;
    let file = File::open(path).ok()?;
    let mut buf = vec![0u8; BLOCK as usize];
    let block_is_zero = |index: u64, buf: &mut [u8]| -> Option<bool> {
        let offset = index * BLOCK;
        let n = (len - offset).min(BLOCK) as usize;
        file.read_exact_at(&mut buf[..n], offset).ok()?;
        Some(buf[..n].iter().all(|&b| b == 0))
    };
    let blocks = len.div_ceil(BLOCK);
    // First all-zero block such that every later block is zero too; data is
    // written front to back, so binary search on "block is zero" works.
    let (mut lo, mut hi) = (0, blocks);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if block_is_zero(mid, &mut buf)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo == 0 {
        return Some(0);
    }
    let last = lo - 1;
    let offset = last * BLOCK;
    let n = (len - offset).min(BLOCK) as usize;
    file.read_exact_at(&mut buf[..n], offset).ok()?;
    let used = buf[..n].iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    Some(offset + used as u64)
}

/// How the disk probe lays out its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    /// Blocks written (with zeros) and synced beforehand: a pure overwrite,
    /// fdatasync only flushes data.
    Overwrite,
    /// Space reserved with `fallocate` (unwritten extents), written front
    /// to back, as the log writes its segments: every fdatasync also commits
    /// the file system's record of the newly written extents.
    Fallocated,
}

/// The disk's own durable-write latency: 4 KiB `pwrite` + `fdatasync`, one
/// at a time, never extending the file.
async fn disk_probe(dir: &Path, duration: Duration, kind: ProbeKind) -> anyhow::Result<Outcome> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Outcome> {
        const SIZE: u64 = 64 << 20;
        let file = tempfile::tempfile_in(&dir).context("creating the probe file")?;
        match kind {
            ProbeKind::Overwrite => {
                let zeros = vec![0u8; 1 << 20];
                for i in 0..SIZE / (1 << 20) {
                    file.write_all_at(&zeros, i << 20).context("probe write")?;
                }
            }
            ProbeKind::Fallocated => {
                rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, SIZE)
                    .context("probe fallocate")?;
            }
        }
        file.sync_all().context("probe sync")?;
        let block = vec![0xa5u8; 4096];
        let mut latency = report::latency_histogram()?;
        let start = Instant::now();
        let mut offset = 0;
        let mut requests = 0;
        while start.elapsed() < duration && offset < SIZE {
            let sent = Instant::now();
            file.write_all_at(&block, offset).context("probe write")?;
            file.sync_data().context("probe fdatasync")?;
            report::record(&mut latency, sent.elapsed());
            offset += 4096;
            requests += 1;
        }
        Ok(Outcome {
            requests,
            events: requests,
            elapsed: start.elapsed(),
            latency,
            bytes_on_disk: requests * 4096,
            cpu: CpuUse::default(),
        })
    })
    .await
    .context("disk probe")?
}
