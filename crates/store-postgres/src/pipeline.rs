//! Pipelining several statements on one connection, with `COMMIT` sent only
//! if every statement before it was sent.
//!
//! tokio-postgres writes a request's messages when its future is first polled
//! (for an already prepared statement), so polling futures once each, in
//! order, puts their messages on the wire in that order without waiting for
//! any reply; the server executes them in order. An append thus costs two
//! round trips: `BEGIN` + lock + read heads, then inserts + updates + `COMMIT`.
//!
//! The one trap: a statement whose parameters fail to encode client-side is
//! never sent, while later ones would be, and a `COMMIT` after it would
//! commit a partial write. [`run_then_commit`] therefore sends `COMMIT` only
//! after every earlier statement was polled once without failing. (A
//! statement that fails on the server aborts the transaction, and the server
//! answers the `COMMIT` that follows with a rollback: the failure is reported.)

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use tokio_postgres::{Client, Error, Row};

/// One pipelined statement.
pub(crate) type Step<'a> = Pin<Box<dyn Future<Output = Result<Vec<Row>, Error>> + Send + 'a>>;

/// A step that runs `sql` through the simple query protocol (BEGIN, COMMIT…).
pub(crate) fn simple<'a>(client: &'a Client, sql: &'a str) -> Step<'a> {
    Box::pin(async move { client.batch_execute(sql).await.map(|()| Vec::new()) })
}

/// Sends `steps` in order without waiting for replies, then waits for all of
/// them. Stops sending at the first step that fails immediately (the steps
/// after it are never sent). Returns every reply in order, or the first error.
pub(crate) async fn run(steps: Vec<Step<'_>>) -> Result<Vec<Vec<Row>>, Error> {
    let mut pending = Pending::new(steps);
    pending.send_all().await?;
    pending.finish().await
}

/// Like [`run`], then `COMMIT`, sent only if every step was sent. `Ok` means
/// every step succeeded and the transaction committed.
pub(crate) async fn run_then_commit<'a>(
    client: &'a Client,
    steps: Vec<Step<'a>>,
) -> Result<Vec<Vec<Row>>, Error> {
    let mut pending = Pending::new(steps);
    pending.send_all().await?;
    pending.push_and_send(simple(client, "COMMIT")).await;
    let mut replies = pending.finish().await?;
    replies.pop(); // COMMIT's
    Ok(replies)
}

struct Pending<'a> {
    steps: Vec<Step<'a>>,
    replies: Vec<Option<Result<Vec<Row>, Error>>>,
}

impl<'a> Pending<'a> {
    fn new(steps: Vec<Step<'a>>) -> Self {
        let replies = steps.iter().map(|_| None).collect();
        Self { steps, replies }
    }

    /// Polls every step once, in order, which sends it. On the first step
    /// that fails at once, drops the unsent ones, waits for the sent ones (so
    /// the connection is idle again) and returns that error.
    async fn send_all(&mut self) -> Result<(), Error> {
        let steps = &mut self.steps;
        let replies = &mut self.replies;
        let failure = poll_fn(|cx| {
            for (i, step) in steps.iter_mut().enumerate() {
                match step.as_mut().poll(cx) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Some((i, e))),
                    Poll::Ready(ok) => replies[i] = Some(ok),
                    Poll::Pending => {}
                }
            }
            Poll::Ready(None)
        })
        .await;
        let Some((failed_at, error)) = failure else {
            return Ok(());
        };
        self.steps.truncate(failed_at);
        self.replies.truncate(failed_at);
        let _ = self.finish().await;
        Err(error)
    }

    async fn push_and_send(&mut self, mut step: Step<'a>) {
        let reply = poll_fn(|cx| Poll::Ready(step.as_mut().poll(cx))).await;
        self.steps.push(step);
        self.replies.push(match reply {
            Poll::Ready(reply) => Some(reply),
            Poll::Pending => None,
        });
    }

    /// Drives every unfinished step to completion; the first error wins.
    async fn finish(&mut self) -> Result<Vec<Vec<Row>>, Error> {
        let steps = &mut self.steps;
        let replies = &mut self.replies;
        poll_fn(|cx| {
            let mut all_done = true;
            for (step, reply) in steps.iter_mut().zip(replies.iter_mut()) {
                if reply.is_none() {
                    match step.as_mut().poll(cx) {
                        Poll::Ready(r) => *reply = Some(r),
                        Poll::Pending => all_done = false,
                    }
                }
            }
            if all_done { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
        std::mem::take(&mut self.replies)
            .into_iter()
            .map(|reply| reply.unwrap_or_else(|| Ok(Vec::new())))
            .collect()
    }
}
