#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! The two-phase transfer rules over a history of pending transfers (one
//! posted in part, one voided, one expired, one still pending) made by the
//! engine, then tampered with: each test asserts the rule and the location.

use std::sync::Arc;

use bytes::Bytes;
use paycore_audit::{Auditor, Limit, Location, Report, Rule};
use paycore_domain::account::AccountCommand;
use paycore_domain::events::{
    PendingPhase, PendingTransaction, PendingTransactionRecorded, PendingTransferExpired,
    PendingTransferPosted, TransactionRecorded,
};
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::{PendingTerms, TransferCommand};
use paycore_domain::*;
use paycore_engine::{Engine, EngineConfig};
use paycore_store::{EventMetadata, EventStore, GENESIS_HASH, MemoryStore, RecordedEvent, chain_hash};
use uuid::Uuid;

const NOW: i64 = 1_700_000_000_000_000;
const HOUR: i64 = 3_600_000_000;

fn id() -> Uuid {
    Uuid::now_v7()
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn tx() -> TransactionId {
    TransactionId::from_uuid(id())
}

struct History {
    events: Vec<RecordedEvent>,
    project: ProjectId,
    /// Funded with 1000; holds 400 for `open` at the end.
    payer: AccountId,
    payee: AccountId,
    posted: TransferId,
    open: TransferId,
}

/// Payer 1000. Pending 300 posted as 120; pending 200 voided; pending 100
/// expired; pending 400 still open (expires in an hour).
async fn history() -> History {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let engine = Engine::start(store.clone(), EngineConfig::default());
    let project = ProjectId::from_uuid(id());
    let run = |command: Command, at: i64| {
        let engine = engine.clone();
        async move {
            engine
                .execute(CommandEnvelope {
                    project_id: project,
                    now: Timestamp::from_micros(at),
                    idempotency: None,
                    command,
                })
                .await
                .unwrap();
        }
    };
    let create = ProjectCommand::CreateProject {
        id: project,
        name: "Two-phase".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    };
    run(create.into(), NOW).await;
    let (payer, payee) = (AccountId::from_uuid(id()), AccountId::from_uuid(id()));
    for account in [payer, payee] {
        let open = AccountCommand::CreateAccount {
            id: account,
            currency: Currency::EUR,
            customer_id: None,
            allow_negative_balance: false,
            meta: Meta::default(),
        };
        run(open.into(), NOW).await;
    }
    let fund = AccountCommand::UpdateAccount {
        id: payer,
        allow_negative_balance: None,
        meta: None,
        balance: Some((eur(1_000), tx())),
    };
    run(fund.into(), NOW).await;
    let pending = |value: i64, expires_at: i64| {
        let id = TransferId::from_uuid(id());
        let command = TransferCommand::CreateTransfer {
            id,
            source_account_id: payer,
            destination_account_id: payee,
            value: eur(value),
            meta: Meta::default(),
            source_transaction_id: tx(),
            destination_transaction_id: tx(),
            pending: Some(PendingTerms {
                expires_at: Timestamp::from_micros(expires_at),
            }),
        };
        (id, command)
    };
    let mut transfers = Vec::new();
    for value in [300, 200, 100] {
        let (id, command) = pending(value, NOW + HOUR);
        run(command.into(), NOW).await;
        transfers.push(id);
    }
    let post = TransferCommand::PostPendingTransfer {
        id: transfers[0],
        value: Some(eur(120)),
        source_transaction_id: tx(),
        destination_transaction_id: tx(),
    };
    run(post.into(), NOW).await;
    run(
        TransferCommand::VoidPendingTransfer { id: transfers[1] }.into(),
        NOW,
    )
    .await;
    run(
        TransferCommand::ExpirePendingTransfer { id: transfers[2] }.into(),
        NOW + HOUR,
    )
    .await;
    let (open, command) = pending(400, NOW + 2 * HOUR);
    run(command.into(), NOW + HOUR).await;
    History {
        events: store.read_all(0, 10_000).await.unwrap(),
        project,
        payer,
        payee,
        posted: transfers[0],
        open,
    }
}

fn audit(events: &[RecordedEvent]) -> Report {
    let mut auditor = Auditor::new(Limit::whole_log());
    for batch in events.chunks(4) {
        auditor.push_batch(batch);
    }
    auditor.finish()
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
    let mut prev = GENESIS_HASH;
    for event in events.iter_mut() {
        event.hash = chain_hash(&prev, event);
        prev = event.hash;
    }
    Location::of(events.last().unwrap())
}

fn found(report: &Report) -> Vec<(Rule, Option<Location>)> {
    report.violations.iter().map(|v| (v.rule, v.at.clone())).collect()
}

fn decoded(h: &History) -> Vec<Event> {
    h.events
        .iter()
        .map(|e| Event::decode(&e.event_type, e.schema_version, &e.payload).unwrap())
        .collect()
}

/// The payer's posted balance and pending debits at the end.
fn payer(h: &History) -> (i64, i64) {
    let mut balance = 0;
    let mut debits = 0;
    for event in decoded(h) {
        match event {
            Event::TransactionRecorded(TransactionRecorded { transaction })
                if transaction.account_id == h.payer =>
            {
                balance = transaction.balance_after.amount;
            }
            Event::PendingTransactionRecorded(recorded) if recorded.pending.account_id == h.payer => {
                debits = recorded.pending.pending_debits_after.amount;
            }
            _ => {}
        }
    }
    (balance, debits)
}

fn hold(h: &History, transfer: TransferId, phase: PendingPhase, value: i64, debits_after: i64) -> Event {
    Event::PendingTransactionRecorded(PendingTransactionRecorded {
        pending: PendingTransaction {
            id: tx(),
            transfer_id: transfer,
            account_id: h.payer,
            project_id: h.project,
            phase,
            value: eur(value),
            pending_debits_after: eur(debits_after),
            pending_credits_after: eur(0),
            created_at: Timestamp::from_micros(NOW),
        },
    })
}

#[tokio::test]
async fn a_history_of_every_phase_has_no_violations() {
    let h = history().await;
    let report = audit(&h.events);
    assert!(report.is_clean(), "{report}");
    // 1000 − 120 posted; 400 still held.
    assert_eq!(payer(&h), (880, 400));
    assert_eq!(report.accounts[&h.payee], eur(120));
}

#[tokio::test]
async fn a_second_post_is_reported_where_written() {
    let mut h = history().await;
    let again = Event::PendingTransferPosted(PendingTransferPosted {
        value: eur(10),
        source_transaction_id: tx(),
        destination_transaction_id: tx(),
        posted_at: Timestamp::from_micros(NOW),
    });
    let at = append(&mut h.events, format!("transfer-{}", h.posted), &again);
    let report = audit(&h.events);
    assert_eq!(
        found(&report),
        vec![(Rule::PendingTransferEndsOnce, Some(at))],
        "{report}"
    );
}

#[tokio::test]
async fn a_post_beyond_the_hold_is_reported() {
    let mut h = history().await;
    let posted = Event::PendingTransferPosted(PendingTransferPosted {
        value: eur(401),
        source_transaction_id: tx(),
        destination_transaction_id: tx(),
        posted_at: Timestamp::from_micros(NOW + HOUR),
    });
    let at = append(&mut h.events, format!("transfer-{}", h.open), &posted);
    let report = audit(&h.events);
    let findings = found(&report);
    assert!(
        findings.contains(&(Rule::PendingTransferPostedWithinHold, Some(at.clone()))),
        "{report}"
    );
    // Nor were its holds released, nor its legs written.
    assert!(
        findings
            .iter()
            .any(|(rule, _)| *rule == Rule::PendingTransferHoldsReleased),
        "{report}"
    );
    assert!(
        findings
            .iter()
            .filter(|(rule, _)| *rule == Rule::PendingTransferPostedWithinHold)
            .count()
            >= 2,
        "{report}"
    );
}

#[tokio::test]
async fn an_expiry_that_releases_nothing_is_reported() {
    let mut h = history().await;
    let expired = Event::PendingTransferExpired(PendingTransferExpired {
        expired_at: Timestamp::from_micros(NOW + 2 * HOUR),
    });
    append(&mut h.events, format!("transfer-{}", h.open), &expired);
    let report = audit(&h.events);
    let findings = found(&report);
    assert_eq!(findings.len(), 2, "{report}");
    assert!(
        findings
            .iter()
            .all(|(rule, _)| *rule == Rule::PendingTransferHoldsReleased),
        "{report}"
    );
}

#[tokio::test]
async fn an_early_expiry_is_reported() {
    let mut h = history().await;
    let early = Event::PendingTransferExpired(PendingTransferExpired {
        expired_at: Timestamp::from_micros(NOW + 2 * HOUR - 1),
    });
    let at = append(&mut h.events, format!("transfer-{}", h.open), &early);
    let report = audit(&h.events);
    assert!(
        found(&report).contains(&(Rule::PendingTransferEndsOnce, Some(at))),
        "{report}"
    );
}

#[tokio::test]
async fn pending_totals_that_do_not_replay_are_reported() {
    let mut h = history().await;
    // Releasing the open hold, but saying 50 is still held.
    let wrong = hold(&h, h.open, PendingPhase::Voided, -400, 50);
    let at = append(&mut h.events, format!("account-{}", h.payer), &wrong);
    let report = audit(&h.events);
    assert!(
        found(&report).contains(&(Rule::PendingBalances, Some(at))),
        "{report}"
    );
}

#[tokio::test]
async fn a_debit_into_held_money_is_reported() {
    let mut h = history().await;
    // 880 posted, 400 held: taking 500 leaves 380 posted, −20 available.
    let (balance, _) = payer(&h);
    let debit = Event::TransactionRecorded(TransactionRecorded {
        transaction: Transaction {
            id: tx(),
            account_id: h.payer,
            project_id: h.project,
            kind: TransactionKind::Magic,
            value: eur(-500),
            balance_after: eur(balance - 500),
            created_at: Timestamp::from_micros(NOW),
        },
    });
    let at = append(&mut h.events, format!("account-{}", h.payer), &debit);
    let report = audit(&h.events);
    assert_eq!(
        found(&report),
        vec![(Rule::PendingBalances, Some(at))],
        "{report}"
    );
}

/// A limit inside a hold's or a post's append extends to the append's end:
/// the cut never leaves a hold without its transfer or a post without its
/// legs.
#[tokio::test]
async fn a_limit_inside_an_append_audits_the_append_whole() {
    let h = history().await;
    let cuts: Vec<u64> = h
        .events
        .iter()
        .filter(|e| matches!(&*e.event_type, "PendingTransferCreated" | "PendingTransferPosted"))
        .map(|e| e.position)
        .collect();
    assert!(cuts.len() >= 2, "the history has holds and a post");
    for cut in cuts {
        let end = h
            .events
            .iter()
            .find(|e| e.position >= cut && e.last_in_commit)
            .map(|e| e.position)
            .unwrap();
        assert!(end > cut, "the append goes on after position {cut}");
        let mut auditor = Auditor::new(Limit {
            up_to_position: Some(cut),
            up_to_timestamp: None,
        });
        for batch in h.events.chunks(4) {
            auditor.push_batch(batch);
        }
        let report = auditor.finish();
        assert!(report.is_clean(), "cut at {cut}: {report}");
        assert_eq!(report.last_position, Some(end), "cut at {cut}");
    }
}
