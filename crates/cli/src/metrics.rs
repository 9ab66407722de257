//! `paycore serve --metrics-listen ADDR`: the Prometheus exporter.
//!
//! The libraries record through the `metrics` facade (a no-op until now);
//! this installs `metrics-exporter-prometheus` as the recorder, serves its
//! text format on `GET /metrics` of a plain HTTP listener of its own (never
//! the gRPC port), and samples what is not counted as it happens (the
//! engine's cache, the projections' lag) once a second.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use paycore_engine::Engine;
use paycore_projections::ReadModels;
use paycore_projections::metrics::LagClock;

/// Histogram buckets for durations, in seconds: 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// For counts per batch or group: 1 to 8,192.
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];
/// For lags in events: 0 to a million.
const LAG_BUCKETS: &[f64] = &[0.0, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];

/// Events of the log not yet in the NATS JetStream stream (`--relay-nats`).
pub const RELAY_LAG_EVENTS: &str = "paycore_relay_lag_events";

/// The relay's lag now; `None` until it has read its stream once.
pub type RelayLag = Box<dyn Fn() -> Option<u64> + Send + Sync>;

/// How often the sampled gauges are refreshed.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Installs the exporter and describes every metric. Call once, before the
/// components that record start, so nothing recorded is lost.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(paycore_engine::metrics::BATCH_COMMANDS.to_owned()),
            COUNT_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(paycore_store::metrics::GROUP_APPENDS.to_owned()),
            COUNT_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(paycore_grpc::metrics::SUBSCRIPTION_LAG.to_owned()),
            LAG_BUCKETS,
        )?
        .install_recorder()
        .context("installing the Prometheus metrics recorder")?;
    paycore_store::metrics::describe();
    paycore_engine::metrics::describe();
    paycore_grpc::metrics::describe();
    paycore_projections::metrics::describe();
    paycore_projections_postgres::describe_metrics();
    metrics::describe_gauge!(
        RELAY_LAG_EVENTS,
        "events of the log not yet published to NATS JetStream (on the server that publishes)"
    );
    metrics::describe_counter!(
        crate::expiry::EXPIRED_TOTAL,
        "pending transfers expired by this server's expiry task"
    );
    Ok(handle)
}

/// Serves `GET /metrics` on `listen`; returns the bound address (port 0
/// picks a free one).
pub async fn serve(listen: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening for metrics scrapes on {listen}"))?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accepting a metrics scrape");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let answer = service_fn(move |request| answer(request, handle.clone()));
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), answer)
                    .await
                {
                    tracing::debug!(%error, "a metrics scrape connection ended");
                }
            });
        }
    });
    Ok(address)
}

async fn answer(
    request: Request<Incoming>,
    handle: PrometheusHandle,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => Response::builder()
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(Full::new(Bytes::from(handle.render()))),
        (_, "/metrics") => Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header("allow", "GET, HEAD")
            .body(Full::new(Bytes::from_static(b"use GET\n"))),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"metrics are at /metrics\n"))),
    };
    // Building a response from static parts cannot fail.
    Ok(response.unwrap_or_default())
}

/// Refreshes the sampled gauges every second, and lets the exporter drain
/// its histograms, until the server stops.
pub fn sample(handle: PrometheusHandle, engine: Engine, read: ReadModels, relay_lag: Option<RelayLag>) {
    tokio::spawn(async move {
        let mut lag = LagClock::default();
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        loop {
            every.tick().await;
            paycore_engine::metrics::record_cache_usage(&engine.state_cache_usage());
            match read.status() {
                Ok(statuses) => lag.record(&statuses),
                Err(error) => tracing::debug!(%error, "sampling the projections' lag"),
            }
            if let Some(lag) = relay_lag.as_ref().and_then(|lag| lag()) {
                metrics::gauge!(RELAY_LAG_EVENTS).set(lag as f64);
            }
            handle.run_upkeep();
        }
    });
}
