//! `paycore-bench`: how fast paycore is, measured on the machine it runs on.
//!
//! - `paycore-bench store`: the raw append rate of the embedded event log.
//! - `paycore-bench grpc`: durable transfers per second and their latency,
//!   end to end through the real server binary.
//! - `paycore-bench history`: audit replay, projection rebuild and server
//!   start over a generated 10-million-event log.
//!
//! `make bench` runs both. Speed is measured here, never asserted in tests.

// A benchmark's report is its stdout.
#![allow(clippy::print_stdout)]

mod batches;
mod cold_reads;
mod grpc;
mod history;
mod import;
mod report;
mod store;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Benchmarks of paycore: store append rate and gRPC transfer throughput.
///
/// Every figure is printed with the machine it was measured on (cores, CPU
/// model, the filesystem of the data directory). Data is written under
/// ./target/bench-data by default, so it lands on the real disk (/tmp may be
/// a tmpfs, where fsync costs nothing).
#[derive(Debug, Parser)]
#[command(name = "paycore-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Store(store::StoreArgs),
    Grpc(grpc::GrpcArgs),
    Batches(batches::BatchesArgs),
    History(history::HistoryArgs),
    Import(import::ImportArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Store(args) => store::run(args).await,
            Command::Grpc(args) => grpc::run(args).await,
            Command::Batches(args) => batches::run(args).await,
            Command::History(args) => history::run(args).await,
            Command::Import(args) => import::run(args).await,
        }
    })
}
