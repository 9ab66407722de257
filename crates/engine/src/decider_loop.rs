//! The single task that decides commands and appends them in batches.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// What the caller of one job is answered: every command's own result, in
/// order, or one error for all of them when nothing could be decided (the
/// store could not be read, the append failed).
pub(crate) type JobAnswer = Result<Vec<Result<Executed, EngineError>>, EngineError>;

/// One command of a job. A `linked` command succeeds or fails together with
/// the next one (a chain ends at its first command that is not linked).
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub envelope: CommandEnvelope,
    pub linked: bool,
    /// The ID of what the command creates was generated for it, so its
    /// stream is known to be empty without reading it. False for an ID the
    /// caller chose, which may exist already.
    pub fresh_id: bool,
}

/// One caller's commands: one, or a batch decided in order, one after the
/// other, inside one append. A job is never split across appends.
pub(crate) struct Job {
    pub items: Vec<Item>,
    pub meta: CommandMeta,
    pub reply: oneshot::Sender<JobAnswer>,
    /// The call's span: its decisions and its batch's append are traced
    /// under it.
    pub span: tracing::Span,
}

impl Job {
    /// The same commands with a fresh reply channel (to run them again on
    /// their own after a conflict).
    fn again(&self) -> (Self, oneshot::Receiver<JobAnswer>) {
        let (reply, answer) = oneshot::channel();
        let job = Self {
            items: self.items.clone(),
            meta: self.meta.clone(),
            reply,
            span: self.span.clone(),
        };
        (job, answer)
    }

    fn fail(self, error: EngineError) {
        // The caller may have gone away; nothing to do then.
        let _ = self.reply.send(Err(error));
    }
}

/// Most commands a batch's `append` span links to besides its parent (the
/// batch's first command): enough to find the batch from any trace of a
/// busy server without making each span as large as the batch.
const MAX_APPEND_LINKS: usize = 64;

pub(crate) struct DeciderLoop {
    store: Arc<dyn EventStore>,
    cache: Arc<StateCache>,
    /// Commands queued and not yet taken into a batch (see `Engine::submit`).
    queued: Arc<AtomicUsize>,
    config: EngineConfig,
    fatal: watch::Sender<Option<String>>,
    snapshots: Option<Arc<Snapshotter>>,
}

/// A decided batch: its commands, their outcomes and the states it leaves.
struct Prepared {
    overlay: Overlay,
    touched: Touched,
    jobs: Vec<Job>,
    outcomes: Vec<Outcome>,
    /// Touched streams that crossed a snapshot boundary.
    snapshot_due: Vec<StreamRef>,
}

impl Prepared {
    fn touched_states(&self) -> impl Iterator<Item = (StreamRef, Cached)> + '_ {
        self.touched.order.iter().filter_map(|stream| {
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

    /// Pairs each job with its commands' answers, now that the batch is
    /// durable at `position`.
    fn answers(self, position: Position) -> Vec<(Job, JobAnswer)> {
        debug_assert_eq!(
            self.jobs.iter().map(|job| job.items.len()).sum::<usize>(),
            self.outcomes.len()
        );
        let overlay = self.overlay;
        let mut outcomes = self.outcomes.into_iter();
        self.jobs
            .into_iter()
            .map(|job| {
                let answers = outcomes
                    .by_ref()
                    .take(job.items.len())
                    .map(|outcome| match outcome {
                        Outcome::Refused(error) => Err(error),
                        Outcome::Resource { resource, replayed } => Ok(Executed {
                            resource,
                            state: overlay.get(&resource.stream()).clone(),
                            position,
                            replayed,
                        }),
                    })
                    .collect();
                (job, Ok(answers))
            })
            .collect()
    }

    /// How many commands the batch holds.
    fn commands(&self) -> usize {
        self.outcomes.len()
    }
}

/// The streams a batch writes to, in the order first written. A set beside
/// the list: a batch of thousands of transfers touches thousands of
/// streams, and looking each up in the list made staging quadratic.
#[derive(Default)]
struct Touched {
    order: Vec<StreamRef>,
    set: HashSet<StreamRef>,
}

impl Touched {
    fn insert(&mut self, stream: &StreamRef) {
        if !self.set.contains(stream) {
            self.set.insert(stream.clone());
            self.order.push(stream.clone());
        }
    }

    /// Keeps the first `len` streams.
    fn truncate(&mut self, len: usize) {
        for stream in self.order.drain(len.min(self.order.len())..) {
            self.set.remove(&stream);
        }
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
    /// Where a linked chain being decided started.
    savepoint: Option<Savepoint>,
}

/// The batch as it was before a linked chain, to take the chain back.
struct Savepoint {
    writes: usize,
    /// Events in the last write then: a chain's first event may extend it.
    last_write_events: usize,
    touched: usize,
    snapshot_due: usize,
    outcomes: usize,
    /// Each stream the chain staged events on, as it was before (`None`:
    /// not in the overlay).
    before: HashMap<StreamRef, Option<Cached>>,
}

impl Savepoint {
    fn of(building: &Building) -> Self {
        let prepared = &building.prepared;
        Self {
            writes: building.request.writes.len(),
            last_write_events: building
                .request
                .writes
                .last()
                .map_or(0, |write| write.events.len()),
            touched: prepared.touched.order.len(),
            snapshot_due: prepared.snapshot_due.len(),
            outcomes: prepared.outcomes.len(),
            before: HashMap::new(),
        }
    }

    /// Keeps the state of `stream` before the chain's first event on it.
    fn remember(&mut self, overlay: &Overlay, stream: &StreamRef) {
        if !self.before.contains_key(stream) {
            self.before
                .insert(stream.clone(), overlay.states.get(stream).cloned());
        }
    }

    /// Takes back everything the chain starting at command `start` of the
    /// job staged: its command `failed` keeps its refusal, the others answer
    /// that the chain failed there.
    fn roll_back(self, building: &mut Building, start: usize, failed: usize) {
        let prepared = &mut building.prepared;
        let writes = &mut building.request.writes;
        writes.truncate(self.writes);
        if let Some(last) = writes.last_mut() {
            last.events.truncate(self.last_write_events);
        }
        prepared.touched.truncate(self.touched);
        prepared.snapshot_due.truncate(self.snapshot_due);
        for (stream, before) in self.before {
            match before {
                Some(cached) => prepared.overlay.states.insert(stream, cached),
                None => prepared.overlay.states.remove(&stream),
            };
        }
        let chain = prepared.outcomes.split_off(self.outcomes);
        for (index, outcome) in (start..).zip(chain) {
            prepared.outcomes.push(match outcome {
                Outcome::Refused(error) if index == failed => Outcome::Refused(error),
                _ => Outcome::Refused(EngineError::LinkedCommandFailed { failed_index: failed }),
            });
        }
    }
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
                touched: Touched::default(),
                jobs: Vec::new(),
                outcomes: Vec::new(),
                snapshot_due: Vec::new(),
            },
            request: AppendRequest::default(),
            savepoint: None,
        }
    }
}

/// The first jobs of `backlog` holding about `room` commands: whole jobs,
/// at least one, and no more once `room` is reached.
fn take_commands(backlog: &mut VecDeque<Job>, room: usize) -> Vec<Job> {
    let mut taken = Vec::new();
    let mut commands = 0;
    while let Some(job) = backlog.pop_front() {
        commands += job.items.len();
        taken.push(job);
        if commands >= room {
            break;
        }
    }
    taken
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
        queued: Arc<AtomicUsize>,
        config: EngineConfig,
        fatal: watch::Sender<Option<String>>,
        snapshots: Option<Arc<Snapshotter>>,
    ) -> Self {
        Self {
            store,
            cache,
            queued,
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
        // Jobs taken off the queue but not decided yet: one receive may
        // bring many jobs of thousands of commands, and a batch takes only
        // as many as make `max_batch` commands (at least one job).
        let mut backlog: VecDeque<Job> = VecDeque::new();
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
                if !open && backlog.is_empty() {
                    break;
                }
            }
            let room = self
                .config
                .max_batch
                .saturating_sub(building.as_ref().map_or(0, |b| b.prepared.commands()));
            if room > 0 && !backlog.is_empty() {
                let jobs = take_commands(&mut backlog, room);
                let taken = jobs.iter().map(|job| job.items.len()).sum();
                self.queued.fetch_sub(taken, Ordering::Relaxed);
                let base = in_flight.as_ref().map(|batch| &batch.prepared);
                building = self.build(building, jobs, base).await;
                continue;
            }
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
                    backlog.extend(incoming.drain(..));
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
            if let Err(error) = self.decide_job(&job, &mut building).instrument(span).await {
                // The store could not be read: nothing of this batch is sent.
                for job in building.prepared.jobs.into_iter().chain([job]).chain(jobs) {
                    job.fail(error.clone());
                }
                return None;
            }
            building.prepared.jobs.push(job);
        }
        Some(building)
    }

    /// Decides a job's commands in order. A linked chain (ending at its first
    /// command not linked, or with the job) is decided from a savepoint: when
    /// one of its commands is refused, everything the chain staged is taken
    /// back, the refused command keeps its reason and the chain's others
    /// answer [`EngineError::LinkedCommandFailed`].
    async fn decide_job(&self, job: &Job, building: &mut Building) -> Result<(), EngineError> {
        let metadata = Arc::new(metadata_of(job));
        let mut chain_start: Option<usize> = None;
        let mut broken: Option<usize> = None;
        for (index, item) in job.items.iter().enumerate() {
            let in_chain = item.linked || chain_start.is_some();
            if in_chain && chain_start.is_none() {
                chain_start = Some(index);
                building.savepoint = Some(Savepoint::of(building));
            }
            if let Some(failed) = broken {
                // The rest of a broken chain is not decided at all.
                building
                    .prepared
                    .outcomes
                    .push(Outcome::Refused(EngineError::LinkedCommandFailed {
                        failed_index: failed,
                    }));
            } else {
                self.decide_one(item, &metadata, building).await?;
                let refused = matches!(building.prepared.outcomes.last(), Some(Outcome::Refused(_)));
                if refused && in_chain {
                    broken = Some(index);
                }
            }
            if in_chain && !item.linked {
                // The chain ends here.
                let savepoint = building.savepoint.take();
                if let (Some(failed), Some(start), Some(savepoint)) = (broken, chain_start, savepoint) {
                    savepoint.roll_back(building, start, failed);
                }
                chain_start = None;
                broken = None;
            }
        }
        // A chain still open ends with the job.
        if let (Some(savepoint), Some(start), Some(failed)) = (building.savepoint.take(), chain_start, broken)
        {
            savepoint.roll_back(building, start, failed);
        }
        Ok(())
    }

    fn submit(&self, built: Building) -> InFlight {
        let Building {
            prepared,
            request,
            savepoint,
        } = built;
        debug_assert!(savepoint.is_none(), "every job closes its chains");
        metrics::histogram!(crate::metrics::BATCH_COMMANDS).record(prepared.commands() as f64);
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
                self.cache.forget(&prepared.touched.order);
                for job in prepared.jobs {
                    job.fail(error.clone());
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

    /// One job on its own, reloading and deciding again while other writers
    /// keep changing its streams.
    async fn run_alone(&self, job: &Job) -> JobAnswer {
        let mut last_conflict = String::new();
        for attempt in 0..self.config.max_attempts {
            if attempt > 0 {
                metrics::counter!(crate::metrics::COMMAND_RETRIES).increment(1);
                // Others keep winning: step aside for a random moment so
                // that the retries of competing servers spread out.
                let pause = rand::random_range(0..=500 * attempt.min(8) as u64);
                tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
            }
            for item in &job.items {
                self.catch_up(&item.envelope.streams()).await?;
                self.catch_up_dependents(&item.envelope).await?;
            }
            let (alone, answer) = job.again();
            let Some(built) = self.build(None, vec![alone], None).await else {
                return answer.await.unwrap_or_else(|_| Err(internal("no answer")));
            };
            let Building {
                prepared, request, ..
            } = built;
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

    /// Decides one command of `job` into the batch being built.
    async fn decide_one(
        &self,
        item: &Item,
        metadata: &Arc<EventMetadata>,
        building: &mut Building,
    ) -> Result<(), EngineError> {
        let prepared = &mut building.prepared;
        let overlay = &mut prepared.overlay;
        let envelope = &item.envelope;
        if item.fresh_id
            && let Some(created) = envelope.created_stream()
        {
            // A fresh ID: no need to ask the store; the append's NoStream
            // expectation still guards it.
            overlay.states.entry(created).or_default();
        }
        self.load_into(overlay, &envelope.streams()).await?;
        self.load_dependents(overlay, envelope).await?;
        let outcome = match decide(envelope, &*overlay) {
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
                for (stream, event) in events {
                    if let Some(savepoint) = &mut building.savepoint {
                        savepoint.remember(overlay, &stream);
                    }
                    let version = stage(
                        overlay,
                        &mut building.request,
                        &mut prepared.touched,
                        &stream,
                        &event,
                        metadata,
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
    touched: &mut Touched,
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
    touched.insert(stream);
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
        batch_commands = jobs.iter().map(|job| job.items.len()).sum::<usize>(),
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

/// The metadata of every event a job writes (its commands all act in one
/// project, for one caller).
fn metadata_of(job: &Job) -> EventMetadata {
    let project = job.items.first().map(|item| item.envelope.project_id);
    debug_assert!(
        job.items
            .iter()
            .all(|item| Some(item.envelope.project_id) == project)
    );
    EventMetadata {
        correlation_id: job.meta.correlation_id,
        causation_id: None,
        // Never the key: it may be payment data, and metadata reaches every
        // reader of the log. Its use is on the key's own record.
        idempotency_key: None,
        actor: job.meta.actor.clone(),
        project_id: project.map(|project| project.to_string()),
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

fn reply_all(answers: Vec<(Job, JobAnswer)>) {
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
