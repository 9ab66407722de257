//! Streams named through other streams (`dependent_streams`).

use super::*;
use paycore_domain::bank_account::BankAccountCommand;
use paycore_domain::bank_payout::BankPayoutCommand;
use paycore_domain::card::CardCommand;
use paycore_domain::card_payin::CardPayinCommand;

/// What the engine's loop sees: the streams named after loading only
/// `streams()`, and the fixed point over the whole state.
fn dependents(world: &World, project: u128, command: Command) -> (Vec<StreamRef>, Vec<StreamRef>) {
    let envelope = CommandEnvelope {
        project_id: prj(project),
        now: T0,
        idempotency: None,
        command,
    };
    let first = envelope.dependent_streams(&Partial {
        store: &world.store,
        visible: envelope.streams(),
    });
    let all = envelope.dependent_streams(&world.store);
    for stream in &first {
        assert!(all.contains(stream), "{stream} named at first but not at the end");
    }
    (first, all)
}

#[test]
fn dependent_streams_name_what_each_command_reads_through_others() {
    let mut world = World::new();
    let balance = |currency| StreamRef::ProjectBalance(prj(P), currency);
    // Nothing loaded yet (no such payin): nothing to add.
    assert_eq!(dependents(&world, P, settle(cpi(1), tx(900))), (vec![], vec![]));
    world.ok_in(P, approved(cpi(1), acc(A), eur(1_000)));
    let named = vec![StreamRef::Account(acc(A)), balance(Currency::EUR)];
    assert_eq!(
        dependents(&world, P, settle(cpi(1), tx(900))),
        (named.clone(), named.clone())
    );
    world.ok_in(P, settle(cpi(1), tx(900)));
    // A refund from the payin's account, or from another one.
    assert_eq!(
        dependents(&world, P, refund(cpr(1), cpi(1), None, None, tx(901))).1,
        named
    );
    assert_eq!(
        dependents(&world, P, refund(cpr(1), cpi(1), None, Some(acc(B)), tx(901))).1,
        vec![StreamRef::Account(acc(B)), balance(Currency::EUR)]
    );
    world.ok_in(P, refund(cpr(1), cpi(1), Some(eur(10)), None, tx(901)));
    assert_eq!(
        dependents(
            &world,
            P,
            CardPayinCommand::FailCardPayinRefund {
                id: cpr(1),
                failure_transaction_id: tx(902),
            }
            .into()
        )
        .1,
        vec![
            StreamRef::CardPayin(cpi(1)),
            StreamRef::Account(acc(A)),
            balance(Currency::EUR)
        ]
    );
    // Completing a refund, or a payout, reads nothing beyond its own stream.
    assert_eq!(
        dependents(
            &world,
            P,
            CardPayinCommand::CompleteCardPayinRefund { id: cpr(1) }.into()
        )
        .1,
        vec![]
    );
    // A payout to a stored bank account reads its IBAN's record.
    world.ok_in(
        P,
        BankAccountCommand::CreateBankAccount {
            id: ba(1),
            info: bank_info(IBAN_Y, "Zoë"),
            customer_id: None,
            meta: Meta::default(),
        }
        .into(),
    );
    assert_eq!(
        dependents(
            &world,
            P,
            payout(
                bpo(1),
                acc(A),
                PayoutDestinationSource::BankAccount(ba(1)),
                eur(1),
                [0; 8],
                tx(903)
            )
        )
        .1,
        vec![StreamRef::PayoutDestination(iban(IBAN_Y))]
    );
    assert_eq!(
        dependents(
            &world,
            P,
            payout(bpo(1), acc(A), to_iban(IBAN_Y), eur(1), [0; 8], tx(903))
        )
        .1,
        vec![]
    );
    world.ok_in(
        P,
        payout(bpo(1), acc(A), to_iban(IBAN_Y), eur(1), [0; 8], tx(903)),
    );
    for command in [
        BankPayoutCommand::FailBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(904),
        }
        .into(),
        BankPayoutCommand::ReturnBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(904),
        }
        .into(),
    ] {
        assert_eq!(dependents(&world, P, command).1, named);
    }
    assert_eq!(
        dependents(
            &world,
            P,
            BankPayoutCommand::CompleteBankPayout { id: bpo(1) }.into()
        )
        .1,
        vec![]
    );
    // A bank payin: the reference its concept names, then that reference's
    // account (two steps of the engine's loop).
    world.ok_in(P, create_reference(bpir(1), acc(B), &[code("FHKMRTWX")]));
    assert_eq!(
        dependents(&world, P, incoming(bpi(1), "ref FHKMRTWX", eur(5), tx(905))),
        (
            vec![StreamRef::BankPayinReference(bpir(1))],
            vec![StreamRef::Account(acc(B)), StreamRef::BankPayinReference(bpir(1))]
        )
    );
    assert_eq!(
        dependents(&world, P, incoming(bpi(1), "ref YYYYYYYY", eur(5), tx(905))),
        (vec![], vec![])
    );
    // Another project's code names nothing for the caller.
    assert_eq!(
        dependents(&world, O, incoming(bpi(1), "ref FHKMRTWX", eur(5), tx(905))),
        (vec![], vec![])
    );
    // A transfer across currencies: the rate and both totals.
    assert_eq!(
        dependents(&world, P, transfer(trf(1), acc(A), acc(U), eur(5))).1,
        vec![
            StreamRef::FxRate(Currency::EUR, Currency::USD),
            balance(Currency::EUR),
            balance(Currency::USD),
        ]
    );
    assert_eq!(
        dependents(&world, P, transfer(trf(1), acc(A), acc(B), eur(5))).1,
        vec![]
    );
    // Commands that name all they read up front.
    for command in [
        CardCommand::CreateCardToken {
            id: crdt(1),
            card_info: card_info(VISA),
        }
        .into(),
        approved(cpi(2), acc(A), eur(1)),
        CardPayinCommand::CompleteCardPayinAuthentication {
            id: cpi(1),
            verdict: NetworkVerdict::Approved,
        }
        .into(),
        create_reference(bpir(2), acc(A), &[code("KM4TRW9H")]),
        set_fx_rate(Currency::EUR, Currency::USD, "1.1", 0),
    ] {
        assert_eq!(dependents(&world, P, command).1, vec![]);
    }
}

#[test]
fn a_command_is_named_by_its_familys_variant_without_its_fields() {
    let command: Command = CardPayinCommand::FailCardPayinRefund {
        id: cpr(1),
        failure_transaction_id: tx(902),
    }
    .into();
    assert_eq!(command.name(), "FailCardPayinRefund");
    assert_eq!(settle(cpi(1), tx(900)).name(), "SettleCardPayin");
}
