//! The database lost mid-traffic: appends fail with `Unavailable`, nothing is
//! half-written, and the store recovers by itself once the database is back.
//!
//! The outage is simulated with a TCP proxy in front of the shared local
//! server (stopping the server itself would disturb every other test): while
//! "down", the proxy closes every proxied connection and refuses new ones.
//! A second test kills the store's backends with `pg_terminate_backend`, as a
//! database restart or an administrator would.

mod common;

use common::StoreOf;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use paycore_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, GENESIS_HASH, NewEvent, StoreError,
    StreamWrite, verify_chain,
};
use paycore_store_postgres::{PgOptions, PgStore};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A TCP proxy to the test database that can be cut and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let acceptor = {
            let (up, connections) = (up.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client); // refused: closed at once
                        continue;
                    }
                    let target = target.clone();
                    connections.lock().spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            })
        };
        Self {
            port,
            up,
            connections,
            acceptor,
        }
    }

    /// Closes every proxied connection (both ends) and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.connections.lock().abort_all();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.connections.lock().abort_all();
    }
}

/// The test database's address and a URL that reaches it through `port`.
fn through_proxy(port: u16) -> (String, String) {
    let config: tokio_postgres::Config = common::database_url().parse().expect("test URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let target_port = config.get_ports().first().copied().unwrap_or(5432);
    let mut url = format!(
        "host=127.0.0.1 port={port} user={} dbname={}",
        config.get_user().unwrap_or("postgres"),
        config.get_dbname().unwrap_or("test")
    );
    if let Some(password) = config.get_password() {
        url.push_str(&format!(" password={}", String::from_utf8_lossy(password)));
    }
    (format!("{host}:{target_port}"), url)
}

fn request(tag: &str) -> AppendRequest {
    let event = |k: usize| NewEvent {
        event_type: "Moved".into(),
        schema_version: 1,
        metadata: Arc::new(EventMetadata::default()),
        payload: Bytes::from(format!("{tag}-{k}")),
    };
    AppendRequest {
        writes: vec![
            StreamWrite {
                stream: "account-a".into(),
                expected: ExpectedVersion::Any,
                events: vec![event(0)],
            },
            StreamWrite {
                stream: "account-b".into(),
                expected: ExpectedVersion::Any,
                events: vec![event(1)],
            },
            StreamWrite {
                stream: format!("transfer-{tag}").into(),
                expected: ExpectedVersion::NoStream,
                events: vec![event(2), event(3)],
            },
        ],
    }
}

#[derive(Debug)]
enum Outcome {
    Ok(u64),
    Unavailable(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_lost_mid_traffic_then_back() {
    let guard = common::SchemaGuard::new().await;
    let direct = guard.store().await;
    let (target, _) = through_proxy(0);
    let proxy = Proxy::start(target).await;
    let (_, url) = through_proxy(proxy.port);
    let options = PgOptions {
        connect_timeout: Duration::from_millis(500),
        operation_timeout: Duration::from_secs(3),
        ..common::options(&guard.schema)
    };
    let store = Arc::new(
        PgStore::connect(&url, options)
            .await
            .expect("connect through the proxy"),
    );
    store
        .append(request("warmup"))
        .await
        .expect("append before the outage");

    let stop = Arc::new(AtomicBool::new(false));
    let after_restore = Arc::new(AtomicUsize::new(0));
    let restored = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, stop, restored, after_restore) = (
            store.clone(),
            stop.clone(),
            restored.clone(),
            after_restore.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut outcomes = BTreeMap::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let tag = format!("w{w}.{i}");
                let outcome = match store.append(request(&tag)).await {
                    Ok(r) => {
                        if restored.load(Ordering::SeqCst) {
                            after_restore.fetch_add(1, Ordering::SeqCst);
                        }
                        Outcome::Ok(r.first_position)
                    }
                    Err(StoreError::Unavailable(message)) => Outcome::Unavailable(message),
                    Err(other) => panic!("an outage must fail with Unavailable, got {other:?}"),
                };
                outcomes.insert(tag, outcome);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            outcomes
        }));
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Still down: an append fails quickly, and clearly.
    match store.append(request("during")).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(!message.is_empty());
        }
        other => panic!("expected Unavailable during the outage, got {other:?}"),
    }
    proxy.restore();
    restored.store(true, Ordering::SeqCst);
    let recovered = tokio::time::timeout(Duration::from_secs(15), async {
        while after_restore.load(Ordering::SeqCst) < 8 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = BTreeMap::new();
    for writer in writers {
        outcomes.extend(writer.await.expect("writer"));
    }
    recovered.expect("appends succeed again once the database is back");
    let failures = outcomes
        .values()
        .filter(|o| matches!(o, Outcome::Unavailable(_)))
        .count();
    assert!(failures > 0, "the outage was noticed: {outcomes:?}");
    let mut messages: BTreeMap<&str, usize> = BTreeMap::new();
    for outcome in outcomes.values() {
        if let Outcome::Unavailable(message) = outcome {
            // The kind of failure, without the details after the first ':'.
            *messages
                .entry(message.split(':').next().unwrap_or(""))
                .or_default() += 1;
        }
    }
    eprintln!(
        "{} appends, {failures} failed with Unavailable: {messages:?}",
        outcomes.len()
    );

    // Nothing half-written: every request is in the log whole or not at all,
    // and every acknowledged one is where its result says.
    let events = direct.read_all(0, usize::MAX).await.expect("read");
    verify_chain(GENESIS_HASH, &events).expect("the chain verifies");
    let mut by_tag: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for e in &events {
        let payload = String::from_utf8_lossy(&e.payload).into_owned();
        let tag = payload
            .rsplit_once('-')
            .map(|(t, _)| t.to_owned())
            .unwrap_or_default();
        by_tag.entry(tag).or_default().push((e.position, payload));
    }
    for (tag, outcome) in &outcomes {
        let found = by_tag.get(tag).map(Vec::as_slice).unwrap_or(&[]);
        match outcome {
            Outcome::Ok(first) => {
                assert_eq!(found.len(), 4, "{tag}");
                assert_eq!(found[0].0, *first, "{tag}");
            }
            // Failed: absent, or (connection lost during COMMIT) whole.
            Outcome::Unavailable(_) => assert!(found.is_empty() || found.len() == 4, "{tag}: {found:?}"),
        }
        if found.len() == 4 {
            let positions: Vec<u64> = found.iter().map(|(p, _)| *p).collect();
            assert_eq!(positions, (found[0].0..found[0].0 + 4).collect::<Vec<_>>());
        }
    }
    assert!(
        by_tag
            .keys()
            .all(|tag| tag == "warmup" || outcomes.contains_key(tag))
    );

    // The store is usable again, and its watermark (listener reconnected)
    // follows other servers' commits.
    store
        .append(request("after"))
        .await
        .expect("append after recovery");
    let last = direct.append(request("from-direct")).await.expect("append");
    let mut committed = store.committed();
    tokio::time::timeout(
        Duration::from_secs(10),
        committed.wait_for(|&c| c > last.last_position),
    )
    .await
    .expect("the watermark follows again")
    .expect("store alive");
    drop((store, direct, proxy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_are_replaced() {
    let guard = common::SchemaGuard::new().await;
    let options = common::options(&guard.schema);
    let name = options.application_name.clone().expect("a name of its own");
    let store = Arc::new(PgStore::connect(&guard.url, options).await.expect("connect"));
    let other = guard.store().await;
    // Fill the pool with a few connections.
    let warm: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append(request(&format!("warm{i}"))).await })
        })
        .collect();
    for w in warm {
        w.await.expect("task").expect("append");
    }

    for round in 0..3 {
        guard
            .execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = '{name}' AND pid <> pg_backend_pid()"
            ))
            .await;
        // The dead connections are noticed and replaced: at worst an append
        // fails with Unavailable (never anything else) before one succeeds.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match store.append(request(&format!("r{round}.{attempts}"))).await {
                Ok(_) => break,
                Err(StoreError::Unavailable(_)) if attempts < 5 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("round {round}, attempt {attempts}: {e:?}"),
            }
        }
        // Reads recover too, and the listener reconnects: a commit from
        // another store reaches this one's watermark.
        store.read_all(0, 1).await.expect("read after the kill");
        let last = other
            .append(request(&format!("other{round}")))
            .await
            .expect("append");
        let mut committed = store.committed();
        tokio::time::timeout(
            Duration::from_secs(10),
            committed.wait_for(|&c| c > last.last_position),
        )
        .await
        .expect("the watermark follows again")
        .expect("store alive");
    }
    let events = other.read_all(0, usize::MAX).await.expect("read");
    verify_chain(GENESIS_HASH, &events).expect("the chain verifies");
    assert_eq!(events.len() % 4, 0, "every request whole");
    drop((store, other));
}
