//! Traces and logs of a paycore process.
//!
//! - [`init`] installs the process's `tracing` subscriber: the logs (text or
//!   JSON lines, filtered by `PAYCORE_LOG`) and, when an OTLP endpoint is
//!   configured, OpenTelemetry through `tracing-opentelemetry`, exported in
//!   batches over OTLP/gRPC (tonic, rustls). Off unless configured: without
//!   an endpoint no OpenTelemetry layer exists and nothing is exported.
//! - [`extract`] reads a W3C `traceparent`/`tracestate` from request headers
//!   (the SDK's `TraceContextPropagator`, no hand-written parsing), and
//!   [`set_remote_parent`] makes a span its child.
//! - [`current_trace_context`] is the trace context written into the
//!   metadata of a command's events: the current span's when traces are
//!   exported, else the caller's own (`traceparent` passed through), so a
//!   trace follows an event to its subscribers either way.
//!
//! Spans are created by the libraries with `tracing` (`info_span!` with
//! targets under `paycore`); what this crate adds is where they go.

mod json;
mod propagation;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use propagation::{
    RemoteParent, current_trace_context, extract, link_trace, remote_parent, set_parent_trace,
    set_remote_parent, span_trace_context, with_remote_parent,
};

/// The service name traces are exported under unless `OTEL_SERVICE_NAME`
/// says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "paycore";

/// The environment variable naming the OTLP endpoint (the OpenTelemetry
/// standard one); `paycore serve --otlp-endpoint` reads it too.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The targets whose spans are exported: paycore's own crates, down to
/// debug (the spans inside a call are at debug, so that without an
/// exporter, at the logs' usual `info`, they cost nothing). Spans of the
/// libraries underneath (h2, hyper, tonic) stay out of the traces.
const EXPORTED_TARGETS: &str = "paycore";

/// How the logs are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, with `trace_id`, `span_id` and
    /// `request_id` at the top level when the line belongs to a call.
    Json,
}

/// What [`init`] sets up.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// The logs' filter (`PAYCORE_LOG` syntax); `None` for `info`.
    pub log_filter: Option<String>,
    /// Where traces go (`http://collector:4317`); `None` exports nothing.
    pub otlp_endpoint: Option<String>,
}

/// Setting up traces failed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP endpoint {endpoint:?}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Whether the logs are JSON lines, which carry the IDs of a call's span.
static CALL_SPANS_LOGGED: AtomicBool = AtomicBool::new(false);

/// Whether the gRPC call's span should be at info level, where the logs see
/// it: true with JSON logs (their lines carry its IDs). Otherwise it is at
/// debug, created only for an exporter or debug logs.
pub fn call_spans_logged() -> bool {
    CALL_SPANS_LOGGED.load(Ordering::Relaxed)
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes what is not
/// exported yet.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still queued and stops the exporter (waits up to
    /// 5 s for the collector). Blocking: call it off the async workers.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(%error, "flushing the traces at shutdown");
        }
    }
}

/// Installs the logs and, if an endpoint is configured, the OTLP trace
/// exporter, as the process's subscriber. Must run inside a tokio runtime
/// when an endpoint is given (the gRPC exporter's connection lives there).
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let filter = config
        .log_filter
        .as_deref()
        .and_then(|filter| tracing_subscriber::EnvFilter::try_new(filter).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let logs = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(json::JsonWithTraceIds::default())
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .with_filter(filter)
            .boxed(),
    };
    let provider = config
        .otlp_endpoint
        .as_deref()
        .map(str::trim)
        .filter(|endpoint| !endpoint.is_empty())
        .map(tracer_provider)
        .transpose()?;
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("paycore"))
            // Events are logs, not span events: the logs carry them.
            .with_location(false)
            .with_filter(
                Targets::new()
                    .with_target(EXPORTED_TARGETS, LevelFilter::DEBUG)
                    .with_default(LevelFilter::OFF),
            )
    });
    CALL_SPANS_LOGGED.store(config.log_format == LogFormat::Json, Ordering::Relaxed);
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|error| TelemetryError::AlreadyInstalled(error.to_string()))?;
    Ok(Telemetry { provider })
}

/// The service name: `OTEL_SERVICE_NAME` when set, else `paycore`.
pub fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned())
}

fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let failed = |reason: String| TelemetryError::Exporter {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10));
    if endpoint.starts_with("https://") {
        // The operating system's trust store, as for PostgreSQL's
        // `sslrootcert=system`.
        exporter = exporter.with_tls_config(tonic::transport::ClientTlsConfig::new().with_enabled_roots());
    }
    let exporter = exporter.build().map_err(|error| failed(error.to_string()))?;
    let resource = Resource::builder().with_service_name(service_name()).build();
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build())
}
