//! Card tokens: created, used once, expired.

use super::*;
use paycore_domain::card::CardCommand;

#[test]
fn card_token_records_the_card_and_expires_after_ten_minutes() {
    let mut world = World::new();
    let events = world.ok_in(
        P,
        CardCommand::CreateCardToken {
            id: crdt(1),
            card_info: card_info(VISA),
        }
        .into(),
    );
    assert_eq!(
        events,
        vec![(
            StreamRef::CardToken(crdt(1)),
            Event::CardTokenCreated(CardTokenCreated {
                id: crdt(1),
                project_id: prj(P),
                card_info: card_info(VISA),
                created_at: T0,
                expires_at: after(10 * 60),
            })
        )]
    );
    assert_eq!(CARD_TOKEN_LIFETIME_SECONDS, 600);
    let token = world
        .store
        .state(&StreamRef::CardToken(crdt(1)))
        .as_card_token()
        .unwrap();
    assert_eq!(token.used, None);
    assert_eq!(
        world.run(
            P,
            CardCommand::CreateCardToken {
                id: crdt(1),
                card_info: card_info(VISA),
            }
            .into()
        ),
        Err(DomainError::AlreadyExists {
            kind: "card token",
            id: crdt(1).to_string()
        })
    );
}

#[test]
fn card_token_is_single_use() {
    let mut world = World::new();
    world.ok_in(
        P,
        CardCommand::CreateCardToken {
            id: crdt(1),
            card_info: card_info(MASTERCARD),
        }
        .into(),
    );
    let events = world.ok_in(
        P,
        CardCommand::CreateCard {
            id: crd(1),
            source: CardSource::Token(crdt(1)),
            customer_id: None,
            meta: Meta::default(),
        }
        .into(),
    );
    assert_eq!(
        events,
        vec![
            (
                StreamRef::Card(crd(1)),
                Event::CardCreated(CardCreated {
                    id: crd(1),
                    project_id: prj(P),
                    customer_id: None,
                    card_info: card_info(MASTERCARD),
                    card_token_id: Some(crdt(1)),
                    meta: Meta::default(),
                    created_at: T0,
                })
            ),
            (
                StreamRef::CardToken(crdt(1)),
                Event::CardTokenUsed(CardTokenUsed {
                    used_by: TokenUse::Card(crd(1)),
                    used_at: T0,
                })
            ),
        ]
    );
    // Used once: neither a card nor a payin can use it again.
    assert_refused(
        world.run(
            P,
            CardCommand::CreateCard {
                id: crd(2),
                source: CardSource::Token(crdt(1)),
                customer_id: None,
                meta: Meta::default(),
            }
            .into(),
        ),
        Refusal::CardTokenUsed,
    );
    assert_refused(
        world.run(
            P,
            payin(
                cpi(1),
                acc(A),
                CardSource::Token(crdt(1)),
                eur(100),
                PayinAuthorization::Direct(NetworkVerdict::Approved),
            ),
        ),
        Refusal::CardTokenUsed,
    );
}

#[test]
fn card_token_expires_at_ten_minutes() {
    let mut world = World::new();
    for n in [1, 2] {
        world.ok_in(
            P,
            CardCommand::CreateCardToken {
                id: crdt(n),
                card_info: card_info(VISA),
            }
            .into(),
        );
    }
    // One second before the end of its life, a token still pays.
    let events = world.ok_at(
        P,
        after(599),
        payin(
            cpi(1),
            acc(A),
            CardSource::Token(crdt(1)),
            eur(100),
            PayinAuthorization::Direct(NetworkVerdict::Approved),
        ),
    );
    assert!(events.contains(&(
        StreamRef::CardToken(crdt(1)),
        Event::CardTokenUsed(CardTokenUsed {
            used_by: TokenUse::CardPayin(cpi(1)),
            used_at: after(599),
        })
    )));
    let created = world.payin(cpi(1));
    assert_eq!(created.card_token_id, Some(crdt(1)));
    assert_eq!(created.card_id, None);
    assert_eq!(created.card_info, card_info(VISA));
    // At ten minutes it has expired, for cards and payins alike.
    for now in [after(600), after(DAY)] {
        assert_refused(
            world.run_at(
                P,
                now,
                payin(
                    cpi(2),
                    acc(A),
                    CardSource::Token(crdt(2)),
                    eur(100),
                    PayinAuthorization::Direct(NetworkVerdict::Approved),
                ),
            ),
            Refusal::CardTokenExpired,
        );
        assert_refused(
            world.run_at(
                P,
                now,
                CardCommand::CreateCard {
                    id: crd(2),
                    source: CardSource::Token(crdt(2)),
                    customer_id: None,
                    meta: Meta::default(),
                }
                .into(),
            ),
            Refusal::CardTokenExpired,
        );
    }
}

#[test]
fn another_projects_or_a_missing_token_is_not_found() {
    let mut world = World::new();
    world.ok_in(
        O,
        CardCommand::CreateCardToken {
            id: crdt(1),
            card_info: card_info(VISA),
        }
        .into(),
    );
    for token in [crdt(1), crdt(99)] {
        assert_not_found(
            world.run(
                P,
                CardCommand::CreateCard {
                    id: crd(1),
                    source: CardSource::Token(token),
                    customer_id: None,
                    meta: Meta::default(),
                }
                .into(),
            ),
            "card token",
            token,
        );
        assert_not_found(
            world.run(
                P,
                payin(
                    cpi(1),
                    acc(A),
                    CardSource::Token(token),
                    eur(1),
                    PayinAuthorization::Direct(NetworkVerdict::Approved),
                ),
            ),
            "card token",
            token,
        );
    }
    // Its own project can still use it.
    world.ok_in(
        O,
        CardCommand::CreateCard {
            id: crd(1),
            source: CardSource::Token(crdt(1)),
            customer_id: None,
            meta: Meta::default(),
        }
        .into(),
    );
}
