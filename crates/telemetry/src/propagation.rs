//! W3C trace context in and out: read from a call's headers, carried into
//! the metadata of the events it writes.

use std::future::Future;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use paycore_store::TraceContext;
use tracing_opentelemetry::OpenTelemetrySpanExt;

tokio::task_local! {
    /// The caller's trace context, for the length of its call: what the
    /// events of the call carry when this process exports no spans of its
    /// own to continue the trace with.
    static REMOTE_PARENT: Option<TraceContext>;
}

/// A caller's trace context, as its `traceparent` (and `tracestate`) said.
#[derive(Clone, Debug)]
pub struct RemoteParent {
    context: opentelemetry::Context,
    trace: TraceContext,
}

impl RemoteParent {
    /// The caller's span, as stored in event metadata.
    pub fn trace(&self) -> TraceContext {
        self.trace
    }
}

/// Reads `traceparent` and `tracestate` from `headers` (W3C Trace Context);
/// `None` when absent or invalid (an invalid one is ignored, as the
/// standard asks: the call starts a trace of its own).
pub fn extract(headers: &http::HeaderMap) -> Option<RemoteParent> {
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    let trace = trace_context(context.span().span_context())?;
    Some(RemoteParent { context, trace })
}

/// Makes `span` a child of the caller's span. Without an exporter there is
/// no OpenTelemetry layer and this does nothing.
pub fn set_remote_parent(span: &tracing::Span, parent: &RemoteParent) {
    // Errors say there is no layer (traces off) or the span is disabled:
    // either way there is no exported span to parent.
    let _ = span.set_parent(parent.context.clone());
}

/// Runs `call` with `parent` as the caller's trace context, which
/// [`current_trace_context`] falls back on.
pub async fn with_remote_parent<F: Future>(parent: Option<TraceContext>, call: F) -> F::Output {
    REMOTE_PARENT.scope(parent, call).await
}

/// The caller's trace context of the call this task runs, if it sent one.
pub fn remote_parent() -> Option<TraceContext> {
    REMOTE_PARENT.try_with(|parent| *parent).ok().flatten()
}

/// The trace context to record with what the current task writes: the
/// current span's when spans are exported (so readers continue this
/// process's trace), else the caller's (passed through unchanged), else
/// none.
pub fn current_trace_context() -> Option<TraceContext> {
    let context = tracing::Span::current().context();
    trace_context(context.span().span_context()).or_else(remote_parent)
}

/// Makes `span` a child of the span `trace` names (one recorded in an
/// event's metadata): work done for events continues their writer's trace.
pub fn set_parent_trace(span: &tracing::Span, trace: TraceContext) {
    let context = opentelemetry::Context::new().with_remote_span_context(span_context(trace));
    let _ = span.set_parent(context);
}

/// Links `span` to the span `trace` names (work done for several traces at
/// once, such as a batch of events).
pub fn link_trace(span: &tracing::Span, trace: TraceContext) {
    span.add_link(span_context(trace));
}

fn span_context(trace: TraceContext) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(trace.trace_id()),
        SpanId::from_bytes(trace.span_id()),
        TraceFlags::new(trace.flags()),
        true,
        TraceState::default(),
    )
}

/// `span`'s own trace context, when spans are exported.
pub fn span_trace_context(span: &tracing::Span) -> Option<TraceContext> {
    trace_context(span.context().span().span_context())
}

fn trace_context(span: &SpanContext) -> Option<TraceContext> {
    if !span.is_valid() {
        return None;
    }
    TraceContext::new(
        span.trace_id().to_bytes(),
        span.span_id().to_bytes(),
        span.trace_flags().to_u8(),
    )
}

/// `http::HeaderMap` as the propagator reads it.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_valid_traceparent_is_read() {
        let parent = extract(&headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]))
        .expect("valid");
        assert_eq!(
            parent.trace().traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn invalid_or_missing_traceparents_are_ignored() {
        for value in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let mut map = http::HeaderMap::new();
            map.insert("traceparent", http::HeaderValue::from_static(value));
            assert!(extract(&map).is_none(), "{value}");
        }
        assert!(extract(&http::HeaderMap::new()).is_none());
    }

    #[tokio::test]
    async fn without_an_exporter_the_callers_context_is_passed_through() {
        let trace = TraceContext::new([1; 16], [2; 8], 1);
        assert_eq!(current_trace_context(), None);
        let inside = with_remote_parent(trace, async { current_trace_context() }).await;
        assert_eq!(inside, trace);
    }
}
