//! Shared reporting helpers: the machine description, aligned tables, number
//! and latency formatting, latency histograms and CPU accounting from `/proc`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with 3
/// significant digits.
pub fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("creating a latency histogram")
}

/// Records one latency (saturating at the histogram's bounds).
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

/// p50, p99, p99.9 and max of a latency histogram, formatted.
pub fn latency_columns(histogram: &Histogram<u64>) -> [String; 4] {
    if histogram.is_empty() {
        return ["-".into(), "-".into(), "-".into(), "-".into()];
    }
    [
        micros(histogram.value_at_quantile(0.50)),
        micros(histogram.value_at_quantile(0.99)),
        micros(histogram.value_at_quantile(0.999)),
        micros(histogram.max()),
    ]
}

/// A duration given in microseconds, in milliseconds with sensible precision.
pub fn micros(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.3} ms")
    } else if ms < 100.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// An integer with thousands separators: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate, rounded to an integer, with thousands separators.
pub fn rate(per_second: f64) -> String {
    thousands(per_second.round().max(0.0) as u64)
}

/// How a column is aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A plain-text table with aligned columns.
#[derive(Debug)]
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers; the first column is left-aligned,
    /// the others right-aligned, unless a header ends with `<` (left).
    pub fn new(headers: &[&str]) -> Self {
        let headers = headers
            .iter()
            .enumerate()
            .map(|(i, header)| match header.strip_suffix('<') {
                Some(name) => (name.to_owned(), Align::Left),
                None if i == 0 => ((*header).to_owned(), Align::Left),
                None => ((*header).to_owned(), Align::Right),
            })
            .collect();
        Self {
            headers,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut out = String::from("  ");
            for (i, cell) in cells.enumerate().take(columns) {
                if i > 0 {
                    out.push_str("  ");
                }
                let pad = " ".repeat(widths[i].saturating_sub(width(cell)));
                match self.headers[i].1 {
                    Align::Left => {
                        out.push_str(cell);
                        out.push_str(&pad);
                    }
                    Align::Right => {
                        out.push_str(&pad);
                        out.push_str(cell);
                    }
                }
            }
            out.trim_end().to_owned()
        };
        let mut out = line(&mut self.headers.iter().map(|(h, _)| h.as_str()));
        out.push('\n');
        let total: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
        out.push_str("  ");
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(&mut row.iter().map(String::as_str)));
            out.push('\n');
        }
        out
    }
}

/// What the benchmark ran on.
#[derive(Debug)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub data_dir: PathBuf,
    pub filesystem: Filesystem,
    /// 1, 5 and 15 minute load averages when the benchmark started.
    pub load_average: String,
    /// Share of all CPUs busy (with other processes) just before the run.
    pub busy_before: Option<f64>,
}

/// The mount a path lives on.
#[derive(Debug, Clone)]
pub struct Filesystem {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub options: String,
}

impl Filesystem {
    /// Filesystems that live in memory: `fsync` costs nothing there, so a
    /// durable benchmark on them measures nothing real.
    pub fn is_memory(&self) -> bool {
        matches!(self.fs_type.as_str(), "tmpfs" | "ramfs")
    }
}

impl Machine {
    /// Describes this machine and the filesystem holding `data_dir` (which
    /// must exist), and samples how busy the CPUs are for half a second.
    pub async fn describe(data_dir: &Path) -> anyhow::Result<Self> {
        let data_dir = data_dir
            .canonicalize()
            .with_context(|| format!("resolving {}", data_dir.display()))?;
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|line| {
                let rest = line.strip_prefix("MemTotal:")?;
                let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                Some(format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        let filesystem = filesystem_of(&data_dir);
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        let before = cpu_jiffies();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy_before = match (before, cpu_jiffies()) {
            (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
                Some(busy1.saturating_sub(busy0) as f64 / (total1 - total0) as f64)
            }
            _ => None,
        };
        Ok(Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory,
            kernel,
            data_dir,
            filesystem,
            load_average,
            busy_before,
        })
    }

    pub fn render(&self) -> String {
        let fs = &self.filesystem;
        let mut out = String::new();
        out.push_str("Machine\n");
        out.push_str(&format!("  cpus (nproc):  {}\n", self.cpus));
        out.push_str(&format!("  cpu model:     {}\n", self.cpu_model));
        out.push_str(&format!("  memory:        {}\n", self.memory));
        out.push_str(&format!("  kernel:        Linux {}\n", self.kernel));
        out.push_str(&format!("  data dir:      {}\n", self.data_dir.display()));
        out.push_str(&format!(
            "  filesystem:    {} on {} (mounted at {}, {})\n",
            fs.fs_type, fs.device, fs.mount_point, fs.options
        ));
        let busy = self
            .busy_before
            .map_or("unknown".into(), |b| format!("{:.0} %", b * 100.0));
        out.push_str(&format!(
            "  load:          average {} (1/5/15 min); CPUs busy before the run: {busy}\n",
            self.load_average
        ));
        if self.busy_before.is_some_and(|b| b > 0.10) {
            out.push_str(
                "  WARNING: other processes keep the CPUs busy; the figures below are lower \
                 than this machine can do\n",
            );
        }
        if cfg!(debug_assertions) {
            out.push_str("  WARNING: this is a debug build of paycore-bench; use --release\n");
        }
        if fs.is_memory() {
            out.push_str(
                "  WARNING: the data dir is on a memory filesystem: fsync is free there, \
                 durable figures are not real; pass --dir on a disk\n",
            );
        }
        out
    }
}

/// The mount holding `path` (canonical): the longest mount point that is a
/// prefix of it, from `/proc/self/mounts` (the last such entry wins, as a
/// later mount hides an earlier one).
fn filesystem_of(path: &Path) -> Filesystem {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best: Option<Filesystem> = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [device, mount_point, fs_type, options, ..] = fields[..] else {
            continue;
        };
        let mount_point = mount_point.replace("\\040", " ");
        if !path.starts_with(&mount_point) {
            continue;
        }
        let longer = best
            .as_ref()
            .is_none_or(|b| mount_point.len() >= b.mount_point.len());
        if longer {
            best = Some(Filesystem {
                device: device.to_owned(),
                mount_point,
                fs_type: fs_type.to_owned(),
                options: options.to_owned(),
            });
        }
    }
    best.unwrap_or(Filesystem {
        device: "unknown".into(),
        mount_point: "unknown".into(),
        fs_type: "unknown".into(),
        options: String::new(),
    })
}

/// (busy, total) jiffies of all CPUs, from the first line of `/proc/stat`.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    // user nice system idle iowait irq softirq steal (guest is part of user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
/// `None` when it cannot be read.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may contain spaces: fields are counted
    // after its closing parenthesis. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks() as f64,
    ))
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, almost
/// always 100).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// CPU counters at one instant: the whole machine, this process and
/// (optionally) the server process.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: std::time::Instant,
    machine_busy: Option<u64>,
    bench: Option<Duration>,
    server: Option<Duration>,
}

impl CpuSample {
    pub fn take(server: Option<u32>) -> Self {
        Self {
            at: std::time::Instant::now(),
            machine_busy: cpu_jiffies().map(|(busy, _)| busy),
            bench: cpu_time(None),
            server: server.and_then(|pid| cpu_time(Some(pid))),
        }
    }
}

/// CPU used over a window, in percent of one core (200 % = two cores busy):
/// by the server, by this process, and by everything else on the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub server: Option<f64>,
    pub bench: Option<f64>,
    pub others: Option<f64>,
}

impl CpuUse {
    pub fn between(before: &CpuSample, after: &CpuSample) -> Self {
        let wall = after.at.duration_since(before.at).as_secs_f64();
        if wall <= 0.0 {
            return Self::default();
        }
        let percent = |b: Option<Duration>, a: Option<Duration>| {
            Some(a?.saturating_sub(b?).as_secs_f64() / wall * 100.0)
        };
        let server = percent(before.server, after.server);
        let bench = percent(before.bench, after.bench);
        let machine = match (before.machine_busy, after.machine_busy) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / clock_ticks() as f64 / wall * 100.0),
            _ => None,
        };
        let others = machine.map(|m| (m - server.unwrap_or(0.0) - bench.unwrap_or(0.0)).max(0.0));
        Self {
            server,
            bench,
            others,
        }
    }
}

/// A CPU percentage for a table cell.
pub fn percent(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.0} %"))
}

/// A tiny deterministic PRNG (xorshift64*), enough to spread load.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Never zero; mix the seed so neighbouring seeds diverge at once.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A 26-character Crockford base32 rendering of a number, like the
/// identifiers paycore uses (`acc_…`, `prj_…`).
pub fn base32_id(prefix: &str, value: u128) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut chars = [0u8; 26];
    let mut v = value;
    for slot in chars.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    out.extend(chars.iter().map(|&c| c as char));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(&["name", "value"]);
        table.row(vec!["a".into(), "1".into()]);
        table.row(vec!["longer".into(), "1,000".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "  name    value");
        assert_eq!(lines[2], "  a           1");
        assert_eq!(lines[3], "  longer  1,000");
    }

    #[test]
    fn ids_have_the_paycore_shape() {
        let id = base32_id("acc", 12345);
        assert_eq!(id.len(), 30);
        assert!(id.starts_with("acc_0000"));
    }

    #[test]
    fn cpu_time_of_self_is_readable() {
        assert!(cpu_time(None).is_some());
    }
}
