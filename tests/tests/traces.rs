//! Traces: `paycore serve` with an OTLP endpoint exports the spans of a
//! call to an in-test collector (a tonic `TraceService` on a free port),
//! all in the trace of the caller's `traceparent`, from the call through
//! the command (decide, append), the log's group commit, write and fsync,
//! to the wait for the read models and their applying the events; the
//! events carry the command's trace context to subscribers (the gRPC
//! envelope's `traceparent` and the NATS relay's header), and the call's
//! JSON log lines its trace, span and request IDs. Without an endpoint
//! nothing is exported, nothing breaks, and the caller's context is passed
//! through to the events.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use paycore_e2e::{Server, bearer, pb, test_dir};
use paycore_grpc::{AccountServiceClient, EventServiceClient};
use pb::subscribe_events_request::Start;
use tonic::Request;

/// The caller's trace and span (W3C's own example IDs).
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "0190e3a2-7c1d-7a4e-9f00-5e2b1c3d4e5f";
/// Longest wait for spans, events or messages.
const WAIT: Duration = Duration::from_secs(30);

/// One exported span, flattened.
#[derive(Clone, Debug)]
struct ExportedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
}

/// An OTLP/gRPC collector keeping every span it is sent.
#[derive(Clone, Debug, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| attribute(&resource.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    kept.push(ExportedSpan {
                        service: service.clone(),
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves on a free loopback port; returns the endpoint URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until the collector holds a span named `name` in `trace`.
    async fn wait_for(&self, trace: &str, name: &str) -> ExportedSpan {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(span) = self
                .spans()
                .into_iter()
                .find(|span| span.trace_id == trace && span.name == name)
            {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no span {name:?} in trace {trace} within {WAIT:?}; spans: {:#?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(kv.value.as_ref()))
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `CreateAccount` with the caller's `traceparent` and `x-request-id`.
async fn create_account_traced(server: &Server) -> pb::Account {
    let mut request = Request::new(pb::CreateAccountRequest {
        currency: "EUR".into(),
        ..Default::default()
    });
    let metadata = request.metadata_mut();
    metadata.insert(
        "traceparent",
        format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    metadata.insert("tracestate", "vendor=value".parse().unwrap());
    metadata.insert("x-request-id", REQUEST_ID.parse().unwrap());
    AccountServiceClient::with_interceptor(server.channel(), bearer(server.key()))
        .create_account(request)
        .await
        .unwrap()
        .into_inner()
}

/// A subscription to the project's account events from now on.
async fn subscribe_accounts(server: &Server) -> tonic::Streaming<pb::EventEnvelope> {
    EventServiceClient::with_interceptor(server.channel(), bearer(server.key()))
        .subscribe_events(pb::SubscribeEventsRequest {
            start: Some(Start::FromNow(true)),
            categories: vec!["account".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn next_event(events: &mut tonic::Streaming<pb::EventEnvelope>) -> pb::EventEnvelope {
    tokio::time::timeout(WAIT, events.message())
        .await
        .expect("an event within the wait")
        .unwrap()
        .expect("the subscription goes on")
}

/// The JSON log lines of the call, by its request ID.
fn call_log_lines(server: &Server) -> Vec<serde_json::Value> {
    server
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["request_id"] == REQUEST_ID)
        .collect()
}

/// The traceparent's parts.
fn parts(traceparent: &str) -> Vec<&str> {
    traceparent.split('-').collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callers_trace_follows_the_request_to_the_fsync_the_projection_and_the_subscribers() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let nats_url = std::env::var("PAYCORE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    let (stream, prefix) = (format!("E2E_TRACES_{id}"), format!("e2e_traces_{id}"));
    let dir = test_dir();
    let mut server = Server::start_with_env(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            // Export every 100 ms rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("PAYCORE_LOG_FORMAT", "json"),
            ("PAYCORE_LOG", "info,paycore=debug"),
            ("PAYCORE_RELAY_NATS", nats_url.as_str()),
            ("PAYCORE_RELAY_STREAM", stream.as_str()),
            ("PAYCORE_RELAY_SUBJECT_PREFIX", prefix.as_str()),
        ],
    );
    let mut events = subscribe_accounts(&server).await;
    let account = create_account_traced(&server).await;

    // The subscriber gets the command's trace context: the caller's trace,
    // paycore's span.
    let opened = next_event(&mut events).await;
    assert!(opened.stream.ends_with(&account.id), "{opened:?}");
    let traceparent = opened
        .traceparent
        .clone()
        .expect("the event carries a traceparent");
    let [version, trace, span, flags] = parts(&traceparent)[..] else {
        panic!("{traceparent}")
    };
    assert_eq!(
        (version, trace, flags),
        ("00", CALLER_TRACE, "01"),
        "{traceparent}"
    );
    assert_ne!(
        span, CALLER_SPAN,
        "the event names paycore's span, not the caller's"
    );

    // The spans, all in the caller's trace.
    let call = collector
        .wait_for(CALLER_TRACE, "paycore.v1.AccountService/CreateAccount")
        .await;
    assert_eq!(
        call.parent_span_id, CALLER_SPAN,
        "the call is a child of the caller's span"
    );
    assert_eq!(call.service, "paycore");
    assert_eq!(call.attributes["rpc.system"], "grpc");
    assert_eq!(call.attributes["rpc.service"], "paycore.v1.AccountService");
    assert_eq!(call.attributes["rpc.method"], "CreateAccount");
    assert_eq!(call.attributes["request_id"], REQUEST_ID);
    assert_eq!(call.attributes["rpc.grpc.status_code"], "0");
    let command = collector.wait_for(CALLER_TRACE, "command CreateAccount").await;
    assert_eq!(command.parent_span_id, call.span_id);
    assert_eq!(command.span_id, span, "the events carry the command's span");
    assert_eq!(command.attributes["command"], "CreateAccount");
    assert_eq!(command.attributes["stream"], opened.stream);
    let decide = collector.wait_for(CALLER_TRACE, "decide").await;
    assert_eq!(decide.parent_span_id, command.span_id);
    let append = collector.wait_for(CALLER_TRACE, "append").await;
    assert_eq!(append.parent_span_id, command.span_id);
    assert!(append.attributes.contains_key("batch_commands"), "{append:?}");
    assert_eq!(append.attributes["last_position"], opened.position.to_string());
    let group_commit = collector.wait_for(CALLER_TRACE, "group_commit").await;
    assert_eq!(group_commit.parent_span_id, append.span_id);
    let write = collector.wait_for(CALLER_TRACE, "write").await;
    assert_eq!(write.parent_span_id, group_commit.span_id);
    let fsync = collector.wait_for(CALLER_TRACE, "fsync").await;
    assert_eq!(fsync.parent_span_id, group_commit.span_id);
    let wait = collector.wait_for(CALLER_TRACE, "read_model_wait").await;
    assert_eq!(wait.parent_span_id, call.span_id);
    let apply = collector.wait_for(CALLER_TRACE, "apply").await;
    assert_eq!(
        apply.parent_span_id, command.span_id,
        "the projection continues the command's trace"
    );

    // The relay's message carries the same context as a header.
    let client = async_nats::connect(&nats_url).await.unwrap();
    let js = jetstream::new(client);
    let deadline = Instant::now() + WAIT;
    let header = loop {
        if let Ok(mut relayed) = js.get_stream(&stream).await {
            let last = relayed.info().await.unwrap().state.last_sequence;
            let mut found = None;
            for sequence in 1..=last {
                let message = relayed.get_raw_message(sequence).await.unwrap();
                let position = message
                    .headers
                    .get("Paycore-Position")
                    .map(|value| value.as_str().to_owned());
                if position == Some(opened.position.to_string()) {
                    found = Some(
                        message
                            .headers
                            .get("traceparent")
                            .map(|value| value.as_str().to_owned()),
                    );
                }
            }
            if let Some(found) = found {
                break found;
            }
        }
        assert!(Instant::now() < deadline, "the relay did not publish the event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(header.as_deref(), Some(traceparent.as_str()));
    let _ = js.delete_stream(&stream).await;

    // The call's JSON log lines carry its IDs at the top level.
    server.stop_ok();
    let lines = call_log_lines(&server);
    assert!(
        !lines.is_empty(),
        "no log line with the request ID:\n{}",
        server.log()
    );
    for line in &lines {
        assert_eq!(line["trace_id"], CALLER_TRACE, "{line}");
        assert_eq!(line["span_id"], call.span_id.as_str(), "{line}");
    }
    // The stop flushed the exporter: every span is there, none of another trace.
    assert!(collector.spans().iter().any(|span| span.name == "apply"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_endpoint_nothing_is_exported_and_the_callers_context_passes_through() {
    let collector = Collector::default();
    let _unused = collector.start().await;
    let dir = test_dir();
    let mut server = Server::start_with_env(
        dir.path(),
        &[
            // Set but empty, as a deployment template may leave it.
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            ("PAYCORE_LOG_FORMAT", "json"),
            ("PAYCORE_LOG", "info,paycore=debug"),
        ],
    );
    let mut events = subscribe_accounts(&server).await;
    let account = create_account_traced(&server).await;
    let opened = next_event(&mut events).await;
    assert!(opened.stream.ends_with(&account.id), "{opened:?}");
    // No span of paycore's exists to point to: the caller's goes on.
    assert_eq!(
        opened.traceparent.as_deref(),
        Some(format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01").as_str())
    );
    // A call without a traceparent writes events without one.
    let client = server.client();
    let plain = client.create_account("EUR", false).await.unwrap();
    let opened = next_event(&mut events).await;
    assert!(opened.stream.ends_with(&plain.id), "{opened:?}");
    assert_eq!(opened.traceparent, None);
    server.stop_ok();
    let log = server.log();
    assert!(!log.contains("exporting traces"), "{log}");
    let lines = call_log_lines(&server);
    assert!(!lines.is_empty(), "no log line with the request ID:\n{log}");
    for line in &lines {
        assert_eq!(line["trace_id"], CALLER_TRACE, "{line}");
        assert_eq!(line["span_id"], CALLER_SPAN, "{line}");
    }
    assert!(collector.spans().is_empty(), "{:#?}", collector.spans());
}

/// On PostgreSQL the append is one `pg_append` span under the batch's
/// `append`, and the trace context is stored with the event (the same
/// metadata bit as in the embedded log) and read back for subscribers.
#[tokio::test(flavor = "multi_thread")]
async fn on_postgresql_the_append_is_traced_and_the_context_stored() {
    use paycore_e2e::postgres::{Schema, VaultKeyFile, database_url, server_env};

    let collector = Collector::default();
    let endpoint = collector.start().await;
    let schema = Schema::create();
    let key = VaultKeyFile::new();
    let url = database_url();
    let mut env = server_env(&url, &schema, &key).to_vec();
    env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("PAYCORE_NO_READ_MODEL_TABLES", "true"),
    ]);
    let dir = test_dir();
    let mut server = Server::start_with_env(dir.path(), &env);
    let account = create_account_traced(&server).await;
    let append = collector.wait_for(CALLER_TRACE, "append").await;
    let pg_append = collector.wait_for(CALLER_TRACE, "pg_append").await;
    assert_eq!(pg_append.parent_span_id, append.span_id);
    let command = collector.wait_for(CALLER_TRACE, "command CreateAccount").await;

    // Read back from the database by a subscription from the start.
    let mut events = EventServiceClient::with_interceptor(server.channel(), bearer(server.key()))
        .subscribe_events(pb::SubscribeEventsRequest {
            start: Some(Start::FromPosition(0)),
            categories: vec!["account".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let opened = next_event(&mut events).await;
    assert!(opened.stream.ends_with(&account.id), "{opened:?}");
    assert_eq!(
        opened.traceparent.as_deref(),
        Some(format!("00-{CALLER_TRACE}-{}-01", command.span_id).as_str())
    );
    server.stop_ok();
}
