#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! The open banking rules over a history made by the engine (two
//! connections through their lifecycles, imports, accounts discovered,
//! enabled and archived, batches of transactions, pending → booked, a
//! consent expiry, a deleted connection), then tampered with by writing
//! events directly, bypassing the deciders: each test asserts the rule and
//! the exact location.

use std::sync::Arc;

use bytes::Bytes;
use paycore_audit::{Auditor, Limit, Location, Report, Rule};
use paycore_domain::aggregated_account::*;
use paycore_domain::aggregation_connection::*;
use paycore_domain::aggregation_import::*;
use paycore_domain::customer::CustomerCommand;
use paycore_domain::institution::InstitutionCommand;
use paycore_domain::kernel::date::Date;
use paycore_domain::kernel::institution::InstitutionId;
use paycore_domain::project::ProjectCommand;
use paycore_domain::*;
use paycore_engine::{Engine, EngineConfig};
use paycore_store::{EventMetadata, EventStore, GENESIS_HASH, MemoryStore, RecordedEvent, chain_hash};
use uuid::Uuid;

/// 2026-12-06T12:00:00Z.
const T0: i64 = 1_796_558_400_000_000;
const DAY: i64 = 86_400_000_000;

fn id() -> Uuid {
    Uuid::now_v7()
}

fn at(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

fn date(text: &str) -> Date {
    Date::parse(text).unwrap()
}

fn bank_id(text: &str) -> BankId {
    BankId::parse(text).unwrap()
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn bank() -> InstitutionId {
    InstitutionId::parse("SANDBOX_GB_BANK").unwrap()
}

fn sources() -> Vec<NewSource> {
    vec![
        NewSource {
            kind: SourceKind::Psd2Api,
            priority: 0,
            disabled: false,
        },
        NewSource {
            kind: SourceKind::Web,
            priority: 1,
            disabled: false,
        },
    ]
}

fn found(new_id: AggregatedAccountId, bank_ref: &str) -> FoundAccount {
    FoundAccount {
        new_id,
        account_type: AggregatedAccountType::Current,
        currency: Currency::EUR,
        personal: AccountPersonal {
            bank_account_id: bank_id(bank_ref),
            name: format!("Account {bank_ref}"),
            identifier: None,
            owners: vec![AccountOwner {
                name: "Jane Doe".into(),
                role: OwnerRole::Owner,
            }],
        },
        balances: vec![Balance {
            balance_type: BalanceType::ClosingBooked,
            amount: eur(100_000),
            date: date("2026-12-06"),
        }],
    }
}

fn imported(bank: &str, status: TransactionStatus, booking: &str, amount: i64) -> ImportedTransaction {
    ImportedTransaction {
        bank_transaction_id: bank_id(bank),
        status,
        booking_date: date(booking),
        value_date: Some(date(booking)),
        amount: eur(amount),
        replaces_pending: None,
        personal: TransactionPersonal {
            counterparty: None,
            description: format!("payment {bank}"),
        },
    }
}

use TransactionStatus::{Booked, Pending};

struct History {
    events: Vec<RecordedEvent>,
    project: ProjectId,
    customer: CustomerId,
    /// `UPDATING` at the end, consent until T0 + 180 days.
    live: AggregationConnectionId,
    /// Consent expired, then deleted.
    deleted: AggregationConnectionId,
    /// Succeeded.
    import: AggregationImportId,
    /// On `live`: enabled, with transactions `T1` (booked), `P1` (pending
    /// then booked), `P2` (pending, replaced by `P2B`), `T2` (removed).
    enabled: AggregatedAccountId,
    /// On `live`: never enabled.
    disabled: AggregatedAccountId,
    /// On `live`: enabled, then no longer listed.
    archived: AggregatedAccountId,
    /// On `deleted`: enabled, with transaction `D1`.
    orphan: AggregatedAccountId,
    /// The time of the last command.
    now: i64,
}

async fn history() -> History {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let engine = Engine::start(store.clone(), EngineConfig::default());
    let project = ProjectId::from_uuid(id());
    let run = |now: i64, command: Command| {
        let engine = engine.clone();
        async move {
            let name = format!("{command:?}");
            engine
                .execute(CommandEnvelope {
                    project_id: project,
                    now: at(now),
                    idempotency: None,
                    command,
                })
                .await
                .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        }
    };
    let status =
        |id, status| AggregationConnectionCommand::ChangeAggregationConnectionStatus { id, status }.into();
    run(
        T0,
        ProjectCommand::CreateProject {
            id: project,
            name: "Open banking".into(),
            environment: Environment::Sandbox,
            meta: Meta::default(),
        }
        .into(),
    )
    .await;
    let customer = CustomerId::from_uuid(id());
    run(
        T0,
        CustomerCommand::CreateCustomer {
            id: customer,
            identity: None,
            meta: Meta::default(),
        }
        .into(),
    )
    .await;
    run(
        T0,
        InstitutionCommand::ActivateInstitution {
            institution_id: bank(),
        }
        .into(),
    )
    .await;

    // The live connection: signed in, a default import, three accounts.
    let live = AggregationConnectionId::from_uuid(id());
    run(
        T0,
        AggregationConnectionCommand::CreateAggregationConnection {
            id: live,
            customer_id: customer,
            institution_id: Some(bank()),
            sources: sources(),
            redirect_url: Some("https://client.example/back".into()),
        }
        .into(),
    )
    .await;
    run(T0, status(live, ConnectionStatus::Connecting)).await;
    run(T0, status(live, ConnectionStatus::Updating)).await;
    run(
        T0,
        AggregationConnectionCommand::GrantAggregationConsent {
            id: live,
            valid_for_days: 180,
        }
        .into(),
    )
    .await;
    let import = AggregationImportId::from_uuid(id());
    run(
        T0,
        AggregationImportCommand::CreateAggregationImport {
            id: import,
            connection_id: live,
            scope: None,
        }
        .into(),
    )
    .await;
    run(
        T0,
        AggregationImportCommand::StartAggregationImport { id: import }.into(),
    )
    .await;
    let [enabled, disabled, archived] = [(); 3].map(|()| AggregatedAccountId::from_uuid(id()));
    run(
        T0,
        AggregatedAccountCommand::SyncAggregatedAccounts {
            connection_id: live,
            import_id: Some(import),
            accounts: vec![
                found(enabled, "ACC-1"),
                found(disabled, "ACC-2"),
                found(archived, "ACC-3"),
            ],
        }
        .into(),
    )
    .await;
    for account in [enabled, archived] {
        run(
            T0,
            AggregatedAccountCommand::EnableAggregatedAccount { id: account }.into(),
        )
        .await;
    }
    run(
        T0,
        AggregatedAccountCommand::RecordAggregatedTransactions {
            account_id: enabled,
            import_id: Some(import),
            transactions: vec![
                imported("T1", Booked, "2026-11-26", -4_250),
                imported("T2", Booked, "2025-11-01", 250_000),
                imported("P1", Pending, "2026-12-05", -1_999),
                imported("P2", Pending, "2026-12-05", -7_500),
            ],
            removed: Vec::new(),
        }
        .into(),
    )
    .await;
    run(
        T0,
        AggregatedAccountCommand::RecordAggregatedTransactions {
            account_id: archived,
            import_id: Some(import),
            transactions: vec![imported("A1", Booked, "2026-10-01", 10_000)],
            removed: Vec::new(),
        }
        .into(),
    )
    .await;
    let progress = ImportProgress {
        accounts_found: 3,
        accounts_done: 3,
        transactions_seen: 5,
        transactions_recorded: 5,
    };
    run(
        T0,
        AggregationImportCommand::RecordAggregationImportProgress { id: import, progress }.into(),
    )
    .await;
    run(
        T0,
        AggregationImportCommand::SucceedAggregationImport { id: import, progress }.into(),
    )
    .await;
    run(T0, status(live, ConnectionStatus::Connected)).await;

    // A refresh the next day: P1 booked under its own ID, P2 booked as P2B,
    // T2 reversed, ACC-3 no longer listed; the bank then asks to wait.
    let day1 = T0 + DAY;
    run(day1, status(live, ConnectionStatus::Updating)).await;
    let mut p2b = imported("P2B", Booked, "2026-12-06", -7_500);
    p2b.replaces_pending = Some(bank_id("P2"));
    run(
        day1,
        AggregatedAccountCommand::RecordAggregatedTransactions {
            account_id: enabled,
            import_id: None,
            transactions: vec![
                imported("T1", Booked, "2026-11-26", -4_250),
                imported("P1", Booked, "2026-12-06", -1_999),
                p2b,
            ],
            removed: vec![bank_id("T2")],
        }
        .into(),
    )
    .await;
    run(
        day1,
        AggregatedAccountCommand::SyncAggregatedAccounts {
            connection_id: live,
            import_id: None,
            accounts: vec![found(enabled, "ACC-1"), found(disabled, "ACC-2")],
        }
        .into(),
    )
    .await;
    run(
        day1,
        AggregationConnectionCommand::UpdateAggregationSource {
            id: live,
            kind: SourceKind::Psd2Api,
            state: SourceState::Synced,
            disabled: false,
        }
        .into(),
    )
    .await;
    run(
        day1,
        status(
            live,
            ConnectionStatus::RefreshDelayed {
                next_try_at: at(day1 + DAY / 4),
            },
        ),
    )
    .await;
    run(day1 + DAY / 4, status(live, ConnectionStatus::Updating)).await;

    // The other connection: through the bank-selection page, a failed
    // sign-in, then synced, its consent expired, an import failed, deleted.
    let deleted = AggregationConnectionId::from_uuid(id());
    let day2 = T0 + 2 * DAY;
    run(
        day2,
        AggregationConnectionCommand::CreateAggregationConnection {
            id: deleted,
            customer_id: customer,
            institution_id: None,
            sources: Vec::new(),
            redirect_url: None,
        }
        .into(),
    )
    .await;
    run(
        day2,
        AggregationConnectionCommand::ChooseAggregationInstitution {
            id: deleted,
            institution_id: bank(),
            sources: sources(),
        }
        .into(),
    )
    .await;
    run(day2, status(deleted, ConnectionStatus::Connecting)).await;
    run(
        day2,
        status(
            deleted,
            ConnectionStatus::InitialActionRequired {
                reason: Some(ActionRequiredReason::CredentialsInvalid),
            },
        ),
    )
    .await;
    run(day2, status(deleted, ConnectionStatus::Connecting)).await;
    run(day2, status(deleted, ConnectionStatus::Updating)).await;
    run(
        day2,
        AggregationConnectionCommand::GrantAggregationConsent {
            id: deleted,
            valid_for_days: 180,
        }
        .into(),
    )
    .await;
    let orphan = AggregatedAccountId::from_uuid(id());
    run(
        day2,
        AggregatedAccountCommand::SyncAggregatedAccounts {
            connection_id: deleted,
            import_id: None,
            accounts: vec![found(orphan, "ACC-9")],
        }
        .into(),
    )
    .await;
    run(
        day2,
        AggregatedAccountCommand::EnableAggregatedAccount { id: orphan }.into(),
    )
    .await;
    run(
        day2,
        AggregatedAccountCommand::RecordAggregatedTransactions {
            account_id: orphan,
            import_id: None,
            transactions: vec![imported("D1", Booked, "2026-12-01", 5_000)],
            removed: Vec::new(),
        }
        .into(),
    )
    .await;
    run(day2, status(deleted, ConnectionStatus::Connected)).await;
    let expired = day2 + 181 * DAY;
    run(
        expired,
        AggregationConnectionCommand::ExpireAggregationConsent { id: deleted }.into(),
    )
    .await;
    let failed = AggregationImportId::from_uuid(id());
    run(
        expired,
        AggregationImportCommand::CreateAggregationImport {
            id: failed,
            connection_id: deleted,
            scope: None,
        }
        .into(),
    )
    .await;
    run(
        expired,
        AggregationImportCommand::FailAggregationImport {
            id: failed,
            reason: ImportFailure::ActionRequired {
                reason: ActionRequiredReason::ConsentExpired,
            },
            detail: "the consent expired".into(),
        }
        .into(),
    )
    .await;
    run(
        expired,
        AggregationConnectionCommand::DeleteAggregationConnection { id: deleted }.into(),
    )
    .await;
    History {
        events: store.read_all(0, 10_000).await.unwrap(),
        project,
        customer,
        live,
        deleted,
        import,
        enabled,
        disabled,
        archived,
        orphan,
        now: expired,
    }
}

fn audit(events: &[RecordedEvent]) -> Report {
    let mut auditor = Auditor::new(Limit::whole_log());
    for batch in events.chunks(4) {
        auditor.push_batch(batch);
    }
    auditor.finish()
}

fn decode(event: &RecordedEvent) -> Event {
    Event::decode(&event.event_type, event.schema_version, &event.payload).unwrap()
}

/// Appends `event` to `stream` at its next version and re-chains.
fn append(events: &mut Vec<RecordedEvent>, stream: StreamRef, event: impl Into<Event>) -> Location {
    let stream = stream.to_string();
    let version = events.iter().filter(|e| e.stream.as_str() == stream).count() as u64;
    let encoded = event.into().encode();
    let recorded_at_micros = events.last().map_or(T0, |e| e.recorded_at_micros);
    events.push(RecordedEvent {
        position: events.len() as u64,
        stream: stream.into(),
        version,
        event_type: encoded.event_type.into(),
        schema_version: encoded.schema_version,
        recorded_at_micros,
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

fn found_rules(report: &Report) -> Vec<(Rule, Option<Location>)> {
    report.violations.iter().map(|v| (v.rule, v.at.clone())).collect()
}

/// Asserts the report holds exactly `expected`, each naming its rule.
fn assert_found(report: &Report, expected: Vec<(Rule, Location)>) {
    let expected: Vec<(Rule, Option<Location>)> = expected.into_iter().map(|(r, at)| (r, Some(at))).collect();
    assert_eq!(found_rules(report), expected, "{report}");
    let text = report.to_string();
    for (rule, _) in &expected {
        assert!(text.contains(rule.as_str()), "{text}");
    }
}

/// A transaction as the domain would record it on `account`.
fn transaction(
    account: AggregatedAccountId,
    bank: &str,
    booking: Date,
    amount: Money,
) -> AggregatedTransaction {
    AggregatedTransaction {
        id: transaction_id(account, &bank_id(bank)),
        bank_transaction_id: bank_id(bank),
        status: Booked,
        booking_date: booking,
        value_date: Some(booking),
        amount,
        replaces: None,
        personal: TransactionPersonal::default(),
    }
}

fn batch(now: i64, transactions: Vec<AggregatedTransaction>) -> Event {
    Event::AggregatedTransactionsRecorded(AggregatedTransactionsRecorded {
        import_id: None,
        transactions,
        recorded_at: at(now),
    })
}

/// The day of the history's last command.
fn today(now: i64) -> Date {
    Date::of(at(now)).unwrap()
}

fn status_changed(status: ConnectionStatus, micros: i64) -> Event {
    Event::AggregationConnectionStatusChanged(AggregationConnectionStatusChanged {
        status,
        changed_at: at(micros),
    })
}

/// A new connection of the history's customer, created directly in the
/// log (`INITIAL_ACTION_REQUIRED`, no consent).
fn new_connection(h: &mut History) -> AggregationConnectionId {
    let id = AggregationConnectionId::from_uuid(id());
    let created = Event::AggregationConnectionCreated(AggregationConnectionCreated {
        id,
        project_id: h.project,
        customer_id: h.customer,
        institution_id: Some(bank()),
        sources: Vec::new(),
        redirect_url: None,
        created_at: at(h.now),
    });
    append(&mut h.events, StreamRef::AggregationConnection(id), created);
    id
}

#[tokio::test]
async fn a_clean_open_banking_history_has_no_violations() {
    let h = history().await;
    let report = audit(&h.events);
    assert!(report.is_clean(), "{report}");
    // The history went where the tests below rely on.
    let events: Vec<Event> = h.events.iter().map(decode).collect();
    let replaced = events.iter().any(|e| match e {
        Event::AggregatedTransactionsRecorded(batch) => {
            batch.transactions.iter().any(|tx| tx.replaces.is_some())
        }
        _ => false,
    });
    assert!(replaced, "a pending transaction booked");
    for (what, seen) in [
        (
            "removed",
            events
                .iter()
                .any(|e| matches!(e, Event::AggregatedTransactionsRemoved(_))),
        ),
        (
            "archived",
            events
                .iter()
                .any(|e| matches!(e, Event::AggregatedAccountArchived(_))),
        ),
        (
            "consent expired",
            events
                .iter()
                .any(|e| matches!(e, Event::AggregationConsentExpired(_))),
        ),
        (
            "import succeeded",
            events
                .iter()
                .any(|e| matches!(e, Event::AggregationImportSucceeded(_))),
        ),
        (
            "import failed",
            events
                .iter()
                .any(|e| matches!(e, Event::AggregationImportFailed(_))),
        ),
        (
            "deleted",
            events
                .iter()
                .any(|e| matches!(e, Event::AggregationConnectionDeleted(_))),
        ),
    ] {
        assert!(seen, "{what}");
    }
    // The batches the deciders wrote pass the domain's rules as the audit
    // folds them: the refresh that saw T1 again did not record it again.
    let t1 = transaction_id(h.enabled, &bank_id("T1"));
    let t1_recorded = events
        .iter()
        .filter(|e| match e {
            Event::AggregatedTransactionsRecorded(batch) => batch.transactions.iter().any(|tx| tx.id == t1),
            _ => false,
        })
        .count();
    assert_eq!(t1_recorded, 1);
}

#[tokio::test]
async fn a_status_change_the_diagram_does_not_draw() {
    let mut h = history().await;
    // UPDATING → CONNECTING: no such arrow.
    let at = append(
        &mut h.events,
        StreamRef::AggregationConnection(h.live),
        status_changed(ConnectionStatus::Connecting, h.now),
    );
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![(Rule::AggregationConnectionTransitionInDiagram, at)],
    );
}

#[tokio::test]
async fn the_same_status_again_is_not_a_transition() {
    let mut h = history().await;
    let at = append(
        &mut h.events,
        StreamRef::AggregationConnection(h.live),
        status_changed(ConnectionStatus::Updating, h.now),
    );
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![(Rule::AggregationConnectionTransitionInDiagram, at)],
    );
}

#[tokio::test]
async fn a_consent_expired_before_its_time() {
    let mut h = history().await;
    // The live connection's consent runs until T0 + 180 days.
    let early = Event::AggregationConsentExpired(AggregationConsentExpired {
        expired_at: at(T0 + DAY),
    });
    let at = append(&mut h.events, StreamRef::AggregationConnection(h.live), early);
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregationConsentExpiryOnTime, at)]);
}

#[tokio::test]
async fn a_consent_expired_that_was_never_granted() {
    let mut h = history().await;
    let id = new_connection(&mut h);
    let stream = StreamRef::AggregationConnection(id);
    append(
        &mut h.events,
        stream.clone(),
        status_changed(ConnectionStatus::Connecting, h.now),
    );
    append(
        &mut h.events,
        stream.clone(),
        status_changed(ConnectionStatus::Updating, h.now),
    );
    let expired = Event::AggregationConsentExpired(AggregationConsentExpired {
        expired_at: at(h.now + 365 * DAY),
    });
    let at = append(&mut h.events, stream, expired);
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregationConsentExpiryOnTime, at)]);
}

#[tokio::test]
async fn a_consent_expired_before_signing_in() {
    let mut h = history().await;
    let id = new_connection(&mut h);
    let expired = Event::AggregationConsentExpired(AggregationConsentExpired {
        expired_at: at(h.now),
    });
    let at = append(&mut h.events, StreamRef::AggregationConnection(id), expired);
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregationConsentExpiryAfterSignIn, at)]);
}

#[tokio::test]
async fn nothing_happens_to_a_deleted_connection_or_its_accounts() {
    let mut h = history().await;
    // ACTION_REQUIRED → UPDATING is an arrow, but the connection is gone.
    let status = append(
        &mut h.events,
        StreamRef::AggregationConnection(h.deleted),
        status_changed(ConnectionStatus::Updating, h.now),
    );
    let granted = append(
        &mut h.events,
        StreamRef::AggregationConnection(h.deleted),
        Event::AggregationConsentGranted(AggregationConsentGranted {
            consent: Consent {
                granted_at: at(h.now),
                expires_at: at(h.now + 90 * DAY),
            },
        }),
    );
    let archived = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.orphan),
        Event::AggregatedAccountArchived(AggregatedAccountArchived {
            archived_at: at(h.now),
        }),
    );
    let import = AggregationImportId::from_uuid(id());
    let created = append(
        &mut h.events,
        StreamRef::AggregationImport(import),
        Event::AggregationImportCreated(AggregationImportCreated {
            id: import,
            project_id: h.project,
            connection_id: h.deleted,
            kind: ImportKind::Default,
            parts: ImportParts::ALL,
            history_from: date("2021-12-07"),
            created_at: at(h.now),
        }),
    );
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![
            (Rule::AggregationConnectionDeletedIsTerminal, status),
            (Rule::AggregationConnectionDeletedIsTerminal, granted),
            (Rule::AggregationConnectionDeletedIsTerminal, archived),
            (Rule::AggregationConnectionDeletedIsTerminal, created),
        ],
    );
}

#[tokio::test]
async fn an_import_status_change_not_allowed() {
    let mut h = history().await;
    let stream = StreamRef::AggregationImport(h.import);
    // SUCCEEDED → RUNNING, then progress of a finished import.
    let started = append(
        &mut h.events,
        stream.clone(),
        Event::AggregationImportStarted(AggregationImportStarted {
            started_at: at(h.now),
        }),
    );
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregationImportTransitionAllowed, started)]);

    let mut h = history().await;
    let stream = StreamRef::AggregationImport(h.import);
    let progressed = append(
        &mut h.events,
        stream,
        Event::AggregationImportProgressed(AggregationImportProgressed {
            progress: ImportProgress {
                accounts_found: 9,
                accounts_done: 9,
                transactions_seen: 9,
                transactions_recorded: 9,
            },
            progressed_at: at(h.now),
        }),
    );
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![(Rule::AggregationImportTransitionAllowed, progressed)],
    );
}

#[tokio::test]
async fn an_import_whose_counts_go_down() {
    let mut h = history().await;
    let import = AggregationImportId::from_uuid(id());
    let stream = StreamRef::AggregationImport(import);
    let created = Event::AggregationImportCreated(AggregationImportCreated {
        id: import,
        project_id: h.project,
        connection_id: h.live,
        kind: ImportKind::Default,
        parts: ImportParts::ALL,
        history_from: date("2021-12-07"),
        created_at: at(h.now),
    });
    append(&mut h.events, stream.clone(), created);
    append(
        &mut h.events,
        stream.clone(),
        Event::AggregationImportStarted(AggregationImportStarted {
            started_at: at(h.now),
        }),
    );
    let progress = |seen| ImportProgress {
        accounts_found: 1,
        accounts_done: 0,
        transactions_seen: seen,
        transactions_recorded: seen,
    };
    for seen in [10, 20] {
        append(
            &mut h.events,
            stream.clone(),
            Event::AggregationImportProgressed(AggregationImportProgressed {
                progress: progress(seen),
                progressed_at: at(h.now),
            }),
        );
    }
    let succeeded = append(
        &mut h.events,
        stream,
        Event::AggregationImportSucceeded(AggregationImportSucceeded {
            progress: progress(5),
            finished_at: at(h.now),
        }),
    );
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregationImportProgressGrows, succeeded)]);
}

#[tokio::test]
async fn transactions_on_a_disabled_account() {
    let mut h = history().await;
    let tx = transaction(h.disabled, "X1", today(h.now), eur(-100));
    let at = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.disabled),
        batch(h.now, vec![tx]),
    );
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregatedTransactionOnDisabledAccount, at)]);
}

#[tokio::test]
async fn transactions_on_an_archived_account() {
    let mut h = history().await;
    let tx = transaction(h.archived, "X1", today(h.now), eur(-100));
    let at = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.archived),
        batch(h.now, vec![tx]),
    );
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregatedTransactionOnArchivedAccount, at)]);
}

#[tokio::test]
async fn transactions_on_an_account_of_a_deleted_connection() {
    let mut h = history().await;
    let tx = transaction(h.orphan, "X1", today(h.now), eur(-100));
    let at = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.orphan),
        batch(h.now, vec![tx]),
    );
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![(Rule::AggregatedTransactionOnDeletedConnection, at)],
    );
}

#[tokio::test]
async fn a_bank_transaction_recorded_twice_on_one_account() {
    let mut h = history().await;
    // T1 was recorded by the import; P1 was booked already (replacing its
    // pending version), so a booked P1 again is a repeat too.
    let t1 = transaction(h.enabled, "T1", date("2026-11-26"), eur(-4_250));
    let mut p1 = transaction(h.enabled, "P1", date("2026-12-06"), eur(-1_999));
    p1.replaces = Some(p1.id);
    let fresh = transaction(h.enabled, "N1", today(h.now), eur(-1));
    let at = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.enabled),
        batch(h.now, vec![t1.clone(), p1, fresh.clone()]),
    );
    // The same new transaction twice in one batch.
    let twice = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.enabled),
        batch(
            h.now,
            vec![
                transaction(h.enabled, "N2", today(h.now), eur(-2)),
                transaction(h.enabled, "N2", today(h.now), eur(-2)),
            ],
        ),
    );
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![
            (Rule::AggregatedTransactionRecordedOnce, at),
            (Rule::AggregatedTransactionRecordedOnce, twice),
        ],
    );
    assert!(
        report.violations[0].message.starts_with("2 of the batch's 3"),
        "{report}"
    );
    assert!(
        report.violations[0].message.contains(&t1.id.to_string()),
        "{report}"
    );
    assert!(
        !report.violations[0].message.contains(&fresh.id.to_string()),
        "{report}"
    );
}

#[tokio::test]
async fn a_transaction_booked_more_than_5_years_before_its_batch() {
    let mut h = history().await;
    let old = today(h.now).plus_days(-(5 * 365 + 10)).unwrap();
    let tx = transaction(h.enabled, "OLD", old, eur(-100));
    let at = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.enabled),
        batch(h.now, vec![tx]),
    );
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregatedTransactionWithinHistory, at)]);
}

#[tokio::test]
async fn a_transaction_in_another_currency_than_its_account() {
    let mut h = history().await;
    let tx = transaction(h.enabled, "USD1", today(h.now), Money::new(-100, Currency::USD));
    let at = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.enabled),
        batch(h.now, vec![tx]),
    );
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregatedTransactionCurrency, at)]);
}

#[tokio::test]
async fn a_transaction_id_not_derived_from_the_bank_id() {
    let mut h = history().await;
    let mut tx = transaction(h.enabled, "R1", today(h.now), eur(-100));
    tx.id = AggregatedTransactionId::from_uuid(id());
    // The ID of the same bank transaction on another account.
    let mut other = transaction(h.enabled, "R2", today(h.now), eur(-100));
    other.id = transaction_id(h.disabled, &bank_id("R2"));
    let at = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.enabled),
        batch(h.now, vec![tx, other]),
    );
    let report = audit(&h.events);
    assert_found(&report, vec![(Rule::AggregatedTransactionIdDerived, at)]);
}

#[tokio::test]
async fn open_banking_events_that_do_not_fit_their_stream() {
    let mut h = history().await;
    // A batch on an account never discovered, a status change in an
    // account's stream, and a connection created twice.
    let never = AggregatedAccountId::from_uuid(id());
    let tx = transaction(never, "X1", today(h.now), eur(-100));
    let batch_at = append(
        &mut h.events,
        StreamRef::AggregatedAccount(never),
        batch(h.now, vec![tx]),
    );
    // Its later events are not reported again (its discovery may have been
    // lost with a damaged frame).
    let tx = transaction(never, "X2", today(h.now), eur(-100));
    append(
        &mut h.events,
        StreamRef::AggregatedAccount(never),
        batch(h.now, vec![tx]),
    );
    let misplaced = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.enabled),
        status_changed(ConnectionStatus::Connected, h.now),
    );
    let again = Event::AggregationConnectionCreated(AggregationConnectionCreated {
        id: h.live,
        project_id: h.project,
        customer_id: h.customer,
        institution_id: Some(bank()),
        sources: Vec::new(),
        redirect_url: None,
        created_at: at(h.now),
    });
    let twice = append(&mut h.events, StreamRef::AggregationConnection(h.live), again);
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![
            (Rule::EventFitsStream, batch_at),
            (Rule::EventFitsStream, misplaced),
            (Rule::EventFitsStream, twice),
        ],
    );
}

#[tokio::test]
async fn bank_data_recorded_while_the_connection_is_not_updating() {
    let mut h = history().await;
    // UPDATING → CONNECTED is an arrow; then a batch and an archiving.
    append(
        &mut h.events,
        StreamRef::AggregationConnection(h.live),
        status_changed(ConnectionStatus::Connected, h.now),
    );
    let tx = transaction(h.enabled, "L1", today(h.now), eur(-100));
    let recorded = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.enabled),
        batch(h.now, vec![tx]),
    );
    let archived = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.enabled),
        Event::AggregatedAccountArchived(AggregatedAccountArchived {
            archived_at: at(h.now),
        }),
    );
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![
            (Rule::AggregatedDataWhileUpdating, recorded),
            (Rule::AggregatedDataWhileUpdating, archived),
        ],
    );
}

#[tokio::test]
async fn a_batch_naming_an_import_that_is_not_running() {
    let mut h = history().await;
    let named = |h: &mut History, import, bank: &str| {
        let tx = transaction(h.enabled, bank, today(h.now), eur(-100));
        let Event::AggregatedTransactionsRecorded(mut recorded) = batch(h.now, vec![tx]) else {
            unreachable!()
        };
        recorded.import_id = Some(import);
        append(
            &mut h.events,
            StreamRef::AggregatedAccount(h.enabled),
            Event::AggregatedTransactionsRecorded(recorded),
        )
    };
    // The history's import succeeded; another was never created.
    let finished = h.import;
    let succeeded = named(&mut h, finished, "I1");
    let unknown = named(&mut h, AggregationImportId::from_uuid(id()), "I2");
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![
            (Rule::AggregatedDataImportRunning, succeeded),
            (Rule::AggregatedDataImportRunning, unknown),
        ],
    );
}

#[tokio::test]
async fn an_account_enabled_without_a_live_consent() {
    let mut h = history().await;
    // The live connection's consent ran until T0 + 180 days; it is later.
    assert!(h.now > T0 + 180 * DAY);
    let enabled = append(
        &mut h.events,
        StreamRef::AggregatedAccount(h.disabled),
        Event::AggregatedAccountEnabled(AggregatedAccountEnabled {
            enabled_at: at(h.now),
        }),
    );
    let report = audit(&h.events);
    assert_found(
        &report,
        vec![(Rule::AggregatedAccountEnabledWithConsent, enabled)],
    );
}
