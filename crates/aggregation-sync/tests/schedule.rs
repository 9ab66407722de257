#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! The running schedule on tokio's paused clock: it sleeps until what the
//! index says is next, so a consent expires at its `expires_at`, 180 days
//! after the sign-in, without a test waiting for it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use paycore_aggregation_sync::{Clock, SyncerConfig};
use paycore_bank_connector::SandboxBank;
use paycore_domain::Event;
use paycore_domain::aggregation_connection::{ActionRequiredReason, ConnectionStatus};

#[tokio::test(start_paused = true)]
async fn the_running_schedule_expires_a_consent_at_its_time() {
    let world = World::new().await;
    let clock = TokioClock::new();
    let config = SyncerConfig {
        // Only the expiry is due within the test's 181 days.
        refresh_interval: Duration::from_secs(365 * 86_400),
        recheck_interval: Duration::from_secs(86_400),
        ..test_config()
    };
    let syncer = world.syncer_with(Arc::new(SandboxBank::new()), clock.clone(), config);
    let connection = world.signed_in(&syncer, RHEINBANK, "user_good").await;
    let expires_at = world.state(connection).await.consent.unwrap().expires_at;
    world.index.refresh(&world.engine).await;
    let schedule = tokio::spawn({
        let syncer = syncer.clone();
        async move { syncer.run().await }
    });
    let expired = ConnectionStatus::ActionRequired {
        reason: ActionRequiredReason::ConsentExpired,
    };
    while world.state(connection).await.status != expired {
        assert!(
            clock.now().micros() < expires_at.micros() + DAY,
            "not expired a day late"
        );
        tokio::time::sleep(Duration::from_secs(3_600)).await;
    }
    schedule.abort();
    let expired_at = world
        .events()
        .await
        .into_iter()
        .find_map(|(_, event)| match event {
            Event::AggregationConsentExpired(e) => Some(e.expired_at),
            _ => None,
        })
        .unwrap();
    // On time: the timer's resolution (a millisecond) late at most.
    assert!(expired_at >= expires_at, "{expired_at:?} < {expires_at:?}");
    assert!(
        expired_at.micros() - expires_at.micros() <= 1_000,
        "{expired_at:?} vs {expires_at:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_running_schedule_refreshes_a_connection_when_its_interval_has_passed() {
    let world = World::new().await;
    let clock = TokioClock::new();
    let config = SyncerConfig {
        refresh_interval: Duration::from_secs(6 * 3_600),
        recheck_interval: Duration::from_secs(30 * 86_400),
        ..test_config()
    };
    let syncer = world.syncer_with(Arc::new(SandboxBank::new()), clock.clone(), config);
    let connection = world.signed_in(&syncer, RHEINBANK, "user_good").await;
    let synced = |c: &paycore_domain::aggregation_connection::AggregationConnection| {
        c.sources.iter().filter_map(|s| s.last_update).max()
    };
    let first = synced(&world.state(connection).await).unwrap();
    world.index.refresh(&world.engine).await;
    let schedule = tokio::spawn({
        let syncer = syncer.clone();
        async move { syncer.run().await }
    });
    // Six hours later the refresh is due: the schedule slept until then.
    tokio::time::sleep(Duration::from_secs(6 * 3_600 + 60)).await;
    syncer.wait_idle().await;
    let second = synced(&world.state(connection).await).unwrap();
    assert!(
        second.micros() >= first.micros() + 6 * 3_600 * SECOND,
        "{first:?} → {second:?}"
    );
    assert!(second.micros() < first.micros() + 6 * 3_600 * SECOND + 60 * SECOND);
    schedule.abort();
}

#[tokio::test(start_paused = true)]
async fn imports_run_no_more_at_once_than_configured() {
    use paycore_domain::aggregation_import::ImportStatus;
    let world = World::new().await;
    let parking = Arc::new(Faulty {
        park_after: Some(0),
        ..Faulty::default()
    });
    let config = SyncerConfig {
        max_concurrent_imports: 1,
        ..test_config()
    };
    let syncer = world.syncer_with(parking.clone(), world.clock.clone(), config);
    // Sign-in imports read no transaction pages (the accounts are disabled).
    let first = world.signed_in(&syncer, RHEINBANK, "user_joint").await;
    let second = world.signed_in(&syncer, RHEINBANK, "user_joint").await;
    world.enable_all(first).await;
    world.enable_all(second).await;
    world.clock.advance(3_600 * SECOND);
    let running = syncer.refresh(world.project, first).await.unwrap();
    parking.parked.notified().await;
    let waiting = syncer.refresh(world.project, second).await.unwrap();
    // Paused time moves on only once every task is idle: whatever could
    // run has run by then.
    tokio::time::sleep(Duration::from_secs(3_600)).await;
    assert_eq!(world.import(running).await.status, ImportStatus::Running);
    assert_eq!(world.import(waiting).await.status, ImportStatus::Pending);
    assert_eq!(syncer.jobs(), 2);
}
