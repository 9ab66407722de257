//! One session: connect, find where the stream ends, publish the log from
//! there until something fails.
//!
//! Order and exactly-once do not rest on this process behaving: every
//! message carries `Nats-Expected-Last-Sequence`, the sequence that must
//! precede it, counted from the stream's last message when the session
//! started. The k-th published event of the log therefore always expects
//! sequence k-1, whichever session or server sends it, and JetStream stores
//! it only right after the (k-1)-th: a message that was lost makes every
//! later one of the window fail instead of leaving a hole, and a retried
//! message that already landed is absorbed by its `Nats-Msg-Id` (the
//! duplicate check comes first). Any failure ends the session; the next one
//! reads the stream's last message again.
//!
//! Publishes are pipelined: up to `max_in_flight` wait for their acks, and
//! the log is read only as far as that window allows, so memory stays flat
//! whatever the history or the backlog.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use paycore_grpc::pb::EventEnvelope;
use paycore_grpc::services::events::convert::envelope_pb;
use paycore_store::{EventStore, Position, RecordedEvent, subscribe_all};
use tokio::sync::watch;

use crate::RelayOptions;
use crate::error::RelayError;
use crate::jetstream::{connect, open_stream, resume_point};
use crate::message::{LogId, publish};
use crate::status::{RelayState, RelayStatus};
use crate::subject::subject_of;

/// What the window of a session yields, in the order it was filled.
enum Settled {
    /// The ack (or failure) of the message of the event at `position`,
    /// which had to be stored at `sequence`.
    Published {
        position: Position,
        sequence: u64,
        ack: Result<PublishAck, PublishError>,
    },
    /// Events up to `next` (exclusive) are never published; once everything
    /// before them is acked, the relay is past them.
    Passed { next: Position },
}

type Pending = Pin<Box<dyn Future<Output = Settled> + Send>>;

pub(crate) async fn run(
    store: Arc<dyn EventStore>,
    options: &RelayOptions,
    log: &LogId,
    status: &watch::Sender<RelayStatus>,
) -> Result<Infallible, RelayError> {
    let client = connect(options).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(options.ack_timeout)
        .max_ack_inflight(options.max_in_flight.saturating_add(1))
        .build(client);
    let mut stream = open_stream(&js, options).await?;
    let resume = resume_point(&mut stream, &options.stream, log).await?;
    tracing::info!(
        nats = options.servers_display(),
        stream = %options.stream,
        from = resume.next_position,
        stream_sequence = resume.last_sequence,
        log = %log,
        "relay publishing"
    );
    status.send_modify(|status| {
        status.state = RelayState::Publishing;
        status.published_before = Some(resume.next_position);
    });

    let window = options.max_in_flight.max(1);
    let mut subscription = subscribe_all(store, resume.next_position).with_batch_size(window);
    let mut last_sequence = resume.last_sequence;
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut publishes = 0usize;
    loop {
        let room = window.saturating_sub(publishes);
        tokio::select! {
            biased;
            Some(settled) = pending.next() => match settled {
                Settled::Published { position, sequence, ack } => {
                    publishes -= 1;
                    let ack = ack.map_err(|source| RelayError::Publish { position, source })?;
                    if ack.sequence != sequence {
                        return Err(RelayError::OutOfStep {
                            position,
                            expected: sequence,
                            got: ack.sequence,
                        });
                    }
                    status.send_modify(|status| status.published_before = Some(position + 1));
                }
                Settled::Passed { next } => {
                    status.send_modify(|status| status.published_before = Some(next));
                }
            },
            // Cancel-safe: the subscription moves on only when a read returns.
            events = subscription.next_batch(room), if room > 0 => {
                let mut passed = None;
                for event in &events? {
                    let Some((subject, envelope)) = prepare(&options.subject_prefix, event)? else {
                        passed = Some(event.position + 1);
                        continue;
                    };
                    passed = None;
                    let message = publish(log, event, &envelope).expected_last_sequence(last_sequence);
                    let position = event.position;
                    let ack = js
                        .send_publish(subject, message)
                        .await
                        .map_err(|source| RelayError::Publish { position, source })?;
                    last_sequence += 1;
                    let sequence = last_sequence;
                    publishes += 1;
                    pending.push_back(Box::pin(async move {
                        Settled::Published { position, sequence, ack: ack.await }
                    }));
                }
                if let Some(next) = passed {
                    pending.push_back(Box::pin(std::future::ready(Settled::Passed { next })));
                }
            }
        }
    }
}

/// The subject and envelope of `event`, or `None` if it is not published.
fn prepare(prefix: &str, event: &RecordedEvent) -> Result<Option<(String, EventEnvelope)>, RelayError> {
    let Some(subject) = subject_of(prefix, event)? else {
        return Ok(None);
    };
    let decoded = paycore_domain::Event::decode(&event.event_type, event.schema_version, &event.payload)
        .map_err(|error| RelayError::Decode {
            position: event.position,
            event_type: event.event_type.to_string(),
            schema_version: event.schema_version,
            why: error.to_string(),
        })?;
    let envelope = envelope_pb(event, &decoded).map_err(|source| RelayError::Convert {
        position: event.position,
        source,
    })?;
    Ok(envelope.map(|envelope| (subject, envelope)))
}
