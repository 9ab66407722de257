//! Deciding what a sync brings: the accounts found (new ones discovered
//! disabled, missing ones archived, found again unarchived, changes
//! recorded), the end user's consent per account, and transactions in
//! batches, each recorded once. A sync that finds nothing new writes
//! nothing.

use std::collections::HashMap;

use super::events::*;
use super::seen::{Seen, transaction_id};
use super::state::AggregatedAccount;
use crate::aggregation_connection::{
    AggregationConnection, AggregationConnectionAccountsFound, AggregationConnectionEvent, ConnectionStatus,
};
use crate::aggregation_import::oldest_history_date;
use crate::context::{Context, Decided};
use crate::kernel::error::{DomainError, Refusal, Violations};
use crate::kernel::id::{
    AggregatedAccountId, AggregatedTransactionId, AggregationConnectionId, AggregationImportId,
};
use crate::kernel::money::Currency;
use crate::kernel::stream::{ResourceRef, StreamRef};

/// The most accounts one connection has.
pub const MAX_ACCOUNTS_PER_CONNECTION: usize = 50;
/// The most transactions (and removals) one batch carries: one sync page
/// (a connector's pages hold at most 1,000).
pub const MAX_TRANSACTIONS_PER_BATCH: usize = 1_000;
/// The most bytes of text (bank IDs, counterparties, descriptions) one
/// batch carries. A batch is one event, delivered whole to subscribers and
/// published as one NATS message: with this budget and the fixed fields of
/// [`MAX_TRANSACTIONS_PER_BATCH`] transactions it stays under NATS's
/// default 1 MiB payload (and tonic's 4 MiB message), so the relay never
/// meets an event it cannot publish. A sync splits a longer page.
pub const MAX_BATCH_TEXT_BYTES: usize = 512 * 1024;
pub const MAX_BALANCES: usize = 10;
pub const MAX_OWNERS: usize = 10;
/// Names (of accounts, owners, counterparties).
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
const MAX_SCHEME_CHARS: usize = 35;
const MAX_IDENTIFIER_CHARS: usize = 64;

/// An account a sync found at the bank, with the ID it gets if it is new
/// (the caller generates a fresh one for every account found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundAccount {
    pub new_id: AggregatedAccountId,
    pub account_type: AggregatedAccountType,
    pub currency: Currency,
    pub personal: AccountPersonal,
    pub balances: Vec<Balance>,
}

/// A transaction as the bank shows it at a sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedTransaction {
    pub bank_transaction_id: BankId,
    pub status: TransactionStatus,
    pub booking_date: crate::kernel::date::Date,
    pub value_date: Option<crate::kernel::date::Date>,
    pub amount: crate::kernel::money::Money,
    /// For a booked transaction: the bank's ID of the pending one it
    /// replaces, when the bank gives it another ID (Plaid's
    /// `pending_transaction_id`).
    pub replaces_pending: Option<BankId>,
    pub personal: TransactionPersonal,
}

/// The bytes of text a batch carries (what makes its event large).
fn batch_text_bytes(transactions: &[ImportedTransaction], removed: &[BankId]) -> usize {
    let identifier = |identifier: &AccountIdentifier| match identifier {
        AccountIdentifier::Iban(iban) => iban.to_string().len(),
        AccountIdentifier::Other { scheme, value } => scheme.len() + value.len(),
    };
    let transaction = |tx: &ImportedTransaction| {
        let counterparty = tx.personal.counterparty.as_ref().map_or(0, |counterparty| {
            counterparty.name.as_ref().map_or(0, String::len)
                + counterparty.identifier.as_ref().map_or(0, identifier)
        });
        tx.bank_transaction_id.as_str().len()
            + tx.replaces_pending.as_ref().map_or(0, |id| id.as_str().len())
            + tx.personal.description.len()
            + counterparty
    };
    transactions.iter().map(transaction).sum::<usize>()
        + removed.iter().map(|id| id.as_str().len()).sum::<usize>()
}

fn check_text(violations: &mut Violations, field: &str, text: &str, max: usize, required: bool) {
    if required && text.trim().is_empty() {
        violations.add(field, "is required");
    } else if text.chars().count() > max || text.chars().any(char::is_control) {
        violations.add(
            field,
            format!("at most {max} characters, without control characters"),
        );
    }
}

fn check_identifier(violations: &mut Violations, field: &str, identifier: &AccountIdentifier) {
    if let AccountIdentifier::Other { scheme, value } = identifier {
        check_text(
            violations,
            &format!("{field}.scheme"),
            scheme,
            MAX_SCHEME_CHARS,
            true,
        );
        check_text(
            violations,
            &format!("{field}.value"),
            value,
            MAX_IDENTIFIER_CHARS,
            true,
        );
    }
}

fn check_found(violations: &mut Violations, field: &str, found: &FoundAccount) {
    let personal = &found.personal;
    check_text(
        violations,
        &format!("{field}.personal.name"),
        &personal.name,
        MAX_NAME_CHARS,
        true,
    );
    if let Some(identifier) = &personal.identifier {
        check_identifier(violations, &format!("{field}.personal.identifier"), identifier);
    }
    if personal.owners.len() > MAX_OWNERS {
        violations.add(
            format!("{field}.personal.owners"),
            format!("at most {MAX_OWNERS}"),
        );
    }
    for (i, owner) in personal.owners.iter().enumerate() {
        check_text(
            violations,
            &format!("{field}.personal.owners[{i}].name"),
            &owner.name,
            MAX_NAME_CHARS,
            true,
        );
    }
    if found.balances.len() > MAX_BALANCES {
        violations.add(format!("{field}.balances"), format!("at most {MAX_BALANCES}"));
    }
    for (i, balance) in found.balances.iter().enumerate() {
        if balance.amount.currency != found.currency {
            violations.add(
                format!("{field}.balances[{i}].amount.currency"),
                format!("must be the account's currency, {}", found.currency),
            );
        }
        if found.balances[..i]
            .iter()
            .any(|b| b.balance_type == balance.balance_type)
        {
            violations.add(
                format!("{field}.balances[{i}].balance_type"),
                "each type at most once",
            );
        }
    }
}

fn check_transaction(violations: &mut Violations, field: &str, tx: &ImportedTransaction, currency: Currency) {
    if tx.amount.currency != currency {
        violations.add(
            format!("{field}.amount.currency"),
            format!("must be the account's currency, {currency}"),
        );
    }
    if tx.status == TransactionStatus::Pending && tx.replaces_pending.is_some() {
        violations.add(
            format!("{field}.replaces_pending"),
            "only a booked transaction replaces a pending one",
        );
    }
    let personal = &tx.personal;
    check_text(
        violations,
        &format!("{field}.personal.description"),
        &personal.description,
        MAX_DESCRIPTION_CHARS,
        false,
    );
    if let Some(counterparty) = &personal.counterparty {
        if let Some(name) = &counterparty.name {
            check_text(
                violations,
                &format!("{field}.personal.counterparty.name"),
                name,
                MAX_NAME_CHARS,
                true,
            );
        }
        if let Some(identifier) = &counterparty.identifier {
            check_identifier(
                violations,
                &format!("{field}.personal.counterparty.identifier"),
                identifier,
            );
        }
    }
}

impl Context<'_> {
    /// An account of the caller's project whose connection is not deleted,
    /// with that connection (everything under a deleted connection is not
    /// found).
    fn live_aggregated_account(
        &self,
        id: AggregatedAccountId,
    ) -> Result<(&AggregatedAccount, &AggregationConnection), DomainError> {
        let not_found = || DomainError::not_found("aggregated account", id);
        let account = self
            .owned::<AggregatedAccount>(&StreamRef::AggregatedAccount(id))
            .ok_or_else(not_found)?;
        let connection = self
            .aggregation_connection(account.connection_id)
            .map_err(|_| not_found())?;
        Ok((account, connection))
    }

    fn must_be_updating(&self, connection: &AggregationConnection) -> Result<(), DomainError> {
        if connection.status == ConnectionStatus::Updating {
            Ok(())
        } else {
            Err(DomainError::refused(
                Refusal::ConnectionNotUpdating,
                format!(
                    "aggregation connection {} is {}: bank data is recorded only while UPDATING",
                    connection.id,
                    connection.status.name()
                ),
            ))
        }
    }

    /// The accounts the bank lists now, against those the connection knows.
    pub(crate) fn sync_aggregated_accounts<E>(
        &self,
        connection_id: AggregationConnectionId,
        import_id: Option<AggregationImportId>,
        found: &[FoundAccount],
    ) -> Result<Decided<E>, DomainError>
    where
        E: From<AggregatedAccountEvent> + From<AggregationConnectionEvent>,
    {
        let mut violations = Violations::new();
        if found.len() > MAX_ACCOUNTS_PER_CONNECTION {
            violations.add("accounts", format!("at most {MAX_ACCOUNTS_PER_CONNECTION}"));
        }
        for (i, account) in found.iter().enumerate() {
            let field = format!("accounts[{i}]");
            check_found(&mut violations, &field, account);
            if found[..i]
                .iter()
                .any(|other| other.personal.bank_account_id == account.personal.bank_account_id)
            {
                violations.add(
                    format!("{field}.personal.bank_account_id"),
                    "each account at most once",
                );
            }
            if found[..i].iter().any(|other| other.new_id == account.new_id) {
                violations.add(format!("{field}.new_id"), "each new ID at most once");
            }
        }
        violations.into_result()?;
        let connection = self.aggregation_connection(connection_id)?;
        if let Some(import) = import_id {
            self.running_aggregation_import(import, connection_id)?;
        }
        self.must_be_updating(connection)?;
        let known: Vec<&AggregatedAccount> = connection
            .accounts
            .iter()
            .filter_map(|id| self.owned::<AggregatedAccount>(&StreamRef::AggregatedAccount(*id)))
            .collect();
        let now = self.now();
        let mut events: Vec<(StreamRef, E)> = Vec::new();
        let mut added = Vec::new();
        for (i, f) in found.iter().enumerate() {
            let known_account = known
                .iter()
                .find(|a| a.personal.bank_account_id == f.personal.bank_account_id);
            let Some(account) = known_account else {
                let stream = StreamRef::AggregatedAccount(f.new_id);
                self.must_be_new(&stream, "aggregated account", f.new_id)?;
                let event =
                    AggregatedAccountEvent::AggregatedAccountDiscovered(AggregatedAccountDiscovered {
                        id: f.new_id,
                        project_id: self.project_id,
                        connection_id,
                        customer_id: connection.customer_id,
                        account_type: f.account_type,
                        currency: f.currency,
                        personal: f.personal.before_consent(),
                        discovered_at: now,
                    });
                events.push((stream, event.into()));
                added.push(f.new_id);
                continue;
            };
            if account.currency != f.currency {
                return Err(DomainError::invalid(
                    format!("accounts[{i}].currency"),
                    format!("the account's currency is {}", account.currency),
                ));
            }
            let stream = StreamRef::AggregatedAccount(account.id);
            if account.is_archived() {
                let event =
                    AggregatedAccountEvent::AggregatedAccountUnarchived(AggregatedAccountUnarchived {
                        unarchived_at: now,
                    });
                events.push((stream.clone(), event.into()));
            }
            let (personal, balances) = if account.is_disabled() {
                (f.personal.before_consent(), Vec::new())
            } else {
                (f.personal.clone(), f.balances.clone())
            };
            if personal != account.personal
                || balances != account.balances
                || f.account_type != account.account_type
            {
                let event = AggregatedAccountEvent::AggregatedAccountUpdated(AggregatedAccountUpdated {
                    account_type: f.account_type,
                    personal,
                    balances,
                    updated_at: now,
                });
                events.push((stream, event.into()));
            }
        }
        for account in &known {
            let still_there = found
                .iter()
                .any(|f| f.personal.bank_account_id == account.personal.bank_account_id);
            if !still_there && !account.is_archived() {
                let event = AggregatedAccountEvent::AggregatedAccountArchived(AggregatedAccountArchived {
                    archived_at: now,
                });
                events.push((StreamRef::AggregatedAccount(account.id), event.into()));
            }
        }
        if !added.is_empty() {
            if connection.accounts.len() + added.len() > MAX_ACCOUNTS_PER_CONNECTION {
                return Err(DomainError::invalid(
                    "accounts",
                    format!(
                        "a connection has at most {MAX_ACCOUNTS_PER_CONNECTION} accounts, archived ones included"
                    ),
                ));
            }
            let event = AggregationConnectionEvent::AggregationConnectionAccountsFound(
                AggregationConnectionAccountsFound {
                    account_ids: added,
                    found_at: now,
                },
            );
            events.push((StreamRef::AggregationConnection(connection_id), event.into()));
        }
        Ok((events, ResourceRef::AggregationConnection(connection_id)))
    }

    /// The end user consented to share the account: its details and
    /// transactions are recorded from the next sync on. Needs the
    /// connection's live consent; an archived account is refused.
    pub(crate) fn enable_aggregated_account<E: From<AggregatedAccountEvent>>(
        &self,
        id: AggregatedAccountId,
    ) -> Result<Decided<E>, DomainError> {
        let (account, connection) = self.live_aggregated_account(id)?;
        let resource = ResourceRef::AggregatedAccount(id);
        if account.is_archived() {
            return Err(DomainError::refused(
                Refusal::AggregatedAccountArchived,
                format!("aggregated account {id} is archived: the bank no longer lists it"),
            ));
        }
        if !account.is_disabled() {
            return Ok((Vec::new(), resource));
        }
        match connection.consent {
            None => {
                return Err(DomainError::refused(
                    Refusal::ConsentMissing,
                    format!("aggregation connection {} has no consent", connection.id),
                ));
            }
            Some(consent) if !consent.is_live(self.now()) => {
                return Err(DomainError::refused(
                    Refusal::ConsentExpired,
                    format!(
                        "the consent of aggregation connection {} has expired",
                        connection.id
                    ),
                ));
            }
            Some(_) => {}
        }
        let event = AggregatedAccountEvent::AggregatedAccountEnabled(AggregatedAccountEnabled {
            enabled_at: self.now(),
        });
        Ok((vec![(resource.stream(), event.into())], resource))
    }

    /// One sync page of an account's transactions: what the account has
    /// not recorded yet, in one event; transactions the bank no longer
    /// lists, marked removed. Nothing new: nothing written. Transactions
    /// booked more than 5 years ago are left out (banks give no more, and
    /// the account forgets older digests).
    pub(crate) fn record_aggregated_transactions<E: From<AggregatedAccountEvent>>(
        &self,
        account_id: AggregatedAccountId,
        import_id: Option<AggregationImportId>,
        transactions: &[ImportedTransaction],
        removed: &[BankId],
    ) -> Result<Decided<E>, DomainError> {
        if transactions.len() + removed.len() > MAX_TRANSACTIONS_PER_BATCH {
            return Err(DomainError::invalid(
                "transactions",
                format!("at most {MAX_TRANSACTIONS_PER_BATCH} transactions and removals in one batch"),
            ));
        }
        let text = batch_text_bytes(transactions, removed);
        if text > MAX_BATCH_TEXT_BYTES {
            return Err(DomainError::invalid(
                "transactions",
                format!(
                    "the batch carries {text} bytes of text; at most {MAX_BATCH_TEXT_BYTES} in one batch (split it)"
                ),
            ));
        }
        let (account, connection) = self.live_aggregated_account(account_id)?;
        let mut violations = Violations::new();
        for (i, tx) in transactions.iter().enumerate() {
            check_transaction(
                &mut violations,
                &format!("transactions[{i}]"),
                tx,
                account.currency,
            );
        }
        violations.into_result()?;
        if let Some(import) = import_id {
            self.running_aggregation_import(import, connection.id)?;
        }
        self.must_be_updating(connection)?;
        if account.is_disabled() {
            return Err(DomainError::refused(
                Refusal::AggregatedAccountDisabled,
                format!("aggregated account {account_id} is disabled until the end user consents"),
            ));
        }
        if account.is_archived() {
            return Err(DomainError::refused(
                Refusal::AggregatedAccountArchived,
                format!("aggregated account {account_id} is archived: the bank no longer lists it"),
            ));
        }
        let oldest = oldest_history_date(self.now())?;
        let seen = &account.transactions;
        // What this batch decided so far, by ID: its place in `new`.
        let mut in_batch: HashMap<AggregatedTransactionId, usize> = HashMap::new();
        let mut new: Vec<Option<AggregatedTransaction>> = Vec::new();
        for tx in transactions {
            if tx.booking_date < oldest {
                continue;
            }
            let id = transaction_id(account_id, &tx.bank_transaction_id);
            let booked = tx.status == TransactionStatus::Booked;
            let mut replaces = None;
            if let Some(&at) = in_batch.get(&id) {
                // Seen earlier in this batch: a booked version wins over a
                // pending one; anything else is a repeat.
                let was_pending = new
                    .get(at)
                    .and_then(Option::as_ref)
                    .is_some_and(|t| t.status == TransactionStatus::Pending);
                if !(booked && was_pending) {
                    continue;
                }
                if let Some(slot) = new.get_mut(at) {
                    replaces = slot.as_ref().and_then(|t| t.replaces);
                    *slot = None;
                }
            } else {
                match seen.lookup(id) {
                    Seen::Settled { .. } => continue,
                    Seen::Pending if !booked => continue,
                    Seen::Pending => replaces = Some(id),
                    Seen::New => {}
                }
            }
            if booked
                && replaces.is_none()
                && let Some(pending) = &tx.replaces_pending
            {
                let pending_id = transaction_id(account_id, pending);
                // The pending one recorded before, or earlier in this batch
                // (then it is recorded too, so it is known when shown again).
                let pending_in_batch = in_batch.get(&pending_id).is_some_and(|at| {
                    new.get(*at)
                        .and_then(Option::as_ref)
                        .is_some_and(|t| t.status == TransactionStatus::Pending)
                });
                if pending_in_batch || seen.lookup(pending_id) == Seen::Pending {
                    replaces = Some(pending_id);
                }
            }
            in_batch.insert(id, new.len());
            new.push(Some(AggregatedTransaction {
                id,
                bank_transaction_id: tx.bank_transaction_id.clone(),
                status: tx.status,
                booking_date: tx.booking_date,
                value_date: tx.value_date,
                amount: tx.amount,
                replaces,
                personal: tx.personal.clone(),
            }));
        }
        // Removals apply after the batch: a transaction shown and removed
        // in one delivery is recorded, then marked removed.
        let mut gone: Vec<AggregatedTransactionId> = Vec::new();
        for bank_id in removed {
            let id = transaction_id(account_id, bank_id);
            let recorded_now = in_batch
                .get(&id)
                .is_some_and(|at| new.get(*at).is_some_and(Option::is_some));
            let live =
                recorded_now || matches!(seen.lookup(id), Seen::Pending | Seen::Settled { live: true });
            if live && !gone.contains(&id) {
                gone.push(id);
            }
        }
        let new: Vec<AggregatedTransaction> = new.into_iter().flatten().collect();
        let stream = StreamRef::AggregatedAccount(account_id);
        let mut events: Vec<(StreamRef, E)> = Vec::new();
        if !new.is_empty() {
            let event =
                AggregatedAccountEvent::AggregatedTransactionsRecorded(AggregatedTransactionsRecorded {
                    import_id,
                    transactions: new,
                    recorded_at: self.now(),
                });
            events.push((stream.clone(), event.into()));
        }
        if !gone.is_empty() {
            let event =
                AggregatedAccountEvent::AggregatedTransactionsRemoved(AggregatedTransactionsRemoved {
                    import_id,
                    transaction_ids: gone,
                    removed_at: self.now(),
                });
            events.push((stream, event.into()));
        }
        Ok((events, ResourceRef::AggregatedAccount(account_id)))
    }
}

impl Context<'_> {
    /// What the account commands read once the account is loaded: its
    /// connection.
    pub(crate) fn dependent_streams_of_aggregated_account(&self, id: AggregatedAccountId) -> Vec<StreamRef> {
        self.state::<AggregatedAccount>(&StreamRef::AggregatedAccount(id))
            .map(|account| vec![StreamRef::AggregationConnection(account.connection_id)])
            .unwrap_or_default()
    }

    /// What a sync reads once the connection is loaded: its known accounts.
    pub(crate) fn dependent_streams_of_sync(&self, connection: AggregationConnectionId) -> Vec<StreamRef> {
        self.state::<AggregationConnection>(&StreamRef::AggregationConnection(connection))
            .map(|c| {
                c.accounts
                    .iter()
                    .map(|id| StreamRef::AggregatedAccount(*id))
                    .collect()
            })
            .unwrap_or_default()
    }
}
