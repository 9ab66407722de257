//! The gRPC facade's metrics, recorded through the `metrics` facade (a
//! no-op until a binary installs an exporter): every call by service,
//! method and status code, its duration, and the event subscriptions.
//!
//! [`RequestMetricsLayer`] sits in front of every route (and of the edge's
//! own refusals). A call's status is
//! in the response headers when it fails before a message (trailers-only)
//! and in the trailers otherwise, so the response body is wrapped to read
//! them; the duration runs from the request to the end of the response (for
//! a subscription, the stream's life).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame};
use tonic::codegen::Bytes;
use tonic::codegen::http::{self, HeaderMap};
use tower::{Layer, Service};

/// Calls answered, by `service`, `method` and `code` (`OK`, `NOT_FOUND`, …).
pub const REQUESTS: &str = "paycore_grpc_requests_total";
/// Calls' durations by `service` and `method`, in seconds.
pub const REQUEST_SECONDS: &str = "paycore_grpc_request_duration_seconds";
/// Event subscriptions (`SubscribeEvents`) open now.
pub const SUBSCRIPTIONS_OPEN: &str = "paycore_subscriptions_open";
/// Events delivered to subscribers.
pub const SUBSCRIPTION_EVENTS: &str = "paycore_subscription_delivered_events_total";
/// How far behind the log's head a subscription is, each time it reads a
/// batch, in events.
pub const SUBSCRIPTION_LAG: &str = "paycore_subscription_lag_events";

/// Registers the help texts with the installed exporter (and the
/// unlabelled counters at 0).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "gRPC calls answered, by service, method and status code"
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "gRPC calls from request to the end of the response, by service and method"
    );
    describe_gauge!(SUBSCRIPTIONS_OPEN, "event subscriptions open");
    describe_counter!(SUBSCRIPTION_EVENTS, "events delivered to event subscriptions");
    describe_histogram!(
        SUBSCRIPTION_LAG,
        "events between a subscription's read position and the log's head, at each batch it reads"
    );
    // Present from the start at 0, so rates and dashboards need no first event.
    metrics::counter!(SUBSCRIPTION_EVENTS).increment(0);
    metrics::gauge!(SUBSCRIPTIONS_OPEN).set(0.0);
}

/// Counts an open subscription while it lives.
#[derive(Debug)]
pub(crate) struct OpenSubscription(());

impl OpenSubscription {
    pub fn new() -> Self {
        metrics::gauge!(SUBSCRIPTIONS_OPEN).increment(1.0);
        Self(())
    }
}

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        metrics::gauge!(SUBSCRIPTIONS_OPEN).decrement(1.0);
    }
}

/// Records every call (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestMetricsLayer;

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics { inner }
    }
}

/// The service [`RequestMetricsLayer`] builds.
#[derive(Clone, Debug)]
pub struct RequestMetrics<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> Service<http::Request<ReqBody>> for RequestMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let call = Call::of(request.uri().path());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if let Some(code) = status_code(response.headers()) {
                // Trailers-only: the call ends here.
                call.finish(code);
                return Ok(response);
            }
            Ok(response.map(|body| {
                tonic::body::Body::new(Measured {
                    body,
                    call: Some(call),
                })
            }))
        })
    }
}

/// One call being measured.
#[derive(Debug)]
struct Call {
    path: Arc<str>,
    started: Instant,
}

impl Call {
    fn of(path: &str) -> Self {
        Self {
            path: path.into(),
            started: Instant::now(),
        }
    }

    fn finish(&self, code: tonic::Code) {
        let (service, method) = labels_of(&self.path, code);
        let labels = [("service", service.clone()), ("method", method.clone())];
        metrics::histogram!(REQUEST_SECONDS, &labels).record(self.started.elapsed().as_secs_f64());
        let labels = [
            ("service", service),
            ("method", method),
            ("code", Arc::from(code_name(code))),
        ];
        metrics::counter!(REQUESTS, &labels).increment(1);
    }
}

/// `/paycore.v1.TransferService/CreateTransfer` → service and method. A
/// path that names no method the server has (answered UNIMPLEMENTED) or
/// has no such shape is counted as `unknown`: callers choose paths, and
/// must not be able to grow the label set.
fn labels_of(path: &str, code: tonic::Code) -> (Arc<str>, Arc<str>) {
    match path.trim_start_matches('/').split_once('/') {
        Some((service, method))
            if code != tonic::Code::Unimplemented && known_name(service) && known_name(method) =>
        {
            (service.into(), method.into())
        }
        _ => ("unknown".into(), "unknown".into()),
    }
}

/// Names a label may carry: only paycore's, health's and reflection's
/// services (anything else would let callers grow the label set).
fn known_name(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        && !name.starts_with('.')
}

fn status_code(headers: &HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?;
    let code: i32 = value.to_str().ok()?.parse().ok()?;
    Some(tonic::Code::from_i32(code))
}

/// The upper-case name gRPC gives a code (`NOT_FOUND`).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A response body that records its call when the trailers go by, or as
/// `CANCELLED` when the client left before them.
struct Measured {
    body: tonic::body::Body,
    call: Option<Call>,
}

impl Body for Measured {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(call) = self.call.take()
        {
            call.finish(status_code(trailers).unwrap_or(tonic::Code::Unknown));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Measured {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(tonic::Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_named_by_service_and_method_and_odd_paths_stay_bounded() {
        let (service, method) = labels_of("/paycore.v1.TransferService/CreateTransfer", tonic::Code::Ok);
        assert_eq!(
            (&*service, &*method),
            ("paycore.v1.TransferService", "CreateTransfer")
        );
        let long = format!("/{}/M", "s".repeat(200));
        for odd in ["/", "/x", "/a/b/c", "/paycore.v1.X/Get Account", long.as_str()] {
            let (service, method) = labels_of(odd, tonic::Code::Ok);
            assert_eq!((&*service, &*method), ("unknown", "unknown"), "{odd}");
        }
        let (service, _) = labels_of("/made.Up/Anything", tonic::Code::Unimplemented);
        assert_eq!(&*service, "unknown", "a method the server does not have");
    }

    #[test]
    fn codes_have_their_grpc_names() {
        assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_code(&headers), Some(tonic::Code::NotFound));
    }
}
