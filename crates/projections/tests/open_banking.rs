#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! The `open-banking` read model: connections, imports, aggregated accounts
//! and their transactions (newest first by booking date, filters, a cursor
//! that holds while syncs add transactions), what the scheduler has due,
//! and deletion — the same answers from the changes held in memory and from
//! the store after a restart.

use std::collections::BTreeSet;
use std::sync::Arc;

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
use paycore_projections::{
    AggregatedAccountsOf, AggregatedTransactionFilter, DueKind, ModelStorage, Page, PageError, PageRequest,
    ReadModels,
};
use paycore_store::{EventStore, MemoryStore, Position};
use uuid::Uuid;

/// 2026-12-06T12:00:00Z.
const T0: i64 = 1_796_558_400_000_000;
const DAY: i64 = 86_400_000_000;

fn date(text: &str) -> Date {
    Date::parse(text).unwrap()
}

fn bank_id(text: &str) -> BankId {
    BankId::parse(text).unwrap()
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
            owners: Vec::new(),
        },
        balances: Vec::new(),
    }
}

fn imported(bank: &str, status: TransactionStatus, booking: Date, amount: i64) -> ImportedTransaction {
    ImportedTransaction {
        bank_transaction_id: bank_id(bank),
        status,
        booking_date: booking,
        value_date: None,
        amount: Money::new(amount, Currency::EUR),
        replaces_pending: None,
        personal: TransactionPersonal {
            counterparty: None,
            description: format!("payment {bank}"),
        },
    }
}

struct World {
    engine: Engine,
    project: ProjectId,
    last: Position,
}

impl World {
    async fn run(&mut self, now: i64, command: impl Into<Command>) {
        let command = command.into();
        let name = format!("{command:?}");
        let executed = self
            .engine
            .execute(CommandEnvelope {
                project_id: self.project,
                now: Timestamp::from_micros(now),
                idempotency: None,
                command,
            })
            .await
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        self.last = executed.position;
    }

    async fn status(&mut self, now: i64, id: AggregationConnectionId, status: ConnectionStatus) {
        self.run(
            now,
            AggregationConnectionCommand::ChangeAggregationConnectionStatus { id, status },
        )
        .await;
    }

    async fn record(
        &mut self,
        now: i64,
        account: AggregatedAccountId,
        transactions: Vec<ImportedTransaction>,
    ) {
        for batch in transactions.chunks(MAX_TRANSACTIONS_PER_BATCH) {
            self.run(
                now,
                AggregatedAccountCommand::RecordAggregatedTransactions {
                    account_id: account,
                    import_id: None,
                    transactions: batch.to_vec(),
                    removed: Vec::new(),
                },
            )
            .await;
        }
    }
}

fn page(size: usize, token: Option<String>) -> PageRequest {
    PageRequest { size, token }
}

/// Every transaction of a list, walking pages of `size`.
fn walk(
    read: &ReadModels,
    w: &World,
    account: AggregatedAccountId,
    filter: AggregatedTransactionFilter,
) -> Vec<AggregatedTransaction> {
    let (mut all, mut token) = (Vec::new(), None);
    loop {
        let Page { items, next_token } = read
            .list_aggregated_transactions(w.project, account, filter, &page(7, token))
            .unwrap();
        all.extend(items);
        match next_token {
            Some(next) => token = Some(next),
            None => return all,
        }
    }
}

fn newest_first(transactions: &[AggregatedTransaction]) -> bool {
    transactions
        .windows(2)
        .all(|w| (w[0].booking_date, w[0].id) > (w[1].booking_date, w[1].id))
}

fn bank_ids(transactions: &[AggregatedTransaction]) -> BTreeSet<String> {
    transactions
        .iter()
        .map(|t| t.bank_transaction_id.as_str().to_owned())
        .collect()
}

#[tokio::test]
async fn the_open_banking_model_answers_from_memory_and_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let engine = Engine::start(store.clone(), EngineConfig::default());
    let storage = ModelStorage::at(dir.path().to_path_buf());
    let read = ReadModels::start(store.clone(), storage.clone()).await.unwrap();
    let project = ProjectId::from_uuid(Uuid::now_v7());
    let mut w = World {
        engine,
        project,
        last: 0,
    };
    w.run(
        T0,
        ProjectCommand::CreateProject {
            id: project,
            name: "Open banking".into(),
            environment: Environment::Sandbox,
            meta: Meta::default(),
        },
    )
    .await;
    let customer = CustomerId::from_uuid(Uuid::now_v7());
    w.run(
        T0,
        CustomerCommand::CreateCustomer {
            id: customer,
            identity: None,
            meta: Meta::default(),
        },
    )
    .await;
    let bank = InstitutionId::parse("SANDBOX_GB_BANK").unwrap();
    w.run(
        T0,
        InstitutionCommand::ActivateInstitution {
            institution_id: bank.clone(),
        },
    )
    .await;
    let connection = AggregationConnectionId::from_uuid(Uuid::now_v7());
    w.run(
        T0,
        AggregationConnectionCommand::CreateAggregationConnection {
            id: connection,
            customer_id: customer,
            institution_id: Some(bank),
            sources: vec![NewSource {
                kind: SourceKind::Psd2Api,
                priority: 0,
                disabled: false,
            }],
            redirect_url: None,
        },
    )
    .await;
    w.status(T0, connection, ConnectionStatus::Connecting).await;
    w.status(T0, connection, ConnectionStatus::Updating).await;
    w.run(
        T0,
        AggregationConnectionCommand::GrantAggregationConsent {
            id: connection,
            valid_for_days: 180,
        },
    )
    .await;
    let import = AggregationImportId::from_uuid(Uuid::now_v7());
    w.run(
        T0,
        AggregationImportCommand::CreateAggregationImport {
            id: import,
            connection_id: connection,
            scope: None,
        },
    )
    .await;
    w.run(
        T0,
        AggregationImportCommand::StartAggregationImport { id: import },
    )
    .await;
    read.wait_for(w.last).await;
    assert_eq!(
        read.unfinished_aggregation_imports().unwrap(),
        vec![(project, import)]
    );

    let [main, disabled, gone] = [(); 3].map(|()| AggregatedAccountId::from_uuid(Uuid::now_v7()));
    w.run(
        T0,
        AggregatedAccountCommand::SyncAggregatedAccounts {
            connection_id: connection,
            import_id: None,
            accounts: vec![
                found(main, "ACC-1"),
                found(disabled, "ACC-2"),
                found(gone, "ACC-3"),
            ],
        },
    )
    .await;
    for account in [main, gone] {
        w.run(
            T0,
            AggregatedAccountCommand::EnableAggregatedAccount { id: account },
        )
        .await;
    }
    // 1,500 booked transactions over 3 years, recorded out of booking
    // order (newest batch first), and one pending.
    let start = date("2023-12-01");
    let mut history: Vec<ImportedTransaction> = (0..1_500)
        .map(|n| {
            imported(
                &format!("B{n}"),
                TransactionStatus::Booked,
                start.plus_days(n % 1_090).unwrap(),
                -100 - n,
            )
        })
        .collect();
    history.reverse();
    history.push(imported(
        "P1",
        TransactionStatus::Pending,
        date("2026-12-05"),
        -1_999,
    ));
    w.record(T0, main, history).await;
    let done = ImportProgress {
        accounts_found: 3,
        accounts_done: 3,
        transactions_seen: 1_501,
        transactions_recorded: 1_501,
    };
    w.run(
        T0,
        AggregationImportCommand::SucceedAggregationImport {
            id: import,
            progress: done,
        },
    )
    .await;
    w.status(T0, connection, ConnectionStatus::Connected).await;
    read.wait_for(w.last).await;

    // Connections, imports, accounts.
    let listed = read
        .list_aggregation_connections(project, customer, &page(10, None))
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![connection]
    );
    assert_eq!(
        read.aggregation_connection(project, connection)
            .unwrap()
            .unwrap()
            .status,
        ConnectionStatus::Connected
    );
    let other_project = ProjectId::from_uuid(Uuid::now_v7());
    assert_eq!(
        read.aggregation_connection(other_project, connection).unwrap(),
        None
    );
    let imports = read
        .list_aggregation_imports(project, connection, &page(10, None))
        .unwrap();
    assert_eq!(imports.items.len(), 1);
    assert_eq!(imports.items[0].status, ImportStatus::Succeeded);
    assert!(read.unfinished_aggregation_imports().unwrap().is_empty());
    let accounts = read
        .list_aggregated_accounts(
            project,
            AggregatedAccountsOf::Connection(connection),
            false,
            &page(2, None),
        )
        .unwrap();
    assert_eq!(accounts.items.len(), 2);
    let rest = read
        .list_aggregated_accounts(
            project,
            AggregatedAccountsOf::Connection(connection),
            false,
            &page(2, accounts.next_token),
        )
        .unwrap();
    let ids: BTreeSet<_> = accounts.items.iter().chain(&rest.items).map(|a| a.id).collect();
    assert_eq!(ids, BTreeSet::from([main, disabled, gone]));
    assert_eq!(rest.next_token, None);
    assert!(
        read.aggregated_account(project, disabled)
            .unwrap()
            .unwrap()
            .is_disabled()
    );

    // Transactions: newest first by booking date, every one once.
    let all = walk(&read, &w, main, AggregatedTransactionFilter::default());
    assert_eq!(all.len(), 1_501);
    assert!(newest_first(&all));
    assert_eq!(all[0].bank_transaction_id.as_str(), "P1");
    let pending = AggregatedTransactionFilter {
        status: Some(TransactionStatus::Pending),
        ..Default::default()
    };
    assert_eq!(
        bank_ids(&walk(&read, &w, main, pending)),
        BTreeSet::from(["P1".to_owned()])
    );
    let booked = AggregatedTransactionFilter {
        status: Some(TransactionStatus::Booked),
        ..Default::default()
    };
    assert_eq!(walk(&read, &w, main, booked).len(), 1_500);
    let in_2024 = AggregatedTransactionFilter {
        booked_from: Some(date("2024-01-01")),
        booked_to: Some(date("2024-12-31")),
        status: None,
    };
    let year = walk(&read, &w, main, in_2024);
    assert!(newest_first(&year));
    let expected_2024 = all.iter().filter(|t| t.booking_date.year == 2024).count();
    assert_eq!(year.len(), expected_2024);
    assert!(year.iter().all(|t| t.booking_date.year == 2024));
    let (_, one) = read.aggregated_transaction(project, all[10].id).unwrap().unwrap();
    assert_eq!(one, all[10]);

    // A cursor holds while a sync adds transactions before and after it.
    let first = read
        .list_aggregated_transactions(
            project,
            main,
            AggregatedTransactionFilter::default(),
            &page(100, None),
        )
        .unwrap();
    w.status(T0 + DAY, connection, ConnectionStatus::Updating).await;
    let added: Vec<ImportedTransaction> = (0..40)
        .map(|n| {
            imported(
                &format!("N{n}"),
                TransactionStatus::Booked,
                start.plus_days(n * 27).unwrap(),
                -7,
            )
        })
        .collect();
    w.record(T0 + DAY, main, added).await;
    read.wait_for(w.last).await;
    let mut continued = first.items.clone();
    let mut token = first.next_token;
    while let Some(next) = token {
        let more = read
            .list_aggregated_transactions(
                project,
                main,
                AggregatedTransactionFilter::default(),
                &page(100, Some(next)),
            )
            .unwrap();
        continued.extend(more.items);
        token = more.next_token;
    }
    assert!(newest_first(&continued));
    let seen = bank_ids(&continued);
    assert_eq!(seen.len(), continued.len(), "no transaction twice");
    assert!(
        bank_ids(&all).is_subset(&seen),
        "none of those already there skipped"
    );
    // Tokens are bound to their list and filter.
    let token = read
        .list_aggregated_transactions(
            project,
            main,
            AggregatedTransactionFilter::default(),
            &page(5, None),
        )
        .unwrap()
        .next_token;
    assert_eq!(
        read.list_aggregated_transactions(project, main, booked, &page(5, token)),
        Err(PageError::InvalidToken)
    );

    // The refresh: P1 booked under its own ID, B0 removed, ACC-3 gone; the
    // bank then asks to wait.
    let mut p1 = imported("P1", TransactionStatus::Booked, date("2026-12-06"), -1_999);
    p1.replaces_pending = Some(bank_id("P1"));
    w.run(
        T0 + DAY,
        AggregatedAccountCommand::RecordAggregatedTransactions {
            account_id: main,
            import_id: None,
            transactions: vec![p1],
            removed: vec![bank_id("B0")],
        },
    )
    .await;
    w.run(
        T0 + DAY,
        AggregatedAccountCommand::SyncAggregatedAccounts {
            connection_id: connection,
            import_id: None,
            accounts: vec![found(main, "ACC-1"), found(disabled, "ACC-2")],
        },
    )
    .await;
    let next_try = T0 + DAY + DAY / 4;
    w.status(
        T0 + DAY,
        connection,
        ConnectionStatus::RefreshDelayed {
            next_try_at: Timestamp::from_micros(next_try),
        },
    )
    .await;
    read.wait_for(w.last).await;
    let check = |read: &ReadModels| {
        let now = walk(read, &w, main, AggregatedTransactionFilter::default());
        assert!(newest_first(&now));
        assert_eq!(now.len(), 1_500 + 40, "P1 once, B0 gone");
        assert_eq!(
            now.iter()
                .filter(|t| t.bank_transaction_id.as_str() == "P1")
                .count(),
            1
        );
        assert!(!bank_ids(&now).contains("B0"));
        assert!(walk(read, &w, main, pending).is_empty());
        let b0 = all
            .iter()
            .find(|t| t.bank_transaction_id.as_str() == "B0")
            .unwrap();
        assert_eq!(read.aggregated_transaction(project, b0.id).unwrap(), None);
        let listed = |archived| {
            read.list_aggregated_accounts(
                project,
                AggregatedAccountsOf::Customer(customer),
                archived,
                &page(10, None),
            )
            .unwrap()
            .items
            .iter()
            .map(|a| a.id)
            .collect::<BTreeSet<_>>()
        };
        assert_eq!(listed(false), BTreeSet::from([main, disabled]));
        assert_eq!(listed(true), BTreeSet::from([main, disabled, gone]));
        assert!(
            read.aggregated_account(project, gone)
                .unwrap()
                .unwrap()
                .is_archived()
        );
        // Due: the retry at its time, the consent at its expiry.
        let retry_at = Timestamp::from_micros(next_try);
        assert!(
            read.aggregation_connections_due(DueKind::Retry, Timestamp::from_micros(next_try - 1), 10)
                .unwrap()
                .is_empty()
        );
        let due = read
            .aggregation_connections_due(DueKind::Retry, retry_at, 10)
            .unwrap();
        assert_eq!(
            due.iter().map(|d| (d.connection, d.at)).collect::<Vec<_>>(),
            vec![(connection, retry_at)]
        );
        assert!(
            read.aggregation_connections_due(DueKind::Refresh, retry_at, 10)
                .unwrap()
                .is_empty()
        );
        let expiry = read
            .next_aggregation_due(DueKind::ConsentExpiry)
            .unwrap()
            .unwrap();
        assert_eq!(expiry, Timestamp::from_micros(T0 + 180 * DAY));
    };
    check(&read);
    // The same answers from the store alone, after a restart.
    read.close().await.unwrap();
    let read = ReadModels::start(store.clone(), storage.clone()).await.unwrap();
    check(&read);

    // Deleted: gone from every query, and nothing is due for it.
    w.run(
        T0 + 2 * DAY,
        AggregationConnectionCommand::DeleteAggregationConnection { id: connection },
    )
    .await;
    read.wait_for(w.last).await;
    assert_eq!(read.aggregation_connection(project, connection).unwrap(), None);
    assert!(
        read.list_aggregation_connections(project, customer, &page(10, None))
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(read.aggregated_account(project, main).unwrap(), None);
    assert_eq!(read.aggregated_transaction(project, all[3].id).unwrap(), None);
    assert_eq!(
        read.list_aggregated_transactions(
            project,
            main,
            AggregatedTransactionFilter::default(),
            &page(5, None)
        ),
        Err(PageError::AccountNotFound)
    );
    assert_eq!(
        read.list_aggregated_accounts(
            project,
            AggregatedAccountsOf::Connection(connection),
            true,
            &page(5, None)
        ),
        Err(PageError::ParentNotFound)
    );
    assert!(
        read.list_aggregated_accounts(
            project,
            AggregatedAccountsOf::Customer(customer),
            true,
            &page(5, None)
        )
        .unwrap()
        .items
        .is_empty()
    );
    for kind in DueKind::ALL {
        assert_eq!(read.next_aggregation_due(kind).unwrap(), None);
    }
}
