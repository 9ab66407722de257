//! The world of the open banking tests (institution activations,
//! aggregation connections, imports, aggregated accounts and their
//! transactions): a sandbox project P with customer C and the institution
//! `SANDBOX_GB_BANK` active, another project with its own customer, and the
//! builders of their commands.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses its own part

use paycore_domain::aggregated_account::*;
use paycore_domain::aggregation_connection::*;
use paycore_domain::aggregation_import::*;
use paycore_domain::customer::CustomerCommand;
use paycore_domain::institution::InstitutionCommand;
use paycore_domain::kernel::date::Date;
use paycore_domain::kernel::iban::Iban;
use paycore_domain::kernel::institution::InstitutionId;
use paycore_domain::project::ProjectCommand;
use paycore_domain::*;

use super::*;

/// 2026-12-06T12:00:00Z.
pub const T0: Timestamp = Timestamp::from_micros(1_796_558_400_000_000);
pub const DAY: i64 = 86_400;

pub const P: u128 = 1;
pub const OTHER: u128 = 3;
pub const C: u128 = 1;
pub const OTHER_CUSTOMER: u128 = 2;

pub fn bank() -> InstitutionId {
    InstitutionId::parse("SANDBOX_GB_BANK").unwrap()
}

pub fn other_bank() -> InstitutionId {
    InstitutionId::parse("SANDBOX_ES_BANK").unwrap()
}

pub fn conn(n: u128) -> AggregationConnectionId {
    AggregationConnectionId::from_uuid(uuid(20, n))
}

pub fn imp(n: u128) -> AggregationImportId {
    AggregationImportId::from_uuid(uuid(21, n))
}

pub fn aacc(n: u128) -> AggregatedAccountId {
    AggregatedAccountId::from_uuid(uuid(22, n))
}

pub fn date(text: &str) -> Date {
    Date::parse(text).unwrap()
}

pub fn today() -> Date {
    Date::of(T0).unwrap()
}

pub fn bank_id(text: &str) -> BankId {
    BankId::parse(text).unwrap()
}

pub fn sources() -> Vec<NewSource> {
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

pub fn create_connection(
    id: AggregationConnectionId,
    customer: CustomerId,
    institution: Option<InstitutionId>,
) -> Command {
    let sources = if institution.is_some() {
        sources()
    } else {
        Vec::new()
    };
    AggregationConnectionCommand::CreateAggregationConnection {
        id,
        customer_id: customer,
        institution_id: institution,
        sources,
        redirect_url: Some("https://client.example/back".into()),
    }
    .into()
}

pub fn status(id: AggregationConnectionId, status: ConnectionStatus) -> Command {
    AggregationConnectionCommand::ChangeAggregationConnectionStatus { id, status }.into()
}

pub fn grant(id: AggregationConnectionId, days: u16) -> Command {
    AggregationConnectionCommand::GrantAggregationConsent {
        id,
        valid_for_days: days,
    }
    .into()
}

/// An account the bank lists, with every personal field filled.
pub fn found(new_id: AggregatedAccountId, bank_ref: &str, name: &str) -> FoundAccount {
    FoundAccount {
        new_id,
        account_type: AggregatedAccountType::Current,
        currency: Currency::EUR,
        personal: AccountPersonal {
            bank_account_id: bank_id(bank_ref),
            name: name.into(),
            identifier: Some(AccountIdentifier::Iban(
                Iban::parse("GB33BUKB20201555555555").unwrap(),
            )),
            owners: vec![AccountOwner {
                name: "Jane Doe".into(),
                role: OwnerRole::Owner,
            }],
        },
        balances: vec![Balance {
            balance_type: BalanceType::ClosingBooked,
            amount: eur(123_456),
            date: today(),
        }],
    }
}

pub fn sync(connection: AggregationConnectionId, accounts: Vec<FoundAccount>) -> Command {
    AggregatedAccountCommand::SyncAggregatedAccounts {
        connection_id: connection,
        import_id: None,
        accounts,
    }
    .into()
}

pub fn booked(bank: &str, booking: Date, amount: i64) -> ImportedTransaction {
    ImportedTransaction {
        bank_transaction_id: bank_id(bank),
        status: TransactionStatus::Booked,
        booking_date: booking,
        value_date: Some(booking),
        amount: eur(amount),
        replaces_pending: None,
        personal: TransactionPersonal {
            counterparty: Some(Counterparty {
                name: Some("Grocer Ltd".into()),
                identifier: None,
            }),
            description: format!("card payment {bank}"),
        },
    }
}

pub fn pending(bank: &str, booking: Date, amount: i64) -> ImportedTransaction {
    ImportedTransaction {
        status: TransactionStatus::Pending,
        ..booked(bank, booking, amount)
    }
}

pub fn record(
    account: AggregatedAccountId,
    transactions: Vec<ImportedTransaction>,
    removed: &[&str],
) -> Command {
    AggregatedAccountCommand::RecordAggregatedTransactions {
        account_id: account,
        import_id: None,
        transactions,
        removed: removed.iter().map(|id| bank_id(id)).collect(),
    }
    .into()
}

pub struct World {
    pub store: Store,
    pub now: Timestamp,
}

impl World {
    /// Project P (sandbox) with customer C and `SANDBOX_GB_BANK` active;
    /// project OTHER with its own customer and the same institution active.
    pub fn new() -> Self {
        let mut world = Self {
            store: Store::default(),
            now: T0,
        };
        for (project, customer) in [(P, C), (OTHER, OTHER_CUSTOMER)] {
            world.ok(
                prj(project),
                ProjectCommand::CreateProject {
                    id: prj(project),
                    name: "Acme".into(),
                    environment: Environment::Sandbox,
                    meta: Meta::default(),
                }
                .into(),
            );
            world.ok(
                prj(project),
                CustomerCommand::CreateCustomer {
                    id: cus(customer),
                    identity: None,
                    meta: Meta::default(),
                }
                .into(),
            );
            world.ok(
                prj(project),
                InstitutionCommand::ActivateInstitution {
                    institution_id: bank(),
                }
                .into(),
            );
        }
        world
    }

    pub fn advance(&mut self, seconds: i64) {
        self.now = self.now.plus_seconds(seconds);
    }

    pub fn run(&mut self, project: u128, command: Command) -> Result<Decision, DomainError> {
        self.store.execute(&CommandEnvelope {
            project_id: prj(project),
            now: self.now,
            idempotency: None,
            command,
        })
    }

    pub fn ok(&mut self, project: ProjectId, command: Command) -> Decision {
        let description = format!("{command:?}");
        self.store
            .execute(&CommandEnvelope {
                project_id: project,
                now: self.now,
                idempotency: None,
                command,
            })
            .unwrap_or_else(|error| panic!("{description} failed: {error:?}"))
    }

    /// Runs `command` in P and returns the events it wrote.
    pub fn events(&mut self, command: Command) -> Vec<(StreamRef, Event)> {
        match self.ok(prj(P), command) {
            Decision::Apply { events, .. } => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    pub fn connection(&self, id: AggregationConnectionId) -> &AggregationConnection {
        self.store
            .state(&StreamRef::AggregationConnection(id))
            .as_aggregation_connection()
            .expect("connection exists")
    }

    pub fn import(&self, id: AggregationImportId) -> &AggregationImport {
        self.store
            .state(&StreamRef::AggregationImport(id))
            .as_aggregation_import()
            .expect("import exists")
    }

    pub fn account(&self, id: AggregatedAccountId) -> &AggregatedAccount {
        self.store
            .state(&StreamRef::AggregatedAccount(id))
            .as_aggregated_account()
            .expect("account exists")
    }

    /// Connection `n` of customer C at `SANDBOX_GB_BANK`, signed in and
    /// syncing (`UPDATING`) with a 180-day consent.
    pub fn updating_connection(&mut self, n: u128) -> AggregationConnectionId {
        let id = conn(n);
        self.ok(prj(P), create_connection(id, cus(C), Some(bank())));
        self.ok(prj(P), status(id, ConnectionStatus::Connecting));
        self.ok(prj(P), status(id, ConnectionStatus::Updating));
        self.ok(prj(P), grant(id, 180));
        id
    }

    /// An updating connection with one enabled account (`aacc(1)`, bank
    /// reference `ACC-1`).
    pub fn enabled_account(&mut self) -> (AggregationConnectionId, AggregatedAccountId) {
        let connection = self.updating_connection(1);
        self.ok(
            prj(P),
            sync(connection, vec![found(aacc(1), "ACC-1", "Current account")]),
        );
        self.ok(
            prj(P),
            AggregatedAccountCommand::EnableAggregatedAccount { id: aacc(1) }.into(),
        );
        (connection, aacc(1))
    }

    /// Every transaction recorded on `account`, in order.
    pub fn recorded(&self, account: AggregatedAccountId) -> Vec<AggregatedTransaction> {
        self.store
            .log
            .iter()
            .filter(|(stream, _)| *stream == StreamRef::AggregatedAccount(account))
            .filter_map(|(_, event)| match event {
                Event::AggregatedTransactionsRecorded(e) => Some(e.transactions.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}
