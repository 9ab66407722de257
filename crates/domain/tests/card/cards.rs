//! Cards, from card info or a token.

use super::*;
use paycore_domain::card::CardCommand;
use paycore_domain::customer::CustomerCommand;

#[test]
fn card_from_info_with_a_customer() {
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
        O,
        CustomerCommand::CreateCustomer {
            id: cus(2),
            identity: None,
            meta: Meta::default(),
        }
        .into(),
    );
    let m = meta(&[("_name", "Work card")]);
    let events = world.ok_in(
        P,
        CardCommand::CreateCard {
            id: crd(1),
            source: CardSource::Info(card_info(MASTERCARD)),
            customer_id: Some(cus(1)),
            meta: m.clone(),
        }
        .into(),
    );
    assert_eq!(
        events,
        vec![(
            StreamRef::Card(crd(1)),
            Event::CardCreated(CardCreated {
                id: crd(1),
                project_id: prj(P),
                customer_id: Some(cus(1)),
                card_info: card_info(MASTERCARD),
                card_token_id: None,
                meta: m,
                created_at: T0,
            })
        )]
    );
    let card = world.store.state(&StreamRef::Card(crd(1))).as_card().unwrap();
    assert_eq!(card.customer_id, Some(cus(1)));
    // Another project's or a missing customer is not found.
    for customer in [cus(2), cus(3)] {
        assert_not_found(
            world.run(
                P,
                CardCommand::CreateCard {
                    id: crd(2),
                    source: CardSource::Info(card_info(VISA)),
                    customer_id: Some(customer),
                    meta: Meta::default(),
                }
                .into(),
            ),
            "customer",
            customer,
        );
    }
    // A card is not made from another card.
    assert_eq!(
        invalid_fields(
            world.run(
                P,
                CardCommand::CreateCard {
                    id: crd(2),
                    source: CardSource::Card(crd(1)),
                    customer_id: None,
                    meta: Meta::default(),
                }
                .into()
            )
        ),
        ["card_id"]
    );
    assert_eq!(
        world.run(
            P,
            CardCommand::CreateCard {
                id: crd(1),
                source: CardSource::Info(card_info(VISA)),
                customer_id: None,
                meta: Meta::default(),
            }
            .into()
        ),
        Err(DomainError::AlreadyExists {
            kind: "card",
            id: crd(1).to_string()
        })
    );
    // Meta can change; only in the card's own project.
    let m = meta(&[("_starred", "true")]);
    world.ok_in(
        P,
        CardCommand::UpdateCard {
            id: crd(1),
            meta: m.clone(),
        }
        .into(),
    );
    assert_eq!(
        world
            .store
            .state(&StreamRef::Card(crd(1)))
            .as_card()
            .unwrap()
            .meta,
        m
    );
    assert_not_found(
        world.run(
            O,
            CardCommand::UpdateCard {
                id: crd(1),
                meta: Meta::default(),
            }
            .into(),
        ),
        "card",
        crd(1),
    );
}
