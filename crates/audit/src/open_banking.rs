//! Rules over open banking (issue 13, item 6): the connection lifecycle,
//! imports, and the transactions recorded on aggregated accounts.
//!
//! The replay folds each connection's, import's and aggregated account's
//! stream with the domain's own `evolve` ([`Aggregate::evolve`]), and before
//! each event calls the domain's pure rules on the state before it:
//!
//! - a connection's status changes only along the lifecycle diagram's
//!   arrows, and its consent expires only once signed in and not before its
//!   `expires_at` (`aggregation_connection::check_status_changed`,
//!   `check_consent_expired`); nothing happens to a deleted connection or
//!   to its accounts;
//! - an import goes `PENDING → RUNNING → SUCCEEDED / FAILED`
//!   (`ImportStatus::may_become`), records progress only while running, and
//!   its counts never go down (`ImportProgress::precedes`);
//! - a batch of transactions is on an enabled, unarchived account of a live
//!   connection, each transaction's ID is derived from the account and the
//!   bank's ID, each bank transaction is recorded once per account (its
//!   booked version may replace its pending one), within 5 years of the
//!   batch, in the account's currency (`aggregated_account::check_recorded`);
//! - bank data (accounts found, updated, archived or unarchived,
//!   transactions recorded or removed) is recorded only while the
//!   connection is `UPDATING`, a batch naming an import only while that
//!   import of the same connection is `RUNNING`, and an account is enabled
//!   only under the connection's live consent (what the deciders refuse
//!   with `CONNECTION_NOT_UPDATING`, the import's status, and
//!   `CONSENT_MISSING` / `CONSENT_EXPIRED`).
//!
//! **Memory**: one state per connection, import and account stream, the
//! same the engine caches. An account's record of the transactions it has
//! seen is the domain's `SeenTransactions` (64-bit digests, bounded to 5
//! years of history), so the audit keeps no set of transactions of its own
//! and its memory does not grow with the number of transactions.
//!
//! Replay follows the recorded state after a violation (an event that
//! breaks a rule is still folded), so one bad event is one finding. An
//! event that cannot be folded (a connection created twice, an event on a
//! stream never created, an event in another family's stream) is an
//! `event_fits_stream` finding and is left out; a stream never created is
//! reported at its first event only (its creation may have been lost with a
//! damaged frame: the stream's version finding says so).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use paycore_domain::aggregated_account::{AggregatedTransactionsRecorded, TransactionRule, check_recorded};
use paycore_domain::aggregation_connection::{
    AggregationConnection, ConnectionRule, ConnectionStatus, check_consent_expired, check_status_changed,
};
use paycore_domain::aggregation_import::{ImportProgress, ImportStatus};
use paycore_domain::{
    Aggregate, AggregatedAccountId, AggregatedTransactionId, AggregationConnectionId, AggregationImportId,
    Event, StreamRef,
};

use crate::{ExtraCheck, Location, Rule, Violation};

impl From<ConnectionRule> for Rule {
    fn from(rule: ConnectionRule) -> Self {
        match rule {
            ConnectionRule::AfterDeletion => Self::AggregationConnectionDeletedIsTerminal,
            ConnectionRule::NotInDiagram => Self::AggregationConnectionTransitionInDiagram,
            ConnectionRule::ConsentExpiryNotAllowed => Self::AggregationConsentExpiryAfterSignIn,
            ConnectionRule::ConsentExpiredEarly => Self::AggregationConsentExpiryOnTime,
        }
    }
}

impl From<TransactionRule> for Rule {
    fn from(rule: TransactionRule) -> Self {
        match rule {
            TransactionRule::ConnectionDeleted => Self::AggregatedTransactionOnDeletedConnection,
            TransactionRule::AccountDisabled => Self::AggregatedTransactionOnDisabledAccount,
            TransactionRule::AccountArchived => Self::AggregatedTransactionOnArchivedAccount,
            TransactionRule::IdNotDerived => Self::AggregatedTransactionIdDerived,
            TransactionRule::RecordedTwice => Self::AggregatedTransactionRecordedOnce,
            TransactionRule::OutsideHistory => Self::AggregatedTransactionWithinHistory,
            TransactionRule::CurrencyMismatch => Self::AggregatedTransactionCurrency,
        }
    }
}

/// The stream kinds of open banking whose states the replay folds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Connection,
    Import,
    Account,
}

impl Kind {
    /// The kind of stream `event` belongs in, if it is open banking's.
    fn of(event: &Event) -> Option<Self> {
        use Event as E;
        Some(match event {
            E::AggregationConnectionCreated(_)
            | E::AggregationInstitutionChosen(_)
            | E::AggregationConnectionStatusChanged(_)
            | E::AggregationSourceUpdated(_)
            | E::AggregationConsentGranted(_)
            | E::AggregationConsentExpired(_)
            | E::AggregationConnectionAccountsFound(_)
            | E::AggregationConnectionDeleted(_) => Self::Connection,
            E::AggregationImportCreated(_)
            | E::AggregationImportStarted(_)
            | E::AggregationImportProgressed(_)
            | E::AggregationImportSucceeded(_)
            | E::AggregationImportFailed(_) => Self::Import,
            E::AggregatedAccountDiscovered(_)
            | E::AggregatedAccountUpdated(_)
            | E::AggregatedAccountEnabled(_)
            | E::AggregatedAccountArchived(_)
            | E::AggregatedAccountUnarchived(_)
            | E::AggregatedTransactionsRecorded(_)
            | E::AggregatedTransactionsRemoved(_) => Self::Account,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Connection => "aggregation connection",
            Self::Import => "aggregation import",
            Self::Account => "aggregated account",
        }
    }
}

/// The open banking rules (see the module docs).
#[derive(Debug, Default)]
pub struct OpenBanking {
    /// Each connection's state ([`Aggregate::AggregationConnection`]).
    connections: HashMap<AggregationConnectionId, Aggregate>,
    /// Each import's state ([`Aggregate::AggregationImport`]).
    imports: HashMap<AggregationImportId, Aggregate>,
    /// Each aggregated account's state ([`Aggregate::AggregatedAccount`]),
    /// with its bounded digests of the transactions recorded.
    accounts: HashMap<AggregatedAccountId, Aggregate>,
    /// Streams whose events came without their creation, reported once.
    orphans: HashSet<String>,
}

impl ExtraCheck for OpenBanking {
    fn on_event(&mut self, at: &Location, event: &Event, violations: &mut Vec<Violation>) {
        let Some(kind) = Kind::of(event) else {
            return;
        };
        let mut found = Vec::new();
        let foldable = match (kind, StreamRef::parse(&at.stream)) {
            (Kind::Connection, Some(StreamRef::AggregationConnection(id))) => {
                self.check_connection(id, event, &mut found)
            }
            (Kind::Import, Some(StreamRef::AggregationImport(id))) => {
                self.check_import(id, event, &mut found)
            }
            (Kind::Account, Some(StreamRef::AggregatedAccount(id))) => {
                self.check_account(id, event, &mut found)
            }
            _ => {
                found.push((
                    Rule::EventFitsStream,
                    format!("an event of an {} outside such a stream", kind.name()),
                ));
                None
            }
        };
        for (rule, message) in found {
            violations.push(Violation::new(rule, Some(at.clone()), message));
        }
        if let Some(state) = foldable {
            *state = std::mem::take(state).evolve(event);
        }
    }

    fn finish(&mut self, _violations: &mut Vec<Violation>) {}
}

type Found = Vec<(Rule, String)>;

/// Whether an event fits its stream's state (a creation on a new stream,
/// anything else on an existing one); if not, the finding. Events of a
/// stream never created are reported once per stream (`orphans`: the
/// streams reported), since its creation may be among lost events.
fn fits(
    kind: Kind,
    id: &dyn std::fmt::Display,
    creates: bool,
    exists: bool,
    orphans: &mut HashSet<String>,
) -> Result<(), Option<(Rule, String)>> {
    let kind = kind.name();
    match (creates, exists) {
        (true, true) => Err(Some((
            Rule::EventFitsStream,
            format!("{kind} {id} created twice"),
        ))),
        (false, false) => Err(orphans.insert(id.to_string()).then(|| {
            (
                Rule::EventFitsStream,
                format!(
                    "an event of {kind} {id}, which was never created (its later events are not reported)"
                ),
            )
        })),
        _ => Ok(()),
    }
}

impl OpenBanking {
    /// The approximate memory of the states kept (each as the engine's
    /// cache weighs it, `Aggregate::approx_bytes`, plus its key).
    pub fn approx_bytes(&self) -> usize {
        fn of<K>(states: &HashMap<K, Aggregate>) -> usize {
            states
                .values()
                .map(|state| state.approx_bytes() + size_of::<K>())
                .sum()
        }
        of(&self.connections) + of(&self.imports) + of(&self.accounts)
    }

    fn connection(&self, id: AggregationConnectionId) -> Option<&AggregationConnection> {
        self.connections
            .get(&id)
            .and_then(Aggregate::as_aggregation_connection)
    }

    fn connection_deleted(&self, id: AggregationConnectionId) -> bool {
        self.connection(id).is_some_and(AggregationConnection::is_deleted)
    }

    /// Bank data of `account` is recorded only while its connection is
    /// `UPDATING` (a sync).
    fn while_updating(
        &self,
        account: AggregatedAccountId,
        connection: AggregationConnectionId,
    ) -> Option<(Rule, String)> {
        let status = self.connection(connection)?.status;
        (status != ConnectionStatus::Updating).then(|| {
            (
                Rule::AggregatedDataWhileUpdating,
                format!(
                    "bank data of aggregated account {account} recorded while its aggregation connection \
                     {connection} is {}",
                    status.name()
                ),
            )
        })
    }

    /// What an event of a live connection's account breaks besides the
    /// batch rules: bank data only while the connection is `UPDATING`, a
    /// batch naming an import only while that import of the connection is
    /// `RUNNING`, and enabling only under a live consent.
    fn account_context(
        &self,
        account: AggregatedAccountId,
        connection_id: AggregationConnectionId,
        event: &Event,
    ) -> Found {
        let mut found = Vec::new();
        let import = match event {
            Event::AggregatedTransactionsRecorded(recorded) => Some(recorded.import_id),
            Event::AggregatedTransactionsRemoved(removed) => Some(removed.import_id),
            Event::AggregatedAccountUpdated(_)
            | Event::AggregatedAccountArchived(_)
            | Event::AggregatedAccountUnarchived(_) => Some(None),
            _ => None,
        };
        if import.is_some() {
            found.extend(self.while_updating(account, connection_id));
        }
        if let Some(Some(import)) = import {
            let state = self
                .imports
                .get(&import)
                .and_then(Aggregate::as_aggregation_import);
            let problem = match state {
                None => Some("which was never created".to_owned()),
                Some(state) if state.connection_id != connection_id => {
                    Some(format!("of aggregation connection {}", state.connection_id))
                }
                Some(state) if state.status != ImportStatus::Running => Some(state.status.name().to_owned()),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                found.push((
                    Rule::AggregatedDataImportRunning,
                    format!(
                        "transactions of aggregated account {account} recorded by aggregation import \
                         {import}, {problem}"
                    ),
                ));
            }
        }
        if let Event::AggregatedAccountEnabled(enabled) = event {
            let connection = self.connection(connection_id);
            if connection.is_some_and(|c| c.live_consent(enabled.enabled_at).is_none()) {
                found.push((
                    Rule::AggregatedAccountEnabledWithConsent,
                    format!(
                        "aggregated account {account} enabled without a live consent of its aggregation \
                         connection {connection_id}"
                    ),
                ));
            }
        }
        found
    }

    /// Checks a connection's event; the state to fold it into, if it fits.
    fn check_connection(
        &mut self,
        id: AggregationConnectionId,
        event: &Event,
        found: &mut Found,
    ) -> Option<&mut Aggregate> {
        let created = match event {
            Event::AggregationConnectionCreated(created) => Some(created.id),
            _ => None,
        };
        let state = self
            .connections
            .get(&id)
            .and_then(Aggregate::as_aggregation_connection);
        if let Err(misfit) = fits(
            Kind::Connection,
            &id,
            created.is_some(),
            state.is_some(),
            &mut self.orphans,
        ) {
            found.extend(misfit);
            return None;
        }
        if let Some(named) = created.filter(|named| *named != id) {
            found.push((
                Rule::EventFitsStream,
                format!("aggregation connection {named} created in the stream of {id}"),
            ));
            return None;
        }
        if let Some(connection) = state {
            let broken = match event {
                Event::AggregationConnectionStatusChanged(changed) => {
                    check_status_changed(connection, changed).map(|rule| {
                        let message = match rule {
                            ConnectionRule::NotInDiagram => format!(
                                "aggregation connection {id} went from {} to {}: not an arrow of the \
                                 lifecycle diagram",
                                connection.status.name(),
                                changed.status.name()
                            ),
                            _ => format!(
                                "aggregation connection {id} changed its status to {} after its deletion",
                                changed.status.name()
                            ),
                        };
                        (rule, message)
                    })
                }
                Event::AggregationConsentExpired(expired) => {
                    check_consent_expired(connection, expired).map(|rule| {
                        let message = match (rule, connection.consent) {
                            (ConnectionRule::ConsentExpiryNotAllowed, _) => format!(
                                "the consent of aggregation connection {id} expired while {}, before \
                                 it signed in",
                                connection.status.name()
                            ),
                            (ConnectionRule::ConsentExpiredEarly, Some(consent)) => format!(
                                "the consent of aggregation connection {id} expired at {} µs, before \
                                 its expires_at {} µs",
                                expired.expired_at.micros(),
                                consent.expires_at.micros()
                            ),
                            (ConnectionRule::ConsentExpiredEarly, None) => {
                                format!("aggregation connection {id} has no consent to expire")
                            }
                            _ => format!(
                                "the consent of aggregation connection {id} expired after its deletion"
                            ),
                        };
                        (rule, message)
                    })
                }
                _ if connection.is_deleted() => Some((
                    ConnectionRule::AfterDeletion,
                    format!("an event of aggregation connection {id} after its deletion"),
                )),
                _ => None,
            };
            if let Some((rule, message)) = broken {
                found.push((rule.into(), message));
            } else if matches!(event, Event::AggregationConnectionAccountsFound(_))
                && connection.status != ConnectionStatus::Updating
            {
                found.push((
                    Rule::AggregatedDataWhileUpdating,
                    format!(
                        "aggregation connection {id} found accounts while {}",
                        connection.status.name()
                    ),
                ));
            }
        }
        Some(self.connections.entry(id).or_default())
    }

    /// Checks an import's event; the state to fold it into, if it fits.
    fn check_import(
        &mut self,
        id: AggregationImportId,
        event: &Event,
        found: &mut Found,
    ) -> Option<&mut Aggregate> {
        let created = match event {
            Event::AggregationImportCreated(created) => Some(created.id),
            _ => None,
        };
        let state = self.imports.get(&id).and_then(Aggregate::as_aggregation_import);
        if let Err(misfit) = fits(
            Kind::Import,
            &id,
            created.is_some(),
            state.is_some(),
            &mut self.orphans,
        ) {
            found.extend(misfit);
            return None;
        }
        if let Some(named) = created.filter(|named| *named != id) {
            found.push((
                Rule::EventFitsStream,
                format!("aggregation import {named} created in the stream of {id}"),
            ));
            return None;
        }
        if let Event::AggregationImportCreated(created) = event {
            let connection = created.connection_id;
            match self.connection(connection) {
                None => found.push((
                    Rule::EventFitsStream,
                    format!(
                        "aggregation import {id} of aggregation connection {connection}, which was never \
                         created"
                    ),
                )),
                Some(c) if c.is_deleted() => found.push((
                    Rule::AggregationConnectionDeletedIsTerminal,
                    format!(
                        "aggregation import {id} created for aggregation connection {connection} after its \
                         deletion"
                    ),
                )),
                Some(_) => {}
            }
        }
        if let Some(import) = state {
            let (next, progress): (Option<ImportStatus>, Option<&ImportProgress>) = match event {
                Event::AggregationImportStarted(_) => (Some(ImportStatus::Running), None),
                Event::AggregationImportSucceeded(succeeded) => {
                    (Some(ImportStatus::Succeeded), Some(&succeeded.progress))
                }
                Event::AggregationImportFailed(failed) => (
                    Some(ImportStatus::Failed {
                        reason: failed.reason,
                    }),
                    None,
                ),
                Event::AggregationImportProgressed(progressed) => (None, Some(&progressed.progress)),
                _ => (None, None),
            };
            match next {
                Some(next) if !import.status.may_become(&next) => found.push((
                    Rule::AggregationImportTransitionAllowed,
                    format!(
                        "aggregation import {id} went from {} to {}",
                        import.status.name(),
                        next.name()
                    ),
                )),
                Some(_) => {}
                // Progress is recorded only while running.
                None if progress.is_some() && import.status != ImportStatus::Running => found.push((
                    Rule::AggregationImportTransitionAllowed,
                    format!(
                        "aggregation import {id} recorded progress while {}",
                        import.status.name()
                    ),
                )),
                None => {}
            }
            if let Some(progress) = progress
                && !import.progress.precedes(progress)
            {
                found.push((
                    Rule::AggregationImportProgressGrows,
                    format!(
                        "aggregation import {id}'s counts went down: {:?} after {:?}",
                        progress, import.progress
                    ),
                ));
            }
        }
        Some(self.imports.entry(id).or_default())
    }

    /// Checks an aggregated account's event; the state to fold it into, if
    /// it fits.
    fn check_account(
        &mut self,
        id: AggregatedAccountId,
        event: &Event,
        found: &mut Found,
    ) -> Option<&mut Aggregate> {
        let discovered = match event {
            Event::AggregatedAccountDiscovered(discovered) => Some(discovered),
            _ => None,
        };
        let state = self.accounts.get(&id).and_then(Aggregate::as_aggregated_account);
        if let Err(misfit) = fits(
            Kind::Account,
            &id,
            discovered.is_some(),
            state.is_some(),
            &mut self.orphans,
        ) {
            found.extend(misfit);
            return None;
        }
        if let Some(discovered) = discovered {
            if discovered.id != id {
                found.push((
                    Rule::EventFitsStream,
                    format!(
                        "aggregated account {} discovered in the stream of {id}",
                        discovered.id
                    ),
                ));
                return None;
            }
            let connection = discovered.connection_id;
            if !self.connections.contains_key(&connection) {
                found.push((
                    Rule::EventFitsStream,
                    format!(
                        "aggregated account {id} discovered through aggregation connection {connection}, \
                         which was never created"
                    ),
                ));
            } else if self.connection_deleted(connection) {
                found.push((
                    Rule::AggregationConnectionDeletedIsTerminal,
                    format!(
                        "aggregated account {id} discovered through aggregation connection {connection} \
                         after its deletion"
                    ),
                ));
            } else if let Some(misfit) = self.while_updating(id, connection) {
                found.push(misfit);
            }
        }
        if let Some(account) = state {
            let deleted = self.connection_deleted(account.connection_id);
            match event {
                Event::AggregatedTransactionsRecorded(recorded) => {
                    let broken = check_recorded(account, deleted, recorded);
                    found.extend(batch_findings(id, account.connection_id, recorded, &broken));
                }
                _ if deleted => found.push((
                    Rule::AggregationConnectionDeletedIsTerminal,
                    format!(
                        "an event of aggregated account {id} after the deletion of its aggregation \
                         connection {}",
                        account.connection_id
                    ),
                )),
                _ => {}
            }
            if !deleted {
                found.extend(self.account_context(id, account.connection_id, event));
            }
        }
        Some(self.accounts.entry(id).or_default())
    }
}

/// At most this many transaction IDs are named per rule and batch.
const NAMED: usize = 3;

/// One finding per rule a batch broke (a batch carries up to 5,000
/// transactions: a wrong currency throughout is one finding, counting them).
fn batch_findings(
    account: AggregatedAccountId,
    connection: AggregationConnectionId,
    batch: &AggregatedTransactionsRecorded,
    broken: &[(Option<AggregatedTransactionId>, TransactionRule)],
) -> Found {
    let mut rules: Vec<TransactionRule> = Vec::new();
    for (_, rule) in broken {
        if !rules.contains(rule) {
            rules.push(*rule);
        }
    }
    rules
        .into_iter()
        .map(|rule| {
            let ids: Vec<AggregatedTransactionId> = broken
                .iter()
                .filter(|(_, r)| *r == rule)
                .filter_map(|(id, _)| *id)
                .collect();
            let what = match rule {
                TransactionRule::ConnectionDeleted => {
                    format!("after the deletion of its aggregation connection {connection}")
                }
                TransactionRule::AccountDisabled => {
                    "while it is disabled (the end user has not consented)".to_owned()
                }
                TransactionRule::AccountArchived => {
                    "while it is archived (the bank no longer lists it)".to_owned()
                }
                TransactionRule::IdNotDerived => {
                    "with an ID not derived from the account and the bank's transaction ID".to_owned()
                }
                TransactionRule::RecordedTwice => {
                    "recorded on the account before (or twice in the batch)".to_owned()
                }
                TransactionRule::OutsideHistory => {
                    "booked more than 5 years before the batch was recorded".to_owned()
                }
                TransactionRule::CurrencyMismatch => "not in the account's currency".to_owned(),
            };
            let mut message = if ids.is_empty() {
                format!(
                    "a batch of {} transactions on aggregated account {account} {what}",
                    batch.transactions.len()
                )
            } else {
                format!(
                    "{} of the batch's {} transactions on aggregated account {account} {what}:",
                    ids.len(),
                    batch.transactions.len()
                )
            };
            for tx_id in ids.iter().take(NAMED) {
                let bank = batch
                    .transactions
                    .iter()
                    .find(|tx| tx.id == *tx_id)
                    .map(|tx| tx.bank_transaction_id.as_str())
                    .unwrap_or_default();
                let _ = write!(message, " {tx_id} (bank ID {bank:?})");
            }
            if ids.len() > NAMED {
                let _ = write!(message, " and {} more", ids.len() - NAMED);
            }
            (rule.into(), message)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit reports each rule under the name the domain gives it, in
    /// its text and its JSON.
    #[test]
    fn the_rules_are_named_as_the_domain_names_them() {
        let connection = [
            ConnectionRule::AfterDeletion,
            ConnectionRule::NotInDiagram,
            ConnectionRule::ConsentExpiryNotAllowed,
            ConnectionRule::ConsentExpiredEarly,
        ];
        let transaction = [
            TransactionRule::ConnectionDeleted,
            TransactionRule::AccountDisabled,
            TransactionRule::AccountArchived,
            TransactionRule::IdNotDerived,
            TransactionRule::RecordedTwice,
            TransactionRule::OutsideHistory,
            TransactionRule::CurrencyMismatch,
        ];
        let named = connection
            .iter()
            .map(|rule| (Rule::from(*rule), rule.name()))
            .chain(transaction.iter().map(|rule| (Rule::from(*rule), rule.name())));
        for (rule, name) in named {
            assert_eq!(rule.as_str(), name);
            assert_eq!(
                serde_json::to_value(rule).ok(),
                Some(serde_json::Value::from(name))
            );
        }
        for rule in [
            Rule::AggregationImportTransitionAllowed,
            Rule::AggregationImportProgressGrows,
            Rule::AggregatedDataWhileUpdating,
            Rule::AggregatedDataImportRunning,
            Rule::AggregatedAccountEnabledWithConsent,
        ] {
            assert_eq!(
                serde_json::to_value(rule).ok(),
                Some(serde_json::Value::from(rule.as_str()))
            );
        }
    }

    fn event_at(stream: &StreamRef, version: u64) -> Location {
        Location {
            stream: stream.to_string(),
            version,
            position: 0,
        }
    }

    /// Ten years of daily syncs of a busy account: the audit's memory is
    /// the account's bounded state, the same after ten years as after five.
    #[test]
    fn memory_stays_bounded_over_years_of_transactions() {
        use paycore_domain::aggregated_account::{
            AccountPersonal, AggregatedAccountDiscovered, AggregatedAccountEnabled, AggregatedAccountType,
            AggregatedTransaction, BankId, TransactionPersonal, TransactionStatus, transaction_id,
        };
        use paycore_domain::aggregation_connection::{
            AggregationConnectionCreated, AggregationConnectionStatusChanged, AggregationConsentGranted,
            ConnectionStatus, Consent,
        };
        use paycore_domain::kernel::date::Date;
        use paycore_domain::{CustomerId, Money, ProjectId, Timestamp};
        use uuid::Uuid;

        const DAY: i64 = 86_400_000_000;
        const PER_DAY: usize = 10;
        let t0 = 1_796_558_400_000_000; // 2026-12-06
        let connection = AggregationConnectionId::from_uuid(Uuid::from_u128(1));
        let account = AggregatedAccountId::from_uuid(Uuid::from_u128(2));
        let project = ProjectId::from_uuid(Uuid::from_u128(3));
        let customer = CustomerId::from_uuid(Uuid::from_u128(4));
        let mut audit = OpenBanking::default();
        let mut violations = Vec::new();
        let mut versions: HashMap<String, u64> = HashMap::new();
        let mut push = |audit: &mut OpenBanking, stream: StreamRef, event: Event| {
            let version = versions.entry(stream.to_string()).or_insert(0);
            audit.on_event(&event_at(&stream, *version), &event, &mut violations);
            *version += 1;
        };
        let conn_stream = StreamRef::AggregationConnection(connection);
        let account_stream = StreamRef::AggregatedAccount(account);
        push(
            &mut audit,
            conn_stream.clone(),
            Event::AggregationConnectionCreated(AggregationConnectionCreated {
                id: connection,
                project_id: project,
                customer_id: customer,
                institution_id: None,
                sources: Vec::new(),
                redirect_url: None,
                created_at: Timestamp::from_micros(t0),
            }),
        );
        for status in [ConnectionStatus::Connecting, ConnectionStatus::Updating] {
            push(
                &mut audit,
                conn_stream.clone(),
                Event::AggregationConnectionStatusChanged(AggregationConnectionStatusChanged {
                    status,
                    changed_at: Timestamp::from_micros(t0),
                }),
            );
        }
        push(
            &mut audit,
            conn_stream.clone(),
            Event::AggregationConsentGranted(AggregationConsentGranted {
                consent: Consent {
                    granted_at: Timestamp::from_micros(t0),
                    expires_at: Timestamp::from_micros(t0 + 180 * DAY),
                },
            }),
        );
        push(
            &mut audit,
            account_stream.clone(),
            Event::AggregatedAccountDiscovered(AggregatedAccountDiscovered {
                id: account,
                project_id: project,
                connection_id: connection,
                customer_id: customer,
                account_type: AggregatedAccountType::Current,
                currency: paycore_domain::Currency::EUR,
                personal: AccountPersonal {
                    bank_account_id: BankId::parse("ACC").unwrap(),
                    name: "Current".into(),
                    identifier: None,
                    owners: Vec::new(),
                },
                discovered_at: Timestamp::from_micros(t0),
            }),
        );
        push(
            &mut audit,
            account_stream.clone(),
            Event::AggregatedAccountEnabled(AggregatedAccountEnabled {
                enabled_at: Timestamp::from_micros(t0),
            }),
        );
        let mut after_five_years = 0;
        for day in 0..(10 * 365) {
            let now = Timestamp::from_micros(t0 + day * DAY);
            let booking = Date::of(now).unwrap();
            let transactions = (0..PER_DAY)
                .map(|i| {
                    let bank = BankId::parse(&format!("{day}-{i}")).unwrap();
                    AggregatedTransaction {
                        id: transaction_id(account, &bank),
                        bank_transaction_id: bank,
                        status: TransactionStatus::Booked,
                        booking_date: booking,
                        value_date: None,
                        amount: Money::new(-100, paycore_domain::Currency::EUR),
                        replaces: None,
                        personal: TransactionPersonal::default(),
                    }
                })
                .collect();
            push(
                &mut audit,
                account_stream.clone(),
                Event::AggregatedTransactionsRecorded(AggregatedTransactionsRecorded {
                    import_id: None,
                    transactions,
                    recorded_at: now,
                }),
            );
            if day == 5 * 365 + 60 {
                after_five_years = audit.approx_bytes();
            }
        }
        let after_ten_years = audit.approx_bytes();
        assert_eq!(violations, Vec::new());
        // 5 years and a month of 8-byte digests, and a little more.
        let bound = (5 * 365 + 62) * PER_DAY * 8 * 2;
        assert!(after_five_years <= bound, "{after_five_years} > {bound}");
        assert!(
            after_ten_years <= after_five_years + after_five_years / 10,
            "{after_ten_years} after ten years, {after_five_years} after five"
        );
    }
}
