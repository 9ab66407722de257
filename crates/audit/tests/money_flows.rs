#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! The money-flow rules over a history of card payins, refunds, bank
//! payouts, bank payins and an exchange, made by the engine, then tampered
//! with: each test asserts the rule and the exact location.

use std::sync::Arc;

use bytes::Bytes;
use paycore_audit::{Auditor, Limit, Location, Report, Rule};
use paycore_domain::account::AccountCommand;
use paycore_domain::bank_payin::BankPayinCommand;
use paycore_domain::bank_payin::IncomingBankTransfer;
use paycore_domain::bank_payout::BankPayoutCommand;
use paycore_domain::bank_payout::{NewBankPayout, PayoutDestinationSource};
use paycore_domain::card::CardSource;
use paycore_domain::card::{CardInfo, CardNumber, Expiry};
use paycore_domain::card_payin::CardPayinCommand;
use paycore_domain::card_payin::{NetworkVerdict, NewCardPayin, NewRefund, PayinAuthorization};
use paycore_domain::events::{BankAccountInfo, CardPayinRefundChanged, TransactionRecorded};
use paycore_domain::fx_rate::FxRateCommand;
use paycore_domain::kernel::bank::{Concept, PayinReferenceCode};
use paycore_domain::kernel::fx::Rate;
use paycore_domain::kernel::iban::Iban;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::*;
use paycore_engine::{Engine, EngineConfig};
use paycore_store::{EventMetadata, EventStore, GENESIS_HASH, MemoryStore, RecordedEvent, chain_hash};
use uuid::Uuid;

const NOW: i64 = 1_700_000_000_000_000;

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
    account: AccountId,
    payin: CardPayinId,
    failed_refund: CardPayinRefundId,
    returned_payout: BankPayoutId,
}

/// Payin 1000 settled; refund 300 failed; refund 200; payout 100 failed;
/// payout 50 completed then returned; bank payin 70; EUR→USD exchange.
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
        name: "Flows".into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    }
    .into())
    .await;
    let account = AccountId::from_uuid(id());
    let dollars = AccountId::from_uuid(id());
    for (account, currency) in [(account, Currency::EUR), (dollars, Currency::USD)] {
        run(AccountCommand::CreateAccount {
            id: account,
            currency,
            customer_id: None,
            allow_negative_balance: false,
            meta: Meta::default(),
        }
        .into())
        .await;
    }
    let number = CardNumber::parse("4242424242424242").unwrap();
    let card_info = CardInfo::new(&number, Expiry::new(12, 2030, 2023, 11).unwrap(), &[7; 32]);
    let payin = CardPayinId::from_uuid(id());
    run(CardPayinCommand::CreateCardPayin(NewCardPayin {
        id: payin,
        account_id: account,
        source: CardSource::Info(card_info),
        value: eur(1000),
        authorization: PayinAuthorization::Direct(NetworkVerdict::Approved),
        meta: Meta::default(),
    })
    .into())
    .await;
    run(CardPayinCommand::SettleCardPayin {
        id: payin,
        transaction_id: tx(),
    }
    .into())
    .await;
    let mut refunds = Vec::new();
    for value in [300, 200] {
        let refund = CardPayinRefundId::from_uuid(id());
        run(CardPayinCommand::CreateCardPayinRefund(NewRefund {
            id: refund,
            card_payin_id: payin,
            value: Some(eur(value)),
            account_id: None,
            transaction_id: tx(),
            meta: Meta::default(),
        })
        .into())
        .await;
        refunds.push(refund);
    }
    run(CardPayinCommand::FailCardPayinRefund {
        id: refunds[0],
        failure_transaction_id: tx(),
    }
    .into())
    .await;
    let info = BankAccountInfo {
        iban: Iban::parse("ES9121000418450200051332").unwrap(),
        beneficiary_name: "Pepito Martinez".into(),
    };
    let mut payouts = Vec::new();
    for (value, entropy) in [(100, 1), (50, 2)] {
        let payout = BankPayoutId::from_uuid(id());
        run(BankPayoutCommand::CreateBankPayout(NewBankPayout {
            id: payout,
            account_id: account,
            destination: PayoutDestinationSource::Info(info.clone()),
            concept: Concept::parse("Payout").unwrap(),
            value: eur(value),
            meta: Meta::default(),
            transaction_id: tx(),
            miniref_entropy: [entropy; 8],
        })
        .into())
        .await;
        payouts.push(payout);
    }
    run(BankPayoutCommand::FailBankPayout {
        id: payouts[0],
        failure_transaction_id: tx(),
    }
    .into())
    .await;
    run(BankPayoutCommand::CompleteBankPayout { id: payouts[1] }.into()).await;
    run(BankPayoutCommand::ReturnBankPayout {
        id: payouts[1],
        failure_transaction_id: tx(),
    }
    .into())
    .await;
    let reference = BankPayinReferenceId::from_uuid(id());
    let code = PayinReferenceCode::from_index(4242);
    run(BankPayinCommand::CreateBankPayinReference {
        id: reference,
        account_id: account,
        candidates: vec![code],
        meta: Meta::default(),
    }
    .into())
    .await;
    run(BankPayinCommand::ReceiveBankPayin(IncomingBankTransfer {
        id: BankPayinId::from_uuid(id()),
        concept: Concept::parse(&format!("Invoice 7 {code}")).unwrap(),
        value: eur(70),
        transaction_id: tx(),
        meta: Meta::default(),
    })
    .into())
    .await;
    run(FxRateCommand::SetFxRate {
        from: Currency::EUR,
        to: Currency::USD,
        mid_rate: Rate::parse("1.0842").unwrap(),
        spread_bps: 30,
    }
    .into())
    .await;
    run(TransferCommand::CreateTransfer {
        id: TransferId::from_uuid(id()),
        source_account_id: account,
        destination_account_id: dollars,
        value: eur(333),
        meta: Meta::default(),
        source_transaction_id: tx(),
        destination_transaction_id: tx(),
        pending: None,
    }
    .into())
    .await;
    History {
        events: store.read_all(0, 10_000).await.unwrap(),
        project,
        account,
        payin,
        failed_refund: refunds[0],
        returned_payout: payouts[1],
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

/// The account's balance at the end of the history.
fn balance(h: &History) -> i64 {
    h.events
        .iter()
        .filter_map(
            |e| match Event::decode(&e.event_type, e.schema_version, &e.payload).unwrap() {
                Event::TransactionRecorded(TransactionRecorded { transaction })
                    if transaction.account_id == h.account =>
                {
                    Some(transaction.balance_after.amount)
                }
                _ => None,
            },
        )
        .last()
        .unwrap()
}

#[tokio::test]
async fn a_history_of_every_money_flow_has_no_violations() {
    let h = history().await;
    let report = audit(&h.events);
    assert!(report.is_clean(), "{report}");
    // 1000 − 200 (refund) − 100 + 100 (failed payout) − 50 + 50 (returned)
    // + 70 (bank payin) − 333 (exchange) = 537.
    assert_eq!(balance(&h), 537);
}

#[tokio::test]
async fn a_failure_credited_twice_is_reported_at_the_second_credit() {
    let mut h = history().await;
    let extra = Event::TransactionRecorded(TransactionRecorded {
        transaction: Transaction {
            id: tx(),
            account_id: h.account,
            project_id: h.project,
            kind: TransactionKind::BankPayoutFailure(h.returned_payout),
            value: eur(50),
            balance_after: eur(balance(&h) + 50),
            created_at: Timestamp::from_micros(NOW),
        },
    });
    let at = append(&mut h.events, format!("account-{}", h.account), &extra);
    let report = audit(&h.events);
    assert_eq!(
        found(&report),
        vec![(Rule::FailureCreditedOnce, Some(at))],
        "{report}"
    );
}

#[tokio::test]
async fn a_refund_credit_back_without_a_failure_is_reported() {
    let mut h = history().await;
    let refund = CardPayinRefundId::from_uuid(id());
    let extra = Event::TransactionRecorded(TransactionRecorded {
        transaction: Transaction {
            id: tx(),
            account_id: h.account,
            project_id: h.project,
            kind: TransactionKind::CardPayinRefundFailure(refund),
            value: eur(10),
            balance_after: eur(balance(&h) + 10),
            created_at: Timestamp::from_micros(NOW),
        },
    });
    let at = append(&mut h.events, format!("account-{}", h.account), &extra);
    let report = audit(&h.events);
    assert_eq!(
        found(&report),
        vec![(Rule::FailureCreditedOnce, Some(at))],
        "{report}"
    );
}

#[tokio::test]
async fn refunds_beyond_the_payin_are_reported_where_recorded() {
    let mut h = history().await;
    // The failed refund's 300 counted again: the recorded total is 500
    // while the live refunds add up to 200, and 1,100 > 1,000.
    let changed = Event::CardPayinRefundChanged(CardPayinRefundChanged {
        refund_id: h.failed_refund,
        delta: eur(900),
        refunded_value_after: eur(1100),
    });
    let at = append(&mut h.events, format!("cardpayin-{}", h.payin), &changed);
    let report = audit(&h.events);
    assert_eq!(
        found(&report),
        vec![
            (Rule::RefundsWithinPayin, Some(at.clone())),
            (Rule::RefundsWithinPayin, Some(at))
        ],
        "{report}"
    );
}
