//! kv-compare: redb vs fjall vs LMDB (heed) on paycore's read-model workload.
//!
//! `kv-compare run --store S` loads one store in this process and measures
//! it; `kv-compare compare` (the default of `make bench-kv`) runs `run` as a
//! child process per store and round, alternating the order, and prints the
//! medians. See the README's Benchmarks section.

mod stores;
mod sys;
mod workload;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stores::{Kind, Options, Store, Sync};
use workload::{Rng, account_id, tx_id};

const DEFAULT_DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/data");
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(about = "Compare embedded key-value stores on paycore's read-model workload")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Load and measure one store in this process.
    Run(RunArgs),
    /// Run every store in its own process, alternating, and print medians.
    Compare(CompareArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Transactions (events) to write into the one project.
    #[arg(long, default_value_t = 5_000_000)]
    count: u64,
    /// Accounts the transactions are spread over.
    #[arg(long, default_value_t = 1_000)]
    accounts: u32,
    /// Transactions per write transaction.
    #[arg(long, default_value_t = 4_096)]
    batch: u64,
    /// Periodic sync: a durable commit at least every this many batches...
    #[arg(long, default_value_t = 64)]
    sync_batches: u64,
    /// ...and at least every this many milliseconds.
    #[arg(long, default_value_t = 1_000)]
    sync_ms: u64,
    /// Store cache for the load and the warm reads (redb, fjall), MiB.
    #[arg(long, default_value_t = 1_024)]
    cache_mib: u64,
    /// Store cache for the cold and small-cache reads (redb, fjall), MiB.
    #[arg(long, default_value_t = 64)]
    small_cache_mib: u64,
    /// LMDB map size (the most the file can grow to), GiB.
    #[arg(long, default_value_t = 64)]
    lmdb_map_gib: u64,
    /// Seconds each read measurement runs.
    #[arg(long, default_value_t = 10.0)]
    read_seconds: f64,
    /// Seconds of random reads before the warm measurements.
    #[arg(long, default_value_t = 5.0)]
    warmup_seconds: f64,
    /// Longest wait for background flushes/compactions after the load.
    #[arg(long, default_value_t = 120.0)]
    settle_seconds: f64,
    /// Items per page.
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// Each run works in a fresh directory under this one, deleted after.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Keep the run's data directory.
    #[arg(long)]
    keep: bool,
    /// fjall: flush memtables at every close (a `#[doc(hidden)]` fjall API),
    /// so reopening replays no journal.
    #[arg(long)]
    fjall_flush_on_close: bool,
}

impl Common {
    fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--count={}", self.count),
            format!("--accounts={}", self.accounts),
            format!("--batch={}", self.batch),
            format!("--sync-batches={}", self.sync_batches),
            format!("--sync-ms={}", self.sync_ms),
            format!("--cache-mib={}", self.cache_mib),
            format!("--small-cache-mib={}", self.small_cache_mib),
            format!("--lmdb-map-gib={}", self.lmdb_map_gib),
            format!("--read-seconds={}", self.read_seconds),
            format!("--warmup-seconds={}", self.warmup_seconds),
            format!("--settle-seconds={}", self.settle_seconds),
            format!("--page={}", self.page),
            format!("--data-dir={}", self.data_dir.display()),
        ];
        if self.keep {
            args.push("--keep".into());
        }
        if self.fjall_flush_on_close {
            args.push("--fjall-flush-on-close".into());
        }
        args
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    #[arg(long, value_enum)]
    store: Kind,
    #[arg(long, value_enum, default_value_t = Sync::Periodic)]
    sync: Sync,
    /// Stop after the load (size and RSS), no reads.
    #[arg(long)]
    writes_only: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Stores to compare.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Kind::Redb, Kind::Fjall, Kind::Lmdb])]
    stores: Vec<Kind>,
    /// Full runs per store (the order rotates every round).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Skip the write-only runs with an fsync on every batch.
    #[arg(long)]
    no_every_batch: bool,
    #[command(flatten)]
    common: Common,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(args) => run(&args),
        Cmd::Compare(args) => compare(&args),
    }
}

// ---------------------------------------------------------------- run

/// Figures of one run, printed as one `result key=value ...` line.
#[derive(Default)]
struct Results(BTreeMap<String, f64>);

impl Results {
    fn set(&mut self, key: &str, value: f64) {
        self.0.insert(key.to_string(), value);
    }

    fn rss(&mut self, prefix: &str) {
        let r = sys::rss();
        self.set(&format!("{prefix}_total_mib"), r.total as f64 / 1024.0);
        self.set(&format!("{prefix}_anon_mib"), r.anon as f64 / 1024.0);
        self.set(&format!("{prefix}_file_mib"), r.file as f64 / 1024.0);
        eprintln!(
            "  RSS {prefix}: {:.0} MiB (anon {:.0}, file {:.0})",
            r.total as f64 / 1024.0,
            r.anon as f64 / 1024.0,
            r.file as f64 / 1024.0
        );
    }

    fn size(&mut self, key: &str, dir: &Path) -> Result<()> {
        let (apparent, allocated) = sys::dir_size(dir)?;
        self.set(&format!("{key}_mib"), apparent as f64 / MIB);
        self.set(&format!("{key}_alloc_mib"), allocated as f64 / MIB);
        eprintln!(
            "  files {key}: {:.0} MiB ({:.0} MiB allocated)",
            apparent as f64 / MIB,
            allocated as f64 / MIB
        );
        Ok(())
    }

    fn line(&self) -> String {
        let mut s = String::from("result");
        for (k, v) in &self.0 {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Removes the run's directory however the run ends.
struct DirGuard {
    dir: PathBuf,
    keep: bool,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn histogram() -> Histogram<u64> {
    // Nanoseconds, 3 significant digits; auto-resizes.
    let mut h = Histogram::new(3).expect("3 significant digits is valid");
    h.auto(true);
    h
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Runs `op` for `seconds`, timing each call: (ops/s, latency histogram).
fn timed(seconds: f64, mut op: impl FnMut() -> Result<()>) -> Result<(f64, Histogram<u64>)> {
    let mut h = histogram();
    let limit = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        let t = Instant::now();
        op()?;
        h.record(t.elapsed().as_nanos() as u64)?;
        n += 1;
        if n.is_multiple_of(64) && start.elapsed() >= limit {
            break;
        }
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), h))
}

fn point_reads(
    store: &dyn Store,
    count: u64,
    seconds: f64,
    seed: u64,
    res: &mut Results,
    key: &str,
) -> Result<()> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let (rate, h) = timed(seconds, || {
        let id = tx_id(rng.range(1, count));
        store.get_by_id(&id, &mut out)
    })?;
    res.set(&format!("{key}_per_s"), rate);
    res.set(&format!("{key}_p50_us"), us(&h, 0.5));
    res.set(&format!("{key}_p99_us"), us(&h, 0.99));
    eprintln!(
        "  {key}: {rate:.0} reads/s, p50 {:.1} µs, p99 {:.1} µs",
        us(&h, 0.5),
        us(&h, 0.99)
    );
    Ok(())
}

fn pages(store: &dyn Store, c: &Common, per_account: &[u64], seed: u64, res: &mut Results) -> Result<()> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let page = c.page;
    let (rate, h) = timed(c.read_seconds, || {
        let before = rng.range(1, c.count + 1);
        let n = store.page_project(before, page, &mut out)?;
        let want = page.min(before as usize - 1);
        if n != want {
            bail!("project page before {before}: {n} items, expected {want}");
        }
        Ok(())
    })?;
    res.set("page_project_per_s", rate);
    res.set("page_project_p50_us", us(&h, 0.5));
    res.set("page_project_p99_us", us(&h, 0.99));
    eprintln!(
        "  project pages: {rate:.0} pages/s, p50 {:.1} µs, p99 {:.1} µs",
        us(&h, 0.5),
        us(&h, 0.99)
    );

    let mut rng = Rng::new(seed ^ 1);
    let (rate, h) = timed(c.read_seconds, || {
        let a = rng.range(0, u64::from(c.accounts) - 1) as usize;
        let before = rng.range(1, per_account[a] + 1);
        let n = store.page_account(&account_id(a as u32), before, page, &mut out)?;
        let want = page.min(before as usize - 1);
        if n != want {
            bail!("account page before {before}: {n} items, expected {want}");
        }
        Ok(())
    })?;
    res.set("page_account_per_s", rate);
    res.set("page_account_p50_us", us(&h, 0.5));
    res.set("page_account_p99_us", us(&h, 0.99));
    eprintln!(
        "  account pages: {rate:.0} pages/s, p50 {:.1} µs, p99 {:.1} µs",
        us(&h, 0.5),
        us(&h, 0.99)
    );
    Ok(())
}

fn open_timed(
    kind: Kind,
    dir: &Path,
    opts: &Options,
    res: &mut Results,
    key: &str,
) -> Result<Box<dyn Store>> {
    let t = Instant::now();
    let store = stores::open(kind, dir, opts)?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    res.set(&format!("{key}_ms"), ms);
    eprintln!("  {key}: {ms:.1} ms");
    Ok(store)
}

fn run(args: &RunArgs) -> Result<()> {
    let c = &args.common;
    let kind = args.store;
    anyhow::ensure!(c.count > 0 && c.accounts > 0 && c.batch > 0, "counts must be > 0");
    let dir = c.data_dir.join(format!("{}-{}", kind.name(), std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let _guard = DirGuard {
        dir: dir.clone(),
        keep: c.keep,
    };
    let mut res = Results::default();
    res.set("load1_start", load1());
    let big = Options {
        cache_bytes: c.cache_mib << 20,
        sync: args.sync,
        lmdb_map_bytes: c.lmdb_map_gib << 30,
        fjall_flush_on_close: c.fjall_flush_on_close,
    };
    eprintln!(
        "{}: {} transactions over {} accounts, batches of {}, sync {:?}, in {}",
        kind.name(),
        c.count,
        c.accounts,
        c.batch,
        args.sync,
        dir.display()
    );

    // ---- 1. batched writes
    let mut store = stores::open(kind, &dir, &big)?;
    let rows = (0..c.accounts)
        .map(|a| Ok((account_id(a), workload::account_row(a)?)))
        .collect::<Result<Vec<_>>>()?;
    store.write_accounts(&rows)?;
    drop(rows);

    let batches = c.count.div_ceil(c.batch);
    let mut batch_times = histogram();
    let start = Instant::now();
    let mut last_durable = start;
    let mut since_durable = 0;
    let mut durable_commits = 0u64;
    let mut last_report = start;
    for b in 0..batches {
        let first = b * c.batch + 1;
        let count = c.batch.min(c.count - first + 1);
        since_durable += 1;
        let durable = match args.sync {
            Sync::EveryBatch => true,
            Sync::Periodic => {
                b + 1 == batches
                    || since_durable >= c.sync_batches
                    || last_durable.elapsed() >= Duration::from_millis(c.sync_ms)
            }
        };
        let t = Instant::now();
        store.write_batch(first, count, c.accounts, durable)?;
        batch_times.record(t.elapsed().as_nanos() as u64)?;
        if durable {
            since_durable = 0;
            durable_commits += 1;
            last_durable = Instant::now();
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let done = first + count - 1;
            eprintln!(
                "  ... {done} events in {:.1} s ({:.0}/s)",
                start.elapsed().as_secs_f64(),
                done as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let events = c.count as f64 / secs;
    res.set("write_s", secs);
    res.set("write_events_per_s", events);
    // item + ID index + account list + account row, per event
    res.set("write_rows_per_s", events * 4.0);
    res.set("write_durable_commits", durable_commits as f64);
    res.set("batch_p50_ms", us(&batch_times, 0.5) / 1000.0);
    res.set("batch_p99_ms", us(&batch_times, 0.99) / 1000.0);
    res.set("batch_max_ms", batch_times.max() as f64 / 1e6);
    eprintln!(
        "  writes: {secs:.1} s, {events:.0} events/s, {:.0} rows/s; {durable_commits} durable commits; \
         batch p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        events * 4.0,
        us(&batch_times, 0.5) / 1000.0,
        us(&batch_times, 0.99) / 1000.0,
        batch_times.max() as f64 / 1e6
    );
    res.rss("rss_write");
    res.size("size_load", &dir)?;

    // Background work the load left (fjall flushes and compactions).
    let t = Instant::now();
    let mut busy = store.background();
    if let Some(what) = &busy {
        eprintln!("  after the load: {what}");
    }
    while busy.is_some() && t.elapsed().as_secs_f64() < c.settle_seconds {
        std::thread::sleep(Duration::from_millis(100));
        busy = store.background();
    }
    res.set("settle_s", t.elapsed().as_secs_f64());
    if let Some(what) = busy {
        eprintln!("  still busy after {:.0} s: {what}", c.settle_seconds);
        res.set("settle_timed_out", 1.0);
    } else if t.elapsed() > Duration::from_millis(1) {
        eprintln!(
            "  background work done {:.1} s after the load",
            t.elapsed().as_secs_f64()
        );
        res.size("size_settled", &dir)?;
    }

    let per_account = (0..c.accounts)
        .map(|a| store.account_transactions(&account_id(a)))
        .collect::<Result<Vec<_>>>()?;
    anyhow::ensure!(
        per_account.iter().sum::<u64>() == c.count,
        "account rows count {} transactions, {} were written",
        per_account.iter().sum::<u64>(),
        c.count
    );

    let t = Instant::now();
    store.close()?;
    res.set("close_ms", t.elapsed().as_secs_f64() * 1000.0);
    res.size("size_closed", &dir)?;

    if !args.writes_only {
        read_phases(kind, &dir, c, &big, &per_account, &mut res)?;
    }

    res.set("load1_end", load1());
    println!("{} store={} sync={:?}", res.line(), kind.name(), args.sync);
    Ok(())
}

fn read_phases(
    kind: Kind,
    dir: &Path,
    c: &Common,
    big: &Options,
    per_account: &[u64],
    res: &mut Results,
) -> Result<()> {
    let small = Options {
        cache_bytes: c.small_cache_mib << 20,
        ..*big
    };

    // ---- 2a. cold: page cache dropped, small store cache
    sys::evict(dir)?;
    let store = open_timed(kind, dir, &small, res, "reopen_cold")?;
    point_reads(&*store, c.count, c.read_seconds, 11, res, "read_cold")?;

    // ---- 2b. small cache, files in the page cache
    sys::warm(dir).context("reading the files into the page cache")?;
    point_reads(&*store, c.count, c.warmup_seconds, 12, res, "warmup_small")?;
    point_reads(&*store, c.count, c.read_seconds, 13, res, "read_small")?;
    store.close()?;

    // ---- 2c. warm: big store cache after a warm-up
    let store = open_timed(kind, dir, big, res, "reopen_warm")?;
    point_reads(&*store, c.count, c.warmup_seconds, 14, res, "warmup_warm")?;
    point_reads(&*store, c.count, c.read_seconds, 15, res, "read_warm")?;

    // ---- 3. newest-first pages (big cache)
    pages(&*store, c, per_account, 16, res)?;
    res.rss("rss_read");
    store.close()?;
    res.size("size_end", dir)?;
    Ok(())
}

// ---------------------------------------------------------------- compare

fn run_child(exe: &Path, args: &[String]) -> Result<BTreeMap<String, f64>> {
    eprintln!("\n$ kv-compare {}", args.join(" "));
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    if !out.status.success() {
        bail!("kv-compare {} failed: {}", args.join(" "), out.status);
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("result "))
        .context("the run printed no result line")?;
    Ok(line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn compare(args: &CompareArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let common = args.common.to_args();
    // (store, every batch) → one map per run
    let mut runs: BTreeMap<(&str, bool), Vec<BTreeMap<String, f64>>> = BTreeMap::new();
    for round in 0..args.rounds {
        let mut order = args.stores.clone();
        let shift = round % order.len().max(1);
        order.rotate_left(shift);
        if round % 2 == 1 {
            order.reverse();
        }
        for &kind in &order {
            let mut a = vec!["run".into(), format!("--store={}", kind.name())];
            a.extend(common.iter().cloned());
            runs.entry((kind.name(), false))
                .or_default()
                .push(run_child(&exe, &a)?);
            if !args.no_every_batch {
                let mut a = vec![
                    "run".into(),
                    format!("--store={}", kind.name()),
                    "--sync=every-batch".into(),
                    "--writes-only".into(),
                ];
                a.extend(common.iter().cloned());
                runs.entry((kind.name(), true))
                    .or_default()
                    .push(run_child(&exe, &a)?);
            }
        }
    }

    let rows: &[(&str, bool, &str, &str)] = &[
        (
            "write events/s, periodic fsync",
            false,
            "write_events_per_s",
            "{:.0}",
        ),
        (
            "write events/s, fsync every batch",
            true,
            "write_events_per_s",
            "{:.0}",
        ),
        (
            "batch commit p99 ms, periodic fsync",
            false,
            "batch_p99_ms",
            "{:.1}",
        ),
        (
            "batch commit p99 ms, fsync every batch",
            true,
            "batch_p99_ms",
            "{:.1}",
        ),
        (
            "point reads/s, warm (1 GiB cache)",
            false,
            "read_warm_per_s",
            "{:.0}",
        ),
        (
            "point reads/s, 64 MiB cache, files in page cache",
            false,
            "read_small_per_s",
            "{:.0}",
        ),
        (
            "point reads/s, cold (page cache dropped, 64 MiB cache)",
            false,
            "read_cold_per_s",
            "{:.0}",
        ),
        ("point read p99 µs, warm", false, "read_warm_p99_us", "{:.1}"),
        (
            "project pages/s (100 newest first)",
            false,
            "page_project_per_s",
            "{:.0}",
        ),
        ("project page p99 µs", false, "page_project_p99_us", "{:.0}"),
        (
            "account pages/s (100 newest first)",
            false,
            "page_account_per_s",
            "{:.0}",
        ),
        ("account page p99 µs", false, "page_account_p99_us", "{:.0}"),
        ("files after load MiB", false, "size_load_mib", "{:.0}"),
        ("files after close MiB", false, "size_closed_mib", "{:.0}"),
        ("files at end MiB", false, "size_end_mib", "{:.0}"),
        ("background work after load s", false, "settle_s", "{:.1}"),
        ("RSS after writes MiB (anon / file)", false, "rss_write", "rss"),
        ("RSS after reads MiB (anon / file)", false, "rss_read", "rss"),
        ("reopen ms, page cache dropped", false, "reopen_cold_ms", "{:.1}"),
        ("reopen ms, page cache warm", false, "reopen_warm_ms", "{:.1}"),
    ];
    let stores: Vec<&str> = args.stores.iter().map(|k| k.name()).collect();
    println!("\nMedians of {} rounds (min–max in brackets):\n", args.rounds);
    println!("| | {} |", stores.join(" | "));
    println!("|---|{}", "---|".repeat(stores.len()));
    for (label, every, key, fmt) in rows {
        if *every && args.no_every_batch {
            continue;
        }
        let mut cells = Vec::new();
        for s in &stores {
            let Some(list) = runs.get(&(*s, *every)) else {
                cells.push("–".to_string());
                continue;
            };
            let get = |k: &str| -> Vec<f64> { list.iter().filter_map(|m| m.get(k).copied()).collect() };
            if *fmt == "rss" {
                let anon = median(&mut get(&format!("{key}_anon_mib")));
                let file = median(&mut get(&format!("{key}_file_mib")));
                cells.push(format!("{anon:.0} / {file:.0}"));
                continue;
            }
            let mut v = get(key);
            if v.is_empty() {
                cells.push("–".to_string());
                continue;
            }
            let m = median(&mut v);
            let (lo, hi) = (v[0], v[v.len() - 1]);
            let f = |x: f64| match *fmt {
                "{:.0}" => format!("{x:.0}"),
                _ => format!("{x:.1}"),
            };
            cells.push(if v.len() > 1 {
                format!("{} ({}–{})", f(m), f(lo), f(hi))
            } else {
                f(m)
            });
        }
        println!("| {label} | {} |", cells.join(" | "));
    }
    Ok(())
}
