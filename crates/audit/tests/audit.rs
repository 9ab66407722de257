#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! The auditor over a realistic history made by the engine, then tampered
//! with in memory: each test asserts the rule and the exact location.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use paycore_audit::{Auditor, DamagedFrame, Limit, Location, LostEvents, Report, Rule};
use paycore_domain::account::AccountCommand;
use paycore_domain::events::{TransactionRecorded, TransferCreated};
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::{
    AccountId, CommandEnvelope, Currency, Environment, Event, Meta, Money, ProjectId, Timestamp, Transaction,
    TransactionId, TransactionKind, TransferId,
};
use paycore_engine::{Engine, EngineConfig};
use paycore_store::{EventMetadata, EventStore, GENESIS_HASH, MemoryStore, RecordedEvent, chain_hash};
use uuid::Uuid;

const NOW: i64 = 1_700_000_000_000_000;

struct History {
    events: Vec<RecordedEvent>,
    project: ProjectId,
    /// No allowance; 1000 then −300 (to b) → 700, then a meta update.
    a: AccountId,
    /// Allowance on; +300 from a, −50 to c → 250.
    b: AccountId,
    /// No allowance; +50 from b.
    c: AccountId,
}

fn id() -> Uuid {
    Uuid::now_v7()
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

async fn history() -> History {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let engine = Engine::start(store.clone(), EngineConfig::default());
    let project = ProjectId::from_uuid(id());
    let run = |command| {
        let engine = engine.clone();
        async move {
            engine
                .execute(CommandEnvelope {
                    project_id: project,
                    now: Timestamp::from_micros(NOW),
                    idempotency: None,
                    command,
                })
                .await
                .unwrap();
        }
    };
    run(ProjectCommand::CreateProject {
        id: project,
        name: "Audit".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    }
    .into())
    .await;
    let mut accounts = Vec::new();
    for allow in [false, true, false] {
        let account = AccountId::from_uuid(id());
        run(AccountCommand::CreateAccount {
            id: account,
            currency: Currency::EUR,
            customer_id: None,
            allow_negative_balance: allow,
            meta: Meta::default(),
        }
        .into())
        .await;
        accounts.push(account);
    }
    let (a, b, c) = (accounts[0], accounts[1], accounts[2]);
    run(AccountCommand::UpdateAccount {
        id: a,
        allow_negative_balance: None,
        meta: None,
        balance: Some((eur(1000), TransactionId::from_uuid(id()))),
    }
    .into())
    .await;
    for (from, to, value) in [(a, b, 300), (b, c, 50)] {
        run(TransferCommand::CreateTransfer {
            id: TransferId::from_uuid(id()),
            source_account_id: from,
            destination_account_id: to,
            value: eur(value),
            meta: Meta::default(),
            source_transaction_id: TransactionId::from_uuid(id()),
            destination_transaction_id: TransactionId::from_uuid(id()),
            pending: None,
        }
        .into())
        .await;
    }
    for round in 0..2 {
        let meta = round_meta(round);
        run(AccountCommand::UpdateAccount {
            id: a,
            allow_negative_balance: None,
            meta: Some(meta),
            balance: None,
        }
        .into())
        .await;
    }
    let events = store.read_all(0, 10_000).await.unwrap();
    History {
        events,
        project,
        a,
        b,
        c,
    }
}

fn round_meta(round: u32) -> Meta {
    let mut violations = paycore_domain::Violations::default();
    Meta::parse([("round".to_owned(), round.to_string())], "meta", &mut violations).unwrap()
}

fn audit(events: &[RecordedEvent]) -> Report {
    let mut auditor = Auditor::new(Limit::whole_log());
    for batch in events.chunks(3) {
        auditor.push_batch(batch);
    }
    auditor.finish()
}

/// Renumbers positions from 0 and recomputes every hash.
fn rechain(events: &mut [RecordedEvent]) {
    let mut prev = GENESIS_HASH;
    for (position, event) in events.iter_mut().enumerate() {
        event.position = position as u64;
        event.hash = chain_hash(&prev, event);
        prev = event.hash;
    }
}

fn decode(event: &RecordedEvent) -> Event {
    Event::decode(&event.event_type, event.schema_version, &event.payload).unwrap()
}

fn set_payload(event: &mut RecordedEvent, new: &Event) {
    let encoded = new.encode();
    event.event_type = encoded.event_type.into();
    event.schema_version = encoded.schema_version;
    event.payload = Bytes::from(encoded.payload);
}

/// Index of the first event matching `pick`.
fn find(events: &[RecordedEvent], pick: impl Fn(&Event) -> bool) -> usize {
    events.iter().position(|e| pick(&decode(e))).unwrap()
}

fn tx_of(event: &Event) -> Option<&Transaction> {
    match event {
        Event::TransactionRecorded(TransactionRecorded { transaction }) => Some(transaction),
        _ => None,
    }
}

/// Appends `event` to `stream` at its next version and re-chains.
fn append(events: &mut Vec<RecordedEvent>, stream: String, event: &Event) -> Location {
    let version = events.iter().filter(|e| e.stream.as_str() == stream).count() as u64;
    let encoded = event.encode();
    events.push(RecordedEvent {
        position: events.len() as u64,
        stream: stream.into(),
        version,
        event_type: encoded.event_type.into(),
        schema_version: encoded.schema_version,
        recorded_at_micros: NOW,
        metadata: Arc::new(EventMetadata::default()),
        payload: Bytes::from(encoded.payload),
        hash: [0; 32],
        last_in_commit: true,
    });
    rechain(events);
    Location::of(events.last().unwrap())
}

fn transaction(h: &History, account: AccountId, kind: TransactionKind, value: i64, after: i64) -> Event {
    Event::TransactionRecorded(TransactionRecorded {
        transaction: Transaction {
            id: TransactionId::from_uuid(id()),
            account_id: account,
            project_id: h.project,
            kind,
            value: eur(value),
            balance_after: eur(after),
            created_at: Timestamp::from_micros(NOW),
        },
    })
}

/// The violations as (rule, location) pairs.
fn found(report: &Report) -> Vec<(Rule, Option<Location>)> {
    report.violations.iter().map(|v| (v.rule, v.at.clone())).collect()
}

#[tokio::test]
async fn a_valid_history_has_no_violations() {
    let h = history().await;
    let report = audit(&h.events);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.events, h.events.len() as u64);
    assert_eq!(report.accounts[&h.a], eur(700));
    assert_eq!(report.accounts[&h.b], eur(250));
    assert_eq!(report.accounts[&h.c], eur(50));
    // Batch size does not matter.
    let mut one_by_one = Auditor::default();
    for event in &h.events {
        one_by_one.push(event);
    }
    assert!(one_by_one.finish().is_clean());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["violations"].as_array().unwrap().len(), 0);
    assert_eq!(json["accounts"][h.a.to_string()]["amount"], 700);
    assert_eq!(json["accounts"][h.a.to_string()]["currency"], "EUR");
}

#[tokio::test]
async fn an_edited_payload_breaks_the_hash_chain_at_that_position() {
    let h = history().await;
    let mut events = h.events.clone();
    let Event::ProjectCreated(mut created) = decode(&events[0]) else {
        panic!("position 0 is the project");
    };
    created.name = "Edited".into();
    set_payload(&mut events[0], &Event::ProjectCreated(created));
    let report = audit(&events);
    assert_eq!(
        found(&report),
        vec![(
            Rule::HashChain,
            Some(Location {
                stream: format!("project-{}", h.project),
                version: 0,
                position: 0
            })
        )]
    );
    // Flipping one byte of a later payload: the chain breaks there (and
    // the payload may no longer decode), nowhere else.
    let mut events = h.events.clone();
    let at = find(&events, |e| matches!(e, Event::TransferCreated(_)));
    let mut payload = events[at].payload.to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 0x01;
    events[at].payload = Bytes::from(payload);
    let report = audit(&events);
    let chain: Vec<_> = found(&report)
        .into_iter()
        .filter(|(rule, _)| *rule == Rule::HashChain)
        .collect();
    assert_eq!(chain, vec![(Rule::HashChain, Some(Location::of(&events[at])))]);
}

#[tokio::test]
async fn a_gap_in_positions_is_reported_where_it_is() {
    let h = history().await;
    let mut events = h.events.clone();
    events.remove(1);
    let report = audit(&events);
    assert_eq!(report.violations[0].rule, Rule::PositionsContiguous);
    assert_eq!(report.violations[0].at, Some(Location::of(&events[1])));
}

#[tokio::test]
async fn lost_events_are_one_finding_and_their_consequences_say_so() {
    let h = history().await;
    // The log loses the frame of the first transfer (a → b, 300): its
    // three events, one commit.
    let first = find(&h.events, |e| matches!(e, Event::TransferCreated(_)));
    let lost = first..first + 3;
    assert!(
        h.events[lost.clone()]
            .iter()
            .all(|e| e.recorded_at_micros == h.events[first].recorded_at_micros)
    );
    let frame = DamagedFrame {
        file: "data/log/segments/00000000000000000000.log".into(),
        offset: 4096,
        position: Some(first as u64),
    };
    let mut auditor = Auditor::new(Limit::whole_log());
    auditor.push_batch(&h.events[..lost.start]);
    auditor.push_lost(LostEvents {
        frame: frame.clone(),
        reason: "CRC mismatch".into(),
        resumes_at: Some(lost.end as u64),
    });
    auditor.push_batch(&h.events[lost.end..]);
    let report = auditor.finish();
    let rules: Vec<Rule> = report.violations.iter().map(|v| v.rule).collect();
    // The damage; the chain gap right after it; the two accounts whose
    // streams skip the lost legs (nothing about b's balance, which the lost
    // leg changed, and no transfer-leg finding: the transfer is gone whole).
    assert_eq!(
        rules,
        [
            Rule::LogIntact,
            Rule::HashChain,
            Rule::StreamVersionsContiguous,
            Rule::StreamVersionsContiguous
        ],
        "{report}"
    );
    let damage = &report.violations[0];
    assert_eq!(damage.damaged, Some(frame));
    assert!(damage.message.contains("CRC mismatch"), "{report}");
    assert!(
        damage
            .message
            .contains(&format!("positions {}..={} are lost", lost.start, lost.end - 1)),
        "{report}"
    );
    assert_eq!(report.violations[1].at, Some(Location::of(&h.events[lost.end])));
    assert!(
        report.violations[1]
            .message
            .contains("lost in the damaged frame at data/log/segments"),
        "{report}"
    );
    let streams: Vec<String> = report.violations[2..]
        .iter()
        .map(|v| v.at.as_ref().map(|at| at.stream.clone()).unwrap_or_default())
        .collect();
    assert_eq!(streams, [format!("account-{}", h.b), format!("account-{}", h.a)]);
    assert!(
        report.violations[2..]
            .iter()
            .all(|v| v.message.contains("probably in the events lost at")),
        "{report}"
    );
    // The text and JSON reports name file, offset and position.
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "[log_intact] at data/log/segments/00000000000000000000.log offset 4096 (position {first})"
        )),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let damage = &json["violations"][0];
    assert_eq!(damage["rule"], "log_intact");
    assert_eq!(damage["file"], "data/log/segments/00000000000000000000.log");
    assert_eq!(damage["offset"], 4096);
    assert_eq!(damage["position"], first);
}

#[tokio::test]
async fn an_account_whose_opening_was_lost_is_followed_from_its_next_transaction() {
    let h = history().await;
    // Account c's opening commit is lost; c appears again as the
    // destination of b's transfer.
    let opened = find(&h.events, |e| matches!(e, Event::AccountOpened(o) if o.id == h.c));
    let commit = h.events[opened].recorded_at_micros;
    let end = h.events[opened..]
        .iter()
        .position(|e| e.recorded_at_micros != commit)
        .map_or(h.events.len(), |n| opened + n);
    let mut auditor = Auditor::new(Limit::whole_log());
    auditor.push_batch(&h.events[..opened]);
    auditor.push_lost(LostEvents {
        frame: DamagedFrame {
            file: "segment".into(),
            offset: 8,
            position: Some(opened as u64),
        },
        reason: "CRC mismatch".into(),
        resumes_at: Some(end as u64),
    });
    auditor.push_batch(&h.events[end..]);
    let report = auditor.finish();
    let rules: Vec<Rule> = report.violations.iter().map(|v| v.rule).collect();
    assert_eq!(
        rules,
        [Rule::LogIntact, Rule::HashChain, Rule::StreamVersionsContiguous],
        "{report}"
    );
    assert_eq!(report.accounts[&h.c], eur(50), "{report}");
}

#[tokio::test]
async fn a_gap_in_a_stream_is_reported_at_the_next_event() {
    let h = history().await;
    let mut events = h.events.clone();
    // Drop the first meta update of account a, then re-chain so that only
    // the stream gap remains.
    let dropped = find(&events, |e| matches!(e, Event::AccountMetaUpdated(_)));
    let stream = events[dropped].stream.clone();
    assert_eq!(events[dropped].version, 3, "opened, magic, transfer leg, meta");
    events.remove(dropped);
    rechain(&mut events);
    let next = events
        .iter()
        .position(|e| e.stream == stream && e.version == 4)
        .unwrap();
    let report = audit(&events);
    assert_eq!(
        found(&report),
        vec![(
            Rule::StreamVersionsContiguous,
            Some(Location {
                stream: format!("account-{}", h.a),
                version: 4,
                position: next as u64
            })
        )]
    );
    assert!(report.violations[0].message.contains("expected version 3"));
}

#[tokio::test]
async fn an_unknown_event_type_and_a_future_schema_version_do_not_decode() {
    let h = history().await;
    let at = find(&h.events, |e| matches!(e, Event::AccountMetaUpdated(_)));

    let mut events = h.events.clone();
    events[at].event_type = "AccountRenamed".into();
    rechain(&mut events);
    let report = audit(&events);
    assert_eq!(
        found(&report),
        vec![(Rule::EventDecodes, Some(Location::of(&events[at])))]
    );
    assert!(report.violations[0].message.contains("unknown event type"));

    let mut events = h.events.clone();
    events[at].schema_version = 99;
    rechain(&mut events);
    let report = audit(&events);
    assert_eq!(
        found(&report),
        vec![(Rule::EventDecodes, Some(Location::of(&events[at])))]
    );
    assert!(report.violations[0].message.contains("schema version 99"));

    let mut events = h.events.clone();
    events[at].payload = Bytes::from_static(&[0xff, 0xff, 0xff]);
    rechain(&mut events);
    let report = audit(&events);
    assert_eq!(
        found(&report),
        vec![(Rule::EventDecodes, Some(Location::of(&events[at])))]
    );
    assert!(report.violations[0].message.contains("does not decode"));
}

#[tokio::test]
async fn a_balance_after_that_does_not_add_up() {
    let h = history().await;
    let mut events = h.events.clone();
    let at = find(&events, |e| tx_of(e).is_some_and(|tx| tx.account_id == h.c));
    let mut tx = *tx_of(&decode(&events[at])).unwrap();
    tx.balance_after = eur(51);
    set_payload(
        &mut events[at],
        &Event::TransactionRecorded(TransactionRecorded { transaction: tx }),
    );
    rechain(&mut events);
    let report = audit(&events);
    assert_eq!(
        found(&report),
        vec![(
            Rule::BalanceAfter,
            Some(Location {
                stream: format!("account-{}", h.c),
                version: 1,
                position: at as u64
            })
        )]
    );
    assert!(report.violations[0].message.contains("balance_after is 0.51 EUR"));
}

#[tokio::test]
async fn a_transfer_whose_legs_do_not_net_to_zero() {
    let h = history().await;
    let mut events = h.events.clone();
    // The credit of b → c says +0.51 (and c's balance agrees), the transfer 0.50.
    let at = find(&events, |e| {
        tx_of(e).is_some_and(|tx| {
            matches!(tx.kind, TransactionKind::TransferDestination(_)) && tx.account_id == h.c
        })
    });
    let mut tx = *tx_of(&decode(&events[at])).unwrap();
    tx.value = eur(51);
    tx.balance_after = eur(51);
    set_payload(
        &mut events[at],
        &Event::TransactionRecorded(TransactionRecorded { transaction: tx }),
    );
    rechain(&mut events);
    let report = audit(&events);
    let location = Some(Location::of(&events[at]));
    assert!(!report.violations.is_empty());
    assert!(
        found(&report)
            .iter()
            .all(|f| *f == (Rule::TransferLegs, location.clone())),
        "{report}"
    );
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.message.contains("do not net to zero"))
    );
}

#[tokio::test]
async fn a_transfer_missing_a_leg_is_reported_at_its_creation() {
    let h = history().await;
    let mut events = h.events.clone();
    let transfer = TransferId::from_uuid(id());
    let created = Event::TransferCreated(TransferCreated {
        id: transfer,
        project_id: h.project,
        source_account_id: h.a,
        destination_account_id: h.b,
        source_transaction_id: TransactionId::from_uuid(id()),
        destination_transaction_id: TransactionId::from_uuid(id()),
        value: eur(10),
        meta: Meta::default(),
        created_at: Timestamp::from_micros(NOW),
        exchange: None,
    });
    let at = append(&mut events, format!("transfer-{transfer}"), &created);
    append(
        &mut events,
        format!("account-{}", h.a),
        &transaction(&h, h.a, TransactionKind::TransferSource(transfer), -10, 690),
    );
    let report = audit(&events);
    assert_eq!(found(&report), vec![(Rule::TransferLegs, Some(at))]);
    assert!(
        report.violations[0]
            .message
            .contains("1 source and 0 destination")
    );
}

#[tokio::test]
async fn an_account_without_allowance_below_zero() {
    let h = history().await;
    let mut events = h.events.clone();
    // A consistent transfer of 7.10 from a (7.00, no allowance) to b.
    let transfer = TransferId::from_uuid(id());
    let created = Event::TransferCreated(TransferCreated {
        id: transfer,
        project_id: h.project,
        source_account_id: h.a,
        destination_account_id: h.b,
        source_transaction_id: TransactionId::from_uuid(id()),
        destination_transaction_id: TransactionId::from_uuid(id()),
        value: eur(710),
        meta: Meta::default(),
        created_at: Timestamp::from_micros(NOW),
        exchange: None,
    });
    append(&mut events, format!("transfer-{transfer}"), &created);
    let debit = append(
        &mut events,
        format!("account-{}", h.a),
        &transaction(&h, h.a, TransactionKind::TransferSource(transfer), -710, -10),
    );
    append(
        &mut events,
        format!("account-{}", h.b),
        &transaction(&h, h.b, TransactionKind::TransferDestination(transfer), 710, 960),
    );
    let report = audit(&events);
    assert_eq!(found(&report), vec![(Rule::NoNegativeBalance, Some(debit))]);
    assert_eq!(report.accounts[&h.a], eur(-10));
    // The same debit on b, which may go negative, is fine.
    let mut events = h.events.clone();
    append(
        &mut events,
        format!("account-{}", h.b),
        &transaction(&h, h.b, TransactionKind::Magic, -260, -10),
    );
    append(
        &mut events,
        format!("account-{}", h.c),
        &transaction(&h, h.c, TransactionKind::Magic, 10, 60),
    );
    assert!(audit(&events).is_clean());
}

#[tokio::test]
async fn a_project_sum_below_zero() {
    let h = history().await;
    let mut events = h.events.clone();
    // b may go negative, but the project's EUR total (10.00) may not.
    let at = append(
        &mut events,
        format!("account-{}", h.b),
        &transaction(&h, h.b, TransactionKind::Magic, -1_005, -755),
    );
    let report = audit(&events);
    assert_eq!(found(&report), vec![(Rule::ProjectTotalNonNegative, Some(at))]);
    assert!(report.violations[0].message.contains("-0.05 EUR"));
}

#[tokio::test]
async fn a_project_total_that_disagrees_with_the_balances() {
    let h = history().await;
    let mut events = h.events.clone();
    let at = find(&events, |e| matches!(e, Event::ProjectBalanceChanged(_)));
    let Event::ProjectBalanceChanged(mut changed) = decode(&events[at]) else {
        unreachable!()
    };
    changed.total_after = eur(999);
    set_payload(&mut events[at], &Event::ProjectBalanceChanged(changed));
    rechain(&mut events);
    let report = audit(&events);
    assert_eq!(
        found(&report),
        vec![(Rule::ProjectTotalMatches, Some(Location::of(&events[at])))]
    );
}

#[tokio::test]
async fn the_audit_stops_at_a_position_or_a_time() {
    let h = history().await;
    let mut auditor = Auditor::new(Limit {
        up_to_position: Some(4),
        up_to_timestamp: None,
    });
    let mut flows = Vec::new();
    for batch in h.events.chunks(3) {
        flows.push(auditor.push_batch(batch));
    }
    assert!(auditor.is_done());
    let report = auditor.finish();
    // The limit extends to the end of the append position 4 is in.
    let end = h
        .events
        .iter()
        .find(|e| e.position >= 4 && e.last_in_commit)
        .map(|e| e.position)
        .unwrap();
    assert_eq!(report.events, end + 1);
    assert_eq!(report.last_position, Some(end));
    assert!(!report.whole_log);
    assert!(report.is_clean(), "{report}");

    let mut events = h.events.clone();
    let mut stamps: HashMap<u64, i64> = HashMap::new();
    for (i, event) in events.iter_mut().enumerate() {
        event.recorded_at_micros = NOW + i as i64;
        stamps.insert(i as u64, event.recorded_at_micros);
    }
    rechain(&mut events);
    let mut auditor = Auditor::new(Limit {
        up_to_position: None,
        up_to_timestamp: Some(stamps[&2]),
    });
    auditor.push_batch(&events);
    let report = auditor.finish();
    assert_eq!(report.events, 3);
}
