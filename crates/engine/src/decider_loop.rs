//! The single task that decides commands and appends them in batches.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use paycore_domain::{Aggregate, CommandEnvelope, Decision, Event, Lookup, ResourceRef, StreamRef, decide};
use paycore_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, Position, StoreError, StreamName,
    StreamWrite,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cache::{Cached, StateCache, load_stream};
use crate::{CommandMeta, EngineConfig, EngineError, Executed};

pub(crate) struct Job {
    pub envelope: CommandEnvelope,
    pub meta: CommandMeta,
    pub reply: oneshot::Sender<Result<Executed, EngineError>>,
}

pub(crate) struct DeciderLoop {
    store: Arc<dyn EventStore>,
    cache: Arc<StateCache>,
    config: EngineConfig,
    fatal: watch::Sender<Option<String>>,
}

/// What one command of a batch decided, waiting for the batch's append.
enum Outcome {
    Refused(EngineError),
    /// Answer with this resource once the batch is durable.
    Resource { resource: ResourceRef, replayed: bool },
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
    ) -> Self {
        Self {
            store,
            cache,
            config,
            fatal,
        }
    }

    pub async fn run(self, mut queue: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(self.config.max_batch);
        while queue.recv_many(&mut batch, self.config.max_batch).await > 0 {
            let jobs = std::mem::take(&mut batch);
            match self.run_batch(&jobs).await {
                Ok(answers) => reply_all(jobs, answers),
                // Another writer changed a stream the batch decided on: take
                // the commands one by one, reloading what they read.
                Err(EngineError::Conflict(_)) => {
                    for job in jobs {
                        let answer = self.run_alone(&job).await;
                        let _ = job.reply.send(answer);
                    }
                }
                Err(error) => {
                    if let EngineError::Fatal(reason) = &error {
                        tracing::error!(%reason, "event store failed; the engine stops accepting commands");
                        self.fatal.send_replace(Some(reason.clone()));
                    }
                    for job in jobs {
                        let _ = job.reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    async fn run_alone(&self, job: &Job) -> Result<Executed, EngineError> {
        let mut last_conflict = String::new();
        for _ in 0..self.config.max_attempts {
            match self.run_batch(std::slice::from_ref(job)).await {
                Ok(mut answers) => return answers.pop().unwrap_or_else(|| Err(internal("no answer"))),
                Err(EngineError::Conflict(reason)) => last_conflict = reason,
                Err(error) => return Err(error),
            }
        }
        Err(EngineError::Conflict(last_conflict))
    }

    /// Decides `jobs` in order and appends everything they wrote in one
    /// request. On a version conflict the touched streams are evicted from
    /// the cache and the error is returned; nothing was written.
    async fn run_batch(&self, jobs: &[Job]) -> Result<Vec<Result<Executed, EngineError>>, EngineError> {
        let mut overlay = Overlay::default();
        let mut request = AppendRequest::default();
        let mut touched: Vec<StreamRef> = Vec::new();
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            if let Some(created) = job.envelope.created_stream() {
                // A fresh ID: no need to ask the store; the append's
                // NoStream expectation still guards it.
                overlay.states.entry(created).or_default();
            }
            self.load_into(&mut overlay, &job.envelope.streams()).await?;
            let outcome = match decide(&job.envelope, &overlay) {
                Ok(Decision::Replay { resource }) => {
                    // The original request created the resource under an ID
                    // this retry did not name: load it to answer with it.
                    self.load_into(&mut overlay, &[resource.stream()]).await?;
                    Outcome::Resource {
                        resource,
                        replayed: true,
                    }
                }
                Ok(Decision::Apply { events, resource }) => {
                    let metadata = Arc::new(metadata_of(job));
                    for (stream, event) in events {
                        stage(&mut overlay, &mut request, &mut touched, stream, &event, &metadata);
                    }
                    Outcome::Resource {
                        resource,
                        replayed: false,
                    }
                }
                Err(error) => Outcome::Refused(error.into()),
            };
            outcomes.push(outcome);
        }
        let position = if request.writes.is_empty() {
            self.last_committed()
        } else {
            match self.store.append(request).await {
                Ok(result) => result.last_position,
                Err(error @ StoreError::WrongExpectedVersion { .. }) => {
                    self.cache.forget(&touched);
                    return Err(error.into());
                }
                Err(error) => return Err(error.into()),
            }
        };
        self.cache.publish(
            touched
                .iter()
                .filter_map(|stream| overlay.states.get(stream).map(|cached| (stream.clone(), cached.clone()))),
        );
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Refused(error) => Err(error),
                Outcome::Resource { resource, replayed } => Ok(Executed {
                    resource,
                    state: overlay.get(&resource.stream()).clone(),
                    position,
                    replayed,
                }),
            })
            .collect())
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
                    let loaded = load_stream(self.store.as_ref(), stream).await?;
                    self.cache.insert_if_absent(stream.clone(), loaded.clone());
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

/// Adds one decided event to the batch's request and folds it into the overlay.
fn stage(
    overlay: &mut Overlay,
    request: &mut AppendRequest,
    touched: &mut Vec<StreamRef>,
    stream: StreamRef,
    event: &Event,
    metadata: &Arc<EventMetadata>,
) {
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
    cached.state = std::mem::take(&mut cached.state).evolve(event);
    cached.version = Some(cached.version.map_or(0, |version| version + 1));
    if !touched.contains(&stream) {
        touched.push(stream);
    }
}

fn metadata_of(job: &Job) -> EventMetadata {
    EventMetadata {
        correlation_id: job.meta.correlation_id,
        causation_id: None,
        idempotency_key: job.envelope.idempotency.as_ref().map(|key| key.key.clone()),
        actor: job.meta.actor.clone(),
        project_id: Some(job.envelope.project_id.to_string()),
    }
}

/// One shared `Arc<str>` per event type name, so events do not allocate it.
fn interned(event_type: &'static str) -> Arc<str> {
    static NAMES: OnceLock<HashMap<&'static str, Arc<str>>> = OnceLock::new();
    let names = NAMES.get_or_init(|| Event::TYPES.iter().map(|name| (*name, Arc::from(*name))).collect());
    names.get(event_type).cloned().unwrap_or_else(|| Arc::from(event_type))
}

fn reply_all(jobs: Vec<Job>, answers: Vec<Result<Executed, EngineError>>) {
    debug_assert_eq!(jobs.len(), answers.len());
    for (job, answer) in jobs.into_iter().zip(answers) {
        // The caller may have gone away (deadline, disconnect); the command
        // is committed regardless, which is what a retry with the same
        // idempotency key will find.
        let _ = job.reply.send(answer);
    }
}

fn internal(reason: &str) -> EngineError {
    EngineError::Internal(reason.to_owned())
}
