//! Import jobs: default or advanced, `PENDING → RUNNING → SUCCEEDED /
//! FAILED`, progress that only grows, and retries that write nothing.

#![allow(clippy::unwrap_used)]

mod common;

use common::ledger::assert_not_found;
use common::open_banking::*;
use common::*;
use paycore_domain::aggregation_connection::{ActionRequiredReason, AggregationConnectionCommand};
use paycore_domain::aggregation_import::*;
use paycore_domain::kernel::error::Refusal;
use paycore_domain::*;

fn create(
    id: AggregationImportId,
    connection: AggregationConnectionId,
    scope: Option<AdvancedScope>,
) -> Command {
    AggregationImportCommand::CreateAggregationImport {
        id,
        connection_id: connection,
        scope,
    }
    .into()
}

fn start(id: AggregationImportId) -> Command {
    AggregationImportCommand::StartAggregationImport { id }.into()
}

fn progress(id: AggregationImportId, transactions: u64) -> Command {
    AggregationImportCommand::RecordAggregationImportProgress {
        id,
        progress: counts(transactions),
    }
    .into()
}

fn counts(transactions: u64) -> ImportProgress {
    ImportProgress {
        accounts_found: 5,
        accounts_done: (transactions / 1_000) as u32,
        transactions_seen: transactions,
        transactions_recorded: transactions,
    }
}

fn fail(id: AggregationImportId, reason: ImportFailure) -> Command {
    AggregationImportCommand::FailAggregationImport {
        id,
        reason,
        detail: "bank answered 503".into(),
    }
    .into()
}

#[test]
fn a_default_import_asks_for_everything_five_years_back() {
    let mut world = World::new();
    let connection = world.updating_connection(1);
    let events = world.events(create(imp(1), connection, None));
    assert_eq!(events.len(), 1);
    let import = world.import(imp(1));
    assert_eq!(import.status, ImportStatus::Pending);
    assert_eq!(import.kind, ImportKind::Default);
    assert_eq!(import.parts, ImportParts::ALL);
    assert_eq!(import.history_from, date("2021-12-06"));
    assert_eq!(
        import.history_from,
        today().plus_days(-HISTORY_LIMIT_DAYS).unwrap()
    );
}

#[test]
fn an_advanced_import_brings_the_chosen_parts() {
    let mut world = World::new();
    let connection = world.updating_connection(1);
    let parts = ImportParts {
        owners: false,
        accounts: true,
        transactions: true,
        credit_cards: false,
    };
    let scope = AdvancedScope {
        parts,
        history_from: Some(date("2026-01-01")),
    };
    world.ok(prj(P), create(imp(1), connection, Some(scope)));
    let import = world.import(imp(1));
    assert_eq!(
        (import.kind, import.parts, import.history_from),
        (ImportKind::Advanced, parts, date("2026-01-01"))
    );
}

#[test]
fn bad_scopes_write_nothing() {
    let mut world = World::new();
    let connection = world.updating_connection(1);
    let nothing = AdvancedScope {
        parts: ImportParts {
            owners: false,
            accounts: false,
            transactions: false,
            credit_cards: false,
        },
        history_from: Some(date("2016-01-01")),
    };
    assert_eq!(
        invalid_fields(world.run(P, create(imp(1), connection, Some(nothing)))),
        ["parts", "history_from"]
    );
    let orphan = AdvancedScope {
        parts: ImportParts {
            owners: false,
            accounts: false,
            transactions: true,
            credit_cards: false,
        },
        history_from: Some(today().plus_days(1).unwrap()),
    };
    assert_eq!(
        invalid_fields(world.run(P, create(imp(1), connection, Some(orphan)))),
        ["parts.accounts", "history_from"]
    );
    // Exactly 5 years back is allowed, a day more is not.
    let oldest = today().plus_days(-HISTORY_LIMIT_DAYS).unwrap();
    let scope = |from| AdvancedScope {
        parts: ImportParts::ALL,
        history_from: Some(from),
    };
    assert_eq!(
        invalid_fields(world.run(
            P,
            create(imp(1), connection, Some(scope(oldest.plus_days(-1).unwrap())))
        )),
        ["history_from"]
    );
    world.ok(prj(P), create(imp(1), connection, Some(scope(oldest))));
}

#[test]
fn an_import_needs_a_signed_in_live_connection_of_the_project() {
    let mut world = World::new();
    world.ok(prj(P), create_connection(conn(1), cus(C), Some(bank())));
    assert_refused(
        world.run(P, create(imp(1), conn(1), None)),
        Refusal::ConnectionNotConnected,
    );
    assert_not_found(
        world.run(P, create(imp(1), conn(9), None)),
        "aggregation connection",
        conn(9),
    );
    let connection = world.updating_connection(2);
    assert_not_found(
        world.run(OTHER, create(imp(1), connection, None)),
        "aggregation connection",
        connection,
    );
    world.ok(
        prj(P),
        AggregationConnectionCommand::DeleteAggregationConnection { id: connection }.into(),
    );
    assert_not_found(
        world.run(P, create(imp(1), connection, None)),
        "aggregation connection",
        connection,
    );
}

#[test]
fn the_lifecycle_runs_once_and_retries_write_nothing() {
    let mut world = World::new();
    let connection = world.updating_connection(1);
    world.ok(prj(P), create(imp(1), connection, None));
    assert_refused(
        world.run(P, progress(imp(1), 10)),
        Refusal::ImportTransitionNotAllowed,
    );
    world.advance(1);
    assert_eq!(world.events(start(imp(1))).len(), 1);
    assert_eq!(world.import(imp(1)).started_at, Some(world.now));
    // A job resumed after a restart starts again: nothing to write.
    assert!(world.events(start(imp(1))).is_empty());
    assert_eq!(world.events(progress(imp(1), 2_000)).len(), 1);
    assert!(world.events(progress(imp(1), 2_000)).is_empty());
    assert_eq!(
        invalid_fields(world.run(P, progress(imp(1), 1_000))),
        ["progress"]
    );
    let succeed: Command = AggregationImportCommand::SucceedAggregationImport {
        id: imp(1),
        progress: counts(5_000),
    }
    .into();
    assert_eq!(world.events(succeed.clone()).len(), 1);
    let import = world.import(imp(1));
    assert_eq!(
        (import.status, import.progress),
        (ImportStatus::Succeeded, counts(5_000))
    );
    assert!(world.events(succeed).is_empty());
    assert_refused(world.run(P, start(imp(1))), Refusal::ImportTransitionNotAllowed);
    assert_refused(
        world.run(P, fail(imp(1), ImportFailure::Internal)),
        Refusal::ImportTransitionNotAllowed,
    );
}

#[test]
fn an_import_fails_with_its_reason() {
    let mut world = World::new();
    let connection = world.updating_connection(1);
    world.ok(prj(P), create(imp(1), connection, None));
    world.ok(prj(P), start(imp(1)));
    let reason = ImportFailure::ActionRequired {
        reason: ActionRequiredReason::ScaRequired,
    };
    assert_eq!(world.events(fail(imp(1), reason)).len(), 1);
    let import = world.import(imp(1));
    assert_eq!(import.status, ImportStatus::Failed { reason });
    assert_eq!(import.failure_detail.as_deref(), Some("bank answered 503"));
    assert!(import.status.is_finished());
    assert!(world.events(fail(imp(1), reason)).is_empty());
    assert_refused(
        world.run(P, fail(imp(1), ImportFailure::BankUnavailable)),
        Refusal::ImportTransitionNotAllowed,
    );
    // A pending import may fail too (its connection went away).
    world.ok(prj(P), create(imp(2), connection, None));
    world.ok(prj(P), fail(imp(2), ImportFailure::ConnectionDeleted));
    let long = AggregationImportCommand::FailAggregationImport {
        id: imp(2),
        reason: ImportFailure::Internal,
        detail: "x".repeat(MAX_FAILURE_DETAIL_CHARS + 1),
    };
    assert_eq!(invalid_fields(world.run(P, long.into())), ["detail"]);
    assert_not_found(world.run(OTHER, start(imp(1))), "aggregation import", imp(1));
}

#[test]
fn import_status_changes_follow_the_lifecycle() {
    let failed = ImportStatus::Failed {
        reason: ImportFailure::Internal,
    };
    let all = [
        ImportStatus::Pending,
        ImportStatus::Running,
        ImportStatus::Succeeded,
        failed,
    ];
    let allowed = [
        ("PENDING", "RUNNING"),
        ("RUNNING", "SUCCEEDED"),
        ("PENDING", "FAILED"),
        ("RUNNING", "FAILED"),
    ];
    for from in all {
        for to in all {
            assert_eq!(
                from.may_become(&to),
                allowed.contains(&(from.name(), to.name())),
                "{from:?} → {to:?}"
            );
        }
    }
}
