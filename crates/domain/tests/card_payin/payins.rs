//! Card payins: direct and 3-D Secure, declines, settlements.

use super::*;
use paycore_domain::account::AccountCommand;
use paycore_domain::bank_payout::BankPayoutCommand;
use paycore_domain::card::CardCommand;
use paycore_domain::card_payin::CardPayinCommand;

#[test]
fn approved_payin_is_authorized_and_moves_no_money_yet() {
    let mut world = World::new();
    let m = meta(&[("order", "42")]);
    let events = world.ok_in(
        P,
        CardPayinCommand::CreateCardPayin(NewCardPayin {
            id: cpi(1),
            account_id: acc(A),
            source: CardSource::Info(card_info(VISA)),
            value: eur(12_345),
            authorization: PayinAuthorization::Direct(NetworkVerdict::Approved),
            meta: m.clone(),
        })
        .into(),
    );
    assert_eq!(
        events,
        vec![
            (
                StreamRef::CardPayin(cpi(1)),
                Event::CardPayinCreated(CardPayinCreated {
                    id: cpi(1),
                    project_id: prj(P),
                    account_id: acc(A),
                    card_id: None,
                    card_token_id: None,
                    card_info: card_info(VISA),
                    value: eur(12_345),
                    authentication_type: AuthenticationType::None,
                    authentication_redirect_url: None,
                    meta: m,
                    created_at: T0,
                })
            ),
            (
                StreamRef::CardPayin(cpi(1)),
                Event::CardPayinAuthorized(CardPayinAuthorized { authorized_at: T0 })
            ),
        ]
    );
    let state = world.payin(cpi(1));
    assert_eq!(state.state, CardPayinState::Authorized);
    assert_eq!(state.refunded_value, eur(0));
    assert_eq!(state.transaction_id, None);
    assert_eq!(world.balance(A), 0);
    assert_eq!(world.total(P, Currency::EUR), 0);
}

#[test]
fn declined_payin_is_created_in_state_declined() {
    let mut world = World::new();
    let mut n = 0;
    for card in sandbox_network::TEST_CARDS {
        let verdict = sandbox_network::authorize(&card_number(card.number), Authentication::NotAttempted);
        n += 1;
        let events = world.ok_in(
            P,
            payin(
                cpi(n),
                acc(A),
                CardSource::Info(card_info(card.number)),
                eur(1_000),
                PayinAuthorization::Direct(verdict),
            ),
        );
        assert_eq!(events.len(), 2, "{}", card.number);
        let state = world.payin(cpi(n));
        match (card.behaviour, verdict) {
            (Behaviour::Approve, NetworkVerdict::Approved) => {
                assert_eq!(state.state, CardPayinState::Authorized);
                assert_eq!(state.decline_reason, None);
            }
            (Behaviour::Decline(reason), NetworkVerdict::Declined(got)) => {
                assert_eq!(got, reason);
                assert_eq!(state.state, CardPayinState::Declined);
                assert_eq!(state.decline_reason, Some(reason));
                assert_eq!(
                    events[1],
                    (
                        StreamRef::CardPayin(cpi(n)),
                        Event::CardPayinDeclined(CardPayinDeclined {
                            reason,
                            declined_at: T0
                        })
                    )
                );
            }
            (Behaviour::RequiresAuthentication { .. }, _) => {
                assert_eq!(state.state, CardPayinState::Declined);
                assert_eq!(state.decline_reason, Some(DeclineReason::AuthenticationRequired));
            }
            other => panic!("{}: unexpected {other:?}", card.number),
        }
        // A declined payin cannot be settled; nothing is credited.
        if state.state == CardPayinState::Declined {
            assert_refused(
                world.run(P, settle(cpi(n), tx(900))),
                Refusal::CardPayinNotAuthorized,
            );
            assert_refused(
                world.run(P, refund(cpr(n), cpi(n), None, None, tx(901))),
                Refusal::CardPayinNotSettled,
            );
        }
    }
    assert_eq!(world.balance(A), 0);
}

#[test]
fn three_d_secure_waits_for_the_cardholder() {
    let mut world = World::new();
    let url = "https://sandbox.paycore.example/3ds/1";
    let events = world.ok_in(
        P,
        payin(
            cpi(1),
            acc(A),
            CardSource::Info(card_info("4000000000003220")),
            eur(5_000),
            three_d_secure(url),
        ),
    );
    assert_eq!(
        events[1],
        (
            StreamRef::CardPayin(cpi(1)),
            Event::CardPayinAuthenticationRequested(CardPayinAuthenticationRequested {
                authentication_url: url.into(),
            })
        )
    );
    let state = world.payin(cpi(1));
    assert_eq!(state.state, CardPayinState::AuthenticationPending);
    assert_eq!(state.authentication_type, AuthenticationType::ThreeDSecure);
    assert_eq!(state.authentication_url.as_deref(), Some(url));
    assert_eq!(
        state.authentication_redirect_url.as_deref(),
        Some("https://shop.example/done")
    );
    // Not authorized yet: no settlement.
    assert_refused(
        world.run(P, settle(cpi(1), tx(900))),
        Refusal::CardPayinNotAuthorized,
    );
    // The cardholder passes; the network approves.
    let verdict = sandbox_network::authorize(&card_number("4000000000003220"), Authentication::Passed);
    assert_eq!(verdict, NetworkVerdict::Approved);
    let events = world.ok_in(
        P,
        CardPayinCommand::CompleteCardPayinAuthentication { id: cpi(1), verdict }.into(),
    );
    assert_eq!(
        events,
        vec![(
            StreamRef::CardPayin(cpi(1)),
            Event::CardPayinAuthorized(CardPayinAuthorized { authorized_at: T0 })
        )]
    );
    assert_eq!(world.payin(cpi(1)).state, CardPayinState::Authorized);
    // Only once.
    assert_refused(
        world.run(
            P,
            CardPayinCommand::CompleteCardPayinAuthentication { id: cpi(1), verdict }.into(),
        ),
        Refusal::CardPayinNotAwaitingAuthentication,
    );
    // A card that fails the challenge is declined.
    world.ok_in(
        P,
        payin(
            cpi(2),
            acc(A),
            CardSource::Info(card_info("4000000000003063")),
            eur(5_000),
            three_d_secure("https://sandbox.paycore.example/3ds/2"),
        ),
    );
    let verdict = sandbox_network::authorize(&card_number("4000000000003063"), Authentication::Passed);
    world.ok_in(
        P,
        CardPayinCommand::CompleteCardPayinAuthentication { id: cpi(2), verdict }.into(),
    );
    let state = world.payin(cpi(2));
    assert_eq!(state.state, CardPayinState::Declined);
    assert_eq!(state.decline_reason, Some(DeclineReason::AuthenticationFailed));
    // A payin without 3-D Secure is never awaiting it.
    world.ok_in(P, approved(cpi(3), acc(A), eur(1)));
    assert_refused(
        world.run(
            P,
            CardPayinCommand::CompleteCardPayinAuthentication {
                id: cpi(3),
                verdict: NetworkVerdict::Approved,
            }
            .into(),
        ),
        Refusal::CardPayinNotAwaitingAuthentication,
    );
    assert_not_found(
        world.run(
            O,
            CardPayinCommand::CompleteCardPayinAuthentication {
                id: cpi(1),
                verdict: NetworkVerdict::Approved,
            }
            .into(),
        ),
        "card payin",
        cpi(1),
    );
}

#[test]
fn settlement_credits_the_account_and_the_project_total() {
    let mut world = World::new();
    world.set(B, eur(700));
    world.ok_in(P, approved(cpi(1), acc(A), eur(2_500)));
    let events = world.ok_in(P, settle(cpi(1), tx(500)));
    assert_eq!(
        events,
        vec![
            (
                StreamRef::CardPayin(cpi(1)),
                Event::CardPayinSettled(CardPayinSettled {
                    transaction_id: tx(500),
                    settled_at: T0,
                })
            ),
            recorded(
                StreamRef::Account(acc(A)),
                Transaction {
                    id: tx(500),
                    account_id: acc(A),
                    project_id: prj(P),
                    kind: TransactionKind::CardPayin(cpi(1)),
                    value: eur(2_500),
                    balance_after: eur(2_500),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::EUR),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: eur(2_500),
                    total_after: eur(3_200),
                    account_id: acc(A),
                    transaction_id: tx(500),
                })
            ),
        ]
    );
    assert_eq!(TransactionKind::CardPayin(cpi(1)).as_str(), "card_payin");
    let state = world.payin(cpi(1));
    assert_eq!(state.state, CardPayinState::Settled);
    assert_eq!(state.transaction_id, Some(tx(500)));
    assert_eq!(world.balance(A), 2_500);
    assert_eq!(world.total(P, Currency::EUR), 3_200);
    // Settled once only.
    assert_refused(
        world.run(P, settle(cpi(1), tx(501))),
        Refusal::CardPayinNotAuthorized,
    );
    assert_eq!(world.balance(A), 2_500);
    // Another project's payin is not found.
    assert_not_found(world.run(O, settle(cpi(1), tx(502))), "card payin", cpi(1));
    assert_not_found(world.run(P, settle(cpi(9), tx(502))), "card payin", cpi(9));
}

#[test]
fn payin_with_a_stored_card_uses_its_info() {
    let mut world = World::new();
    world.ok_in(
        P,
        CardCommand::CreateCard {
            id: crd(1),
            source: CardSource::Info(card_info(MASTERCARD)),
            customer_id: None,
            meta: Meta::default(),
        }
        .into(),
    );
    world.ok_in(
        O,
        CardCommand::CreateCard {
            id: crd(2),
            source: CardSource::Info(card_info(VISA)),
            customer_id: None,
            meta: Meta::default(),
        }
        .into(),
    );
    world.ok_in(
        P,
        payin(
            cpi(1),
            acc(U),
            CardSource::Card(crd(1)),
            usd(900),
            PayinAuthorization::Direct(NetworkVerdict::Approved),
        ),
    );
    let state = world.payin(cpi(1));
    assert_eq!(state.card_id, Some(crd(1)));
    assert_eq!(state.card_token_id, None);
    assert_eq!(state.card_info, card_info(MASTERCARD));
    for card in [crd(2), crd(3)] {
        assert_not_found(
            world.run(
                P,
                payin(
                    cpi(2),
                    acc(A),
                    CardSource::Card(card),
                    eur(1),
                    PayinAuthorization::Direct(NetworkVerdict::Approved),
                ),
            ),
            "card",
            card,
        );
    }
}

#[test]
fn payin_parameters_are_checked() {
    let mut world = World::new();
    for amount in [0, -1, i64::MIN] {
        assert_eq!(
            invalid_fields(world.run(P, approved(cpi(1), acc(A), eur(amount)))),
            ["value.amount"],
            "{amount}"
        );
    }
    assert_eq!(
        invalid_fields(world.run(P, approved(cpi(1), acc(A), usd(100)))),
        ["value.currency"]
    );
    for account in [OA, 99] {
        assert_not_found(
            world.run(P, approved(cpi(1), acc(account), eur(100))),
            "account",
            acc(account),
        );
    }
    world.ok_in(P, approved(cpi(1), acc(A), eur(100)));
    assert_eq!(
        world.run(P, approved(cpi(1), acc(A), eur(100))),
        Err(DomainError::AlreadyExists {
            kind: "card payin",
            id: cpi(1).to_string()
        })
    );
    // Meta only changes in the payin's project.
    let m = meta(&[("order", "43")]);
    world.ok_in(
        P,
        CardPayinCommand::UpdateCardPayin {
            id: cpi(1),
            meta: m.clone(),
        }
        .into(),
    );
    assert_eq!(world.payin(cpi(1)).meta, m);
    assert_not_found(
        world.run(
            O,
            CardPayinCommand::UpdateCardPayin {
                id: cpi(1),
                meta: Meta::default(),
            }
            .into(),
        ),
        "card payin",
        cpi(1),
    );
}

#[test]
fn sandbox_simulations_are_refused_in_a_live_project() {
    let mut world = World::new();
    // Live projects take card payins, but the network events are not
    // simulated by API there.
    world.ok_in(L, approved(cpi(1), acc(LA), eur(1_000)));
    world.ok_in(
        L,
        payin(
            cpi(2),
            acc(LA),
            CardSource::Info(card_info(VISA)),
            eur(1_000),
            three_d_secure("https://paycore.example/3ds/2"),
        ),
    );
    world.ok_in(L, create_reference(bpir(1), acc(LA), &[code("FHKMRTWX")]));
    let simulations = [
        settle(cpi(1), tx(900)),
        CardPayinCommand::CompleteCardPayinAuthentication {
            id: cpi(2),
            verdict: NetworkVerdict::Approved,
        }
        .into(),
        CardPayinCommand::CompleteCardPayinRefund { id: cpr(1) }.into(),
        CardPayinCommand::FailCardPayinRefund {
            id: cpr(1),
            failure_transaction_id: tx(900),
        }
        .into(),
        BankPayoutCommand::CompleteBankPayout { id: bpo(1) }.into(),
        BankPayoutCommand::FailBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(900),
        }
        .into(),
        BankPayoutCommand::ReturnBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(900),
        }
        .into(),
        incoming(bpi(1), "ref FHKMRTWX", eur(100), tx(900)),
        AccountCommand::UpdateAccount {
            id: acc(LA),
            allow_negative_balance: None,
            meta: None,
            balance: Some((eur(100), tx(900))),
        }
        .into(),
    ];
    for command in simulations {
        let description = format!("{command:?}");
        match world.run(L, command) {
            Err(DomainError::Refused {
                refusal: Refusal::SandboxOnly,
                ..
            }) => {}
            other => panic!("{description}: expected SandboxOnly, got {other:?}"),
        }
    }
    assert_eq!(world.payin(cpi(1)).state, CardPayinState::Authorized);
    assert_eq!(world.payin(cpi(2)).state, CardPayinState::AuthenticationPending);
    assert_eq!(world.balance(LA), 0);
}
