//! Bank accounts and payouts: minirefs, completion, failure and return.
//!
//! Commands run against the mini event store of `common` (the world is
//! `common::money`), which checks the engine's contract: the decider reads
//! and writes only the streams that `streams()` and `dependent_streams()`
//! (asked until it names nothing new) declare, and a refused command
//! changes nothing.

#![allow(clippy::unwrap_used)]

use paycore_domain::bank_payout::BankPayoutCommand;
use paycore_domain::bank_payout::{
    MINIREF_RESERVATION_SECONDS, NewBankPayout, PayoutDestination, PayoutDestinationSource,
};
use paycore_domain::events::*;
use paycore_domain::kernel::bank::Miniref;
use paycore_domain::*;

mod common;

use common::money::*;
use common::*;

use paycore_domain::bank_account::BankAccountCommand;
use paycore_domain::customer::CustomerCommand;

#[test]
fn bank_accounts_are_checked() {
    let mut world = World::new();
    world.ok_in(
        P,
        CustomerCommand::CreateCustomer {
            id: cus(1),
            identity: None,
            meta: Meta::default(),
        }
        .into(),
    );
    world.ok_in(
        P,
        BankAccountCommand::CreateBankAccount {
            id: ba(1),
            info: bank_info(IBAN_X, "Zoë O'Brien"),
            customer_id: Some(cus(1)),
            meta: Meta::default(),
        }
        .into(),
    );
    let stored = world
        .store
        .state(&StreamRef::BankAccount(ba(1)))
        .as_bank_account()
        .unwrap();
    assert_eq!(stored.customer_id, Some(cus(1)));
    assert_eq!(stored.bank_account_info, bank_info(IBAN_X, "Zoë O'Brien"));
    let long = "x".repeat(141);
    for name in ["", "   ", long.as_str()] {
        assert_eq!(
            invalid_fields(
                world.run(
                    P,
                    BankAccountCommand::CreateBankAccount {
                        id: ba(2),
                        info: bank_info(IBAN_X, name),
                        customer_id: None,
                        meta: Meta::default(),
                    }
                    .into()
                )
            ),
            ["bank_account_info.beneficiary_name"],
            "{name:?}"
        );
    }
    assert_not_found(
        world.run(
            O,
            BankAccountCommand::CreateBankAccount {
                id: ba(2),
                info: bank_info(IBAN_X, "Zoë"),
                customer_id: Some(cus(1)),
                meta: Meta::default(),
            }
            .into(),
        ),
        "customer",
        cus(1),
    );
    assert_not_found(
        world.run(
            O,
            BankAccountCommand::UpdateBankAccount {
                id: ba(1),
                meta: Meta::default(),
            }
            .into(),
        ),
        "bank account",
        ba(1),
    );
}

#[test]
fn payout_to_a_stored_bank_account() {
    let mut world = World::new();
    world.set(A, eur(10_000));
    world.ok_in(
        P,
        BankAccountCommand::CreateBankAccount {
            id: ba(1),
            info: bank_info(IBAN_X, "Zoë O'Brien"),
            customer_id: None,
            meta: Meta::default(),
        }
        .into(),
    );
    let entropy = [3; 8];
    let m = meta(&[("invoice", "7")]);
    let events = world.ok_in(
        P,
        BankPayoutCommand::CreateBankPayout(NewBankPayout {
            id: bpo(1),
            account_id: acc(A),
            destination: PayoutDestinationSource::BankAccount(ba(1)),
            concept: concept("Invoice 7"),
            value: eur(2_500),
            meta: m.clone(),
            transaction_id: tx(800),
            miniref_entropy: entropy,
        })
        .into(),
    );
    let miniref = Miniref::from_entropy(entropy);
    assert_eq!(
        events,
        vec![
            (
                StreamRef::BankPayout(bpo(1)),
                Event::BankPayoutCreated(BankPayoutCreated {
                    id: bpo(1),
                    project_id: prj(P),
                    account_id: acc(A),
                    bank_account_id: Some(ba(1)),
                    bank_account_info: bank_info(IBAN_X, "Zoë O'Brien"),
                    transaction_id: tx(800),
                    concept: concept("Invoice 7"),
                    miniref,
                    value: eur(2_500),
                    meta: m,
                    created_at: T0,
                })
            ),
            (
                StreamRef::PayoutDestination(iban(IBAN_X)),
                Event::MinirefAssigned(MinirefAssigned {
                    project_id: prj(P),
                    bank_payout_id: bpo(1),
                    miniref,
                    assigned_at: T0,
                })
            ),
            recorded(
                StreamRef::Account(acc(A)),
                Transaction {
                    id: tx(800),
                    account_id: acc(A),
                    project_id: prj(P),
                    kind: TransactionKind::BankPayout(bpo(1)),
                    value: eur(-2_500),
                    balance_after: eur(7_500),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::EUR),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: eur(-2_500),
                    total_after: eur(7_500),
                    account_id: acc(A),
                    transaction_id: tx(800),
                })
            ),
        ]
    );
    assert_eq!(
        world.payout_state(bpo(1)),
        paycore_domain::bank_payout::BankPayoutState::Processing
    );
    // Another project's bank account is not found.
    world.set(OA, eur(1_000));
    assert_not_found(
        world.run(
            O,
            payout(
                bpo(2),
                acc(OA),
                PayoutDestinationSource::BankAccount(ba(1)),
                eur(1),
                entropy,
                tx(801),
            ),
        ),
        "bank account",
        ba(1),
    );
}

#[test]
fn payout_to_an_inline_destination() {
    let mut world = World::new();
    world.set(A, eur(10_000));
    world.ok_in(
        P,
        payout(bpo(1), acc(A), to_iban(IBAN_Y), eur(1_000), [0; 8], tx(800)),
    );
    let stored = world
        .store
        .state(&StreamRef::BankPayout(bpo(1)))
        .as_bank_payout()
        .unwrap();
    assert_eq!(stored.bank_account_id, None);
    assert_eq!(stored.bank_account_info, bank_info(IBAN_Y, "Zoë O'Brien"));
    assert_eq!(stored.miniref, Miniref::from_entropy([0; 8]));
    assert_eq!(world.balance(A), 9_000);
    assert_eq!(
        invalid_fields(world.run(
            P,
            payout(
                bpo(2),
                acc(A),
                PayoutDestinationSource::Info(bank_info(IBAN_Y, " ")),
                eur(1),
                [0; 8],
                tx(801),
            )
        )),
        ["bank_account_info.beneficiary_name"]
    );
    for amount in [0, -1] {
        assert_eq!(
            invalid_fields(world.run(
                P,
                payout(bpo(2), acc(A), to_iban(IBAN_Y), eur(amount), [0; 8], tx(801))
            )),
            ["value.amount"]
        );
    }
    assert_eq!(
        invalid_fields(world.run(
            P,
            payout(bpo(2), acc(A), to_iban(IBAN_Y), usd(1), [0; 8], tx(801))
        )),
        ["value.currency"]
    );
    assert_not_found(
        world.run(
            P,
            payout(bpo(2), acc(OA), to_iban(IBAN_Y), eur(1), [0; 8], tx(801)),
        ),
        "account",
        acc(OA),
    );
    assert_eq!(
        world.run(
            P,
            payout(bpo(1), acc(A), to_iban(IBAN_Y), eur(1), [0; 8], tx(801))
        ),
        Err(DomainError::AlreadyExists {
            kind: "bank payout",
            id: bpo(1).to_string()
        })
    );
}

#[test]
fn payout_beyond_the_balance_is_insufficient_funds() {
    let mut world = World::new();
    world.set(A, eur(1_000));
    assert_refused(world.create_payout(1, A, eur(1_001)), Refusal::InsufficientFunds);
    world.create_payout(1, A, eur(1_000)).unwrap();
    assert_refused(world.create_payout(2, A, eur(1)), Refusal::InsufficientFunds);
    assert_eq!(world.balance(A), 0);
    assert_eq!(world.total(P, Currency::EUR), 0);
}

#[test]
fn payouts_never_take_the_project_total_below_zero() {
    let mut world = World::new();
    world.set(A, eur(1_000));
    // N may go negative, but the project as a whole may not.
    world.create_payout(1, N, eur(600)).unwrap();
    world.create_payout(2, N, eur(400)).unwrap();
    assert_eq!(world.balance(N), -1_000);
    assert_eq!(world.total(P, Currency::EUR), 0);
    assert_refused(world.create_payout(3, N, eur(1)), Refusal::ProjectBalanceNegative);
    // The same in a live project, where no money came in yet.
    let result = world.run(
        L,
        payout(bpo(4), acc(LA), to_iban(IBAN_X), eur(1), [0; 8], tx(900)),
    );
    assert_refused(result, Refusal::ProjectBalanceNegative);
    assert_eq!(world.balance(N), -1_000);
}

#[test]
fn failed_payout_gives_the_funds_back_once() {
    let mut world = World::new();
    world.set(A, eur(1_000));
    world.create_payout(1, A, eur(400)).unwrap();
    let events = world.ok_in(
        P,
        BankPayoutCommand::FailBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(810),
        }
        .into(),
    );
    assert_eq!(
        events,
        vec![
            (
                StreamRef::BankPayout(bpo(1)),
                Event::BankPayoutFailed(BankPayoutReversed {
                    failure_transaction_id: tx(810),
                    reversed_at: T0,
                })
            ),
            recorded(
                StreamRef::Account(acc(A)),
                Transaction {
                    id: tx(810),
                    account_id: acc(A),
                    project_id: prj(P),
                    kind: TransactionKind::BankPayoutFailure(bpo(1)),
                    value: eur(400),
                    balance_after: eur(1_000),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::EUR),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: eur(400),
                    total_after: eur(1_000),
                    account_id: acc(A),
                    transaction_id: tx(810),
                })
            ),
        ]
    );
    let failed = world
        .store
        .state(&StreamRef::BankPayout(bpo(1)))
        .as_bank_payout()
        .unwrap();
    assert_eq!(failed.state, paycore_domain::bank_payout::BankPayoutState::Failed);
    assert_eq!(failed.failure_transaction_id, Some(tx(810)));
    let fail_again = BankPayoutCommand::FailBankPayout {
        id: bpo(1),
        failure_transaction_id: tx(811),
    }
    .into();
    assert_refused(world.run(P, fail_again), Refusal::PayoutNotProcessing);
    assert_refused(
        world.run(P, BankPayoutCommand::CompleteBankPayout { id: bpo(1) }.into()),
        Refusal::PayoutNotProcessing,
    );
    assert_refused(
        world.run(
            P,
            BankPayoutCommand::ReturnBankPayout {
                id: bpo(1),
                failure_transaction_id: tx(811),
            }
            .into(),
        ),
        Refusal::PayoutNotCompleted,
    );
    assert_eq!(world.balance(A), 1_000);
    assert_eq!(world.total(P, Currency::EUR), 1_000);
}

#[test]
fn returned_payout_gives_the_funds_back_once() {
    let mut world = World::new();
    world.set(A, eur(1_000));
    world.create_payout(1, A, eur(400)).unwrap();
    // A processing payout cannot come back: it was not sent.
    assert_refused(
        world.run(
            P,
            BankPayoutCommand::ReturnBankPayout {
                id: bpo(1),
                failure_transaction_id: tx(820),
            }
            .into(),
        ),
        Refusal::PayoutNotCompleted,
    );
    let events = world.ok_in(P, BankPayoutCommand::CompleteBankPayout { id: bpo(1) }.into());
    assert_eq!(
        events,
        vec![(
            StreamRef::BankPayout(bpo(1)),
            Event::BankPayoutCompleted(BankPayoutCompleted { completed_at: T0 })
        )]
    );
    assert_refused(
        world.run(P, BankPayoutCommand::CompleteBankPayout { id: bpo(1) }.into()),
        Refusal::PayoutNotProcessing,
    );
    assert_refused(
        world.run(
            P,
            BankPayoutCommand::FailBankPayout {
                id: bpo(1),
                failure_transaction_id: tx(820),
            }
            .into(),
        ),
        Refusal::PayoutNotProcessing,
    );
    assert_eq!(world.balance(A), 600);
    // Months later, the destination bank sends it back.
    let events = world.ok_at(
        P,
        after(90 * DAY),
        BankPayoutCommand::ReturnBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(821),
        }
        .into(),
    );
    assert_eq!(
        events[0],
        (
            StreamRef::BankPayout(bpo(1)),
            Event::BankPayoutReturned(BankPayoutReversed {
                failure_transaction_id: tx(821),
                reversed_at: after(90 * DAY),
            })
        )
    );
    let returned = world
        .store
        .state(&StreamRef::BankPayout(bpo(1)))
        .as_bank_payout()
        .unwrap();
    assert_eq!(
        returned.state,
        paycore_domain::bank_payout::BankPayoutState::Refunded
    );
    assert_eq!(returned.failure_transaction_id, Some(tx(821)));
    assert_eq!(world.balance(A), 1_000);
    assert_refused(
        world.run(
            P,
            BankPayoutCommand::ReturnBankPayout {
                id: bpo(1),
                failure_transaction_id: tx(822),
            }
            .into(),
        ),
        Refusal::PayoutNotCompleted,
    );
    let credits: Vec<Transaction> = world
        .transactions(A)
        .into_iter()
        .filter(|t| t.kind == TransactionKind::BankPayoutFailure(bpo(1)))
        .collect();
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].value, eur(400));
    assert_eq!(world.total(P, Currency::EUR), 1_000);
    // Another project sees no such payout.
    assert_not_found(
        world.run(O, BankPayoutCommand::CompleteBankPayout { id: bpo(1) }.into()),
        "bank payout",
        bpo(1),
    );
}

#[test]
fn minirefs_are_unique_per_iban_within_a_year_and_reusable_after_it() {
    let mut world = World::new();
    world.set(A, eur(100_000));
    world.set(OA, eur(100_000));
    let entropy = [9; 8];
    let candidates: Vec<Miniref> = Miniref::candidates(entropy).take(5).collect();
    assert_eq!(candidates[0], Miniref::from_entropy(entropy));
    let miniref_of = |world: &World, id: BankPayoutId| {
        world
            .store
            .state(&StreamRef::BankPayout(id))
            .as_bank_payout()
            .unwrap()
            .miniref
    };
    // The same entropy collides: the next free candidate is taken.
    world.ok_in(
        P,
        payout(bpo(1), acc(A), to_iban(IBAN_X), eur(1), entropy, tx(830)),
    );
    world.ok_in(
        P,
        payout(bpo(2), acc(A), to_iban(IBAN_X), eur(1), entropy, tx(831)),
    );
    assert_eq!(miniref_of(&world, bpo(1)), candidates[0]);
    assert_eq!(miniref_of(&world, bpo(2)), candidates[1]);
    // Another IBAN has minirefs of its own.
    world.ok_in(
        P,
        payout(bpo(3), acc(A), to_iban(IBAN_Y), eur(1), entropy, tx(832)),
    );
    assert_eq!(miniref_of(&world, bpo(3)), candidates[0]);
    // Another project's payouts to the same IBAN count too.
    world.ok_in(
        O,
        payout(bpo(4), acc(OA), to_iban(IBAN_X), eur(1), entropy, tx(833)),
    );
    assert_eq!(miniref_of(&world, bpo(4)), candidates[2]);
    // Just within a year, all three are still reserved.
    let almost = after(MINIREF_RESERVATION_SECONDS - 1);
    world.ok_at(
        P,
        almost,
        payout(bpo(5), acc(A), to_iban(IBAN_X), eur(1), entropy, tx(834)),
    );
    assert_eq!(miniref_of(&world, bpo(5)), candidates[3]);
    // A year after, the first ones are free again.
    let year = after(MINIREF_RESERVATION_SECONDS);
    world.ok_at(
        P,
        year,
        payout(bpo(6), acc(A), to_iban(IBAN_X), eur(1), entropy, tx(835)),
    );
    assert_eq!(miniref_of(&world, bpo(6)), candidates[0]);
    // The IBAN's record forgot what is older than a year.
    let Aggregate::PayoutDestination(record) = world.store.state(&StreamRef::PayoutDestination(iban(IBAN_X)))
    else {
        panic!("no payout destination record");
    };
    let mut remembered: Vec<Miniref> = record.minirefs.keys().copied().collect();
    remembered.sort();
    let mut expected = vec![candidates[3], candidates[0]];
    expected.sort();
    assert_eq!(remembered, expected);
}

#[test]
fn minirefs_follow_the_ibans_history() {
    let mut world = World::new();
    world.set(A, eur(100_000));
    let entropy = [0x42; 8];
    let candidates: Vec<Miniref> = Miniref::candidates(entropy).take(5).collect();
    let destination = StreamRef::PayoutDestination(iban(IBAN_Y));
    // History written by earlier payouts (of any project): candidate 3 over
    // a year ago, candidates 0 to 2 ten days ago.
    let history = [
        (candidates[3], after(-MINIREF_RESERVATION_SECONDS)),
        (candidates[0], after(-10 * DAY)),
        (candidates[1], after(-10 * DAY)),
        (candidates[2], after(-10 * DAY)),
    ];
    for (n, (miniref, at)) in history.into_iter().enumerate() {
        world.store.apply(
            &destination,
            &Event::MinirefAssigned(MinirefAssigned {
                project_id: prj(O),
                bank_payout_id: bpo(100 + n as u128),
                miniref,
                assigned_at: at,
            }),
        );
    }
    world.ok_in(
        P,
        payout(bpo(1), acc(A), to_iban(IBAN_Y), eur(1), entropy, tx(840)),
    );
    let chosen = world
        .store
        .state(&StreamRef::BankPayout(bpo(1)))
        .as_bank_payout()
        .unwrap()
        .miniref;
    assert_eq!(chosen, candidates[3]);
}

#[test]
fn minirefs_run_out_only_when_every_candidate_is_taken() {
    let mut world = World::new();
    world.set(A, eur(100_000));
    let entropy = [0x17; 8];
    let destination = StreamRef::PayoutDestination(iban(IBAN_X));
    let tried: Vec<Miniref> = Miniref::candidates(entropy).take(4_096).collect();
    let reserve = |world: &mut World, minirefs: &[Miniref]| {
        let record = PayoutDestination {
            minirefs: minirefs.iter().map(|miniref| (*miniref, after(-DAY))).collect(),
        };
        world
            .store
            .states
            .insert(destination.clone(), Aggregate::PayoutDestination(record));
    };
    reserve(&mut world, &tried[..4_095]);
    world.ok_in(
        P,
        payout(bpo(1), acc(A), to_iban(IBAN_X), eur(1), entropy, tx(850)),
    );
    let chosen = world
        .store
        .state(&StreamRef::BankPayout(bpo(1)))
        .as_bank_payout()
        .unwrap()
        .miniref;
    assert_eq!(chosen, tried[4_095]);
    reserve(&mut world, &tried);
    assert_refused(
        world.run(
            P,
            payout(bpo(2), acc(A), to_iban(IBAN_X), eur(1), entropy, tx(851)),
        ),
        Refusal::CodesExhausted,
    );
    // Other entropy starts elsewhere in the space and finds a free one.
    world.ok_in(
        P,
        payout(bpo(2), acc(A), to_iban(IBAN_X), eur(1), [0xee; 8], tx(851)),
    );
}
