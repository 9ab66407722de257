//! Aggregation connections: creation, the lifecycle diagram (only its
//! arrows), sources, consent and deletion.

#![allow(clippy::unwrap_used)]

mod common;

use common::ledger::assert_not_found;
use common::open_banking::*;
use common::*;
use paycore_domain::aggregation_connection::*;
use paycore_domain::kernel::error::Refusal;
use paycore_domain::*;

use ConnectionStatus as S;

fn every_status() -> Vec<ConnectionStatus> {
    vec![
        S::InitialActionRequired { reason: None },
        S::Connecting,
        S::Updating,
        S::Connected,
        S::ActionRequired {
            reason: ActionRequiredReason::ScaRequired,
        },
        S::RefreshDelayed {
            next_try_at: T0.plus_seconds(3_600),
        },
    ]
}

/// The arrows of the diagram in kernel-financial-aggregation-guide.txt.
const DIAGRAM: &[(&str, &str)] = &[
    ("INITIAL_ACTION_REQUIRED", "CONNECTING"),
    ("CONNECTING", "UPDATING"),
    ("CONNECTING", "INITIAL_ACTION_REQUIRED"),
    ("UPDATING", "ACTION_REQUIRED"),
    ("ACTION_REQUIRED", "UPDATING"),
    ("CONNECTED", "UPDATING"),
    ("UPDATING", "CONNECTED"),
    ("UPDATING", "REFRESH_DELAYED"),
    ("REFRESH_DELAYED", "UPDATING"),
];

#[test]
fn may_become_is_exactly_the_diagram() {
    for from in every_status() {
        for to in every_status() {
            let drawn = DIAGRAM.contains(&(from.name(), to.name()));
            assert_eq!(from.may_become(&to), drawn, "{} → {}", from.name(), to.name());
        }
    }
}

#[test]
fn a_new_connection_needs_the_end_user_and_holds_no_personal_data() {
    let mut world = World::new();
    let events = world.events(create_connection(conn(1), cus(C), Some(bank())));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, StreamRef::AggregationConnection(conn(1)));
    let connection = world.connection(conn(1));
    assert_eq!(connection.status, S::InitialActionRequired { reason: None });
    assert_eq!(connection.customer_id, cus(C));
    assert_eq!(connection.institution_id, Some(bank()));
    assert_eq!(connection.sources.len(), 2);
    assert!(
        connection
            .sources
            .iter()
            .all(|s| s.state == SourceState::NotSynced && s.last_update.is_none())
    );
    assert_eq!(connection.consent, None);
}

#[test]
fn bad_creations_write_nothing() {
    let mut world = World::new();
    assert_not_found(
        world.run(P, create_connection(conn(1), cus(99), Some(bank()))),
        "customer",
        cus(99),
    );
    // Another project's customer is not found either.
    assert_not_found(
        world.run(P, create_connection(conn(1), cus(OTHER_CUSTOMER), Some(bank()))),
        "customer",
        cus(OTHER_CUSTOMER),
    );
    assert_refused(
        world.run(P, create_connection(conn(1), cus(C), Some(other_bank()))),
        Refusal::InstitutionNotActive,
    );
    let mut duplicate = sources();
    duplicate[1].kind = SourceKind::Psd2Api;
    let bad = AggregationConnectionCommand::CreateAggregationConnection {
        id: conn(1),
        customer_id: cus(C),
        institution_id: Some(bank()),
        sources: duplicate,
        redirect_url: Some("javascript:alert(1)".into()),
    };
    assert_eq!(
        invalid_fields(world.run(P, bad.into())),
        ["sources[1].kind", "redirect_url"]
    );
    world.ok(prj(P), create_connection(conn(1), cus(C), Some(bank())));
    match world.run(P, create_connection(conn(1), cus(C), Some(bank()))) {
        Err(DomainError::AlreadyExists { .. }) => {}
        other => panic!("expected already exists, got {other:?}"),
    }
}

#[test]
fn the_whole_lifecycle_follows_the_diagram() {
    let mut world = World::new();
    let id = conn(1);
    world.ok(prj(P), create_connection(id, cus(C), Some(bank())));
    let otp = S::InitialActionRequired {
        reason: Some(ActionRequiredReason::OneTimeCodeRequired),
    };
    let delayed = S::RefreshDelayed {
        next_try_at: T0.plus_seconds(600),
    };
    let sca = S::ActionRequired {
        reason: ActionRequiredReason::ScaRequired,
    };
    for next in [
        S::Connecting,
        otp,
        S::Connecting,
        S::Updating,
        S::Connected,
        S::Updating,
        delayed,
        S::Updating,
        sca,
        S::Updating,
        S::Connected,
    ] {
        let events = world.events(status(id, next));
        assert_eq!(events.len(), 1, "→ {}", next.name());
        assert_eq!(world.connection(id).status, next);
    }
}

#[test]
fn moves_off_the_diagram_are_refused_precisely() {
    let mut world = World::new();
    let id = conn(1);
    world.ok(prj(P), create_connection(id, cus(C), Some(bank())));
    for (to, from_name) in [
        (S::Connected, "INITIAL_ACTION_REQUIRED"),
        (S::Updating, "INITIAL_ACTION_REQUIRED"),
    ] {
        match world.run(P, status(id, to)) {
            Err(DomainError::Refused {
                refusal: Refusal::ConnectionTransitionNotAllowed,
                message,
            }) => assert_eq!(
                message,
                format!(
                    "aggregation connection {id} cannot go from {from_name} to {}",
                    to.name()
                )
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    world.ok(prj(P), status(id, S::Connecting));
    world.ok(prj(P), status(id, S::Updating));
    world.ok(prj(P), status(id, S::Connected));
    for to in [
        S::Connecting,
        S::InitialActionRequired { reason: None },
        S::ActionRequired {
            reason: ActionRequiredReason::CredentialsInvalid,
        },
        S::RefreshDelayed {
            next_try_at: T0.plus_seconds(60),
        },
    ] {
        assert_refused(
            world.run(P, status(id, to)),
            Refusal::ConnectionTransitionNotAllowed,
        );
    }
}

#[test]
fn the_same_status_again_writes_nothing() {
    let mut world = World::new();
    let id = world.updating_connection(1);
    assert!(world.events(status(id, S::Updating)).is_empty());
    let delayed = S::RefreshDelayed {
        next_try_at: T0.plus_seconds(600),
    };
    world.ok(prj(P), status(id, delayed));
    assert!(world.events(status(id, delayed)).is_empty());
    // Another next try is not the same status, and not an arrow.
    assert_refused(
        world.run(
            P,
            status(
                id,
                S::RefreshDelayed {
                    next_try_at: T0.plus_seconds(900),
                },
            ),
        ),
        Refusal::ConnectionTransitionNotAllowed,
    );
}

#[test]
fn status_values_are_checked() {
    let mut world = World::new();
    let id = world.updating_connection(1);
    let past = S::RefreshDelayed { next_try_at: T0 };
    assert_eq!(
        invalid_fields(world.run(P, status(id, past))),
        ["status.next_try_at"]
    );
    let expired = S::ActionRequired {
        reason: ActionRequiredReason::ConsentExpired,
    };
    assert_eq!(
        invalid_fields(world.run(P, status(id, expired))),
        ["status.reason"]
    );
}

#[test]
fn the_bank_selection_page_chooses_the_institution_once() {
    let mut world = World::new();
    let id = conn(1);
    world.ok(prj(P), create_connection(id, cus(C), None));
    assert!(world.connection(id).sources.is_empty());
    match world.run(P, status(id, S::Connecting)) {
        Err(DomainError::Refused {
            refusal: Refusal::ConnectionTransitionNotAllowed,
            message,
        }) => assert!(message.contains("before its institution is chosen"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let choose = |institution| -> Command {
        AggregationConnectionCommand::ChooseAggregationInstitution {
            id,
            institution_id: institution,
            sources: sources(),
        }
        .into()
    };
    assert_eq!(world.events(choose(bank())).len(), 1);
    assert_eq!(world.connection(id).institution_id, Some(bank()));
    assert_eq!(world.connection(id).sources.len(), 2);
    assert!(world.events(choose(bank())).is_empty());
    assert_eq!(
        invalid_fields(world.run(P, choose(other_bank()))),
        ["institution_id"]
    );
    world.ok(prj(P), status(id, S::Connecting));
}

#[test]
fn sources_keep_their_own_state() {
    let mut world = World::new();
    let id = world.updating_connection(1);
    let update = |kind, state, disabled| -> Command {
        AggregationConnectionCommand::UpdateAggregationSource {
            id,
            kind,
            state,
            disabled,
        }
        .into()
    };
    world.advance(60);
    world.ok(prj(P), update(SourceKind::Psd2Api, SourceState::Synced, false));
    let sca = SourceState::ActionRequired {
        reason: ActionRequiredReason::ScaRequired,
    };
    world.ok(prj(P), update(SourceKind::Web, sca, true));
    let connection = world.connection(id);
    let psd2 = connection
        .sources
        .iter()
        .find(|s| s.kind == SourceKind::Psd2Api)
        .unwrap();
    let web = connection
        .sources
        .iter()
        .find(|s| s.kind == SourceKind::Web)
        .unwrap();
    assert_eq!(
        (psd2.state, psd2.last_update, psd2.priority),
        (SourceState::Synced, Some(world.now), 0)
    );
    assert_eq!(
        (web.state, web.last_update, web.disabled, web.priority),
        (sca, None, true, 1)
    );
    assert!(world.events(update(SourceKind::Web, sca, true)).is_empty());

    world.ok(prj(P), create_connection(conn(2), cus(C), None));
    assert_eq!(
        invalid_fields(
            world.run(
                P,
                AggregationConnectionCommand::UpdateAggregationSource {
                    id: conn(2),
                    kind: SourceKind::Web,
                    state: SourceState::Synced,
                    disabled: false,
                }
                .into()
            )
        ),
        ["kind"]
    );
}

#[test]
fn consent_lasts_at_most_180_days_and_its_expiry_requires_action() {
    let mut world = World::new();
    let id = conn(1);
    world.ok(prj(P), create_connection(id, cus(C), Some(bank())));
    assert_refused(world.run(P, grant(id, 180)), Refusal::ConnectionNotConnected);
    world.ok(prj(P), status(id, S::Connecting));
    assert_eq!(invalid_fields(world.run(P, grant(id, 181))), ["valid_for_days"]);
    assert_eq!(invalid_fields(world.run(P, grant(id, 0))), ["valid_for_days"]);
    let expire: Command = AggregationConnectionCommand::ExpireAggregationConsent { id }.into();
    assert_refused(world.run(P, expire.clone()), Refusal::ConsentMissing);
    world.ok(prj(P), grant(id, 180));
    let consent = world.connection(id).consent.unwrap();
    assert_eq!(consent.granted_at, T0);
    assert_eq!(consent.expires_at, T0.plus_seconds(180 * DAY));
    world.ok(prj(P), status(id, S::Updating));
    world.ok(prj(P), status(id, S::Connected));

    world.advance(180 * DAY - 1);
    assert_refused(world.run(P, expire.clone()), Refusal::ConsentNotExpired);
    world.advance(1);
    assert_eq!(world.events(expire.clone()).len(), 1);
    let connection = world.connection(id);
    assert_eq!(
        connection.status,
        S::ActionRequired {
            reason: ActionRequiredReason::ConsentExpired
        }
    );
    assert_eq!(connection.consent, None);
    // Recorded once, however often the scheduler asks.
    assert!(world.events(expire).is_empty());
    // No sync before the end user consents again.
    assert_refused(world.run(P, status(id, S::Updating)), Refusal::ConsentExpired);
    // Renewed: the end user consents again, and syncs go on.
    world.ok(prj(P), grant(id, 90));
    world.ok(prj(P), status(id, S::Updating));
    assert_eq!(
        world.connection(id).consent.unwrap().expires_at,
        world.now.plus_seconds(90 * DAY)
    );
}

#[test]
fn consent_cannot_expire_before_the_first_sign_in() {
    assert!(!S::InitialActionRequired { reason: None }.may_expire_consent());
    assert!(!S::Connecting.may_expire_consent());
    let mut world = World::new();
    let id = conn(1);
    world.ok(prj(P), create_connection(id, cus(C), Some(bank())));
    world.ok(prj(P), status(id, S::Connecting));
    world.ok(prj(P), grant(id, 1));
    world.advance(2 * DAY);
    assert_refused(
        world.run(
            P,
            AggregationConnectionCommand::ExpireAggregationConsent { id }.into(),
        ),
        Refusal::ConnectionTransitionNotAllowed,
    );
}

#[test]
fn a_deleted_connection_is_gone_for_every_command() {
    let mut world = World::new();
    let id = world.updating_connection(1);
    let delete: Command = AggregationConnectionCommand::DeleteAggregationConnection { id }.into();
    assert_eq!(world.events(delete.clone()).len(), 1);
    assert_eq!(world.connection(id).deleted_at, Some(T0));
    for command in [
        delete,
        status(id, S::Connected),
        grant(id, 10),
        AggregationConnectionCommand::ExpireAggregationConsent { id }.into(),
        AggregationConnectionCommand::UpdateAggregationSource {
            id,
            kind: SourceKind::Web,
            state: SourceState::Synced,
            disabled: false,
        }
        .into(),
    ] {
        assert_not_found(world.run(P, command), "aggregation connection", id);
    }
}

#[test]
fn another_projects_connection_is_not_found() {
    let mut world = World::new();
    let id = world.updating_connection(1);
    assert_not_found(
        world.run(OTHER, status(id, S::Connected)),
        "aggregation connection",
        id,
    );
    assert_not_found(
        world.run(
            OTHER,
            AggregationConnectionCommand::DeleteAggregationConnection { id }.into(),
        ),
        "aggregation connection",
        id,
    );
}

#[test]
fn the_audit_rules_accept_what_the_deciders_write_and_catch_the_rest() {
    let mut world = World::new();
    let id = conn(1);
    world.ok(prj(P), create_connection(id, cus(C), Some(bank())));
    let mut checked = 0;
    let mut follow = |world: &mut World, command: Command| {
        let before = world.connection(id).clone();
        for (_, event) in world.events(command) {
            match &event {
                Event::AggregationConnectionStatusChanged(e) => {
                    assert_eq!(check_status_changed(&before, e), None);
                    checked += 1;
                }
                Event::AggregationConsentExpired(e) => {
                    assert_eq!(check_consent_expired(&before, e), None);
                    checked += 1;
                }
                _ => {}
            }
        }
    };
    follow(&mut world, status(id, S::Connecting));
    follow(&mut world, grant(id, 1));
    follow(&mut world, status(id, S::Updating));
    follow(&mut world, status(id, S::Connected));
    world.advance(DAY);
    follow(
        &mut world,
        AggregationConnectionCommand::ExpireAggregationConsent { id }.into(),
    );
    assert_eq!(checked, 4);

    let connected = world.connection(id).clone();
    let jump = AggregationConnectionStatusChanged {
        status: S::Connecting,
        changed_at: world.now,
    };
    assert_eq!(
        check_status_changed(&connected, &jump),
        Some(ConnectionRule::NotInDiagram)
    );
    let early = AggregationConsentExpired {
        expired_at: world.now,
    };
    assert_eq!(
        check_consent_expired(&connected, &early).map(ConnectionRule::name),
        Some("aggregation_consent_expiry_on_time")
    );
    let mut fresh = connected.clone();
    fresh.status = S::Connecting;
    assert_eq!(
        check_consent_expired(&fresh, &early),
        Some(ConnectionRule::ConsentExpiryNotAllowed)
    );
    let mut deleted = connected;
    deleted.deleted_at = Some(world.now);
    assert_eq!(
        check_status_changed(&deleted, &jump),
        Some(ConnectionRule::AfterDeletion)
    );
}
