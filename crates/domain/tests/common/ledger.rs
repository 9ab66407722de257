//! The world of the ledger's tests (projects, API keys, customers,
//! accounts, transfers, idempotency): a sandbox project P with EUR accounts
//! A, B (no allowance), N (allows a negative balance) and USD account U, a
//! live project L, and the builders of their commands.
#![allow(dead_code)] // each test file uses its own part

use paycore_domain::account::AccountCommand;
use paycore_domain::events::*;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::*;

use paycore_domain::customer::identity::{Address, DocumentType, Identity, IdentityDocument};

use super::*;

pub const T0: Timestamp = Timestamp::from_micros(1_750_000_000_000_000);
pub const HOUR: i64 = 3600;

pub fn key(n: u128) -> ApiKeyId {
    ApiKeyId::from_uuid(uuid(2, n))
}

pub fn envelope(project: ProjectId, command: Command) -> CommandEnvelope {
    at(project, T0, command)
}

pub fn at(project: ProjectId, now: Timestamp, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        project_id: project,
        now,
        idempotency: None,
        command,
    }
}

/// The deployment's server secret idempotency keys are digested with.
pub const SECRET: &[u8] = b"deployment secret";

pub fn idempotency_key(project: ProjectId, key: &str, hash: u8, look_up_verbatim: bool) -> IdempotencyKey {
    IdempotencyKey::new(key, project, SECRET, [hash; 32], look_up_verbatim).expect("valid key")
}

pub fn with_key(mut envelope: CommandEnvelope, key: &str, hash: u8) -> CommandEnvelope {
    envelope.idempotency = Some(idempotency_key(envelope.project_id, key, hash, false));
    envelope
}

pub fn create_project(id: ProjectId, environment: Environment) -> Command {
    ProjectCommand::CreateProject {
        id,
        name: "Acme".into(),
        environment,
        meta: Meta::default(),
    }
    .into()
}

pub fn open_account(id: AccountId, currency: Currency, allow_negative_balance: bool) -> Command {
    AccountCommand::CreateAccount {
        id,
        currency,
        customer_id: None,
        allow_negative_balance,
        meta: Meta::default(),
    }
    .into()
}

pub fn set_balance(id: AccountId, target: Money, transaction: TransactionId) -> Command {
    AccountCommand::UpdateAccount {
        id,
        allow_negative_balance: None,
        meta: None,
        balance: Some((target, transaction)),
    }
    .into()
}

pub fn set_allowance(id: AccountId, allow: bool) -> Command {
    AccountCommand::UpdateAccount {
        id,
        allow_negative_balance: Some(allow),
        meta: None,
        balance: None,
    }
    .into()
}

pub fn transfer(id: TransferId, from: AccountId, to: AccountId, value: Money) -> Command {
    TransferCommand::CreateTransfer {
        id,
        source_account_id: from,
        destination_account_id: to,
        value,
        meta: Meta::default(),
        source_transaction_id: tx(1000 + id.uuid().as_u128() % 1000 * 2),
        destination_transaction_id: tx(1001 + id.uuid().as_u128() % 1000 * 2),
        pending: None,
    }
    .into()
}

pub fn events(decision: &Decision) -> &[(StreamRef, Event)] {
    match decision {
        Decision::Apply { events, .. } => events,
        Decision::Replay { .. } => panic!("expected new events, got {decision:?}"),
    }
}

pub fn resource(decision: &Decision) -> ResourceRef {
    match decision {
        Decision::Apply { resource, .. } | Decision::Replay { resource } => *resource,
    }
}

pub fn assert_not_found(result: Result<Decision, DomainError>, kind: &str, id: impl ToString) {
    match result {
        Err(DomainError::NotFound { kind: k, id: i }) => {
            assert_eq!((k, i), (kind, id.to_string()));
        }
        other => panic!("expected {kind} {} not found, got {other:?}", id.to_string()),
    }
}

/// A sandbox project P with EUR accounts A (no allowance), B (no allowance),
/// N (allows a negative balance) and U (USD), and a live project L.
pub struct World {
    pub store: Store,
    pub next_tx: u128,
}

pub const P: u128 = 1;
pub const L: u128 = 2;
pub const OTHER: u128 = 3;
pub const A: u128 = 1;
pub const B: u128 = 2;
pub const N: u128 = 3;
pub const U: u128 = 4;

impl World {
    pub fn new() -> Self {
        let mut world = Self {
            store: Store::default(),
            next_tx: 1,
        };
        world.ok(prj(P), create_project(prj(P), Environment::Sandbox));
        world.ok(prj(L), create_project(prj(L), Environment::Live));
        world.ok(prj(P), open_account(acc(A), Currency::EUR, false));
        world.ok(prj(P), open_account(acc(B), Currency::EUR, false));
        world.ok(prj(P), open_account(acc(N), Currency::EUR, true));
        world.ok(prj(P), open_account(acc(U), Currency::USD, false));
        world
    }

    pub fn run(&mut self, project: ProjectId, command: Command) -> Result<Decision, DomainError> {
        self.store.execute(&envelope(project, command))
    }

    pub fn ok(&mut self, project: ProjectId, command: Command) -> Decision {
        let description = format!("{command:?}");
        self.run(project, command)
            .unwrap_or_else(|error| panic!("{description} failed: {error:?}"))
    }

    pub fn fresh_tx(&mut self) -> TransactionId {
        self.next_tx += 1;
        tx(self.next_tx)
    }

    pub fn set(&mut self, account: u128, target: Money) -> Result<Decision, DomainError> {
        let id = self.fresh_tx();
        self.run(prj(P), set_balance(acc(account), target, id))
    }
}

/// A valid identity of a customer.
pub fn valid_identity() -> Identity {
    Identity {
        first_name: "Ana".into(),
        last_name: "García".into(),
        email_address: Some("ana@example.com".into()),
        phone_number: Some("+34600111222".into()),
        nationality: Some("ES".into()),
        employment_status: None,
        address: Some(Address {
            line_1: "Calle Mayor 1".into(),
            line_2: String::new(),
            postal_code: "28013".into(),
            city: "Madrid".into(),
            region: String::new(),
            country: "ES".into(),
        }),
        document: Some(IdentityDocument {
            document_type: DocumentType::NationalId,
            country: "ES".into(),
            number: "12345678Z".into(),
            expiration_date: None,
            front_file_id: None,
            back_file_id: None,
            selfie_file_id: None,
        }),
    }
}

/// An identity with one problem in nearly every field, and the fields the
/// API must name, in order.
pub fn bad_identity() -> (Identity, Vec<&'static str>) {
    let identity = Identity {
        first_name: "   ".into(),
        last_name: "García".into(),
        email_address: Some("ana@example".into()),
        phone_number: Some("+0034600".into()),
        nationality: Some("XX".into()),
        employment_status: None,
        address: Some(Address {
            line_1: String::new(),
            line_2: "y".repeat(201),
            postal_code: "28013".into(),
            city: "Madrid".into(),
            region: String::new(),
            country: "es".into(),
        }),
        document: Some(IdentityDocument {
            document_type: DocumentType::Passport,
            country: "ZZ".into(),
            number: String::new(),
            expiration_date: None,
            front_file_id: None,
            back_file_id: None,
            selfie_file_id: None,
        }),
    };
    let fields = vec![
        "identity.first_name",
        "identity.email_address",
        "identity.phone_number",
        "identity.nationality",
        "identity.address.line_1",
        "identity.address.line_2",
        "identity.address.country",
        "identity.document.country",
        "identity.document.number",
    ];
    (identity, fields)
}
