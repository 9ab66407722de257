//! The relay: every event of the log on NATS JetStream, each exactly once in
//! effect, in log order.
//!
//! `paycore serve --relay-nats nats://…` runs it inside the server (the
//! embedded log is locked by its server, so the relay cannot be another
//! process). It publishes what `EventService.SubscribeEvents` would deliver
//! (see [`subject`]) to `<prefix>.<project ID>.<category>.<event type>`, the
//! payload being the subscription's own `paycore.v1.EventEnvelope`
//! (protobuf), with headers `Nats-Msg-Id` (`<log ID>:<position>`),
//! `Paycore-Log`, `Paycore-Position`, `Paycore-Stream`, `Paycore-Version`
//! and `Paycore-Event-Type` ([`message`]).
//!
//! - **Checkpoint**: the stream itself. A session reads the stream's last
//!   message and resumes after its position ([`jetstream`]), so a kill -9 at
//!   any moment loses nothing and repeats nothing.
//! - **Exactly once, in order**: each message expects the sequence before it
//!   (`Nats-Expected-Last-Sequence`) and carries its message ID, so a lost
//!   message cannot leave a hole and a retry cannot land twice, even with
//!   two relays racing ([`session`]).
//! - **Memory**: at most `max_in_flight` publishes await their acks and the
//!   log is read no further ahead.
//! - **Failures**: any error ends the session; the relay logs it and starts
//!   again after a pause that doubles up to 10 s. The server meanwhile serves
//!   gRPC as usual. A bad URL or name is refused before start
//!   ([`RelayOptions`]).
//! - **PostgreSQL**: one relay per store and stream, elected with an
//!   advisory lock ([`election`]).
//! - **Lag**: [`Relay::status`] (a `watch` for a metrics exporter) and a log
//!   line every `report_every` while behind.

pub mod election;
mod error;
mod jetstream;
pub mod message;
mod options;
mod session;
mod status;
pub mod subject;

use std::convert::Infallible;
use std::sync::Arc;

use paycore_store::{EventStore, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use election::Election;
pub use error::RelayError;
pub use message::LogId;
pub use options::{DEFAULT_DUPLICATE_WINDOW, DEFAULT_STREAM, MAX_BACKOFF, OptionsError, RelayOptions};
pub use status::{RelayState, RelayStatus};

/// A running relay; stopped by [`Relay::stop`] or when dropped.
#[derive(Debug)]
pub struct Relay {
    status: watch::Receiver<RelayStatus>,
    store: Arc<dyn EventStore>,
    stream: String,
    task: Option<JoinHandle<()>>,
    reporter: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying `store`'s log as `options` say.
    pub fn spawn(store: Arc<dyn EventStore>, options: RelayOptions, election: Election) -> Self {
        let (status_tx, status) = watch::channel(RelayStatus::starting());
        let reporter = tokio::spawn(status::report(
            store.clone(),
            status.clone(),
            options.report_every,
        ));
        let stream = options.stream.clone();
        let task = tokio::spawn(run(store.clone(), options, election, status_tx));
        Self {
            status,
            store,
            stream,
            task: Some(task),
            reporter: Some(reporter),
        }
    }

    /// The JetStream stream it publishes to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Follows the relay's state and progress.
    pub fn status(&self) -> watch::Receiver<RelayStatus> {
        self.status.clone()
    }

    /// Positions of the log not yet in the stream, now; `None` until the
    /// relay has read the stream once.
    pub fn lag(&self) -> Option<u64> {
        self.status.borrow().lag(*self.store.committed().borrow())
    }

    /// Stops publishing. Publishes in flight may or may not land; the next
    /// start resumes after whatever the stream holds.
    pub async fn stop(mut self) {
        for task in [self.task.take(), self.reporter.take()].into_iter().flatten() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in [self.task.take(), self.reporter.take()].into_iter().flatten() {
            task.abort();
        }
    }
}

async fn run(
    store: Arc<dyn EventStore>,
    options: RelayOptions,
    election: Election,
    status: watch::Sender<RelayStatus>,
) {
    let mut backoff = options.retry_every;
    loop {
        let before = status.borrow().published_before;
        let error = match session(store.clone(), &options, &election, &status).await {
            Ok(never) => match never {},
            Err(error) => error,
        };
        if matches!(error, RelayError::Store(StoreError::Closed)) {
            return;
        }
        if status.borrow().published_before > before {
            // It moved on until now: the first retry comes soon. A session
            // that fails again where the last one did (an event it cannot
            // publish) keeps backing off instead.
            backoff = options.retry_every;
        }
        if error.needs_operator() {
            tracing::error!(%error, retry_in = ?backoff, "relay stopped");
        } else {
            tracing::warn!(%error, retry_in = ?backoff, "relay interrupted");
        }
        status.send_modify(|status| {
            status.state = RelayState::Retrying {
                error: error.to_string(),
            }
        });
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Waits for the election, then publishes until something fails.
async fn session(
    store: Arc<dyn EventStore>,
    options: &RelayOptions,
    election: &Election,
    status: &watch::Sender<RelayStatus>,
) -> Result<Infallible, RelayError> {
    let mut lease = election::elect(election, &options.stream, options.retry_every, || {
        tracing::info!(stream = %options.stream, "another server relays the events; standing by");
        status.send_modify(|status| status.state = RelayState::Standby);
    })
    .await?;
    let log = log_id(store.as_ref()).await?;
    tokio::select! {
        ended = session::run(store, options, &log, status) => ended,
        () = lease.lost() => Err(RelayError::ElectionLost),
    }
}

/// The log's [`LogId`], waiting for its first event if it has none yet.
async fn log_id(store: &dyn EventStore) -> Result<LogId, RelayError> {
    let mut committed = store.committed();
    committed
        .wait_for(|head| *head > 0)
        .await
        .map_err(|_| RelayError::Store(StoreError::Closed))?;
    let first = store.read_all(0, 1).await?;
    let first = first.first().ok_or_else(|| {
        RelayError::Store(StoreError::Unavailable(
            "the log has committed events but no event at position 0".to_owned(),
        ))
    })?;
    Ok(LogId::from_first_hash(&first.hash))
}
