#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! The sign-in steps with the sandbox bank's test users: each answer moves
//! the connection along the diagram and nothing else, and a step waiting
//! for the end user survives a restart.

mod common;

use std::sync::Arc;

use common::*;
use paycore_aggregation_sync::{SECRETS_NAMESPACE, SignInStep, SyncError};
use paycore_bank_connector::{RedirectCallback, SandboxBank};
use paycore_domain::aggregation_connection::{ActionRequiredReason, ConnectionStatus};
use paycore_domain::aggregation_import::ImportStatus;
use paycore_domain::{Event, ProjectId};

fn sandbox() -> Arc<SandboxBank> {
    Arc::new(SandboxBank::new())
}

/// The statuses a connection went through, in order.
async fn statuses(world: &World, connection: paycore_domain::AggregationConnectionId) -> Vec<&'static str> {
    let stream = paycore_domain::StreamRef::AggregationConnection(connection).name();
    world
        .events()
        .await
        .into_iter()
        .filter(|(name, _)| *name == stream)
        .filter_map(|(_, event)| match event {
            Event::AggregationConnectionStatusChanged(e) => Some(e.status.name()),
            Event::AggregationConsentExpired(_) => Some("ACTION_REQUIRED (consent expired)"),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_good_user_signs_in_consents_and_the_first_import_finds_the_accounts() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.connection(RHEINBANK).await;
    let step = syncer
        .submit_credentials(world.project, connection, "user_good", "pass_good")
        .await
        .unwrap();
    let SignInStep::Connected { import_id } = step else {
        panic!("{step:?}")
    };
    syncer.wait_idle().await;
    let import = world.import(import_id).await;
    assert_eq!(import.status, ImportStatus::Succeeded);
    assert_eq!(import.progress.accounts_found, 5);
    let state = world.state(connection).await;
    assert_eq!(state.status, ConnectionStatus::Connected);
    assert_eq!(
        statuses(&world, connection).await,
        ["CONNECTING", "UPDATING", "CONNECTED"]
    );
    let consent = state.consent.unwrap();
    assert_eq!(
        consent.expires_at.micros() - consent.granted_at.micros(),
        180 * DAY
    );
    // Found disabled: names only, no transactions until the end user consents.
    assert_eq!(state.accounts.len(), 5);
    for id in &state.accounts {
        let account = world.account(*id).await;
        assert!(account.is_disabled());
        assert!(account.personal.identifier.is_none());
    }
    assert_eq!(world.recorded(connection).await.batches, 0);
    // The source synced, with its last update.
    assert!(state.sources.iter().any(|s| s.last_update.is_some()));
}

#[tokio::test]
async fn a_wrong_password_goes_back_to_the_first_sign_in_with_the_reason() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.connection(RHEINBANK).await;
    let step = syncer
        .submit_credentials(world.project, connection, "user_good", "wrong")
        .await
        .unwrap();
    assert!(matches!(
        step,
        SignInStep::Failed {
            reason: ActionRequiredReason::CredentialsInvalid,
            ..
        }
    ));
    assert_eq!(
        world.state(connection).await.status,
        ConnectionStatus::InitialActionRequired {
            reason: Some(ActionRequiredReason::CredentialsInvalid)
        }
    );
    assert_eq!(
        statuses(&world, connection).await,
        ["CONNECTING", "INITIAL_ACTION_REQUIRED"]
    );
    assert!(world.state(connection).await.consent.is_none());
    // Signing in again works from there.
    let step = syncer
        .submit_credentials(world.project, connection, "user_good", "pass_good")
        .await
        .unwrap();
    assert!(matches!(step, SignInStep::Connected { .. }));
    syncer.wait_idle().await;
}

#[tokio::test]
async fn a_one_time_code_step_survives_a_restart_and_a_wrong_code_fails() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.connection(RHEINBANK).await;
    // No step is waiting yet.
    let early = syncer
        .submit_one_time_code(world.project, connection, "123456")
        .await;
    assert!(matches!(early, Err(SyncError::StepMissing(_))), "{early:?}");
    let step = syncer
        .submit_credentials(world.project, connection, "user_otp", "pass_good")
        .await
        .unwrap();
    assert!(matches!(step, SignInStep::OneTimeCodeRequired { .. }), "{step:?}");
    assert_eq!(
        world.state(connection).await.status,
        ConnectionStatus::InitialActionRequired {
            reason: Some(ActionRequiredReason::OneTimeCodeRequired)
        }
    );
    let wrong = syncer
        .submit_one_time_code(world.project, connection, "000000")
        .await
        .unwrap();
    assert!(matches!(wrong, SignInStep::Failed { .. }), "{wrong:?}");
    // The used step is gone: the code cannot be tried on it again.
    let again = syncer
        .submit_one_time_code(world.project, connection, "123456")
        .await;
    assert!(matches!(again, Err(SyncError::StepMissing(_))), "{again:?}");

    world.clock.advance(SECOND);
    let step = syncer
        .submit_credentials(world.project, connection, "user_otp", "pass_good")
        .await
        .unwrap();
    assert!(matches!(step, SignInStep::OneTimeCodeRequired { .. }));
    // Another server (or this one restarted) shows the step and answers the code.
    let restarted = world.syncer(sandbox());
    let shown = restarted.waiting(world.project, connection).await.unwrap();
    assert!(
        matches!(shown, Some(SignInStep::OneTimeCodeRequired { .. })),
        "{shown:?}"
    );
    let step = restarted
        .submit_one_time_code(world.project, connection, "123456")
        .await
        .unwrap();
    assert!(matches!(step, SignInStep::Connected { .. }), "{step:?}");
    restarted.wait_idle().await;
    assert_eq!(world.state(connection).await.status, ConnectionStatus::Connected);
    assert_eq!(restarted.waiting(world.project, connection).await.unwrap(), None);
    assert_eq!(
        statuses(&world, connection).await,
        [
            "CONNECTING",
            "INITIAL_ACTION_REQUIRED",
            "CONNECTING",
            "INITIAL_ACTION_REQUIRED",
            "CONNECTING",
            "INITIAL_ACTION_REQUIRED",
            "CONNECTING",
            "UPDATING",
            "CONNECTED"
        ]
    );
}

#[tokio::test]
async fn sca_is_polled_without_writing_until_approved() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.connection(RHEINBANK).await;
    let step = syncer
        .submit_credentials(world.project, connection, "user_sca", "pass_good")
        .await
        .unwrap();
    assert!(matches!(step, SignInStep::ScaRequired { .. }), "{step:?}");
    let before = world.events().await.len();
    let step = syncer.poll_sca(world.project, connection).await.unwrap();
    assert!(matches!(step, SignInStep::ScaRequired { .. }), "{step:?}");
    assert_eq!(world.events().await.len(), before, "waiting writes nothing");
    world.clock.advance(3 * SECOND);
    let step = syncer.poll_sca(world.project, connection).await.unwrap();
    assert!(matches!(step, SignInStep::Connected { .. }), "{step:?}");
    syncer.wait_idle().await;
    assert_eq!(world.state(connection).await.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn a_redirect_completes_only_with_its_own_state() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.connection(RHEINBANK).await;
    let step = syncer
        .submit_credentials(world.project, connection, "user_redirect", "pass_good")
        .await
        .unwrap();
    let SignInStep::RedirectRequired { url } = step else {
        panic!("{step:?}")
    };
    assert_eq!(
        world.state(connection).await.status,
        ConnectionStatus::InitialActionRequired {
            reason: Some(ActionRequiredReason::WebAuthenticationRequired)
        }
    );
    let state = url
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("state="))
        .unwrap()
        .to_owned();
    let before = world.events().await.len();
    let forged = RedirectCallback {
        state: format!("{state}x"),
        code: None,
        error: None,
    };
    let refused = syncer.complete_redirect(world.project, connection, forged).await;
    assert!(
        matches!(refused, Err(SyncError::RedirectMismatch(_))),
        "{refused:?}"
    );
    assert_eq!(world.events().await.len(), before);
    let callback = RedirectCallback {
        state,
        code: Some("ok".into()),
        error: None,
    };
    let step = syncer
        .complete_redirect(world.project, connection, callback)
        .await
        .unwrap();
    assert!(matches!(step, SignInStep::Connected { .. }), "{step:?}");
    syncer.wait_idle().await;
    assert_eq!(world.state(connection).await.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn a_bank_that_is_down_at_sign_in_is_an_error_and_writes_nothing() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.connection(RHEINBANK).await;
    let before = world.events().await.len();
    let answer = syncer
        .submit_credentials(world.project, connection, "user_bank_down", "pass_good")
        .await;
    assert!(
        matches!(answer, Err(SyncError::BankUnavailable { retry_after: Some(_) })),
        "{answer:?}"
    );
    assert_eq!(world.events().await.len(), before);
    assert_eq!(
        world.state(connection).await.status,
        ConnectionStatus::InitialActionRequired { reason: None }
    );
}

#[tokio::test]
async fn a_bank_that_limits_sign_ins_says_when_to_try_again_and_writes_nothing() {
    let world = World::new().await;
    let faulty = Arc::new(Faulty::default());
    faulty
        .sign_in_limited
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let syncer = world.syncer(faulty.clone());
    let connection = world.connection(RHEINBANK).await;
    let before = world.events().await.len();
    let answer = syncer
        .submit_credentials(world.project, connection, "user_good", "pass_good")
        .await;
    let Err(SyncError::RateLimited { retry_after }) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(retry_after.micros(), T0 + 60 * SECOND);
    assert_eq!(
        SyncError::RateLimited { retry_after }.to_string(),
        "the bank limits calls, try again after 2026-12-06T12:01:00Z"
    );
    assert_eq!(world.events().await.len(), before);
    // Later, the same step goes through.
    faulty
        .sign_in_limited
        .store(false, std::sync::atomic::Ordering::SeqCst);
    world.clock.advance(60 * SECOND);
    let step = syncer
        .submit_credentials(world.project, connection, "user_good", "pass_good")
        .await
        .unwrap();
    assert!(matches!(step, SignInStep::Connected { .. }), "{step:?}");
    syncer.wait_idle().await;
}

#[tokio::test]
async fn another_projects_connection_is_not_found() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, RHEINBANK, "user_good").await;
    let stranger = ProjectId::from_uuid(uuid::Uuid::now_v7());
    let answer = syncer
        .submit_credentials(stranger, connection, "user_good", "pass_good")
        .await;
    assert!(
        matches!(answer, Err(SyncError::ConnectionNotFound(_))),
        "{answer:?}"
    );
    assert!(matches!(
        syncer.refresh(stranger, connection).await,
        Err(SyncError::ConnectionNotFound(_))
    ));
    assert!(matches!(
        syncer.delete_connection(stranger, connection).await,
        Err(SyncError::ConnectionNotFound(_))
    ));
    // Credentials on a connected connection are the wrong step.
    let answer = syncer
        .submit_credentials(world.project, connection, "user_good", "pass_good")
        .await;
    assert!(matches!(answer, Err(SyncError::WrongStep { .. })), "{answer:?}");
}

#[tokio::test]
async fn deleting_a_connection_deletes_its_sealed_consent() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, RHEINBANK, "user_good").await;
    let granted = world.state(connection).await.consent.unwrap().granted_at;
    let key = format!("{connection}.consent.{}", granted.micros());
    let sealed = world.blobs.get(SECRETS_NAMESPACE, &key).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("pass_good"));
    syncer.delete_connection(world.project, connection).await.unwrap();
    assert_eq!(world.blobs.get(SECRETS_NAMESPACE, &key).await.unwrap(), None);
    assert!(world.state(connection).await.is_deleted());
}
