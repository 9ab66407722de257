//! Rules over two-phase (pending) transfers:
//!
//! - a pending transfer ends (posted, voided, expired) at most once, only
//!   once created pending, posted or voided before its `expires_at`,
//!   expired at or after it ([`Rule::PendingTransferEndsOnce`]);
//! - a post moves a positive value in the transfer's currency, at most what
//!   it held, by exactly one `posted_transfer_source` debit of the source
//!   and one `posted_transfer_destination` credit of the destination
//!   ([`Rule::PendingTransferPostedWithinHold`]);
//! - the transfer holds its value once on each account (the source −value,
//!   the destination +value, under the transfer's transaction IDs), and its
//!   ending releases both in full, once, in its phase; so an expired
//!   transfer's holds are released ([`Rule::PendingTransferHoldsReleased`]);
//! - per account, the pending totals replayed from its records are what
//!   each record says it leaves, never negative, and no debit or hold takes
//!   `available = balance − pending_debits` below zero without the
//!   allowance ([`Rule::PendingBalances`]).
//!
//! Holds and legs are matched at the end of the replay (or of its limit),
//! so the order of events inside one atomic write does not matter; the
//! auditor extends a limit to the end of the append it falls in, so a cut
//! never leaves half of one.

use std::collections::HashMap;

use paycore_domain::events::{PendingPhase, PendingTransaction, PendingTransferCreated};
use paycore_domain::{AccountId, Event, Money, Timestamp, Transaction, TransactionKind, TransferId};

use crate::{ExtraCheck, Location, Rule, Violation};

/// What one pending transfer did, as the log shows it.
#[derive(Debug, Default)]
struct PendingTransfer {
    created: Option<(Location, PendingTransferCreated)>,
    /// Its endings: the phase, and the posted value for a post.
    endings: Vec<(Location, PendingPhase, Option<Money>)>,
    /// Its records on accounts (holds and releases).
    records: Vec<(Location, PendingTransaction)>,
    /// Its posted legs.
    legs: Vec<(Location, Transaction)>,
}

/// What the rules follow of an account: its posted balance, pending totals
/// and allowance, as recorded.
#[derive(Debug)]
struct AccountView {
    balance: Money,
    pending_debits: Money,
    pending_credits: Money,
    allow_negative: bool,
}

/// The two-phase transfer rules (see the module docs).
#[derive(Debug, Default)]
pub struct PendingTransfers {
    transfers: HashMap<TransferId, PendingTransfer>,
    accounts: HashMap<AccountId, AccountView>,
}

impl ExtraCheck for PendingTransfers {
    fn on_event(&mut self, at: &Location, event: &Event, violations: &mut Vec<Violation>) {
        match event {
            Event::AccountOpened(opened) => {
                let zero = Money::zero(opened.currency);
                self.accounts.insert(
                    opened.id,
                    AccountView {
                        balance: zero,
                        pending_debits: zero,
                        pending_credits: zero,
                        allow_negative: opened.allow_negative_balance,
                    },
                );
            }
            Event::NegativeBalanceAllowanceChanged(change) => {
                if let Some(account) = instance::<AccountId>(at).and_then(|id| self.accounts.get_mut(&id)) {
                    account.allow_negative = change.allow_negative_balance;
                }
            }
            Event::PendingTransferCreated(created) => {
                let transfer = self.transfers.entry(created.id).or_default();
                transfer.created = Some((at.clone(), created.clone()));
            }
            Event::PendingTransferPosted(posted) => self.ended(
                at,
                PendingPhase::Posted,
                posted.posted_at,
                Some(posted.value),
                violations,
            ),
            Event::PendingTransferVoided(voided) => {
                self.ended(at, PendingPhase::Voided, voided.voided_at, None, violations)
            }
            Event::PendingTransferExpired(expired) => {
                self.ended(at, PendingPhase::Expired, expired.expired_at, None, violations)
            }
            Event::PendingTransactionRecorded(recorded) => self.record(at, &recorded.pending, violations),
            Event::TransactionRecorded(recorded) => self.transaction(at, &recorded.transaction, violations),
            _ => {}
        }
    }

    fn finish(&mut self, violations: &mut Vec<Violation>) {
        for (id, transfer) in &self.transfers {
            check_transfer(*id, transfer, violations);
        }
        violations.sort_by_key(|violation| violation.at.as_ref().map(|at| at.position));
    }
}

impl PendingTransfers {
    /// An ending of the transfer whose stream `at` is in, at `time`.
    fn ended(
        &mut self,
        at: &Location,
        phase: PendingPhase,
        time: Timestamp,
        posted: Option<Money>,
        violations: &mut Vec<Violation>,
    ) {
        let Some(id) = instance::<TransferId>(at) else {
            return;
        };
        let transfer = self.transfers.entry(id).or_default();
        let mut problems = Vec::new();
        match &transfer.created {
            None => problems.push(format!(
                "transfer {id} {} but was never created pending",
                phase.as_str()
            )),
            Some((_, created)) => {
                let expired = time >= created.expires_at;
                if expired != (phase == PendingPhase::Expired) {
                    problems.push(format!(
                        "transfer {id} {} at {}, but it expires at {}",
                        phase.as_str(),
                        time.micros(),
                        created.expires_at.micros()
                    ));
                }
            }
        }
        if let Some((first, first_phase, _)) = transfer.endings.first() {
            problems.push(format!(
                "transfer {id} {} after it {} at {first}",
                phase.as_str(),
                first_phase.as_str()
            ));
        }
        for problem in problems {
            violations.push(Violation::new(
                Rule::PendingTransferEndsOnce,
                Some(at.clone()),
                problem,
            ));
        }
        if let (Some(value), Some((_, created))) = (posted, &transfer.created) {
            let held = created.value;
            if value.currency != held.currency || value.amount <= 0 || value.amount > held.amount {
                violations.push(Violation::new(
                    Rule::PendingTransferPostedWithinHold,
                    Some(at.clone()),
                    format!("transfer {id} posts {value} of a hold of {held}"),
                ));
            }
        }
        transfer.endings.push((at.clone(), phase, posted));
    }

    /// A hold or release on an account: the account's pending totals
    /// replayed, and the available balance after a hold.
    fn record(&mut self, at: &Location, pending: &PendingTransaction, violations: &mut Vec<Violation>) {
        self.transfers
            .entry(pending.transfer_id)
            .or_default()
            .records
            .push((at.clone(), *pending));
        let Some(account) = self.accounts.get_mut(&pending.account_id) else {
            return;
        };
        let recorded = (pending.pending_debits_after, pending.pending_credits_after);
        let replayed = pending.pending_after(account.pending_debits, account.pending_credits);
        let mut problems = Vec::new();
        if replayed != Some(recorded) {
            problems.push(format!(
                "{} of {} on account {}: pending debits/credits {} / {} become {replayed:?}, but the record says {} / {}",
                pending.phase.as_str(),
                pending.value,
                pending.account_id,
                account.pending_debits,
                account.pending_credits,
                recorded.0,
                recorded.1
            ));
        }
        if recorded.0.is_negative() || recorded.1.is_negative() {
            problems.push(format!(
                "account {} has negative pending totals {} / {}",
                pending.account_id, recorded.0, recorded.1
            ));
        }
        // Follow the recorded state, so one bad event is one finding.
        (account.pending_debits, account.pending_credits) = recorded;
        let holds_debit = pending.phase == PendingPhase::Reserved && pending.value.is_negative();
        if holds_debit {
            problems.extend(uncovered(pending.account_id, account));
        }
        for problem in problems {
            violations.push(Violation::new(Rule::PendingBalances, Some(at.clone()), problem));
        }
    }

    fn transaction(&mut self, at: &Location, tx: &Transaction, violations: &mut Vec<Violation>) {
        if let Some(account) = self.accounts.get_mut(&tx.account_id)
            && account.balance.currency == tx.balance_after.currency
        {
            account.balance = tx.balance_after;
            // A posted balance below zero is `NoNegativeBalance`'s finding;
            // this rule reports what only the holds make uncovered.
            let held = account.pending_debits.amount > 0 && !tx.balance_after.is_negative();
            if tx.value.is_negative()
                && held
                && let Some(problem) = uncovered(tx.account_id, account)
            {
                violations.push(Violation::new(Rule::PendingBalances, Some(at.clone()), problem));
            }
        }
        if let TransactionKind::PostedTransferSource(id) | TransactionKind::PostedTransferDestination(id) =
            tx.kind
        {
            self.transfers.entry(id).or_default().legs.push((at.clone(), *tx));
        }
    }
}

/// The overdraft rule on the available balance, for an account that was
/// just debited or had a debit held.
fn uncovered(id: AccountId, account: &AccountView) -> Option<String> {
    let available = account.balance.amount.checked_sub(account.pending_debits.amount);
    let covered = account.allow_negative || available.is_some_and(|available| available >= 0);
    (!covered).then(|| {
        format!(
            "account {id} has {} available ({} less {} pending) without allow_negative_balance",
            available.map_or_else(|| "an out-of-range amount".to_owned(), |a| a.to_string()),
            account.balance,
            account.pending_debits
        )
    })
}

/// End-of-replay checks of one transfer: its holds, their releases and its
/// posted legs.
fn check_transfer(id: TransferId, transfer: &PendingTransfer, violations: &mut Vec<Violation>) {
    let Some((created_at, created)) = &transfer.created else {
        let stray = transfer
            .records
            .iter()
            .map(|(at, _)| (Rule::PendingTransferHoldsReleased, at));
        let legs = transfer
            .legs
            .iter()
            .map(|(at, _)| (Rule::PendingTransferPostedWithinHold, at));
        for (rule, at) in stray.chain(legs) {
            let message =
                format!("hold, release or posted leg of transfer {id}, which was never created pending");
            violations.push(Violation::new(rule, Some(at.clone()), message));
        }
        return;
    };
    let ending = transfer.endings.first();
    let phases = std::iter::once(PendingPhase::Reserved).chain(ending.map(|(_, phase, _)| *phase));
    let sides = [
        (
            created.source_account_id,
            created.source_transaction_id,
            created.value.amount.saturating_neg(),
        ),
        (
            created.destination_account_id,
            created.destination_transaction_id,
            created.value.amount,
        ),
    ];
    for phase in phases {
        for (account, transaction, amount) in sides {
            let wanted = Money::new(amount, created.value.currency);
            let found: Vec<&(Location, PendingTransaction)> = transfer
                .records
                .iter()
                .filter(|(_, record)| record.phase == phase && record.account_id == account)
                .collect();
            let matches = |(_, record): &&(Location, PendingTransaction)| {
                record.value == wanted && record.id == transaction
            };
            if found.len() != 1 || !found.iter().all(matches) {
                let at = found.get(1).or(found.first()).map_or(created_at, |(at, _)| at);
                violations.push(Violation::new(
                    Rule::PendingTransferHoldsReleased,
                    Some(at.clone()),
                    format!(
                        "transfer {id} has {} {} record(s) on account {account}, expected one of {wanted} under {transaction}",
                        found.len(),
                        phase.as_str()
                    ),
                ));
            }
        }
    }
    let known_phase = |record: &PendingTransaction| {
        record.phase == PendingPhase::Reserved || ending.is_some_and(|(_, phase, _)| *phase == record.phase)
    };
    for (at, record) in transfer.records.iter().filter(|(_, record)| !known_phase(record)) {
        violations.push(Violation::new(
            Rule::PendingTransferHoldsReleased,
            Some(at.clone()),
            format!(
                "transfer {id} released in phase {} without that ending",
                record.phase.as_str()
            ),
        ));
    }
    check_legs(id, transfer, created, violations);
}

/// A posted transfer has one debit and one credit of its posted value on
/// its accounts; any other transfer none.
fn check_legs(
    id: TransferId,
    transfer: &PendingTransfer,
    created: &PendingTransferCreated,
    violations: &mut Vec<Violation>,
) {
    let posted = transfer
        .endings
        .first()
        .and_then(|(at, _, posted)| posted.map(|value| (at, value)));
    let mut problems: Vec<(Location, String)> = Vec::new();
    let Some((posted_at, value)) = posted else {
        for (at, _) in &transfer.legs {
            problems.push((
                at.clone(),
                format!("posted leg of transfer {id}, which was not posted"),
            ));
        }
        push_all(Rule::PendingTransferPostedWithinHold, problems, violations);
        return;
    };
    let sides = [
        (true, created.source_account_id, value.amount.saturating_neg()),
        (false, created.destination_account_id, value.amount),
    ];
    for (source, account, amount) in sides {
        let wanted = Money::new(amount, value.currency);
        let found: Vec<&(Location, Transaction)> = transfer
            .legs
            .iter()
            .filter(|(_, tx)| matches!(tx.kind, TransactionKind::PostedTransferSource(_)) == source)
            .collect();
        let side = if source { "source" } else { "destination" };
        if found.len() != 1 {
            let at = found.get(1).map_or(posted_at, |(at, _)| at);
            problems.push((
                at.clone(),
                format!(
                    "transfer {id} has {} posted {side} legs, expected one",
                    found.len()
                ),
            ));
        }
        for (at, tx) in found {
            if tx.account_id != account || tx.value != wanted {
                problems.push((
                    at.clone(),
                    format!(
                        "posted {side} leg of transfer {id} is {} on {}, expected {wanted} on {account}",
                        tx.value, tx.account_id
                    ),
                ));
            }
        }
    }
    push_all(Rule::PendingTransferPostedWithinHold, problems, violations);
}

fn push_all(rule: Rule, found: Vec<(Location, String)>, violations: &mut Vec<Violation>) {
    for (at, message) in found {
        violations.push(Violation::new(rule, Some(at), message));
    }
}

/// The ID in the name of the stream the event is in.
fn instance<I: std::str::FromStr>(at: &Location) -> Option<I> {
    at.stream.split_once('-')?.1.parse().ok()
}
