#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing
//! Import jobs with the sandbox bank: years of history on enabled
//! accounts, a re-sync that finds nothing new, what the bank's errors do
//! to the connection, accounts that disappear, pending transactions that
//! post, credit cards, and a job stopped mid-way then resumed.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use paycore_aggregation_sync::{SyncError, TickReport};
use paycore_bank_connector::SandboxBank;
use paycore_domain::aggregated_account::{AggregatedAccountType, BalanceType};
use paycore_domain::aggregation_connection::{ActionRequiredReason, ConnectionStatus};
use paycore_domain::aggregation_import::{AggregationImportCommand, ImportFailure, ImportStatus};
use paycore_domain::{AggregationImportId, Event};

fn sandbox() -> Arc<SandboxBank> {
    Arc::new(SandboxBank::new())
}

#[tokio::test]
async fn a_default_import_reads_five_years_of_every_enabled_account_and_a_resync_writes_no_data() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, RHEINBANK, "user_good").await;
    world.enable_all(connection).await;
    world.clock.advance(3600 * SECOND);
    let import = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    let import = world.import(import).await;
    assert_eq!(
        import.status,
        ImportStatus::Succeeded,
        "{:?}",
        import.failure_detail
    );
    let recorded = world.recorded(connection).await;
    assert!(recorded.booked > 10_000, "{recorded:?}");
    let total = u64::try_from(recorded.booked + recorded.pending).unwrap();
    assert_eq!(import.progress.transactions_recorded, total);
    assert!(import.progress.transactions_seen >= total);
    assert_eq!(import.progress.accounts_done, 5);
    // Batches stay within the domain's limits: a page of 1,000 is one batch.
    assert!(recorded.batches >= 5 && recorded.batches < 40, "{recorded:?}");
    let state = world.state(connection).await;
    assert_eq!(state.status, ConnectionStatus::Connected);
    assert_eq!(
        state.sources.iter().filter_map(|s| s.last_update).max(),
        Some(world.now())
    );
    // Enabled accounts have their details now: identifiers, owners, balances.
    for id in &state.accounts {
        let account = world.account(*id).await;
        assert!(account.personal.identifier.is_some());
        assert!(!account.personal.owners.is_empty());
        assert!(!account.balances.is_empty());
    }

    // A re-sync the same hour finds nothing new: no account or transaction event.
    let before = world.events().await.len();
    world.clock.advance(60 * SECOND);
    let again = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    assert_eq!(world.import(again).await.status, ImportStatus::Succeeded);
    let written: Vec<String> = world.events().await[before..]
        .iter()
        .map(|(stream, _)| stream.clone())
        .filter(|stream| stream.starts_with("aggregatedaccount-"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
    assert_eq!(world.import(again).await.progress.transactions_recorded, 0);
}

#[tokio::test]
async fn credit_cards_are_accounts_of_type_credit_card_with_their_transactions() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, WISLA, "user_good").await;
    world.enable_all(connection).await;
    world.clock.advance(3600 * SECOND);
    let import = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    assert_eq!(world.import(import).await.status, ImportStatus::Succeeded);
    let mut cards = 0;
    for id in world.state(connection).await.accounts {
        let account = world.account(id).await;
        if account.account_type == AggregatedAccountType::CreditCard {
            cards += 1;
            assert!(
                account
                    .balances
                    .iter()
                    .any(|b| b.balance_type == BalanceType::CreditLimit)
            );
            assert!(account.transactions.recorded() > 0);
        }
    }
    assert_eq!(cards, 1);
}

#[tokio::test]
async fn a_rate_limited_refresh_is_delayed_then_retried_at_the_time_the_bank_said() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, RHEINBANK, "user_rate_limited").await;
    world.enable_all(connection).await;
    world.clock.advance(3600 * SECOND);
    let import = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    let ImportStatus::Failed {
        reason: ImportFailure::RateLimited { next_try_at },
    } = world.import(import).await.status
    else {
        panic!("{:?}", world.import(import).await.status)
    };
    // The next midnight UTC after 2026-12-06 13:00.
    assert_eq!(next_try_at.micros(), T0 + DAY / 2);
    assert_eq!(
        world.state(connection).await.status,
        ConnectionStatus::RefreshDelayed { next_try_at }
    );
    world.index.refresh(&world.engine).await;
    assert_eq!(syncer.tick().await.unwrap(), TickReport::default(), "not due yet");
    world.clock.set(next_try_at.micros());
    let report = syncer.tick().await.unwrap();
    assert_eq!(report.retried, 1, "{report:?}");
    syncer.wait_idle().await;
    let state = world.state(connection).await;
    assert_eq!(state.status, ConnectionStatus::Connected);
    assert!(world.recorded(connection).await.booked > 1_000);
}

#[tokio::test]
async fn a_consent_the_bank_ended_fails_the_import_and_asks_the_end_user() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, RHEINBANK, "user_consent_expired").await;
    world.enable_all(connection).await;
    world.clock.advance(DAY);
    let import = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    assert_eq!(
        world.import(import).await.status,
        ImportStatus::Failed {
            reason: ImportFailure::ActionRequired {
                reason: ActionRequiredReason::ConsentExpired
            }
        }
    );
    // The domain's consent runs 180 days: before then it records the
    // bank's early end as a sign-in to do again (SCA), which renews it.
    let state = world.state(connection).await;
    assert_eq!(
        state.status,
        ConnectionStatus::ActionRequired {
            reason: ActionRequiredReason::ScaRequired
        }
    );
    let refused = syncer.refresh(world.project, connection).await;
    assert!(
        matches!(refused, Err(SyncError::ActionRequired { .. })),
        "{refused:?}"
    );
    // Signing in again renews the consent (a new sealed entry) and syncs.
    let old = state.consent.unwrap();
    let step = syncer
        .submit_credentials(world.project, connection, "user_consent_expired", "pass_good")
        .await
        .unwrap();
    assert!(
        matches!(step, paycore_aggregation_sync::SignInStep::Connected { .. }),
        "{step:?}"
    );
    syncer.wait_idle().await;
    let state = world.state(connection).await;
    assert_eq!(state.status, ConnectionStatus::Connected);
    assert!(state.consent.unwrap().granted_at > old.granted_at);
    let old_key = format!("{connection}.consent.{}", old.granted_at.micros());
    assert_eq!(
        world
            .blobs
            .get(paycore_aggregation_sync::SECRETS_NAMESPACE, &old_key)
            .await
            .unwrap(),
        None
    );
    assert!(world.recorded(connection).await.booked > 1_000);
}

#[tokio::test]
async fn the_schedule_expires_a_consent_once_due() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, RHEINBANK, "user_good").await;
    let expires_at = world.state(connection).await.consent.unwrap().expires_at;
    world.index.refresh(&world.engine).await;
    world.clock.set(expires_at.micros() - SECOND);
    assert_eq!(syncer.tick().await.unwrap().expired, 0, "not yet");
    syncer.wait_idle().await;
    world.clock.set(expires_at.micros());
    let report = syncer.tick().await.unwrap();
    assert_eq!(report.expired, 1, "{report:?}");
    let state = world.state(connection).await;
    assert_eq!(
        state.status,
        ConnectionStatus::ActionRequired {
            reason: ActionRequiredReason::ConsentExpired
        }
    );
    assert!(state.consent.is_none());
    assert!(matches!(
        syncer.refresh(world.project, connection).await,
        Err(SyncError::ActionRequired {
            reason: ActionRequiredReason::ConsentExpired,
            ..
        })
    ));
}

#[tokio::test]
async fn an_account_gone_at_the_next_sync_is_archived_and_not_read() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, RHEINBANK, "user_account_closes").await;
    assert_eq!(world.state(connection).await.accounts.len(), 3);
    world.enable_all(connection).await;
    world.clock.advance(3600 * SECOND);
    let import = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    let import = world.import(import).await;
    assert_eq!(
        import.status,
        ImportStatus::Succeeded,
        "{:?}",
        import.failure_detail
    );
    assert_eq!(import.progress.accounts_found, 2);
    let mut archived = 0;
    for id in world.state(connection).await.accounts {
        let account = world.account(id).await;
        if account.is_archived() {
            archived += 1;
            assert_eq!(account.transactions.recorded(), 0);
        } else {
            assert!(account.transactions.recorded() > 0);
        }
    }
    assert_eq!(archived, 1);
}

#[tokio::test]
async fn pending_transactions_are_replaced_by_their_booked_version_later() {
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, RHEINBANK, "user_pending").await;
    world.enable_all(connection).await;
    world.clock.advance(3600 * SECOND);
    syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    let first = world.recorded(connection).await;
    assert!(first.pending > 0, "{first:?}");
    world.clock.advance(5 * DAY);
    let import = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    assert_eq!(world.import(import).await.status, ImportStatus::Succeeded);
    let later = world.recorded(connection).await;
    // Each pending one of the first sync is booked by now, replacing itself.
    assert!(later.replacing >= first.pending, "{first:?} then {later:?}");
}

#[tokio::test]
async fn a_bank_down_for_a_moment_is_retried_and_one_that_stays_down_delays_the_refresh() {
    let world = World::new().await;
    let faulty = Arc::new(Faulty::default());
    let syncer = world.syncer(faulty.clone());
    let connection = world.signed_in(&syncer, RHEINBANK, "user_joint").await;
    world.enable_all(connection).await;
    world.clock.advance(3600 * SECOND);
    faulty.down.store(2, Ordering::SeqCst);
    let import = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    assert_eq!(world.import(import).await.status, ImportStatus::Succeeded);

    world.clock.advance(DAY);
    faulty.down.store(1_000, Ordering::SeqCst);
    let import = syncer.refresh(world.project, connection).await.unwrap();
    syncer.wait_idle().await;
    assert_eq!(
        world.import(import).await.status,
        ImportStatus::Failed {
            reason: ImportFailure::BankUnavailable
        }
    );
    let delay = i64::try_from(test_config().bank_down_delay.as_micros()).unwrap();
    assert_eq!(
        world.state(connection).await.status,
        ConnectionStatus::RefreshDelayed {
            next_try_at: paycore_domain::Timestamp::from_micros(world.now().micros() + delay)
        }
    );
}

#[tokio::test]
async fn a_job_stopped_mid_way_resumes_and_imports_what_a_clean_one_does() {
    let world = World::new().await;
    let clean_syncer = world.syncer(sandbox());
    let parking = Arc::new(Faulty {
        park_after: Some(3),
        ..Faulty::default()
    });
    let stopped_syncer = world.syncer(parking.clone());
    let clean = world.signed_in(&clean_syncer, RHEINBANK, "user_good").await;
    let stopped = world.signed_in(&stopped_syncer, RHEINBANK, "user_good").await;
    world.enable_all(clean).await;
    world.enable_all(stopped).await;
    world.clock.advance(3600 * SECOND);

    let clean_import = clean_syncer.refresh(world.project, clean).await.unwrap();
    clean_syncer.wait_idle().await;

    // The stopped job: its task is aborted while it waits for a page, as
    // a kill -9 would stop it.
    let import = AggregationImportId::from_uuid(uuid::Uuid::now_v7());
    world
        .exec(AggregationImportCommand::CreateAggregationImport {
            id: import,
            connection_id: stopped,
            scope: None,
        })
        .await;
    let job = tokio::spawn({
        let syncer = stopped_syncer.clone();
        let project = world.project;
        async move { syncer.run_import(project, import).await }
    });
    parking.parked.notified().await;
    job.abort();
    assert!(job.await.unwrap_err().is_cancelled());
    assert_eq!(world.import(import).await.status, ImportStatus::Running);
    let partial = world.recorded(stopped).await;
    assert!(partial.booked > 0, "{partial:?}");

    // A new syncer on the same log resumes it from the start.
    world.clock.advance(600 * SECOND);
    world.index.refresh(&world.engine).await;
    let restarted = world.syncer(sandbox());
    assert_eq!(restarted.resume().await.unwrap(), 1);
    restarted.wait_idle().await;
    let resumed = world.import(import).await;
    assert_eq!(
        resumed.status,
        ImportStatus::Succeeded,
        "{:?}",
        resumed.failure_detail
    );
    let clean_recorded = world.recorded(clean).await;
    let resumed_recorded = world.recorded(stopped).await;
    assert_eq!(resumed_recorded.booked, clean_recorded.booked);
    assert_eq!(resumed_recorded.pending, clean_recorded.pending);
    let clean_import = world.import(clean_import).await;
    assert_eq!(
        resumed.progress.transactions_seen,
        clean_import.progress.transactions_seen
    );
    assert_eq!(world.state(stopped).await.status, ConnectionStatus::Connected);
    // The resumed import read the bank as of its own start.
    let events = world.events().await;
    assert!(
        events
            .iter()
            .any(|(_, e)| matches!(e, Event::AggregationImportSucceeded(_)))
    );
}

#[tokio::test]
async fn an_advanced_import_reads_only_the_parts_and_window_asked_for() {
    use paycore_domain::aggregation_import::{AdvancedScope, ImportParts};
    let world = World::new().await;
    let syncer = world.syncer(sandbox());
    let connection = world.signed_in(&syncer, WISLA, "user_good").await;
    world.enable_all(connection).await;
    world.clock.advance(3600 * SECOND);
    let from = paycore_domain::kernel::date::Date::new(2026, 11, 1).unwrap();
    let scope = AdvancedScope {
        parts: ImportParts {
            owners: false,
            accounts: true,
            transactions: false,
            credit_cards: true,
        },
        history_from: Some(from),
    };
    let import = syncer
        .start_import(world.project, connection, Some(scope))
        .await
        .unwrap();
    syncer.wait_idle().await;
    let import = world.import(import).await;
    assert_eq!(
        import.status,
        ImportStatus::Succeeded,
        "{:?}",
        import.failure_detail
    );
    assert_eq!(import.progress.accounts_done, 1, "the card only");
    for id in world.state(connection).await.accounts {
        let account = world.account(id).await;
        let card = account.account_type == AggregatedAccountType::CreditCard;
        assert_eq!(
            account.transactions.recorded() > 0,
            card,
            "{:?}",
            account.account_type
        );
    }
    for (_, event) in world.events().await {
        if let Event::AggregatedTransactionsRecorded(batch) = event {
            assert!(batch.transactions.iter().all(|tx| tx.booking_date >= from));
        }
    }
}

#[tokio::test]
async fn the_schedule_refreshes_no_more_often_than_the_consent_allows() {
    let world = World::new().await;
    let config = paycore_aggregation_sync::SyncerConfig {
        refresh_interval: std::time::Duration::from_secs(3_600),
        ..test_config()
    };
    let syncer = world.syncer_with(sandbox(), world.clock.clone(), config);
    let connection = world.signed_in(&syncer, RHEINBANK, "user_good").await;
    world.index.refresh(&world.engine).await;
    // The sandbox grants 4 syncs a day: every 6 hours, not every hour.
    world.clock.advance(2 * 3_600 * SECOND);
    let report = syncer.tick().await.unwrap();
    assert_eq!((report.refreshed, report.skipped), (0, 1), "{report:?}");
    world.clock.advance(4 * 3_600 * SECOND);
    let report = syncer.tick().await.unwrap();
    assert_eq!(report.refreshed, 1, "{report:?}");
    syncer.wait_idle().await;
    assert_eq!(world.state(connection).await.status, ConnectionStatus::Connected);
}
