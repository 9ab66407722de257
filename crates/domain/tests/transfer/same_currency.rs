//! Transfers between accounts of one currency.

use paycore_domain::events::*;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::*;

use crate::common::ledger::*;
use crate::common::*;

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
        pending: None,
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
