#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! `paycore serve --metrics-listen`: a Prometheus scrape, read with a stock
//! parser of the text format, counts calls by service, method and code and
//! shows the write path, the caches, the projections and subscriptions.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use paycore_e2e::{Server, bearer, pb, test_dir};
use paycore_grpc::EventServiceClient;
use prometheus_parse::{Sample, Scrape, Value};

/// The scrape address the server printed.
fn metrics_address(server: &Server) -> String {
    server
        .stdout_lines()
        .iter()
        .find_map(|line| line.strip_prefix("paycore metrics on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address printed: {:?}", server.stdout_lines()))
        .to_owned()
}

/// One plain HTTP/1.1 request: (status line, body).
fn http_get(address: &str, method: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

fn scrape(address: &str) -> Scrape {
    let (status, body) = http_get(address, "GET", "/metrics");
    assert!(status.contains("200"), "{status}");
    Scrape::parse(body.lines().map(|line| Ok(line.to_owned()))).unwrap()
}

fn samples<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|sample| {
            sample.metric == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(key) == Some(*value))
        })
        .collect()
}

/// The value of the one sample of a counter or gauge.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match samples(scrape, name, labels).as_slice() {
        [sample] => match sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => value,
            ref other => panic!("{name} is not a counter or gauge: {other:?}"),
        },
        found => panic!("one sample of {name} {labels:?}, found {}", found.len()),
    }
}

/// The observation count of a histogram.
fn count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> u64 {
    match samples(scrape, name, labels).as_slice() {
        [sample] => match &sample.value {
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |bucket| bucket.count) as u64,
            other => panic!("{name} is not a histogram: {other:?}"),
        },
        found => panic!("one histogram {name} {labels:?}, found {}", found.len()),
    }
}

const ACCOUNTS: &str = "paycore.v1.AccountService";
const REQUESTS: &str = "paycore_grpc_requests_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_calls_by_code_and_shows_the_write_path() {
    let dir = test_dir();
    // Its own cache budget, whatever the suite's (`make test` runs it again at 4 KiB).
    let env = [
        ("PAYCORE_METRICS_LISTEN", "127.0.0.1:0"),
        ("PAYCORE_STATE_CACHE_BYTES", "64M"),
    ];
    let server = Server::start_with_env(dir.path(), &env);
    let address = metrics_address(&server);
    let client = server.client();
    let a = client.create_account("EUR", false).await.unwrap();
    let b = client.create_account("EUR", false).await.unwrap();
    client.set_balance(&a.id, "EUR", 1_000).await.unwrap();
    for _ in 0..5 {
        client.transfer(&a.id, &b.id, "EUR", 10).await.unwrap();
    }
    let refused = client.transfer(&a.id, &b.id, "EUR", 1_000_000).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let stranger = server.client_with_key("sandbox_secretkey_nope");
    stranger.account(&a.id).await.unwrap_err();

    let metrics = scrape(&address);
    let calls = |method: &str, code: &str| {
        value(
            &metrics,
            REQUESTS,
            &[("service", ACCOUNTS), ("method", method), ("code", code)],
        )
    };
    assert_eq!(calls("CreateAccount", "OK"), 2.0);
    assert_eq!(calls("GetAccount", "UNAUTHENTICATED"), 1.0);
    let transfers = |code: &str| {
        let labels = [
            ("service", "paycore.v1.TransferService"),
            ("method", "CreateTransfer"),
            ("code", code),
        ];
        value(&metrics, REQUESTS, &labels)
    };
    assert_eq!((transfers("OK"), transfers("FAILED_PRECONDITION")), (5.0, 1.0));
    let durations = [
        ("service", "paycore.v1.TransferService"),
        ("method", "CreateTransfer"),
    ];
    assert_eq!(
        count(&metrics, "paycore_grpc_request_duration_seconds", &durations),
        6
    );

    // The write path: every acknowledged command went through a batch, an
    // append and an fsync; the log counts its events.
    assert!(count(&metrics, "paycore_engine_batch_commands", &[]) >= 8);
    assert!(count(&metrics, "paycore_log_fsync_seconds", &[]) >= 8);
    let events = value(&metrics, "paycore_log_events", &[]);
    assert!(value(&metrics, "paycore_log_appended_events_total", &[]) <= events);
    assert!(
        events >= 2.0 + 1.0 + 5.0 * 3.0,
        "accounts, the balance, the transfers: {events}"
    );
    assert!(value(&metrics, "paycore_engine_state_cache_hits_total", &[]) > 0.0);

    // Sampled once a second: the cache and every projection.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sampled = loop {
        let metrics = scrape(&address);
        if samples(&metrics, "paycore_projection_lag_events", &[]).len() == 7 {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no projection lag sampled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(value(&sampled, "paycore_engine_state_cache_entries", &[]) > 0.0);
    assert_eq!(
        value(&sampled, "paycore_engine_state_cache_budget_bytes", &[]),
        64.0 * 1024.0 * 1024.0
    );
    for projection in [
        "directory",
        "accounts",
        "transactions",
        "transfers",
        "resources",
        "fx-rates",
        "open-banking",
    ] {
        let lag = value(
            &sampled,
            "paycore_projection_lag_events",
            &[("projection", projection)],
        );
        assert_eq!(
            lag, 0.0,
            "{projection} is caught up once its writes were answered"
        );
    }

    // Subscriptions open, and gone when the client leaves.
    let events = EventServiceClient::with_interceptor(server.channel(), bearer(server.key()));
    let request = pb::SubscribeEventsRequest::default();
    let mut stream = events
        .clone()
        .subscribe_events(request)
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().expect("the log's first event");
    assert_eq!(value(&scrape(&address), "paycore_subscriptions_open", &[]), 1.0);
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    while value(&scrape(&address), "paycore_subscriptions_open", &[]) != 0.0 {
        assert!(Instant::now() < deadline, "the subscription still counts as open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Only /metrics, only GET (or HEAD).
    assert!(http_get(&address, "GET", "/").0.contains("404"));
    assert!(http_get(&address, "POST", "/metrics").0.contains("405"));
}

#[test]
fn metrics_are_off_unless_asked_for() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    assert!(
        !server.stdout_lines().iter().any(|line| line.contains("metrics")),
        "{:?}",
        server.stdout_lines()
    );
}
