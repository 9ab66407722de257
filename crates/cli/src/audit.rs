//! `paycore audit`: replays the log and checks its rules (see `paycore-audit`).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use paycore_audit::{Auditor, DamagedFrame, Flow, Limit, LostEvents, Report, Rule, Violation};
use paycore_projections::{ModelStorage, ReadModels};
use paycore_store::log::Salvaged;
use paycore_store::{EventStore, LogOptions, LogStore, StoreError};
use paycore_store_postgres::{PgOptions, PgStore};

use crate::serve::StoreChoice;

/// Events read from the store per `read_all`.
const BATCH: usize = 16_384;

/// Exit code when the audit found violations.
pub const EXIT_VIOLATIONS: u8 = 1;
/// Exit code when the audit could not run (I/O, a locked data directory …).
pub const EXIT_CANNOT_AUDIT: u8 = 2;

/// The audit ran and found violations (already printed).
#[derive(Debug, thiserror::Error)]
#[error("the audit found {0} violation(s)")]
pub struct ViolationsFound(pub usize);

/// The audit could not run; wraps the cause.
#[derive(Debug, thiserror::Error)]
#[error("cannot audit")]
pub struct CannotAudit;

#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub json: bool,
    pub limit: Limit,
}

/// Runs the audit. `Err` carries [`ViolationsFound`] or [`CannotAudit`] so
/// `main` can pick the exit code.
pub async fn audit(data_dir: &Path, choice: &StoreChoice, options: AuditOptions) -> anyhow::Result<()> {
    let report = run(data_dir, choice, &options).await.context(CannotAudit)?;
    if options.json {
        println!("{}", report.to_json());
        eprintln!("{:.0} events/s", report.events_per_second());
    } else {
        print!("{report}");
        println!("{:.0} events/s", report.events_per_second());
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(ViolationsFound(report.violations.len()).into())
    }
}

async fn run(data_dir: &Path, choice: &StoreChoice, options: &AuditOptions) -> anyhow::Result<Report> {
    let embedded = matches!(choice, StoreChoice::Embedded);
    let (log, store) = match open(data_dir, choice, "the audit").await {
        Ok(opened) => opened,
        Err(error) if embedded && is_damage(&error) => {
            return salvage_replay(data_dir, options, &error).await;
        }
        Err(error) => return Err(error),
    };
    let result = replay(data_dir, store, options).await;
    if let Some(log) = log {
        log.close().context("closing the event log")?;
    }
    match result {
        // Damage that appeared since the open verified the log.
        Err(error) if embedded && is_damage(&error) => salvage_replay(data_dir, options, &error).await,
        other => other,
    }
}

/// Whether the log refused to open, or a read failed, because it is damaged.
fn is_damage(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<StoreError>(),
            Some(StoreError::Corrupt { .. })
        )
    })
}

/// Audits a damaged embedded log as far as it can be read: frame by frame
/// ([`paycore_store::log::salvage`]), each damaged frame a `log_intact`
/// violation (file, offset, position), carrying on at the next intact frame.
/// The read models are not compared: they cannot be built from this log.
async fn salvage_replay(
    data_dir: &Path,
    options: &AuditOptions,
    why: &anyhow::Error,
) -> anyhow::Result<Report> {
    eprintln!("the event log is damaged ({why:#}); auditing every frame that can be read");
    let log_dir = data_dir.join("log");
    let limit = options.limit;
    tokio::task::spawn_blocking(move || {
        let mut auditor = Auditor::new(limit);
        let salvaged = paycore_store::log::salvage(&log_dir, BATCH, |item| {
            let flow = match item {
                Salvaged::Events(events) => auditor.push_batch(&events),
                Salvaged::Lost(lost) => auditor.push_lost(LostEvents {
                    frame: DamagedFrame {
                        file: lost.damage.file.display().to_string(),
                        offset: lost.damage.offset,
                        position: lost.damage.position,
                    },
                    reason: lost.damage.reason,
                    resumes_at: lost.resumes_at,
                }),
            };
            match flow {
                Flow::Done => ControlFlow::Break(()),
                Flow::Continue => ControlFlow::Continue(()),
            }
        });
        match salvaged {
            Ok(_) => {}
            Err(StoreError::Locked(dir)) => anyhow::bail!(
                "the event log in {} is held by a running paycore server: stop it first \
                 (the audit needs the log to itself)",
                dir.display()
            ),
            Err(error) => {
                return Err(error).with_context(|| format!("reading the event log in {}", log_dir.display()));
            }
        }
        let mut report = auditor.finish();
        report.notes.push(
            "the log is damaged, so it was read frame by frame and the read models were not compared \
             with it"
                .to_owned(),
        );
        Ok(report)
    })
    .await
    .context("the audit task failed")?
}

/// Opens the store like `serve` does, without an engine: nothing is written.
/// `who` names the command in the refusal when a server holds the log.
pub(crate) async fn open(
    data_dir: &Path,
    choice: &StoreChoice,
    who: &str,
) -> anyhow::Result<(Option<Arc<LogStore>>, Arc<dyn EventStore>)> {
    match choice {
        StoreChoice::Embedded => {
            let log_dir = data_dir.join("log");
            if !log_dir.is_dir() {
                anyhow::bail!("no event log in {} (wrong --data-dir?)", log_dir.display());
            }
            let log = match LogStore::open(&log_dir, LogOptions::default()) {
                Ok((log, _report)) => Arc::new(log),
                Err(StoreError::Locked(dir)) => anyhow::bail!(
                    "the event log in {} is held by a running paycore server: stop it first \
                     ({who} needs the log to itself)",
                    dir.display()
                ),
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("opening the event log in {}", log_dir.display()));
                }
            };
            Ok((Some(log.clone()), log))
        }
        StoreChoice::Postgres { url, schema } => {
            let store = PgStore::connect(url, PgOptions::with_schema(schema.clone()))
                .await
                .with_context(|| format!("connecting to the PostgreSQL event store (schema {schema})"))?;
            Ok((None, Arc::new(store)))
        }
    }
}

async fn replay(
    data_dir: &Path,
    store: Arc<dyn EventStore>,
    options: &AuditOptions,
) -> anyhow::Result<Report> {
    let head = *store.committed().borrow();
    let target = match options.limit.up_to_position {
        Some(last) => head.min(last.saturating_add(1)),
        None => head,
    };
    let bar = crate::projections::progress_bar(target);
    let mut auditor = Auditor::new(options.limit);
    let mut from = 0;
    loop {
        let batch = store
            .read_all(from, BATCH)
            .await
            .with_context(|| format!("reading $all from position {from}"))?;
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        let flow = auditor.push_batch(&batch);
        bar.set_position(auditor.events());
        if flow == Flow::Done {
            break;
        }
    }
    bar.finish_and_clear();
    let mut report = auditor.finish();
    if report.whole_log {
        compare_read_models(data_dir, store, &mut report).await?;
    }
    Ok(report)
}

/// Compares the recomputed balances with the read models the server
/// serves: its model store in the data directory, brought up to the log's
/// head first (as the next start would), or built from the log when there
/// is none.
async fn compare_read_models(
    data_dir: &Path,
    store: Arc<dyn EventStore>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let storage = ModelStorage::at(data_dir.join(crate::serve::PROJECTIONS_DIR));
    let read = ReadModels::start(store, storage)
        .await
        .context("starting the read models")?;
    let Some(last) = report.last_position else {
        return Ok(());
    };
    read.wait_for(last).await;
    if read.checkpoint() <= last {
        report.violations.push(Violation::new(
            Rule::ReadModelBalance,
            None,
            format!(
                "the read models stopped at position {} and could not apply the rest of the log",
                read.checkpoint()
            ),
        ));
        return Ok(());
    }
    for (id, balance) in &report.accounts {
        let Some(project) = report.account_projects.get(id) else {
            continue;
        };
        let shown = read
            .account(*project, *id)
            .context("reading the read models")?
            .map(|account| account.balance);
        if shown != Some(*balance) {
            let shown = shown.map_or_else(|| "no such account".to_owned(), |b| b.to_string());
            report.violations.push(Violation::new(
                Rule::ReadModelBalance,
                None,
                format!("account {id}: recomputed balance {balance}, read models show {shown}"),
            ));
        }
    }
    Ok(())
}
