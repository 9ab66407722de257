//! Money in and out: card tokens, cards, card payins (direct and 3-D
//! Secure), settlements, refunds, bank accounts, payouts and their minirefs,
//! payin references, bank payins and transfers across currencies.
//!
//! Commands run against the same kind of mini event store as `deciders.rs`:
//! a map from stream to state that folds every decided event back in with
//! `Aggregate::evolve`. Every call also checks the engine's contract: the
//! decider reads and writes only the streams that `streams()` and
//! `dependent_streams()` (asked until it names nothing new) declare, and a
//! refused command changes nothing.

#![allow(clippy::unwrap_used)]

use paycore_domain::bank::{Concept, Miniref, PayinReferenceCode};
use paycore_domain::bank_payin::IncomingBankTransfer;
use paycore_domain::bank_payout::{
    MINIREF_RESERVATION_SECONDS, NewBankPayout, PayoutDestination, PayoutDestinationSource,
};
use paycore_domain::card::{CARD_TOKEN_LIFETIME_SECONDS, CardSource};
use paycore_domain::card::{CardInfo, CardNumber, Expiry};
use paycore_domain::card_payin::{
    AuthenticationType, CardPayin, CardPayinRefund, CardPayinState, DeclineReason, NetworkVerdict,
    NewCardPayin, NewRefund, PayinAuthorization, RefundState,
};
use paycore_domain::events::*;
use paycore_domain::fx::{self, Quote, Rate};
use paycore_domain::iban::Iban;
use paycore_domain::sandbox_network::{self, Authentication, Behaviour};
use paycore_domain::*;
use uuid::Uuid;

mod common;

use common::*;

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

const T0: Timestamp = Timestamp::from_micros(1_750_000_000_000_000);
const DAY: i64 = 24 * 60 * 60;

fn after(seconds: i64) -> Timestamp {
    T0.plus_seconds(seconds)
}

fn uuid(kind: u128, n: u128) -> Uuid {
    Uuid::from_u128((kind << 96) | n)
}
fn prj(n: u128) -> ProjectId {
    ProjectId::from_uuid(uuid(1, n))
}
fn cus(n: u128) -> CustomerId {
    CustomerId::from_uuid(uuid(3, n))
}
fn acc(n: u128) -> AccountId {
    AccountId::from_uuid(uuid(4, n))
}
fn trf(n: u128) -> TransferId {
    TransferId::from_uuid(uuid(5, n))
}
fn tx(n: u128) -> TransactionId {
    TransactionId::from_uuid(uuid(6, n))
}
fn crdt(n: u128) -> CardTokenId {
    CardTokenId::from_uuid(uuid(7, n))
}
fn crd(n: u128) -> CardId {
    CardId::from_uuid(uuid(8, n))
}
fn cpi(n: u128) -> CardPayinId {
    CardPayinId::from_uuid(uuid(9, n))
}
fn cpr(n: u128) -> CardPayinRefundId {
    CardPayinRefundId::from_uuid(uuid(10, n))
}
fn ba(n: u128) -> BankAccountId {
    BankAccountId::from_uuid(uuid(11, n))
}
fn bpo(n: u128) -> BankPayoutId {
    BankPayoutId::from_uuid(uuid(12, n))
}
fn bpir(n: u128) -> BankPayinReferenceId {
    BankPayinReferenceId::from_uuid(uuid(13, n))
}
fn bpi(n: u128) -> BankPayinId {
    BankPayinId::from_uuid(uuid(14, n))
}

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}
fn usd(amount: i64) -> Money {
    Money::new(amount, Currency::USD)
}

fn meta(entries: &[(&str, &str)]) -> Meta {
    let mut violations = Violations::new();
    Meta::parse(
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        "meta",
        &mut violations,
    )
    .expect("valid meta")
}

const VISA: &str = "4242424242424242";
const MASTERCARD: &str = "5555555555554444";

fn card_number(digits: &str) -> CardNumber {
    CardNumber::parse(digits).expect("valid card number")
}

fn card_info(digits: &str) -> CardInfo {
    let expiry = Expiry::new(12, 2030, 2025, 6).expect("valid expiry");
    CardInfo::new(&card_number(digits), expiry, &[0x11; 32])
}

fn iban(text: &str) -> Iban {
    Iban::parse(text).expect("valid IBAN")
}

const IBAN_X: &str = "ES9121000418450200051332";
const IBAN_Y: &str = "DE89370400440532013000";

fn bank_info(iban_text: &str, name: &str) -> BankAccountInfo {
    BankAccountInfo {
        iban: iban(iban_text),
        beneficiary_name: name.into(),
    }
}

fn concept(text: &str) -> Concept {
    Concept::parse(text).expect("valid concept")
}

fn code(text: &str) -> PayinReferenceCode {
    PayinReferenceCode::parse(text).expect("valid code")
}

fn rate(text: &str) -> Rate {
    Rate::parse(text).expect("valid rate")
}

fn payin(
    id: CardPayinId,
    account: AccountId,
    source: CardSource,
    value: Money,
    authorization: PayinAuthorization,
) -> Command {
    Command::CreateCardPayin(NewCardPayin {
        id,
        account_id: account,
        source,
        value,
        authorization,
        meta: Meta::default(),
    })
}

/// A payin the network approves at once, with a card sent inline.
fn approved(id: CardPayinId, account: AccountId, value: Money) -> Command {
    payin(
        id,
        account,
        CardSource::Info(card_info(VISA)),
        value,
        PayinAuthorization::Direct(NetworkVerdict::Approved),
    )
}

fn three_d_secure(url: &str) -> PayinAuthorization {
    PayinAuthorization::ThreeDSecure {
        authentication_url: url.into(),
        redirect_url: Some("https://shop.example/done".into()),
    }
}

fn settle(id: CardPayinId, transaction: TransactionId) -> Command {
    Command::SettleCardPayin {
        id,
        transaction_id: transaction,
    }
}

fn refund(
    id: CardPayinRefundId,
    payin: CardPayinId,
    value: Option<Money>,
    account: Option<AccountId>,
    transaction: TransactionId,
) -> Command {
    Command::CreateCardPayinRefund(NewRefund {
        id,
        card_payin_id: payin,
        value,
        account_id: account,
        transaction_id: transaction,
        meta: Meta::default(),
    })
}

fn payout(
    id: BankPayoutId,
    account: AccountId,
    destination: PayoutDestinationSource,
    value: Money,
    entropy: [u8; 8],
    transaction: TransactionId,
) -> Command {
    Command::CreateBankPayout(NewBankPayout {
        id,
        account_id: account,
        destination,
        concept: concept("Payout"),
        value,
        meta: Meta::default(),
        transaction_id: transaction,
        miniref_entropy: entropy,
    })
}

fn to_iban(iban_text: &str) -> PayoutDestinationSource {
    PayoutDestinationSource::Info(bank_info(iban_text, "Zoë O'Brien"))
}

fn create_reference(
    id: BankPayinReferenceId,
    account: AccountId,
    candidates: &[PayinReferenceCode],
) -> Command {
    Command::CreateBankPayinReference {
        id,
        account_id: account,
        candidates: candidates.to_vec(),
        meta: Meta::default(),
    }
}

fn incoming(id: BankPayinId, text: &str, value: Money, transaction: TransactionId) -> Command {
    Command::ReceiveBankPayin(IncomingBankTransfer {
        id,
        concept: concept(text),
        value,
        transaction_id: transaction,
        meta: Meta::default(),
    })
}

fn set_fx_rate(from: Currency, to: Currency, mid: &str, spread_bps: u32) -> Command {
    Command::SetFxRate {
        from,
        to,
        mid_rate: rate(mid),
        spread_bps,
    }
}

fn transfer(id: TransferId, from: AccountId, to: AccountId, value: Money) -> Command {
    Command::CreateTransfer {
        id,
        source_account_id: from,
        destination_account_id: to,
        value,
        meta: Meta::default(),
        source_transaction_id: tx(5_000 + id.uuid().as_u128() % 1_000 * 2),
        destination_transaction_id: tx(5_001 + id.uuid().as_u128() % 1_000 * 2),
    }
}

fn events(decision: Decision) -> Vec<(StreamRef, Event)> {
    match decision {
        Decision::Apply { events, .. } => events,
        Decision::Replay { .. } => panic!("expected new events, got {decision:?}"),
    }
}

fn assert_not_found(result: Result<Decision, DomainError>, kind: &str, id: impl ToString) {
    match result {
        Err(DomainError::NotFound { kind: k, id: i }) => assert_eq!((k, i), (kind, id.to_string())),
        other => panic!("expected {kind} {} not found, got {other:?}", id.to_string()),
    }
}

fn assert_refused(result: Result<Decision, DomainError>, refusal: Refusal) {
    match result {
        Err(DomainError::Refused { refusal: r, .. }) => assert_eq!(r, refusal),
        other => panic!("expected {refusal:?}, got {other:?}"),
    }
}

fn invalid_fields(result: Result<Decision, DomainError>) -> Vec<String> {
    match result {
        Err(DomainError::Invalid(violations)) => {
            assert!(violations.iter().all(|v| !v.description.is_empty()));
            violations.into_iter().map(|v| v.field).collect()
        }
        other => panic!("expected invalid fields, got {other:?}"),
    }
}

fn recorded(stream: StreamRef, transaction: Transaction) -> (StreamRef, Event) {
    (
        stream,
        Event::TransactionRecorded(TransactionRecorded { transaction }),
    )
}

/// A sandbox project P with EUR accounts A, B (no allowance), N (allows a
/// negative balance) and U (USD); a live project L with EUR account LA
/// (allows a negative balance); another sandbox project O with EUR account OA.
struct World {
    store: Store,
    next_tx: u128,
}

const P: u128 = 1;
const L: u128 = 2;
const O: u128 = 3;
const A: u128 = 1;
const B: u128 = 2;
const N: u128 = 3;
const U: u128 = 4;
const LA: u128 = 5;
const OA: u128 = 6;

impl World {
    fn new() -> Self {
        let mut world = Self {
            store: Store::default(),
            next_tx: 1,
        };
        for (project, environment) in [
            (P, Environment::Sandbox),
            (L, Environment::Live),
            (O, Environment::Sandbox),
        ] {
            world.ok(
                prj(project),
                Command::CreateProject {
                    id: prj(project),
                    name: "Acme".into(),
                    environment,
                    meta: Meta::default(),
                },
            );
        }
        for (project, account, currency, allow) in [
            (P, A, Currency::EUR, false),
            (P, B, Currency::EUR, false),
            (P, N, Currency::EUR, true),
            (P, U, Currency::USD, false),
            (L, LA, Currency::EUR, true),
            (O, OA, Currency::EUR, false),
        ] {
            world.ok(
                prj(project),
                Command::CreateAccount {
                    id: acc(account),
                    currency,
                    customer_id: None,
                    allow_negative_balance: allow,
                    meta: Meta::default(),
                },
            );
        }
        world
    }

    fn run(&mut self, project: u128, command: Command) -> Result<Decision, DomainError> {
        self.run_at(project, T0, command)
    }

    fn run_at(&mut self, project: u128, now: Timestamp, command: Command) -> Result<Decision, DomainError> {
        self.store.execute(&CommandEnvelope {
            project_id: prj(project),
            now,
            idempotency: None,
            command,
        })
    }

    fn ok(&mut self, project: ProjectId, command: Command) -> Vec<(StreamRef, Event)> {
        let description = format!("{command:?}");
        let result = self.store.execute(&CommandEnvelope {
            project_id: project,
            now: T0,
            idempotency: None,
            command,
        });
        events(result.unwrap_or_else(|error| panic!("{description} failed: {error:?}")))
    }

    fn ok_in(&mut self, project: u128, command: Command) -> Vec<(StreamRef, Event)> {
        self.ok(prj(project), command)
    }

    fn ok_at(&mut self, project: u128, now: Timestamp, command: Command) -> Vec<(StreamRef, Event)> {
        let description = format!("{command:?}");
        events(
            self.run_at(project, now, command)
                .unwrap_or_else(|error| panic!("{description} failed: {error:?}")),
        )
    }

    fn fresh_tx(&mut self) -> TransactionId {
        self.next_tx += 1;
        tx(self.next_tx)
    }

    /// Sandbox magic balance of an account of P (or O for OA).
    fn set(&mut self, account: u128, target: Money) {
        let project = if account == OA { O } else { P };
        let transaction = self.fresh_tx();
        self.ok_in(
            project,
            Command::UpdateAccount {
                id: acc(account),
                allow_negative_balance: None,
                meta: None,
                balance: Some((target, transaction)),
            },
        );
    }

    fn balance(&self, account: u128) -> i64 {
        self.store
            .state(&StreamRef::Account(acc(account)))
            .as_account()
            .expect("account exists")
            .balance
            .amount
    }

    fn total(&self, project: u128, currency: Currency) -> i64 {
        match self
            .store
            .state(&StreamRef::ProjectBalance(prj(project), currency))
        {
            Aggregate::ProjectBalance(balance) => balance.total.amount,
            Aggregate::Empty => 0,
            other => panic!("project balance holds {other:?}"),
        }
    }

    fn payin(&self, id: CardPayinId) -> &CardPayin {
        self.store
            .state(&StreamRef::CardPayin(id))
            .as_card_payin()
            .expect("card payin exists")
    }

    fn refund(&self, id: CardPayinRefundId) -> &CardPayinRefund {
        self.store
            .state(&StreamRef::CardPayinRefund(id))
            .as_card_payin_refund()
            .expect("refund exists")
    }

    fn payout_state(&self, id: BankPayoutId) -> paycore_domain::bank_payout::BankPayoutState {
        self.store
            .state(&StreamRef::BankPayout(id))
            .as_bank_payout()
            .expect("payout exists")
            .state
    }

    /// An approved and settled payin of `value` into `account` of P.
    fn settled_payin(&mut self, n: u128, account: u128, value: Money) -> CardPayinId {
        self.ok_in(P, approved(cpi(n), acc(account), value));
        let transaction = self.fresh_tx();
        self.ok_in(P, settle(cpi(n), transaction));
        cpi(n)
    }

    fn create_refund(
        &mut self,
        n: u128,
        payin: CardPayinId,
        value: Option<Money>,
    ) -> Result<Decision, DomainError> {
        let transaction = self.fresh_tx();
        self.run(P, refund(cpr(n), payin, value, None, transaction))
    }

    fn create_payout(&mut self, n: u128, account: u128, value: Money) -> Result<Decision, DomainError> {
        let transaction = self.fresh_tx();
        self.run(
            P,
            payout(
                bpo(n),
                acc(account),
                to_iban(IBAN_X),
                value,
                [n as u8; 8],
                transaction,
            ),
        )
    }

    /// Every transaction recorded on `account`, in order.
    fn transactions(&self, account: u128) -> Vec<Transaction> {
        self.store
            .log
            .iter()
            .filter(|(stream, _)| *stream == StreamRef::Account(acc(account)))
            .filter_map(|(_, event)| match event {
                Event::TransactionRecorded(recorded) => Some(recorded.transaction),
                _ => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Card tokens
// ---------------------------------------------------------------------------

#[test]
fn card_token_records_the_card_and_expires_after_ten_minutes() {
    let mut world = World::new();
    let events = world.ok_in(
        P,
        Command::CreateCardToken {
            id: crdt(1),
            card_info: card_info(VISA),
        },
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
            Command::CreateCardToken {
                id: crdt(1),
                card_info: card_info(VISA),
            }
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
        Command::CreateCardToken {
            id: crdt(1),
            card_info: card_info(MASTERCARD),
        },
    );
    let events = world.ok_in(
        P,
        Command::CreateCard {
            id: crd(1),
            source: CardSource::Token(crdt(1)),
            customer_id: None,
            meta: Meta::default(),
        },
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
            Command::CreateCard {
                id: crd(2),
                source: CardSource::Token(crdt(1)),
                customer_id: None,
                meta: Meta::default(),
            },
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
            Command::CreateCardToken {
                id: crdt(n),
                card_info: card_info(VISA),
            },
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
                Command::CreateCard {
                    id: crd(2),
                    source: CardSource::Token(crdt(2)),
                    customer_id: None,
                    meta: Meta::default(),
                },
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
        Command::CreateCardToken {
            id: crdt(1),
            card_info: card_info(VISA),
        },
    );
    for token in [crdt(1), crdt(99)] {
        assert_not_found(
            world.run(
                P,
                Command::CreateCard {
                    id: crd(1),
                    source: CardSource::Token(token),
                    customer_id: None,
                    meta: Meta::default(),
                },
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
        Command::CreateCard {
            id: crd(1),
            source: CardSource::Token(crdt(1)),
            customer_id: None,
            meta: Meta::default(),
        },
    );
}

// ---------------------------------------------------------------------------
// Cards
// ---------------------------------------------------------------------------

#[test]
fn card_from_info_with_a_customer() {
    let mut world = World::new();
    world.ok_in(
        P,
        Command::CreateCustomer {
            id: cus(1),
            identity: None,
            meta: Meta::default(),
        },
    );
    world.ok_in(
        O,
        Command::CreateCustomer {
            id: cus(2),
            identity: None,
            meta: Meta::default(),
        },
    );
    let m = meta(&[("_name", "Work card")]);
    let events = world.ok_in(
        P,
        Command::CreateCard {
            id: crd(1),
            source: CardSource::Info(card_info(MASTERCARD)),
            customer_id: Some(cus(1)),
            meta: m.clone(),
        },
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
                Command::CreateCard {
                    id: crd(2),
                    source: CardSource::Info(card_info(VISA)),
                    customer_id: Some(customer),
                    meta: Meta::default(),
                },
            ),
            "customer",
            customer,
        );
    }
    // A card is not made from another card.
    assert_eq!(
        invalid_fields(world.run(
            P,
            Command::CreateCard {
                id: crd(2),
                source: CardSource::Card(crd(1)),
                customer_id: None,
                meta: Meta::default(),
            }
        )),
        ["card_id"]
    );
    assert_eq!(
        world.run(
            P,
            Command::CreateCard {
                id: crd(1),
                source: CardSource::Info(card_info(VISA)),
                customer_id: None,
                meta: Meta::default(),
            }
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
        Command::UpdateCard {
            id: crd(1),
            meta: m.clone(),
        },
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
            Command::UpdateCard {
                id: crd(1),
                meta: Meta::default(),
            },
        ),
        "card",
        crd(1),
    );
}

// ---------------------------------------------------------------------------
// Card payins
// ---------------------------------------------------------------------------

#[test]
fn approved_payin_is_authorized_and_moves_no_money_yet() {
    let mut world = World::new();
    let m = meta(&[("order", "42")]);
    let events = world.ok_in(
        P,
        Command::CreateCardPayin(NewCardPayin {
            id: cpi(1),
            account_id: acc(A),
            source: CardSource::Info(card_info(VISA)),
            value: eur(12_345),
            authorization: PayinAuthorization::Direct(NetworkVerdict::Approved),
            meta: m.clone(),
        }),
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
        Command::CompleteCardPayinAuthentication { id: cpi(1), verdict },
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
            Command::CompleteCardPayinAuthentication { id: cpi(1), verdict },
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
        Command::CompleteCardPayinAuthentication { id: cpi(2), verdict },
    );
    let state = world.payin(cpi(2));
    assert_eq!(state.state, CardPayinState::Declined);
    assert_eq!(state.decline_reason, Some(DeclineReason::AuthenticationFailed));
    // A payin without 3-D Secure is never awaiting it.
    world.ok_in(P, approved(cpi(3), acc(A), eur(1)));
    assert_refused(
        world.run(
            P,
            Command::CompleteCardPayinAuthentication {
                id: cpi(3),
                verdict: NetworkVerdict::Approved,
            },
        ),
        Refusal::CardPayinNotAwaitingAuthentication,
    );
    assert_not_found(
        world.run(
            O,
            Command::CompleteCardPayinAuthentication {
                id: cpi(1),
                verdict: NetworkVerdict::Approved,
            },
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
        Command::CreateCard {
            id: crd(1),
            source: CardSource::Info(card_info(MASTERCARD)),
            customer_id: None,
            meta: Meta::default(),
        },
    );
    world.ok_in(
        O,
        Command::CreateCard {
            id: crd(2),
            source: CardSource::Info(card_info(VISA)),
            customer_id: None,
            meta: Meta::default(),
        },
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
        Command::UpdateCardPayin {
            id: cpi(1),
            meta: m.clone(),
        },
    );
    assert_eq!(world.payin(cpi(1)).meta, m);
    assert_not_found(
        world.run(
            O,
            Command::UpdateCardPayin {
                id: cpi(1),
                meta: Meta::default(),
            },
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
        Command::CompleteCardPayinAuthentication {
            id: cpi(2),
            verdict: NetworkVerdict::Approved,
        },
        Command::CompleteCardPayinRefund { id: cpr(1) },
        Command::FailCardPayinRefund {
            id: cpr(1),
            failure_transaction_id: tx(900),
        },
        Command::CompleteBankPayout { id: bpo(1) },
        Command::FailBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(900),
        },
        Command::ReturnBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(900),
        },
        incoming(bpi(1), "ref FHKMRTWX", eur(100), tx(900)),
        Command::UpdateAccount {
            id: acc(LA),
            allow_negative_balance: None,
            meta: None,
            balance: Some((eur(100), tx(900))),
        },
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

// ---------------------------------------------------------------------------
// Refunds
// ---------------------------------------------------------------------------

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
        Command::FailCardPayinRefund {
            id: cpr(1),
            failure_transaction_id: tx(602),
        },
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
        Command::FailCardPayinRefund {
            id: cpr(1),
            failure_transaction_id: tx(700),
        },
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
            Command::FailCardPayinRefund {
                id: cpr(1),
                failure_transaction_id: tx(701),
            },
        ),
        Refusal::RefundNotProcessing,
    );
    assert_refused(
        world.run(P, Command::CompleteCardPayinRefund { id: cpr(1) }),
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
    let events = world.ok_in(P, Command::CompleteCardPayinRefund { id: cpr(1) });
    assert_eq!(
        events,
        vec![(
            StreamRef::CardPayinRefund(cpr(1)),
            Event::CardPayinRefundCompleted(CardPayinRefundCompleted { completed_at: T0 })
        )]
    );
    assert_eq!(world.refund(cpr(1)).state, RefundState::Completed);
    assert_refused(
        world.run(P, Command::CompleteCardPayinRefund { id: cpr(1) }),
        Refusal::RefundNotProcessing,
    );
    assert_refused(
        world.run(
            P,
            Command::FailCardPayinRefund {
                id: cpr(1),
                failure_transaction_id: tx(700),
            },
        ),
        Refusal::RefundNotProcessing,
    );
    // A completed refund keeps its value taken.
    assert_eq!(world.payin(payin_id).refunded_value, eur(2_500));
    assert_eq!(world.balance(A), 7_500);
    for command in [
        Command::CompleteCardPayinRefund { id: cpr(1) },
        Command::UpdateCardPayinRefund {
            id: cpr(1),
            meta: Meta::default(),
        },
    ] {
        assert_not_found(world.run(O, command), "card payin refund", cpr(1));
    }
    let m = meta(&[("ticket", "7")]);
    world.ok_in(
        P,
        Command::UpdateCardPayinRefund {
            id: cpr(1),
            meta: m.clone(),
        },
    );
    assert_eq!(world.refund(cpr(1)).meta, m);
}

// ---------------------------------------------------------------------------
// Bank accounts and payouts
// ---------------------------------------------------------------------------

#[test]
fn bank_accounts_are_checked() {
    let mut world = World::new();
    world.ok_in(
        P,
        Command::CreateCustomer {
            id: cus(1),
            identity: None,
            meta: Meta::default(),
        },
    );
    world.ok_in(
        P,
        Command::CreateBankAccount {
            id: ba(1),
            info: bank_info(IBAN_X, "Zoë O'Brien"),
            customer_id: Some(cus(1)),
            meta: Meta::default(),
        },
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
            invalid_fields(world.run(
                P,
                Command::CreateBankAccount {
                    id: ba(2),
                    info: bank_info(IBAN_X, name),
                    customer_id: None,
                    meta: Meta::default(),
                }
            )),
            ["bank_account_info.beneficiary_name"],
            "{name:?}"
        );
    }
    assert_not_found(
        world.run(
            O,
            Command::CreateBankAccount {
                id: ba(2),
                info: bank_info(IBAN_X, "Zoë"),
                customer_id: Some(cus(1)),
                meta: Meta::default(),
            },
        ),
        "customer",
        cus(1),
    );
    assert_not_found(
        world.run(
            O,
            Command::UpdateBankAccount {
                id: ba(1),
                meta: Meta::default(),
            },
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
        Command::CreateBankAccount {
            id: ba(1),
            info: bank_info(IBAN_X, "Zoë O'Brien"),
            customer_id: None,
            meta: Meta::default(),
        },
    );
    let entropy = [3; 8];
    let m = meta(&[("invoice", "7")]);
    let events = world.ok_in(
        P,
        Command::CreateBankPayout(NewBankPayout {
            id: bpo(1),
            account_id: acc(A),
            destination: PayoutDestinationSource::BankAccount(ba(1)),
            concept: concept("Invoice 7"),
            value: eur(2_500),
            meta: m.clone(),
            transaction_id: tx(800),
            miniref_entropy: entropy,
        }),
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
        Command::FailBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(810),
        },
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
    let fail_again = Command::FailBankPayout {
        id: bpo(1),
        failure_transaction_id: tx(811),
    };
    assert_refused(world.run(P, fail_again), Refusal::PayoutNotProcessing);
    assert_refused(
        world.run(P, Command::CompleteBankPayout { id: bpo(1) }),
        Refusal::PayoutNotProcessing,
    );
    assert_refused(
        world.run(
            P,
            Command::ReturnBankPayout {
                id: bpo(1),
                failure_transaction_id: tx(811),
            },
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
            Command::ReturnBankPayout {
                id: bpo(1),
                failure_transaction_id: tx(820),
            },
        ),
        Refusal::PayoutNotCompleted,
    );
    let events = world.ok_in(P, Command::CompleteBankPayout { id: bpo(1) });
    assert_eq!(
        events,
        vec![(
            StreamRef::BankPayout(bpo(1)),
            Event::BankPayoutCompleted(BankPayoutCompleted { completed_at: T0 })
        )]
    );
    assert_refused(
        world.run(P, Command::CompleteBankPayout { id: bpo(1) }),
        Refusal::PayoutNotProcessing,
    );
    assert_refused(
        world.run(
            P,
            Command::FailBankPayout {
                id: bpo(1),
                failure_transaction_id: tx(820),
            },
        ),
        Refusal::PayoutNotProcessing,
    );
    assert_eq!(world.balance(A), 600);
    // Months later, the destination bank sends it back.
    let events = world.ok_at(
        P,
        after(90 * DAY),
        Command::ReturnBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(821),
        },
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
            Command::ReturnBankPayout {
                id: bpo(1),
                failure_transaction_id: tx(822),
            },
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
        world.run(O, Command::CompleteBankPayout { id: bpo(1) }),
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

// ---------------------------------------------------------------------------
// Payin references and bank payins
// ---------------------------------------------------------------------------

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
        Command::UpdateBankPayin {
            id: bpi(1),
            meta: m.clone(),
        },
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
            Command::UpdateBankPayinReference {
                id: bpir(1),
                account_id: Some(acc(A)),
                meta: None,
            },
        ),
        vec![]
    );
    let events = world.ok_in(
        P,
        Command::UpdateBankPayinReference {
            id: bpir(1),
            account_id: Some(acc(B)),
            meta: None,
        },
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
                Command::UpdateBankPayinReference {
                    id: bpir(1),
                    account_id: Some(acc(account)),
                    meta: None,
                },
            ),
            "account",
            acc(account),
        );
    }
    assert_not_found(
        world.run(
            O,
            Command::UpdateBankPayinReference {
                id: bpir(1),
                account_id: None,
                meta: Some(Meta::default()),
            },
        ),
        "bank payin reference",
        bpir(1),
    );
}

// ---------------------------------------------------------------------------
// Transfers across currencies
// ---------------------------------------------------------------------------

#[test]
fn fx_transfer_converts_at_the_configured_rate_rounding_down() {
    let mut world = World::new();
    world.set(A, eur(10_000));
    world.set(U, usd(500));
    let events = world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "1.0842", 30));
    assert_eq!(
        events,
        vec![(
            StreamRef::FxRate(Currency::EUR, Currency::USD),
            Event::FxRateSet(FxRateSet {
                from: Currency::EUR,
                to: Currency::USD,
                mid_rate: rate("1.0842"),
                spread_bps: 30,
                set_at: T0,
            })
        )]
    );
    let command = Command::CreateTransfer {
        id: trf(1),
        source_account_id: acc(A),
        destination_account_id: acc(U),
        value: eur(1_001),
        meta: Meta::default(),
        source_transaction_id: tx(950),
        destination_transaction_id: tx(951),
    };
    let events = world.ok_in(P, command);
    // 1.0842 less 0.30 % is 1.0809474; 10.01 EUR × 1.0809474 = 10.8202834… USD.
    let exchange = Exchange {
        destination_value: usd(1_082),
        mid_rate: rate("1.0842"),
        spread_bps: 30,
        rate_used: rate("1.0809474"),
    };
    let conversion = fx::convert(
        eur(1_001),
        Quote::new(Currency::EUR, Currency::USD, rate("1.0842"), 30).unwrap(),
    )
    .unwrap();
    assert_eq!(conversion.destination, exchange.destination_value);
    assert_eq!(conversion.rate_used, exchange.rate_used);
    assert_eq!(
        events,
        vec![
            (
                StreamRef::Transfer(trf(1)),
                Event::TransferCreated(TransferCreated {
                    id: trf(1),
                    project_id: prj(P),
                    source_account_id: acc(A),
                    destination_account_id: acc(U),
                    source_transaction_id: tx(950),
                    destination_transaction_id: tx(951),
                    value: eur(1_001),
                    meta: Meta::default(),
                    created_at: T0,
                    exchange: Some(exchange),
                })
            ),
            recorded(
                StreamRef::Account(acc(A)),
                Transaction {
                    id: tx(950),
                    account_id: acc(A),
                    project_id: prj(P),
                    kind: TransactionKind::TransferSource(trf(1)),
                    value: eur(-1_001),
                    balance_after: eur(8_999),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::EUR),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: eur(-1_001),
                    total_after: eur(8_999),
                    account_id: acc(A),
                    transaction_id: tx(950),
                })
            ),
            recorded(
                StreamRef::Account(acc(U)),
                Transaction {
                    id: tx(951),
                    account_id: acc(U),
                    project_id: prj(P),
                    kind: TransactionKind::TransferDestination(trf(1)),
                    value: usd(1_082),
                    balance_after: usd(1_582),
                    created_at: T0,
                }
            ),
            (
                StreamRef::ProjectBalance(prj(P), Currency::USD),
                Event::ProjectBalanceChanged(ProjectBalanceChanged {
                    project_id: prj(P),
                    delta: usd(1_082),
                    total_after: usd(1_582),
                    account_id: acc(U),
                    transaction_id: tx(951),
                })
            ),
        ]
    );
    let stored = world
        .store
        .state(&StreamRef::Transfer(trf(1)))
        .as_transfer()
        .unwrap();
    assert_eq!(stored.exchange, Some(exchange));
    assert_eq!(world.total(P, Currency::EUR), 8_999);
    assert_eq!(world.total(P, Currency::USD), 1_582);
}

#[test]
fn fx_transfer_needs_a_configured_rate_for_its_direction() {
    let mut world = World::new();
    world.set(A, eur(10_000));
    world.set(U, usd(10_000));
    assert_refused(
        world.run(P, transfer(trf(1), acc(A), acc(U), eur(100))),
        Refusal::FxRateUnavailable,
    );
    world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "1.08", 0));
    world.ok_in(P, transfer(trf(1), acc(A), acc(U), eur(100)));
    assert_eq!(world.balance(U), 10_108);
    // EUR→USD says nothing about USD→EUR.
    assert_refused(
        world.run(P, transfer(trf(2), acc(U), acc(A), usd(100))),
        Refusal::FxRateUnavailable,
    );
    // A removed rate is unavailable again.
    let events = world.ok_in(
        P,
        Command::RemoveFxRate {
            from: Currency::EUR,
            to: Currency::USD,
        },
    );
    assert_eq!(
        events,
        vec![(
            StreamRef::FxRate(Currency::EUR, Currency::USD),
            Event::FxRateRemoved(FxRateRemoved { removed_at: T0 })
        )]
    );
    assert_refused(
        world.run(P, transfer(trf(3), acc(A), acc(U), eur(100))),
        Refusal::FxRateUnavailable,
    );
    for (from, to) in [(Currency::EUR, Currency::USD), (Currency::USD, Currency::EUR)] {
        assert_not_found(
            world.run(P, Command::RemoveFxRate { from, to }),
            "exchange rate",
            format!("{from}→{to}"),
        );
    }
    // Set again, it applies again.
    world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "2", 0));
    world.ok_in(P, transfer(trf(3), acc(A), acc(U), eur(100)));
    assert_eq!(world.balance(U), 10_308);
    assert_eq!(world.balance(A), 9_800);
}

#[test]
fn fx_rates_are_validated_and_tiny_amounts_refused() {
    let mut world = World::new();
    world.set(A, eur(10_000));
    assert_eq!(
        invalid_fields(world.run(P, set_fx_rate(Currency::EUR, Currency::EUR, "1", 0))),
        ["rate"]
    );
    assert_eq!(
        invalid_fields(world.run(P, set_fx_rate(Currency::EUR, Currency::USD, "1", 10_000))),
        ["rate"]
    );
    world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "0.001", 0));
    // 1 cent is a thousandth of a cent: nothing to credit.
    assert_refused(
        world.run(P, transfer(trf(1), acc(A), acc(U), eur(1))),
        Refusal::FxConversionImpossible,
    );
    world.ok_in(P, transfer(trf(1), acc(A), acc(U), eur(1_999)));
    assert_eq!(world.balance(U), 1);
}

#[test]
fn fx_transfer_cannot_take_the_source_currency_total_below_zero() {
    let mut world = World::new();
    world.ok_in(P, set_fx_rate(Currency::EUR, Currency::USD, "1.1", 0));
    world.set(A, eur(100));
    // N may go negative, and a same-currency transfer leaves the total alone.
    world.ok_in(P, transfer(trf(1), acc(N), acc(B), eur(500)));
    assert_eq!(world.total(P, Currency::EUR), 100);
    // Money leaving EUR for USD must exist in the project's EUR total.
    assert_refused(
        world.run(P, transfer(trf(2), acc(N), acc(U), eur(101))),
        Refusal::ProjectBalanceNegative,
    );
    world.ok_in(P, transfer(trf(2), acc(N), acc(U), eur(100)));
    assert_eq!(world.total(P, Currency::EUR), 0);
    assert_eq!(world.total(P, Currency::USD), 110);
    assert_eq!(world.balance(N), -600);
    // A source without the allowance still needs the funds.
    assert_refused(
        world.run(P, transfer(trf(3), acc(A), acc(U), eur(101))),
        Refusal::InsufficientFunds,
    );
}

// ---------------------------------------------------------------------------
// Streams named through other streams
// ---------------------------------------------------------------------------

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
            Command::FailCardPayinRefund {
                id: cpr(1),
                failure_transaction_id: tx(902),
            }
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
        dependents(&world, P, Command::CompleteCardPayinRefund { id: cpr(1) }).1,
        vec![]
    );
    // A payout to a stored bank account reads its IBAN's record.
    world.ok_in(
        P,
        Command::CreateBankAccount {
            id: ba(1),
            info: bank_info(IBAN_Y, "Zoë"),
            customer_id: None,
            meta: Meta::default(),
        },
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
        Command::FailBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(904),
        },
        Command::ReturnBankPayout {
            id: bpo(1),
            failure_transaction_id: tx(904),
        },
    ] {
        assert_eq!(dependents(&world, P, command).1, named);
    }
    assert_eq!(
        dependents(&world, P, Command::CompleteBankPayout { id: bpo(1) }).1,
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
        Command::CreateCardToken {
            id: crdt(1),
            card_info: card_info(VISA),
        },
        approved(cpi(2), acc(A), eur(1)),
        Command::CompleteCardPayinAuthentication {
            id: cpi(1),
            verdict: NetworkVerdict::Approved,
        },
        create_reference(bpir(2), acc(A), &[code("KM4TRW9H")]),
        set_fx_rate(Currency::EUR, Currency::USD, "1.1", 0),
    ] {
        assert_eq!(dependents(&world, P, command).1, vec![]);
    }
}
