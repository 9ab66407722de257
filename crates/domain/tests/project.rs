//! The project family's deciders: projects and their API keys.
//!
//! Every call runs through the mini event store of `common`, which checks
//! the contract the engine relies on: `decide` reads and writes only the
//! streams that `CommandEnvelope::streams` and
//! `CommandEnvelope::dependent_streams` declare, and a refused command
//! changes nothing.

use paycore_domain::customer::CustomerCommand;
use paycore_domain::events::*;
use paycore_domain::project::ProjectCommand;
use paycore_domain::project::api_key::KeyKind;
use paycore_domain::*;

mod common;

use common::ledger::*;
use common::*;

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
