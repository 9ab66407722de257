//! The single task that decides commands and appends them in batches.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use paycore_domain::{Aggregate, CommandEnvelope, Decision, Event, Lookup, ResourceRef, StreamRef, decide};
use paycore_store::{
    AppendRequest, AppendResult, EventMetadata, EventStore, ExpectedVersion, NewEvent, Position, StoreError,
    StreamName, StreamWrite,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::cache::{Cached, StateCache, catch_up, load_stream};
use crate::snapshot::Snapshotter;
use crate::{CommandMeta, EngineConfig, EngineError, Executed};

pub(crate) struct Job {
    pub envelope: CommandEnvelope,
    pub meta: CommandMeta,
    pub reply: oneshot::Sender<Result<Executed, EngineError>>,
    /// The command's span: its decision and its batch's append are traced
    /// under it.
    pub span: tracing::Span,
}

/// Most commands a batch's `append` span links to besides its parent (the
/// batch's first command): enough to find the batch from any trace of a
/// busy server without making each span as large as the batch.
const MAX_APPEND_LINKS: usize = 64;

pub(crate) struct DeciderLoop {
    store: Arc<dyn EventStore>,
    cache: Arc<StateCache>,
    config: EngineConfig,
    fatal: watch::Sender<Option<String>>,
    snapshots: Option<Arc<Snapshotter>>,
}

/// A decided batch: its commands, their outcomes and the states it leaves.
struct Prepared {
    overlay: Overlay,
    touched: Vec<StreamRef>,
    jobs: Vec<Job>,
    outcomes: Vec<Outcome>,
    /// Touched streams that crossed a snapshot boundary.
    snapshot_due: Vec<StreamRef>,
}

impl Prepared {
    fn touched_states(&self) -> impl Iterator<Item = (StreamRef, Cached)> + '_ {
        self.touched.iter().filter_map(|stream| {
            self.overlay
                .states
                .get(stream)
                .map(|cached| (stream.clone(), cached.clone()))
        })
    }

    /// Queues snapshots of the streams that crossed a boundary, now that the
    /// batch is committed.
    fn request_snapshots(&self, snapshots: Option<&Snapshotter>) {
        let Some(snapshots) = snapshots else {
            return;
        };
        for stream in &self.snapshot_due {
            if let Some(cached) = self.overlay.states.get(stream) {
                snapshots.save(stream.clone(), cached.clone());
            }
        }
    }

    /// Pairs each command with its answer, now that the batch is durable at
    /// `position`.
    fn answers(self, position: Position) -> Vec<(Job, Result<Executed, EngineError>)> {
        debug_assert_eq!(self.jobs.len(), self.outcomes.len());
        let overlay = self.overlay;
        self.jobs
            .into_iter()
            .zip(self.outcomes)
            .map(|(job, outcome)| {
                let answer = match outcome {
                    Outcome::Refused(error) => Err(error),
                    Outcome::Resource { resource, replayed } => Ok(Executed {
                        resource,
                        state: overlay.get(&resource.stream()).clone(),
                        position,
                        replayed,
                    }),
                };
                (job, answer)
            })
            .collect()
    }
}

/// A batch whose append is under way.
struct InFlight {
    prepared: Prepared,
    /// The batch's `append` span.
    span: tracing::Span,
    /// `None` when the batch wrote nothing (refusals, replays).
    append: Option<JoinHandle<Result<AppendResult, StoreError>>>,
    /// When the append was sent.
    sent: std::time::Instant,
}

/// A batch being decided while the one before it is appended.
struct Building {
    prepared: Prepared,
    request: AppendRequest,
}

impl Building {
    /// An empty batch that sees the states `base` (the batch in flight)
    /// leaves, as if it were already committed.
    fn on_top_of(base: Option<&Prepared>) -> Self {
        let mut overlay = Overlay::default();
        if let Some(base) = base {
            overlay.states.extend(base.touched_states());
        }
        Self {
            prepared: Prepared {
                overlay,
                touched: Vec::new(),
                jobs: Vec::new(),
                outcomes: Vec::new(),
                snapshot_due: Vec::new(),
            },
            request: AppendRequest::default(),
        }
    }
}

/// The result of the batch in flight, once it is there (`None` inside if it
/// wrote nothing). Pending forever when nothing is in flight.
async fn wait(in_flight: &mut Option<InFlight>) -> Option<Result<AppendResult, StoreError>> {
    match in_flight {
        None => std::future::pending().await,
        Some(InFlight { append: None, .. }) => None,
        Some(InFlight {
            append: Some(handle), ..
        }) => Some(joined(handle.await)),
    }
}

fn joined(
    result: Result<Result<AppendResult, StoreError>, tokio::task::JoinError>,
) -> Result<AppendResult, StoreError> {
    result.unwrap_or_else(|error| Err(StoreError::Fatal(format!("the append task failed: {error}"))))
}

/// What one command of a batch decided, waiting for the batch's append.
enum Outcome {
    Refused(EngineError),
    /// Answer with this resource once the batch is durable.
    Resource {
        resource: ResourceRef,
        replayed: bool,
    },
}

/// States as a batch leaves them, over the committed cache.
#[derive(Default)]
struct Overlay {
    states: HashMap<StreamRef, Cached>,
}

impl Lookup for Overlay {
    fn get(&self, stream: &StreamRef) -> &Aggregate {
        static EMPTY: Aggregate = Aggregate::Empty;
        self.states.get(stream).map_or(&EMPTY, |cached| &cached.state)
    }
}

impl DeciderLoop {
    pub fn new(
        store: Arc<dyn EventStore>,
        cache: Arc<StateCache>,
        config: EngineConfig,
        fatal: watch::Sender<Option<String>>,
        snapshots: Option<Arc<Snapshotter>>,
    ) -> Self {
        Self {
            store,
            cache,
            config,
            fatal,
            snapshots,
        }
    }

    /// Takes commands off the queue and decides them into the batch being
    /// built while the previous batch's append is in flight; the moment that
    /// append is durable, the built batch is sent. Deciding thus overlaps the
    /// fsync, and every fsync carries all the commands that arrived during
    /// the one before.
    pub async fn run(self, mut queue: mpsc::Receiver<Job>) {
        let mut in_flight: Option<InFlight> = None;
        let mut building: Option<Building> = None;
        // Commands to decide again (their batch was built on one that failed).
        let mut redo: Vec<Job> = Vec::new();
        let mut incoming = Vec::with_capacity(self.config.max_batch);
        let mut open = true;
        loop {
            if in_flight.is_none() {
                if let Some(built) = building.take() {
                    in_flight = Some(self.submit(built));
                    continue;
                }
                if !redo.is_empty() {
                    building = self.build(None, std::mem::take(&mut redo), None).await;
                    continue;
                }
                if !open {
                    break;
                }
            }
            let room = self
                .config
                .max_batch
                .saturating_sub(building.as_ref().map_or(0, |b| b.prepared.jobs.len()));
            tokio::select! {
                biased;
                appended = wait(&mut in_flight) => {
                    if let Some(head) = in_flight.take() {
                        let dependent = building.take();
                        building = self.finish(head, appended, dependent, &mut redo).await;
                    }
                }
                received = queue.recv_many(&mut incoming, room.max(1)), if open && room > 0 => {
                    if received == 0 {
                        open = false;
                        continue;
                    }
                    let jobs = std::mem::take(&mut incoming);
                    let base = in_flight.as_ref().map(|batch| &batch.prepared);
                    building = self.build(building, jobs, base).await;
                }
            }
        }
    }

    /// Decides `jobs` into the batch being built (a new one on top of `base`,
    /// the batch in flight, if there is none yet).
    async fn build(
        &self,
        building: Option<Building>,
        jobs: Vec<Job>,
        base: Option<&Prepared>,
    ) -> Option<Building> {
        let mut building = building.unwrap_or_else(|| Building::on_top_of(base));
        let mut jobs = jobs.into_iter();
        while let Some(job) = jobs.next() {
            let span = tracing::debug_span!(target: "paycore::engine", parent: &job.span, "decide");
            if let Err(error) = self.decide_one(&job, &mut building).instrument(span).await {
                // The store could not be read: nothing of this batch is sent.
                for job in building.prepared.jobs.into_iter().chain([job]).chain(jobs) {
                    let _ = job.reply.send(Err(error.clone()));
                }
                return None;
            }
            building.prepared.jobs.push(job);
        }
        Some(building)
    }

    fn submit(&self, built: Building) -> InFlight {
        let Building { prepared, request } = built;
        metrics::histogram!(crate::metrics::BATCH_COMMANDS).record(prepared.jobs.len() as f64);
        let span = append_span(&prepared.jobs, request.event_count());
        let append = (!request.writes.is_empty()).then(|| {
            let store = self.store.clone();
            tokio::spawn(async move { store.append(request).await }.instrument(span.clone()))
        });
        InFlight {
            prepared,
            span,
            append,
            sent: std::time::Instant::now(),
        }
    }

    /// Publishes and answers a batch whose append finished. `dependent` is
    /// the batch built on top of it: kept if it succeeded, decided again
    /// otherwise.
    #[must_use = "the returned batch is the one to send next"]
    async fn finish(
        &self,
        head: InFlight,
        appended: Option<Result<AppendResult, StoreError>>,
        dependent: Option<Building>,
        redo: &mut Vec<Job>,
    ) -> Option<Building> {
        let prepared = head.prepared;
        if appended.is_some() {
            metrics::histogram!(crate::metrics::APPEND_SECONDS).record(head.sent.elapsed().as_secs_f64());
        }
        match appended {
            None => {
                reply_all(prepared.answers(self.last_committed()));
                return dependent;
            }
            Some(Ok(result)) => {
                head.span.record("first_position", result.first_position);
                head.span.record("last_position", result.last_position);
                self.cache
                    .publish(prepared.touched_states(), result.last_position);
                prepared.request_snapshots(self.snapshots.as_deref());
                reply_all(prepared.answers(result.last_position));
                return dependent;
            }
            Some(Err(error @ StoreError::WrongExpectedVersion { .. })) => {
                // Another writer changed a stream the batch decided on: take
                // its commands one by one, reloading what they read.
                tracing::debug!(%error, "batch conflicted; retrying its commands one by one");
                metrics::counter!(crate::metrics::CONFLICTED_BATCHES).increment(1);
                for job in prepared.jobs {
                    let answer = self.run_alone(&job).await;
                    let _ = job.reply.send(answer);
                }
            }
            Some(Err(error)) => {
                let error = EngineError::from(error);
                if let EngineError::Fatal(reason) = &error {
                    tracing::error!(%reason, "event store failed; the engine stops accepting commands");
                    self.fatal.send_replace(Some(reason.clone()));
                }
                self.cache.forget(&prepared.touched);
                for job in prepared.jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
        // The batch built on top of the failed one decided on writes that
        // never happened.
        if let Some(dependent) = dependent {
            redo.extend(dependent.prepared.jobs);
        }
        None
    }

    /// One command on its own, reloading and deciding again while other
    /// writers keep changing its streams.
    async fn run_alone(&self, job: &Job) -> Result<Executed, EngineError> {
        let mut last_conflict = String::new();
        for attempt in 0..self.config.max_attempts {
            if attempt > 0 {
                metrics::counter!(crate::metrics::COMMAND_RETRIES).increment(1);
                // Others keep winning: step aside for a random moment so
                // that the retries of competing servers spread out.
                let pause = rand::random_range(0..=500 * attempt.min(8) as u64);
                tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
            }
            self.catch_up(&job.envelope.streams()).await?;
            self.catch_up_dependents(&job.envelope).await?;
            let (reply, answer) = oneshot::channel();
            let single = Job {
                envelope: job.envelope.clone(),
                meta: job.meta.clone(),
                reply,
                span: job.span.clone(),
            };
            let Some(built) = self.build(None, vec![single], None).await else {
                return answer.await.unwrap_or_else(|_| Err(internal("no answer")));
            };
            let Building { prepared, request } = built;
            let position = if request.writes.is_empty() {
                self.last_committed()
            } else {
                let span = append_span(&prepared.jobs, request.event_count());
                span.record("attempt", attempt);
                match self.store.append(request).instrument(span).await {
                    Ok(result) => {
                        self.cache
                            .publish(prepared.touched_states(), result.last_position);
                        prepared.request_snapshots(self.snapshots.as_deref());
                        result.last_position
                    }
                    Err(error @ StoreError::WrongExpectedVersion { .. }) => {
                        last_conflict = error.to_string();
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            reply_all(prepared.answers(position));
            return answer.await.unwrap_or_else(|_| Err(internal("no answer")));
        }
        Err(EngineError::Conflict(last_conflict))
    }

    /// Reads whatever other writers appended to the cached `streams` since
    /// this server last saw them (only the new events).
    async fn catch_up(&self, streams: &[StreamRef]) -> Result<(), EngineError> {
        for stream in streams {
            // Registered before the cached state is taken: the reads after
            // it are a load like any other (see the cache's module docs).
            let load = self.cache.begin_load(stream);
            if let Some(cached) = self.cache.get(stream) {
                let fresh = catch_up(self.store.as_ref(), stream, cached).await?;
                load.fill(&fresh);
            }
        }
        Ok(())
    }

    /// Refreshes the cached streams the command names through others.
    async fn catch_up_dependents(&self, envelope: &CommandEnvelope) -> Result<(), EngineError> {
        let mut overlay = Overlay::default();
        self.load_into(&mut overlay, &envelope.streams()).await?;
        let dependents = envelope.dependent_streams(&overlay);
        self.catch_up(&dependents).await
    }

    /// Decides one command into the batch being built.
    async fn decide_one(&self, job: &Job, building: &mut Building) -> Result<(), EngineError> {
        let prepared = &mut building.prepared;
        let overlay = &mut prepared.overlay;
        if let Some(created) = job.envelope.created_stream() {
            // A fresh ID: no need to ask the store; the append's NoStream
            // expectation still guards it.
            overlay.states.entry(created).or_default();
        }
        self.load_into(overlay, &job.envelope.streams()).await?;
        self.load_dependents(overlay, &job.envelope).await?;
        let outcome = match decide(&job.envelope, &*overlay) {
            Ok(Decision::Replay { resource }) => {
                // The original request created the resource under an ID this
                // retry did not name: load it to answer with it.
                self.load_into(overlay, &[resource.stream()]).await?;
                Outcome::Resource {
                    resource,
                    replayed: true,
                }
            }
            Ok(Decision::Apply { events, resource }) => {
                let metadata = Arc::new(metadata_of(job));
                for (stream, event) in events {
                    let version = stage(
                        overlay,
                        &mut building.request,
                        &mut prepared.touched,
                        &stream,
                        &event,
                        &metadata,
                    );
                    if let Some(snapshots) = &self.snapshots
                        && snapshots.is_boundary(version)
                        && !prepared.snapshot_due.contains(&stream)
                    {
                        prepared.snapshot_due.push(stream);
                    }
                }
                Outcome::Resource {
                    resource,
                    replayed: false,
                }
            }
            Err(error) => Outcome::Refused(error.into()),
        };
        prepared.outcomes.push(outcome);
        Ok(())
    }

    /// Loads the streams the command names through the state of others
    /// (see `CommandEnvelope::dependent_streams`), until it names no new one.
    async fn load_dependents(
        &self,
        overlay: &mut Overlay,
        envelope: &CommandEnvelope,
    ) -> Result<(), EngineError> {
        // The domain's chains are at most three steps long; the bound only
        // guards against a decider that keeps naming new streams.
        for _ in 0..8 {
            let missing: Vec<StreamRef> = envelope
                .dependent_streams(&*overlay)
                .into_iter()
                .filter(|stream| !overlay.states.contains_key(stream))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            self.load_into(overlay, &missing).await?;
        }
        Err(internal("a command kept naming new streams to read"))
    }

    /// Makes sure the overlay holds every stream in `streams`, from the cache
    /// or the store.
    async fn load_into(&self, overlay: &mut Overlay, streams: &[StreamRef]) -> Result<(), EngineError> {
        for stream in streams {
            if overlay.states.contains_key(stream) {
                continue;
            }
            let cached = match self.cache.get(stream) {
                Some(cached) => cached,
                None => {
                    let load = self.cache.begin_load(stream);
                    let loaded = load_stream(self.store.as_ref(), self.snapshots.as_deref(), stream).await?;
                    load.fill(&loaded);
                    loaded
                }
            };
            overlay.states.insert(stream.clone(), cached);
        }
        Ok(())
    }

    /// The position of the newest committed event (0 for an empty store).
    fn last_committed(&self) -> Position {
        self.store.committed().borrow().saturating_sub(1)
    }
}

/// Adds one decided event to the batch's request and folds it into the
/// overlay; returns the stream's version after it.
fn stage(
    overlay: &mut Overlay,
    request: &mut AppendRequest,
    touched: &mut Vec<StreamRef>,
    stream: &StreamRef,
    event: &Event,
    metadata: &Arc<EventMetadata>,
) -> u64 {
    let cached = overlay.states.entry(stream.clone()).or_default();
    let encoded = event.encode();
    let new_event = NewEvent {
        event_type: interned(encoded.event_type),
        schema_version: encoded.schema_version,
        metadata: metadata.clone(),
        payload: encoded.payload.into(),
    };
    let name = StreamName::from(stream.name());
    // Consecutive events of one stream share a write.
    match request.writes.last_mut() {
        Some(write) if write.stream == name => write.events.push(new_event),
        _ => request.writes.push(StreamWrite {
            stream: name,
            expected: ExpectedVersion::from_current(cached.version),
            events: vec![new_event],
        }),
    }
    cached.evolve(event);
    let version = cached.version.unwrap_or_default();
    if !touched.contains(stream) {
        touched.push(stream.clone());
    }
    version
}

/// The span of one batch's append: a child of its first command's span,
/// linked to the others' (up to [`MAX_APPEND_LINKS`]), so each command's
/// trace reaches the append (and the log's group commit under it) that made
/// it durable.
fn append_span(jobs: &[Job], events: usize) -> tracing::Span {
    let Some(first) = jobs.first() else {
        return tracing::Span::none();
    };
    let span = tracing::debug_span!(
        target: "paycore::engine",
        parent: &first.span,
        "append",
        batch_commands = jobs.len(),
        events,
        first_position = tracing::field::Empty,
        last_position = tracing::field::Empty,
        attempt = tracing::field::Empty,
    );
    for job in jobs.iter().skip(1).take(MAX_APPEND_LINKS) {
        span.follows_from(&job.span);
    }
    span
}

fn metadata_of(job: &Job) -> EventMetadata {
    EventMetadata {
        correlation_id: job.meta.correlation_id,
        causation_id: None,
        // Never the key: it may be payment data, and metadata reaches every
        // reader of the log. Its use is on the key's own record.
        idempotency_key: None,
        actor: job.meta.actor.clone(),
        project_id: Some(job.envelope.project_id.to_string()),
        trace: job.meta.trace,
    }
}

/// One shared `Arc<str>` per event type name, so events do not allocate it.
fn interned(event_type: &'static str) -> Arc<str> {
    static NAMES: OnceLock<HashMap<&'static str, Arc<str>>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        Event::TYPES
            .iter()
            .map(|name| (*name, Arc::from(*name)))
            .collect()
    });
    names
        .get(event_type)
        .cloned()
        .unwrap_or_else(|| Arc::from(event_type))
}

fn reply_all(answers: Vec<(Job, Result<Executed, EngineError>)>) {
    for (job, answer) in answers {
        // The caller may have gone away (deadline, disconnect); the command
        // is committed regardless, which is what a retry with the same
        // idempotency key will find.
        let _ = job.reply.send(answer);
    }
}

fn internal(reason: &str) -> EngineError {
    EngineError::Internal(reason.to_owned())
}
