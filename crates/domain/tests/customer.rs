//! The customer family's deciders: customers and their identities.
//!
//! Every call runs through the mini event store of `common`, which checks
//! the contract the engine relies on: `decide` reads and writes only the
//! streams that `CommandEnvelope::streams` and
//! `CommandEnvelope::dependent_streams` declare, and a refused command
//! changes nothing.

use paycore_domain::customer::CustomerCommand;
use paycore_domain::customer::identity::Identity;
use paycore_domain::events::*;
use paycore_domain::file::FileCommand;
use paycore_domain::*;
use uuid::Uuid;

mod common;

use common::ledger::*;
use common::*;

// ---------------------------------------------------------------------------
// Customers
// ---------------------------------------------------------------------------

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
