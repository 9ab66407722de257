//! The relay (`paycore serve --relay-nats`) against the real NATS server
//! with JetStream on 127.0.0.1:4222: every event a subscription delivers is
//! in the JetStream stream exactly once, in log order, with the same
//! envelope, across a kill -9 of the server in the middle of the stream; a
//! NATS that is down does not stop the server; a bad URL does.
//!
//! Each test uses its own stream and subject prefix, so tests run in
//! parallel and on a NATS that already holds other streams.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream::Stream};
use paycore_e2e::{Client, Server, bearer, paycore_bin, pb, test_dir};
use paycore_grpc::EventServiceClient;
use pb::subscribe_events_request::Start;
use prost::Message as _;
use tonic::Streaming;

/// The shared NATS with JetStream (`PAYCORE_TEST_NATS_URL`).
fn nats_url() -> String {
    std::env::var("PAYCORE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}
/// Longest wait for the relay to catch up, or for one event.
const WAIT: Duration = Duration::from_secs(30);

/// A stream name and subject prefix no other test (or run) uses.
fn unique_names() -> (String, String) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    (format!("E2E_RELAY_{id}"), format!("e2e_relay_{id}"))
}

fn relay_env<'a>(url: &'a str, stream: &'a str, prefix: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("PAYCORE_RELAY_NATS", url),
        ("PAYCORE_RELAY_STREAM", stream),
        ("PAYCORE_RELAY_SUBJECT_PREFIX", prefix),
    ]
}

/// The stream, deleted when the test ends (pass or fail).
struct TestStream {
    js: jetstream::Context,
    name: String,
}

/// The log position a message carries.
fn position_of(message: &jetstream::message::StreamMessage) -> u64 {
    message
        .headers
        .get("Paycore-Position")
        .unwrap()
        .as_str()
        .parse()
        .unwrap()
}

impl TestStream {
    async fn connect(name: &str) -> Self {
        Self::connect_to(&nats_url(), name).await
    }

    async fn connect_to(url: &str, name: &str) -> Self {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(url)
            .await
            .unwrap_or_else(|error| panic!("NATS with JetStream at {url} (PAYCORE_TEST_NATS_URL): {error}"));
        Self {
            js: jetstream::new(client),
            name: name.to_owned(),
        }
    }

    async fn stream(&self) -> Option<Stream> {
        self.js.get_stream(&self.name).await.ok()
    }

    /// The position header of the stream's last message, if any.
    async fn last_position(&self) -> Option<u64> {
        let mut stream = self.stream().await?;
        let last = stream.info().await.ok()?.state.last_sequence;
        if last == 0 {
            return None;
        }
        let message = stream.get_raw_message(last).await.ok()?;
        message.headers.get("Paycore-Position")?.as_str().parse().ok()
    }

    /// Waits until the stream's last message is the event at `position`
    /// (which `server` relays).
    async fn wait_for(&self, position: u64, server: &Server) {
        // Past a NATS outage the relay may be between two attempts (at
        // most 10 s apart).
        let deadline = Instant::now() + 2 * WAIT;
        loop {
            let last = self.last_position().await;
            if last == Some(position) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the relay did not publish up to position {position} within {WAIT:?} (last: {last:?}); \
                 relay log:\n{}",
                server
                    .log()
                    .lines()
                    .filter(|line| line.contains("relay"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message of the stream, in stream order.
    /// The log position of every message, in stream order.
    async fn positions(&self) -> Vec<u64> {
        self.messages().await.iter().map(position_of).collect()
    }

    async fn messages(&self) -> Vec<jetstream::message::StreamMessage> {
        let mut stream = self.stream().await.expect("the relay's stream exists");
        let state = stream.info().await.unwrap().state.clone();
        assert_eq!(state.first_sequence, 1, "the stream lost messages");
        assert_eq!(
            state.messages, state.last_sequence,
            "the stream has deleted messages"
        );
        let mut messages = Vec::new();
        for sequence in 1..=state.last_sequence {
            messages.push(stream.get_raw_message(sequence).await.unwrap());
        }
        messages
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let (js, name) = (self.js.clone(), self.name.clone());
        // Best effort: a leftover stream only takes some disk in NATS.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    let _ = js.delete_stream(&name).await;
                });
            }
        })
        .join();
    }
}

/// Every envelope the bootstrap project's subscription delivers, from the
/// start of the log until nothing new comes for a moment (called after the
/// last write was answered, so the log is complete).
async fn subscribed(server: &Server, key: &str) -> Vec<pb::EventEnvelope> {
    let mut events = EventServiceClient::with_interceptor(server.channel(), bearer(key));
    let request = pb::SubscribeEventsRequest {
        start: Some(Start::FromPosition(0)),
        ..Default::default()
    };
    let mut stream: Streaming<pb::EventEnvelope> =
        events.subscribe_events(request).await.unwrap().into_inner();
    let mut all = Vec::new();
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(700), stream.message()).await {
        all.push(next.unwrap().expect("the subscription does not end"));
    }
    all
}

/// `count` transfers of 1 between two funded accounts, from `clients`
/// concurrent clients; errors are counted, not fatal (the server may be
/// killed under them).
async fn transfers(server: &Server, count: usize, clients: usize) -> usize {
    let client = server.client();
    let a = client.create_account("EUR", false).await.unwrap().id;
    let b = client.create_account("EUR", false).await.unwrap().id;
    client.set_balance(&a, "EUR", 1_000_000).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (client, a, b): (Client, String, String) = (server.client(), a.clone(), b.clone());
        let share = count / clients + usize::from(i < count % clients);
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            for _ in 0..share {
                if client.transfer(&a, &b, "EUR", 1).await.is_ok() {
                    done += 1;
                }
            }
            done
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap();
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_holds_every_event_once_in_log_order_across_a_kill_9() {
    let dir = test_dir();
    let (stream_name, prefix) = unique_names();
    let nats = TestStream::connect(&stream_name).await;
    let url = nats_url();
    let mut server = Server::start_with_env(dir.path(), &relay_env(&url, &stream_name, &prefix));

    // Transfers from several clients until the server dies under them; it
    // is killed while they run, with the relay in the middle of publishing.
    let client = server.client();
    let a = client.create_account("EUR", false).await.unwrap().id;
    let b = client.create_account("EUR", false).await.unwrap().id;
    client.set_balance(&a, "EUR", 1_000_000).await.unwrap();
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (client, a, b) = (server.client(), a.clone(), b.clone());
            tokio::spawn(async move { while client.transfer(&a, &b, "EUR", 1).await.is_ok() {} })
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while nats.last_position().await.unwrap_or(0) < 600 {
        assert!(
            Instant::now() < deadline,
            "the relay published too little; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    for task in load {
        task.await.unwrap();
    }
    let at_kill = nats.last_position().await.unwrap();
    eprintln!("killed with the stream at position {at_kill}");

    server.start_again();
    let after = transfers(&server, 200, 4).await;
    assert_eq!(after, 200);
    let expected = subscribed(&server, server.key()).await;
    let last = expected.last().unwrap().position;
    assert!(
        last > at_kill,
        "events were written after the kill ({last} > {at_kill})"
    );
    nats.wait_for(last, &server).await;

    // The operator sees the relay caught up, with the projections.
    let status = String::from_utf8(server.cli(&["projections", "status"]).stdout).unwrap();
    let caught_up = format!(
        "relay to NATS JetStream stream {stream_name}: publishing; published before {} of {} events, lag 0",
        last + 1,
        last + 1
    );
    assert!(status.contains(&caught_up), "{status}");

    // The relay resumed from the stream's last message, not from the start.
    let resumed = server
        .log()
        .lines()
        .filter(|line| line.contains("relay publishing"))
        .filter_map(|line| {
            line.split(" from=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .collect::<Vec<_>>();
    assert_eq!(
        resumed.len(),
        2,
        "one relay session per start; log:\n{}",
        server.log()
    );
    assert_eq!(resumed[0], 0);
    assert!(
        resumed[1] > 0 && resumed[1] <= at_kill + 1,
        "{resumed:?}, at kill {at_kill}"
    );

    eprintln!(
        "resumed from {resumed:?}; {} events published, the last at {last}",
        expected.len()
    );
    let messages = nats.messages().await;
    let positions: Vec<u64> = messages.iter().map(position_of).collect();
    let want: Vec<u64> = expected.iter().map(|e| e.position).collect();
    assert_eq!(positions.len(), want.len(), "every event once");
    assert_eq!(positions, want, "in log order, nothing missing or repeated");

    let mut ids = BTreeSet::new();
    let log_id = messages[0]
        .headers
        .get("Paycore-Log")
        .unwrap()
        .as_str()
        .to_owned();
    for (message, envelope) in messages.iter().zip(&expected) {
        let published = pb::EventEnvelope::decode(message.payload.clone()).unwrap();
        assert_eq!(&published, envelope, "the payload is the subscription's envelope");
        let project = server.project_id();
        assert_eq!(
            message.subject.as_str(),
            format!("{prefix}.{project}.{}.{}", envelope.category, envelope.event_type)
        );
        let header = |name: &str| message.headers.get(name).unwrap().as_str().to_owned();
        assert_eq!(header("Nats-Msg-Id"), format!("{log_id}:{}", envelope.position));
        assert_eq!(header("Paycore-Stream"), envelope.stream);
        assert_eq!(header("Paycore-Version"), envelope.version.to_string());
        assert_eq!(header("Paycore-Event-Type"), envelope.event_type);
        assert!(ids.insert(header("Nats-Msg-Id")));
    }
    server.stop_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_that_is_down_does_not_stop_the_server() {
    let dir = test_dir();
    let (stream_name, prefix) = unique_names();
    // Nothing listens on port 1.
    let env = [
        ("PAYCORE_RELAY_NATS", "nats://127.0.0.1:1"),
        ("PAYCORE_RELAY_STREAM", stream_name.as_str()),
        ("PAYCORE_RELAY_SUBJECT_PREFIX", prefix.as_str()),
    ];
    let mut server = Server::start_with_env(dir.path(), &env);
    let client = server.client();
    let account = client.create_account("EUR", false).await.unwrap();
    assert_eq!(client.account(&account.id).await.unwrap().id, account.id);
    let deadline = Instant::now() + WAIT;
    while !server.log().contains("relay interrupted") {
        assert!(
            Instant::now() < deadline,
            "no retry logged; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log();
    assert!(
        log.contains("cannot connect to NATS at nats://127.0.0.1:1"),
        "{log}"
    );
    assert!(log.contains("retry_in"), "{log}");
    let status = String::from_utf8(server.cli(&["projections", "status"]).stdout).unwrap();
    assert!(
        status.contains(&format!(
            "relay to NATS JetStream stream {stream_name}: retrying: cannot connect to NATS at nats://127.0.0.1:1"
        )),
        "{status}"
    );
    assert!(status.contains("published before unknown"), "{status}");
    drop(client);
    server.stop_ok();
}

#[test]
fn a_bad_nats_url_stops_the_server_at_start_with_a_precise_error() {
    let dir = test_dir();
    for (url, says) in [
        ("http://127.0.0.1:4222", "unsupported scheme \"http\""),
        ("127.0.0.1:4222", "no scheme"),
        ("nats://user:hunter2@:4222", "no host"),
    ] {
        let output = Command::new(paycore_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--relay-nats",
                url,
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{url}: {stderr}");
        assert!(
            stderr.contains("--relay-nats: invalid NATS URL"),
            "{url}: {stderr}"
        );
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// A NATS server of the test's own (the machine's `nats-server`), so it can
/// be killed without disturbing the shared one.
struct OwnNats {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnNats {
    const BIN: &str = "/usr/sbin/nats-server";

    fn start(dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = Self {
            port,
            dir: dir.to_owned(),
            child: None,
        };
        nats.start_again();
        nats
    }

    fn start_again(&mut self) {
        assert!(
            std::path::Path::new(Self::BIN).exists(),
            "{} (Debian's nats-server package) is needed to restart a NATS under the relay",
            Self::BIN
        );
        let child = Command::new(Self::BIN)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_killed_mid_stream_is_retried_and_the_stream_stays_exact() {
    let dir = test_dir();
    let mut nats = OwnNats::start(&dir.path().join("nats"));
    let (stream_name, prefix) = unique_names();
    let url = nats.url();
    let env = [
        ("PAYCORE_RELAY_NATS", url.as_str()),
        ("PAYCORE_RELAY_STREAM", stream_name.as_str()),
        ("PAYCORE_RELAY_SUBJECT_PREFIX", prefix.as_str()),
    ];
    let mut server = Server::start_with_env(&dir.path().join("paycore"), &env);
    let client = server.client();
    let a = client.create_account("EUR", false).await.unwrap().id;
    let b = client.create_account("EUR", false).await.unwrap().id;
    client.set_balance(&a, "EUR", 1_000_000).await.unwrap();
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (client, a, b, running) = (server.client(), a.clone(), b.clone(), running.clone());
            tokio::spawn(async move {
                let mut done = 0usize;
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    client.transfer(&a, &b, "EUR", 1).await.unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect();

    let (last_position, done_while_down) = {
        let stream = TestStream::connect_to(&url, &stream_name).await;
        let deadline = Instant::now() + WAIT;
        while stream.last_position().await.unwrap_or(0) < 300 {
            assert!(
                Instant::now() < deadline,
                "the relay published too little; log:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = client.all_transfers().await.unwrap().len();
        nats.kill9();
        // The server goes on serving while NATS is away.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let while_down = client.all_transfers().await.unwrap().len() - before;
        nats.start_again();
        tokio::time::sleep(Duration::from_millis(500)).await;
        running.store(false, std::sync::atomic::Ordering::Relaxed);
        for task in load {
            task.await.unwrap();
        }
        (stream.last_position().await, while_down)
    };
    assert!(done_while_down > 0, "transfers went on while NATS was down");
    eprintln!("{done_while_down} transfers while NATS was down; stream at {last_position:?} just after");

    let expected = subscribed(&server, server.key()).await;
    let stream = TestStream::connect_to(&url, &stream_name).await;
    stream.wait_for(expected.last().unwrap().position, &server).await;
    let positions: Vec<u64> = stream.positions().await;
    let want: Vec<u64> = expected.iter().map(|e| e.position).collect();
    assert_eq!(
        positions, want,
        "every event once, in log order, after NATS came back"
    );
    let log = server.log();
    assert!(log.contains("relay interrupted"), "the outage was logged:\n{log}");
    drop(client);
    server.stop_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgresql_one_server_relays_and_another_takes_over_after_its_kill_9() {
    use paycore_e2e::postgres::{Schema, VaultKeyFile, database_url};

    let schema = Schema::create();
    let url = database_url();
    let key = VaultKeyFile::new();
    let nats = nats_url();
    let (stream_name, prefix) = unique_names();
    let env = [
        ("PAYCORE_STORE", url.as_str()),
        ("PAYCORE_PG_SCHEMA", schema.name.as_str()),
        ("PAYCORE_VAULT_KEY_FILE", key.path()),
        ("PAYCORE_RELAY_NATS", nats.as_str()),
        ("PAYCORE_RELAY_STREAM", stream_name.as_str()),
        ("PAYCORE_RELAY_SUBJECT_PREFIX", prefix.as_str()),
    ];
    let nats = TestStream::connect(&stream_name).await;
    let (dir_a, dir_b) = (test_dir(), test_dir());
    let mut servers = [
        Server::start_with_env(dir_a.path(), &env),
        Server::start_with_env(dir_b.path(), &env),
    ];
    let secret = servers[0].key().to_owned();
    let client = servers[0].client();
    let a = client.create_account("EUR", false).await.unwrap().id;
    let b = client.create_account("EUR", false).await.unwrap().id;
    client.set_balance(&a, "EUR", 1_000_000).await.unwrap();
    // Exactly one of the two publishes; the other stands by.
    let deadline = Instant::now() + WAIT;
    let publisher = loop {
        let publishing: Vec<usize> = (0..2)
            .filter(|&i| servers[i].log().contains("relay publishing"))
            .collect();
        if publishing.len() == 1 && (0..2).any(|i| servers[i].log().contains("standing by")) {
            break publishing[0];
        }
        assert!(publishing.len() < 2, "two relays publish at once");
        assert!(Instant::now() < deadline, "no relay elected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let survivor = 1 - publisher;

    // Traffic through the survivor while the publisher is killed.
    let traffic = {
        let (client, a, b) = (servers[survivor].client_with_key(&secret), a.clone(), b.clone());
        tokio::spawn(async move {
            for _ in 0..150 {
                client.transfer(&a, &b, "EUR", 1).await.unwrap();
            }
        })
    };
    while nats.last_position().await.unwrap_or(0) < 60 {
        assert!(Instant::now() < deadline, "the relay published too little");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    servers[publisher].kill9();
    traffic.await.unwrap();

    let expected = subscribed(&servers[survivor], &secret).await;
    nats.wait_for(expected.last().unwrap().position, &servers[survivor])
        .await;
    assert!(
        servers[survivor].log().contains("relay publishing"),
        "the survivor took over"
    );
    let positions: Vec<u64> = nats.positions().await;
    let want: Vec<u64> = expected.iter().map(|e| e.position).collect();
    assert_eq!(
        positions, want,
        "every event once, in log order, across the takeover"
    );
    drop(client);
    servers[survivor].stop_ok();
}
