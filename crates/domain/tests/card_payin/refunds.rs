//! Refunds of settled card payins, and their completion or failure.

use super::*;
use paycore_domain::card_payin::CardPayinCommand;

#[test]
fn refund_takes_what_is_left_by_default() {
    let mut world = World::new();
    let payin_id = world.settled_payin(1, A, eur(10_000));
    let events = events(
        world
            .run(P, refund(cpr(1), payin_id, None, None, tx(600)))
            .unwrap(),
    );
    assert_eq!(
        events,
        vec![
            (
                StreamRef::CardPayinRefund(cpr(1)),
                Event::CardPayinRefundCreated(CardPayinRefundCreated {
                    id: cpr(1),
                    project_id: prj(P),
                    card_payin_id: payin_id,
                    account_id: acc(A),
                    transaction_id: tx(600),
                    value: eur(10_000),
                    meta: Meta::default(),
                    created_at: T0,
                })
            ),
            (
                StreamRef::CardPayin(payin_id),
                Event::CardPayinRefundChanged(CardPayinRefundChanged {
                    refund_id: cpr(1),
                    delta: eur(10_000),
                    refunded_value_after: eur(10_000),
                })
            ),
            recorded(
                StreamRef::Account(acc(A)),
                Transaction {
                    id: tx(600),
                    account_id: acc(A),
                    project_id: prj(P),
                    kind: TransactionKind::CardPayinRefund(cpr(1)),
                    value: eur(-10_000),
                    balance_after: eur(0),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::EUR),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: eur(-10_000),
                    total_after: eur(0),
                    account_id: acc(A),
                    transaction_id: tx(600),
                })
            ),
        ]
    );
    let refund_state = world.refund(cpr(1));
    assert_eq!(refund_state.state, RefundState::Processing);
    assert_eq!(refund_state.value, eur(10_000));
    assert_eq!(world.payin(payin_id).refunded_value, eur(10_000));
    assert_eq!(world.payin(payin_id).refundable(), eur(0));
    // Nothing is left: a default refund now asks for more than the payin.
    world.set(A, eur(5_000));
    assert_refused(
        world.create_refund(2, payin_id, None),
        Refusal::RefundExceedsPayin,
    );
    assert_refused(
        world.create_refund(2, payin_id, Some(eur(1))),
        Refusal::RefundExceedsPayin,
    );
}

#[test]
fn partial_refunds_add_up_to_the_payin_at_most() {
    let mut world = World::new();
    let payin_id = world.settled_payin(1, A, eur(10_000));
    world.create_refund(1, payin_id, Some(eur(3_000))).unwrap();
    assert_eq!(world.payin(payin_id).refunded_value, eur(3_000));
    assert_refused(
        world.create_refund(2, payin_id, Some(eur(7_001))),
        Refusal::RefundExceedsPayin,
    );
    world.create_refund(2, payin_id, Some(eur(6_999))).unwrap();
    // The default is what is left: one cent.
    world.create_refund(3, payin_id, None).unwrap();
    assert_eq!(world.refund(cpr(3)).value, eur(1));
    assert_eq!(world.payin(payin_id).refunded_value, eur(10_000));
    assert_eq!(world.balance(A), 0);
    assert_eq!(world.total(P, Currency::EUR), 0);
}

#[test]
fn refund_value_must_be_positive_and_in_the_payins_currency() {
    let mut world = World::new();
    let payin_id = world.settled_payin(1, A, eur(10_000));
    assert_eq!(
        invalid_fields(world.create_refund(1, payin_id, Some(usd(100)))),
        ["value.currency"]
    );
    for amount in [0, -5] {
        assert_eq!(
            invalid_fields(world.create_refund(1, payin_id, Some(eur(amount)))),
            ["value.amount"],
            "{amount}"
        );
    }
    // From an account in another currency.
    assert_eq!(
        invalid_fields(world.run(P, refund(cpr(1), payin_id, None, Some(acc(U)), tx(900)))),
        ["account_id"]
    );
    assert_eq!(world.payin(payin_id).refunded_value, eur(0));
}

#[test]
fn only_a_settled_payin_is_refunded() {
    let mut world = World::new();
    world.set(A, eur(10_000));
    world.ok_in(P, approved(cpi(1), acc(A), eur(1_000)));
    world.ok_in(
        P,
        payin(
            cpi(2),
            acc(A),
            CardSource::Info(card_info(VISA)),
            eur(1_000),
            PayinAuthorization::Direct(NetworkVerdict::Declined(DeclineReason::CardDeclined)),
        ),
    );
    world.ok_in(
        P,
        payin(
            cpi(3),
            acc(A),
            CardSource::Info(card_info(VISA)),
            eur(1_000),
            three_d_secure("https://sandbox.paycore.example/3ds/3"),
        ),
    );
    for payin_id in [cpi(1), cpi(2), cpi(3)] {
        assert_refused(
            world.create_refund(1, payin_id, Some(eur(1))),
            Refusal::CardPayinNotSettled,
        );
        assert_refused(
            world.create_refund(1, payin_id, None),
            Refusal::CardPayinNotSettled,
        );
    }
    assert_not_found(world.create_refund(1, cpi(9), None), "card payin", cpi(9));
    // Another project's payin is not found either.
    let payin_id = world.settled_payin(4, A, eur(1_000));
    assert_not_found(
        world.run(O, refund(cpr(1), payin_id, None, None, tx(900))),
        "card payin",
        payin_id,
    );
    assert_eq!(world.balance(A), 11_000);
}

#[test]
fn refund_from_another_account() {
    let mut world = World::new();
    let payin_id = world.settled_payin(1, A, eur(10_000));
    world.set(B, eur(4_000));
    world.ok_in(
        P,
        refund(cpr(1), payin_id, Some(eur(4_000)), Some(acc(B)), tx(600)),
    );
    assert_eq!(world.refund(cpr(1)).account_id, acc(B));
    assert_eq!((world.balance(A), world.balance(B)), (10_000, 0));
    // B is empty now, and does not allow a negative balance.
    assert_refused(
        world.run(P, refund(cpr(2), payin_id, Some(eur(1)), Some(acc(B)), tx(601))),
        Refusal::InsufficientFunds,
    );
    // Another project's account is not found.
    assert_not_found(
        world.run(P, refund(cpr(2), payin_id, Some(eur(1)), Some(acc(OA)), tx(601))),
        "account",
        acc(OA),
    );
    // A failure gives the funds back to the account they came from.
    world.ok_in(
        P,
        CardPayinCommand::FailCardPayinRefund {
            id: cpr(1),
            failure_transaction_id: tx(602),
        }
        .into(),
    );
    assert_eq!((world.balance(A), world.balance(B)), (10_000, 4_000));
    assert_eq!(world.payin(payin_id).refunded_value, eur(0));
}

#[test]
fn refund_beyond_the_accounts_balance_is_insufficient_funds() {
    let mut world = World::new();
    let payin_id = world.settled_payin(1, A, eur(10_000));
    world.ok_in(P, transfer(trf(1), acc(A), acc(B), eur(9_000)));
    assert_refused(
        world.create_refund(1, payin_id, Some(eur(1_001))),
        Refusal::InsufficientFunds,
    );
    assert_refused(world.create_refund(1, payin_id, None), Refusal::InsufficientFunds);
    world.create_refund(1, payin_id, Some(eur(1_000))).unwrap();
    assert_eq!(world.balance(A), 0);
    assert_eq!(world.payin(payin_id).refunded_value, eur(1_000));
}

#[test]
fn failed_refund_credits_back_once_and_frees_the_value() {
    let mut world = World::new();
    let payin_id = world.settled_payin(1, A, eur(10_000));
    world.create_refund(1, payin_id, Some(eur(4_000))).unwrap();
    world.create_refund(2, payin_id, Some(eur(1_000))).unwrap();
    assert_eq!(world.balance(A), 5_000);
    let events = world.ok_in(
        P,
        CardPayinCommand::FailCardPayinRefund {
            id: cpr(1),
            failure_transaction_id: tx(700),
        }
        .into(),
    );
    assert_eq!(
        events,
        vec![
            (
                StreamRef::CardPayinRefund(cpr(1)),
                Event::CardPayinRefundFailed(CardPayinRefundFailed {
                    failure_transaction_id: tx(700),
                    failed_at: T0,
                })
            ),
            (
                StreamRef::CardPayin(payin_id),
                Event::CardPayinRefundChanged(CardPayinRefundChanged {
                    refund_id: cpr(1),
                    delta: eur(-4_000),
                    refunded_value_after: eur(1_000),
                })
            ),
            recorded(
                StreamRef::Account(acc(A)),
                Transaction {
                    id: tx(700),
                    account_id: acc(A),
                    project_id: prj(P),
                    kind: TransactionKind::CardPayinRefundFailure(cpr(1)),
                    value: eur(4_000),
                    balance_after: eur(9_000),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::EUR),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: eur(4_000),
                    total_after: eur(9_000),
                    account_id: acc(A),
                    transaction_id: tx(700),
                })
            ),
        ]
    );
    let failed = world.refund(cpr(1));
    assert_eq!(failed.state, RefundState::Failed);
    assert_eq!(failed.failure_transaction_id, Some(tx(700)));
    assert_eq!(world.payin(payin_id).refunded_value, eur(1_000));
    // Failing again, or completing a failed refund, is refused.
    assert_refused(
        world.run(
            P,
            CardPayinCommand::FailCardPayinRefund {
                id: cpr(1),
                failure_transaction_id: tx(701),
            }
            .into(),
        ),
        Refusal::RefundNotProcessing,
    );
    assert_refused(
        world.run(P, CardPayinCommand::CompleteCardPayinRefund { id: cpr(1) }.into()),
        Refusal::RefundNotProcessing,
    );
    assert_eq!(world.balance(A), 9_000);
    // The freed value can be refunded again.
    world.create_refund(3, payin_id, None).unwrap();
    assert_eq!(world.refund(cpr(3)).value, eur(9_000));
    assert_eq!(world.payin(payin_id).refunded_value, eur(10_000));
    let failures: Vec<Transaction> = world
        .transactions(A)
        .into_iter()
        .filter(|t| t.kind == TransactionKind::CardPayinRefundFailure(cpr(1)))
        .collect();
    assert_eq!(failures.len(), 1);
}

#[test]
fn completed_refund_cannot_complete_or_fail_again() {
    let mut world = World::new();
    let payin_id = world.settled_payin(1, A, eur(10_000));
    world.create_refund(1, payin_id, Some(eur(2_500))).unwrap();
    let events = world.ok_in(P, CardPayinCommand::CompleteCardPayinRefund { id: cpr(1) }.into());
    assert_eq!(
        events,
        vec![(
            StreamRef::CardPayinRefund(cpr(1)),
            Event::CardPayinRefundCompleted(CardPayinRefundCompleted { completed_at: T0 })
        )]
    );
    assert_eq!(world.refund(cpr(1)).state, RefundState::Completed);
    assert_refused(
        world.run(P, CardPayinCommand::CompleteCardPayinRefund { id: cpr(1) }.into()),
        Refusal::RefundNotProcessing,
    );
    assert_refused(
        world.run(
            P,
            CardPayinCommand::FailCardPayinRefund {
                id: cpr(1),
                failure_transaction_id: tx(700),
            }
            .into(),
        ),
        Refusal::RefundNotProcessing,
    );
    // A completed refund keeps its value taken.
    assert_eq!(world.payin(payin_id).refunded_value, eur(2_500));
    assert_eq!(world.balance(A), 7_500);
    for command in [
        CardPayinCommand::CompleteCardPayinRefund { id: cpr(1) }.into(),
        CardPayinCommand::UpdateCardPayinRefund {
            id: cpr(1),
            meta: Meta::default(),
        }
        .into(),
    ] {
        assert_not_found(world.run(O, command), "card payin refund", cpr(1));
    }
    let m = meta(&[("ticket", "7")]);
    world.ok_in(
        P,
        CardPayinCommand::UpdateCardPayinRefund {
            id: cpr(1),
            meta: m.clone(),
        }
        .into(),
    );
    assert_eq!(world.refund(cpr(1)).meta, m);
}

/// With several servers, the payin a server holds can be older than a
/// refund it loads fresh (another server recorded both). Failing the refund
/// on that older payin is decided without a panic (the decider task would
/// stop); the engine's version check refuses the append, and the command is
/// decided again on the current payin.
#[test]
fn failing_a_refund_on_an_older_state_of_its_payin_is_decided_without_a_panic() {
    let mut world = World::new();
    let payin_id = world.settled_payin(1, A, eur(10_000));
    let before_the_refund = world.store.states[&StreamRef::CardPayin(payin_id)].clone();
    world.create_refund(1, payin_id, Some(eur(4_000))).unwrap();
    world
        .store
        .states
        .insert(StreamRef::CardPayin(payin_id), before_the_refund);
    let decided = world.run(
        P,
        CardPayinCommand::FailCardPayinRefund {
            id: cpr(1),
            failure_transaction_id: tx(800),
        }
        .into(),
    );
    assert!(matches!(decided, Ok(Decision::Apply { .. })), "{decided:?}");
}
