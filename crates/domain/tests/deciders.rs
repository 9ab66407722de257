//! Behaviour of `decide` for every command, through a tiny in-memory event
//! store: a map from stream to state that folds every produced event back in
//! with `Aggregate::evolve`, exactly as the engine does after an append.
//!
//! Besides each command's own rules, every call checks the contract the
//! engine relies on: `decide` reads and writes only the streams that
//! `CommandEnvelope::streams` and `CommandEnvelope::dependent_streams`
//! declare (the engine loads those and appends with their expected
//! versions), and a refused command changes nothing.

use paycore_domain::account::AccountCommand;
use paycore_domain::command::IDEMPOTENCY_WINDOW_SECONDS;
use paycore_domain::customer::CustomerCommand;
use paycore_domain::customer::identity::{Address, DocumentType, Identity, IdentityDocument};
use paycore_domain::events::*;
use paycore_domain::file::FileCommand;
use paycore_domain::project::ProjectCommand;
use paycore_domain::project::api_key::KeyKind;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::*;
use uuid::Uuid;

mod common;

use common::*;

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

const T0: Timestamp = Timestamp::from_micros(1_750_000_000_000_000);
const HOUR: i64 = 3600;

fn key(n: u128) -> ApiKeyId {
    ApiKeyId::from_uuid(uuid(2, n))
}

fn envelope(project: ProjectId, command: Command) -> CommandEnvelope {
    at(project, T0, command)
}

fn at(project: ProjectId, now: Timestamp, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        project_id: project,
        now,
        idempotency: None,
        command,
    }
}

/// The deployment's server secret idempotency keys are digested with.
const SECRET: &[u8] = b"deployment secret";

fn idempotency_key(project: ProjectId, key: &str, hash: u8, look_up_verbatim: bool) -> IdempotencyKey {
    IdempotencyKey::new(key, project, SECRET, [hash; 32], look_up_verbatim).expect("valid key")
}

fn with_key(mut envelope: CommandEnvelope, key: &str, hash: u8) -> CommandEnvelope {
    envelope.idempotency = Some(idempotency_key(envelope.project_id, key, hash, false));
    envelope
}

fn create_project(id: ProjectId, environment: Environment) -> Command {
    ProjectCommand::CreateProject {
        id,
        name: "Acme".into(),
        environment,
        meta: Meta::default(),
    }
    .into()
}

fn open_account(id: AccountId, currency: Currency, allow_negative_balance: bool) -> Command {
    AccountCommand::CreateAccount {
        id,
        currency,
        customer_id: None,
        allow_negative_balance,
        meta: Meta::default(),
    }
    .into()
}

fn set_balance(id: AccountId, target: Money, transaction: TransactionId) -> Command {
    AccountCommand::UpdateAccount {
        id,
        allow_negative_balance: None,
        meta: None,
        balance: Some((target, transaction)),
    }
    .into()
}

fn set_allowance(id: AccountId, allow: bool) -> Command {
    AccountCommand::UpdateAccount {
        id,
        allow_negative_balance: Some(allow),
        meta: None,
        balance: None,
    }
    .into()
}

fn transfer(id: TransferId, from: AccountId, to: AccountId, value: Money) -> Command {
    TransferCommand::CreateTransfer {
        id,
        source_account_id: from,
        destination_account_id: to,
        value,
        meta: Meta::default(),
        source_transaction_id: tx(1000 + id.uuid().as_u128() % 1000 * 2),
        destination_transaction_id: tx(1001 + id.uuid().as_u128() % 1000 * 2),
    }
    .into()
}

fn events(decision: &Decision) -> &[(StreamRef, Event)] {
    match decision {
        Decision::Apply { events, .. } => events,
        Decision::Replay { .. } => panic!("expected new events, got {decision:?}"),
    }
}

fn resource(decision: &Decision) -> ResourceRef {
    match decision {
        Decision::Apply { resource, .. } | Decision::Replay { resource } => *resource,
    }
}

fn assert_not_found(result: Result<Decision, DomainError>, kind: &str, id: impl ToString) {
    match result {
        Err(DomainError::NotFound { kind: k, id: i }) => {
            assert_eq!((k, i), (kind, id.to_string()));
        }
        other => panic!("expected {kind} {} not found, got {other:?}", id.to_string()),
    }
}

/// A sandbox project P with EUR accounts A (no allowance), B (no allowance),
/// N (allows a negative balance) and U (USD), and a live project L.
struct World {
    store: Store,
    next_tx: u128,
}

const P: u128 = 1;
const L: u128 = 2;
const OTHER: u128 = 3;
const A: u128 = 1;
const B: u128 = 2;
const N: u128 = 3;
const U: u128 = 4;

impl World {
    fn new() -> Self {
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

    fn run(&mut self, project: ProjectId, command: Command) -> Result<Decision, DomainError> {
        self.store.execute(&envelope(project, command))
    }

    fn ok(&mut self, project: ProjectId, command: Command) -> Decision {
        let description = format!("{command:?}");
        self.run(project, command)
            .unwrap_or_else(|error| panic!("{description} failed: {error:?}"))
    }

    fn fresh_tx(&mut self) -> TransactionId {
        self.next_tx += 1;
        tx(self.next_tx)
    }

    fn set(&mut self, account: u128, target: Money) -> Result<Decision, DomainError> {
        let id = self.fresh_tx();
        self.run(prj(P), set_balance(acc(account), target, id))
    }
}

// ---------------------------------------------------------------------------
// Projects
// ---------------------------------------------------------------------------

#[test]
fn create_project_records_exactly_one_event() {
    let mut store = Store::default();
    let m = meta(&[("team", "payments")]);
    let decision = store
        .execute(&envelope(
            prj(7),
            ProjectCommand::CreateProject {
                id: prj(7),
                name: "Acme Sandbox".into(),
                environment: Environment::Sandbox,
                meta: m.clone(),
            }
            .into(),
        ))
        .unwrap();
    assert_eq!(
        decision,
        Decision::Apply {
            events: vec![(
                StreamRef::Project(prj(7)),
                Event::ProjectCreated(ProjectCreated {
                    id: prj(7),
                    name: "Acme Sandbox".into(),
                    environment: Environment::Sandbox,
                    meta: m.clone(),
                    created_at: T0,
                })
            )],
            resource: ResourceRef::Project(prj(7)),
        }
    );
    let project = store.state(&StreamRef::Project(prj(7))).as_project().unwrap();
    assert_eq!(project.name, "Acme Sandbox");
    assert_eq!(project.meta, m);
}

#[test]
fn create_project_twice_already_exists() {
    let mut world = World::new();
    let result = world.run(prj(P), create_project(prj(P), Environment::Live));
    assert_eq!(
        result,
        Err(DomainError::AlreadyExists {
            kind: "project",
            id: prj(P).to_string()
        })
    );
    // The original project is untouched.
    let project = world
        .store
        .state(&StreamRef::Project(prj(P)))
        .as_project()
        .unwrap();
    assert_eq!(project.environment, Environment::Sandbox);
}

#[test]
fn project_name_must_be_1_to_100_characters() {
    for bad in [String::new(), "   ".into(), "x".repeat(101), "é".repeat(101)] {
        let mut store = Store::default();
        let result = store.execute(&envelope(
            prj(9),
            ProjectCommand::CreateProject {
                id: prj(9),
                name: bad.clone(),
                environment: Environment::Sandbox,
                meta: Meta::default(),
            }
            .into(),
        ));
        assert_eq!(invalid_fields(result), ["name"], "{bad:?}");
        assert!(store.log.is_empty());
    }
    // 100 characters, even multi-byte ones, are fine.
    for good in ["x".repeat(100), "é".repeat(100), "a".into()] {
        let mut store = Store::default();
        let result = store.execute(&envelope(
            prj(9),
            ProjectCommand::CreateProject {
                id: prj(9),
                name: good.clone(),
                environment: Environment::Sandbox,
                meta: Meta::default(),
            }
            .into(),
        ));
        assert!(result.is_ok(), "{good:?}: {result:?}");
    }
}

#[test]
fn update_project_meta() {
    let mut world = World::new();
    let m = meta(&[("_name", "Main"), ("owner", "ana")]);
    let decision = world.ok(prj(P), ProjectCommand::UpdateProject { meta: m.clone() }.into());
    assert_eq!(
        events(&decision),
        [(
            StreamRef::Project(prj(P)),
            Event::ProjectMetaUpdated(MetaUpdated { meta: m.clone() })
        )]
    );
    assert_eq!(resource(&decision), ResourceRef::Project(prj(P)));
    let project = world
        .store
        .state(&StreamRef::Project(prj(P)))
        .as_project()
        .unwrap();
    assert_eq!(project.meta, m);
    assert_eq!(project.name, "Acme", "other fields are kept");
}

#[test]
fn commands_in_a_missing_project_are_not_found() {
    let mut store = Store::default();
    let missing = prj(404);
    for command in [
        ProjectCommand::UpdateProject {
            meta: Meta::default(),
        }
        .into(),
        ProjectCommand::CreateApiKey {
            id: key(1),
            kind: KeyKind::Secret,
            secret_hash: [1; 32],
        }
        .into(),
        CustomerCommand::CreateCustomer {
            id: cus(1),
            identity: None,
            meta: Meta::default(),
        }
        .into(),
        open_account(acc(1), Currency::EUR, false),
    ] {
        assert_not_found(store.execute(&envelope(missing, command)), "project", missing);
    }
    assert!(store.log.is_empty());
}

// ---------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------

#[test]
fn create_and_revoke_api_key() {
    let mut world = World::new();
    let decision = world.ok(
        prj(P),
        ProjectCommand::CreateApiKey {
            id: key(1),
            kind: KeyKind::Public,
            secret_hash: [0xab; 32],
        }
        .into(),
    );
    assert_eq!(
        decision,
        Decision::Apply {
            events: vec![(
                StreamRef::ApiKey(key(1)),
                Event::ApiKeyCreated(ApiKeyCreated {
                    id: key(1),
                    project_id: prj(P),
                    kind: KeyKind::Public,
                    secret_hash: [0xab; 32],
                    created_at: T0,
                })
            )],
            resource: ResourceRef::ApiKey(key(1)),
        }
    );
    let later = T0.plus_seconds(60);
    let decision = world
        .store
        .execute(&at(
            prj(P),
            later,
            ProjectCommand::RevokeApiKey { id: key(1) }.into(),
        ))
        .unwrap();
    assert_eq!(
        events(&decision),
        [(
            StreamRef::ApiKey(key(1)),
            Event::ApiKeyRevoked(ApiKeyRevoked { revoked_at: later })
        )]
    );
    let state = world
        .store
        .state(&StreamRef::ApiKey(key(1)))
        .as_api_key()
        .unwrap();
    assert_eq!(state.revoked_at, Some(later));
    assert_eq!(state.secret_hash, [0xab; 32]);

    assert_refused(
        world.run(prj(P), ProjectCommand::RevokeApiKey { id: key(1) }.into()),
        Refusal::ApiKeyRevoked,
    );
    assert_eq!(
        world.run(
            prj(P),
            ProjectCommand::CreateApiKey {
                id: key(1),
                kind: KeyKind::Secret,
                secret_hash: [1; 32],
            }
            .into()
        ),
        Err(DomainError::AlreadyExists {
            kind: "api key",
            id: key(1).to_string()
        })
    );
}

#[test]
fn revoking_a_missing_or_foreign_key_is_not_found() {
    let mut world = World::new();
    world.ok(
        prj(L),
        ProjectCommand::CreateApiKey {
            id: key(5),
            kind: KeyKind::Secret,
            secret_hash: [5; 32],
        }
        .into(),
    );
    let missing = world.run(prj(P), ProjectCommand::RevokeApiKey { id: key(6) }.into());
    assert_not_found(missing, "api key", key(6));
    let foreign = world.run(prj(P), ProjectCommand::RevokeApiKey { id: key(5) }.into());
    assert_not_found(foreign, "api key", key(5));
    assert_eq!(
        world
            .store
            .state(&StreamRef::ApiKey(key(5)))
            .as_api_key()
            .unwrap()
            .revoked_at,
        None,
        "another project cannot revoke the key"
    );
}

// ---------------------------------------------------------------------------
// Customers
// ---------------------------------------------------------------------------

fn valid_identity() -> Identity {
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
fn bad_identity() -> (Identity, Vec<&'static str>) {
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

#[test]
fn create_customer_with_identity() {
    let mut world = World::new();
    let m = meta(&[("crm", "c-1")]);
    let decision = world.ok(
        prj(P),
        CustomerCommand::CreateCustomer {
            id: cus(1),
            identity: Some(valid_identity()),
            meta: m.clone(),
        }
        .into(),
    );
    assert_eq!(
        decision,
        Decision::Apply {
            events: vec![(
                StreamRef::Customer(cus(1)),
                Event::CustomerCreated(CustomerCreated {
                    id: cus(1),
                    project_id: prj(P),
                    identity: Some(valid_identity()),
                    meta: m,
                    created_at: T0,
                })
            )],
            resource: ResourceRef::Customer(cus(1)),
        }
    );
    assert_eq!(
        world.run(
            prj(P),
            CustomerCommand::CreateCustomer {
                id: cus(1),
                identity: None,
                meta: Meta::default(),
            }
            .into()
        ),
        Err(DomainError::AlreadyExists {
            kind: "customer",
            id: cus(1).to_string()
        })
    );
}

fn file(n: u128) -> FileId {
    FileId::from_uuid(Uuid::from_u128(0xf11e_0000 + n))
}

fn record_file(id: FileId) -> Command {
    FileCommand::RecordFile {
        id,
        sha256: [7; 32],
        name: "passport.jpg".into(),
        size: 1_024,
    }
    .into()
}

/// An identity whose document's front, back and selfie are these files.
fn identity_with_files(front: FileId, back: FileId, selfie: FileId) -> Identity {
    let mut identity = valid_identity();
    if let Some(document) = identity.document.as_mut() {
        document.front_file_id = Some(front);
        document.back_file_id = Some(back);
        document.selfie_file_id = Some(selfie);
    }
    identity
}

#[test]
fn identity_documents_refer_only_to_the_projects_own_files() {
    let mut world = World::new();
    world.ok(prj(P), record_file(file(1)));
    world.ok(prj(P), record_file(file(2)));
    world.ok(prj(L), record_file(file(3)));
    let create = |identity| {
        CustomerCommand::CreateCustomer {
            id: cus(1),
            identity: Some(identity),
            meta: Meta::default(),
        }
        .into()
    };
    let update = |identity| {
        CustomerCommand::UpdateCustomer {
            id: cus(2),
            identity: Some(Some(identity)),
            meta: None,
        }
        .into()
    };
    world.ok(
        prj(P),
        CustomerCommand::CreateCustomer {
            id: cus(2),
            identity: None,
            meta: Meta::default(),
        }
        .into(),
    );

    // A missing file and another project's file are both not found, on
    // create and on update, in any of the three places; nothing is written.
    for identity in [
        identity_with_files(file(9), file(2), file(1)),
        identity_with_files(file(1), file(3), file(2)),
        identity_with_files(file(1), file(2), file(3)),
    ] {
        let missing = identity
            .document
            .as_ref()
            .and_then(|document| document.file_ids().find(|id| ![file(1), file(2)].contains(id)))
            .unwrap();
        assert_not_found(world.run(prj(P), create(identity.clone())), "file", missing);
        assert_not_found(world.run(prj(P), update(identity)), "file", missing);
    }
    assert!(world.store.state(&StreamRef::Customer(cus(1))).is_empty());
    let untouched = world
        .store
        .state(&StreamRef::Customer(cus(2)))
        .as_customer()
        .unwrap();
    assert_eq!(untouched.identity, None);

    // The project's own files are accepted.
    world.ok(prj(P), create(identity_with_files(file(1), file(2), file(1))));
    world.ok(prj(P), update(identity_with_files(file(2), file(1), file(2))));
}

#[test]
fn customer_identity_is_validated_field_by_field() {
    let mut world = World::new();
    let (identity, expected) = bad_identity();
    let result = world.run(
        prj(P),
        CustomerCommand::CreateCustomer {
            id: cus(1),
            identity: Some(identity.clone()),
            meta: Meta::default(),
        }
        .into(),
    );
    assert_eq!(invalid_fields(result), expected);
    assert!(world.store.state(&StreamRef::Customer(cus(1))).is_empty());

    // The same rules apply when the identity is updated.
    world.ok(
        prj(P),
        CustomerCommand::CreateCustomer {
            id: cus(1),
            identity: None,
            meta: Meta::default(),
        }
        .into(),
    );
    let result = world.run(
        prj(P),
        CustomerCommand::UpdateCustomer {
            id: cus(1),
            identity: Some(Some(identity)),
            meta: Some(meta(&[("k", "v")])),
        }
        .into(),
    );
    assert_eq!(invalid_fields(result), expected);
    let customer = world
        .store
        .state(&StreamRef::Customer(cus(1)))
        .as_customer()
        .unwrap();
    assert_eq!(customer.identity, None);
    assert!(customer.meta.is_empty(), "a rejected update changes nothing");
}

#[test]
fn update_customer_identity_and_meta() {
    let mut world = World::new();
    world.ok(
        prj(P),
        CustomerCommand::CreateCustomer {
            id: cus(1),
            identity: None,
            meta: meta(&[("a", "1")]),
        }
        .into(),
    );
    let m = meta(&[("b", "2")]);
    let decision = world.ok(
        prj(P),
        CustomerCommand::UpdateCustomer {
            id: cus(1),
            identity: Some(Some(valid_identity())),
            meta: Some(m.clone()),
        }
        .into(),
    );
    let stream = StreamRef::Customer(cus(1));
    assert_eq!(
        events(&decision),
        [
            (
                stream.clone(),
                Event::CustomerIdentityUpdated(CustomerIdentityUpdated {
                    identity: Some(valid_identity())
                })
            ),
            (
                stream.clone(),
                Event::CustomerMetaUpdated(MetaUpdated { meta: m.clone() })
            ),
        ]
    );
    let customer = world.store.state(&stream).as_customer().unwrap();
    assert_eq!(customer.identity, Some(valid_identity()));
    assert_eq!(customer.meta, m);

    // Only the meta: the identity is kept.
    world.ok(
        prj(P),
        CustomerCommand::UpdateCustomer {
            id: cus(1),
            identity: None,
            meta: Some(Meta::default()),
        }
        .into(),
    );
    let customer = world.store.state(&stream).as_customer().unwrap();
    assert_eq!(customer.identity, Some(valid_identity()));
    assert!(customer.meta.is_empty());

    // `Some(None)` clears the identity.
    world.ok(
        prj(P),
        CustomerCommand::UpdateCustomer {
            id: cus(1),
            identity: Some(None),
            meta: None,
        }
        .into(),
    );
    assert_eq!(world.store.state(&stream).as_customer().unwrap().identity, None);
}

#[test]
fn updating_a_missing_or_foreign_customer_is_not_found() {
    let mut world = World::new();
    world.ok(
        prj(L),
        CustomerCommand::CreateCustomer {
            id: cus(9),
            identity: None,
            meta: Meta::default(),
        }
        .into(),
    );
    let update = |id| {
        CustomerCommand::UpdateCustomer {
            id,
            identity: Some(Some(valid_identity())),
            meta: None,
        }
        .into()
    };
    let foreign = world.run(prj(P), update(cus(9)));
    // Exactly what a missing customer looks like, in a store without it.
    let mut clean = World::new();
    let missing = clean.run(prj(P), update(cus(9)));
    assert_eq!(foreign, missing);
    assert_not_found(foreign, "customer", cus(9));
    assert_eq!(
        world
            .store
            .state(&StreamRef::Customer(cus(9)))
            .as_customer()
            .unwrap()
            .identity,
        None
    );
}

// ---------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------

#[test]
fn open_account_with_and_without_customer() {
    let mut world = World::new();
    let m = meta(&[("_name", "Savings")]);
    let decision = world.ok(
        prj(P),
        AccountCommand::CreateAccount {
            id: acc(10),
            currency: Currency::USD,
            customer_id: None,
            allow_negative_balance: true,
            meta: m.clone(),
        }
        .into(),
    );
    assert_eq!(
        decision,
        Decision::Apply {
            events: vec![(
                StreamRef::Account(acc(10)),
                Event::AccountOpened(AccountOpened {
                    id: acc(10),
                    project_id: prj(P),
                    customer_id: None,
                    currency: Currency::USD,
                    allow_negative_balance: true,
                    meta: m,
                    created_at: T0,
                })
            )],
            resource: ResourceRef::Account(acc(10)),
        }
    );
    let account = world.store.account(acc(10));
    assert_eq!(account.balance, usd(0));
    assert!(account.allow_negative_balance);
    assert_eq!(account.last_transaction, None);

    world.ok(
        prj(P),
        CustomerCommand::CreateCustomer {
            id: cus(1),
            identity: None,
            meta: Meta::default(),
        }
        .into(),
    );
    world.ok(
        prj(P),
        AccountCommand::CreateAccount {
            id: acc(11),
            currency: Currency::EUR,
            customer_id: Some(cus(1)),
            allow_negative_balance: false,
            meta: Meta::default(),
        }
        .into(),
    );
    assert_eq!(world.store.account(acc(11)).customer_id, Some(cus(1)));

    assert_eq!(
        world.run(prj(P), open_account(acc(11), Currency::EUR, false)),
        Err(DomainError::AlreadyExists {
            kind: "account",
            id: acc(11).to_string()
        })
    );
}

#[test]
fn account_for_a_missing_or_foreign_customer_is_not_found() {
    let mut world = World::new();
    world.ok(
        prj(L),
        CustomerCommand::CreateCustomer {
            id: cus(5),
            identity: None,
            meta: Meta::default(),
        }
        .into(),
    );
    for customer in [cus(5), cus(6)] {
        let result = world.run(
            prj(P),
            AccountCommand::CreateAccount {
                id: acc(20),
                currency: Currency::EUR,
                customer_id: Some(customer),
                allow_negative_balance: false,
                meta: Meta::default(),
            }
            .into(),
        );
        assert_not_found(result, "customer", customer);
        assert!(world.store.state(&StreamRef::Account(acc(20))).is_empty());
    }
}

#[test]
fn update_account_meta_and_allowance() {
    let mut world = World::new();
    let m = meta(&[("purpose", "float")]);
    let decision = world.ok(
        prj(P),
        AccountCommand::UpdateAccount {
            id: acc(A),
            allow_negative_balance: Some(true),
            meta: Some(m.clone()),
            balance: None,
        }
        .into(),
    );
    let stream = StreamRef::Account(acc(A));
    assert_eq!(
        events(&decision),
        [
            (
                stream.clone(),
                Event::NegativeBalanceAllowanceChanged(NegativeBalanceAllowanceChanged {
                    allow_negative_balance: true
                })
            ),
            (
                stream.clone(),
                Event::AccountMetaUpdated(MetaUpdated { meta: m.clone() })
            ),
        ]
    );
    let account = world.store.account(acc(A));
    assert!(account.allow_negative_balance);
    assert_eq!(account.meta, m);

    // Setting the allowance to what it already is records nothing.
    let decision = world.ok(prj(P), set_allowance(acc(A), true));
    assert!(events(&decision).is_empty(), "{decision:?}");
}

#[test]
fn updating_a_missing_or_foreign_account_is_not_found() {
    let mut world = World::new();
    world.ok(prj(L), open_account(acc(30), Currency::EUR, true));
    for id in [acc(30), acc(31)] {
        let meta_only = AccountCommand::UpdateAccount {
            id,
            allow_negative_balance: Some(false),
            meta: Some(meta(&[("k", "v")])),
            balance: None,
        }
        .into();
        assert_not_found(world.run(prj(P), meta_only), "account", id);
        assert_not_found(world.run(prj(P), set_balance(id, eur(100), tx(1))), "account", id);
    }
    assert!(world.store.account(acc(30)).allow_negative_balance);
}

#[test]
fn disabling_the_allowance_while_negative_is_refused() {
    let mut world = World::new();
    world.set(A, eur(500)).unwrap();
    world.set(N, eur(-300)).unwrap();
    assert_refused(
        world.run(prj(P), set_allowance(acc(N), false)),
        Refusal::InsufficientFunds,
    );
    assert!(world.store.account(acc(N)).allow_negative_balance);

    // Disabling it together with a balance back at zero or above is fine.
    let t = world.fresh_tx();
    world.ok(
        prj(P),
        AccountCommand::UpdateAccount {
            id: acc(N),
            allow_negative_balance: Some(false),
            meta: None,
            balance: Some((eur(0), t)),
        }
        .into(),
    );
    let account = world.store.account(acc(N));
    assert!(!account.allow_negative_balance);
    assert_eq!(account.balance, eur(0));

    // A zero balance does not need the allowance.
    world.ok(prj(P), set_allowance(acc(N), true));
    world.ok(prj(P), set_allowance(acc(N), false));
}

// ---------------------------------------------------------------------------
// Magic balances (sandbox only)
// ---------------------------------------------------------------------------

#[test]
fn magic_balance_records_a_transaction_and_the_project_total() {
    let mut world = World::new();
    let decision = world.ok(prj(P), set_balance(acc(A), eur(12_345), tx(77)));
    let transaction = Transaction {
        id: tx(77),
        account_id: acc(A),
        project_id: prj(P),
        kind: TransactionKind::Magic,
        value: eur(12_345),
        balance_after: eur(12_345),
        created_at: T0,
    };
    assert_eq!(
        decision,
        Decision::Apply {
            events: vec![
                (
                    StreamRef::Account(acc(A)),
                    Event::TransactionRecorded(TransactionRecorded { transaction })
                ),
                (
                    StreamRef::ProjectBalance(prj(P), Currency::EUR),
                    Event::ProjectBalanceChanged(ProjectBalanceChanged {
                        project_id: prj(P),
                        delta: eur(12_345),
                        total_after: eur(12_345),
                        account_id: acc(A),
                        transaction_id: tx(77),
                    })
                ),
            ],
            resource: ResourceRef::Account(acc(A)),
        }
    );
    assert_eq!(world.store.balance(acc(A)), 12_345);
    assert_eq!(world.store.account(acc(A)).last_transaction, Some(tx(77)));

    // Lowering it records the (negative) difference, not the target.
    let decision = world.ok(prj(P), set_balance(acc(A), eur(10_000), tx(78)));
    let [
        (_, Event::TransactionRecorded(recorded)),
        (_, Event::ProjectBalanceChanged(total)),
    ] = events(&decision)
    else {
        panic!("unexpected events {decision:?}");
    };
    assert_eq!(recorded.transaction.value, eur(-2_345));
    assert_eq!(recorded.transaction.balance_after, eur(10_000));
    assert_eq!((total.delta, total.total_after), (eur(-2_345), eur(10_000)));

    // Another account adds to the same total.
    world.set(B, eur(5)).unwrap();
    assert_eq!(world.store.project_total(prj(P), Currency::EUR), Some(10_005));
    assert_eq!(world.store.project_total(prj(P), Currency::USD), None);
}

#[test]
fn magic_balance_to_the_current_balance_writes_no_transaction() {
    let mut world = World::new();
    world.set(A, eur(100)).unwrap();
    let log = world.store.log.len();
    let decision = world.set(A, eur(100)).unwrap();
    assert!(events(&decision).is_empty(), "{decision:?}");
    assert_eq!(world.store.log.len(), log);
    // Zero on a fresh account, too.
    let decision = world.set(B, eur(0)).unwrap();
    assert!(events(&decision).is_empty(), "{decision:?}");
}

#[test]
fn magic_balance_is_sandbox_only() {
    let mut world = World::new();
    world.ok(prj(L), open_account(acc(40), Currency::EUR, true));
    for target in [eur(100), eur(0), eur(-5)] {
        assert_refused(
            world.run(prj(L), set_balance(acc(40), target, tx(9))),
            Refusal::SandboxOnly,
        );
    }
    assert_eq!(world.store.balance(acc(40)), 0);
    assert_eq!(world.store.project_total(prj(L), Currency::EUR), None);
}

#[test]
fn magic_balance_in_the_wrong_currency_is_invalid() {
    let mut world = World::new();
    assert_eq!(invalid_fields(world.set(A, usd(100))), ["balance.currency"]);
    assert_eq!(invalid_fields(world.set(U, eur(100))), ["balance.currency"]);
    assert_eq!(world.store.balance(acc(A)), 0);
}

#[test]
fn negative_magic_balance_needs_the_allowance() {
    let mut world = World::new();
    world.set(B, eur(1_000)).unwrap();
    assert_eq!(invalid_fields(world.set(A, eur(-1))), ["balance.amount"]);
    // With the allowance in the same command it is accepted.
    let t = world.fresh_tx();
    world.ok(
        prj(P),
        AccountCommand::UpdateAccount {
            id: acc(A),
            allow_negative_balance: Some(true),
            meta: None,
            balance: Some((eur(-1), t)),
        }
        .into(),
    );
    assert_eq!(world.store.balance(acc(A)), -1);
    // Removing the allowance in the same command is not.
    let t = world.fresh_tx();
    let result = world.run(
        prj(P),
        AccountCommand::UpdateAccount {
            id: acc(A),
            allow_negative_balance: Some(false),
            meta: None,
            balance: Some((eur(-2), t)),
        }
        .into(),
    );
    assert_eq!(invalid_fields(result), ["balance.amount"]);
    assert_eq!(world.store.balance(acc(A)), -1);
}

#[test]
fn the_project_total_never_goes_below_zero() {
    let mut world = World::new();
    // Nothing in the project: an allowed account still cannot go negative.
    assert_refused(world.set(N, eur(-1)), Refusal::ProjectBalanceNegative);
    world.set(A, eur(100)).unwrap();
    world.set(N, eur(-100)).unwrap();
    assert_eq!(world.store.project_total(prj(P), Currency::EUR), Some(0));
    assert_refused(world.set(N, eur(-101)), Refusal::ProjectBalanceNegative);
    // Taking the money away elsewhere is refused too.
    assert_refused(world.set(A, eur(99)), Refusal::ProjectBalanceNegative);
    assert_eq!(world.store.balance(acc(A)), 100);
    assert_eq!(world.store.balance(acc(N)), -100);
    // The total is per currency: USD money does not cover EUR debts.
    world.set(U, usd(1_000_000)).unwrap();
    assert_refused(world.set(N, eur(-101)), Refusal::ProjectBalanceNegative);
    // And per project.
    world.ok(prj(OTHER), create_project(prj(OTHER), Environment::Sandbox));
    world.ok(prj(OTHER), open_account(acc(50), Currency::EUR, true));
    let result = world
        .store
        .execute(&envelope(prj(OTHER), set_balance(acc(50), eur(-1), tx(500))));
    assert_refused(result, Refusal::ProjectBalanceNegative);
}

#[test]
fn magic_balance_overflow_is_refused() {
    let mut world = World::new();
    world.set(A, eur(i64::MAX)).unwrap();
    // The project total would exceed i64.
    assert_refused(world.set(B, eur(1)), Refusal::BalanceOverflow);
    world.set(N, eur(-i64::MAX)).unwrap();
    assert_eq!(world.store.project_total(prj(P), Currency::EUR), Some(0));
    // From -MAX to +MAX the difference does not fit in i64.
    world.ok(prj(P), set_allowance(acc(B), true));
    world.set(B, eur(1)).unwrap();
    assert_refused(world.set(N, eur(i64::MAX)), Refusal::BalanceOverflow);
    assert_eq!(world.store.balance(acc(N)), -i64::MAX);
}

// ---------------------------------------------------------------------------
// Transfers
// ---------------------------------------------------------------------------

#[test]
fn transfer_moves_money_in_one_decision() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let m = meta(&[("order", "42")]);
    let command = TransferCommand::CreateTransfer {
        id: trf(1),
        source_account_id: acc(A),
        destination_account_id: acc(B),
        value: eur(250),
        meta: m.clone(),
        source_transaction_id: tx(501),
        destination_transaction_id: tx(502),
    }
    .into();
    let decision = world.ok(prj(P), command);
    let leg = |id, account, kind, value, after| {
        (
            StreamRef::Account(account),
            Event::TransactionRecorded(TransactionRecorded {
                transaction: Transaction {
                    id,
                    account_id: account,
                    project_id: prj(P),
                    kind,
                    value,
                    balance_after: after,
                    created_at: T0,
                },
            }),
        )
    };
    assert_eq!(
        decision,
        Decision::Apply {
            events: vec![
                (
                    StreamRef::Transfer(trf(1)),
                    Event::TransferCreated(TransferCreated {
                        id: trf(1),
                        project_id: prj(P),
                        source_account_id: acc(A),
                        destination_account_id: acc(B),
                        source_transaction_id: tx(501),
                        destination_transaction_id: tx(502),
                        value: eur(250),
                        meta: m,
                        created_at: T0,
                        exchange: None,
                    })
                ),
                leg(
                    tx(501),
                    acc(A),
                    TransactionKind::TransferSource(trf(1)),
                    eur(-250),
                    eur(750)
                ),
                leg(
                    tx(502),
                    acc(B),
                    TransactionKind::TransferDestination(trf(1)),
                    eur(250),
                    eur(250)
                ),
            ],
            resource: ResourceRef::Transfer(trf(1)),
        }
    );
    assert_eq!(world.store.balance(acc(A)), 750);
    assert_eq!(world.store.balance(acc(B)), 250);
    assert_eq!(world.store.account(acc(B)).last_transaction, Some(tx(502)));
    // A transfer does not touch the project's total.
    assert_eq!(world.store.project_total(prj(P), Currency::EUR), Some(1_000));
    assert!(
        !events(&decision)
            .iter()
            .any(|(stream, _)| matches!(stream, StreamRef::ProjectBalance(..))),
        "transfers must not contend on the project balance stream"
    );

    // The whole balance can go, to exactly zero.
    world.ok(prj(P), transfer(trf(2), acc(A), acc(B), eur(750)));
    assert_eq!(world.store.balance(acc(A)), 0);
    assert_eq!(world.store.balance(acc(B)), 1_000);
}

#[test]
fn transfer_id_already_exists() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    world.ok(prj(P), transfer(trf(1), acc(A), acc(B), eur(1)));
    let result = world.run(prj(P), transfer(trf(1), acc(A), acc(B), eur(1)));
    assert_eq!(
        result,
        Err(DomainError::AlreadyExists {
            kind: "transfer",
            id: trf(1).to_string()
        })
    );
    assert_eq!(world.store.balance(acc(A)), 999);
}

#[test]
fn transfer_amount_must_be_positive() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    for amount in [0, -1, -1_000, i64::MIN] {
        let result = world.run(prj(P), transfer(trf(1), acc(A), acc(B), eur(amount)));
        assert_eq!(invalid_fields(result), ["value.amount"], "{amount}");
    }
    assert_eq!(world.store.balance(acc(A)), 1_000);
    assert_eq!(world.store.balance(acc(B)), 0);
}

#[test]
fn transfer_to_the_same_account_is_invalid() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let result = world.run(prj(P), transfer(trf(1), acc(A), acc(A), eur(10)));
    assert_eq!(invalid_fields(result), ["destination_account_id"]);
    // Both problems are reported at once.
    let result = world.run(prj(P), transfer(trf(1), acc(A), acc(A), eur(0)));
    assert_eq!(invalid_fields(result), ["value.amount", "destination_account_id"]);
    assert_eq!(world.store.balance(acc(A)), 1_000);
}

#[test]
fn transfer_in_another_currency_than_the_accounts_is_invalid() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let result = world.run(prj(P), transfer(trf(1), acc(A), acc(B), usd(10)));
    assert_eq!(invalid_fields(result), ["value.currency"]);
    assert_eq!(world.store.balance(acc(A)), 1_000);
}

#[test]
fn transfer_between_currencies_without_a_rate_is_refused() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    world.set(U, usd(1_000)).unwrap();
    assert_refused(
        world.run(prj(P), transfer(trf(1), acc(A), acc(U), eur(10))),
        Refusal::FxRateUnavailable,
    );
    assert_refused(
        world.run(prj(P), transfer(trf(2), acc(U), acc(A), usd(10))),
        Refusal::FxRateUnavailable,
    );
    assert_eq!(world.store.balance(acc(A)), 1_000);
    assert_eq!(world.store.balance(acc(U)), 1_000);
}

#[test]
fn transfer_beyond_the_balance_is_insufficient_funds() {
    let mut world = World::new();
    world.set(A, eur(100)).unwrap();
    assert_refused(
        world.run(prj(P), transfer(trf(1), acc(A), acc(B), eur(101))),
        Refusal::InsufficientFunds,
    );
    assert_refused(
        world.run(prj(P), transfer(trf(1), acc(B), acc(A), eur(1))),
        Refusal::InsufficientFunds,
    );
    assert_eq!(world.store.balance(acc(A)), 100);
    assert_eq!(world.store.balance(acc(B)), 0);
    assert!(world.store.state(&StreamRef::Transfer(trf(1))).is_empty());
}

#[test]
fn accounts_allowing_a_negative_balance_may_go_negative() {
    let mut world = World::new();
    world.ok(prj(P), transfer(trf(1), acc(N), acc(A), eur(700)));
    assert_eq!(world.store.balance(acc(N)), -700);
    assert_eq!(world.store.balance(acc(A)), 700);
    world.ok(prj(P), transfer(trf(2), acc(N), acc(B), eur(300)));
    assert_eq!(world.store.balance(acc(N)), -1_000);
    // The project's total is unchanged (no magic: never written, so zero).
    assert_eq!(world.store.project_total(prj(P), Currency::EUR), None);
    // The money can come back.
    world.ok(prj(P), transfer(trf(3), acc(A), acc(N), eur(700)));
    assert_eq!(world.store.balance(acc(N)), -300);
    assert_eq!(world.store.balance(acc(A)), 0);
}

#[test]
fn transfer_overflow_is_refused() {
    let mut world = World::new();
    // The destination would exceed i64::MAX.
    world.set(A, eur(i64::MAX)).unwrap();
    world.set(N, eur(-i64::MAX)).unwrap();
    world.set(B, eur(1)).unwrap();
    assert_refused(
        world.run(prj(P), transfer(trf(1), acc(B), acc(A), eur(1))),
        Refusal::BalanceOverflow,
    );
    // The source would go below i64::MIN.
    world.set(N, eur(i64::MIN)).unwrap();
    assert_eq!(world.store.project_total(prj(P), Currency::EUR), Some(0));
    assert_refused(
        world.run(prj(P), transfer(trf(2), acc(N), acc(B), eur(1))),
        Refusal::BalanceOverflow,
    );
    // i64::MAX itself moves fine when it fits.
    world.ok(prj(P), transfer(trf(3), acc(A), acc(N), eur(i64::MAX)));
    assert_eq!(world.store.balance(acc(A)), 0);
    assert_eq!(world.store.balance(acc(N)), -1);
}

#[test]
fn transfer_with_missing_or_foreign_accounts_is_not_found() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    world.ok(prj(OTHER), create_project(prj(OTHER), Environment::Sandbox));
    world.ok(prj(OTHER), open_account(acc(60), Currency::EUR, true));
    let run_other = |world: &mut World, command| world.store.execute(&envelope(prj(OTHER), command));
    let t = trf(1);
    for (from, to, missing) in [
        (acc(A), acc(99), acc(99)),
        (acc(99), acc(A), acc(99)),
        (acc(A), acc(60), acc(60)),
        (acc(60), acc(A), acc(60)),
    ] {
        let result = world.run(prj(P), transfer(t, from, to, eur(1)));
        assert_not_found(result, "account", missing);
    }
    // From the other project, P's accounts do not exist either: pulling money
    // out of them is impossible.
    let result = run_other(&mut world, transfer(t, acc(A), acc(60), eur(1)));
    assert_not_found(result, "account", acc(A));
    assert_eq!(world.store.balance(acc(A)), 1_000);
    assert_eq!(world.store.balance(acc(60)), 0);

    // A foreign account is reported exactly like a missing one.
    let mut clean = World::new();
    clean.set(A, eur(1_000)).unwrap();
    assert_eq!(
        world.run(prj(P), transfer(t, acc(A), acc(60), eur(1))),
        clean.run(prj(P), transfer(t, acc(A), acc(60), eur(1))),
    );
}

#[test]
fn update_transfer_meta() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    world.ok(prj(P), transfer(trf(1), acc(A), acc(B), eur(1)));
    let m = meta(&[("note", "rent")]);
    let decision = world.ok(
        prj(P),
        TransferCommand::UpdateTransfer {
            id: trf(1),
            meta: m.clone(),
        }
        .into(),
    );
    assert_eq!(
        events(&decision),
        [(
            StreamRef::Transfer(trf(1)),
            Event::TransferMetaUpdated(MetaUpdated { meta: m.clone() })
        )]
    );
    let transfer = world
        .store
        .state(&StreamRef::Transfer(trf(1)))
        .as_transfer()
        .unwrap();
    assert_eq!(transfer.meta, m);
    assert_eq!(transfer.value, eur(1));

    let missing = world.run(
        prj(P),
        TransferCommand::UpdateTransfer {
            id: trf(2),
            meta: Meta::default(),
        }
        .into(),
    );
    assert_not_found(missing, "transfer", trf(2));
    let foreign = world.store.execute(&envelope(
        prj(L),
        TransferCommand::UpdateTransfer {
            id: trf(1),
            meta: Meta::default(),
        }
        .into(),
    ));
    assert_not_found(foreign, "transfer", trf(1));
    assert_eq!(
        world
            .store
            .state(&StreamRef::Transfer(trf(1)))
            .as_transfer()
            .unwrap()
            .meta,
        m
    );
}

// ---------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------

#[test]
fn idempotency_key_is_recorded_with_the_command() {
    let mut world = World::new();
    let command = with_key(
        envelope(prj(P), open_account(acc(70), Currency::EUR, false)),
        "req-1",
        7,
    );
    let decision = world.store.execute(&command).unwrap();
    let events = events(&decision);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, StreamRef::Account(acc(70)));
    // Kept under its keyed digest, never as sent.
    let stored = idempotency_key(prj(P), "req-1", 7, false).stored;
    assert!(!stored.contains("req-1"), "{stored}");
    assert_eq!(
        events[1],
        (
            StreamRef::Idempotency(prj(P), stored),
            Event::IdempotencyKeyUsed(IdempotencyKeyUsed {
                project_id: prj(P),
                verbatim_key: None,
                request_hash: [7; 32],
                resource: ResourceRef::Account(acc(70)),
                used_at: T0,
            })
        )
    );
}

#[test]
fn retry_with_same_key_and_parameters_replays_the_original() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let first = with_key(
        envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    world.store.execute(&first).unwrap();
    let log = world.store.log.len();
    // The retry carries fresh server-side IDs but the same request hash.
    let retry = with_key(
        at(
            prj(P),
            T0.plus_seconds(23 * HOUR),
            transfer(trf(2), acc(A), acc(B), eur(100)),
        ),
        "pay-1",
        1,
    );
    assert_eq!(
        world.store.execute(&retry),
        Ok(Decision::Replay {
            resource: ResourceRef::Transfer(trf(1))
        })
    );
    assert_eq!(world.store.log.len(), log, "a replay writes nothing");
    assert_eq!(world.store.balance(acc(A)), 900, "the money moved once");
    assert!(world.store.state(&StreamRef::Transfer(trf(2))).is_empty());
}

/// A log written before keys were hashed holds records named by the key as
/// sent. While such a record may be live, a retry looks the key up by
/// itself too and still has one effect; the new record is a digest.
#[test]
fn records_kept_under_the_key_as_sent_still_count() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let first = envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100)));
    world.store.execute(&first).unwrap();
    // What a build before hashing wrote with that transfer.
    world.store.apply(
        &StreamRef::Idempotency(prj(P), "pay-legacy".into()),
        &Event::IdempotencyKeyUsed(IdempotencyKeyUsed {
            project_id: prj(P),
            verbatim_key: Some("pay-legacy".into()),
            request_hash: [1; 32],
            resource: ResourceRef::Transfer(trf(1)),
            used_at: T0,
        }),
    );
    let retry = |hash: u8, look_up_verbatim: bool| {
        let mut retry = at(
            prj(P),
            T0.plus_seconds(HOUR),
            transfer(trf(2), acc(A), acc(B), eur(100)),
        );
        retry.idempotency = Some(idempotency_key(prj(P), "pay-legacy", hash, look_up_verbatim));
        retry
    };
    assert!(
        retry(1, true)
            .streams()
            .contains(&StreamRef::Idempotency(prj(P), "pay-legacy".into()))
    );
    assert_eq!(
        world.store.execute(&retry(1, true)),
        Ok(Decision::Replay {
            resource: ResourceRef::Transfer(trf(1))
        })
    );
    assert_refused(
        world.store.execute(&retry(2, true)),
        Refusal::IdempotencyKeyReused,
    );
    assert_eq!(world.store.balance(acc(A)), 900, "the money moved once");
    // Without the verbatim lookup (no such record can be live any more) the
    // key is new, and its record is a digest.
    let decision = world.store.execute(&retry(1, false)).unwrap();
    let recorded = events(&decision);
    let (stream, _) = recorded.last().unwrap();
    assert_eq!(
        stream,
        &StreamRef::Idempotency(prj(P), idempotency_key(prj(P), "pay-legacy", 1, false).stored)
    );
}

#[test]
fn same_key_with_other_parameters_within_24h_is_refused() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let first = with_key(
        envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    world.store.execute(&first).unwrap();
    let last_instant = T0.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS).micros() - 1;
    for now in [T0, T0.plus_seconds(1), Timestamp::from_micros(last_instant)] {
        let other = with_key(
            at(prj(P), now, transfer(trf(2), acc(A), acc(B), eur(200))),
            "pay-1",
            2,
        );
        assert_refused(world.store.execute(&other), Refusal::IdempotencyKeyReused);
    }
    assert_eq!(world.store.balance(acc(A)), 900);
}

#[test]
fn key_is_usable_again_after_24h() {
    let mut world = World::new();
    world.set(A, eur(1_000)).unwrap();
    let first = with_key(
        envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    world.store.execute(&first).unwrap();
    let later = T0.plus_seconds(IDEMPOTENCY_WINDOW_SECONDS);
    // Same parameters after the window: a new effect, not a replay.
    let again = with_key(
        at(prj(P), later, transfer(trf(2), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    let decision = world.store.execute(&again).unwrap();
    assert_eq!(resource(&decision), ResourceRef::Transfer(trf(2)));
    assert_eq!(world.store.balance(acc(A)), 800);
    // The key's window restarts from its new use.
    let other = with_key(
        at(
            prj(P),
            later.plus_seconds(HOUR),
            transfer(trf(3), acc(A), acc(B), eur(5)),
        ),
        "pay-1",
        9,
    );
    assert_refused(world.store.execute(&other), Refusal::IdempotencyKeyReused);
    let retry = with_key(
        at(
            prj(P),
            later.plus_seconds(HOUR),
            transfer(trf(3), acc(A), acc(B), eur(100)),
        ),
        "pay-1",
        1,
    );
    assert_eq!(
        world.store.execute(&retry),
        Ok(Decision::Replay {
            resource: ResourceRef::Transfer(trf(2))
        })
    );
}

#[test]
fn idempotency_keys_are_per_project() {
    let mut world = World::new();
    world.ok(prj(OTHER), create_project(prj(OTHER), Environment::Sandbox));
    let mine = with_key(
        envelope(prj(P), open_account(acc(80), Currency::EUR, false)),
        "k",
        1,
    );
    world.store.execute(&mine).unwrap();
    let theirs = with_key(
        envelope(prj(OTHER), open_account(acc(81), Currency::EUR, false)),
        "k",
        1,
    );
    let decision = world.store.execute(&theirs).unwrap();
    assert_eq!(resource(&decision), ResourceRef::Account(acc(81)));
    assert!(
        world
            .store
            .state(&StreamRef::Account(acc(81)))
            .as_account()
            .is_some()
    );
}

#[test]
fn a_failed_command_does_not_use_up_its_key() {
    let mut world = World::new();
    let attempt = with_key(
        envelope(prj(P), transfer(trf(1), acc(A), acc(B), eur(100))),
        "pay-1",
        1,
    );
    assert_refused(world.store.execute(&attempt), Refusal::InsufficientFunds);
    assert!(
        world
            .store
            .state(&StreamRef::Idempotency(prj(P), "pay-1".into()))
            .is_empty()
    );
    world.set(A, eur(100)).unwrap();
    let decision = world.store.execute(&attempt).unwrap();
    assert_eq!(resource(&decision), ResourceRef::Transfer(trf(1)));
    assert_eq!(world.store.balance(acc(B)), 100);
}

#[test]
fn idempotency_key_shape_is_checked() {
    for bad in [
        String::new(),
        "has space".into(),
        "tab\t".into(),
        "ñ".into(),
        "k".repeat(256),
    ] {
        let error = IdempotencyKey::new(&bad, prj(P), SECRET, [0; 32], false).unwrap_err();
        let DomainError::Invalid(violations) = error else {
            panic!("{bad:?}: expected invalid");
        };
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "idempotency-key", "{bad:?}");
    }
    for good in ["a", "req_01-ABC.x:y", &"k".repeat(255)] {
        assert!(
            IdempotencyKey::new(good, prj(P), SECRET, [0; 32], false).is_ok(),
            "{good}"
        );
    }
}

// ---------------------------------------------------------------------------
// Refusals write nothing
// ---------------------------------------------------------------------------

#[test]
fn every_refused_or_invalid_command_writes_nothing() {
    let mut world = World::new();
    world.set(A, eur(100)).unwrap();
    let (bad, _) = bad_identity();
    let failing = vec![
        create_project(prj(P), Environment::Sandbox),
        CustomerCommand::UpdateCustomer {
            id: cus(1),
            identity: None,
            meta: None,
        }
        .into(),
        CustomerCommand::CreateCustomer {
            id: cus(2),
            identity: Some(bad),
            meta: Meta::default(),
        }
        .into(),
        open_account(acc(A), Currency::EUR, false),
        set_allowance(acc(99), true),
        set_balance(acc(B), eur(-1), tx(900)),
        set_balance(acc(B), usd(1), tx(900)),
        set_balance(acc(N), eur(-101), tx(900)),
        transfer(trf(1), acc(A), acc(B), eur(101)),
        transfer(trf(1), acc(A), acc(B), eur(0)),
        transfer(trf(1), acc(A), acc(A), eur(1)),
        transfer(trf(1), acc(A), acc(U), eur(1)),
        transfer(trf(1), acc(A), acc(B), usd(1)),
        TransferCommand::UpdateTransfer {
            id: trf(1),
            meta: Meta::default(),
        }
        .into(),
        ProjectCommand::RevokeApiKey { id: key(1) }.into(),
    ];
    for command in failing {
        let states = world.store.states.clone();
        let log = world.store.log.len();
        let keyed = with_key(envelope(prj(P), command.clone()), "fail", 3);
        for envelope in [envelope(prj(P), command.clone()), keyed] {
            let result = world.store.execute(&envelope);
            assert!(result.is_err(), "{command:?} should fail, got {result:?}");
            assert_eq!(world.store.states, states, "{command:?} changed state");
            assert_eq!(world.store.log.len(), log, "{command:?} wrote events");
        }
    }
    // Live projects refuse magic balances without writing.
    world.ok(prj(L), open_account(acc(90), Currency::EUR, true));
    let log = world.store.log.len();
    assert!(world.run(prj(L), set_balance(acc(90), eur(1), tx(901))).is_err());
    assert_eq!(world.store.log.len(), log);
}
