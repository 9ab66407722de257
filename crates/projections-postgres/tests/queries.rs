//! The queries over the read-model tables against a real PostgreSQL: a
//! ledger written by the engine, the tables written by a `TablesWriter`,
//! and every query answered as the servers' own read models
//! (`paycore_projections::ReadModels` on the same store) answer it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paycore_domain::account::AccountCommand;
use paycore_domain::bank_account::BankAccountCommand;
use paycore_domain::bank_payin::{BankPayinCommand, IncomingBankTransfer};
use paycore_domain::bank_payout::{BankPayoutCommand, NewBankPayout, PayoutDestinationSource};
use paycore_domain::card::{CardCommand, CardInfo, CardNumber, CardSource, Expiry};
use paycore_domain::card_payin::{
    CardPayinCommand, NetworkVerdict, NewCardPayin, NewRefund, PayinAuthorization,
};
use paycore_domain::customer::CustomerCommand;
use paycore_domain::events::BankAccountInfo;
use paycore_domain::fx_rate::FxRateCommand;
use paycore_domain::kernel::bank::{Concept, PayinReferenceCode};
use paycore_domain::kernel::fx::Rate;
use paycore_domain::kernel::iban::Iban;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::{PendingTerms, TransferCommand};
use paycore_domain::{
    AccountId, Aggregate, BankAccountId, BankPayinId, BankPayinReferenceId, BankPayoutId, CardId,
    CardPayinId, CardPayinRefundId, CardTokenId, Command, CommandEnvelope, Currency, CustomerId, Environment,
    Meta, Money, ProjectId, ResourceRef, Timestamp, TransactionId, TransferId,
};
use paycore_engine::{Engine, EngineConfig};
use paycore_projections::{ModelError, ModelStorage, Page, PageError, PageRequest, ReadModels, ResourceKind};
use paycore_projections_postgres::{TableQueries, TablesWriter, WriterOptions, status};
use paycore_store::Position;
use paycore_store_postgres::testing::SchemaGuard;
use paycore_store_postgres::{PgOptions, PgStore};
use uuid::Uuid;

const NOW: i64 = 1_700_000_000_000_000;

const KINDS: [ResourceKind; 9] = [
    ResourceKind::CardToken,
    ResourceKind::Card,
    ResourceKind::CardPayin,
    ResourceKind::CardPayinRefund,
    ResourceKind::BankAccount,
    ResourceKind::BankPayout,
    ResourceKind::BankPayinReference,
    ResourceKind::BankPayin,
    ResourceKind::File,
];

/// Page sizes every list is walked with: one, small ones that do and do
/// not divide the lists, and the largest.
const SIZES: [usize; 5] = [1, 2, 3, 7, 100];

fn id() -> Uuid {
    Uuid::now_v7()
}

fn tx() -> TransactionId {
    TransactionId::from_uuid(id())
}

fn gbp() -> Currency {
    "GBP".parse().unwrap()
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

/// The engine writing one project's commands.
struct Writer {
    engine: Engine,
    project: ProjectId,
    last: Position,
}

impl Writer {
    async fn run(&mut self, command: impl Into<Command>) -> Position {
        let envelope = CommandEnvelope {
            project_id: self.project,
            now: Timestamp::from_micros(NOW),
            idempotency: None,
            command: command.into(),
        };
        self.last = self.engine.execute(envelope).await.expect("command").position;
        self.last
    }

    async fn account(&mut self, currency: Currency, customer: Option<CustomerId>) -> AccountId {
        let account = AccountId::from_uuid(id());
        self.run(AccountCommand::CreateAccount {
            id: account,
            currency,
            customer_id: customer,
            allow_negative_balance: false,
            meta: Meta::default(),
        })
        .await;
        account
    }

    async fn fund(&mut self, account: AccountId, money: Money) {
        self.run(AccountCommand::UpdateAccount {
            id: account,
            allow_negative_balance: None,
            meta: None,
            balance: Some((money, tx())),
        })
        .await;
    }

    async fn transfer(&mut self, from: AccountId, to: AccountId, value: Money, pending: bool) -> TransferId {
        let transfer = TransferId::from_uuid(id());
        self.run(TransferCommand::CreateTransfer {
            id: transfer,
            source_account_id: from,
            destination_account_id: to,
            value,
            meta: Meta::default(),
            source_transaction_id: tx(),
            destination_transaction_id: tx(),
            pending: pending.then_some(PendingTerms {
                expires_at: Timestamp::from_micros(NOW + 3_600_000_000),
            }),
        })
        .await;
        transfer
    }

    async fn payin(&mut self, account: AccountId, cents: i64, refunds: &[i64]) -> CardPayinId {
        let number = CardNumber::parse("4242424242424242").unwrap();
        let card = CardInfo::new(&number, Expiry::new(12, 2030, 2023, 11).unwrap(), &[7; 32]);
        let payin = CardPayinId::from_uuid(id());
        self.run(CardPayinCommand::CreateCardPayin(NewCardPayin {
            id: payin,
            account_id: account,
            source: CardSource::Info(card),
            value: eur(cents),
            authorization: PayinAuthorization::Direct(NetworkVerdict::Approved),
            meta: Meta::default(),
        }))
        .await;
        self.run(CardPayinCommand::SettleCardPayin {
            id: payin,
            transaction_id: tx(),
        })
        .await;
        for (index, cents) in refunds.iter().enumerate() {
            let refund = CardPayinRefundId::from_uuid(id());
            self.run(CardPayinCommand::CreateCardPayinRefund(NewRefund {
                id: refund,
                card_payin_id: payin,
                value: Some(eur(*cents)),
                account_id: None,
                transaction_id: tx(),
                meta: Meta::default(),
            }))
            .await;
            if index == 0 {
                self.run(CardPayinCommand::FailCardPayinRefund {
                    id: refund,
                    failure_transaction_id: tx(),
                })
                .await;
            }
        }
        payin
    }
}

/// A project with customers, accounts in two currencies, plain, pending
/// (posted, voided, still pending) and exchange transfers, card tokens,
/// cards, payins with and without refunds, bank accounts, payouts, a payin
/// reference and a bank payin; exchange rates (one removed).
async fn project(engine: &Engine, name: &str) -> (Writer, Vec<AccountId>, Vec<CardPayinId>) {
    let project = ProjectId::from_uuid(id());
    let mut w = Writer {
        engine: engine.clone(),
        project,
        last: 0,
    };
    w.run(ProjectCommand::CreateProject {
        id: project,
        name: name.into(),
        environment: Environment::Sandbox,
        meta: Meta::default(),
    })
    .await;
    let mut customers = Vec::new();
    for _ in 0..4 {
        let customer = CustomerId::from_uuid(id());
        w.run(CustomerCommand::CreateCustomer {
            id: customer,
            identity: None,
            meta: Meta::default(),
        })
        .await;
        customers.push(customer);
    }
    let mut accounts = Vec::new();
    for index in 0..5 {
        let customer = (index % 2 == 0).then(|| customers[index % customers.len()]);
        accounts.push(w.account(Currency::EUR, customer).await);
    }
    let dollars = w.account(Currency::USD, None).await;
    w.fund(accounts[0], eur(1_000_000)).await;
    for round in 0..6 {
        let to = accounts[1 + round % 4];
        w.transfer(accounts[0], to, eur(100 + round as i64), false).await;
    }
    let posted = w.transfer(accounts[0], accounts[1], eur(500), true).await;
    w.run(TransferCommand::PostPendingTransfer {
        id: posted,
        value: Some(eur(300)),
        source_transaction_id: tx(),
        destination_transaction_id: tx(),
    })
    .await;
    let voided = w.transfer(accounts[0], accounts[2], eur(40), true).await;
    w.run(TransferCommand::VoidPendingTransfer { id: voided }).await;
    w.transfer(accounts[1], accounts[3], eur(25), true).await;
    let mut payins = Vec::new();
    payins.push(w.payin(accounts[2], 10_000, &[300, 200, 100]).await);
    payins.push(w.payin(accounts[2], 5_000, &[]).await);
    payins.push(w.payin(accounts[3], 7_000, &[700]).await);
    let number = CardNumber::parse("5555555555554444").unwrap();
    let info = CardInfo::new(&number, Expiry::new(1, 2031, 2023, 11).unwrap(), &[9; 32]);
    let token = CardTokenId::from_uuid(id());
    w.run(CardCommand::CreateCardToken {
        id: token,
        card_info: info,
    })
    .await;
    w.run(CardCommand::CreateCard {
        id: CardId::from_uuid(id()),
        source: CardSource::Token(token),
        customer_id: Some(customers[1]),
        meta: Meta::default(),
    })
    .await;
    let bank = BankAccountInfo {
        iban: Iban::parse("ES9121000418450200051332").unwrap(),
        beneficiary_name: "Pepito Martinez".into(),
    };
    w.run(BankAccountCommand::CreateBankAccount {
        id: BankAccountId::from_uuid(id()),
        info: bank.clone(),
        customer_id: Some(customers[0]),
        meta: Meta::default(),
    })
    .await;
    for (cents, entropy) in [(100, 1), (50, 2)] {
        w.run(BankPayoutCommand::CreateBankPayout(NewBankPayout {
            id: BankPayoutId::from_uuid(id()),
            account_id: accounts[0],
            destination: PayoutDestinationSource::Info(bank.clone()),
            concept: Concept::parse("Payout").unwrap(),
            value: eur(cents),
            meta: Meta::default(),
            transaction_id: tx(),
            miniref_entropy: [entropy; 8],
        }))
        .await;
    }
    // Payin reference codes are unique across projects.
    let code = PayinReferenceCode::from_index(u64::from(name.len() as u32) * 1000 + 4242);
    w.run(BankPayinCommand::CreateBankPayinReference {
        id: BankPayinReferenceId::from_uuid(id()),
        account_id: accounts[4],
        candidates: vec![code],
        meta: Meta::default(),
    })
    .await;
    w.run(BankPayinCommand::ReceiveBankPayin(IncomingBankTransfer {
        id: BankPayinId::from_uuid(id()),
        concept: Concept::parse(&format!("Invoice 7 {code}")).unwrap(),
        value: eur(70),
        transaction_id: tx(),
        meta: Meta::default(),
    }))
    .await;
    w.transfer(accounts[0], dollars, eur(333), false).await;
    accounts.push(dollars);
    (w, accounts, payins)
}

/// The ledger, its tables caught up, and both ways of reading it.
struct Setup {
    schema: SchemaGuard,
    store: Arc<PgStore>,
    writer: TablesWriter,
    main: Writer,
    other: ProjectId,
    accounts: Vec<AccountId>,
    other_accounts: Vec<AccountId>,
    payins: Vec<CardPayinId>,
    other_payins: Vec<CardPayinId>,
    models: ReadModels,
    tables: TableQueries,
}

async fn setup() -> Setup {
    let schema = SchemaGuard::new().await;
    let store = Arc::new(
        PgStore::connect(&schema.url, PgOptions::with_schema(schema.schema.clone()))
            .await
            .expect("connect the store"),
    );
    let engine = Engine::start(store.clone(), EngineConfig::default());
    let mut rates = Writer {
        engine: engine.clone(),
        project: ProjectId::from_uuid(id()),
        last: 0,
    };
    for (from, to, rate) in [
        (Currency::EUR, Currency::USD, "1.0842"),
        (Currency::USD, Currency::EUR, "0.9223"),
        (Currency::EUR, gbp(), "0.8561"),
    ] {
        rates
            .run(FxRateCommand::SetFxRate {
                from,
                to,
                mid_rate: Rate::parse(rate).unwrap(),
                spread_bps: 30,
            })
            .await;
    }
    rates
        .run(FxRateCommand::RemoveFxRate {
            from: Currency::EUR,
            to: gbp(),
        })
        .await;
    let (main, accounts, payins) = project(&engine, "main").await;
    let (other, other_accounts, other_payins) = project(&engine, "the other").await;
    let writer = TablesWriter::spawn(store.clone(), writer_options(&schema));
    caught_up(&schema).await;
    let models = ReadModels::start(store.clone(), ModelStorage::in_memory())
        .await
        .expect("start the read models");
    let tables = TableQueries::connect(&schema.url, &schema.schema)
        .await
        .expect("connect the queries");
    Setup {
        schema,
        store,
        writer,
        main,
        other: other.project,
        accounts,
        other_accounts,
        payins,
        other_payins,
        models,
        tables,
    }
}

fn writer_options(schema: &SchemaGuard) -> WriterOptions {
    let mut options = WriterOptions::new(&schema.url, &schema.schema, "queries test");
    options.retry_every = Duration::from_millis(100);
    options.batch_events = 7;
    options.pace = Duration::from_millis(5);
    options
}

/// Waits until every projection's tables reached the log's head, with no
/// rebuild left.
async fn caught_up(schema: &SchemaGuard) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = status(&schema.url, &schema.schema).await.expect("status");
        if statuses.iter().all(|status| {
            status.lag() == 0 && status.stored_version == Some(status.version) && status.rebuilding.is_none()
        }) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the tables did not catch up: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn page(size: usize, token: Option<String>) -> PageRequest {
    PageRequest { size, token }
}

/// Every page of a list, from the first.
async fn walk<T, F, Fut>(size: usize, fetch: F) -> Vec<Page<T>>
where
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, PageError>>,
{
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let next = fetch(page(size, token)).await.expect("a page");
        token = next.next_token.clone();
        pages.push(next);
        if token.is_none() {
            return pages;
        }
        assert!(pages.len() < 10_000, "a list that never ends");
    }
}

/// Walks a list both ways with every page size: the same pages (the same
/// items, a next page at the same places); returns the whole list.
async fn same_pages<T, M, MFut, Q, QFut>(what: &str, models: M, tables: Q) -> Vec<T>
where
    T: PartialEq + std::fmt::Debug + Clone,
    M: Fn(PageRequest) -> MFut,
    MFut: Future<Output = Result<Page<T>, PageError>>,
    Q: Fn(PageRequest) -> QFut,
    QFut: Future<Output = Result<Page<T>, PageError>>,
{
    let mut whole = None;
    for size in SIZES {
        let expected = walk(size, &models).await;
        let found = walk(size, &tables).await;
        let shape = |pages: &[Page<T>]| -> Vec<(usize, bool)> {
            pages
                .iter()
                .map(|page| (page.items.len(), page.next_token.is_some()))
                .collect()
        };
        assert_eq!(shape(&found), shape(&expected), "{what}, pages of {size}");
        let items =
            |pages: Vec<Page<T>>| -> Vec<T> { pages.into_iter().flat_map(|page| page.items).collect() };
        let (expected, found) = (items(expected), items(found));
        assert_eq!(found, expected, "{what}, pages of {size}");
        match &whole {
            None => whole = Some(expected),
            Some(whole) => assert_eq!(&expected, whole, "{what}: the same list whatever the page size"),
        }
    }
    whole.unwrap_or_default()
}

fn resource_ref(state: &Aggregate) -> ResourceRef {
    match state {
        Aggregate::CardToken(token) => ResourceRef::CardToken(token.id),
        Aggregate::Card(card) => ResourceRef::Card(card.id),
        Aggregate::CardPayin(payin) => ResourceRef::CardPayin(payin.id),
        Aggregate::CardPayinRefund(refund) => ResourceRef::CardPayinRefund(refund.id),
        Aggregate::BankAccount(account) => ResourceRef::BankAccount(account.id),
        Aggregate::BankPayout(payout) => ResourceRef::BankPayout(payout.id),
        Aggregate::BankPayinReference(reference) => ResourceRef::BankPayinReference(reference.id),
        Aggregate::BankPayin(payin) => ResourceRef::BankPayin(payin.id),
        Aggregate::File(file) => ResourceRef::File(file.id),
        other => panic!("not a resource: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_answers_as_the_read_models_do() {
    let s = setup().await;
    let (m, t) = (&s.models, &s.tables);
    assert_eq!(t.fx_rates().await.unwrap(), m.fx_rates().unwrap());
    assert_eq!(
        t.fx_rates().await.unwrap().len(),
        3,
        "a removed rate keeps its row"
    );
    for (project, other) in [(s.main.project, s.other), (s.other, s.main.project)] {
        assert_eq!(t.project(project).await.unwrap(), m.project(project).unwrap());
        assert!(t.project(project).await.unwrap().is_some());

        let customers = same_pages(
            "customers",
            |p| std::future::ready(m.list_customers(project, &p)),
            |p| async move { t.list_customers(project, &p).await },
        )
        .await;
        assert_eq!(customers.len(), 4);
        for customer in &customers {
            assert_eq!(
                t.customer(project, customer.id).await.unwrap().as_ref(),
                Some(customer)
            );
            assert_eq!(t.customer(other, customer.id).await.unwrap(), None);
        }

        let accounts = same_pages(
            "accounts",
            |p| std::future::ready(m.list_accounts(project, &p)),
            |p| async move { t.list_accounts(project, &p).await },
        )
        .await;
        assert_eq!(accounts.len(), 6);
        for account in &accounts {
            assert_eq!(
                t.account(project, account.id).await.unwrap().as_ref(),
                Some(account)
            );
            assert_eq!(t.account(other, account.id).await.unwrap(), None);
            let id = account.id;
            let of_account = same_pages(
                "an account's transactions",
                |p| std::future::ready(m.list_transactions(project, Some(id), &p)),
                |p| async move { t.list_transactions(project, Some(id), &p).await },
            )
            .await;
            assert!(of_account.iter().all(|transaction| transaction.account_id == id));
            assert_eq!(
                t.list_transactions(other, Some(id), &page(10, None)).await,
                Err(PageError::AccountNotFound)
            );
        }

        let transfers = same_pages(
            "transfers",
            |p| std::future::ready(m.list_transfers(project, &p)),
            |p| async move { t.list_transfers(project, &p).await },
        )
        .await;
        assert_eq!(transfers.len(), 10);
        for transfer in &transfers {
            assert_eq!(
                t.transfer(project, transfer.id).await.unwrap().as_ref(),
                Some(transfer)
            );
            assert_eq!(t.transfer(other, transfer.id).await.unwrap(), None);
        }

        let transactions = same_pages(
            "transactions",
            |p| std::future::ready(m.list_transactions(project, None, &p)),
            |p| async move { t.list_transactions(project, None, &p).await },
        )
        .await;
        assert!(transactions.len() > 20, "{}", transactions.len());
        for transaction in &transactions {
            assert_eq!(
                t.transaction(project, transaction.id).await.unwrap().as_ref(),
                Some(transaction)
            );
            assert_eq!(t.transaction(other, transaction.id).await.unwrap(), None);
        }

        for kind in KINDS {
            let resources = same_pages(
                &format!("resources {kind:?}"),
                |p| std::future::ready(m.list_resources(project, kind, &p)),
                |p| async move { t.list_resources(project, kind, &p).await },
            )
            .await;
            for resource in &resources {
                let reference = resource_ref(resource);
                assert_eq!(
                    t.resource(project, reference).await.unwrap().as_ref(),
                    Some(resource)
                );
                assert_eq!(m.resource(project, reference).unwrap().as_ref(), Some(resource));
                assert_eq!(t.resource(other, reference).await.unwrap(), None);
            }
            let expected = match kind {
                ResourceKind::CardPayin => 3,
                ResourceKind::CardPayinRefund => 4,
                ResourceKind::BankPayout => 2,
                ResourceKind::File => 0,
                _ => 1,
            };
            assert!(resources.len() >= expected, "{kind:?}: {}", resources.len());
        }
    }
    for (project, other, payins) in [
        (s.main.project, s.other, &s.payins),
        (s.other, s.main.project, &s.other_payins),
    ] {
        let mut counts = Vec::new();
        for &payin in payins {
            let refunds = same_pages(
                "a payin's refunds",
                |p| std::future::ready(m.list_card_payin_refunds(project, payin, &p)),
                |p| async move { t.list_card_payin_refunds(project, payin, &p).await },
            )
            .await;
            assert!(refunds.iter().all(|refund| {
                refund
                    .as_card_payin_refund()
                    .is_some_and(|refund| refund.card_payin_id == payin)
            }));
            counts.push(refunds.len());
            assert_eq!(
                t.list_card_payin_refunds(other, payin, &page(10, None)).await,
                Err(PageError::ParentNotFound)
            );
        }
        assert_eq!(counts, [3, 0, 1]);
    }
    // Not a resource of the resources table, or nobody's.
    let account = ResourceRef::Account(s.accounts[0]);
    assert_eq!(t.resource(s.main.project, account).await.unwrap(), None);
    let nobody = ResourceRef::CardPayin(CardPayinId::from_uuid(id()));
    assert_eq!(t.resource(s.main.project, nobody).await.unwrap(), None);
    assert_eq!(
        t.list_card_payin_refunds(s.main.project, CardPayinId::from_uuid(id()), &page(5, None))
            .await,
        Err(PageError::ParentNotFound)
    );
    assert_eq!(
        t.list_transactions(s.main.project, Some(AccountId::from_uuid(id())), &page(5, None))
            .await,
        Err(PageError::AccountNotFound)
    );
    // The parent first, whatever the token (as `ReadModels` answers).
    let garbage = page(5, Some("zz".to_owned()));
    assert_eq!(
        t.list_transactions(s.other, Some(s.accounts[0]), &garbage).await,
        Err(PageError::AccountNotFound)
    );
    assert_eq!(
        m.list_transactions(s.other, Some(s.accounts[0]), &garbage),
        Err(PageError::AccountNotFound)
    );
    assert_eq!(
        t.list_card_payin_refunds(s.other, s.payins[0], &garbage).await,
        Err(PageError::ParentNotFound)
    );
    assert_eq!(
        m.list_card_payin_refunds(s.other, s.payins[0], &garbage),
        Err(PageError::ParentNotFound)
    );
    let unknown = ProjectId::from_uuid(id());
    assert_eq!(t.project(unknown).await.unwrap(), None);
    assert_eq!(
        t.list_accounts(unknown, &page(5, None)).await,
        Ok(Page {
            items: Vec::new(),
            next_token: None
        }),
        "a project without accounts has an empty list"
    );
    assert_eq!(s.other_accounts.len(), s.accounts.len());
    s.writer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_bound_to_their_list_and_project_and_stay_valid_as_rows_arrive() {
    let mut s = setup().await;
    let t = s.tables.clone();
    let project = s.main.project;
    let (a, b) = (s.accounts[0], s.accounts[1]);

    let first = t
        .list_transactions(project, Some(a), &page(2, None))
        .await
        .unwrap();
    let token = first.next_token.clone().expect("more than one page");
    let accounts_token = t
        .list_accounts(project, &page(1, None))
        .await
        .unwrap()
        .next_token
        .expect("more than one account");
    let models_token = s
        .models
        .list_transactions(project, Some(a), &page(2, None))
        .unwrap()
        .next_token
        .expect("more than one page");
    // Another list, project or account, a `ReadModels` token, garbage.
    let wrong = [
        t.list_transactions(project, Some(b), &page(2, Some(token.clone())))
            .await,
        t.list_transactions(project, None, &page(2, Some(token.clone())))
            .await,
        t.list_transactions(s.other, Some(s.other_accounts[0]), &page(2, Some(token.clone())))
            .await,
        t.list_transactions(project, Some(a), &page(2, Some(accounts_token.clone())))
            .await,
        t.list_transactions(project, Some(a), &page(2, Some(models_token)))
            .await,
    ];
    for answer in wrong {
        assert_eq!(answer, Err(PageError::InvalidToken));
    }
    assert_eq!(
        t.list_transfers(project, &page(1, Some(accounts_token.clone())))
            .await,
        Err(PageError::InvalidToken)
    );
    assert_eq!(
        t.list_accounts(s.other, &page(1, Some(accounts_token.clone())))
            .await,
        Err(PageError::InvalidToken)
    );
    let resources = t
        .list_resources(project, ResourceKind::CardPayin, &page(1, None))
        .await
        .unwrap()
        .next_token
        .expect("more than one payin");
    assert_eq!(
        t.list_resources(project, ResourceKind::CardPayinRefund, &page(1, Some(resources)))
            .await,
        Err(PageError::InvalidToken)
    );
    for bad in ["zz", "00", "deadbeef", "7067743", &"ab".repeat(40)] {
        assert_eq!(
            t.list_accounts(project, &page(1, Some(bad.to_owned()))).await,
            Err(PageError::InvalidToken),
            "{bad:?}"
        );
    }
    // An empty token is no token: the first page.
    assert_eq!(
        t.list_transactions(project, Some(a), &page(2, Some(String::new())))
            .await
            .unwrap(),
        first
    );

    let rest = walk(2, |p| {
        let t = t.clone();
        let p = PageRequest {
            token: p.token.or_else(|| Some(token.clone())),
            ..p
        };
        async move { t.list_transactions(project, Some(a), &p).await }
    })
    .await;
    // New transactions of the account (and a new account) arrive.
    for _ in 0..3 {
        s.main.transfer(a, b, eur(1), false).await;
    }
    s.main.account(Currency::EUR, None).await;
    caught_up(&s.schema).await;
    s.models.wait_for(s.main.last).await;
    let again = walk(2, |p| {
        let t = t.clone();
        let p = PageRequest {
            token: p.token.or_else(|| Some(token.clone())),
            ..p
        };
        async move { t.list_transactions(project, Some(a), &p).await }
    })
    .await;
    assert_eq!(again, rest, "the pages after a token do not move");
    let newest = t
        .list_transactions(project, Some(a), &page(3, None))
        .await
        .unwrap();
    assert!(
        newest.items.iter().all(|item| !first.items.contains(item)),
        "the first page now starts with the new transactions"
    );
    assert!(
        t.list_accounts(project, &page(1, Some(accounts_token)))
            .await
            .is_ok(),
        "a token of a list that grew"
    );
    // And the tables still answer as the read models do.
    let m = &s.models;
    same_pages(
        "transactions after new rows",
        |p| std::future::ready(m.list_transactions(project, Some(a), &p)),
        |p| {
            let t = t.clone();
            async move { t.list_transactions(project, Some(a), &p).await }
        },
    )
    .await;
    s.writer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_are_listed_again_after_the_resources_rebuild() {
    // Tables written before migration 8 have no card_payin_id: a rebuild
    // (as at the version bump) writes it, and the column and its index
    // survive the swap.
    let s = setup().await;
    let t = &s.tables;
    let payin = s.payins[0];
    let before = t
        .list_card_payin_refunds(s.main.project, payin, &page(10, None))
        .await
        .unwrap();
    assert_eq!(before.items.len(), 3);
    s.writer.stop().await;
    s.schema
        .execute(&format!(
            "UPDATE {0}.resources SET card_payin_id = NULL; \
             UPDATE {0}.read_model_checkpoints SET version = 1 WHERE projection = 'resources'",
            s.schema.schema
        ))
        .await;
    assert_eq!(
        t.list_card_payin_refunds(s.main.project, payin, &page(10, None))
            .await
            .unwrap()
            .items
            .len(),
        0,
        "rows of version 1 do not say their payin"
    );
    let writer = TablesWriter::spawn(s.store.clone(), writer_options(&s.schema));
    caught_up(&s.schema).await;
    let after = t
        .list_card_payin_refunds(s.main.project, payin, &page(10, None))
        .await
        .unwrap();
    assert_eq!(after, before);
    let (client, connection) = tokio_postgres::connect(&s.schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let index: Option<String> = client
        .query_one(
            "SELECT to_regclass($1)::text",
            &[&format!("{}.resources_by_card_payin", s.schema.schema)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(index.is_some(), "the index survives the swap");
    writer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_without_the_tables_fails_at_connect_and_a_failing_database_is_the_servers_error() {
    let unmigrated = SchemaGuard::unmigrated();
    let refused = TableQueries::connect(&unmigrated.url, &unmigrated.schema).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        TableQueries::connect(&unmigrated.url, "not a schema")
            .await
            .is_err()
    );

    let schema = SchemaGuard::new().await;
    let t = TableQueries::connect(&schema.url, &schema.schema).await.unwrap();
    let project = ProjectId::from_uuid(id());
    assert_eq!(t.list_accounts(project, &page(10, None)).await.unwrap().items, []);
    assert_eq!(t.fx_rates().await.unwrap(), []);
    // The tables gone from under it: the read models' failure
    // (UNAVAILABLE at the edge), never the request's.
    schema
        .execute(&format!("DROP TABLE {}.accounts", schema.schema))
        .await;
    assert!(matches!(
        t.list_accounts(project, &page(10, None)).await,
        Err(PageError::Storage(ModelError::Storage(_)))
    ));
    assert!(matches!(
        t.account(project, AccountId::from_uuid(id())).await,
        Err(ModelError::Storage(_))
    ));
    assert!(matches!(
        t.list_transactions(project, Some(AccountId::from_uuid(id())), &page(10, None))
            .await,
        Err(PageError::Storage(ModelError::Storage(_)))
    ));
}
