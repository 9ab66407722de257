//! Command handling: command → decide → atomic append → reply.
//!
//! One decider task owns the write path. It takes every command that is
//! waiting (up to [`EngineConfig::max_batch`]), decides each against the
//! in-memory state — including the not-yet-committed effects of the commands
//! before it in the same batch — and appends the whole batch as ONE atomic
//! request: one fsync for many commands. Replies go out only after the append
//! is durable. Because one task decides, commands on the same accounts never
//! race each other inside a server; against other writers (several servers on
//! one database) every write carries the version it was decided on, and a
//! version conflict reloads the streams and decides again.
//!
//! Committed states are kept in memory under a budget in bytes
//! ([`EngineConfig::state_cache_bytes`]; the `cache` module says why
//! evicting any of them at any moment changes no answer). A state missing
//! from memory is loaded from the store: from the stream's snapshot, if
//! [`EngineConfig::snapshots`] has one that fits the log, plus the events
//! after it; else by folding the whole stream (see the `snapshot` module:
//! snapshots are a cache, written in the background).

mod cache;
mod decider_loop;
mod error;
pub mod history;
pub mod metrics;
mod snapshot;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use paycore_domain::{Aggregate, CommandEnvelope, ResourceRef, StreamRef};
use paycore_store::{AggregateSnapshots, EventStore, Position};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;
use tracing::field::Empty;
use uuid::Uuid;

pub use cache::StateCacheUsage;
pub use error::EngineError;
pub use snapshot::AGGREGATE_SNAPSHOT_FORMAT;
#[doc(hidden)]
pub use snapshot::decode_state as decode_aggregate_snapshot_state;

use crate::cache::StateCache;
use crate::decider_loop::{DeciderLoop, Item, Job, JobAnswer};
use crate::snapshot::Snapshotter;

/// Tuning of the write path.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Commands waiting beyond this are refused with
    /// [`EngineError::Overloaded`] (counted in commands: a batch counts all
    /// of its own, and is let in whatever its size when nothing waits).
    pub queue_capacity: usize,
    /// Most commands decided and appended together. A job (one call's
    /// commands, [`Engine::execute_batch`]) is never split: a batch holds at
    /// least one job, whatever its size.
    pub max_batch: usize,
    /// Attempts per command when other writers keep changing its streams.
    pub max_attempts: usize,
    /// Other servers write to the same store (PostgreSQL): follow `$all` and
    /// drop cached states they changed, so this server does not keep
    /// deciding (or authenticating) on what they replaced. Optimistic
    /// concurrency keeps writes correct either way; this keeps the cache
    /// fresh for reads such as a revoked API key.
    pub follow_other_writers: bool,
    /// Where snapshots of aggregate state are kept (`None`: every load folds
    /// the whole stream). A cache: loads check each snapshot against the log
    /// and ignore it on any doubt; see [`AGGREGATE_SNAPSHOT_FORMAT`].
    pub snapshots: Option<Arc<dyn AggregateSnapshots>>,
    /// A stream is snapshotted when a commit brings it to a multiple of this
    /// many events, and when a load had to fold at least this many (0: read
    /// snapshots, never write them).
    pub snapshot_every: u64,
    /// The most memory, in bytes, the committed states kept in memory may
    /// take (as estimated by `Aggregate::approx_bytes`); beyond it the least
    /// useful are evicted and loaded again from the store when needed. 0
    /// keeps none: every command loads what it reads.
    pub state_cache_bytes: u64,
}

/// The default [`EngineConfig::queue_capacity`]: 65,536 commands, eight
/// batches of the most `CreateTransfers` takes (8,190) or as many single
/// calls, about 16 MB of queued commands (a transfer's is some 250 bytes).
/// Beyond it callers are told to retry later rather than queue for seconds.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;

/// The default [`EngineConfig::state_cache_bytes`]: 256 MiB, a quarter of
/// the 1 GiB a whole server aims to stay under. It holds the states of
/// 230,000 to 470,000 streams (an account or a transfer takes about 570
/// bytes without meta, 1.1 KB with a key or two of it), far more than the
/// accounts active at once on a busy deployment, so the streams commands
/// keep coming back to stay in memory, and the rest (settled transfers, used
/// card tokens, idempotency records) cost one read of the store if touched
/// again.
pub const DEFAULT_STATE_CACHE_BYTES: u64 = 256 << 20;

/// How often the cache is swept of idempotency records whose window ended
/// (those that are read again are dropped at once).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_batch: 1_024,
            max_attempts: 32,
            follow_other_writers: false,
            snapshots: None,
            snapshot_every: 1_000,
            state_cache_bytes: DEFAULT_STATE_CACHE_BYTES,
        }
    }
}

/// Who issued a command, recorded in every event's metadata.
#[derive(Clone, Debug, Default)]
pub struct CommandMeta {
    /// The API key (or `system`) acting.
    pub actor: Option<String>,
    pub correlation_id: Option<Uuid>,
    /// The W3C trace context recorded with the events. `None`: the
    /// command's own span's when spans are exported, else the caller's
    /// (`paycore_telemetry::current_trace_context` inside the command span).
    pub trace: Option<paycore_store::TraceContext>,
}

/// One command of [`Engine::execute_batch`].
#[derive(Clone, Debug)]
pub struct BatchCommand {
    pub envelope: CommandEnvelope,
    /// Succeeds or fails together with the next command of the batch.
    pub linked: bool,
    /// The ID of what the command creates was chosen by the caller rather
    /// than generated for it: it may exist already, so the engine reads it
    /// (commands with generated IDs skip that read).
    pub id_chosen_by_caller: bool,
}

impl BatchCommand {
    /// A command on its own (not linked), creating under a generated ID.
    pub fn new(envelope: CommandEnvelope) -> Self {
        Self {
            envelope,
            linked: false,
            id_chosen_by_caller: false,
        }
    }
}

/// The answer to a command that was carried out (or replayed).
#[derive(Clone, Debug)]
pub struct Executed {
    /// What the command created or changed.
    pub resource: ResourceRef,
    /// Its state right after the command.
    pub state: Aggregate,
    /// Read models that have applied this position reflect the command.
    pub position: Position,
    /// True when an idempotency key matched an earlier request: nothing new
    /// was written and `state` is the resource as it is now.
    pub replayed: bool,
}

/// Handle to the write path. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    /// Commands queued and not yet taken into a batch: the queue's bound is
    /// in commands, since one job may carry thousands.
    queued: Arc<AtomicUsize>,
    /// [`EngineConfig::queue_capacity`].
    capacity: usize,
    cache: Arc<StateCache>,
    store: Arc<dyn EventStore>,
    fatal: watch::Receiver<Option<String>>,
    snapshots: Option<Arc<Snapshotter>>,
}

/// Waits for the decider task: if a bug panicked it, no command can be
/// decided any more, so the engine says so on [`Engine::fatal`] (a server
/// then stops and exits, rather than answering every write UNAVAILABLE
/// while it looks healthy).
async fn stop_on_panic(decider: tokio::task::JoinHandle<()>, fatal: watch::Sender<Option<String>>) {
    let Err(error) = decider.await else {
        return;
    };
    if !error.is_panic() {
        return;
    }
    let panic = error.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    let reason = format!("the decider task panicked: {message}");
    tracing::error!(%reason, "the engine stops accepting commands");
    fatal.send_replace(Some(reason));
}

impl Engine {
    /// Starts the decider task on the current tokio runtime.
    pub fn start(store: Arc<dyn EventStore>, config: EngineConfig) -> Self {
        let (jobs, queue) = mpsc::channel(config.queue_capacity.max(1));
        let (fatal_tx, fatal) = watch::channel(None);
        let cache = Arc::new(StateCache::new(config.state_cache_bytes));
        tokio::spawn(sweep_state_cache(Arc::downgrade(&cache)));
        if config.follow_other_writers {
            tokio::spawn(forget_what_others_wrote(store.clone(), cache.clone()));
        }
        let snapshots = config
            .snapshots
            .clone()
            .map(|snapshots| Snapshotter::start(store.clone(), snapshots, config.snapshot_every));
        let queued = Arc::new(AtomicUsize::new(0));
        let capacity = config.queue_capacity.max(1);
        let decider = DeciderLoop::new(
            store.clone(),
            cache.clone(),
            queued.clone(),
            config,
            fatal_tx.clone(),
            snapshots.clone(),
        );
        tokio::spawn(stop_on_panic(tokio::spawn(decider.run(queue)), fatal_tx));
        Self {
            jobs,
            queued,
            capacity,
            cache,
            store,
            fatal,
            snapshots,
        }
    }

    /// Carries out one command on behalf of the system.
    pub async fn execute(&self, envelope: CommandEnvelope) -> Result<Executed, EngineError> {
        self.execute_with(envelope, CommandMeta::default()).await
    }

    /// Carries out one command; `meta` is recorded with its events.
    ///
    /// The command runs in a `command` span (a child of the caller's
    /// current span): its decision, the append of its batch and the log's
    /// group commit are spans under it, and its events' metadata carries
    /// its trace context.
    pub async fn execute_with(
        &self,
        envelope: CommandEnvelope,
        meta: CommandMeta,
    ) -> Result<Executed, EngineError> {
        let span = tracing::debug_span!(
            target: "paycore::engine",
            "command",
            otel.name = Empty,
            command = Empty,
            project = %envelope.project_id,
            stream = Empty,
            position = Empty,
            replayed = Empty,
        );
        if !span.is_disabled() {
            let kind = envelope.command.name();
            span.record("otel.name", format!("command {kind}"));
            span.record("command", kind);
        }
        let item = Item {
            envelope,
            linked: false,
            fresh_id: true,
        };
        let answers = self.submit(vec![item], meta, span.clone()).await?;
        let executed = answers
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(EngineError::Internal("a command was not answered".into())))?;
        if !span.is_disabled() {
            span.record("stream", executed.resource.stream().name().as_str());
        }
        span.record("position", executed.position);
        span.record("replayed", executed.replayed);
        Ok(executed)
    }

    /// Carries out a batch of commands of one project, in order, in one
    /// append (one fsync for all of them), each with its own result: a
    /// refused command does not stop the others, except inside a linked
    /// chain. `linked` marks a command that succeeds or fails together with
    /// the next one: a chain ends at its first command not linked (or at the
    /// batch's end), and when one of its commands is refused nothing of the
    /// chain is written, the refused one answers its reason and the others
    /// [`EngineError::LinkedCommandFailed`] naming it.
    ///
    /// `Err` only when nothing of the batch could be decided or made
    /// durable (the store failed, the engine is overloaded or stopping).
    pub async fn execute_batch(
        &self,
        commands: Vec<BatchCommand>,
        meta: CommandMeta,
    ) -> Result<Vec<Result<Executed, EngineError>>, EngineError> {
        let span = tracing::debug_span!(
            target: "paycore::engine",
            "commands",
            otel.name = "command batch",
            commands = commands.len(),
        );
        let items = commands
            .into_iter()
            .map(|command| Item {
                envelope: command.envelope,
                linked: command.linked,
                fresh_id: !command.id_chosen_by_caller,
            })
            .collect();
        self.submit(items, meta, span).await
    }

    /// Queues one job and waits for its answers.
    async fn submit(&self, items: Vec<Item>, mut meta: CommandMeta, span: tracing::Span) -> JobAnswer {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if meta.trace.is_none() {
            meta.trace = span.in_scope(paycore_telemetry::current_trace_context);
        }
        let commands = items.len();
        // Bounded in commands; a job alone in the queue is taken whatever
        // its size, so the largest batch a caller may send always goes in.
        let before = self.queued.fetch_add(commands, Ordering::Relaxed);
        if before > 0 && before + commands > self.capacity {
            self.queued.fetch_sub(commands, Ordering::Relaxed);
            return Err(EngineError::Overloaded);
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            items,
            meta,
            reply,
            span: span.clone(),
        };
        self.jobs.try_send(job).map_err(|error| {
            self.queued.fetch_sub(commands, Ordering::Relaxed);
            match error {
                mpsc::error::TrySendError::Full(_) => EngineError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => {
                    EngineError::Unavailable("the engine has stopped".into())
                }
            }
        })?;
        answer
            .instrument(span)
            .await
            .map_err(|_| EngineError::Unavailable("the engine stopped before answering".into()))?
    }

    /// The committed state of one aggregate: from memory, or loaded from the
    /// store on a miss.
    pub async fn load(&self, stream: &StreamRef) -> Result<Aggregate, EngineError> {
        if let Some(cached) = self.cache.get(stream) {
            return Ok(Aggregate::clone(&cached.state));
        }
        let load = self.cache.begin_load(stream);
        let loaded = cache::load_stream(self.store.as_ref(), self.snapshots.as_deref(), stream).await?;
        load.fill(&loaded);
        Ok(Aggregate::clone(&loaded.state))
    }

    /// Becomes `Some(reason)` when the store failed in a way that makes the
    /// process unsafe to continue (a failed fsync). The server exits on it.
    pub fn fatal(&self) -> watch::Receiver<Option<String>> {
        self.fatal.clone()
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// How many states the cache holds and how much memory they take.
    pub fn state_cache_usage(&self) -> StateCacheUsage {
        self.cache.usage()
    }

    /// Whether the stream's committed state is in memory right now (for
    /// tests: what the cache keeps is never visible in an answer).
    #[doc(hidden)]
    pub fn holds_in_memory(&self, stream: &StreamRef) -> bool {
        self.cache.holds(stream)
    }

    /// Returns once the snapshots asked for so far are written (or given
    /// up): for tests, and for an orderly shutdown that wants them kept.
    pub async fn flush_snapshots(&self) {
        if let Some(snapshots) = &self.snapshots {
            snapshots.flush().await;
        }
    }
}

/// Every [`SWEEP_EVERY`], drops the idempotency records whose window ended
/// and logs how full the cache is; ends with the engine.
async fn sweep_state_cache(cache: Weak<StateCache>) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: nothing has ended yet.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        // A sweep visits every entry (one shard's lock at a time): a blocking
        // thread's work, not a runtime worker's.
        let swept = tokio::task::spawn_blocking(move || {
            cache.drop_ended_windows();
            cache.usage()
        })
        .await;
        if let Ok(usage) = swept {
            tracing::debug!(
                entries = usage.entries,
                bytes = usage.bytes,
                budget = usage.budget,
                "engine state cache"
            );
        }
    }
}

/// Follows `$all` from now on and folds other writers' events into the
/// cached states (ours are already there: their versions are not newer).
async fn forget_what_others_wrote(store: Arc<dyn EventStore>, cache: Arc<StateCache>) {
    let from = *store.committed().borrow();
    let mut events = paycore_store::subscribe_all(store, from);
    loop {
        match events.next_batch(4_096).await {
            Ok(batch) => {
                for recorded in batch {
                    if let Some(stream) = StreamRef::parse(recorded.stream.as_str()) {
                        let decode = || {
                            paycore_domain::Event::decode(
                                &recorded.event_type,
                                recorded.schema_version,
                                &recorded.payload,
                            )
                            .ok()
                        };
                        cache.apply_other_write(&stream, recorded.position, recorded.version, decode);
                    }
                }
            }
            Err(paycore_store::StoreError::Closed) => return,
            Err(error) => {
                tracing::warn!(%error, "following the log for other writers' changes; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}
