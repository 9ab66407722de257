//! How a batch of events becomes table rows: pure, no I/O.
//!
//! A row of a state table (projects, customers, accounts, transfers,
//! resources, exchange rates) is its stream's state as the domain folds it
//! (`Aggregate::evolve`, the write side's own fold, so the two can never
//! disagree), plus where it was created and last changed in the log. A
//! transaction is a row of its own, written once.

use std::collections::HashMap;

use paycore_domain::{Aggregate, Event, StreamRef, Transaction};
use paycore_store::Position;

/// A read model as the tables keep it: a name (the same as the server's
/// projection of that name), a version, its tables and its checkpoint row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Projection {
    pub name: &'static str,
    /// Bump when what the tables keep, how an event folds into them, or the
    /// encoding of `state` (the domain's `Aggregate`) changes: the writer
    /// then rebuilds the projection's tables from the log beside the old
    /// ones and swaps them in (`rebuild.rs`).
    pub version: i32,
    pub tables: &'static [&'static str],
}

/// Every projection kept as tables, in checkpoint order ([`Slot`]).
pub const PROJECTIONS: [Projection; 6] = [
    Projection {
        name: "directory",
        version: 1,
        tables: &["projects", "customers"],
    },
    // 2: pending debits and credits, available balance (migration 7).
    Projection {
        name: "accounts",
        version: 2,
        tables: &["accounts"],
    },
    Projection {
        name: "transactions",
        version: 1,
        tables: &["transactions"],
    },
    // 2: status, expiry, posted value and legs, end (migration 7).
    Projection {
        name: "transfers",
        version: 2,
        tables: &["transfers"],
    },
    // 2: a refund's `card_payin_id` (migration 8).
    Projection {
        name: "resources",
        version: 2,
        tables: &["resources"],
    },
    Projection {
        name: "fx-rates",
        version: 1,
        tables: &["fx_rates"],
    },
];

/// A projection's index in [`PROJECTIONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Directory = 0,
    Accounts = 1,
    Transactions = 2,
    Transfers = 3,
    Resources = 4,
    FxRates = 5,
}

/// Events below each projection's position are in its tables.
pub(crate) type Checkpoints = [Position; PROJECTIONS.len()];

/// A table of folded states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum StateTable {
    Projects,
    Customers,
    Accounts,
    Transfers,
    Resources,
    FxRates,
}

impl StateTable {
    pub const ALL: [StateTable; 6] = [
        Self::Projects,
        Self::Customers,
        Self::Accounts,
        Self::Transfers,
        Self::Resources,
        Self::FxRates,
    ];

    pub fn sql_name(self) -> &'static str {
        match self {
            Self::Projects => "projects",
            Self::Customers => "customers",
            Self::Accounts => "accounts",
            Self::Transfers => "transfers",
            Self::Resources => "resources",
            Self::FxRates => "fx_rates",
        }
    }

    fn slot(self) -> Slot {
        match self {
            Self::Projects | Self::Customers => Slot::Directory,
            Self::Accounts => Slot::Accounts,
            Self::Transfers => Slot::Transfers,
            Self::Resources => Slot::Resources,
            Self::FxRates => Slot::FxRates,
        }
    }
}

/// A state table's row key: the resource's ID (`acc_…`), or `EUR/USD`.
pub(crate) type RowId = (StateTable, String);

/// The row of a stream kept in a state table, if its stream is one.
pub(crate) fn row_of(stream: &str) -> Option<RowId> {
    let placed = match StreamRef::parse(stream)? {
        StreamRef::Project(id) => (StateTable::Projects, id.to_string()),
        StreamRef::Customer(id) => (StateTable::Customers, id.to_string()),
        StreamRef::Account(id) => (StateTable::Accounts, id.to_string()),
        StreamRef::Transfer(id) => (StateTable::Transfers, id.to_string()),
        StreamRef::CardToken(id) => (StateTable::Resources, id.to_string()),
        StreamRef::Card(id) => (StateTable::Resources, id.to_string()),
        StreamRef::CardPayin(id) => (StateTable::Resources, id.to_string()),
        StreamRef::CardPayinRefund(id) => (StateTable::Resources, id.to_string()),
        StreamRef::BankAccount(id) => (StateTable::Resources, id.to_string()),
        StreamRef::BankPayout(id) => (StateTable::Resources, id.to_string()),
        StreamRef::BankPayinReference(id) => (StateTable::Resources, id.to_string()),
        StreamRef::BankPayin(id) => (StateTable::Resources, id.to_string()),
        StreamRef::File(id) => (StateTable::Resources, id.to_string()),
        StreamRef::FxRate(from, to) => (StateTable::FxRates, fx_rate_id(from.code(), to.code())),
        StreamRef::ApiKey(_)
        | StreamRef::ProjectBalance(..)
        | StreamRef::Idempotency(..)
        | StreamRef::PayoutDestination(_)
        | StreamRef::PayinReferenceCode(_)
        | StreamRef::Consumer(..)
        | StreamRef::Deployment => return None,
        // Open banking (issue 13) has no table yet.
        StreamRef::Institution(..)
        | StreamRef::AggregationConnection(_)
        | StreamRef::AggregationImport(_)
        | StreamRef::AggregatedAccount(_) => return None,
    };
    Some(placed)
}

/// The key of a currency pair's row in `fx_rates`.
pub(crate) fn fx_rate_id(base: &str, quote: &str) -> String {
    format!("{base}/{quote}")
}

/// A state table's row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    pub state: Aggregate,
    pub created_position: Position,
    pub updated_position: Position,
}

/// One event of the log, decoded.
#[derive(Clone, Debug)]
pub(crate) struct Decoded {
    pub position: Position,
    pub stream: String,
    /// The event's version in its stream (0: the stream's first).
    pub version: u64,
    pub event: Event,
}

/// What a batch changes: rows to write whole (new or changed) and new
/// transactions, each with the position that recorded it.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub rows: HashMap<RowId, Row>,
    pub transactions: Vec<(Transaction, Position)>,
}

/// The state rows `events` read, for those projections that have not
/// applied them yet: what the writer loads before folding. A stream whose
/// first event is in the batch has no row yet (most transfers, every new
/// resource), so it is not looked up.
pub(crate) fn rows_read(events: &[Decoded], checkpoints: &Checkpoints) -> Vec<RowId> {
    let mut read: Vec<(RowId, u64)> = events
        .iter()
        .filter_map(|decoded| {
            let row = row_of(&decoded.stream)?;
            (decoded.position >= checkpoints[row.0.slot() as usize]).then_some((row, decoded.version))
        })
        .collect();
    // Each row with the lowest version the batch has of it.
    read.sort_unstable();
    read.dedup_by(|later, first| later.0 == first.0);
    read.into_iter()
        .filter(|(_, first_version)| *first_version > 0)
        .map(|(row, _)| row)
        .collect()
}

/// Folds `events` (in log order) into `loaded` (the rows they read, as the
/// tables hold them; consumed) for every projection that has not applied
/// them (position at or past its checkpoint).
pub(crate) fn fold(
    events: &[Decoded],
    mut loaded: HashMap<RowId, Row>,
    checkpoints: &Checkpoints,
) -> Changes {
    let mut changes = Changes::default();
    for decoded in events {
        let position = decoded.position;
        if let Event::TransactionRecorded(recorded) = &decoded.event
            && position >= checkpoints[Slot::Transactions as usize]
        {
            changes.transactions.push((recorded.transaction, position));
        }
        let Some(id) = row_of(&decoded.stream) else {
            continue;
        };
        if position < checkpoints[id.0.slot() as usize] {
            continue;
        }
        let row = changes
            .rows
            .remove(&id)
            .or_else(|| loaded.remove(&id))
            .unwrap_or(Row {
                state: Aggregate::Empty,
                created_position: position,
                updated_position: position,
            });
        let state = row.state.evolve(&decoded.event);
        debug_assert!(
            row.updated_position <= position,
            "events fold in log order, and a row never comes from past its checkpoint"
        );
        changes.rows.insert(
            id,
            Row {
                state,
                created_position: row.created_position,
                updated_position: position,
            },
        );
    }
    // A stream whose first event does not create its resource (none does
    // today) has nothing to show.
    changes
        .rows
        .retain(|_, row| !matches!(row.state, Aggregate::Empty));
    changes
}

/// Each projection's checkpoint once `events` (which end an append) are
/// applied.
pub(crate) fn advanced(checkpoints: &Checkpoints, events: &[Decoded]) -> Checkpoints {
    let end = events.last().map_or(0, |last| last.position + 1);
    checkpoints.map(|checkpoint| checkpoint.max(end))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use paycore_domain::kernel::money::{Currency, Money};
    use paycore_domain::{AccountId, Meta, ProjectId, Timestamp, TransactionId, TransferId};
    use uuid::Uuid;

    use super::*;

    fn eur() -> Currency {
        Currency::EUR
    }

    /// A fresh UUID for a test's IDs.
    fn uuid() -> Uuid {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Uuid::from_u128(
            0x0193_0000_0000_7000_8000_0000_0000_0000 | u128::from(NEXT.fetch_add(1, Ordering::Relaxed)),
        )
    }

    fn ids() -> (AccountId, ProjectId) {
        (AccountId::from_uuid(uuid()), ProjectId::from_uuid(uuid()))
    }

    fn opened(account: AccountId, project: ProjectId) -> Event {
        Event::AccountOpened(paycore_domain::account::AccountOpened {
            id: account,
            project_id: project,
            customer_id: None,
            currency: eur(),
            allow_negative_balance: false,
            meta: Meta::default(),
            created_at: Timestamp::from_micros(1_000_000),
        })
    }

    fn recorded(account: AccountId, project: ProjectId, value: i64, after: i64) -> Event {
        Event::TransactionRecorded(paycore_domain::account::TransactionRecorded {
            transaction: Transaction {
                id: TransactionId::from_uuid(uuid()),
                account_id: account,
                project_id: project,
                kind: paycore_domain::account::TransactionKind::TransferDestination(TransferId::from_uuid(
                    uuid(),
                )),
                value: Money::new(value, eur()),
                balance_after: Money::new(after, eur()),
                created_at: Timestamp::from_micros(2_000_000),
            },
        })
    }

    /// The event at `position`, `version` in its stream.
    fn at(position: Position, version: u64, stream: String, event: Event) -> Decoded {
        Decoded {
            position,
            stream,
            version,
            event,
        }
    }

    #[test]
    fn an_account_and_its_transactions_fold_into_one_row_and_one_row_each() {
        let (account, project) = ids();
        let stream = format!("account-{account}");
        let events = [
            at(10, 0, stream.clone(), opened(account, project)),
            at(11, 1, stream.clone(), recorded(account, project, 500, 500)),
            at(14, 2, stream.clone(), recorded(account, project, -200, 300)),
        ];
        assert_eq!(
            rows_read(&events, &[0; 6]),
            [],
            "a new account has no row to read"
        );
        let changes = fold(&events, HashMap::new(), &[0; 6]);
        let row = &changes.rows[&(StateTable::Accounts, account.to_string())];
        let Aggregate::Account(state) = &row.state else {
            panic!("an account row holds an account: {row:?}");
        };
        assert_eq!(state.balance, Money::new(300, eur()));
        assert_eq!((row.created_position, row.updated_position), (10, 14));
        let positions: Vec<_> = changes.transactions.iter().map(|(_, at)| *at).collect();
        assert_eq!(positions, [11, 14]);
        assert_eq!(advanced(&[0, 12, 20, 0, 0, 0], &events), [15, 15, 20, 15, 15, 15]);
    }

    #[test]
    fn a_projection_skips_what_it_applied_and_folds_on_the_loaded_row() {
        let (account, project) = ids();
        let stream = format!("account-{account}");
        let before = fold(
            &[
                at(3, 0, stream.clone(), opened(account, project)),
                at(4, 1, stream.clone(), recorded(account, project, 700, 700)),
            ],
            HashMap::new(),
            &[0; 6],
        );
        let events = [
            at(4, 1, stream.clone(), recorded(account, project, 700, 700)),
            at(5, 2, stream.clone(), recorded(account, project, -100, 600)),
        ];
        // The accounts are at 5 (the first credit applied), the
        // transactions at 4 (it is not): each applies what it lacks.
        let checkpoints = [0, 5, 4, 0, 0, 0];
        assert_eq!(
            rows_read(&events, &checkpoints),
            [(StateTable::Accounts, account.to_string())]
        );
        let changes = fold(&events, before.rows, &checkpoints);
        let row = &changes.rows[&(StateTable::Accounts, account.to_string())];
        let Aggregate::Account(state) = &row.state else {
            panic!("an account row holds an account: {row:?}");
        };
        assert_eq!(state.balance, Money::new(600, eur()));
        assert_eq!((row.created_position, row.updated_position), (3, 5));
        assert_eq!(changes.transactions.len(), 2);
    }

    #[test]
    fn write_side_streams_have_no_rows() {
        assert_eq!(row_of("idempotency-whatever"), None);
        assert_eq!(row_of("deployment-bootstrap"), None);
        assert_eq!(row_of("not a stream"), None);
    }
}
