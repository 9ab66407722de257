//! Event subscriptions through the real server: typed events in log order
//! with their positions, filters, `from_now`, project isolation, resuming
//! after a disconnect without gaps or duplicates, flow control against a
//! client that stops reading, precise errors, and durable consumers whose
//! checkpoints survive a restart.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use paycore_e2e::{
    Authed, Client, Server, assert_bad_request, assert_bad_request_fields, assert_code, assert_reason,
    bearer, expect_err, key_id, mask, meta, pb, test_dir, with_idempotency_key,
};
use paycore_grpc::EventServiceClient;
use pb::event_envelope::Event as Body;
use pb::subscribe_events_request::Start;
use tonic::{Code, Streaming};

/// Longest wait for one event before a test gives up.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

type Events = EventServiceClient<Authed>;

fn events_client(server: &Server, key: &str) -> Events {
    EventServiceClient::with_interceptor(server.channel(), bearer(key))
}

fn from_position(position: u64) -> pb::SubscribeEventsRequest {
    pb::SubscribeEventsRequest {
        start: Some(Start::FromPosition(position)),
        ..Default::default()
    }
}

fn as_consumer(name: &str) -> pb::SubscribeEventsRequest {
    pb::SubscribeEventsRequest {
        consumer: Some(name.into()),
        ..Default::default()
    }
}

async fn subscribe(events: &Events, request: pb::SubscribeEventsRequest) -> Streaming<pb::EventEnvelope> {
    events
        .clone()
        .subscribe_events(request)
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut Streaming<pb::EventEnvelope>) -> pb::EventEnvelope {
    tokio::time::timeout(EVENT_TIMEOUT, stream.message())
        .await
        .expect("an event within the timeout")
        .expect("an event, not an error")
        .expect("an event, not the end of the stream")
}

/// Whether `envelope` is the project meta update `Client::write_barrier(tag)`
/// makes: the last event a test waits for.
fn is_barrier(envelope: &pb::EventEnvelope, tag: &str) -> bool {
    matches!(&envelope.event, Some(Body::ProjectMetaUpdated(updated))
        if updated.meta.get("e2e_barrier").map(String::as_str) == Some(tag))
}

/// Every event up to and including the barrier `tag`.
async fn until_barrier(stream: &mut Streaming<pb::EventEnvelope>, tag: &str) -> Vec<pb::EventEnvelope> {
    let mut seen = Vec::new();
    loop {
        let envelope = next(stream).await;
        let done = is_barrier(&envelope, tag);
        seen.push(envelope);
        if done {
            return seen;
        }
    }
}

/// Everything from position 0 up to the barrier `tag`, on a new call.
async fn history(events: &Events, tag: &str) -> Vec<pb::EventEnvelope> {
    until_barrier(&mut subscribe(events, from_position(0)).await, tag).await
}

fn positions(events: &[pb::EventEnvelope]) -> Vec<u64> {
    events.iter().map(|envelope| envelope.position).collect()
}

fn assert_ascending(events: &[pb::EventEnvelope]) {
    let positions = positions(events);
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "positions ascend strictly: {positions:?}"
    );
}

/// Two accounts, a magic balance and a transfer between them.
async fn some_activity(client: &Client) -> (pb::Account, pb::Account, pb::Transfer) {
    let a = client.create_account("EUR", false).await.unwrap();
    let b = client.create_account("EUR", false).await.unwrap();
    client.set_balance(&a.id, "EUR", 1_000).await.unwrap();
    let transfer = client.transfer(&a.id, &b.id, "EUR", 250).await.unwrap();
    (a, b, transfer)
}

/// The `transaction_recorded` events of `events`.
fn transactions(events: &[pb::EventEnvelope]) -> Vec<&pb::Transaction> {
    events
        .iter()
        .filter_map(|envelope| match &envelope.event {
            Some(Body::TransactionRecorded(transaction)) => Some(transaction),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_typed_in_order_with_their_positions() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let request = pb::CreateCustomerRequest {
        identity: None,
        meta: meta(&[("tier", "gold")]),
    };
    let customer = client
        .customers
        .clone()
        .create_customer(with_idempotency_key(request, "customer-1"))
        .await
        .unwrap()
        .into_inner();
    let (a, b, transfer) = some_activity(&client).await;
    client.write_barrier("end").await.unwrap();

    let events = history(&events_client(&server, server.key()), "end").await;
    assert_ascending(&events);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "ProjectCreated",
            "ApiKeyCreated",
            "CustomerCreated",
            "AccountOpened",
            "AccountOpened",
            "TransactionRecorded",
            "ProjectBalanceChanged",
            "TransferCreated",
            "TransactionRecorded",
            "TransactionRecorded",
            "ProjectMetaUpdated",
        ]
    );
    // The idempotency record written with the customer takes a position but
    // is never delivered: the customer's successor is two positions on.
    assert_eq!(events[3].position, events[2].position + 2);
    for envelope in &events {
        assert_eq!(envelope.stream.split_once('-').unwrap().0, envelope.category);
        assert!(envelope.recorded_at.is_some());
    }
    let Some(Body::ProjectCreated(project)) = &events[0].event else {
        panic!("{:?}", events[0])
    };
    assert_eq!(project.id, server.project_id());
    assert_eq!(events[0].stream, format!("project-{}", server.project_id()));
    let Some(Body::ApiKeyCreated(key)) = &events[1].event else {
        panic!("{:?}", events[1])
    };
    assert_eq!(key.api_key_id, key_id(server.key()));
    assert_eq!(key.kind(), pb::ApiKeyKind::Secret);

    let created = &events[2];
    assert_eq!(created.event, Some(Body::CustomerCreated(customer.clone())));
    // The idempotency key is never delivered (it may be payment data).
    let delivered = prost::Message::encode_to_vec(created);
    assert!(!delivered.windows(10).any(|w| w == b"customer-1"));
    assert_eq!(created.actor, Some(key_id(server.key())));
    assert_eq!((created.category.as_str(), created.version), ("customer", 0));

    let Some(Body::AccountOpened(opened)) = &events[3].event else {
        panic!("{:?}", events[3])
    };
    assert_eq!(
        (opened.id.as_str(), opened.balance.as_ref().unwrap().amount),
        (a.id.as_str(), 0)
    );
    let Some(Body::ProjectBalanceChanged(total)) = &events[6].event else {
        panic!("{:?}", events[6])
    };
    assert_eq!(total.total_after.as_ref().unwrap().amount, 1_000);
    assert_eq!(events[6].category, "projectbalance");
    assert_eq!(events[7].event, Some(Body::TransferCreated(transfer.clone())));
    assert_eq!(events[7].stream, format!("transfer-{}", transfer.id));

    let legs: Vec<(&str, i64, i64)> = transactions(&events)
        .iter()
        .map(|tx| {
            let value = tx.value.as_ref().unwrap().amount;
            (
                tx.account_id.as_str(),
                value,
                tx.balance_after.as_ref().unwrap().amount,
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            (a.id.as_str(), 1_000, 1_000),
            (a.id.as_str(), -250, 750),
            (b.id.as_str(), 250, 250)
        ]
    );
    // Each account stream's versions count up from 0 without gaps.
    let versions: Vec<u64> = events
        .iter()
        .filter(|e| e.stream == format!("account-{}", a.id))
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_by_category_and_event_type() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    some_activity(&client).await;
    some_activity(&client).await;
    client.write_barrier("f").await.unwrap();
    let events = events_client(&server, server.key());
    let all = history(&events, "f").await;

    let cases: [(&[&str], &[&str], usize); 3] = [
        (&["transfer", "project"], &[], 4),
        (&[], &["TransactionRecorded", "ProjectMetaUpdated"], 7),
        // Both filters must match: `TransferCreated` is not on an `account`
        // stream, so the four openings and the barrier remain.
        (
            &["account", "project"],
            &["AccountOpened", "ProjectMetaUpdated", "TransferCreated"],
            5,
        ),
    ];
    for (categories, event_types, count) in cases {
        let request = pb::SubscribeEventsRequest {
            categories: categories.iter().map(|c| c.to_string()).collect(),
            event_types: event_types.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        let filtered = until_barrier(&mut subscribe(&events, request).await, "f").await;
        let expected: Vec<pb::EventEnvelope> = all
            .iter()
            .filter(|e| categories.is_empty() || categories.contains(&e.category.as_str()))
            .filter(|e| event_types.is_empty() || event_types.contains(&e.event_type.as_str()))
            .cloned()
            .collect();
        assert_eq!(filtered, expected, "{categories:?} {event_types:?}");
        // Counted too, in case the unfiltered read were wrong as well.
        assert_eq!(filtered.len(), count, "{categories:?} {event_types:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_now_only_sees_later_events() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    some_activity(&client).await;
    let events = events_client(&server, server.key());
    let request = pb::SubscribeEventsRequest {
        start: Some(Start::FromNow(true)),
        ..Default::default()
    };
    let mut stream = subscribe(&events, request).await;
    let later = client.create_account("USD", true).await.unwrap();
    client.write_barrier("later").await.unwrap();
    let seen = until_barrier(&mut stream, "later").await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].event, Some(Body::AccountOpened(later)));
    let before = history(&events, "later").await;
    assert_eq!(&before[before.len() - 2..], seen.as_slice());
}

/// Open banking events are delivered like all others: the operator's
/// activation of an institution for a project reaches that project's
/// subscribers (typed, filterable by its category and type), not another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_institution_activation_reaches_the_projects_subscribers() {
    let dir = test_dir();
    let (server, second) = Server::start_with_second_project(dir.path());
    let project = server.project_id().to_owned();
    let activated = server.cli(&[
        "institutions",
        "activate",
        "--project",
        &project,
        "sandbox_gb_albion",
    ]);
    assert!(
        activated.status.success(),
        "{}",
        String::from_utf8_lossy(&activated.stderr)
    );
    server.client().write_barrier("one").await.unwrap();
    server
        .client_with_key(&second.key)
        .write_barrier("two")
        .await
        .unwrap();

    let mine = history(&events_client(&server, server.key()), "one").await;
    let activations: Vec<&pb::EventEnvelope> = mine.iter().filter(|e| e.category == "institution").collect();
    assert_eq!(activations.len(), 1, "{mine:?}");
    let envelope = activations[0];
    assert_eq!(envelope.event_type, "InstitutionActivated");
    assert_eq!(
        envelope.stream,
        format!("institution-{project}.sandbox_gb_albion")
    );
    let Some(Body::InstitutionActivated(activation)) = &envelope.event else {
        panic!("{envelope:?}");
    };
    assert_eq!(activation.project_id, project);
    assert_eq!(activation.institution_id, "sandbox_gb_albion");
    assert!(activation.activated_at.is_some());

    // The category and the type are accepted as filters.
    let mut filtered = subscribe(
        &events_client(&server, server.key()),
        pb::SubscribeEventsRequest {
            start: Some(Start::FromPosition(0)),
            categories: vec!["institution".into(), "aggregatedaccount".into()],
            event_types: vec![
                "InstitutionActivated".into(),
                "AggregationConnectionDeleted".into(),
            ],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(&next(&mut filtered).await, envelope);

    // The other project's subscribers see nothing of it.
    let theirs = history(&events_client(&server, &second.key), "two").await;
    assert!(theirs.iter().all(|e| e.category != "institution"), "{theirs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_projects_events_are_never_delivered() {
    let dir = test_dir();
    let (server, second) = Server::start_with_second_project(dir.path());
    let first = server.client();
    let other = server.client_with_key(&second.key);
    let (a, b, _) = some_activity(&first).await;
    let (c, d, _) = some_activity(&other).await;
    // Platform events (exchange rates) belong to no project.
    let fx = server.cli(&["fx", "set", "EUR", "USD", "1.08"]);
    assert!(fx.status.success(), "{}", String::from_utf8_lossy(&fx.stderr));
    first.write_barrier("one").await.unwrap();
    other.write_barrier("two").await.unwrap();

    let mine = history(&events_client(&server, server.key()), "one").await;
    let theirs = history(&events_client(&server, &second.key), "two").await;
    let accounts = |events: &[pb::EventEnvelope]| -> BTreeSet<String> {
        events
            .iter()
            .filter_map(|e| match &e.event {
                Some(Body::AccountOpened(account)) => Some(account.id.clone()),
                Some(Body::TransactionRecorded(tx)) => Some(tx.account_id.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(accounts(&mine), BTreeSet::from([a.id, b.id]));
    assert_eq!(accounts(&theirs), BTreeSet::from([c.id, d.id]));
    let projects = |events: &[pb::EventEnvelope]| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| e.category == "project")
            .map(|e| e.stream.clone())
            .collect()
    };
    assert_eq!(
        projects(&mine),
        BTreeSet::from([format!("project-{}", server.project_id())])
    );
    assert_eq!(
        projects(&theirs),
        BTreeSet::from([format!("project-{}", second.id)])
    );
    let mine_positions: BTreeSet<u64> = positions(&mine).into_iter().collect();
    assert!(positions(&theirs).iter().all(|p| !mine_positions.contains(p)));
    for envelope in mine.iter().chain(&theirs) {
        assert!(
            !["fxrate", "idempotency", "consumer"].contains(&envelope.category.as_str()),
            "{envelope:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_resumes_after_disconnecting_misses_nothing_and_repeats_nothing() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let (a, b, _) = some_activity(&client).await;
    // Writers keep going while the subscriber comes and goes.
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let client = server.client();
            let (a, b) = (a.id.clone(), b.id.clone());
            tokio::spawn(async move {
                for i in 0..40 {
                    let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
                    client.transfer(from, to, "EUR", 1).await.unwrap();
                }
            })
        })
        .collect();

    let mut received = Vec::new();
    let mut resume_at = 0;
    for chunk in [7, 60, 1, 130] {
        // A new connection each time, as after a network failure.
        let events = events_client(&server, server.key());
        let mut stream = subscribe(&events, from_position(resume_at)).await;
        for _ in 0..chunk {
            received.push(next(&mut stream).await);
        }
        resume_at = received.last().unwrap().position + 1;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    client.write_barrier("done").await.unwrap();
    let events = events_client(&server, server.key());
    let mut stream = subscribe(&events, from_position(resume_at)).await;
    received.extend(until_barrier(&mut stream, "done").await);

    let all = history(&events, "done").await;
    assert_eq!(transactions(&all).len(), 3 + 4 * 40 * 2);
    assert_eq!(received.len(), all.len());
    assert_eq!(received, all, "resumed reads equal one uninterrupted read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_ends_its_subscriptions() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let second_key = server.create_key(server.project_id(), false);
    let request = || pb::SubscribeEventsRequest {
        start: Some(Start::FromNow(true)),
        ..Default::default()
    };
    let mut revoked = subscribe(&events_client(&server, &second_key), request()).await;
    let mut other = subscribe(&events_client(&server, server.key()), request()).await;
    server.revoke_key(&key_id(&second_key));
    let status = tokio::time::timeout(EVENT_TIMEOUT, revoked.message())
        .await
        .unwrap()
        .expect_err("the stream ends at the revocation");
    assert_code(&status, Code::Unauthenticated);
    assert_eq!(status.message(), "API key revoked");
    // Other keys' subscriptions see the revocation like any other event.
    let Some(Body::ApiKeyRevoked(event)) = next(&mut other).await.event else {
        panic!()
    };
    assert_eq!(event.api_key_id, key_id(&second_key));
}

/// The `paycore serve` process of `server`, found by its data directory.
fn server_pid(server: &Server) -> u32 {
    let data_dir = server.data_dir();
    let needle = data_dir.to_str().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        if args.iter().any(|arg| arg == "serve") && args.iter().any(|arg| arg == needle) {
            return pid;
        }
    }
    panic!("no paycore serve process for {needle}");
}

/// Anonymous resident memory of a process, in KiB: what the server's own
/// buffers occupy (mapped files and shared libraries excluded).
fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Bytes of meta in each update `write_meta_updates` makes: 49 values of
/// 500 characters (plus a short counter), about 25 KiB in the log.
const META_BYTES: u64 = 49 * (3 + 500);

/// Project meta updates numbered `numbers` (meta key `n`), from 64 clients
/// at once. Only the project's latest meta stays in the read models and the
/// engine's cache; the log keeps each one.
async fn write_meta_updates(server: &Server, numbers: std::ops::Range<usize>) {
    let value = "v".repeat(500);
    let entries: BTreeMap<String, String> = (0..49).map(|i| (format!("k{i:02}"), value.clone())).collect();
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let client = server.client();
            let (entries, numbers) = (entries.clone(), numbers.clone());
            tokio::spawn(async move {
                for n in numbers.skip(task).step_by(64) {
                    let mut meta = entries.clone();
                    meta.insert("n".into(), n.to_string());
                    let request = pb::UpdateProjectRequest {
                        update_mask: Some(mask(&["meta"])),
                        meta,
                    };
                    client.projects.clone().update_project(request).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_grow_the_servers_memory() {
    const EACH: usize = 1_500;
    let started = Instant::now();
    let dir = test_dir();
    let server = Server::start(dir.path());
    let pid = server_pid(&server);
    let log_mib = |count: usize| count as u64 * META_BYTES / (1024 * 1024);

    // Catching up: a log of about 35 MiB that the subscriber does not read.
    write_meta_updates(&server, 0..EACH).await;
    let written = rss_anon_kib(pid);
    let events = events_client(&server, server.key());
    let mut stalled = subscribe(&events, from_position(0)).await;
    // Time enough for a server without flow control to queue all of it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let subscribed = rss_anon_kib(pid);
    let queued_mib = subscribed.saturating_sub(written) / 1024;
    eprintln!(
        "server RssAnon {written} KiB, {subscribed} KiB with a stalled subscriber ({queued_mib} MiB more) after {:?}",
        started.elapsed()
    );
    assert!(
        queued_mib < 24,
        "a client that reads nothing made the server hold {queued_mib} MiB of a {} MiB log",
        log_mib(EACH)
    );

    // Live: as many again while it still reads nothing. The log keeps its
    // recent events in memory (that much growth is expected); the
    // subscription must not add a copy of them.
    write_meta_updates(&server, EACH..2 * EACH).await;
    server.client().write_barrier("drained").await.unwrap();
    let live = rss_anon_kib(pid);
    let grown_mib = live.saturating_sub(subscribed) / 1024;
    eprintln!(
        "{live} KiB after {EACH} more updates ({grown_mib} MiB more) after {:?}",
        started.elapsed()
    );
    assert!(
        grown_mib < log_mib(EACH) + 32,
        "the server grew by {grown_mib} MiB while {} MiB were written for a client that reads nothing",
        log_mib(EACH)
    );

    // Nothing was lost while the client was not reading.
    let seen = until_barrier(&mut stalled, "drained").await;
    assert_ascending(&seen);
    let numbers: Vec<usize> = seen
        .iter()
        .filter_map(|e| match &e.event {
            Some(Body::ProjectMetaUpdated(updated)) => updated.meta.get("n").map(|n| n.parse().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(numbers.len(), 2 * EACH);
    assert_eq!(
        numbers.into_iter().collect::<BTreeSet<_>>(),
        (0..2 * EACH).collect()
    );
    eprintln!("took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_precise_errors() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    client.write_barrier("x").await.unwrap();
    let events = events_client(&server, server.key());
    let refuse = |request: pb::SubscribeEventsRequest| {
        let events = events.clone();
        async move { expect_err(events.clone().subscribe_events(request).await) }
    };

    let head = history(&events, "x").await.last().unwrap().position + 1;
    // The end of the log is a valid start (nothing yet); past it is not.
    drop(subscribe(&events, from_position(head)).await);
    let status = refuse(from_position(head + 1)).await;
    assert_bad_request(&status, "from_position");
    assert!(
        status.message().contains(&format!("position {head}")),
        "{}",
        status.message()
    );

    let request = pb::SubscribeEventsRequest {
        categories: vec!["account".into(), "nope".into(), "idempotency".into()],
        event_types: vec![
            "IdempotencyKeyUsed".into(),
            "TransactionRecorded".into(),
            "Nope".into(),
        ],
        ..Default::default()
    };
    let status = refuse(request).await;
    assert_bad_request_fields(
        &status,
        &[
            "categories[1]",
            "categories[2]",
            "event_types[0]",
            "event_types[2]",
        ],
    );
    let message = status.message();
    assert!(message.contains("never delivered"), "{message}");
    assert!(
        message.contains("cardpayinrefund") && message.contains("BankPayinReceived"),
        "{message}"
    );

    let status = refuse(pb::SubscribeEventsRequest {
        start: Some(Start::FromNow(false)),
        ..Default::default()
    })
    .await;
    assert_bad_request_fields(&status, &["from_now"]);
    for (start, field) in [
        (Start::FromPosition(0), "from_position"),
        (Start::FromNow(true), "from_now"),
    ] {
        let status = refuse(pb::SubscribeEventsRequest {
            start: Some(start),
            consumer: Some("billing".into()),
            ..Default::default()
        })
        .await;
        assert_bad_request_fields(&status, &[field]);
    }
    for name in ["", "Billing", "a.b", &"x".repeat(65)] {
        assert_bad_request_fields(&refuse(as_consumer(name)).await, &["consumer"]);
    }

    // Keys: secret only.
    let public = server.create_key(server.project_id(), true);
    let status = expect_err(
        events_client(&server, &public)
            .subscribe_events(from_position(0))
            .await,
    );
    assert_code(&status, Code::PermissionDenied);
    let status = expect_err(
        EventServiceClient::new(server.channel())
            .subscribe_events(from_position(0))
            .await,
    );
    assert_code(&status, Code::Unauthenticated);

    // Checkpoints.
    let commit = |consumer: &str, position: u64, reset: bool| {
        let events = events.clone();
        let request = pb::CommitConsumerPositionRequest {
            consumer: consumer.into(),
            position,
            reset,
        };
        async move { events.clone().commit_consumer_position(request).await }
    };
    assert_bad_request_fields(&expect_err(commit("Bad", 0, false).await), &["consumer"]);
    let status = expect_err(commit("billing", head + 5, false).await);
    assert_bad_request_fields(&status, &["position"]);
    let get = pb::GetConsumerPositionRequest {
        consumer: "billing".into(),
    };
    assert_code(
        &expect_err(events.clone().get_consumer_position(get.clone()).await),
        Code::NotFound,
    );
    let committed = commit("billing", head - 1, false).await.unwrap().into_inner();
    assert_eq!(
        (committed.consumer.as_str(), committed.position),
        ("billing", head - 1)
    );
    let status = expect_err(commit("billing", 1, false).await);
    assert_reason(&status, Code::FailedPrecondition, "CONSUMER_POSITION_BEHIND");
    let again = commit("billing", head - 1, false).await.unwrap().into_inner();
    assert_eq!(again, committed, "committing the same position changes nothing");
    let reset = commit("billing", 1, true).await.unwrap().into_inner();
    assert_eq!(reset.position, 1);
    assert_eq!(
        events
            .clone()
            .get_consumer_position(get)
            .await
            .unwrap()
            .into_inner(),
        reset
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_consumer_resumes_after_its_checkpoint_across_restarts() {
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    some_activity(&server.client()).await;
    server.client().write_barrier("one").await.unwrap();
    let events = events_client(&server, server.key());
    let commit = |events: &Events, position: u64| {
        let mut events = events.clone();
        async move {
            let request = pb::CommitConsumerPositionRequest {
                consumer: "billing".into(),
                position,
                reset: false,
            };
            events
                .commit_consumer_position(request)
                .await
                .unwrap()
                .into_inner()
        }
    };

    // A new consumer starts at the beginning of the log.
    let first = until_barrier(&mut subscribe(&events, as_consumer("billing")).await, "one").await;
    assert_eq!(first, history(&events, "one").await);
    commit(&events, first[4].position).await;
    let resumed = until_barrier(&mut subscribe(&events, as_consumer("billing")).await, "one").await;
    assert_eq!(resumed, first[5..]);
    let checkpoint = commit(&events, first.last().unwrap().position).await;

    // A subscription open during a graceful stop ends with UNAVAILABLE
    // instead of holding the server up.
    let mut open = subscribe(&events, from_position(0)).await;
    server.restart();
    let ended = loop {
        match tokio::time::timeout(EVENT_TIMEOUT, open.message()).await.unwrap() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_code(&ended, Code::Unavailable);

    let events = events_client(&server, server.key());
    let get = pb::GetConsumerPositionRequest {
        consumer: "billing".into(),
    };
    assert_eq!(
        events
            .clone()
            .get_consumer_position(get)
            .await
            .unwrap()
            .into_inner(),
        checkpoint
    );
    let (a, ..) = some_activity(&server.client()).await;
    server.client().write_barrier("two").await.unwrap();
    let after_restart = until_barrier(&mut subscribe(&events, as_consumer("billing")).await, "two").await;
    let Some(Body::AccountOpened(opened)) = &after_restart[0].event else {
        panic!("{after_restart:?}")
    };
    assert_eq!(opened.id, a.id);
    // Checkpoints take positions in the log (the two commits follow the
    // barrier `one`), but are never delivered.
    assert_eq!(after_restart[0].position, checkpoint.position + 3);
    let all = history(&events, "two").await;
    assert!(all.iter().all(|e| e.category != "consumer"));
    let expected: Vec<pb::EventEnvelope> = all
        .into_iter()
        .filter(|e| e.position > checkpoint.position)
        .collect();
    assert_eq!(after_restart, expected);
}
