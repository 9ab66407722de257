//! The mini event store the domain's tests decide against: it checks that a
//! decider reads and writes only the streams its command declares, and that
//! a refusal or a replay writes nothing.
//!
//! The worlds the tests decide in are beside it: `ledger` (projects, API
//! keys, customers, accounts, transfers, idempotency) and `money` (money in
//! and out: cards, card payins and refunds, bank accounts, payouts and
//! payins, transfers across currencies).
#![allow(dead_code, clippy::unwrap_used)] // each test file uses its own part

use std::cell::RefCell;
use std::collections::HashMap;

use paycore_domain::kernel::error::{Refusal, Violations};
use paycore_domain::*;
use uuid::Uuid;

static EMPTY: Aggregate = Aggregate::Empty;

#[derive(Default)]
pub struct Store {
    pub states: HashMap<StreamRef, Aggregate>,
    pub log: Vec<(StreamRef, Event)>,
    pub reads: RefCell<Vec<StreamRef>>,
}

impl Lookup for Store {
    fn get(&self, stream: &StreamRef) -> &Aggregate {
        self.reads.borrow_mut().push(stream.clone());
        self.states.get(stream).unwrap_or(&EMPTY)
    }
}

/// Every stream the engine loads for `envelope`: `streams()`, then what
/// `dependent_streams()` names through their state, until nothing is new.
pub fn declared_streams(envelope: &CommandEnvelope, lookup: &dyn Lookup) -> Vec<StreamRef> {
    let mut declared = envelope.streams();
    loop {
        let new: Vec<StreamRef> = envelope
            .dependent_streams(lookup)
            .into_iter()
            .filter(|stream| !declared.contains(stream))
            .collect();
        if new.is_empty() {
            return declared;
        }
        declared.extend(new);
    }
}

impl Store {
    pub fn execute(&mut self, envelope: &CommandEnvelope) -> Result<Decision, DomainError> {
        let declared = declared_streams(envelope, self);
        self.reads.borrow_mut().clear();
        let states_before = self.states.clone();
        let log_before = self.log.len();
        let result = decide(envelope, self);
        for read in self.reads.borrow().iter() {
            assert!(
                declared.contains(read),
                "decide read {read}, which {:?} does not declare: {declared:?}",
                envelope.command
            );
        }
        match &result {
            Ok(Decision::Apply { events, .. }) => {
                for (stream, event) in events {
                    assert!(
                        declared.contains(stream),
                        "decide wrote {stream}, which {:?} does not declare: {declared:?}",
                        envelope.command
                    );
                    self.apply(stream, event);
                }
            }
            Ok(Decision::Replay { .. }) | Err(_) => {
                assert_eq!(self.states, states_before, "{:?} changed state", envelope.command);
                assert_eq!(self.log.len(), log_before, "{:?} wrote events", envelope.command);
            }
        }
        result
    }

    /// Appends one event (also used to write history directly).
    pub fn apply(&mut self, stream: &StreamRef, event: &Event) {
        let state = self.states.remove(stream).unwrap_or_default();
        self.states.insert(stream.clone(), state.evolve(event));
        self.log.push((stream.clone(), event.clone()));
    }

    pub fn state(&self, stream: &StreamRef) -> &Aggregate {
        self.states.get(stream).unwrap_or(&EMPTY)
    }
}

/// A view of the store showing only some streams: what the engine has
/// loaded at one step of its dependent-stream loop.
pub struct Partial<'a> {
    pub store: &'a Store,
    pub visible: Vec<StreamRef>,
}

impl Lookup for Partial<'_> {
    fn get(&self, stream: &StreamRef) -> &Aggregate {
        if self.visible.contains(stream) {
            self.store.state(stream)
        } else {
            &EMPTY
        }
    }
}

impl Store {
    pub fn account(&self, id: AccountId) -> &paycore_domain::aggregate::Account {
        self.state(&StreamRef::Account(id))
            .as_account()
            .expect("account exists")
    }

    pub fn balance(&self, id: AccountId) -> i64 {
        self.account(id).balance.amount
    }

    pub fn project_total(&self, project: ProjectId, currency: Currency) -> Option<i64> {
        match self.state(&StreamRef::ProjectBalance(project, currency)) {
            Aggregate::ProjectBalance(balance) => Some(balance.total.amount),
            _ => None,
        }
    }
}

// IDs, money, meta and refusals as the deciders' tests build and check them.

pub fn uuid(kind: u128, n: u128) -> Uuid {
    Uuid::from_u128((kind << 96) | n)
}

pub fn prj(n: u128) -> ProjectId {
    ProjectId::from_uuid(uuid(1, n))
}

pub fn cus(n: u128) -> CustomerId {
    CustomerId::from_uuid(uuid(3, n))
}

pub fn acc(n: u128) -> AccountId {
    AccountId::from_uuid(uuid(4, n))
}

pub fn trf(n: u128) -> TransferId {
    TransferId::from_uuid(uuid(5, n))
}

pub fn tx(n: u128) -> TransactionId {
    TransactionId::from_uuid(uuid(6, n))
}

pub fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

pub fn usd(amount: i64) -> Money {
    Money::new(amount, Currency::USD)
}

pub fn meta(entries: &[(&str, &str)]) -> Meta {
    let mut violations = Violations::new();
    Meta::parse(
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        "meta",
        &mut violations,
    )
    .expect("valid meta")
}

pub fn assert_refused(result: Result<Decision, DomainError>, refusal: Refusal) {
    match result {
        Err(DomainError::Refused { refusal: r, .. }) => assert_eq!(r, refusal),
        other => panic!("expected {refusal:?}, got {other:?}"),
    }
}

/// The fields of an `Invalid` error, in the order they are reported.
pub fn invalid_fields(result: Result<Decision, DomainError>) -> Vec<String> {
    match result {
        Err(DomainError::Invalid(violations)) => {
            assert!(violations.iter().all(|v| !v.description.is_empty()));
            violations.into_iter().map(|v| v.field).collect()
        }
        other => panic!("expected invalid fields, got {other:?}"),
    }
}

pub mod ledger;
pub mod money;
pub mod open_banking;
