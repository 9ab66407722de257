//! Aggregated accounts and their transactions: discovery (disabled, name
//! only, until the end user consents), archiving, batches of transactions
//! recorded once however often the bank shows them, pending replaced by
//! booked, removals, the 5-year window, the audit's rules, and the measured
//! size of a busy account's state.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::ledger::assert_not_found;
use common::open_banking::*;
use common::*;
use paycore_domain::aggregated_account::*;
use paycore_domain::aggregation_connection::{AggregationConnectionCommand, ConnectionStatus};
use paycore_domain::aggregation_import::{AggregationImportCommand, HISTORY_LIMIT_DAYS};
use paycore_domain::kernel::date::Date;
use paycore_domain::kernel::error::Refusal;
use paycore_domain::*;
use proptest::prelude::*;

fn enable(id: AggregatedAccountId) -> Command {
    AggregatedAccountCommand::EnableAggregatedAccount { id }.into()
}

fn day(n: i64) -> Date {
    today().plus_days(-n).unwrap()
}

#[test]
fn a_discovered_account_is_disabled_and_keeps_only_its_name() {
    let mut world = World::new();
    let connection = world.updating_connection(1);
    let events = world.events(sync(
        connection,
        vec![
            found(aacc(1), "ACC-1", "Current account"),
            found(aacc(2), "ACC-2", "Savings"),
        ],
    ));
    let streams: Vec<String> = events.iter().map(|(stream, _)| stream.name()).collect();
    assert_eq!(
        streams,
        [
            format!("aggregatedaccount-{}", aacc(1)),
            format!("aggregatedaccount-{}", aacc(2)),
            format!("aggregationconnection-{connection}"),
        ]
    );
    let account = world.account(aacc(1));
    assert!(account.is_disabled() && !account.is_archived());
    assert_eq!(account.personal.name, "Current account");
    assert_eq!(account.personal.bank_account_id, bank_id("ACC-1"));
    assert_eq!(
        (account.personal.identifier.clone(), account.personal.owners.len()),
        (None, 0)
    );
    assert!(account.balances.is_empty());
    assert_eq!((account.customer_id, account.connection_id), (cus(C), connection));
    assert_eq!(world.connection(connection).accounts, [aacc(1), aacc(2)]);
    // The same list again: nothing new, nothing written (new IDs unused).
    let again = world.events(sync(
        connection,
        vec![
            found(aacc(3), "ACC-1", "Current account"),
            found(aacc(4), "ACC-2", "Savings"),
        ],
    ));
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn bank_data_is_recorded_only_while_updating() {
    let mut world = World::new();
    let connection = world.updating_connection(1);
    world.ok(prj(P), status(connection, ConnectionStatus::Connected));
    assert_refused(
        world.run(P, sync(connection, vec![found(aacc(1), "ACC-1", "Main")])),
        Refusal::ConnectionNotUpdating,
    );
    world.ok(prj(P), status(connection, ConnectionStatus::Updating));
    world.ok(prj(P), sync(connection, vec![found(aacc(1), "ACC-1", "Main")]));
    world.ok(prj(P), enable(aacc(1)));
    world.ok(prj(P), status(connection, ConnectionStatus::Connected));
    assert_refused(
        world.run(P, record(aacc(1), vec![booked("T1", day(1), -100)], &[])),
        Refusal::ConnectionNotUpdating,
    );
}

#[test]
fn enabling_needs_the_connections_live_consent() {
    let mut world = World::new();
    let id = conn(1);
    world.ok(prj(P), create_connection(id, cus(C), Some(bank())));
    world.ok(prj(P), status(id, ConnectionStatus::Connecting));
    world.ok(prj(P), status(id, ConnectionStatus::Updating));
    world.ok(prj(P), sync(id, vec![found(aacc(1), "ACC-1", "Main")]));
    assert_refused(world.run(P, enable(aacc(1))), Refusal::ConsentMissing);
    world.ok(prj(P), grant(id, 1));
    world.advance(DAY);
    assert_refused(world.run(P, enable(aacc(1))), Refusal::ConsentExpired);
    world.ok(prj(P), grant(id, 180));
    assert_eq!(world.events(enable(aacc(1))).len(), 1);
    assert_eq!(world.account(aacc(1)).enabled_at, Some(world.now));
    assert!(world.events(enable(aacc(1))).is_empty());
    assert_not_found(world.run(OTHER, enable(aacc(1))), "aggregated account", aacc(1));
    assert_not_found(world.run(P, enable(aacc(9))), "aggregated account", aacc(9));
}

#[test]
fn after_consent_a_sync_records_details_and_balances_once() {
    let mut world = World::new();
    let (connection, account) = world.enabled_account();
    let full = found(aacc(7), "ACC-1", "Current account");
    let events = world.events(sync(connection, vec![full.clone()]));
    assert_eq!(events.len(), 1);
    assert!(matches!(&events[0].1, Event::AggregatedAccountUpdated(_)));
    let state = world.account(account);
    assert_eq!(state.personal, full.personal);
    assert_eq!(state.balances, full.balances);
    assert!(world.events(sync(connection, vec![full.clone()])).is_empty());
    let mut moved = full;
    moved.balances[0].amount = eur(100);
    assert_eq!(world.events(sync(connection, vec![moved])).len(), 1);
    assert_eq!(world.account(account).balances[0].amount, eur(100));
}

#[test]
fn an_account_no_longer_found_is_archived_and_comes_back_when_found() {
    let mut world = World::new();
    let (connection, account) = world.enabled_account();
    let full = found(aacc(7), "ACC-1", "Current account");
    world.ok(prj(P), sync(connection, vec![full.clone()]));
    world.advance(60);
    let events = world.events(sync(connection, vec![found(aacc(2), "ACC-2", "New card")]));
    assert!(
        events
            .iter()
            .any(|(s, e)| *s == StreamRef::AggregatedAccount(account)
                && matches!(e, Event::AggregatedAccountArchived(_)))
    );
    assert_eq!(world.account(account).archived_at, Some(world.now));
    // Still readable, but no transactions and no consent while archived.
    assert_refused(
        world.run(P, record(account, vec![booked("T1", day(1), -100)], &[])),
        Refusal::AggregatedAccountArchived,
    );
    assert_refused(world.run(P, enable(account)), Refusal::AggregatedAccountArchived);
    // Archived once, however many syncs miss it.
    assert!(
        world
            .events(sync(connection, vec![found(aacc(3), "ACC-2", "New card")]))
            .is_empty()
    );
    let events = world.events(sync(connection, vec![full, found(aacc(3), "ACC-2", "New card")]));
    assert_eq!(events.len(), 1);
    assert!(matches!(events[0].1, Event::AggregatedAccountUnarchived(_)));
    assert_eq!(world.account(account).archived_at, None);
    world.ok(prj(P), record(account, vec![booked("T1", day(1), -100)], &[]));
}

#[test]
fn sync_input_is_checked_whole() {
    let mut world = World::new();
    let connection = world.updating_connection(1);
    let mut bad = found(aacc(1), "ACC-1", " ");
    bad.balances.push(Balance {
        balance_type: BalanceType::ClosingBooked,
        amount: usd(1),
        date: today(),
    });
    assert_eq!(
        invalid_fields(world.run(P, sync(connection, vec![bad, found(aacc(1), "ACC-1", "Again")]))),
        [
            "accounts[0].personal.name",
            "accounts[0].balances[1].amount.currency",
            "accounts[0].balances[1].balance_type",
            "accounts[1].personal.bank_account_id",
            "accounts[1].new_id",
        ]
    );
    world.ok(prj(P), sync(connection, vec![found(aacc(1), "ACC-1", "Main")]));
    let mut usd_now = found(aacc(2), "ACC-1", "Main");
    usd_now.currency = Currency::USD;
    usd_now.balances.clear();
    assert_eq!(
        invalid_fields(world.run(P, sync(connection, vec![usd_now]))),
        ["accounts[0].currency"]
    );
    // A new ID already in use is refused, not overwritten.
    world.ok(prj(P), create_connection(conn(2), cus(C), Some(bank())));
    world.ok(prj(P), status(conn(2), ConnectionStatus::Connecting));
    world.ok(prj(P), status(conn(2), ConnectionStatus::Updating));
    match world.run(P, sync(conn(2), vec![found(aacc(1), "OTHER-ACC", "Other")])) {
        Err(DomainError::AlreadyExists {
            kind: "aggregated account",
            ..
        }) => {}
        other => panic!("expected already exists, got {other:?}"),
    }
}

#[test]
fn no_transaction_on_a_disabled_account() {
    let mut world = World::new();
    let connection = world.updating_connection(1);
    world.ok(prj(P), sync(connection, vec![found(aacc(1), "ACC-1", "Main")]));
    assert_refused(
        world.run(P, record(aacc(1), vec![booked("T1", day(1), -100)], &[])),
        Refusal::AggregatedAccountDisabled,
    );
}

#[test]
fn a_batch_is_one_event_and_each_transaction_is_recorded_once() {
    let mut world = World::new();
    let (_, account) = world.enabled_account();
    let page: Vec<ImportedTransaction> = (0..1_000)
        .map(|i| booked(&format!("T{i}"), day(i % 400), -(i + 1)))
        .collect();
    let events = world.events(record(account, page.clone(), &[]));
    assert_eq!(events.len(), 1);
    let Event::AggregatedTransactionsRecorded(batch) = &events[0].1 else {
        panic!("expected a batch, got {:?}", events[0].1);
    };
    assert_eq!(batch.transactions.len(), 1_000);
    assert_eq!(batch.transactions[3].id, transaction_id(account, &bank_id("T3")));
    assert_eq!(batch.transactions[3].personal.description, "card payment T3");
    // The same page again, and again: nothing new, nothing written.
    assert!(world.events(record(account, page.clone(), &[])).is_empty());
    assert!(world.events(record(account, page[..10].to_vec(), &[])).is_empty());
    // An overlapping page records only what is new, under stable IDs.
    let overlap: Vec<ImportedTransaction> = (990..1_010)
        .map(|i| booked(&format!("T{i}"), day(1), -1))
        .collect();
    let events = world.events(record(account, overlap, &[]));
    let Event::AggregatedTransactionsRecorded(batch) = &events[0].1 else {
        panic!("expected a batch");
    };
    let ids: Vec<_> = batch
        .transactions
        .iter()
        .map(|t| t.bank_transaction_id.to_string())
        .collect();
    assert_eq!(ids, (1_000..1_010).map(|i| format!("T{i}")).collect::<Vec<_>>());
    assert_eq!(world.account(account).transactions.recorded(), 1_010);
    // A repeat inside one batch counts once.
    let events = world.events(record(
        account,
        vec![booked("X", day(1), -5), booked("X", day(1), -5)],
        &[],
    ));
    let Event::AggregatedTransactionsRecorded(batch) = &events[0].1 else {
        panic!("expected a batch");
    };
    assert_eq!(batch.transactions.len(), 1);
}

#[test]
fn stable_ids_differ_between_accounts() {
    let first = transaction_id(aacc(1), &bank_id("T1"));
    assert_eq!(first, transaction_id(aacc(1), &bank_id("T1")));
    assert_ne!(first, transaction_id(aacc(2), &bank_id("T1")));
    assert_ne!(first, transaction_id(aacc(1), &bank_id("T2")));
    assert_eq!(first.uuid().get_version_num(), 8);
    assert!(first.to_string().starts_with("atx_"));
}

#[test]
fn a_pending_transaction_is_replaced_by_its_booked_version() {
    let mut world = World::new();
    let (_, account) = world.enabled_account();
    world.ok(
        prj(P),
        record(
            account,
            vec![pending("P1", day(1), -900), pending("P2", day(1), -50)],
            &[],
        ),
    );
    // Pending again: already recorded.
    assert!(
        world
            .events(record(account, vec![pending("P1", day(1), -900)], &[]))
            .is_empty()
    );
    // Booked under the same bank ID: the same paycore ID, replacing itself.
    let mut posted = booked("B2", day(0), -55);
    posted.replaces_pending = Some(bank_id("P2"));
    let events = world.events(record(account, vec![booked("P1", day(0), -900), posted], &[]));
    let Event::AggregatedTransactionsRecorded(batch) = &events[0].1 else {
        panic!("expected a batch");
    };
    let p1 = transaction_id(account, &bank_id("P1"));
    let p2 = transaction_id(account, &bank_id("P2"));
    assert_eq!(
        (batch.transactions[0].id, batch.transactions[0].replaces),
        (p1, Some(p1))
    );
    assert_eq!(batch.transactions[1].replaces, Some(p2));
    assert_eq!(batch.transactions[1].id, transaction_id(account, &bank_id("B2")));
    // Neither comes back: not the booked ones, not the replaced pending one.
    let later = vec![
        booked("P1", day(0), -900),
        booked("B2", day(0), -55),
        pending("P2", day(1), -50),
    ];
    assert!(world.events(record(account, later, &[])).is_empty());
    let state = &world.account(account).transactions;
    assert_eq!(state.lookup(p1), Seen::Settled { live: true });
    assert_eq!(state.lookup(p2), Seen::Settled { live: false });
}

#[test]
fn pending_and_booked_in_one_batch() {
    let mut world = World::new();
    let (_, account) = world.enabled_account();
    let mut posted = booked("B1", day(0), -10);
    posted.replaces_pending = Some(bank_id("P1"));
    let batch = vec![
        pending("P1", day(1), -10),
        posted,
        pending("P3", day(1), -3),
        booked("P3", day(0), -3),
    ];
    world.ok(prj(P), record(account, batch.clone(), &[]));
    let recorded = world.recorded(account);
    let summary: Vec<(String, TransactionStatus, Option<AggregatedTransactionId>)> = recorded
        .iter()
        .map(|t| (t.bank_transaction_id.to_string(), t.status, t.replaces))
        .collect();
    // A pending one replaced under another ID is recorded (so it is known
    // when shown again) and its booked version replaces it; one booked
    // under the same ID in the batch is recorded booked only.
    let p1 = transaction_id(account, &bank_id("P1"));
    assert_eq!(
        summary,
        [
            ("P1".to_owned(), TransactionStatus::Pending, None),
            ("B1".to_owned(), TransactionStatus::Booked, Some(p1)),
            ("P3".to_owned(), TransactionStatus::Booked, None),
        ]
    );
    assert!(world.events(record(account, batch, &[])).is_empty());
}

#[test]
fn removed_transactions_are_marked_once_and_never_come_back() {
    let mut world = World::new();
    let (_, account) = world.enabled_account();
    world.ok(
        prj(P),
        record(
            account,
            vec![pending("P1", day(1), -5), booked("B1", day(2), -7)],
            &[],
        ),
    );
    let events = world.events(record(account, vec![], &["P1", "B1", "UNKNOWN"]));
    assert_eq!(events.len(), 1);
    let Event::AggregatedTransactionsRemoved(removed) = &events[0].1 else {
        panic!("expected removals");
    };
    assert_eq!(
        removed.transaction_ids,
        [
            transaction_id(account, &bank_id("P1")),
            transaction_id(account, &bank_id("B1"))
        ]
    );
    assert!(world.events(record(account, vec![], &["P1", "B1"])).is_empty());
    assert!(
        world
            .events(record(
                account,
                vec![pending("P1", day(1), -5), booked("B1", day(2), -7)],
                &[]
            ))
            .is_empty()
    );
}

#[test]
fn transactions_older_than_five_years_are_left_out() {
    let mut world = World::new();
    let (_, account) = world.enabled_account();
    let batch = vec![
        booked("OLD", day(HISTORY_LIMIT_DAYS + 1), -1),
        booked("EDGE", day(HISTORY_LIMIT_DAYS), -1),
    ];
    world.ok(prj(P), record(account, batch, &[]));
    let ids: Vec<String> = world
        .recorded(account)
        .iter()
        .map(|t| t.bank_transaction_id.to_string())
        .collect();
    assert_eq!(ids, ["EDGE"]);
}

#[test]
fn batches_are_checked() {
    let mut world = World::new();
    let (_, account) = world.enabled_account();
    let mut foreign = booked("T1", day(1), -1);
    foreign.amount = usd(-1);
    let mut odd = pending("T2", day(1), -1);
    odd.replaces_pending = Some(bank_id("T0"));
    odd.personal.description = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
    assert_eq!(
        invalid_fields(world.run(P, record(account, vec![foreign, odd], &[]))),
        [
            "transactions[0].amount.currency",
            "transactions[1].replaces_pending",
            "transactions[1].personal.description"
        ]
    );
    let too_many: Vec<_> = (0..=MAX_TRANSACTIONS_PER_BATCH)
        .map(|i| booked(&format!("T{i}"), day(1), -1))
        .collect();
    assert_eq!(
        invalid_fields(world.run(P, record(account, too_many, &[]))),
        ["transactions"]
    );
    // Within the count, but too much text for one event: split it.
    let long_texts: Vec<_> = (0..MAX_TRANSACTIONS_PER_BATCH)
        .map(|i| {
            let mut tx = booked(&format!("T{i}"), day(1), -1);
            tx.personal.description = "é".repeat(MAX_DESCRIPTION_CHARS);
            tx
        })
        .collect();
    assert!(long_texts.len() * 2 * MAX_DESCRIPTION_CHARS > MAX_BATCH_TEXT_BYTES);
    assert_eq!(
        invalid_fields(world.run(P, record(account, long_texts.clone(), &[]))),
        ["transactions"]
    );
    let half = long_texts.len() / 4;
    assert!(
        world
            .run(P, record(account, long_texts[..half].to_vec(), &[]))
            .is_ok()
    );
    assert!(
        BankId::parse("").is_err()
            && BankId::parse("a\nb").is_err()
            && BankId::parse(&"x".repeat(129)).is_err()
    );
}

#[test]
fn a_batch_names_a_running_import_of_its_connection() {
    let mut world = World::new();
    let (connection, account) = world.enabled_account();
    let with_import = |import| -> Command {
        AggregatedAccountCommand::RecordAggregatedTransactions {
            account_id: account,
            import_id: Some(import),
            transactions: vec![booked("T1", day(1), -1)],
            removed: vec![],
        }
        .into()
    };
    assert_not_found(world.run(P, with_import(imp(1))), "aggregation import", imp(1));
    world.ok(
        prj(P),
        AggregationImportCommand::CreateAggregationImport {
            id: imp(1),
            connection_id: connection,
            scope: None,
        }
        .into(),
    );
    assert_refused(
        world.run(P, with_import(imp(1))),
        Refusal::ImportTransitionNotAllowed,
    );
    world.ok(
        prj(P),
        AggregationImportCommand::StartAggregationImport { id: imp(1) }.into(),
    );
    let events = world.events(with_import(imp(1)));
    assert!(matches!(&events[0].1, Event::AggregatedTransactionsRecorded(e) if e.import_id == Some(imp(1))));
}

#[test]
fn everything_under_a_deleted_connection_is_not_found() {
    let mut world = World::new();
    let (connection, account) = world.enabled_account();
    world.ok(
        prj(P),
        AggregationConnectionCommand::DeleteAggregationConnection { id: connection }.into(),
    );
    assert_not_found(world.run(P, enable(account)), "aggregated account", account);
    assert_not_found(
        world.run(P, record(account, vec![booked("T1", day(1), -1)], &[])),
        "aggregated account",
        account,
    );
    assert_not_found(
        world.run(P, sync(connection, vec![found(aacc(5), "ACC-1", "Main")])),
        "aggregation connection",
        connection,
    );
}

#[test]
fn personal_data_stays_out_of_stream_names() {
    let mut world = World::new();
    let (connection, account) = world.enabled_account();
    world.ok(
        prj(P),
        sync(connection, vec![found(aacc(9), "ACC-1", "Current account")]),
    );
    world.ok(prj(P), record(account, vec![booked("T1", day(1), -1)], &[]));
    for (stream, _) in &world.store.log {
        let name = stream.name();
        for personal in ["GB33", "Jane", "ACC-1", "Current", "T1", "Grocer"] {
            assert!(!name.contains(personal), "{name} contains {personal}");
        }
    }
}

/// One delivery of a sync: transactions the bank shows (bank ID, booked
/// or pending, which pending one a booked one replaces) and removals.
#[derive(Clone, Debug)]
struct Delivery {
    shown: Vec<(u8, bool, Option<u8>)>,
    removed: Vec<u8>,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        prop::collection::vec((0u8..40, any::<bool>(), prop::option::of(0u8..40)), 0..30),
        prop::collection::vec(0u8..40, 0..3),
    )
        .prop_map(|(shown, removed)| Delivery { shown, removed })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the bank shows, however often: each decided batch passes
    /// the audit's rules, each bank ID is recorded at most once booked and
    /// at most once pending, and a delivery repeated right away writes
    /// nothing.
    #[test]
    fn deliveries_in_any_order_keep_the_rules(deliveries in prop::collection::vec(delivery(), 1..8)) {
        let mut world = World::new();
        let (_, account) = world.enabled_account();
        for delivery in &deliveries {
            let transactions: Vec<ImportedTransaction> = delivery
                .shown
                .iter()
                .map(|(n, is_booked, replaces)| {
                    let mut tx = if *is_booked {
                        booked(&format!("T{n}"), day(i64::from(*n)), -1)
                    } else {
                        pending(&format!("T{n}"), day(i64::from(*n)), -1)
                    };
                    if *is_booked {
                        tx.replaces_pending = replaces.map(|r| bank_id(&format!("T{r}")));
                    }
                    tx
                })
                .collect();
            let removed: Vec<String> = delivery.removed.iter().map(|n| format!("T{n}")).collect();
            let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
            let before = world.account(account).clone();
            let decision = world.ok(prj(P), record(account, transactions.clone(), &removed));
            let Decision::Apply { events, .. } = decision else { panic!("no replay without a key") };
            for (_, event) in &events {
                if let Event::AggregatedTransactionsRecorded(batch) = event {
                    prop_assert_eq!(check_recorded(&before, false, batch), vec![]);
                }
            }
            let again = world.ok(prj(P), record(account, transactions, &removed));
            prop_assert_eq!(again, Decision::Apply { events: vec![], resource: ResourceRef::AggregatedAccount(account) });
        }
        let mut times: HashMap<(String, TransactionStatus), usize> = HashMap::new();
        for tx in world.recorded(account) {
            *times.entry((tx.bank_transaction_id.to_string(), tx.status)).or_default() += 1;
        }
        prop_assert!(times.values().all(|n| *n == 1), "{times:?}");
    }
}

#[test]
fn the_rules_catch_bad_batches() {
    let mut world = World::new();
    let (_, account) = world.enabled_account();
    world.ok(prj(P), record(account, vec![booked("T1", day(1), -1)], &[]));
    let state = world.account(account).clone();
    let tx = world.recorded(account)[0].clone();
    let mut wrong_id = tx.clone();
    wrong_id.bank_transaction_id = bank_id("T2");
    let mut old = tx.clone();
    old.bank_transaction_id = bank_id("T3");
    old.id = transaction_id(account, &old.bank_transaction_id);
    old.booking_date = day(HISTORY_LIMIT_DAYS + 1);
    old.amount = usd(-1);
    let batch = AggregatedTransactionsRecorded {
        import_id: None,
        transactions: vec![tx.clone(), wrong_id, old.clone()],
        recorded_at: world.now,
    };
    let rules: Vec<TransactionRule> = check_recorded(&state, true, &batch)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        rules,
        [
            TransactionRule::ConnectionDeleted,
            TransactionRule::RecordedTwice,
            TransactionRule::IdNotDerived,
            TransactionRule::RecordedTwice,
            TransactionRule::OutsideHistory,
            TransactionRule::CurrencyMismatch,
        ]
    );
    let mut disabled = state.clone();
    disabled.enabled_at = None;
    disabled.archived_at = Some(world.now);
    let fresh = AggregatedTransactionsRecorded {
        import_id: None,
        transactions: vec![],
        recorded_at: world.now,
    };
    let rules: Vec<&str> = check_recorded(&disabled, false, &fresh)
        .into_iter()
        .map(|(_, r)| r.name())
        .collect();
    assert_eq!(
        rules,
        [
            "aggregated_transaction_on_disabled_account",
            "aggregated_transaction_on_archived_account"
        ]
    );
}

/// The state of a busy account after 5 years of history stays bounded, and
/// 5 more years of syncs do not grow it: what `seen.rs` documents.
#[test]
fn five_years_of_a_busy_account_fit_in_a_bounded_state() {
    const PER_DAY: i64 = 50;
    let mut world = World::new();
    let (_, account) = world.enabled_account();
    let import = |world: &mut World, prefix: &str| {
        let mut page = Vec::new();
        for back in (0..=HISTORY_LIMIT_DAYS).rev() {
            let booking = Date::of(world.now).unwrap().plus_days(-back).unwrap();
            for i in 0..PER_DAY {
                page.push(booked(&format!("{prefix}-{back}-{i}"), booking, -(i + 1)));
            }
            if page.len() + PER_DAY as usize > MAX_TRANSACTIONS_PER_BATCH {
                world.ok(prj(P), record(account, std::mem::take(&mut page), &[]));
            }
        }
        world.ok(prj(P), record(account, page, &[]));
    };
    import(&mut world, "A");
    let state = world.store.state(&StreamRef::AggregatedAccount(account)).clone();
    let seen = &world.account(account).transactions;
    let count = (HISTORY_LIMIT_DAYS + 1) * PER_DAY;
    assert_eq!(seen.len() as i64, count);
    assert_eq!(seen.recorded() as i64, count);
    let memory = state.approx_bytes();
    let snapshot = postcard::to_stdvec(&state).unwrap().len();
    eprintln!(
        "{count} transactions over {} months: {memory} bytes in memory, {snapshot} bytes as a snapshot",
        seen.months()
    );
    assert!(memory < count as usize * 9 + 16_384, "{memory}");
    assert!(snapshot < count as usize * 11, "{snapshot}");
    // Five years later, another five years of history: the first five are
    // forgotten, the state stays the same size.
    world.advance((HISTORY_LIMIT_DAYS + 40) * DAY);
    import(&mut world, "B");
    let seen = &world.account(account).transactions;
    assert!(seen.len() as i64 <= count + 31 * PER_DAY, "{}", seen.len());
    assert!(seen.months() <= 62, "{}", seen.months());
    assert_eq!(seen.recorded() as i64, 2 * count);
}

/// The sequence a sync job follows, end to end (connection, consent,
/// import, accounts, pages of transactions), then a refresh that finds
/// nothing new: it writes only the lifecycle's own events (the status there
/// and back, the source's last update, the import's), no account or
/// transaction event.
#[test]
fn a_whole_import_then_a_refresh_that_finds_nothing_new() {
    use paycore_domain::aggregation_connection::{SourceKind, SourceState};
    use paycore_domain::aggregation_import::ImportProgress;

    let mut world = World::new();
    let connection = world.updating_connection(1);
    let accounts: Vec<FoundAccount> = (1..=5)
        .map(|n| found(aacc(n), &format!("ACC-{n}"), &format!("Account {n}")))
        .collect();
    let pages = |n: u128| -> Vec<Vec<ImportedTransaction>> {
        let all: Vec<ImportedTransaction> = (0..HISTORY_LIMIT_DAYS)
            .flat_map(|back| (0..3).map(move |i| booked(&format!("{n}-{back}-{i}"), day(back), -(i + 1))))
            .collect();
        all.chunks(MAX_TRANSACTIONS_PER_BATCH)
            .map(<[_]>::to_vec)
            .collect()
    };
    let run_import = |world: &mut World, import: AggregationImportId, first: bool| -> Vec<Event> {
        let start = world.store.log.len();
        world.ok(
            prj(P),
            AggregationImportCommand::CreateAggregationImport {
                id: import,
                connection_id: connection,
                scope: None,
            }
            .into(),
        );
        world.ok(
            prj(P),
            AggregationImportCommand::StartAggregationImport { id: import }.into(),
        );
        if !first {
            world.ok(prj(P), status(connection, ConnectionStatus::Updating));
        }
        // A fresh ID for every account found: used only if it is new.
        let fresh: Vec<FoundAccount> = accounts
            .iter()
            .zip(100u128..)
            .map(|(account, n)| FoundAccount {
                new_id: aacc(n),
                ..account.clone()
            })
            .collect();
        let sync_command = AggregatedAccountCommand::SyncAggregatedAccounts {
            connection_id: connection,
            import_id: Some(import),
            accounts: if first { accounts.clone() } else { fresh },
        };
        world.ok(prj(P), sync_command.into());
        if first {
            for n in 1..=5 {
                world.ok(prj(P), enable(aacc(n)));
            }
            // The details the end user consented to.
            world.ok(prj(P), sync(connection, accounts.clone()));
        }
        let mut recorded = 0;
        for n in 1..=5 {
            for page in pages(n) {
                let command = AggregatedAccountCommand::RecordAggregatedTransactions {
                    account_id: aacc(n),
                    import_id: Some(import),
                    transactions: page,
                    removed: vec![],
                };
                recorded += world.events(command.into()).len();
            }
        }
        let progress = ImportProgress {
            accounts_found: 5,
            accounts_done: 5,
            transactions_seen: 5 * 3 * HISTORY_LIMIT_DAYS as u64,
            transactions_recorded: if first {
                5 * 3 * HISTORY_LIMIT_DAYS as u64
            } else {
                0
            },
        };
        assert_eq!(recorded == 0, !first);
        world.ok(
            prj(P),
            AggregationImportCommand::SucceedAggregationImport { id: import, progress }.into(),
        );
        world.ok(
            prj(P),
            AggregationConnectionCommand::UpdateAggregationSource {
                id: connection,
                kind: SourceKind::Psd2Api,
                state: SourceState::Synced,
                disabled: false,
            }
            .into(),
        );
        world.ok(prj(P), status(connection, ConnectionStatus::Connected));
        world.store.log[start..]
            .iter()
            .map(|(_, event)| event.clone())
            .collect()
    };
    let first = run_import(&mut world, imp(1), true);
    let batches = first
        .iter()
        .filter(|e| matches!(e, Event::AggregatedTransactionsRecorded(_)))
        .count();
    assert_eq!(batches, 5 * pages(1).len());
    assert_eq!(world.recorded(aacc(3)).len() as i64, 3 * HISTORY_LIMIT_DAYS);

    world.advance(DAY);
    let again: Vec<&str> = run_import(&mut world, imp(2), false)
        .iter()
        .map(Event::event_type)
        .collect();
    assert_eq!(
        again,
        [
            "AggregationImportCreated",
            "AggregationImportStarted",
            "AggregationConnectionStatusChanged",
            "AggregationImportSucceeded",
            "AggregationSourceUpdated",
            "AggregationConnectionStatusChanged",
        ]
    );
}
