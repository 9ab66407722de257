//! Point-in-time views of an account: its state and transactions as of a
//! global log position or a commit time, folded from its stream's events with
//! the same [`Aggregate::evolve`] as everything else (so this view sits
//! beside the routers, over the account family).
//!
//! The caller reads the stream (oldest first) and hands each event with its
//! global position and the commit time recorded in the log; the fold keeps
//! the prefix of the stream at or before the point and stops at the first
//! event after it, so the answer is always a state the account really had.
//! That state includes what pending transfers held at the point
//! (`pending_debits`, `pending_credits`, so `available()`), and the
//! records of their phases up to it.

use crate::account::{Account, PendingTransaction, Transaction};
use crate::aggregate::Aggregate;
use crate::events::Event;
use crate::kernel::time::Timestamp;

/// A point in the history of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Up to and including this global position of the `$all` log. A
    /// position beyond the end of the log means "now".
    Position(u64),
    /// Up to and including the events committed at or before this time (as
    /// recorded by the log when it committed them).
    Time(Timestamp),
}

impl AsOf {
    /// Whether an event at `position`, committed at `recorded_at`, lies at or
    /// before this point.
    pub fn includes(self, position: u64, recorded_at: Timestamp) -> bool {
        match self {
            Self::Position(last) => position <= last,
            Self::Time(at) => recorded_at <= at,
        }
    }
}

/// An account as it was at some point of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountHistory {
    /// The account's state after the last event at or before the point.
    pub account: Account,
    /// Global position of that last event: the state reflects every event up
    /// to here, and nothing of the account changed between it and the point.
    pub position: u64,
    /// Commit time of that last event.
    pub recorded_at: Timestamp,
    /// The account's transactions up to the point, oldest first.
    pub transactions: Vec<Transaction>,
    /// The phases of pending transactions (holds and their releases) up to
    /// the point, oldest first.
    pub pending_transactions: Vec<PendingTransaction>,
}

/// The fold behind [`account_as_of`], fed one event at a time (so a caller
/// reading the stream in chunks can stop reading once it is done).
#[derive(Clone, Debug)]
pub struct AccountHistoryFold {
    as_of: AsOf,
    state: Aggregate,
    position: u64,
    recorded_at: Timestamp,
    transactions: Vec<Transaction>,
    pending_transactions: Vec<PendingTransaction>,
    done: bool,
}

impl AccountHistoryFold {
    pub fn new(as_of: AsOf) -> Self {
        Self {
            as_of,
            state: Aggregate::Empty,
            position: 0,
            recorded_at: Timestamp::from_micros(0),
            transactions: Vec::new(),
            pending_transactions: Vec::new(),
            done: false,
        }
    }

    /// Folds the next event of the account's stream if it lies at or before
    /// the point. Answers whether more events may still be folded: `false`
    /// from the first event past the point on (it and every later one are
    /// ignored).
    pub fn push(&mut self, position: u64, recorded_at: Timestamp, event: &Event) -> bool {
        if self.done || !self.as_of.includes(position, recorded_at) {
            self.done = true;
            return false;
        }
        debug_assert!(
            self.state.is_empty() || position > self.position,
            "a stream's positions increase"
        );
        match event {
            Event::TransactionRecorded(recorded) => self.transactions.push(recorded.transaction),
            Event::PendingTransactionRecorded(recorded) => self.pending_transactions.push(recorded.pending),
            _ => {}
        }
        self.state = std::mem::take(&mut self.state).evolve(event);
        self.position = position;
        self.recorded_at = recorded_at;
        true
    }

    /// Whether an event past the point has been seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The account at the point; `None` if it did not exist yet (or the
    /// stream is not an account's).
    pub fn finish(self) -> Option<AccountHistory> {
        match self.state {
            Aggregate::Account(account) => Some(AccountHistory {
                account,
                position: self.position,
                recorded_at: self.recorded_at,
                transactions: self.transactions,
                pending_transactions: self.pending_transactions,
            }),
            _ => None,
        }
    }
}

/// Folds an account stream's events — `(global position, commit time,
/// event)`, oldest first — up to and including `as_of`. `None` when the
/// account did not exist yet at that point.
pub fn account_as_of<'a>(
    events: impl IntoIterator<Item = (u64, Timestamp, &'a Event)>,
    as_of: AsOf,
) -> Option<AccountHistory> {
    let mut fold = AccountHistoryFold::new(as_of);
    for (position, recorded_at, event) in events {
        if !fold.push(position, recorded_at, event) {
            break;
        }
    }
    fold.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{AccountOpened, MetaUpdated, TransactionKind, TransactionRecorded};
    use crate::kernel::id::{AccountId, ProjectId, TransactionId, TransferId};
    use crate::kernel::meta::Meta;
    use crate::kernel::money::{Currency, Money};
    use uuid::Uuid;

    fn eur(cents: i64) -> Money {
        Money::new(cents, Currency::EUR)
    }

    fn account() -> AccountId {
        AccountId::from_uuid(Uuid::from_u128(7))
    }

    fn tx(n: u128, value: i64, after: i64) -> Event {
        Event::TransactionRecorded(TransactionRecorded {
            transaction: Transaction {
                id: TransactionId::from_uuid(Uuid::from_u128(100 + n)),
                account_id: account(),
                project_id: ProjectId::from_uuid(Uuid::from_u128(1)),
                kind: if n == 0 {
                    TransactionKind::Magic
                } else {
                    TransactionKind::TransferSource(TransferId::from_uuid(Uuid::from_u128(200 + n)))
                },
                value: eur(value),
                balance_after: eur(after),
                created_at: Timestamp::from_micros(0),
            },
        })
    }

    /// An account opened at position 10 (t=1000), set to 100.00 at 20
    /// (t=2000), -30.00 at 35 (t=3000), meta changed at 36 (t=3000), -20.00 at
    /// 50 (t=4000).
    fn history() -> Vec<(u64, Timestamp, Event)> {
        let opened = Event::AccountOpened(AccountOpened {
            id: account(),
            project_id: ProjectId::from_uuid(Uuid::from_u128(1)),
            customer_id: None,
            currency: Currency::EUR,
            allow_negative_balance: false,
            meta: Meta::default(),
            created_at: Timestamp::from_micros(1_000),
        });
        let meta = Event::AccountMetaUpdated(MetaUpdated {
            meta: Meta::default(),
        });
        vec![
            (10, Timestamp::from_micros(1_000), opened),
            (20, Timestamp::from_micros(2_000), tx(0, 10_000, 10_000)),
            (35, Timestamp::from_micros(3_000), tx(1, -3_000, 7_000)),
            (36, Timestamp::from_micros(3_000), meta),
            (50, Timestamp::from_micros(4_000), tx(2, -2_000, 5_000)),
        ]
    }

    fn at(as_of: AsOf) -> Option<AccountHistory> {
        let events = history();
        account_as_of(events.iter().map(|(p, t, e)| (*p, *t, e)), as_of)
    }

    fn balances(history: &AccountHistory) -> Vec<i64> {
        history
            .transactions
            .iter()
            .map(|t| t.balance_after.amount)
            .collect()
    }

    #[test]
    fn a_position_in_the_middle_keeps_the_prefix() {
        for position in [35, 36, 49] {
            let h = at(AsOf::Position(position)).unwrap();
            assert_eq!(h.account.balance, eur(7_000), "{position}");
            assert_eq!(balances(&h), [10_000, 7_000]);
            assert_eq!(h.position, if position == 35 { 35 } else { 36 });
        }
        let h = at(AsOf::Position(34)).unwrap();
        assert_eq!(h.account.balance, eur(10_000));
        assert_eq!((h.position, h.recorded_at), (20, Timestamp::from_micros(2_000)));
    }

    #[test]
    fn a_time_between_two_commits() {
        let h = at(AsOf::Time(Timestamp::from_micros(2_999))).unwrap();
        assert_eq!(h.account.balance, eur(10_000));
        assert_eq!(balances(&h), [10_000]);
        let h = at(AsOf::Time(Timestamp::from_micros(3_000))).unwrap();
        assert_eq!(h.account.balance, eur(7_000));
        assert_eq!(h.position, 36);
        let h = at(AsOf::Time(Timestamp::from_micros(1_500))).unwrap();
        assert_eq!(h.account.balance, eur(0));
        assert!(h.transactions.is_empty());
        assert_eq!(h.position, 10);
    }

    #[test]
    fn before_creation_there_is_no_account() {
        assert_eq!(at(AsOf::Position(9)), None);
        assert_eq!(at(AsOf::Time(Timestamp::from_micros(999))), None);
        assert_eq!(account_as_of([], AsOf::Position(u64::MAX)), None);
    }

    #[test]
    fn beyond_the_end_is_the_current_state() {
        let now = at(AsOf::Position(u64::MAX)).unwrap();
        let events = history();
        let replayed = Aggregate::replay(events.iter().map(|(_, _, e)| e));
        assert_eq!(Some(&now.account), replayed.as_account());
        assert_eq!(now.account.balance, eur(5_000));
        assert_eq!(balances(&now), [10_000, 7_000, 5_000]);
        assert_eq!(now.position, 50);
        assert_eq!(at(AsOf::Time(Timestamp::from_micros(i64::MAX))), Some(now));
    }

    #[test]
    fn the_fold_stops_at_the_first_event_past_the_point() {
        let events = history();
        let mut fold = AccountHistoryFold::new(AsOf::Position(20));
        let pushed: Vec<bool> = events.iter().map(|(p, t, e)| fold.push(*p, *t, e)).collect();
        assert_eq!(pushed, [true, true, false, false, false]);
        assert!(fold.is_done());
        assert_eq!(fold.finish().unwrap().account.balance, eur(10_000));
    }
    fn hold(n: u128, phase: crate::account::PendingPhase, value: i64, debits_after: i64) -> Event {
        Event::PendingTransactionRecorded(crate::account::PendingTransactionRecorded {
            pending: PendingTransaction {
                id: TransactionId::from_uuid(Uuid::from_u128(300 + n)),
                transfer_id: TransferId::from_uuid(Uuid::from_u128(400 + n)),
                account_id: account(),
                project_id: ProjectId::from_uuid(Uuid::from_u128(1)),
                phase,
                value: eur(value),
                pending_debits_after: eur(debits_after),
                pending_credits_after: eur(0),
                created_at: Timestamp::from_micros(0),
            },
        })
    }

    #[test]
    fn an_account_at_a_point_holds_what_pending_transfers_held_then() {
        use crate::account::PendingPhase::{Reserved, Voided};
        let mut events = history();
        events.push((
            60,
            Timestamp::from_micros(5_000),
            hold(1, Reserved, -1_500, 1_500),
        ));
        events.push((70, Timestamp::from_micros(6_000), hold(1, Voided, -1_500, 0)));
        let fold = |as_of| account_as_of(events.iter().map(|(p, t, e)| (*p, *t, e)), as_of).unwrap();
        let held = fold(AsOf::Position(60));
        assert_eq!(held.account.balance, eur(5_000));
        assert_eq!(held.account.pending_debits, eur(1_500));
        assert_eq!(held.account.available(), eur(3_500));
        assert_eq!(held.pending_transactions.len(), 1);
        let released = fold(AsOf::Time(Timestamp::from_micros(6_000)));
        assert_eq!(released.account.pending_debits, eur(0));
        assert_eq!(released.account.available(), eur(5_000));
        assert_eq!(released.pending_transactions.len(), 2);
        assert_eq!(fold(AsOf::Position(59)).pending_transactions, []);
    }
}
