//! `paycore projections`: the read models' status, and rebuilding them from
//! the log.
//!
//! With a server running on the data directory, both go through its admin
//! socket: the rebuild runs inside the server, beside the served models, and
//! is swapped in when caught up. Without one, the rebuild reads the log
//! itself (holding the data directory, so no server starts meanwhile) and
//! writes the model store the next `paycore serve` opens.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use paycore_grpc::admin::pb;
use paycore_projections::{ModelStorage, OfflineOptions};

use crate::serve::{self, InUse, PROJECTIONS_DIR, StoreChoice};

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Show each projection's version, checkpoint and lag behind the log
    /// (and the progress of a rebuild running in the server).
    Status,
    /// Rebuild projections from position 0 of the log.
    ///
    /// With a server running on the data directory, the rebuild runs inside
    /// it, beside the served models, and each projection is swapped in once
    /// it has caught up: queries never see a half-built model. Without one,
    /// it reads the log directly and writes the model store the next start
    /// opens; an interrupted run continues from its last checkpoint when run
    /// again.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The projections to rebuild (see `paycore projections status`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    projections: Vec<String>,
    /// Rebuild every projection.
    #[arg(long)]
    all: bool,
    /// Without a server: save progress every this many seconds, so an
    /// interrupted rebuild resumes from there.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    checkpoint_every: u64,
    /// Without a server: also save progress after this many events.
    #[arg(long, value_name = "EVENTS")]
    checkpoint_every_events: Option<u64>,
    /// With a PostgreSQL store: rebuild these projections' tables in the
    /// database instead (the server writing them writes them again from the
    /// log beside the served ones, which stay readable, and swaps them in
    /// once caught up).
    #[arg(long)]
    tables: bool,
}

pub async fn run(data_dir: &Path, store: &StoreChoice, command: ProjectionsCommand) -> anyhow::Result<()> {
    // Holding the data directory's lock means no server runs on it; it is
    // kept until the command is done, so none starts meanwhile.
    let held = match serve::lock_data_dir(data_dir) {
        Ok(lock) => Some(lock),
        Err(error) if error.is::<InUse>() => None,
        Err(error) => return Err(error),
    };
    if let ProjectionsCommand::Rebuild(args) = &command
        && args.tables
    {
        return rebuild_tables(store, args).await;
    }
    match (command, held) {
        (ProjectionsCommand::Status, Some(_lock)) => {
            status_offline(data_dir, store).await?;
            tables_status(store).await
        }
        (ProjectionsCommand::Status, None) => {
            status_online(data_dir).await?;
            tables_status(store).await
        }
        (ProjectionsCommand::Rebuild(args), Some(_lock)) => rebuild_offline(data_dir, store, args).await,
        (ProjectionsCommand::Rebuild(args), None) => rebuild_online(data_dir, args).await,
    }
}

fn chosen(args: &RebuildArgs) -> Vec<String> {
    if args.all {
        paycore_projections::projections()
            .iter()
            .map(|info| info.name.to_owned())
            .collect()
    } else {
        args.projections.clone()
    }
}

async fn status_online(data_dir: &Path) -> anyhow::Result<()> {
    let mut client = crate::admin_client(data_dir).await?;
    let status = client
        .get_projection_status(pb::GetProjectionStatusRequest {})
        .await
        .map_err(crate::refused)?
        .into_inner();
    println!("served by the running server:");
    println!(
        "{:<13} {:>7} {:>14} {:>14} {:>12}  state",
        "projection", "version", "checkpoint", "head", "lag"
    );
    for projection in status.projections {
        let state = match &projection.rebuilding {
            Some(rebuild) => format!("rebuilding: {} of {} events", rebuild.position, rebuild.head),
            None if projection.lag == 0 => "up to date".to_owned(),
            None => "catching up".to_owned(),
        };
        println!(
            "{:<13} {:>7} {:>14} {:>14} {:>12}  {state}",
            projection.name, projection.version, projection.checkpoint, projection.head, projection.lag
        );
    }
    if let Some(relay) = status.relay {
        let published = relay
            .published_before
            .map_or_else(|| "unknown".to_owned(), |position| position.to_string());
        let lag = relay
            .lag
            .map_or_else(|| "unknown".to_owned(), |lag| lag.to_string());
        let error = if relay.error.is_empty() {
            String::new()
        } else {
            format!(": {}", relay.error)
        };
        println!();
        println!(
            "relay to NATS JetStream stream {}: {}{error}; published before {published} of {} events, lag {lag}",
            relay.stream, relay.state, relay.head
        );
    }
    Ok(())
}

/// Asks the tables' writer to rebuild the chosen projections' tables.
async fn rebuild_tables(store: &StoreChoice, args: &RebuildArgs) -> anyhow::Result<()> {
    let StoreChoice::Postgres { url, schema } = store else {
        anyhow::bail!("--tables is for a PostgreSQL store: give --store postgres://… (or PAYCORE_STORE)");
    };
    // The tables' projections are the server's, by the same names.
    let marked = paycore_projections_postgres::rebuild(url, schema, &chosen(args)).await?;
    println!(
        "asked the writer to rebuild the tables of {} from the log beside the served ones (swapped in once caught up); \
         follow it with `paycore projections status`",
        marked.join(", ")
    );
    Ok(())
}

/// On PostgreSQL, the read-model tables beside the log: how far each is,
/// and which server writes it.
async fn tables_status(store: &StoreChoice) -> anyhow::Result<()> {
    let StoreChoice::Postgres { url, schema } = store else {
        return Ok(());
    };
    let tables = paycore_projections_postgres::status(url, schema)
        .await
        .with_context(|| format!("reading the read-model tables' checkpoints in schema {schema}"))?;
    println!();
    println!("tables in PostgreSQL schema {schema}:");
    println!(
        "{:<13} {:>7} {:>14} {:>14} {:>12}  writer",
        "projection", "version", "checkpoint", "head", "lag"
    );
    for table in tables {
        let writer = match (&table.writer, &table.updated_at, table.stored_version) {
            (None, _, _) | (_, None, _) => "not written yet".to_owned(),
            (Some(writer), Some(at), Some(version)) if version != table.version => {
                format!("version {version} by {writer} at {at}")
            }
            (Some(writer), Some(at), _) => format!("{writer}, last at {at}"),
        };
        let writer = match table.rebuilding {
            Some(position) => format!("{writer}; rebuilding: {position} of {} events", table.head),
            None => writer,
        };
        println!(
            "{:<13} {:>7} {:>14} {:>14} {:>12}  {writer}",
            table.projection,
            table.version,
            table.checkpoint,
            table.head,
            table.lag()
        );
    }
    Ok(())
}

/// Reads the checkpoints in the model store and the log's head.
async fn status_offline(data_dir: &Path, store: &StoreChoice) -> anyhow::Result<()> {
    let (log, opened) = crate::audit::open(data_dir, store, "`projections status`").await?;
    let head = *opened.committed().borrow();
    if let Some(log) = log {
        log.close().context("closing the event log")?;
    }
    let storage = ModelStorage::at(data_dir.join(PROJECTIONS_DIR));
    let stored = paycore_projections::stored(&storage).with_context(|| {
        format!(
            "reading the read models in {}",
            storage.dir.as_deref().unwrap_or(data_dir).display()
        )
    })?;
    println!(
        "no server running; read models in {}:",
        storage.file().unwrap_or_default().display()
    );
    println!(
        "{:<13} {:>7} {:>14} {:>14} {:>12}  state",
        "projection", "version", "checkpoint", "head", "lag"
    );
    for info in paycore_projections::projections() {
        let found = stored.iter().find(|stored| stored.info.name == info.name);
        let (checkpoint, state) = match found.and_then(|stored| stored.served) {
            None => (
                0,
                "not built yet: built from the log at the next start".to_owned(),
            ),
            Some((version, _)) if !info.continues_from(version) => (
                0,
                format!(
                    "built by version {version}: rebuilt at the next start (code is version {})",
                    info.version
                ),
            ),
            Some((_, checkpoint)) if checkpoint < head => (
                checkpoint,
                format!("{} events to apply at the next start", head - checkpoint),
            ),
            Some((_, checkpoint)) => (checkpoint, "up to date".to_owned()),
        };
        let state = match found.and_then(|stored| stored.rebuild) {
            Some(position) => format!("{state}; an interrupted rebuild stopped at {position}"),
            None => state,
        };
        println!(
            "{:<13} {:>7} {:>14} {:>14} {:>12}  {state}",
            info.name,
            info.version,
            checkpoint,
            head,
            head.saturating_sub(checkpoint)
        );
    }
    Ok(())
}

/// A bar of `events` on stderr when it is a terminal, hidden otherwise (the
/// audit's and the rebuilds' progress).
pub(crate) fn progress_bar(events: u64) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(events), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn rebuild_offline(data_dir: &Path, store: &StoreChoice, args: RebuildArgs) -> anyhow::Result<()> {
    let names = chosen(&args);
    let (log, opened) = crate::audit::open(data_dir, store, "`projections rebuild`").await?;
    let options = OfflineOptions {
        checkpoint_every: Duration::from_secs(args.checkpoint_every),
        checkpoint_every_events: args.checkpoint_every_events.unwrap_or(u64::MAX),
        ..OfflineOptions::default()
    };
    let bar = progress_bar(*opened.committed().borrow());
    let dir = data_dir.join(PROJECTIONS_DIR);
    let result = paycore_projections::rebuild_offline(opened, &dir, &names, &options, |progress| {
        bar.set_position(progress.position);
    })
    .await;
    bar.finish_and_clear();
    if let Some(log) = log {
        log.close().context("closing the event log")?;
    }
    let summary = result?;
    for (name, position) in &summary.resumed {
        println!("{name}: resumed an interrupted rebuild at position {position}");
    }
    println!(
        "rebuilt {} up to position {}: {} events in {:.2} s ({:.0} events/s); read models in {}",
        summary.projections.join(", "),
        summary.head,
        summary.applied,
        summary.elapsed.as_secs_f64(),
        summary.events_per_second(),
        dir.display()
    );
    Ok(())
}

async fn rebuild_online(data_dir: &Path, args: RebuildArgs) -> anyhow::Result<()> {
    let names = chosen(&args);
    let mut client = crate::admin_client(data_dir).await?;
    let mut stream = client
        .rebuild_projections(pb::RebuildProjectionsRequest { projections: names })
        .await
        .map_err(crate::refused)?
        .into_inner();
    let bar = progress_bar(0);
    let mut last: Option<pb::RebuildProgress> = None;
    while let Some(progress) = stream.message().await.map_err(crate::refused)? {
        bar.set_length(progress.head);
        bar.set_position(progress.position);
        last = Some(progress);
    }
    bar.finish_and_clear();
    let Some(last) = last else {
        anyhow::bail!("the server ended the rebuild without reporting it");
    };
    match pb::rebuild_progress::State::try_from(last.state) {
        Ok(pb::rebuild_progress::State::Done) => {
            let rate = if last.elapsed_seconds > 0.0 {
                last.applied as f64 / last.elapsed_seconds
            } else {
                0.0
            };
            println!(
                "rebuilt {} beside the served models and swapped them in at position {}: {} events in {:.2} s ({rate:.0} events/s)",
                last.projections.join(", "),
                last.position,
                last.applied,
                last.elapsed_seconds,
            );
            Ok(())
        }
        Ok(pb::rebuild_progress::State::Failed) => {
            anyhow::bail!(
                "the rebuild failed: {} (the served models are unchanged)",
                last.error
            )
        }
        _ => anyhow::bail!(
            "the server stopped reporting before the rebuild finished; `paycore projections status` shows it"
        ),
    }
}
