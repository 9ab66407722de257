//! The span of every gRPC call, the parent of everything the call causes.
//!
//! Each call gets one `grpc` span (exported as `<service>/<method>`, kind
//! server, lasting until the response's trailers) with `rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, and the IDs a log
//! line of the call carries: `request_id` (the `x-request-id` metadata),
//! `trace_id` and `span_id`. A W3C `traceparent` (and `tracestate`) in the call's metadata
//! makes the span a child of the caller's; the caller's context is also
//! kept for the call's task (`paycore_telemetry::with_remote_parent`), so
//! the events the call writes carry it even when this server exports no
//! spans of its own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame};
use tonic::codegen::{Bytes, http};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;

use crate::REQUEST_ID;

/// The longest `x-request-id` recorded; longer ones are cut (on a
/// character boundary), so a caller cannot blow up every log line.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// The call's span at `level` (one callsite per level: a callsite's level
/// is fixed).
macro_rules! call_span {
    ($level:expr, $service:expr, $method:expr) => {
        tracing::span!(
            target: "paycore::grpc",
            $level,
            "grpc",
            otel.name = %format_args!("{}/{}", $service, $method),
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = $service,
            rpc.method = $method,
            rpc.grpc.status_code = Empty,
            request_id = Empty,
            trace_id = Empty,
            span_id = Empty,
        )
    };
}

/// Wraps a service with the call's span (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default)]
pub struct CallTraceLayer;

impl<S> Layer<S> for CallTraceLayer {
    type Service = CallTrace<S>;

    fn layer(&self, inner: S) -> CallTrace<S> {
        CallTrace { inner }
    }
}

/// The service [`CallTraceLayer`] builds.
#[derive(Clone, Debug)]
pub struct CallTrace<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> Service<http::Request<ReqBody>> for CallTrace<S>
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
        let (service, method) = service_and_method(request.uri().path());
        // At info only where the logs show it (JSON lines carry its IDs):
        // an enabled span costs every call several microseconds of the
        // logs' span bookkeeping. At debug it exists only for an exporter
        // (whose filter takes paycore's debug spans) or debug logs.
        let span = if paycore_telemetry::call_spans_logged() {
            call_span!(tracing::Level::INFO, service, method)
        } else {
            call_span!(tracing::Level::DEBUG, service, method)
        };
        if let Some(request_id) = request_id(request.headers()) {
            span.record("request_id", request_id);
        }
        let parent = paycore_telemetry::extract(request.headers());
        if let Some(parent) = &parent {
            paycore_telemetry::set_remote_parent(&span, parent);
        }
        let caller = parent.as_ref().map(paycore_telemetry::RemoteParent::trace);
        // The IDs of this span when spans are exported, else the caller's:
        // what a log collector joins the call's lines with the trace on.
        if let Some(ids) = paycore_telemetry::span_trace_context(&span).or(caller) {
            span.record("trace_id", hex(&ids.trace_id()).as_str());
            span.record("span_id", hex(&ids.span_id()).as_str());
        }
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let recorder = span.clone();
        let started = std::time::Instant::now();
        let call = async move {
            let response = response.await?;
            let code = status_code(response.headers());
            tracing::debug!(
                target: "paycore::grpc",
                status = code,
                micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "call answered"
            );
            if let Some(code) = code {
                // Trailers-only: the call ends here.
                record_status(&recorder, code);
                return Ok(response);
            }
            if recorder.is_disabled() {
                return Ok(response);
            }
            // The status comes in the trailers, and the span lasts until
            // they are sent (a subscription's span: its life).
            Ok(response.map(|body| {
                tonic::body::Body::new(TracedBody {
                    body,
                    span: Some(recorder),
                })
            }))
        };
        Box::pin(paycore_telemetry::with_remote_parent(
            caller,
            call.instrument(span),
        ))
    }
}

/// The `grpc-status` of headers or trailers.
fn status_code(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

fn record_status(span: &tracing::Span, code: i32) {
    span.record("rpc.grpc.status_code", code);
    if code != 0 {
        span.record("otel.status_code", "ERROR");
    }
}

/// CANCELLED: the client went away before the trailers.
const CANCELLED: i32 = 1;

/// A response body that records its call's status from the trailers (or
/// CANCELLED when dropped before them) and holds the call's span open
/// until then.
struct TracedBody {
    body: tonic::body::Body,
    span: Option<tracing::Span>,
}

impl Body for TracedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(span) = self.span.take()
        {
            // No status in the trailers is UNKNOWN (2) to a gRPC client.
            record_status(&span, status_code(trailers).unwrap_or(2));
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

impl Drop for TracedBody {
    fn drop(&mut self) {
        if let Some(span) = self.span.take() {
            record_status(&span, CANCELLED);
        }
    }
}

/// `("paycore.v1.TransferService", "CreateTransfer")` from
/// `/paycore.v1.TransferService/CreateTransfer`.
fn service_and_method(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.split_once('/').unwrap_or((path, ""))
}

fn request_id(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(REQUEST_ID)?.to_str().ok()?.trim();
    let end = value
        .char_indices()
        .nth(MAX_REQUEST_ID_CHARS)
        .map_or(value.len(), |(at, _)| at);
    (!value.is_empty()).then(|| &value[..end])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            service_and_method("/paycore.v1.TransferService/CreateTransfer"),
            ("paycore.v1.TransferService", "CreateTransfer")
        );
        assert_eq!(service_and_method("/odd"), ("odd", ""));
    }

    #[test]
    fn request_ids_are_trimmed_and_bounded() {
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID, http::HeaderValue::from_static(" abc "));
        assert_eq!(request_id(&headers), Some("abc"));
        let long = "x".repeat(1_000);
        headers.insert(REQUEST_ID, http::HeaderValue::from_str(&long).expect("ASCII"));
        assert_eq!(request_id(&headers).map(str::len), Some(MAX_REQUEST_ID_CHARS));
    }
}
