//! The account family's deciders: accounts, allowances and the sandbox's
//! magic balances.
//!
//! Every call runs through the mini event store of `common`, which checks
//! the contract the engine relies on: `decide` reads and writes only the
//! streams that `CommandEnvelope::streams` and
//! `CommandEnvelope::dependent_streams` declare, and a refused command
//! changes nothing.

use paycore_domain::account::AccountCommand;
use paycore_domain::customer::CustomerCommand;
use paycore_domain::events::*;
use paycore_domain::*;

mod common;

use common::ledger::*;
use common::*;

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
