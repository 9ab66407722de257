//! Property tests of the money rules: random sequences of magic balances,
//! transfers and allowance changes over a few accounts of one sandbox project
//! are decided and applied to a mini event store, and after every step the
//! ledger's invariants must hold. An independent model (balances in i128)
//! predicts which commands may succeed and why the others fail.

use std::collections::{BTreeMap, HashMap};

use paycore_domain::account::AccountCommand;
use paycore_domain::events::*;
use paycore_domain::kernel::money::MoneyError;
use paycore_domain::project::ProjectCommand;
use paycore_domain::transfer::TransferCommand;
use paycore_domain::*;
use proptest::prelude::*;
use uuid::Uuid;

static EMPTY: Aggregate = Aggregate::Empty;

/// The mini event store: state and log of every stream.
#[derive(Default)]
struct Ledger {
    states: HashMap<StreamRef, Aggregate>,
    logs: HashMap<StreamRef, Vec<Event>>,
}

impl Lookup for Ledger {
    fn get(&self, stream: &StreamRef) -> &Aggregate {
        self.states.get(stream).unwrap_or(&EMPTY)
    }
}

impl Ledger {
    fn apply(&mut self, stream: &StreamRef, event: &Event) {
        let state = self.states.remove(stream).unwrap_or_default();
        self.states.insert(stream.clone(), state.evolve(event));
        self.logs.entry(stream.clone()).or_default().push(event.clone());
    }

    fn account(&self, id: AccountId) -> &paycore_domain::aggregate::Account {
        self.get(&StreamRef::Account(id))
            .as_account()
            .expect("account exists")
    }

    fn total(&self, project: ProjectId, currency: Currency) -> i128 {
        match self.get(&StreamRef::ProjectBalance(project, currency)) {
            Aggregate::ProjectBalance(balance) => {
                assert_eq!(balance.total.currency, currency);
                i128::from(balance.total.amount)
            }
            Aggregate::Empty => 0,
            other => panic!("project balance stream holds {other:?}"),
        }
    }
}

const T0: Timestamp = Timestamp::from_micros(1_750_000_000_000_000);
const CURRENCIES: [Currency; 2] = [Currency::EUR, Currency::USD];
/// Accounts 0..3 hold EUR, 3..5 USD.
const ACCOUNTS: usize = 5;

fn project() -> ProjectId {
    ProjectId::from_uuid(Uuid::from_u128(1))
}
fn account(index: usize) -> AccountId {
    AccountId::from_uuid(Uuid::from_u128(100 + index as u128))
}
fn currency_of(index: usize) -> Currency {
    if index < 3 { Currency::EUR } else { Currency::USD }
}
fn other_currency(currency: Currency) -> Currency {
    if currency == Currency::EUR {
        Currency::USD
    } else {
        Currency::EUR
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Sandbox magic balance, optionally changing the allowance in the same
    /// command; `wrong_currency` sends the target in the other currency.
    SetBalance {
        account: usize,
        amount: i64,
        wrong_currency: bool,
        allow: Option<bool>,
    },
    Transfer {
        from: usize,
        to: usize,
        amount: i64,
        wrong_currency: bool,
    },
    Allow {
        account: usize,
        allow: bool,
    },
}

fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => -1_000i64..=1_000,
        1 => Just(0i64),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => Just(-i64::MAX),
        1 => (i64::MAX - 1_000)..=i64::MAX,
        1 => i64::MIN..=i64::MIN + 1_000,
        1 => any::<i64>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let index = 0..ACCOUNTS;
    prop_oneof![
        3 => (index.clone(), amount(), prop::bool::weighted(0.05), prop::option::weighted(0.2, any::<bool>()))
            .prop_map(|(account, amount, wrong_currency, allow)| Op::SetBalance { account, amount, wrong_currency, allow }),
        5 => (index.clone(), index.clone(), amount(), prop::bool::weighted(0.05))
            .prop_map(|(from, to, amount, wrong_currency)| Op::Transfer { from, to, amount, wrong_currency }),
        1 => (index, any::<bool>()).prop_map(|(account, allow)| Op::Allow { account, allow }),
    ]
}

/// Why the model expects a command to fail.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Why {
    Field(String),
    Refused(Refusal),
}

fn reasons(error: &DomainError) -> Vec<Why> {
    match error {
        DomainError::Invalid(violations) => violations
            .iter()
            .map(|violation| Why::Field(violation.field.clone()))
            .collect(),
        DomainError::Refused { refusal, .. } => vec![Why::Refused(*refusal)],
        other => panic!("unexpected {other:?}"),
    }
}

fn fits(value: i128) -> bool {
    i64::try_from(value).is_ok()
}

/// The independent model: every account's balance and allowance, in i128.
#[derive(Clone, Debug)]
struct Model {
    balances: [i128; ACCOUNTS],
    allow: [bool; ACCOUNTS],
    totals: BTreeMap<Currency, i128>,
}

impl Model {
    /// Every reason the op can fail for; empty if it must succeed.
    fn failures(&self, op: &Op) -> Vec<Why> {
        let mut why = Vec::new();
        match *op {
            Op::SetBalance {
                account,
                amount,
                wrong_currency,
                allow,
            } => {
                let allow = allow.unwrap_or(self.allow[account]);
                let currency = currency_of(account);
                if wrong_currency {
                    why.push(Why::Field("balance.currency".into()));
                }
                if amount < 0 && !allow {
                    why.push(Why::Field("balance.amount".into()));
                }
                let delta = i128::from(amount) - self.balances[account];
                let total_after = self.totals[&currency] + delta;
                if !fits(delta) || !fits(total_after) {
                    why.push(Why::Refused(Refusal::BalanceOverflow));
                }
                if total_after < 0 {
                    why.push(Why::Refused(Refusal::ProjectBalanceNegative));
                }
            }
            Op::Transfer {
                from,
                to,
                amount,
                wrong_currency,
            } => {
                if amount <= 0 {
                    why.push(Why::Field("value.amount".into()));
                }
                if from == to {
                    why.push(Why::Field("destination_account_id".into()));
                }
                if currency_of(from) != currency_of(to) {
                    why.push(Why::Refused(Refusal::FxRateUnavailable));
                }
                if wrong_currency {
                    why.push(Why::Field("value.currency".into()));
                }
                let source_after = self.balances[from] - i128::from(amount);
                if !fits(source_after) {
                    why.push(Why::Refused(Refusal::BalanceOverflow));
                }
                if source_after < 0 && !self.allow[from] {
                    why.push(Why::Refused(Refusal::InsufficientFunds));
                }
                if !fits(self.balances[to] + i128::from(amount)) {
                    why.push(Why::Refused(Refusal::BalanceOverflow));
                }
            }
            Op::Allow { account, allow } => {
                if !allow && self.balances[account] < 0 {
                    why.push(Why::Refused(Refusal::InsufficientFunds));
                }
            }
        }
        why
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::SetBalance {
                account,
                amount,
                allow,
                ..
            } => {
                let delta = i128::from(amount) - self.balances[account];
                self.balances[account] = i128::from(amount);
                *self.totals.entry(currency_of(account)).or_default() += delta;
                if let Some(allow) = allow {
                    self.allow[account] = allow;
                }
            }
            Op::Transfer { from, to, amount, .. } => {
                self.balances[from] -= i128::from(amount);
                self.balances[to] += i128::from(amount);
            }
            Op::Allow { account, allow } => self.allow[account] = allow,
        }
    }
}

struct Run {
    ledger: Ledger,
    model: Model,
    next_id: u128,
}

impl Run {
    fn new(allow: &[bool]) -> Self {
        let mut run = Self {
            ledger: Ledger::default(),
            model: Model {
                balances: [0; ACCOUNTS],
                allow: [false; ACCOUNTS],
                totals: CURRENCIES.iter().map(|c| (*c, 0)).collect(),
            },
            next_id: 1_000,
        };
        run.execute(
            ProjectCommand::CreateProject {
                id: project(),
                name: "props".into(),
                environment: Environment::Sandbox,
                meta: Meta::default(),
            }
            .into(),
        )
        .expect("project");
        for (index, allow) in allow.iter().enumerate() {
            run.execute(
                AccountCommand::CreateAccount {
                    id: account(index),
                    currency: currency_of(index),
                    customer_id: None,
                    allow_negative_balance: *allow,
                    meta: Meta::default(),
                }
                .into(),
            )
            .expect("account");
            run.model.allow[index] = *allow;
        }
        run
    }

    fn fresh(&mut self) -> Uuid {
        self.next_id += 1;
        Uuid::from_u128(self.next_id)
    }

    fn command(&mut self, op: &Op) -> Command {
        match *op {
            Op::SetBalance {
                account: index,
                amount,
                wrong_currency,
                allow,
            } => {
                let mut currency = currency_of(index);
                if wrong_currency {
                    currency = other_currency(currency);
                }
                AccountCommand::UpdateAccount {
                    id: account(index),
                    allow_negative_balance: allow,
                    meta: None,
                    balance: Some((
                        Money::new(amount, currency),
                        TransactionId::from_uuid(self.fresh()),
                    )),
                }
                .into()
            }
            Op::Transfer {
                from,
                to,
                amount,
                wrong_currency,
            } => {
                let mut currency = currency_of(from);
                if wrong_currency {
                    currency = other_currency(currency);
                }
                TransferCommand::CreateTransfer {
                    id: TransferId::from_uuid(self.fresh()),
                    source_account_id: account(from),
                    destination_account_id: account(to),
                    value: Money::new(amount, currency),
                    meta: Meta::default(),
                    source_transaction_id: TransactionId::from_uuid(self.fresh()),
                    destination_transaction_id: TransactionId::from_uuid(self.fresh()),
                    pending: None,
                }
                .into()
            }
            Op::Allow {
                account: index,
                allow,
            } => AccountCommand::UpdateAccount {
                id: account(index),
                allow_negative_balance: Some(allow),
                meta: None,
                balance: None,
            }
            .into(),
        }
    }

    /// Decides and applies one command; checks that every event it writes
    /// survives the codec and lands on a stream the command declares.
    fn execute(&mut self, command: Command) -> Result<Vec<(StreamRef, Event)>, DomainError> {
        let envelope = CommandEnvelope {
            project_id: project(),
            now: T0,
            idempotency: None,
            command,
        };
        let Decision::Apply { events, .. } = decide(&envelope, &self.ledger)? else {
            panic!("no idempotency key, yet a replay");
        };
        let declared = envelope.streams();
        for (stream, event) in &events {
            assert!(declared.contains(stream), "{stream} not declared");
            let encoded = event.encode();
            assert_eq!(encoded.event_type, event.event_type());
            let decoded = Event::decode(encoded.event_type, encoded.schema_version, &encoded.payload);
            assert_eq!(decoded.as_ref(), Ok(event), "codec round trip");
            self.ledger.apply(stream, event);
        }
        Ok(events)
    }

    fn sums(&self) -> BTreeMap<Currency, i128> {
        let mut sums: BTreeMap<Currency, i128> = CURRENCIES.iter().map(|c| (*c, 0)).collect();
        for index in 0..ACCOUNTS {
            let balance = self.ledger.account(account(index)).balance;
            *sums.entry(balance.currency).or_default() += i128::from(balance.amount);
        }
        sums
    }

    /// Runs one op, checks every invariant, and names the outcome.
    fn step(&mut self, op: &Op) -> Result<String, TestCaseError> {
        let sums_before = self.sums();
        let expected = self.model.failures(op);
        let command = self.command(op);
        let kind = match op {
            Op::SetBalance { .. } => "magic",
            Op::Transfer { .. } => "transfer",
            Op::Allow { .. } => "allow",
        };
        let outcome = match self.execute(command) {
            Ok(events) => {
                prop_assert!(
                    expected.is_empty(),
                    "{op:?} succeeded but the model expects {expected:?} (model {:?})",
                    self.model
                );
                self.model.apply(op);
                if let Op::Transfer { amount, from, .. } = op {
                    check_transfer_events(&events, *amount)?;
                    if self.model.balances[*from] < 0 {
                        "transfer ok, source negative".to_owned()
                    } else {
                        "transfer ok".to_owned()
                    }
                } else if events.is_empty() {
                    format!("{kind} ok, no events")
                } else {
                    format!("{kind} ok")
                }
            }
            Err(error) => {
                let got = reasons(&error);
                prop_assert!(
                    !expected.is_empty(),
                    "{op:?} failed with {error:?} but the model expects success (model {:?})",
                    self.model
                );
                for why in &got {
                    prop_assert!(
                        expected.contains(why),
                        "{op:?} failed with {why:?}, model expects one of {expected:?}"
                    );
                }
                format!("{kind} {:?}", got[0])
            }
        };
        if matches!(op, Op::Transfer { .. } | Op::Allow { .. }) {
            prop_assert_eq!(&self.sums(), &sums_before, "{:?} changed a currency's sum", op);
        }
        self.check_invariants()?;
        Ok(outcome)
    }

    fn check_invariants(&self) -> Result<(), TestCaseError> {
        // (a) The sum of balances per currency is the project's total, which
        //     only magic balances change.
        let sums = self.sums();
        for currency in CURRENCIES {
            let total = self.ledger.total(project(), currency);
            prop_assert_eq!(sums[&currency], total, "{} sum vs project total", currency);
            // (c) The project's total never goes below zero.
            prop_assert!(total >= 0, "{} total is {}", currency, total);
            prop_assert_eq!(total, self.model.totals[&currency]);
        }
        for index in 0..ACCOUNTS {
            let state = self.ledger.account(account(index));
            // The decider agrees with the model.
            prop_assert_eq!(i128::from(state.balance.amount), self.model.balances[index]);
            prop_assert_eq!(state.allow_negative_balance, self.model.allow[index]);
            // (b) Only accounts with the allowance are ever negative.
            prop_assert!(
                state.allow_negative_balance || !state.balance.is_negative(),
                "account {} is at {} without allowance",
                index,
                state.balance
            );
            // (d) The balance is the sum of its transactions, chained.
            let mut running = Money::zero(currency_of(index));
            let mut last = None;
            for event in self
                .ledger
                .logs
                .get(&StreamRef::Account(account(index)))
                .into_iter()
                .flatten()
            {
                if let Event::TransactionRecorded(recorded) = event {
                    let tx = recorded.transaction;
                    prop_assert_eq!(tx.account_id, account(index));
                    prop_assert!(tx.value.amount != 0, "zero transaction {:?}", tx);
                    let after = running.checked_add(tx.value);
                    prop_assert_eq!(after, Ok(tx.balance_after), "chain broken at {:?}", tx);
                    running = tx.balance_after;
                    last = Some(tx.id);
                }
            }
            prop_assert_eq!(running, state.balance);
            prop_assert_eq!(last, state.last_transaction);
        }
        // (e) Replaying every stream from empty gives the live state.
        for (stream, events) in &self.ledger.logs {
            prop_assert_eq!(
                &Aggregate::replay(events),
                self.ledger.get(stream),
                "replay of {}",
                stream
            );
        }
        Ok(())
    }
}

/// A transfer writes the transfer and two legs that cancel out.
fn check_transfer_events(events: &[(StreamRef, Event)], amount: i64) -> Result<(), TestCaseError> {
    let [
        (_, Event::TransferCreated(created)),
        (_, Event::TransactionRecorded(source)),
        (_, Event::TransactionRecorded(destination)),
    ] = events
    else {
        return Err(TestCaseError::fail(format!(
            "unexpected transfer events {events:?}"
        )));
    };
    prop_assert_eq!(created.value.amount, amount);
    prop_assert_eq!(source.transaction.value.checked_neg(), Ok(created.value));
    prop_assert_eq!(destination.transaction.value, created.value);
    prop_assert_eq!(source.transaction.account_id, created.source_account_id);
    prop_assert_eq!(destination.transaction.account_id, created.destination_account_id);
    prop_assert_eq!(source.transaction.id, created.source_transaction_id);
    prop_assert_eq!(destination.transaction.id, created.destination_transaction_id);
    prop_assert_eq!(
        source.transaction.kind,
        TransactionKind::TransferSource(created.id)
    );
    prop_assert_eq!(
        destination.transaction.kind,
        TransactionKind::TransferDestination(created.id)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ledger_invariants_hold_for_any_sequence(
        allow in prop::collection::vec(any::<bool>(), ACCOUNTS),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut run = Run::new(&allow);
        run.check_invariants()?;
        for op in &ops {
            run.step(op)?;
        }
    }
}

/// The generator is only as good as the outcomes it reaches: a fixed-seed run
/// of the same strategies must hit every success and every refusal.
#[test]
fn generated_sequences_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..192 {
        let allow = prop::collection::vec(any::<bool>(), ACCOUNTS)
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        let ops = prop::collection::vec(op(), 1..60)
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        let mut run = Run::new(&allow);
        for op in &ops {
            seen.insert(run.step(op).expect("invariants hold"));
        }
    }
    let refused = |kind: &str, refusal: Refusal| format!("{kind} {:?}", Why::Refused(refusal));
    let field = |kind: &str, field: &str| format!("{kind} {:?}", Why::Field(field.into()));
    let wanted = [
        "transfer ok".to_owned(),
        "transfer ok, source negative".to_owned(),
        "magic ok".to_owned(),
        "magic ok, no events".to_owned(),
        "allow ok".to_owned(),
        "allow ok, no events".to_owned(),
        refused("transfer", Refusal::InsufficientFunds),
        refused("transfer", Refusal::BalanceOverflow),
        refused("transfer", Refusal::FxRateUnavailable),
        field("transfer", "value.amount"),
        field("transfer", "destination_account_id"),
        field("transfer", "value.currency"),
        refused("magic", Refusal::ProjectBalanceNegative),
        refused("magic", Refusal::BalanceOverflow),
        field("magic", "balance.amount"),
        field("magic", "balance.currency"),
        refused("allow", Refusal::InsufficientFunds),
    ];
    let missing: Vec<_> = wanted.iter().filter(|w| !seen.contains(*w)).collect();
    assert!(missing.is_empty(), "never reached {missing:?}; saw {seen:#?}");
}

fn edgy_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        -10i64..=10,
        Just(i64::MIN),
        Just(i64::MAX),
        (i64::MAX - 3)..=i64::MAX,
        i64::MIN..=(i64::MIN + 3),
    ]
}

fn expect(value: i128, currency: Currency) -> Result<Money, MoneyError> {
    i64::try_from(value)
        .map(|amount| Money::new(amount, currency))
        .map_err(|_| MoneyError::Overflow)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn money_arithmetic_agrees_with_i128(a in edgy_i64(), b in edgy_i64(), same in prop::bool::weighted(0.8)) {
        let x = Money::new(a, Currency::EUR);
        let y = Money::new(b, if same { Currency::EUR } else { Currency::USD });
        let (wide_a, wide_b) = (i128::from(a), i128::from(b));
        if same {
            prop_assert_eq!(x.checked_add(y), expect(wide_a + wide_b, Currency::EUR));
            prop_assert_eq!(x.checked_sub(y), expect(wide_a - wide_b, Currency::EUR));
        } else {
            let mismatch = Err(MoneyError::CurrencyMismatch { left: Currency::EUR, right: Currency::USD });
            prop_assert_eq!(x.checked_add(y), mismatch.clone());
            prop_assert_eq!(x.checked_sub(y), mismatch);
        }
        prop_assert_eq!(x.checked_neg(), expect(-wide_a, Currency::EUR));
        prop_assert_eq!(x.is_negative(), a < 0);
        // Display never panics and keeps the sign and currency.
        let text = x.to_string();
        prop_assert_eq!(text.starts_with('-'), a < 0);
        prop_assert!(text.ends_with(" EUR"));
    }
}
