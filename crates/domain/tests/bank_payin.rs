//! Payin references and the bank payins their codes name.
//!
//! Commands run against the mini event store of `common` (the world is
//! `common::money`), which checks the engine's contract: the decider reads
//! and writes only the streams that `streams()` and `dependent_streams()`
//! (asked until it names nothing new) declare, and a refused command
//! changes nothing.

#![allow(clippy::unwrap_used)]

use paycore_domain::bank_payin::BankPayinCommand;
use paycore_domain::events::*;
use paycore_domain::kernel::bank::PayinReferenceCode;
use paycore_domain::*;

mod common;

use common::money::*;
use common::*;

#[test]
fn reference_takes_the_first_free_candidate() {
    let mut world = World::new();
    let codes: Vec<PayinReferenceCode> = PayinReferenceCode::candidates([5; 8]).take(4).collect();
    let events = world.ok_in(P, create_reference(bpir(1), acc(A), &codes[..2]));
    assert_eq!(
        events,
        vec![
            (
                StreamRef::BankPayinReference(bpir(1)),
                Event::BankPayinReferenceCreated(BankPayinReferenceCreated {
                    id: bpir(1),
                    project_id: prj(P),
                    account_id: acc(A),
                    reference: codes[0],
                    meta: Meta::default(),
                    created_at: T0,
                })
            ),
            (
                StreamRef::PayinReferenceCode(codes[0]),
                Event::PayinReferenceCodeClaimed(PayinReferenceCodeClaimed {
                    project_id: prj(P),
                    bank_payin_reference_id: bpir(1),
                })
            ),
        ]
    );
    // Codes are unique across projects.
    world.ok_in(O, create_reference(bpir(2), acc(OA), &codes[..3]));
    let reference = |world: &World, id| {
        world
            .store
            .state(&StreamRef::BankPayinReference(id))
            .as_bank_payin_reference()
            .unwrap()
            .reference
    };
    assert_eq!(reference(&world, bpir(2)), codes[1]);
    world.ok_in(
        P,
        create_reference(bpir(3), acc(B), &[codes[1], codes[3], codes[2]]),
    );
    assert_eq!(reference(&world, bpir(3)), codes[3]);
    // All candidates taken (or none given): exhausted, try again.
    assert_refused(
        world.run(
            P,
            create_reference(bpir(4), acc(A), &[codes[0], codes[1], codes[3]]),
        ),
        Refusal::CodesExhausted,
    );
    assert_refused(
        world.run(P, create_reference(bpir(4), acc(A), &[])),
        Refusal::CodesExhausted,
    );
    for account in [OA, 99] {
        assert_not_found(
            world.run(P, create_reference(bpir(4), acc(account), &[codes[2]])),
            "account",
            acc(account),
        );
    }
}

#[test]
fn bank_payin_credits_the_account_of_the_reference_in_its_concept() {
    let mut world = World::new();
    world.ok_in(P, create_reference(bpir(1), acc(A), &[code("FHKMRTWX")]));
    let events = events(
        world
            .run(
                P,
                incoming(bpi(1), "Invoice 42 ref FHKM-RTWX", eur(4_200), tx(900)),
            )
            .unwrap(),
    );
    assert_eq!(
        events,
        vec![
            (
                StreamRef::BankPayin(bpi(1)),
                Event::BankPayinReceived(BankPayinReceived {
                    id: bpi(1),
                    project_id: prj(P),
                    bank_payin_reference_id: bpir(1),
                    account_id: acc(A),
                    transaction_id: tx(900),
                    concept: concept("Invoice 42 ref FHKM-RTWX"),
                    value: eur(4_200),
                    meta: Meta::default(),
                    created_at: T0,
                })
            ),
            recorded(
                StreamRef::Account(acc(A)),
                Transaction {
                    id: tx(900),
                    account_id: acc(A),
                    project_id: prj(P),
                    kind: TransactionKind::BankPayin(bpi(1)),
                    value: eur(4_200),
                    balance_after: eur(4_200),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::EUR),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: eur(4_200),
                    total_after: eur(4_200),
                    account_id: acc(A),
                    transaction_id: tx(900),
                })
            ),
        ]
    );
    // Lowercase and other spellings of the code work too.
    world.ok_in(P, incoming(bpi(2), "fhkmrtwx", eur(800), tx(901)));
    assert_eq!(world.balance(A), 5_000);
    assert_eq!(world.total(P, Currency::EUR), 5_000);
    assert_eq!(
        world.run(P, incoming(bpi(1), "FHKMRTWX", eur(1), tx(902))),
        Err(DomainError::AlreadyExists {
            kind: "bank payin",
            id: bpi(1).to_string()
        })
    );
    assert_eq!(
        invalid_fields(world.run(P, incoming(bpi(3), "FHKMRTWX", usd(1), tx(902)))),
        ["value.currency"]
    );
    assert_eq!(
        invalid_fields(world.run(P, incoming(bpi(3), "FHKMRTWX", eur(0), tx(902)))),
        ["value.amount"]
    );
    let m = meta(&[("matched", "yes")]);
    world.ok_in(
        P,
        BankPayinCommand::UpdateBankPayin {
            id: bpi(1),
            meta: m.clone(),
        }
        .into(),
    );
    assert_eq!(
        world
            .store
            .state(&StreamRef::BankPayin(bpi(1)))
            .as_bank_payin()
            .unwrap()
            .meta,
        m
    );
}

#[test]
fn bank_payin_without_a_reference_of_the_project_is_refused() {
    let mut world = World::new();
    world.ok_in(P, create_reference(bpir(1), acc(A), &[code("FHKMRTWX")]));
    world.ok_in(O, create_reference(bpir(2), acc(OA), &[code("KM4TRW9H")]));
    for text in [
        "Invoice 42",
        "ref YYYYYYYY",
        // Another project's code is no code of this project.
        "ref KM4TRW9H",
        // Glued to other letters, the code is not found.
        "REFFHKMRTWX",
    ] {
        assert_refused(
            world.run(P, incoming(bpi(1), text, eur(100), tx(900))),
            Refusal::UnknownPayinReference,
        );
    }
    // The other project's code works in its own project…
    world.ok_in(O, incoming(bpi(2), "ref KM4TRW9H", eur(100), tx(901)));
    assert_eq!(world.balance(OA), 100);
    // …and a concept with both codes credits the caller's own reference.
    world.ok_in(P, incoming(bpi(3), "KM4TRW9H FHKMRTWX", eur(100), tx(902)));
    assert_eq!(world.balance(A), 100);
    assert_eq!(world.balance(OA), 100);
}

#[test]
fn reference_can_move_to_another_account() {
    let mut world = World::new();
    world.ok_in(P, create_reference(bpir(1), acc(A), &[code("FHKMRTWX")]));
    // The same account: nothing to record.
    assert_eq!(
        world.ok_in(
            P,
            BankPayinCommand::UpdateBankPayinReference {
                id: bpir(1),
                account_id: Some(acc(A)),
                meta: None,
            }
            .into(),
        ),
        vec![]
    );
    let events = world.ok_in(
        P,
        BankPayinCommand::UpdateBankPayinReference {
            id: bpir(1),
            account_id: Some(acc(B)),
            meta: None,
        }
        .into(),
    );
    assert_eq!(
        events,
        vec![(
            StreamRef::BankPayinReference(bpir(1)),
            Event::BankPayinReferenceAccountChanged(BankPayinReferenceAccountChanged { account_id: acc(B) })
        )]
    );
    world.ok_in(P, incoming(bpi(1), "FHKMRTWX", eur(300), tx(900)));
    assert_eq!((world.balance(A), world.balance(B)), (0, 300));
    for account in [OA, 99] {
        assert_not_found(
            world.run(
                P,
                BankPayinCommand::UpdateBankPayinReference {
                    id: bpir(1),
                    account_id: Some(acc(account)),
                    meta: None,
                }
                .into(),
            ),
            "account",
            acc(account),
        );
    }
    assert_not_found(
        world.run(
            O,
            BankPayinCommand::UpdateBankPayinReference {
                id: bpir(1),
                account_id: None,
                meta: Some(Meta::default()),
            }
            .into(),
        ),
        "bank payin reference",
        bpir(1),
    );
}
