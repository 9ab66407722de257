//! `paycore-fuzz`: runs the fuzz targets of paycore without coverage
//! feedback (stable toolchain, any machine), and writes the seed corpora
//! of the cargo-fuzz targets in `fuzz/`.
//!
//! ```text
//! paycore-fuzz list
//! paycore-fuzz seeds DIR                       one directory of seeds per target
//! paycore-fuzz run [--seconds N] [--seed S] [TARGET ...]
//! paycore-fuzz replay TARGET FILE ...          runs the harness on saved inputs
//! ```
//!
//! `run` runs each target (all by default) for N seconds (default 10) and
//! prints one line per target: executions, CPU seconds, panics. On a panic
//! it saves the input as `crash-<target>-<n>.bin` in the current directory
//! and exits 1.

use std::process::ExitCode;
use std::time::Duration;

use paycore_fuzz::{TARGETS, Target, mutate, target};

fn usage() -> ExitCode {
    eprintln!(
        "usage: paycore-fuzz list | seeds DIR | run [--seconds N] [--seed S] [TARGET ...] | replay TARGET FILE ..."
    );
    ExitCode::from(2)
}

/// CPU time of this thread so far (Linux), in seconds.
fn thread_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses).
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            for target in TARGETS {
                println!("{:<22} {}", target.name, target.about);
            }
            ExitCode::SUCCESS
        }
        Some("seeds") => {
            let Some(dir) = args.get(1) else {
                return usage();
            };
            for target in TARGETS {
                let target_dir = std::path::Path::new(dir).join(target.name);
                if let Err(error) = std::fs::create_dir_all(&target_dir) {
                    eprintln!("cannot create {}: {error}", target_dir.display());
                    return ExitCode::FAILURE;
                }
                let seeds = (target.seeds)();
                for (n, seed) in seeds.iter().enumerate() {
                    let path = target_dir.join(format!("seed-{n:04}"));
                    if let Err(error) = std::fs::write(&path, seed) {
                        eprintln!("cannot write {}: {error}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
                println!("{:<22} {} seeds", target.name, seeds.len());
            }
            ExitCode::SUCCESS
        }
        Some("run") => run(&args[1..]),
        Some("replay") => {
            let (Some(name), files) = (args.get(1), &args[2..]) else {
                return usage();
            };
            let Some(target) = target(name) else {
                eprintln!("no target {name}");
                return ExitCode::from(2);
            };
            for file in files {
                match std::fs::read(file) {
                    Ok(bytes) => {
                        (target.run)(&bytes);
                        println!("{file}: no panic");
                    }
                    Err(error) => {
                        eprintln!("cannot read {file}: {error}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn run(args: &[String]) -> ExitCode {
    let mut seconds = 10u64;
    let mut seed = 1u64;
    let mut chosen: Vec<&'static Target> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => seconds = n,
                None => return usage(),
            },
            "--seed" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => seed = n,
                None => return usage(),
            },
            name => match target(name) {
                Some(target) => chosen.push(target),
                None => {
                    eprintln!("no target {name}; `paycore-fuzz list` lists them");
                    return ExitCode::from(2);
                }
            },
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().collect();
    }
    println!(
        "{:<22} {:>12} {:>10} {:>8}",
        "target", "executions", "cpu_s", "panics"
    );
    let mut failed = false;
    for target in chosen {
        let cpu_before = thread_cpu_seconds();
        let session = mutate::run(target, Duration::from_secs(seconds), u64::MAX, seed);
        let cpu = thread_cpu_seconds() - cpu_before;
        let panics = u32::from(session.panic.is_some());
        println!(
            "{:<22} {:>12} {:>10.1} {:>8}",
            target.name, session.executions, cpu, panics
        );
        if let Some((input, message)) = session.panic {
            failed = true;
            let path = format!("crash-{}-{seed}.bin", target.name);
            let _ = std::fs::write(&path, &input);
            eprintln!("{}: panic: {message}\n  input saved to {path}", target.name);
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
