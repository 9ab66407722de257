//! The world of the money-in-and-out tests (card tokens, cards, card
//! payins and refunds, bank accounts, payouts, payin references, bank
//! payins, transfers across currencies), and the builders of their
//! commands.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses its own part

use paycore_domain::account::AccountCommand;
use paycore_domain::bank_payin::BankPayinCommand;
use paycore_domain::bank_payin::IncomingBankTransfer;
use paycore_domain::bank_payout::BankPayoutCommand;
use paycore_domain::bank_payout::{NewBankPayout, PayoutDestinationSource};
use paycore_domain::card::CardSource;
use paycore_domain::card::{CardInfo, CardNumber, Expiry};
use paycore_domain::card_payin::CardPayinCommand;
use paycore_domain::card_payin::{
    CardPayin, CardPayinRefund, NetworkVerdict, NewCardPayin, NewRefund, PayinAuthorization,
};
use paycore_domain::events::*;
use paycore_domain::fx_rate::FxRateCommand;
use paycore_domain::kernel::bank::{Concept, PayinReferenceCode};
use paycore_domain::kernel::fx::Rate;
use paycore_domain::kernel::iban::Iban;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::*;

use super::*;

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

pub const T0: Timestamp = Timestamp::from_micros(1_750_000_000_000_000);
pub const DAY: i64 = 24 * 60 * 60;

pub fn after(seconds: i64) -> Timestamp {
    T0.plus_seconds(seconds)
}

pub fn crdt(n: u128) -> CardTokenId {
    CardTokenId::from_uuid(uuid(7, n))
}
pub fn crd(n: u128) -> CardId {
    CardId::from_uuid(uuid(8, n))
}
pub fn cpi(n: u128) -> CardPayinId {
    CardPayinId::from_uuid(uuid(9, n))
}
pub fn cpr(n: u128) -> CardPayinRefundId {
    CardPayinRefundId::from_uuid(uuid(10, n))
}
pub fn ba(n: u128) -> BankAccountId {
    BankAccountId::from_uuid(uuid(11, n))
}
pub fn bpo(n: u128) -> BankPayoutId {
    BankPayoutId::from_uuid(uuid(12, n))
}
pub fn bpir(n: u128) -> BankPayinReferenceId {
    BankPayinReferenceId::from_uuid(uuid(13, n))
}
pub fn bpi(n: u128) -> BankPayinId {
    BankPayinId::from_uuid(uuid(14, n))
}

pub const VISA: &str = "4242424242424242";
pub const MASTERCARD: &str = "5555555555554444";

pub fn card_number(digits: &str) -> CardNumber {
    CardNumber::parse(digits).expect("valid card number")
}

pub fn card_info(digits: &str) -> CardInfo {
    let expiry = Expiry::new(12, 2030, 2025, 6).expect("valid expiry");
    CardInfo::new(&card_number(digits), expiry, &[0x11; 32])
}

pub fn iban(text: &str) -> Iban {
    Iban::parse(text).expect("valid IBAN")
}

pub const IBAN_X: &str = "ES9121000418450200051332";
pub const IBAN_Y: &str = "DE89370400440532013000";

pub fn bank_info(iban_text: &str, name: &str) -> BankAccountInfo {
    BankAccountInfo {
        iban: iban(iban_text),
        beneficiary_name: name.into(),
    }
}

pub fn concept(text: &str) -> Concept {
    Concept::parse(text).expect("valid concept")
}

pub fn code(text: &str) -> PayinReferenceCode {
    PayinReferenceCode::parse(text).expect("valid code")
}

pub fn rate(text: &str) -> Rate {
    Rate::parse(text).expect("valid rate")
}

pub fn payin(
    id: CardPayinId,
    account: AccountId,
    source: CardSource,
    value: Money,
    authorization: PayinAuthorization,
) -> Command {
    CardPayinCommand::CreateCardPayin(NewCardPayin {
        id,
        account_id: account,
        source,
        value,
        authorization,
        meta: Meta::default(),
    })
    .into()
}

/// A payin the network approves at once, with a card sent inline.
pub fn approved(id: CardPayinId, account: AccountId, value: Money) -> Command {
    payin(
        id,
        account,
        CardSource::Info(card_info(VISA)),
        value,
        PayinAuthorization::Direct(NetworkVerdict::Approved),
    )
}

pub fn three_d_secure(url: &str) -> PayinAuthorization {
    PayinAuthorization::ThreeDSecure {
        authentication_url: url.into(),
        redirect_url: Some("https://shop.example/done".into()),
    }
}

pub fn settle(id: CardPayinId, transaction: TransactionId) -> Command {
    CardPayinCommand::SettleCardPayin {
        id,
        transaction_id: transaction,
    }
    .into()
}

pub fn refund(
    id: CardPayinRefundId,
    payin: CardPayinId,
    value: Option<Money>,
    account: Option<AccountId>,
    transaction: TransactionId,
) -> Command {
    CardPayinCommand::CreateCardPayinRefund(NewRefund {
        id,
        card_payin_id: payin,
        value,
        account_id: account,
        transaction_id: transaction,
        meta: Meta::default(),
    })
    .into()
}

pub fn payout(
    id: BankPayoutId,
    account: AccountId,
    destination: PayoutDestinationSource,
    value: Money,
    entropy: [u8; 8],
    transaction: TransactionId,
) -> Command {
    BankPayoutCommand::CreateBankPayout(NewBankPayout {
        id,
        account_id: account,
        destination,
        concept: concept("Payout"),
        value,
        meta: Meta::default(),
        transaction_id: transaction,
        miniref_entropy: entropy,
    })
    .into()
}

pub fn to_iban(iban_text: &str) -> PayoutDestinationSource {
    PayoutDestinationSource::Info(bank_info(iban_text, "Zoë O'Brien"))
}

pub fn create_reference(
    id: BankPayinReferenceId,
    account: AccountId,
    candidates: &[PayinReferenceCode],
) -> Command {
    BankPayinCommand::CreateBankPayinReference {
        id,
        account_id: account,
        candidates: candidates.to_vec(),
        meta: Meta::default(),
    }
    .into()
}

pub fn incoming(id: BankPayinId, text: &str, value: Money, transaction: TransactionId) -> Command {
    BankPayinCommand::ReceiveBankPayin(IncomingBankTransfer {
        id,
        concept: concept(text),
        value,
        transaction_id: transaction,
        meta: Meta::default(),
    })
    .into()
}

pub fn set_fx_rate(from: Currency, to: Currency, mid: &str, spread_bps: u32) -> Command {
    FxRateCommand::SetFxRate {
        from,
        to,
        mid_rate: rate(mid),
        spread_bps,
    }
    .into()
}

pub fn transfer(id: TransferId, from: AccountId, to: AccountId, value: Money) -> Command {
    TransferCommand::CreateTransfer {
        id,
        source_account_id: from,
        destination_account_id: to,
        value,
        meta: Meta::default(),
        source_transaction_id: tx(5_000 + id.uuid().as_u128() % 1_000 * 2),
        destination_transaction_id: tx(5_001 + id.uuid().as_u128() % 1_000 * 2),
        pending: None,
    }
    .into()
}

pub fn events(decision: Decision) -> Vec<(StreamRef, Event)> {
    match decision {
        Decision::Apply { events, .. } => events,
        Decision::Replay { .. } => panic!("expected new events, got {decision:?}"),
    }
}

pub fn assert_not_found(result: Result<Decision, DomainError>, kind: &str, id: impl ToString) {
    match result {
        Err(DomainError::NotFound { kind: k, id: i }) => assert_eq!((k, i), (kind, id.to_string())),
        other => panic!("expected {kind} {} not found, got {other:?}", id.to_string()),
    }
}

pub fn recorded(stream: StreamRef, transaction: Transaction) -> (StreamRef, Event) {
    (
        stream,
        Event::TransactionRecorded(TransactionRecorded { transaction }),
    )
}

/// A sandbox project P with EUR accounts A, B (no allowance), N (allows a
/// negative balance) and U (USD); a live project L with EUR account LA
/// (allows a negative balance); another sandbox project O with EUR account OA.
pub struct World {
    pub store: Store,
    pub next_tx: u128,
}

pub const P: u128 = 1;
pub const L: u128 = 2;
pub const O: u128 = 3;
pub const A: u128 = 1;
pub const B: u128 = 2;
pub const N: u128 = 3;
pub const U: u128 = 4;
pub const LA: u128 = 5;
pub const OA: u128 = 6;

impl World {
    pub fn new() -> Self {
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
                ProjectCommand::CreateProject {
                    id: prj(project),
                    name: "Acme".into(),
                    environment,
                    meta: Meta::default(),
                }
                .into(),
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
                AccountCommand::CreateAccount {
                    id: acc(account),
                    currency,
                    customer_id: None,
                    allow_negative_balance: allow,
                    meta: Meta::default(),
                }
                .into(),
            );
        }
        world
    }

    pub fn run(&mut self, project: u128, command: Command) -> Result<Decision, DomainError> {
        self.run_at(project, T0, command)
    }

    pub fn run_at(
        &mut self,
        project: u128,
        now: Timestamp,
        command: Command,
    ) -> Result<Decision, DomainError> {
        self.store.execute(&CommandEnvelope {
            project_id: prj(project),
            now,
            idempotency: None,
            command,
        })
    }

    pub fn ok(&mut self, project: ProjectId, command: Command) -> Vec<(StreamRef, Event)> {
        let description = format!("{command:?}");
        let result = self.store.execute(&CommandEnvelope {
            project_id: project,
            now: T0,
            idempotency: None,
            command,
        });
        events(result.unwrap_or_else(|error| panic!("{description} failed: {error:?}")))
    }

    pub fn ok_in(&mut self, project: u128, command: Command) -> Vec<(StreamRef, Event)> {
        self.ok(prj(project), command)
    }

    pub fn ok_at(&mut self, project: u128, now: Timestamp, command: Command) -> Vec<(StreamRef, Event)> {
        let description = format!("{command:?}");
        events(
            self.run_at(project, now, command)
                .unwrap_or_else(|error| panic!("{description} failed: {error:?}")),
        )
    }

    pub fn fresh_tx(&mut self) -> TransactionId {
        self.next_tx += 1;
        tx(self.next_tx)
    }

    /// Sandbox magic balance of an account of P (or O for OA).
    pub fn set(&mut self, account: u128, target: Money) {
        let project = if account == OA { O } else { P };
        let transaction = self.fresh_tx();
        self.ok_in(
            project,
            AccountCommand::UpdateAccount {
                id: acc(account),
                allow_negative_balance: None,
                meta: None,
                balance: Some((target, transaction)),
            }
            .into(),
        );
    }

    pub fn balance(&self, account: u128) -> i64 {
        self.store
            .state(&StreamRef::Account(acc(account)))
            .as_account()
            .expect("account exists")
            .balance
            .amount
    }

    pub fn total(&self, project: u128, currency: Currency) -> i64 {
        match self
            .store
            .state(&StreamRef::ProjectBalance(prj(project), currency))
        {
            Aggregate::ProjectBalance(balance) => balance.total.amount,
            Aggregate::Empty => 0,
            other => panic!("project balance holds {other:?}"),
        }
    }

    pub fn payin(&self, id: CardPayinId) -> &CardPayin {
        self.store
            .state(&StreamRef::CardPayin(id))
            .as_card_payin()
            .expect("card payin exists")
    }

    pub fn refund(&self, id: CardPayinRefundId) -> &CardPayinRefund {
        self.store
            .state(&StreamRef::CardPayinRefund(id))
            .as_card_payin_refund()
            .expect("refund exists")
    }

    pub fn payout_state(&self, id: BankPayoutId) -> paycore_domain::bank_payout::BankPayoutState {
        self.store
            .state(&StreamRef::BankPayout(id))
            .as_bank_payout()
            .expect("payout exists")
            .state
    }

    /// An approved and settled payin of `value` into `account` of P.
    pub fn settled_payin(&mut self, n: u128, account: u128, value: Money) -> CardPayinId {
        self.ok_in(P, approved(cpi(n), acc(account), value));
        let transaction = self.fresh_tx();
        self.ok_in(P, settle(cpi(n), transaction));
        cpi(n)
    }

    pub fn create_refund(
        &mut self,
        n: u128,
        payin: CardPayinId,
        value: Option<Money>,
    ) -> Result<Decision, DomainError> {
        let transaction = self.fresh_tx();
        self.run(P, refund(cpr(n), payin, value, None, transaction))
    }

    pub fn create_payout(&mut self, n: u128, account: u128, value: Money) -> Result<Decision, DomainError> {
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
    pub fn transactions(&self, account: u128) -> Vec<Transaction> {
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
