//! `EventService`: the project's events as a server stream, and durable
//! consumers' checkpoints.
//!
//! Each subscription is a producer task reading `$all` (catch-up, then live)
//! into a bounded channel that the response stream drains. The producer only
//! reads on when the channel has room, so a client that stops reading holds
//! at most [`SUBSCRIPTION_BUFFER`] envelopes and one read batch on the
//! server, and HTTP/2 flow control holds back the rest. The producer ends
//! when the client goes away (the channel closes).

pub mod convert;

use crate::metrics::{OpenSubscription, SUBSCRIPTION_EVENTS, SUBSCRIPTION_LAG};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use paycore_domain::consumer::ConsumerCommand;
use paycore_domain::consumer::{ConsumerCheckpoint, ConsumerName, PositionCommit};
use paycore_domain::{DomainError, Event, ProjectId, StreamRef, Violations};
use paycore_engine::EngineError;
use paycore_store::{
    DEFAULT_SUBSCRIPTION_BATCH, EventStore, Position, ReadDirection, RecordedEvent, StoreError, StreamName,
    Subscription, subscribe_all,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use self::convert::{DELIVERED_CATEGORIES, WITHHELD_CATEGORIES, WITHHELD_EVENT_TYPES};
use super::{Handlers, correlation_id, finish};
use crate::auth::{AuthError, Caller};
use crate::convert::timestamp;
use crate::errors::{ERROR_DOMAIN, domain_status, engine_status};
use crate::pb::{self, event_service_server::EventService, subscribe_events_request::Start as StartField};

/// Envelopes a subscription keeps ready for its client. With one read batch
/// of the log, the most a subscription holds on the server.
pub const SUBSCRIPTION_BUFFER: usize = 256;
/// Events read from the log at a time.
const READ_BATCH: usize = DEFAULT_SUBSCRIPTION_BATCH;
/// How long a position just past this server's view of the log may take to
/// appear: another server of a shared database may have committed it a
/// moment before this one sees it.
const HEAD_WAIT: Duration = Duration::from_secs(1);
/// `ErrorInfo.reason` of a stream that ends at an event this server cannot
/// decode.
pub const REASON_EVENT_NOT_DECODABLE: &str = "EVENT_NOT_DECODABLE";

/// The type name of `Event::ApiKeyRevoked`.
const KEY_REVOKED: &str = "ApiKeyRevoked";

type Item = Result<pb::EventEnvelope, Status>;

/// Tells open subscriptions that the server is shutting down. They end with
/// UNAVAILABLE at once: a subscription never ends by itself, and a graceful
/// shutdown waits for every open call.
#[derive(Clone, Debug)]
pub struct Drain(Arc<watch::Sender<bool>>);

impl Drain {
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }

    /// Ends every open subscription and every one opened from now on.
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    fn started(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut draining = self.0.subscribe();
        Box::pin(async move {
            // An error means the sender is gone: nothing is served any more.
            let _ = draining.wait_for(|draining| *draining).await;
        })
    }
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a subscription starts, as asked.
enum Start {
    Position(Position),
    Now,
    Consumer(ConsumerName),
}

#[tonic::async_trait]
impl EventService for Handlers {
    type SubscribeEventsStream = EventStream;

    async fn subscribe_events(
        &self,
        request: Request<pb::SubscribeEventsRequest>,
    ) -> Result<Response<Self::SubscribeEventsStream>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let mut v = Violations::new();
        let scope = Scope::parse(&caller, &request, &mut v);
        let start = start_of(&request, &mut v);
        let (scope, start) = finish(v, scope.zip(start))?;
        let store = self.state.engine.store().clone();
        let from = first_position(&store, caller.project_id, start).await?;
        tracing::debug!(project = %caller.project_id, from, "subscription opened");
        Ok(Response::new(self.open(store, from, scope)))
    }

    async fn commit_consumer_position(
        &self,
        request: Request<pb::CommitConsumerPositionRequest>,
    ) -> Result<Response<pb::ConsumerPosition>, Status> {
        let caller = self.caller(&request).await?;
        let correlation = correlation_id(request.metadata());
        let request = request.into_inner();
        let mut v = Violations::new();
        let consumer = consumer_name(&request.consumer, &mut v);
        let consumer = finish(v, consumer)?;
        let store = self.state.engine.store().clone();
        let head = head_reaching(&store, request.position.saturating_add(1)).await;
        let command = ConsumerCommand::CommitConsumerPosition(PositionCommit {
            consumer: consumer.clone(),
            position: request.position,
            head,
            reset: request.reset,
        })
        .into();
        self.execute(&caller, correlation, None, command).await?;
        let checkpoint = checkpoint(&store, caller.project_id, &consumer)
            .await?
            .ok_or_else(|| not_found(&consumer))?;
        Ok(Response::new(consumer_position_pb(&checkpoint)))
    }

    async fn get_consumer_position(
        &self,
        request: Request<pb::GetConsumerPositionRequest>,
    ) -> Result<Response<pb::ConsumerPosition>, Status> {
        let caller = self.caller(&request).await?;
        let mut v = Violations::new();
        let consumer = consumer_name(&request.get_ref().consumer, &mut v);
        let consumer = finish(v, consumer)?;
        let store = self.state.engine.store().clone();
        let checkpoint = checkpoint(&store, caller.project_id, &consumer)
            .await?
            .ok_or_else(|| not_found(&consumer))?;
        Ok(Response::new(consumer_position_pb(&checkpoint)))
    }
}

impl Handlers {
    /// Starts the producer of a subscription and answers its stream.
    fn open(&self, store: Arc<dyn EventStore>, from: Position, scope: Scope) -> EventStream {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let producer = Producer {
            head: store.committed(),
            subscription: subscribe_all(store, from).with_batch_size(READ_BATCH),
            scope,
            tx,
            _open: OpenSubscription::new(),
        };
        tokio::spawn(producer.run());
        EventStream {
            events: ReceiverStream::new(rx),
            draining: self.drain.started(),
            ended: false,
        }
    }
}

// ---------------------------------------------------------------- the request

fn consumer_name(text: &str, v: &mut Violations) -> Option<ConsumerName> {
    v.check("consumer", ConsumerName::parse(text))
}

/// The request's start; a consumer excludes an explicit one.
fn start_of(request: &pb::SubscribeEventsRequest, v: &mut Violations) -> Option<Start> {
    let explicit_field = match request.start {
        Some(StartField::FromPosition(_)) => "from_position",
        Some(StartField::FromNow(_)) => "from_now",
        None => "",
    };
    if let Some(consumer) = &request.consumer {
        let name = consumer_name(consumer, v);
        if request.start.is_some() {
            v.add(
                explicit_field,
                "must not be given with consumer: a consumer resumes after its committed position",
            );
            return None;
        }
        return name.map(Start::Consumer);
    }
    match request.start {
        None => Some(Start::Position(0)),
        Some(StartField::FromPosition(position)) => Some(Start::Position(position)),
        Some(StartField::FromNow(true)) => Some(Start::Now),
        Some(StartField::FromNow(false)) => {
            v.add(
                "from_now",
                "must be true when set; leave the start unset to begin at position 0",
            );
            None
        }
    }
}

/// The position a subscription starts at.
async fn first_position(
    store: &Arc<dyn EventStore>,
    project: ProjectId,
    start: Start,
) -> Result<Position, Status> {
    Ok(match start {
        Start::Position(position) => checked_start(store, position).await?,
        Start::Now => *store.committed().borrow(),
        Start::Consumer(name) => checkpoint(store, project, &name)
            .await?
            .map_or(0, |checkpoint| checkpoint.position.saturating_add(1)),
    })
}

/// `position`, if the log reaches it (the end of the log, where the next
/// event will be, is a valid start).
async fn checked_start(store: &Arc<dyn EventStore>, position: Position) -> Result<Position, Status> {
    let head = head_reaching(store, position).await;
    if position > head {
        return Err(domain_status(&DomainError::invalid(
            "from_position",
            format!(
                "is beyond the end of the log: the next event will be at position {head}, \
                 so resume from at most {head}"
            ),
        )));
    }
    Ok(position)
}

/// The number of committed events, once it is at least `target` or after
/// [`HEAD_WAIT`], whichever comes first.
async fn head_reaching(store: &Arc<dyn EventStore>, target: Position) -> Position {
    let mut committed = store.committed();
    if *committed.borrow() < target {
        let _ = tokio::time::timeout(HEAD_WAIT, committed.wait_for(|head| *head >= target)).await;
    }
    *committed.borrow()
}

/// What a subscription delivers: the project's events of the delivered
/// categories, narrowed by the request's filters.
struct Scope {
    project: String,
    /// Empty: every delivered category.
    categories: Vec<&'static str>,
    /// Empty: every delivered type.
    event_types: Vec<&'static str>,
    /// The stream of the caller's API key: a subscription outlives the
    /// authentication of its call, so it watches for the key's revocation.
    key_stream: String,
}

impl Scope {
    fn parse(caller: &Caller, request: &pb::SubscribeEventsRequest, v: &mut Violations) -> Option<Self> {
        let categories = names(&request.categories, "categories", v, category);
        let event_types = names(&request.event_types, "event_types", v, event_type);
        Some(Self {
            project: caller.project_id.to_string(),
            categories: categories?,
            event_types: event_types?,
            key_stream: StreamRef::ApiKey(caller.key_id).name(),
        })
    }

    /// Whether `event` revokes the key the subscription was opened with.
    fn revokes_key(&self, event: &RecordedEvent) -> bool {
        event.stream.as_str() == self.key_stream && &*event.event_type == KEY_REVOKED
    }

    fn selects(&self, event: &RecordedEvent) -> bool {
        let category = event.stream.category();
        event.metadata.project_id.as_deref() == Some(self.project.as_str())
            && DELIVERED_CATEGORIES.contains(&category)
            && (self.categories.is_empty() || self.categories.contains(&category))
            && (self.event_types.is_empty() || self.event_types.contains(&&*event.event_type))
    }

    /// The envelope of `event` if the subscription delivers it.
    fn envelope(&self, event: &RecordedEvent) -> Result<Option<pb::EventEnvelope>, Status> {
        if !self.selects(event) {
            return Ok(None);
        }
        let decoded = Event::decode(&event.event_type, event.schema_version, &event.payload)
            .map_err(|error| not_decodable(event, &error))?;
        convert::envelope_pb(event, &decoded).map_err(|error| {
            tracing::error!(position = event.position, %error, "an event could not be converted");
            Status::internal(format!(
                "the event at position {} could not be delivered (internal error)",
                event.position
            ))
        })
    }
}

/// Every entry of a repeated filter `field`, each checked by `known`.
fn names(
    entries: &[String],
    field: &str,
    v: &mut Violations,
    known: fn(&str, String, &mut Violations) -> Option<&'static str>,
) -> Option<Vec<&'static str>> {
    let checked: Vec<Option<&'static str>> = entries
        .iter()
        .enumerate()
        .map(|(i, name)| known(name, format!("{field}[{i}]"), v))
        .collect();
    checked.into_iter().collect()
}

fn category(name: &str, field: String, v: &mut Violations) -> Option<&'static str> {
    if let Some(known) = DELIVERED_CATEGORIES.iter().find(|known| **known == name) {
        return Some(known);
    }
    let why = if WITHHELD_CATEGORIES.contains(&name) {
        "is never delivered (write-side bookkeeping or platform events)"
    } else {
        "is not a stream category"
    };
    v.add(
        field,
        format!(
            "{name:?} {why}; the categories are {}",
            DELIVERED_CATEGORIES.join(", ")
        ),
    );
    None
}

fn event_type(name: &str, field: String, v: &mut Violations) -> Option<&'static str> {
    if let Some(known) = convert::delivered_event_types().find(|known| *known == name) {
        return Some(known);
    }
    let why = if WITHHELD_EVENT_TYPES.contains(&name) {
        "is never delivered (write-side bookkeeping or platform events)"
    } else {
        "is not an event type"
    };
    let known: Vec<&str> = convert::delivered_event_types().collect();
    v.add(
        field,
        format!("{name:?} {why}; the event types are {}", known.join(", ")),
    );
    None
}

// ---------------------------------------------------------------- the stream

/// Reads the log into a subscription's channel; see the module docs.
struct Producer {
    subscription: Subscription,
    scope: Scope,
    tx: mpsc::Sender<Item>,
    /// The log's head, for the lag metric.
    head: tokio::sync::watch::Receiver<Position>,
    _open: OpenSubscription,
}

impl Producer {
    async fn run(mut self) {
        loop {
            let batch = tokio::select! {
                // While waiting for new events, notice a client that left.
                () = self.tx.closed() => return,
                batch = self.subscription.next_batch(READ_BATCH) => batch,
            };
            let events = match batch {
                Ok(events) => events,
                Err(error) => return self.end(store_status(error)).await,
            };
            if let Some(last) = events.last() {
                let behind = self.head.borrow().saturating_sub(last.position + 1);
                metrics::histogram!(SUBSCRIPTION_LAG).record(behind as f64);
            }
            for event in &events {
                if self.scope.revokes_key(event) {
                    return self.end(AuthError::Revoked.into()).await;
                }
                match self.scope.envelope(event) {
                    Ok(None) => {}
                    Ok(Some(envelope)) => {
                        // Waits while the channel is full: the flow control.
                        if self.tx.send(Ok(envelope)).await.is_err() {
                            return;
                        }
                        metrics::counter!(SUBSCRIPTION_EVENTS).increment(1);
                    }
                    Err(status) => return self.end(status).await,
                }
            }
            if self.tx.is_closed() {
                return;
            }
            // A long run of events nobody selected must not hog the worker.
            tokio::task::yield_now().await;
        }
    }

    async fn end(self, status: Status) {
        let _ = self.tx.send(Err(status)).await;
    }
}

fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::Closed => shutting_down(),
        other => engine_status(&EngineError::from(other)),
    }
}

fn shutting_down() -> Status {
    Status::unavailable(
        "the server is shutting down; subscribe again with from_position = the last position + 1",
    )
}

/// DATA_LOSS naming the event: skipping it would silently lose it.
fn not_decodable(event: &RecordedEvent, error: &paycore_domain::events::DecodeError) -> Status {
    tracing::error!(position = event.position, %error, "a subscribed event does not decode");
    let mut details = ErrorDetails::new();
    details.set_error_info(
        REASON_EVENT_NOT_DECODABLE,
        ERROR_DOMAIN,
        HashMap::from([
            ("position".to_owned(), event.position.to_string()),
            ("event_type".to_owned(), event.event_type.to_string()),
        ]),
    );
    Status::with_error_details(
        Code::DataLoss,
        format!(
            "the event at position {} ({} v{}) cannot be decoded by this server ({error}); \
             the subscription cannot go past it",
            event.position, event.event_type, event.schema_version
        ),
        details,
    )
}

/// The response stream: the producer's envelopes, cut short with
/// UNAVAILABLE when the server starts shutting down.
pub struct EventStream {
    events: ReceiverStream<Item>,
    draining: Pin<Box<dyn Future<Output = ()> + Send>>,
    ended: bool,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Stream for EventStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.draining.as_mut().poll(cx).is_ready() {
            self.ended = true;
            return Poll::Ready(Some(Err(shutting_down())));
        }
        let item = ready!(Pin::new(&mut self.events).poll_next(cx));
        self.ended = !matches!(item, Some(Ok(_)));
        Poll::Ready(item)
    }
}

// ---------------------------------------------------------------- consumers

/// A consumer's checkpoint, read from the log itself rather than a cache, so
/// a commit made through another server of a shared database counts.
async fn checkpoint(
    store: &Arc<dyn EventStore>,
    project: ProjectId,
    consumer: &ConsumerName,
) -> Result<Option<ConsumerCheckpoint>, Status> {
    let stream = StreamName::from(StreamRef::Consumer(project, consumer.clone()).name());
    let last = store
        .read_stream(&stream, u64::MAX, ReadDirection::Backward, 1)
        .await
        .map_err(|error| engine_status(&EngineError::from(error)))?;
    let Some(event) = last.first() else {
        return Ok(None);
    };
    match Event::decode(&event.event_type, event.schema_version, &event.payload) {
        Ok(Event::ConsumerPositionCommitted(committed)) => Ok(Some(ConsumerCheckpoint {
            project_id: committed.project_id,
            consumer: committed.consumer,
            position: committed.position,
            committed_at: committed.committed_at,
        })),
        Ok(other) => Err(crate::errors::internal(format!(
            "{stream} holds a {} event",
            other.event_type()
        ))),
        Err(error) => Err(not_decodable(event, &error)),
    }
}

fn not_found(consumer: &ConsumerName) -> Status {
    domain_status(&DomainError::not_found("consumer", consumer))
}

fn consumer_position_pb(checkpoint: &ConsumerCheckpoint) -> pb::ConsumerPosition {
    pb::ConsumerPosition {
        consumer: checkpoint.consumer.to_string(),
        position: checkpoint.position,
        committed_at: Some(timestamp(checkpoint.committed_at)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use paycore_domain::events::ApiKeyRevoked;
    use paycore_domain::{ApiKeyId, Environment, Timestamp};
    use uuid::Uuid;

    use super::*;

    fn caller() -> Caller {
        Caller {
            project_id: ProjectId::from_uuid(Uuid::from_u128(1)),
            key_id: ApiKeyId::from_uuid(Uuid::from_u128(2)),
            environment: Environment::Sandbox,
        }
    }

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(violations)) => violations.into_iter().map(|v| v.field).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_revocation_watched_for_is_the_domains() {
        let event = Event::ApiKeyRevoked(ApiKeyRevoked {
            revoked_at: Timestamp::from_micros(0),
        });
        assert_eq!(event.event_type(), KEY_REVOKED);
    }

    #[test]
    fn starts() {
        let parse = |start: Option<StartField>, consumer: Option<&str>| {
            let request = pb::SubscribeEventsRequest {
                start,
                consumer: consumer.map(str::to_owned),
                ..Default::default()
            };
            let mut v = Violations::new();
            let start = start_of(&request, &mut v);
            (start, fields(v))
        };
        assert!(matches!(parse(None, None), (Some(Start::Position(0)), f) if f.is_empty()));
        assert!(matches!(
            parse(Some(StartField::FromPosition(9)), None),
            (Some(Start::Position(9)), _)
        ));
        assert!(matches!(
            parse(Some(StartField::FromNow(true)), None),
            (Some(Start::Now), _)
        ));
        assert!(matches!(
            parse(None, Some("billing")),
            (Some(Start::Consumer(_)), _)
        ));
        assert_eq!(parse(Some(StartField::FromNow(false)), None).1, ["from_now"]);
        assert_eq!(
            parse(Some(StartField::FromPosition(1)), Some("billing")).1,
            ["from_position"]
        );
        assert_eq!(
            parse(Some(StartField::FromNow(true)), Some("Bad")).1,
            ["consumer", "from_now"]
        );
    }

    #[test]
    fn filters_name_every_bad_entry() {
        let request = pb::SubscribeEventsRequest {
            categories: vec!["account".into(), "fxrate".into()],
            event_types: vec!["MinirefAssigned".into(), "AccountOpened".into(), "X".into()],
            ..Default::default()
        };
        let mut v = Violations::new();
        assert!(Scope::parse(&caller(), &request, &mut v).is_none());
        assert_eq!(fields(v), ["categories[1]", "event_types[0]", "event_types[2]"]);
        let request = pb::SubscribeEventsRequest {
            categories: vec!["account".into()],
            event_types: vec!["AccountOpened".into()],
            ..Default::default()
        };
        let mut v = Violations::new();
        let scope = Scope::parse(&caller(), &request, &mut v).unwrap();
        assert_eq!(
            (scope.categories, scope.event_types),
            (vec!["account"], vec!["AccountOpened"])
        );
        assert_eq!(scope.key_stream, format!("apikey-{}", caller().key_id));
    }
}
