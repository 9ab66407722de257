//! Audit replay of the event log.
//!
//! An [`Auditor`] consumes [`RecordedEvent`]s in `$all` order, in batches of
//! any size, and checks every rule of [`Rule`] as it goes. [`Auditor::finish`]
//! runs the end-of-log checks and returns a [`Report`]: the violations, each
//! naming the event (stream, version, position) and the rule, and the
//! recomputed balance of every account.
//!
//! Replay follows the *recorded* state after a violation (for example the
//! recorded `balance_after` becomes the account's balance), so one bad event
//! yields one violation instead of one per later event.
//!
//! # Extension point
//!
//! Rules over one family of events live in an [`ExtraCheck`]; the money
//! flows of card payins, refunds and bank payouts ([`money_flows`]) and the
//! open banking rules ([`open_banking`]: connection lifecycle, imports,
//! transactions on aggregated accounts) and two-phase transfers
//! ([`two_phase`]: holds, their releases, posts within the hold, pending
//! balances) are three, registered by
//! [`Auditor::new`]. More can be added with
//! [`Auditor::with_check`].

pub mod money_flows;
pub mod open_banking;
pub mod two_phase;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use paycore_domain::events::{AccountOpened, TransferCreated};
use paycore_domain::{AccountId, Currency, Event, Money, ProjectId, StreamRef, TransactionKind, TransferId};
use paycore_store::{ChainError, ChainVerifier, Position, RecordedEvent, Version};
use serde::Serialize;

/// Every rule the audit checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Every frame of the log reads back intact (header and checksum); the
    /// events of a damaged frame are lost.
    LogIntact,
    /// The event's hash is `chain_hash(previous hash, event)`.
    HashChain,
    /// Global positions are 0, 1, 2 … without gaps.
    PositionsContiguous,
    /// Every stream's versions are 0, 1, 2 … without gaps.
    StreamVersionsContiguous,
    /// The event's type and schema version are known and its payload decodes.
    EventDecodes,
    /// An event fits the stream it is in (e.g. a transaction on an account
    /// that was opened, an account opened twice).
    EventFitsStream,
    /// `balance_after` = previous balance + value, in the account's currency.
    BalanceAfter,
    /// No account below zero unless its negative-balance allowance is on.
    NoNegativeBalance,
    /// A transfer's two legs: source −value and destination +value on the
    /// accounts it names, in its currency, netting to zero; exactly two legs.
    TransferLegs,
    /// A project's per-currency sum of balances never goes below zero.
    ProjectTotalNonNegative,
    /// `ProjectBalanceChanged.total_after` equals the recomputed sum.
    ProjectTotalMatches,
    /// The live read models hold the recomputed balance (checked by the CLI).
    ReadModelBalance,
    /// A card payin is refunded only once settled, never beyond its value,
    /// and its recorded `refunded_value` equals its live refunds.
    RefundsWithinPayin,
    /// Each settlement, refund, payout and bank payin moves its value once;
    /// each failed refund and failed or returned payout credits it back once.
    FailureCreditedOnce,
    /// An aggregation connection's status changes only along the lifecycle
    /// diagram's arrows (`ConnectionStatus::may_become`), never to itself.
    AggregationConnectionTransitionInDiagram,
    /// Nothing happens to a deleted aggregation connection, nor to its
    /// accounts (deletion is terminal).
    AggregationConnectionDeletedIsTerminal,
    /// A connection's consent expires only from a signed-in status
    /// (`ConnectionStatus::may_expire_consent`).
    AggregationConsentExpiryAfterSignIn,
    /// A connection's consent expires only once its `expires_at` has
    /// passed, and only when it has one.
    AggregationConsentExpiryOnTime,
    /// An import goes `PENDING → RUNNING → SUCCEEDED / FAILED`
    /// (`ImportStatus::may_become`) and records progress only while running.
    AggregationImportTransitionAllowed,
    /// An import's progress counts never go down.
    AggregationImportProgressGrows,
    /// No transaction recorded on an account whose connection was deleted.
    AggregatedTransactionOnDeletedConnection,
    /// No transaction recorded on an account the end user has not
    /// consented to share (disabled).
    AggregatedTransactionOnDisabledAccount,
    /// No transaction recorded on an archived account.
    AggregatedTransactionOnArchivedAccount,
    /// An aggregated transaction's ID is derived from its account and the
    /// bank's transaction ID (`aggregated_account::transaction_id`).
    AggregatedTransactionIdDerived,
    /// Each bank transaction is recorded once per account (its booked
    /// version may replace its pending one).
    AggregatedTransactionRecordedOnce,
    /// No transaction booked more than 5 years before its batch.
    AggregatedTransactionWithinHistory,
    /// An aggregated transaction is in its account's currency.
    AggregatedTransactionCurrency,
    /// Bank data (accounts found, updated, archived, unarchived,
    /// transactions recorded or removed) only while the connection is
    /// `UPDATING`.
    AggregatedDataWhileUpdating,
    /// A batch naming an import only while that import of the same
    /// connection is `RUNNING`.
    AggregatedDataImportRunning,
    /// An aggregated account is enabled only under its connection's live
    /// consent.
    AggregatedAccountEnabledWithConsent,
    /// A pending transfer ends (posted, voided or expired) at most once,
    /// only once created pending; it is posted or voided before its
    /// `expires_at` and expires only at or after it.
    PendingTransferEndsOnce,
    /// A pending transfer posts a positive value in its currency, never more
    /// than it held, by one debit of the source and one credit of the
    /// destination of exactly that value (none unless posted).
    PendingTransferPostedWithinHold,
    /// A pending transfer holds its value on both accounts once, and each
    /// ending (posted, voided, expired) releases both holds in full, once.
    PendingTransferHoldsReleased,
    /// Each hold record's `pending_debits_after`/`pending_credits_after`
    /// equal the account's pending totals replayed from its records (never
    /// negative), and no debit or hold takes `available = balance −
    /// pending_debits` below zero on an account without the allowance.
    PendingBalances,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LogIntact => "log_intact",
            Self::HashChain => "hash_chain",
            Self::PositionsContiguous => "positions_contiguous",
            Self::StreamVersionsContiguous => "stream_versions_contiguous",
            Self::EventDecodes => "event_decodes",
            Self::EventFitsStream => "event_fits_stream",
            Self::BalanceAfter => "balance_after",
            Self::NoNegativeBalance => "no_negative_balance",
            Self::TransferLegs => "transfer_legs",
            Self::ProjectTotalNonNegative => "project_total_non_negative",
            Self::ProjectTotalMatches => "project_total_matches",
            Self::ReadModelBalance => "read_model_balance",
            Self::RefundsWithinPayin => "refunds_within_payin",
            Self::FailureCreditedOnce => "failure_credited_once",
            Self::AggregationConnectionTransitionInDiagram => "aggregation_connection_transition_in_diagram",
            Self::AggregationConnectionDeletedIsTerminal => "aggregation_connection_deleted_is_terminal",
            Self::AggregationConsentExpiryAfterSignIn => "aggregation_consent_expiry_after_sign_in",
            Self::AggregationConsentExpiryOnTime => "aggregation_consent_expiry_on_time",
            Self::AggregationImportTransitionAllowed => "aggregation_import_transition_allowed",
            Self::AggregationImportProgressGrows => "aggregation_import_progress_grows",
            Self::AggregatedTransactionOnDeletedConnection => "aggregated_transaction_on_deleted_connection",
            Self::AggregatedTransactionOnDisabledAccount => "aggregated_transaction_on_disabled_account",
            Self::AggregatedTransactionOnArchivedAccount => "aggregated_transaction_on_archived_account",
            Self::AggregatedTransactionIdDerived => "aggregated_transaction_id_derived",
            Self::AggregatedTransactionRecordedOnce => "aggregated_transaction_recorded_once",
            Self::AggregatedTransactionWithinHistory => "aggregated_transaction_within_history",
            Self::AggregatedTransactionCurrency => "aggregated_transaction_currency",
            Self::AggregatedDataWhileUpdating => "aggregated_data_while_updating",
            Self::AggregatedDataImportRunning => "aggregated_data_import_running",
            Self::AggregatedAccountEnabledWithConsent => "aggregated_account_enabled_with_consent",
            Self::PendingTransferEndsOnce => "pending_transfer_ends_once",
            Self::PendingTransferPostedWithinHold => "pending_transfer_posted_within_hold",
            Self::PendingTransferHoldsReleased => "pending_transfer_holds_released",
            Self::PendingBalances => "pending_balances",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event is in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    pub stream: String,
    pub version: Version,
    pub position: Position,
}

impl Location {
    pub fn of(event: &RecordedEvent) -> Self {
        Self {
            stream: event.stream.as_str().to_owned(),
            version: event.version,
            position: event.position,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "position {} ({} v{})",
            self.position, self.stream, self.version
        )
    }
}

/// A frame of the log that does not read back intact, where its events
/// should have been.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DamagedFrame {
    /// The segment file.
    pub file: String,
    /// The frame's offset in it.
    pub offset: u64,
    /// The first position the frame should hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

impl fmt::Display for DamagedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} offset {}", self.file, self.offset)?;
        if let Some(position) = self.position {
            write!(f, " (position {position})")?;
        }
        Ok(())
    }
}

/// Events the reader could not hand over: a damaged frame and the positions
/// it took with it (see [`Auditor::push_lost`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostEvents {
    pub frame: DamagedFrame,
    /// Why the frame cannot be read (e.g. a CRC mismatch).
    pub reason: String,
    /// The first position readable again after it; `None`: nothing after it
    /// could be read.
    pub resumes_at: Option<Position>,
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub rule: Rule,
    /// The event that breaks it; `None` for a finding about the whole log.
    #[serde(flatten)]
    pub at: Option<Location>,
    /// The damaged frame, for [`Rule::LogIntact`].
    #[serde(flatten)]
    pub damaged: Option<DamagedFrame>,
    pub message: String,
}

impl Violation {
    pub fn new(rule: Rule, at: Option<Location>, message: impl Into<String>) -> Self {
        Self {
            rule,
            at,
            damaged: None,
            message: message.into(),
        }
    }

    /// The position the finding is about, if any (for ordering a report).
    pub fn position(&self) -> Option<Position> {
        self.at
            .as_ref()
            .map(|at| at.position)
            .or_else(|| self.damaged.as_ref().and_then(|d| d.position))
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.at, &self.damaged) {
            (Some(at), _) => write!(f, "[{}] at {at}: {}", self.rule, self.message),
            (None, Some(frame)) => write!(f, "[{}] at {frame}: {}", self.rule, self.message),
            (None, None) => write!(f, "[{}] {}", self.rule, self.message),
        }
    }
}

/// Where the replay stops (both inclusive; the first bound reached wins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    /// Audit events at positions `<= up_to_position`.
    pub up_to_position: Option<Position>,
    /// Audit events recorded at or before this time (microseconds since the
    /// Unix epoch); stops at the first event recorded later.
    pub up_to_timestamp: Option<i64>,
}

impl Limit {
    pub fn whole_log() -> Self {
        Self::default()
    }

    pub fn is_whole_log(&self) -> bool {
        self.up_to_position.is_none() && self.up_to_timestamp.is_none()
    }

    fn admits(&self, event: &RecordedEvent) -> bool {
        self.up_to_position.is_none_or(|last| event.position <= last)
            && self
                .up_to_timestamp
                .is_none_or(|last| event.recorded_at_micros <= last)
    }
}

/// Whether the caller should feed more events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The limit was reached: the rest of the batch was not audited.
    Done,
}

/// Extension point for rules over one family of events (see
/// [`money_flows`]). Called for every decoded event after the built-in
/// checks.
pub trait ExtraCheck: fmt::Debug + Send {
    fn on_event(&mut self, at: &Location, event: &Event, violations: &mut Vec<Violation>);
    /// End-of-log checks (e.g. a payin whose refunds were never settled).
    fn finish(&mut self, violations: &mut Vec<Violation>);
}

#[derive(Debug)]
struct AccountState {
    project: ProjectId,
    currency: Currency,
    balance: Money,
    allow_negative: bool,
}

#[derive(Debug, Clone)]
struct Leg {
    at: Location,
    account: AccountId,
    value: Money,
}

#[derive(Debug, Default)]
struct TransferState {
    created: Option<(Location, TransferCreated)>,
    source: Vec<Leg>,
    destination: Vec<Leg>,
    /// Reported already (checked when complete, or at the end).
    checked: bool,
}

/// The incremental audit. Feed it with [`Auditor::push_batch`] (or
/// [`Auditor::push`]) in `$all` order, then call [`Auditor::finish`].
#[derive(Debug)]
pub struct Auditor {
    limit: Limit,
    started: Instant,
    done: bool,
    events: u64,
    last_position: Option<Position>,
    chain: ChainVerifier,
    next_position: Position,
    versions: HashMap<String, Version>,
    accounts: HashMap<AccountId, AccountState>,
    transfers: HashMap<TransferId, TransferState>,
    /// Per project and currency: the recomputed sum of balances.
    totals: HashMap<(ProjectId, Currency), i64>,
    violations: Vec<Violation>,
    extra: Vec<Box<dyn ExtraCheck>>,
    /// Stretches of the log that could not be read, in order.
    lost: Vec<LostEvents>,
    /// Accounts whose stream skipped versions across lost events: their
    /// balance before their next transaction is unknown.
    balance_unknown: HashSet<AccountId>,
    /// Project totals already reported as off after lost events (each once).
    totals_off_after_loss: HashSet<(ProjectId, Currency)>,
    /// The last event audited was not its append's last: the append goes on.
    inside_append: bool,
}

impl Default for Auditor {
    fn default() -> Self {
        Self::new(Limit::whole_log())
    }
}

impl Auditor {
    /// An audit of the log from position 0 up to `limit`.
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            started: Instant::now(),
            done: false,
            events: 0,
            last_position: None,
            chain: ChainVerifier::default(),
            next_position: 0,
            inside_append: false,
            versions: HashMap::new(),
            accounts: HashMap::new(),
            transfers: HashMap::new(),
            totals: HashMap::new(),
            violations: Vec::new(),
            extra: vec![
                Box::new(money_flows::MoneyFlows::default()),
                Box::new(open_banking::OpenBanking::default()),
                Box::new(two_phase::PendingTransfers::default()),
            ],
            lost: Vec::new(),
            balance_unknown: HashSet::new(),
            totals_off_after_loss: HashSet::new(),
        }
    }

    /// Adds a check for rules outside this crate (see [`ExtraCheck`]).
    pub fn with_check(mut self, check: Box<dyn ExtraCheck>) -> Self {
        self.extra.push(check);
        self
    }

    /// Events audited so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The position of the last audited event.
    pub fn last_position(&self) -> Option<Position> {
        self.last_position
    }

    /// Whether the limit was reached.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Audits a batch in `$all` order.
    pub fn push_batch(&mut self, events: &[RecordedEvent]) -> Flow {
        for event in events {
            if self.push(event) == Flow::Done {
                return Flow::Done;
            }
        }
        Flow::Continue
    }

    /// Audits one event.
    pub fn push(&mut self, event: &RecordedEvent) -> Flow {
        if self.done {
            return Flow::Done;
        }
        // A limit inside an atomic append extends to the append's end (its
        // transfers, holds and legs whole), so a cut never looks like a
        // missing half; logs that do not mark where appends end fall back to
        // a plain transfer's three events.
        if !self.limit.admits(event) && !self.transfer_open() && !self.inside_append {
            self.done = true;
            return Flow::Done;
        }
        self.inside_append = !event.last_in_commit;
        self.events += 1;
        self.last_position = Some(event.position);
        let at = Location::of(event);
        self.check_chain(event, &at);
        self.check_version(event, &at);
        match Event::decode(&event.event_type, event.schema_version, &event.payload) {
            Ok(decoded) => {
                self.apply(&at, &decoded);
                for check in &mut self.extra {
                    check.on_event(&at, &decoded, &mut self.violations);
                }
            }
            Err(error) => self.violate(Rule::EventDecodes, &at, error.to_string()),
        }
        Flow::Continue
    }

    /// Records events the reader could not hand over (a damaged frame of
    /// the log) in their place in `$all` order: one [`Rule::LogIntact`]
    /// violation naming the file, offset and positions. The findings it
    /// causes later are worded as its consequences: the hash chain cannot be
    /// followed across the gap (one [`Rule::HashChain`] finding at the next
    /// event), streams that lost events skip versions (one finding per
    /// stream), and balance checks resume from the next recorded balance.
    pub fn push_lost(&mut self, lost: LostEvents) -> Flow {
        if self.done {
            return Flow::Done;
        }
        let first = lost.frame.position.unwrap_or(self.next_position);
        if self.limit.up_to_position.is_some_and(|last| first > last) {
            self.done = true;
            return Flow::Done;
        }
        let positions = match lost.resumes_at {
            Some(resumes) if resumes > first + 1 => format!("positions {first}..={} are", resumes - 1),
            Some(_) => format!("position {first} is"),
            None => format!("positions from {first} to the end of the log are"),
        };
        let message = format!(
            "the frame does not read back intact ({}): {positions} lost; findings after it about the \
             streams those events touched may follow from the loss",
            lost.reason
        );
        self.violations.push(Violation {
            rule: Rule::LogIntact,
            at: None,
            damaged: Some(lost.frame.clone()),
            message,
        });
        self.lost.push(lost);
        Flow::Continue
    }

    /// The lost stretch that ends right before `position`, if any.
    fn lost_before(&self, position: Position) -> Option<&LostEvents> {
        self.lost
            .iter()
            .rev()
            .find(|lost| lost.resumes_at == Some(position))
    }

    fn transfer_open(&self) -> bool {
        self.transfers.values().any(|t| !t.checked && t.created.is_some())
    }

    fn violate(&mut self, rule: Rule, at: &Location, message: impl Into<String>) {
        self.violations
            .push(Violation::new(rule, Some(at.clone()), message));
    }

    fn check_chain(&mut self, event: &RecordedEvent, at: &Location) {
        if event.position != self.next_position
            && let Some(lost) = self.lost_before(event.position)
        {
            let missing = if event.position == self.next_position + 1 {
                format!("position {} is", self.next_position)
            } else {
                format!("positions {}..={} are", self.next_position, event.position - 1)
            };
            let message = format!(
                "{missing} missing (lost in the damaged frame at {}), so the hash chain cannot be \
                 verified across the gap; it is checked again from the stored hash of this event",
                lost.frame
            );
            self.violate(Rule::HashChain, at, message);
            self.chain = ChainVerifier::starting_at(event.position + 1, event.hash);
        } else if event.position != self.next_position {
            self.violate(
                Rule::PositionsContiguous,
                at,
                format!(
                    "expected position {}, found {}",
                    self.next_position, event.position
                ),
            );
            // Resynchronise on the stored hash so one gap is one finding.
            self.chain = ChainVerifier::starting_at(event.position + 1, event.hash);
        } else if let Err(error) = self.chain.push(event) {
            let message = match error {
                ChainError::HashMismatch { .. } => {
                    "stored hash does not match the event and its predecessor: the event was altered"
                        .to_owned()
                }
                other => other.to_string(),
            };
            self.violate(Rule::HashChain, at, message);
            self.chain = ChainVerifier::starting_at(event.position + 1, event.hash);
        }
        self.next_position = event.position + 1;
    }

    fn check_version(&mut self, event: &RecordedEvent, at: &Location) {
        let expected = self.versions.get(event.stream.as_str()).copied().unwrap_or(0);
        if event.version != expected {
            let mut message = format!(
                "expected version {expected} of {}, found {}",
                event.stream, event.version
            );
            let lost_earlier = self
                .lost
                .iter()
                .rev()
                .find(|lost| lost.frame.position.is_some_and(|first| first < event.position));
            if let Some(lost) = lost_earlier
                && event.version > expected
            {
                message.push_str(&format!(
                    "; the missing versions were probably in the events lost at {}",
                    lost.frame
                ));
                if let Some(StreamRef::Account(id)) = StreamRef::parse(event.stream.as_str()) {
                    self.balance_unknown.insert(id);
                }
            }
            self.violate(Rule::StreamVersionsContiguous, at, message);
        }
        self.versions
            .insert(event.stream.as_str().to_owned(), event.version + 1);
    }

    fn apply(&mut self, at: &Location, event: &Event) {
        match event {
            Event::AccountOpened(opened) => self.open_account(at, opened),
            Event::NegativeBalanceAllowanceChanged(change) => match StreamRef::parse(&at.stream) {
                Some(StreamRef::Account(id)) if self.accounts.contains_key(&id) => {
                    if let Some(account) = self.accounts.get_mut(&id) {
                        account.allow_negative = change.allow_negative_balance;
                    }
                }
                _ => self.violate(
                    Rule::EventFitsStream,
                    at,
                    "NegativeBalanceAllowanceChanged outside an opened account's stream",
                ),
            },
            Event::TransactionRecorded(recorded) => self.transaction(at, &recorded.transaction),
            Event::TransferCreated(created) => {
                let state = self.transfers.entry(created.id).or_default();
                if state.created.is_some() {
                    self.violate(
                        Rule::TransferLegs,
                        at,
                        format!("transfer {} created twice", created.id),
                    );
                    return;
                }
                state.created = Some((at.clone(), created.clone()));
                if !created.value.is_negative() && created.value.amount != 0 {
                    self.check_transfer_if_complete(created.id);
                } else {
                    self.violate(
                        Rule::TransferLegs,
                        at,
                        format!("transfer {} has non-positive value {}", created.id, created.value),
                    );
                }
            }
            Event::ProjectBalanceChanged(changed) => {
                let currency = changed.total_after.currency;
                let sum = self
                    .totals
                    .get(&(changed.project_id, currency))
                    .copied()
                    .unwrap_or(0);
                if changed.total_after.amount != sum {
                    let message = format!(
                        "total_after {} but the project's {currency} balances sum to {}",
                        changed.total_after,
                        Money::new(sum, currency)
                    );
                    self.violate_total(
                        Rule::ProjectTotalMatches,
                        at,
                        (changed.project_id, currency),
                        message,
                    );
                }
            }
            _ => {}
        }
    }

    fn open_account(&mut self, at: &Location, opened: &AccountOpened) {
        if self.accounts.contains_key(&opened.id) {
            self.violate(
                Rule::EventFitsStream,
                at,
                format!("account {} opened twice", opened.id),
            );
            return;
        }
        self.accounts.insert(
            opened.id,
            AccountState {
                project: opened.project_id,
                currency: opened.currency,
                balance: Money::zero(opened.currency),
                allow_negative: opened.allow_negative_balance,
            },
        );
    }

    fn transaction(&mut self, at: &Location, tx: &paycore_domain::Transaction) {
        if !self.accounts.contains_key(&tx.account_id) && self.balance_unknown.contains(&tx.account_id) {
            // Its opening was among the lost events (the version finding
            // says so): follow the account from here, as recorded; its
            // negative-balance allowance is unknown, so not judged.
            self.accounts.insert(
                tx.account_id,
                AccountState {
                    project: tx.project_id,
                    currency: tx.balance_after.currency,
                    balance: Money::zero(tx.balance_after.currency),
                    allow_negative: true,
                },
            );
        }
        let Some(account) = self.accounts.get_mut(&tx.account_id) else {
            self.violate(
                Rule::EventFitsStream,
                at,
                format!(
                    "transaction {} on account {} that was never opened",
                    tx.id, tx.account_id
                ),
            );
            return;
        };
        let currency = account.currency;
        let project = account.project;
        let before = account.balance;
        let allow_negative = account.allow_negative;
        // After lost events the balance before this transaction is unknown:
        // the version finding says so; follow the recorded balance from here.
        let balance_known = !self.balance_unknown.remove(&tx.account_id);
        let mut problems = Vec::new();
        if tx.value.currency != currency || tx.balance_after.currency != currency {
            problems.push((
                Rule::BalanceAfter,
                format!(
                    "transaction {} in {} / balance_after in {}, but account {} is in {currency}",
                    tx.id, tx.value.currency, tx.balance_after.currency, tx.account_id
                ),
            ));
        } else if balance_known {
            match before.checked_add(tx.value) {
                Ok(expected) if expected == tx.balance_after => {}
                Ok(expected) => problems.push((
                    Rule::BalanceAfter,
                    format!(
                        "transaction {}: balance {before} + value {} = {expected}, but balance_after is {}",
                        tx.id, tx.value, tx.balance_after
                    ),
                )),
                Err(error) => problems.push((
                    Rule::BalanceAfter,
                    format!("transaction {}: {before} + {}: {error}", tx.id, tx.value),
                )),
            }
        }
        if tx.balance_after.is_negative() && !allow_negative {
            problems.push((
                Rule::NoNegativeBalance,
                format!(
                    "account {} at {} without allow_negative_balance",
                    tx.account_id, tx.balance_after
                ),
            ));
        }
        // Follow the recorded state, so one bad event is one finding.
        if tx.balance_after.currency == currency {
            account.balance = tx.balance_after;
            let delta = tx.balance_after.amount.saturating_sub(before.amount);
            let sum = self.totals.entry((project, currency)).or_insert(0);
            *sum = sum.saturating_add(delta);
        }
        for (rule, message) in problems {
            self.violate(rule, at, message);
        }
        let leg = Leg {
            at: at.clone(),
            account: tx.account_id,
            value: tx.value,
        };
        match tx.kind {
            TransactionKind::Magic => self.check_project_total(at, project, currency),
            TransactionKind::TransferSource(id) | TransactionKind::TransferDestination(id) => {
                let state = self.transfers.entry(id).or_default();
                if state.checked {
                    self.violate(Rule::TransferLegs, at, format!("extra leg of transfer {id}"));
                    return;
                }
                if matches!(tx.kind, TransactionKind::TransferSource(_)) {
                    state.source.push(leg);
                } else {
                    state.destination.push(leg);
                }
                self.check_transfer_if_complete(id);
            }
            // Money entering or leaving the project: the total is whole again
            // after each of these single-leg operations.
            TransactionKind::CardPayin(_)
            | TransactionKind::CardPayinRefund(_)
            | TransactionKind::CardPayinRefundFailure(_)
            | TransactionKind::BankPayout(_)
            | TransactionKind::BankPayoutFailure(_)
            | TransactionKind::BankPayin(_) => self.check_project_total(at, project, currency),
            // Half of a posted pending transfer, in one currency: its legs
            // are matched by `two_phase::PendingTransfers`.
            TransactionKind::PostedTransferSource(_) | TransactionKind::PostedTransferDestination(_) => {}
        }
    }

    /// The project total may only be judged between operations: a transfer
    /// moves money out of one account before into the other.
    fn check_project_total(&mut self, at: &Location, project: ProjectId, currency: Currency) {
        let sum = self.totals.get(&(project, currency)).copied().unwrap_or(0);
        if sum < 0 {
            let message = format!(
                "the sum of project {project}'s {currency} balances is {}",
                Money::new(sum, currency)
            );
            self.violate_total(Rule::ProjectTotalNonNegative, at, (project, currency), message);
        }
    }

    /// A finding about a project total. After lost events the recomputed
    /// sums miss what those events moved (until each account involved
    /// records its next balance), so such a finding is reported once per
    /// project and currency, saying so.
    fn violate_total(&mut self, rule: Rule, at: &Location, total: (ProjectId, Currency), message: String) {
        let Some(lost) = self.lost.first() else {
            self.violate(rule, at, message);
            return;
        };
        if self.totals_off_after_loss.insert(total) {
            let message = format!(
                "{message}; probably because of the events lost at {} (later findings about this \
                 total are not reported)",
                lost.frame
            );
            self.violate(rule, at, message);
        }
    }

    fn check_transfer_if_complete(&mut self, id: TransferId) {
        let complete = self.transfers.get(&id).is_some_and(|t| {
            !t.checked && t.created.is_some() && !t.source.is_empty() && !t.destination.is_empty()
        });
        if complete {
            self.check_transfer(id);
        }
    }

    fn check_transfer(&mut self, id: TransferId) {
        let Some(state) = self.transfers.get_mut(&id) else {
            return;
        };
        state.checked = true;
        let created = state.created.clone();
        let (source, destination) = (state.source.clone(), state.destination.clone());
        let mut found = Vec::new();
        let Some((created_at, created)) = created else {
            let legs = source.iter().chain(&destination);
            for leg in legs {
                found.push((
                    leg.at.clone(),
                    format!("leg of transfer {id}, which was never created"),
                ));
            }
            self.push_all(Rule::TransferLegs, found);
            return;
        };
        if source.len() != 1 || destination.len() != 1 {
            found.push((
                created_at.clone(),
                format!(
                    "transfer {id} has {} source and {} destination legs, expected one each",
                    source.len(),
                    destination.len()
                ),
            ));
        }
        let value = created.value;
        let received = created.destination_value();
        let expect = |leg: &Leg, account: AccountId, want: Money, side: &str| {
            let mut problems = Vec::new();
            if leg.account != account {
                problems.push(format!(
                    "{side} leg of transfer {id} is on {}, but the transfer names {account}",
                    leg.account
                ));
            }
            if leg.value != want {
                problems.push(format!(
                    "{side} leg of transfer {id} is {}, expected {want}",
                    leg.value
                ));
            }
            problems
                .into_iter()
                .map(|p| (leg.at.clone(), p))
                .collect::<Vec<_>>()
        };
        if let Some(leg) = source.first() {
            found.extend(expect(
                leg,
                created.source_account_id,
                Money::new(-value.amount, value.currency),
                "source",
            ));
        }
        if let Some(leg) = destination.first() {
            found.extend(expect(
                leg,
                created.destination_account_id,
                received,
                "destination",
            ));
        }
        match created.exchange {
            None => {
                if let (Some(s), Some(d)) = (source.first(), destination.first()) {
                    let nets = s.value.currency == d.value.currency
                        && s.value.amount.checked_add(d.value.amount) == Some(0);
                    if !nets {
                        found.push((
                            d.at.clone(),
                            format!(
                                "legs of transfer {id} do not net to zero: {} and {}",
                                s.value, d.value
                            ),
                        ));
                    }
                }
            }
            Some(exchange) => {
                // The recorded conversion must be the one its rate gives.
                let recomputed = paycore_domain::kernel::fx::Quote::new(
                    value.currency,
                    received.currency,
                    exchange.mid_rate,
                    exchange.spread_bps,
                )
                .and_then(|quote| paycore_domain::kernel::fx::convert(value, quote));
                let matches = recomputed.as_ref().is_ok_and(|conversion| {
                    conversion.destination == received && conversion.rate_used == exchange.rate_used
                });
                if !matches {
                    found.push((
                        created_at.clone(),
                        format!(
                            "transfer {id} converts {value} into {received} at {}, which its recorded rate {} less {} bps does not give",
                            exchange.rate_used, exchange.mid_rate, exchange.spread_bps
                        ),
                    ));
                }
            }
        }
        self.push_all(Rule::TransferLegs, found);
        // Both legs are in: the project totals can be judged again.
        for leg in source.last().into_iter().chain(destination.last()) {
            let project = self.accounts.get(&leg.account).map(|a| (a.project, a.currency));
            if let Some((project, currency)) = project {
                self.check_project_total(&leg.at, project, currency);
            }
        }
    }

    fn push_all(&mut self, rule: Rule, found: Vec<(Location, String)>) {
        for (at, message) in found {
            self.violations.push(Violation::new(rule, Some(at), message));
        }
    }

    /// Runs the end-of-log checks and returns the report.
    pub fn finish(mut self) -> Report {
        let unchecked: Vec<TransferId> = self
            .transfers
            .iter()
            .filter(|(_, t)| !t.checked)
            .map(|(id, _)| *id)
            .collect();
        let mut incomplete = Vec::new();
        for id in unchecked {
            let Some(state) = self.transfers.get(&id) else {
                continue;
            };
            let at = state.created.as_ref().map(|(at, _)| at.clone()).or_else(|| {
                state
                    .source
                    .iter()
                    .chain(&state.destination)
                    .map(|l| l.at.clone())
                    .next()
            });
            if state.created.is_some() {
                incomplete.push((
                    at,
                    format!(
                        "transfer {id} has {} source and {} destination legs, expected one each",
                        state.source.len(),
                        state.destination.len()
                    ),
                ));
            } else {
                self.check_transfer(id);
            }
        }
        for (at, message) in incomplete {
            self.violations
                .push(Violation::new(Rule::TransferLegs, at, message));
        }
        for check in &mut self.extra {
            check.finish(&mut self.violations);
        }
        self.violations
            .sort_by(|a, b| a.position().cmp(&b.position()).then(a.rule.cmp(&b.rule)));
        let accounts = self.accounts.iter().map(|(id, a)| (*id, a.balance)).collect();
        let account_projects = self.accounts.iter().map(|(id, a)| (*id, a.project)).collect();
        Report {
            events: self.events,
            last_position: self.last_position,
            whole_log: self.limit.is_whole_log(),
            violations: self.violations,
            accounts,
            account_projects,
            elapsed: self.started.elapsed(),
            notes: Vec::new(),
        }
    }
}

/// The outcome of an audit.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Events audited.
    pub events: u64,
    pub last_position: Option<Position>,
    /// Whether the audit had no position or time limit.
    pub whole_log: bool,
    pub violations: Vec<Violation>,
    /// Recomputed balance of every account at the end of the audited range.
    #[serde(serialize_with = "ser::accounts")]
    pub accounts: BTreeMap<AccountId, Money>,
    /// The project each account belongs to (to look it up in read models).
    #[serde(skip)]
    pub account_projects: BTreeMap<AccountId, ProjectId>,
    #[serde(serialize_with = "ser::duration", rename = "elapsed_seconds")]
    pub elapsed: Duration,
    /// What the audit could not check, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// Events per second of the replay.
    pub fn events_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.events as f64 / seconds
        } else {
            0.0
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = match self.last_position {
            Some(last) => format!("positions 0..={last}"),
            None => "an empty log".to_owned(),
        };
        writeln!(
            f,
            "audited {} events ({range}{}) in {:.3} s",
            self.events,
            if self.whole_log { "" } else { ", limited" },
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "accounts: {}", self.accounts.len())?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        if self.violations.is_empty() {
            writeln!(f, "no violations")
        } else {
            writeln!(f, "{} violation(s):", self.violations.len())?;
            for violation in &self.violations {
                writeln!(f, "  {violation}")?;
            }
            Ok(())
        }
    }
}

mod ser {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use paycore_domain::{AccountId, Money};
    use serde::{Serialize, Serializer};

    #[derive(Serialize)]
    struct MoneyJson {
        amount: i64,
        currency: String,
        display: String,
    }

    pub fn accounts<S: Serializer>(accounts: &BTreeMap<AccountId, Money>, s: S) -> Result<S::Ok, S::Error> {
        let shown: BTreeMap<String, MoneyJson> = accounts
            .iter()
            .map(|(id, money)| {
                (
                    id.to_string(),
                    MoneyJson {
                        amount: money.amount,
                        currency: money.currency.to_string(),
                        display: money.to_string(),
                    },
                )
            })
            .collect();
        shown.serialize(s)
    }

    pub fn duration<S: Serializer>(elapsed: &Duration, s: S) -> Result<S::Ok, S::Error> {
        elapsed.as_secs_f64().serialize(s)
    }
}
