//! The connector's types into the domain's. Banks send text the domain
//! bounds (names, descriptions): it is trimmed to the domain's limits here,
//! so one long description never refuses a whole page. A transaction or
//! account the domain cannot name (a bank ID too long) is left out, with
//! a warning that names no personal data.

use std::collections::BTreeSet;

use paycore_bank_connector as bank;
use paycore_domain::aggregated_account::{
    AccountIdentifier, AccountOwner, AccountPersonal, AggregatedAccountType, Balance, BalanceType, BankId,
    Counterparty, FoundAccount, ImportedTransaction, MAX_BALANCES, MAX_BATCH_TEXT_BYTES,
    MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_OWNERS, MAX_TRANSACTIONS_PER_BATCH, OwnerRole,
    TransactionPersonal, TransactionStatus,
};
use paycore_domain::kernel::iban::Iban;
use paycore_domain::{AggregatedAccountId, Currency, Money};
use serde::{Deserialize, Serialize};

use crate::clock::to_domain_date;

/// Where an account found at the bank is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BankAccountRef {
    Account(bank::AccountId),
    Card(bank::CardId),
}

/// Text without control characters, at most `max` characters.
fn bounded(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn name_or(text: &str, fallback: &str) -> String {
    let name = bounded(text, MAX_NAME_CHARS);
    if name.is_empty() {
        fallback.to_owned()
    } else {
        name
    }
}

fn currency(code: bank::CurrencyCode) -> Option<Currency> {
    code.as_str().parse().ok()
}

fn money(amount: bank::Amount) -> Option<Money> {
    Some(Money::new(amount.minor, currency(amount.currency)?))
}

fn identifier(identifier: &bank::AccountIdentifier) -> Option<AccountIdentifier> {
    match identifier {
        bank::AccountIdentifier::Iban(text) => match Iban::parse(text) {
            Ok(iban) => Some(AccountIdentifier::Iban(iban)),
            Err(_) => other_identifier("IBAN", text),
        },
        bank::AccountIdentifier::Other {
            scheme,
            identification,
        } => other_identifier(scheme, identification),
    }
}

fn other_identifier(scheme: &str, value: &str) -> Option<AccountIdentifier> {
    // The domain's bounds on schemes (35) and values (64); beyond them the
    // identifier is left out rather than cut into a wrong one.
    let scheme = bounded(scheme, 35);
    let value = value.trim();
    (!scheme.is_empty()
        && !value.is_empty()
        && value.chars().count() <= 64
        && !value.chars().any(char::is_control))
    .then(|| AccountIdentifier::Other {
        scheme,
        value: value.to_owned(),
    })
}

fn balances(found: &[bank::Balance], currency: Currency) -> Vec<Balance> {
    let mut out: Vec<Balance> = Vec::new();
    for balance in found {
        let balance_type = match balance.kind {
            bank::BalanceType::ClosingBooked => BalanceType::ClosingBooked,
            bank::BalanceType::Expected => BalanceType::Expected,
            bank::BalanceType::InterimAvailable => BalanceType::InterimAvailable,
        };
        let (Some(amount), Some(date)) = (money(balance.amount), to_domain_date(balance.reference_date))
        else {
            continue;
        };
        // The domain takes each type once, in the account's currency.
        if amount.currency == currency && !out.iter().any(|b| b.balance_type == balance_type) {
            out.push(Balance {
                balance_type,
                amount,
                date,
            });
        }
    }
    out.truncate(MAX_BALANCES);
    out
}

/// The owners of an account by the bank's owner list (`None`: not asked
/// for, or not covered by the consent).
fn owners(found: &[bank::AccountOwner], known: &[bank::Owner]) -> Vec<AccountOwner> {
    found
        .iter()
        .filter_map(|owner| {
            let person = known.iter().find(|o| o.id == owner.owner)?;
            let name = bounded(&person.name, MAX_NAME_CHARS);
            (!name.is_empty()).then_some(AccountOwner {
                name,
                role: match owner.role {
                    bank::OwnerRole::Holder => OwnerRole::Owner,
                    bank::OwnerRole::CoHolder => OwnerRole::CoOwner,
                },
            })
        })
        .take(MAX_OWNERS)
        .collect()
}

fn account_type(kind: bank::AccountType) -> AggregatedAccountType {
    match kind {
        bank::AccountType::Current | bank::AccountType::ForeignCurrency => AggregatedAccountType::Current,
        bank::AccountType::Savings => AggregatedAccountType::Savings,
        bank::AccountType::Loan => AggregatedAccountType::Loan,
    }
}

/// An account the bank lists, with a fresh ID in case it is new.
/// `owners`: the bank's owners, or `None` to keep `kept_owners`.
pub(crate) fn found_account(
    account: &bank::Account,
    new_id: AggregatedAccountId,
    owners_known: Option<&[bank::Owner]>,
    kept_owners: &[AccountOwner],
) -> Option<(FoundAccount, BankAccountRef)> {
    let bank_account_id = BankId::parse(account.id.as_str()).ok()?;
    let currency = currency(account.currency)?;
    let owners = owners_known.map_or_else(|| kept_owners.to_vec(), |known| owners(&account.owners, known));
    let found = FoundAccount {
        new_id,
        account_type: account_type(account.kind),
        currency,
        personal: AccountPersonal {
            bank_account_id,
            name: name_or(&account.name, "Account"),
            identifier: identifier(&account.identifier),
            owners,
        },
        balances: balances(&account.balances, currency),
    };
    Some((found, BankAccountRef::Account(account.id.clone())))
}

/// A credit card, as an account of type credit card; its limit is a
/// balance of type credit limit.
pub(crate) fn found_card(
    card: &bank::CreditCard,
    new_id: AggregatedAccountId,
    owners_known: Option<&[bank::Owner]>,
    kept_owners: &[AccountOwner],
) -> Option<(FoundAccount, BankAccountRef)> {
    let bank_account_id = BankId::parse(card.id.as_str()).ok()?;
    let currency = currency(card.currency)?;
    let owners = owners_known.map_or_else(|| kept_owners.to_vec(), |known| owners(&card.owners, known));
    let mut balances = balances(&card.balances, currency);
    if let (Some(limit), Some(date)) = (money(card.credit_limit), balances.first().map(|b| b.date))
        && limit.currency == currency
        && balances.len() < MAX_BALANCES
    {
        balances.push(Balance {
            balance_type: BalanceType::CreditLimit,
            amount: limit,
            date,
        });
    }
    let found = FoundAccount {
        new_id,
        account_type: AggregatedAccountType::CreditCard,
        currency,
        personal: AccountPersonal {
            bank_account_id,
            name: name_or(&card.name, "Credit card"),
            identifier: other_identifier("MASKED_PAN", &card.masked_number),
            owners,
        },
        balances,
    };
    Some((found, BankAccountRef::Card(card.id.clone())))
}

/// One transaction as the domain takes it; `None` for one it cannot name.
pub(crate) fn transaction(tx: &bank::Transaction) -> Option<ImportedTransaction> {
    let bank_transaction_id = BankId::parse(tx.id.as_str()).ok()?;
    let value_date = to_domain_date(tx.value_date)?;
    let (status, booking_date) = match tx.status {
        // A pending transaction has no booking date yet: its value date
        // places it.
        bank::TransactionStatus::Pending => (TransactionStatus::Pending, value_date),
        bank::TransactionStatus::Booked => (
            TransactionStatus::Booked,
            tx.booking_date.and_then(to_domain_date).unwrap_or(value_date),
        ),
    };
    let counterparty = tx.counterparty.as_ref().and_then(|c| {
        let name = Some(bounded(&c.name, MAX_NAME_CHARS)).filter(|n| !n.is_empty());
        let iban = c
            .iban
            .as_deref()
            .and_then(|iban| identifier(&bank::AccountIdentifier::Iban(iban.to_owned())));
        (name.is_some() || iban.is_some()).then_some(Counterparty {
            name,
            identifier: iban,
        })
    });
    Some(ImportedTransaction {
        bank_transaction_id,
        status,
        booking_date,
        value_date: Some(value_date),
        amount: money(tx.amount)?,
        // The connector keeps the bank's ID from pending to booked: the
        // domain replaces the pending one by ID.
        replaces_pending: None,
        personal: TransactionPersonal {
            counterparty,
            description: bounded(&tx.description, MAX_DESCRIPTION_CHARS),
        },
    })
}

/// The text a transaction adds to a batch, counted as the domain counts it.
fn text_bytes(tx: &ImportedTransaction) -> usize {
    let identifier = |identifier: &AccountIdentifier| match identifier {
        AccountIdentifier::Iban(iban) => iban.to_string().len(),
        AccountIdentifier::Other { scheme, value } => scheme.len() + value.len(),
    };
    let counterparty = tx.personal.counterparty.as_ref().map_or(0, |c| {
        c.name.as_ref().map_or(0, String::len) + c.identifier.as_ref().map_or(0, identifier)
    });
    tx.bank_transaction_id.as_str().len()
        + tx.replaces_pending.as_ref().map_or(0, |id| id.as_str().len())
        + tx.personal.description.len()
        + counterparty
}

/// A page cut into batches the domain takes: at most
/// `MAX_TRANSACTIONS_PER_BATCH` transactions and `MAX_BATCH_TEXT_BYTES`
/// of text each.
pub(crate) fn batches(transactions: Vec<ImportedTransaction>) -> Vec<Vec<ImportedTransaction>> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for tx in transactions {
        let size = text_bytes(&tx);
        if !batch.is_empty()
            && (batch.len() == MAX_TRANSACTIONS_PER_BATCH || bytes + size > MAX_BATCH_TEXT_BYTES)
        {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += size;
        batch.push(tx);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// The connector's consent as kept sealed between imports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredConsent {
    id: String,
    institution: String,
    granted_at: i128,
    valid_until: i32,
    pub frequency_per_day: u32,
    recurring: bool,
    max_history_days: u32,
    scope: Vec<String>,
}

impl StoredConsent {
    pub(crate) fn from_bank(consent: &bank::Consent) -> Self {
        Self {
            id: consent.id.clone(),
            institution: consent.institution.as_str().to_owned(),
            granted_at: consent.granted_at.unix_timestamp_nanos(),
            valid_until: consent.valid_until.to_julian_day(),
            frequency_per_day: consent.frequency_per_day,
            recurring: consent.recurring,
            max_history_days: consent.max_history_days,
            scope: consent.scope.iter().map(ToString::to_string).collect(),
        }
    }

    /// `None` if what was kept no longer reads (a format this build does
    /// not know).
    pub(crate) fn to_bank(&self) -> Option<bank::Consent> {
        let scope: BTreeSet<bank::Permission> = self
            .scope
            .iter()
            .filter_map(|name| bank::Permission::ALL.into_iter().find(|p| p.to_string() == *name))
            .collect();
        Some(bank::Consent {
            id: self.id.clone(),
            institution: bank::InstitutionId::new(self.institution.clone()),
            granted_at: time::OffsetDateTime::from_unix_timestamp_nanos(self.granted_at).ok()?,
            valid_until: time::Date::from_julian_day(self.valid_until).ok()?,
            frequency_per_day: self.frequency_per_day,
            recurring: self.recurring,
            max_history_days: self.max_history_days,
            scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(id: &str, description: &str) -> ImportedTransaction {
        ImportedTransaction {
            bank_transaction_id: BankId::parse(id).unwrap_or_else(|_| unreachable!()),
            status: TransactionStatus::Booked,
            booking_date: paycore_domain::kernel::date::Date::new(2026, 1, 1)
                .unwrap_or_else(|| unreachable!()),
            value_date: None,
            amount: Money::new(-100, Currency::EUR),
            replaces_pending: None,
            personal: TransactionPersonal {
                counterparty: None,
                description: description.to_owned(),
            },
        }
    }

    #[test]
    fn a_page_is_cut_by_count_and_by_text() {
        let many: Vec<_> = (0..2_500).map(|i| tx(&format!("t{i}"), "coffee")).collect();
        let sizes: Vec<usize> = batches(many).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1_000, 1_000, 500]);
        // 900 descriptions of 1,000 bytes are 900 KB: two batches under 512 KiB.
        let long = "x".repeat(1_000);
        let heavy: Vec<_> = (0..900).map(|i| tx(&format!("t{i}"), &long)).collect();
        let cut = batches(heavy);
        assert_eq!(cut.len(), 2);
        for batch in &cut {
            assert!(batch.iter().map(text_bytes).sum::<usize>() <= MAX_BATCH_TEXT_BYTES);
        }
        assert_eq!(cut.iter().map(Vec::len).sum::<usize>(), 900);
    }

    #[test]
    fn bank_text_is_bounded_to_what_the_domain_takes() {
        let text = format!("a\u{7}b{}", "c".repeat(2_000));
        let cut = bounded(&text, MAX_DESCRIPTION_CHARS);
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(cut.starts_with("a b"));
    }
}
