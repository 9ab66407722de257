//! The event codec: what the log stores must decode back to the same event,
//! forever. Unknown types, future schema versions and corrupt payloads are
//! typed errors, never panics or silently wrong events.

use std::collections::BTreeSet;

use paycore_domain::api_key::KeyKind;
use paycore_domain::events::*;
use paycore_domain::identity::{Address, Date, DocumentType, EmploymentStatus, Identity, IdentityDocument};
use paycore_domain::*;
use uuid::Uuid;

const T: Timestamp = Timestamp::from_micros(1_750_000_000_123_456);

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0197_0000_0000_7000_8000_0000_0000_0000 | n)
}

fn meta() -> Meta {
    let mut violations = Violations::new();
    Meta::parse(
        [
            ("_name".to_owned(), "Main €".to_owned()),
            ("order".to_owned(), "42".to_owned()),
        ],
        "meta",
        &mut violations,
    )
    .expect("valid meta")
}

fn identity() -> Identity {
    Identity {
        first_name: "Zoë".into(),
        last_name: "O'Brien".into(),
        email_address: Some("zoe@example.com".into()),
        phone_number: Some("+353871234567".into()),
        nationality: Some("IE".into()),
        employment_status: Some(EmploymentStatus::SelfEmployed),
        address: Some(Address {
            line_1: "1 Main St".into(),
            line_2: "Apt 2".into(),
            postal_code: "D02".into(),
            city: "Dublin".into(),
            region: "Leinster".into(),
            country: "IE".into(),
        }),
        document: Some(IdentityDocument {
            document_type: DocumentType::Passport,
            country: "IE".into(),
            number: "P1234567".into(),
            expiration_date: Date::new(2031, 2, 28),
            front_file_id: Some(FileId::from_uuid(id(90))),
            back_file_id: None,
            selfie_file_id: Some(FileId::from_uuid(id(91))),
        }),
    }
}

fn transaction(kind: TransactionKind, value: i64, after: i64) -> Transaction {
    Transaction {
        id: TransactionId::from_uuid(id(40)),
        account_id: AccountId::from_uuid(id(30)),
        project_id: ProjectId::from_uuid(id(1)),
        kind,
        value: Money::new(value, Currency::EUR),
        balance_after: Money::new(after, Currency::EUR),
        created_at: T,
    }
}

/// At least one event of every type, with every enum variant inside.
fn samples() -> Vec<Event> {
    let project = ProjectId::from_uuid(id(1));
    let transfer = TransferId::from_uuid(id(50));
    let account = AccountId::from_uuid(id(30));
    let mut events = vec![
        Event::ProjectCreated(ProjectCreated {
            id: project,
            name: "Acme".into(),
            environment: Environment::Sandbox,
            meta: meta(),
            created_at: T,
        }),
        Event::ProjectCreated(ProjectCreated {
            id: project,
            name: String::new(),
            environment: Environment::Live,
            meta: Meta::default(),
            created_at: Timestamp::from_micros(i64::MIN),
        }),
        Event::ProjectMetaUpdated(MetaUpdated { meta: meta() }),
        Event::ApiKeyCreated(ApiKeyCreated {
            id: ApiKeyId::from_uuid(id(10)),
            project_id: project,
            kind: KeyKind::Secret,
            secret_hash: [0xa5; 32],
            created_at: T,
        }),
        Event::ApiKeyCreated(ApiKeyCreated {
            id: ApiKeyId::from_uuid(id(11)),
            project_id: project,
            kind: KeyKind::Public,
            secret_hash: [0; 32],
            created_at: T,
        }),
        Event::ApiKeyRevoked(ApiKeyRevoked { revoked_at: T }),
        Event::CustomerCreated(CustomerCreated {
            id: CustomerId::from_uuid(id(20)),
            project_id: project,
            identity: Some(identity()),
            meta: meta(),
            created_at: T,
        }),
        Event::CustomerCreated(CustomerCreated {
            id: CustomerId::from_uuid(id(21)),
            project_id: project,
            identity: None,
            meta: Meta::default(),
            created_at: T,
        }),
        Event::CustomerIdentityUpdated(CustomerIdentityUpdated {
            identity: Some(identity()),
        }),
        Event::CustomerIdentityUpdated(CustomerIdentityUpdated { identity: None }),
        Event::CustomerMetaUpdated(MetaUpdated {
            meta: Meta::default(),
        }),
        Event::AccountOpened(AccountOpened {
            id: account,
            project_id: project,
            customer_id: Some(CustomerId::from_uuid(id(20))),
            currency: "JPY".parse().expect("JPY"),
            allow_negative_balance: true,
            meta: meta(),
            created_at: T,
        }),
        Event::NegativeBalanceAllowanceChanged(NegativeBalanceAllowanceChanged {
            allow_negative_balance: false,
        }),
        Event::AccountMetaUpdated(MetaUpdated { meta: meta() }),
        Event::TransactionRecorded(TransactionRecorded {
            transaction: transaction(TransactionKind::Magic, i64::MAX, i64::MAX),
        }),
        Event::TransactionRecorded(TransactionRecorded {
            transaction: transaction(TransactionKind::TransferSource(transfer), -250, i64::MIN),
        }),
        Event::TransactionRecorded(TransactionRecorded {
            transaction: transaction(TransactionKind::TransferDestination(transfer), 250, 0),
        }),
        Event::TransferCreated(TransferCreated {
            id: transfer,
            project_id: project,
            source_account_id: account,
            destination_account_id: AccountId::from_uuid(id(31)),
            source_transaction_id: TransactionId::from_uuid(id(41)),
            destination_transaction_id: TransactionId::from_uuid(id(42)),
            value: Money::new(250, Currency::USD),
            meta: meta(),
            created_at: T,
        }),
        Event::TransferMetaUpdated(MetaUpdated { meta: meta() }),
        Event::ProjectBalanceChanged(ProjectBalanceChanged {
            project_id: project,
            delta: Money::new(-5, Currency::EUR),
            total_after: Money::new(0, Currency::EUR),
            account_id: account,
            transaction_id: TransactionId::from_uuid(id(40)),
        }),
    ];
    for resource in [
        ResourceRef::Project(project),
        ResourceRef::ApiKey(ApiKeyId::from_uuid(id(10))),
        ResourceRef::Customer(CustomerId::from_uuid(id(20))),
        ResourceRef::Account(account),
        ResourceRef::Transfer(transfer),
    ] {
        events.push(Event::IdempotencyKeyUsed(IdempotencyKeyUsed {
            project_id: project,
            key: "req-01J~x".into(),
            request_hash: [0x5a; 32],
            resource,
            used_at: T,
        }));
    }
    events
}

#[test]
fn samples_cover_every_event_type() {
    let covered: BTreeSet<&str> = samples().iter().map(Event::event_type).collect();
    let known: BTreeSet<&str> = Event::TYPES.iter().copied().collect();
    assert_eq!(
        covered, known,
        "add a sample (and a golden payload) for every new event type"
    );
    assert_eq!(known.len(), Event::TYPES.len(), "event type names are unique");
}

#[test]
fn every_event_decodes_what_it_encodes() {
    for event in samples() {
        let encoded = event.encode();
        assert_eq!(encoded.event_type, event.event_type());
        assert_eq!(encoded.schema_version, 1);
        assert!(!encoded.payload.is_empty() || matches!(event, Event::CustomerMetaUpdated(_)));
        let decoded = Event::decode(encoded.event_type, encoded.schema_version, &encoded.payload);
        assert_eq!(decoded.as_ref(), Ok(&event), "{}", encoded.event_type);
        // Decoding is deterministic: encoding again gives the same bytes.
        assert_eq!(decoded.expect("decoded").encode(), encoded);
    }
}

#[test]
fn unknown_type_is_a_typed_error() {
    for name in ["", "AccountClosed", "accountopened", "AccountOpened ", "Event"] {
        assert_eq!(
            Event::decode(name, 1, &[]),
            Err(DecodeError::UnknownType(name.to_owned())),
            "{name:?}"
        );
    }
}

#[test]
fn future_schema_version_is_a_typed_error() {
    for event in samples() {
        let encoded = event.encode();
        for version in [2, 7, u16::MAX] {
            assert_eq!(
                Event::decode(encoded.event_type, version, &encoded.payload),
                Err(DecodeError::FutureVersion {
                    event_type: encoded.event_type.to_owned(),
                    found: version,
                    known: 1,
                }),
            );
        }
    }
}

#[test]
fn garbage_payload_is_a_typed_error() {
    let is_payload_error = |result: Result<Event, DecodeError>, event_type: &str| match result {
        Err(DecodeError::Payload {
            event_type: t,
            version,
            reason,
        }) => {
            assert_eq!((t.as_str(), version), (event_type, 1));
            assert!(!reason.is_empty());
        }
        other => panic!("{event_type}: expected a payload error, got {other:?}"),
    };
    for event in samples() {
        let encoded = event.encode();
        let name = encoded.event_type;
        // Cut short anywhere: never a panic, never a wrong event.
        for len in 0..encoded.payload.len() {
            let result = Event::decode(name, 1, &encoded.payload[..len]);
            is_payload_error(result, name);
        }
        // Bytes that are not a varint at all.
        is_payload_error(Event::decode(name, 1, &[0xff; 11]), name);
    }
    // An enum discriminant out of range (environment 9).
    let mut bytes = samples()[0].encode().payload;
    // The ID is a length byte and 16 bytes, the name a length byte and text.
    let environment_at = 1 + 16 + 1 + "Acme".len();
    assert_eq!(bytes[environment_at], 0, "Sandbox is variant 0");
    bytes[environment_at] = 9;
    is_payload_error(Event::decode("ProjectCreated", 1, &bytes), "ProjectCreated");
    // Text that is not UTF-8 (the name's first byte starts a 2-byte sequence).
    let mut bytes = samples()[0].encode().payload;
    bytes[1 + 16 + 1] = 0xc3;
    is_payload_error(Event::decode("ProjectCreated", 1, &bytes), "ProjectCreated");
}

/// The stored bytes of one event per type. If this fails, a payload's shape
/// changed: old logs would no longer decode. Bump the type's schema version,
/// keep the old struct and upcast it in `Event::decode` (see events.rs), then
/// update the bytes here.
#[test]
fn payload_bytes_are_stable() {
    let golden: &[(&str, &str)] = &[
        (
            "ProjectCreated",
            "10019700000000700080000000000000010441636d650002055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "ProjectMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "ApiKeyCreated",
            "100197000000007000800000000000000a100197000000007000800000000000000100a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a58089ea85b4e79b06",
        ),
        ("ApiKeyRevoked", "8089ea85b4e79b06"),
        (
            "CustomerCreated",
            "1001970000000070008000000000000014100197000000007000800000000000000101045a6fc3ab074f27427269656e010f7a6f65406578616d706c652e636f6d010d2b333533383731323334353637010249450102010931204d61696e20537405417074203203443032064475626c696e084c65696e73746572024945010102494508503132333435363701ef0f021c01100197000000007000800000000000005a0001100197000000007000800000000000005b02055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "CustomerIdentityUpdated",
            "01045a6fc3ab074f27427269656e010f7a6f65406578616d706c652e636f6d010d2b333533383731323334353637010249450102010931204d61696e20537405417074203203443032064475626c696e084c65696e73746572024945010102494508503132333435363701ef0f021c01100197000000007000800000000000005a0001100197000000007000800000000000005b",
        ),
        ("CustomerMetaUpdated", "00"),
        (
            "AccountOpened",
            "100197000000007000800000000000001e10019700000000700080000000000000010110019700000000700080000000000000144a50590102055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        ("NegativeBalanceAllowanceChanged", "00"),
        (
            "AccountMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "TransactionRecorded",
            "1001970000000070008000000000000028100197000000007000800000000000001e100197000000007000800000000000000100feffffffffffffffff01455552feffffffffffffffff014555528089ea85b4e79b06",
        ),
        (
            "TransferCreated",
            "10019700000000700080000000000000321001970000000070008000000000000001100197000000007000800000000000001e100197000000007000800000000000001f1001970000000070008000000000000029100197000000007000800000000000002af40355534402055f6e616d65084d61696e20e282ac056f726465720234328089ea85b4e79b06",
        ),
        (
            "TransferMetaUpdated",
            "02055f6e616d65084d61696e20e282ac056f72646572023432",
        ),
        (
            "ProjectBalanceChanged",
            "10019700000000700080000000000000010945555200455552100197000000007000800000000000001e1001970000000070008000000000000028",
        ),
        (
            "IdempotencyKeyUsed",
            "1001970000000070008000000000000001097265712d30314a7e785a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a0010019700000000700080000000000000018089ea85b4e79b06",
        ),
    ];
    let mut actual: Vec<(&str, String)> = Vec::new();
    for event in samples() {
        let encoded = event.encode();
        if actual.iter().all(|(name, _)| *name != encoded.event_type) {
            actual.push((encoded.event_type, hex::encode(&encoded.payload)));
        }
    }
    let expected: Vec<(&str, String)> = golden
        .iter()
        .map(|(name, hex)| (*name, (*hex).to_owned()))
        .collect();
    if actual != expected {
        let table: String = actual
            .iter()
            .map(|(name, hex)| format!("        (\"{name}\", \"{hex}\"),\n"))
            .collect();
        panic!("stored payload bytes changed; the current table is:\n{table}");
    }
}

/// The upcasting path, exercised with a payload that changed shape: version
/// 1 had only `amount`; version 2 added `note`. Old events decode into the
/// new shape through the same function the event codec uses.
mod upcasting {
    use paycore_domain::events::{DecodeError, Versioned, decode_payload};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct WidgetV1 {
        amount: i64,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Widget {
        amount: i64,
        note: String,
    }

    impl Versioned for Widget {
        const VERSION: u16 = 2;

        fn upcast(version: u16, payload: &[u8]) -> Option<Result<Self, postcard::Error>> {
            (version == 1).then(|| {
                postcard::from_bytes::<WidgetV1>(payload).map(|old| Widget {
                    amount: old.amount,
                    note: String::new(),
                })
            })
        }
    }

    #[test]
    fn an_old_version_is_upcast_and_the_current_one_read_as_is() {
        let v1 = postcard::to_stdvec(&WidgetV1 { amount: 42 }).unwrap();
        assert_eq!(
            decode_payload::<Widget>("Widget", 1, &v1),
            Ok(Widget {
                amount: 42,
                note: String::new()
            })
        );
        let v2 = postcard::to_stdvec(&Widget {
            amount: 7,
            note: "x".into(),
        })
        .unwrap();
        assert_eq!(
            decode_payload::<Widget>("Widget", 2, &v2),
            Ok(Widget {
                amount: 7,
                note: "x".into()
            })
        );
        assert!(matches!(
            decode_payload::<Widget>("Widget", 3, &v2),
            Err(DecodeError::FutureVersion {
                found: 3,
                known: 2,
                ..
            })
        ));
        assert!(matches!(
            decode_payload::<Widget>("Widget", 0, &v1),
            Err(DecodeError::Payload { version: 0, .. })
        ));
    }
}
