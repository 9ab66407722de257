//! The JSON of the Berlin Group NextGenPSD2 XS2A interface (AIS), as the
//! server writes it and the client reads it, with the conversions from and
//! to the connector's own types. Field names are the Implementation
//! Guidelines' (v1.3.x); see the module docs of [`super`] for the few
//! places where the trait needs more than the standard carries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::Digest;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::model::{
    Account, AccountIdentifier, AccountType, Balance, BalanceType, Counterparty, Permission, Transaction,
    TransactionStatus,
};
use crate::types::{Amount, BankTransactionId, CountryCode, CurrencyCode};

/// A link of `_links`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Href {
    pub href: String,
}

pub type Links = BTreeMap<String, Href>;

/// `{"currency": "EUR", "amount": "-12.50"}`: signed, with the currency's
/// own number of decimals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireAmount {
    pub currency: String,
    pub amount: String,
}

/// The number of decimals of a currency's minor unit (ISO 4217); 2 unless
/// listed.
pub fn exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

impl From<Amount> for WireAmount {
    fn from(amount: Amount) -> Self {
        let exp = exponent(amount.currency.as_str());
        let sign = if amount.minor < 0 { "-" } else { "" };
        let abs = amount.minor.unsigned_abs();
        let text = if exp == 0 {
            format!("{sign}{abs}")
        } else {
            let unit = 10u64.pow(exp);
            format!(
                "{sign}{}.{:0width$}",
                abs / unit,
                abs % unit,
                width = exp as usize
            )
        };
        Self {
            currency: amount.currency.to_string(),
            amount: text,
        }
    }
}

impl WireAmount {
    /// The amount in minor units; `None` if it is no decimal number, has
    /// more decimals than the currency (other than trailing zeros) or does
    /// not fit.
    pub fn to_amount(&self) -> Option<Amount> {
        let currency: CurrencyCode = self.currency.parse().ok()?;
        let exp = exponent(currency.as_str()) as usize;
        let text = self.amount.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) || (digits.contains('.') && fraction.is_empty()) {
            return None;
        }
        let (kept, dropped) = fraction.split_at(fraction.len().min(exp));
        if dropped.bytes().any(|b| b != b'0') {
            return None;
        }
        let mut minor: i64 = 0;
        for b in whole.bytes().chain(kept.bytes()) {
            minor = minor.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
        }
        for _ in kept.len()..exp {
            minor = minor.checked_mul(10)?;
        }
        Some(Amount::new(if negative { -minor } else { minor }, currency))
    }
}

pub fn format_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_else(|_| date.to_string())
}

pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

pub fn format_time(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok()
}

/// An account reference (`iban`, `bban`, `maskedPan` or `other`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bban: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_pan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<OtherIdentification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherIdentification {
    pub identification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_name_proprietary: Option<String>,
}

impl AccountReference {
    pub fn of(identifier: &AccountIdentifier) -> Self {
        match identifier {
            AccountIdentifier::Iban(iban) => Self {
                iban: Some(iban.clone()),
                ..Self::default()
            },
            AccountIdentifier::Other {
                scheme,
                identification,
            } => Self {
                other: Some(OtherIdentification {
                    identification: identification.clone(),
                    scheme_name_proprietary: Some(scheme.clone()),
                }),
                ..Self::default()
            },
        }
    }

    pub fn identifier(&self) -> Option<AccountIdentifier> {
        if let Some(iban) = &self.iban {
            return Some(AccountIdentifier::Iban(iban.clone()));
        }
        if let Some(other) = &self.other {
            return Some(AccountIdentifier::Other {
                scheme: other.scheme_name_proprietary.clone().unwrap_or_default(),
                identification: other.identification.clone(),
            });
        }
        if let Some(bban) = &self.bban {
            return Some(AccountIdentifier::Other {
                scheme: "BBAN".into(),
                identification: bban.clone(),
            });
        }
        self.masked_pan.as_ref().map(|pan| AccountIdentifier::Other {
            scheme: "maskedPan".into(),
            identification: pan.clone(),
        })
    }
}

/// The `access` of a consent. The sandbox (and the client) use the
/// bank-offered form (empty lists: the PSU picks the accounts at the bank)
/// or `allPsd2`; consents naming accounts are refused by the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<AccountReference>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<Vec<AccountReference>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<Vec<AccountReference>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_information: Option<AdditionalInformationAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_accounts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_accounts_with_balance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_psd2: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalInformationAccess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<Vec<AccountReference>>,
}

pub const ALL_ACCOUNTS: &str = "allAccounts";
pub const ALL_ACCOUNTS_WITH_OWNER_NAME: &str = "allAccountsWithOwnerName";

impl Access {
    /// The access that asks for a scope: `allPsd2` when it covers
    /// everything PSD2 offers (accounts, balances, transactions, and the
    /// cards, which BG addresses only this way or by naming them), the
    /// bank-offered lists otherwise.
    pub fn of(scope: &BTreeSet<Permission>) -> Self {
        let everything = [
            Permission::Accounts,
            Permission::Balances,
            Permission::Transactions,
            Permission::CreditCards,
        ]
        .iter()
        .all(|p| scope.contains(p));
        if everything {
            let all = if scope.contains(&Permission::Owners) {
                ALL_ACCOUNTS_WITH_OWNER_NAME
            } else {
                ALL_ACCOUNTS
            };
            return Self {
                all_psd2: Some(all.into()),
                ..Self::default()
            };
        }
        let listed = |p: Permission| scope.contains(&p).then(Vec::new);
        Self {
            accounts: Some(Vec::new()),
            balances: listed(Permission::Balances),
            transactions: listed(Permission::Transactions),
            additional_information: scope.contains(&Permission::Owners).then(|| {
                AdditionalInformationAccess {
                    owner_name: Some(Vec::new()),
                }
            }),
            ..Self::default()
        }
    }

    /// The scope an access covers; `Err` with the reason when it names
    /// accounts or uses a value this side does not know.
    pub fn scope(&self) -> Result<BTreeSet<Permission>, String> {
        let mut scope = BTreeSet::new();
        let named = [&self.accounts, &self.balances, &self.transactions]
            .into_iter()
            .chain(self.additional_information.as_ref().map(|a| &a.owner_name))
            .any(|list| list.as_ref().is_some_and(|l| !l.is_empty()));
        if named {
            return Err(
                "consents naming accounts are not offered: ask for the bank-offered lists or allPsd2".into(),
            );
        }
        match self.all_psd2.as_deref() {
            None => {}
            Some(all) if all == ALL_ACCOUNTS || all == ALL_ACCOUNTS_WITH_OWNER_NAME => {
                scope.extend([
                    Permission::Accounts,
                    Permission::Balances,
                    Permission::Transactions,
                    Permission::CreditCards,
                ]);
                if all == ALL_ACCOUNTS_WITH_OWNER_NAME {
                    scope.insert(Permission::Owners);
                }
            }
            Some(other) => return Err(format!("allPsd2 {other:?} is not known")),
        }
        for (value, balances) in [
            (&self.available_accounts, false),
            (&self.available_accounts_with_balance, true),
        ] {
            match value.as_deref() {
                None => {}
                Some(all) if all == ALL_ACCOUNTS || all == ALL_ACCOUNTS_WITH_OWNER_NAME => {
                    scope.insert(Permission::Accounts);
                    if balances {
                        scope.insert(Permission::Balances);
                    }
                    if all == ALL_ACCOUNTS_WITH_OWNER_NAME {
                        scope.insert(Permission::Owners);
                    }
                }
                Some(other) => return Err(format!("availableAccounts {other:?} is not known")),
            }
        }
        if self.accounts.is_some() {
            scope.insert(Permission::Accounts);
        }
        if self.balances.is_some() {
            scope.extend([Permission::Accounts, Permission::Balances]);
        }
        if self.transactions.is_some() {
            scope.extend([Permission::Accounts, Permission::Transactions]);
        }
        if self
            .additional_information
            .as_ref()
            .is_some_and(|a| a.owner_name.is_some())
        {
            scope.extend([Permission::Accounts, Permission::Owners]);
        }
        Ok(scope)
    }
}

/// `POST /v1/consents`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRequestBody {
    pub access: Access,
    pub recurring_indicator: bool,
    pub valid_until: String,
    pub frequency_per_day: u32,
    #[serde(default)]
    pub combined_service_indicator: bool,
}

/// The answer to `POST /v1/consents`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentCreated {
    pub consent_status: String,
    pub consent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psu_message: Option<String>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// `GET /v1/consents/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentInformation {
    pub access: Access,
    pub recurring_indicator: bool,
    pub valid_until: String,
    pub frequency_per_day: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_date: Option<String>,
    pub consent_status: String,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// `GET /v1/consents/{id}/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentStatusResponse {
    pub consent_status: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PsuData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `POST /v1/consents/{id}/authorisations` (the body may be empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartAuthorisation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psu_data: Option<PsuData>,
}

/// `PUT /v1/consents/{id}/authorisations/{authorisationId}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAuthorisation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sca_authentication_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psu_data: Option<PsuData>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaMethod {
    pub authentication_type: String,
    pub authentication_method_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_max_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_information: Option<String>,
}

/// The answer to starting, updating or reading an authorisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorisationResponse {
    pub sca_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorisation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_sca_method: Option<ScaMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_data: Option<ChallengeData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psu_message: Option<String>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireBalance {
    pub balance_amount: WireAmount,
    pub balance_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_date: Option<String>,
}

impl From<&Balance> for WireBalance {
    fn from(balance: &Balance) -> Self {
        Self {
            balance_amount: balance.amount.into(),
            balance_type: match balance.kind {
                BalanceType::ClosingBooked => "closingBooked",
                BalanceType::Expected => "expected",
                BalanceType::InterimAvailable => "interimAvailable",
            }
            .into(),
            reference_date: Some(format_date(balance.reference_date)),
        }
    }
}

impl WireBalance {
    /// `None` for balance types the trait has no name for (they are left
    /// out) or a malformed amount or date (a protocol error).
    pub fn to_balance(&self, fallback_date: Date) -> Result<Option<Balance>, String> {
        let kind = match self.balance_type.as_str() {
            "closingBooked" => BalanceType::ClosingBooked,
            "expected" => BalanceType::Expected,
            "interimAvailable" => BalanceType::InterimAvailable,
            _ => return Ok(None),
        };
        let amount = self
            .balance_amount
            .to_amount()
            .ok_or_else(|| format!("balance amount {:?}", self.balance_amount))?;
        let reference_date = match &self.reference_date {
            None => fallback_date,
            Some(text) => parse_date(text).ok_or_else(|| format!("referenceDate {text:?}"))?,
        };
        Ok(Some(Balance {
            kind,
            amount,
            reference_date,
        }))
    }
}

/// An owner in `ownerNames` (v1.3.x): the holder is listed first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerName {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// An account of `GET /v1/accounts` (and `/v1/accounts/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDetails {
    pub resource_id: String,
    #[serde(flatten)]
    pub reference: AccountReference,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cash_account_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_names: Option<Vec<OwnerName>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_limit: Option<WireAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<Vec<WireBalance>>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

/// The product names the sandbox gives each kind of account (ISO 20022
/// cash account types have none for "an account in another currency").
pub fn product_of(kind: AccountType) -> (&'static str, &'static str) {
    match kind {
        AccountType::Current => ("Current account", "CACC"),
        AccountType::Savings => ("Savings account", "SVGS"),
        AccountType::ForeignCurrency => ("Foreign currency account", "CACC"),
        AccountType::Loan => ("Loan", "LOAN"),
    }
}

pub fn kind_of(product: Option<&str>, cash_account_type: Option<&str>) -> AccountType {
    match (product, cash_account_type) {
        (Some("Foreign currency account"), _) => AccountType::ForeignCurrency,
        (_, Some("SVGS")) => AccountType::Savings,
        (_, Some("LOAN")) => AccountType::Loan,
        _ => AccountType::Current,
    }
}

impl AccountDetails {
    /// The wire form of an account; `owner_names` are the names of its
    /// owners in the order of `account.owners` (holder first), when the
    /// consent covers owners.
    pub fn of(account: &Account, with_balance: bool, owner_names: Option<Vec<String>>, links: Links) -> Self {
        let (product, cash_account_type) = product_of(account.kind);
        Self {
            resource_id: account.id.to_string(),
            reference: AccountReference::of(&account.identifier),
            currency: account.currency.to_string(),
            name: Some(account.name.clone()),
            product: Some(product.into()),
            cash_account_type: Some(cash_account_type.into()),
            owner_name: owner_names.as_ref().map(|names| names.join(", ")),
            owner_names: owner_names.map(|names| {
                names
                    .into_iter()
                    .map(|name| OwnerName {
                        name,
                        role: Some("owner".into()),
                    })
                    .collect()
            }),
            credit_limit: None,
            balances: with_balance.then(|| account.balances.iter().map(WireBalance::from).collect()),
            links,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountList {
    pub accounts: Vec<AccountDetails>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardAccountList {
    pub card_accounts: Vec<AccountDetails>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDetailsResponse {
    #[serde(alias = "cardAccount")]
    pub account: AccountDetails,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalancesResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountReference>,
    pub balances: Vec<WireBalance>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub country: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeRate {
    pub source_currency: String,
    pub exchange_rate: String,
    pub unit_currency: String,
    pub target_currency: String,
    pub quotation_date: String,
}

/// A transaction, of an account (`transactionId`, `valueDate`,
/// `remittanceInformationUnstructured`) or of a card account
/// (`cardTransactionId`, `transactionDate`, `transactionDetails`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireTransaction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_amount: Option<WireAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_amount: Option<WireAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_exchange: Option<Vec<ExchangeRate>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creditor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creditor_account: Option<AccountReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debtor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debtor_account: Option<AccountReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remittance_information_unstructured: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_category_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_acceptor_address: Option<Address>,
}

impl WireTransaction {
    pub fn of(t: &Transaction, card: bool) -> Self {
        let (id, date) = (Some(t.id.to_string()), Some(format_date(t.value_date)));
        let (name, account) = match &t.counterparty {
            None => (None, None),
            Some(c) => (
                Some(c.name.clone()),
                c.iban.as_ref().map(|iban| AccountReference {
                    iban: Some(iban.clone()),
                    ..AccountReference::default()
                }),
            ),
        };
        let outgoing = t.amount.minor < 0;
        let mut wire = Self {
            booking_date: t.booking_date.map(format_date),
            transaction_amount: Some(t.amount.into()),
            original_amount: t.original_amount.map(WireAmount::from),
            merchant_category_code: t.merchant_category_code.map(|mcc| format!("{mcc:04}")),
            card_acceptor_address: t.country.map(|c| Address {
                country: c.to_string(),
            }),
            ..Self::default()
        };
        if outgoing {
            (wire.creditor_name, wire.creditor_account) = (name, account);
        } else {
            (wire.debtor_name, wire.debtor_account) = (name, account);
        }
        if card {
            (wire.card_transaction_id, wire.transaction_date) = (id, date);
            wire.transaction_details = Some(t.description.clone());
        } else {
            (wire.transaction_id, wire.value_date) = (id, date);
            wire.remittance_information_unstructured = Some(t.description.clone());
            wire.currency_exchange = t.original_amount.and_then(|original| {
                // The rate of one unit of the original currency in the
                // account's, as the amounts give it (six decimals).
                let from = original.minor.unsigned_abs();
                let to = t.amount.minor.unsigned_abs();
                let scale = 10f64.powi(exponent(original.currency.as_str()) as i32)
                    / 10f64.powi(exponent(t.amount.currency.as_str()) as i32);
                (from != 0).then(|| {
                    vec![ExchangeRate {
                        source_currency: original.currency.to_string(),
                        exchange_rate: format!("{:.6}", to as f64 / from as f64 * scale),
                        unit_currency: original.currency.to_string(),
                        target_currency: t.amount.currency.to_string(),
                        quotation_date: format_date(t.value_date),
                    }]
                })
            });
        }
        wire
    }

    /// The transaction as the trait has it. The ID is `transactionId`
    /// (`cardTransactionId`), else `entryReference` (both are optional in
    /// the standard), else a digest of the transaction's content: stable
    /// while it does not change (a pending one booked later gets another).
    pub fn to_transaction(&self, status: TransactionStatus) -> Result<Transaction, String> {
        let id = match self
            .transaction_id
            .as_ref()
            .or(self.card_transaction_id.as_ref())
            .or(self.entry_reference.as_ref())
        {
            Some(id) => id.clone(),
            None => {
                let content = serde_json::to_vec(self).map_err(|e| e.to_string())?;
                let digest = sha2::Sha256::digest(&content);
                let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
                format!("bg-tx-{hex}")
            }
        };
        let id = &id;
        let date = |text: &Option<String>, what: &str| -> Result<Option<Date>, String> {
            text.as_deref()
                .map(|t| parse_date(t).ok_or_else(|| format!("{what} {t:?}")))
                .transpose()
        };
        let booking_date = date(&self.booking_date, "bookingDate")?;
        let value_date = date(&self.value_date, "valueDate")?
            .or(date(&self.transaction_date, "transactionDate")?)
            .or(booking_date)
            .ok_or_else(|| format!("transaction {id} has no date"))?;
        let amount = self
            .transaction_amount
            .as_ref()
            .ok_or_else(|| format!("transaction {id} has no transactionAmount"))?;
        let amount = amount
            .to_amount()
            .ok_or_else(|| format!("transaction {id}: amount {amount:?}"))?;
        let original_amount = self
            .original_amount
            .as_ref()
            .map(|a| {
                a.to_amount()
                    .ok_or_else(|| format!("transaction {id}: originalAmount {a:?}"))
            })
            .transpose()?;
        let (name, account) = if self.creditor_name.is_some() || self.creditor_account.is_some() {
            (&self.creditor_name, &self.creditor_account)
        } else {
            (&self.debtor_name, &self.debtor_account)
        };
        let counterparty = (name.is_some() || account.is_some()).then(|| Counterparty {
            name: name.clone().unwrap_or_default(),
            iban: account.as_ref().and_then(|a| a.iban.clone()),
        });
        let merchant_category_code = match &self.merchant_category_code {
            None => None,
            Some(mcc) => Some(
                mcc.parse::<u16>()
                    .map_err(|_| format!("transaction {id}: merchantCategoryCode {mcc:?}"))?,
            ),
        };
        let country = match &self.card_acceptor_address {
            None => None,
            Some(address) => Some(
                address
                    .country
                    .parse::<CountryCode>()
                    .map_err(|_| format!("transaction {id}: country {:?}", address.country))?,
            ),
        };
        Ok(Transaction {
            id: BankTransactionId::new(id.clone()),
            status,
            booking_date: match status {
                TransactionStatus::Booked => booking_date,
                TransactionStatus::Pending => None,
            },
            value_date,
            amount,
            original_amount,
            counterparty,
            description: self
                .remittance_information_unstructured
                .clone()
                .or_else(|| self.transaction_details.clone())
                .unwrap_or_default(),
            merchant_category_code,
            country,
        })
    }
}

/// `transactions` (or `cardTransactions`) of a transactions answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booked: Option<Vec<WireTransaction>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Vec<WireTransaction>>,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionsResponse {
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "cardAccount")]
    pub account: Option<AccountReference>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "cardTransactions")]
    pub transactions: Option<AccountReport>,
}

/// A message of `tppMessages`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TppMessage {
    pub category: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// An error answer: `{"tppMessages": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub tpp_messages: Vec<TppMessage>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn amount(minor: i64, currency: &'static str) -> Amount {
        Amount::new(minor, CurrencyCode::from_static(currency))
    }

    #[test]
    fn amounts_round_trip_with_the_currencys_decimals() {
        for (a, text) in [
            (amount(-1250, "EUR"), "-12.50"),
            (amount(5, "EUR"), "0.05"),
            (amount(0, "EUR"), "0.00"),
            (amount(1234, "JPY"), "1234"),
            (amount(-1, "KWD"), "-0.001"),
            (amount(i64::MIN + 1, "USD"), "-92233720368547758.07"),
        ] {
            let wire = WireAmount::from(a);
            assert_eq!(wire.amount, text);
            assert_eq!(wire.to_amount(), Some(a));
        }
        let parse = |text: &str| {
            WireAmount {
                currency: "EUR".into(),
                amount: text.into(),
            }
            .to_amount()
        };
        assert_eq!(parse("12"), Some(amount(1200, "EUR")));
        assert_eq!(parse("12.5"), Some(amount(1250, "EUR")));
        assert_eq!(parse("12.500"), Some(amount(1250, "EUR")));
        for bad in [
            "",
            "-",
            "12.",
            ".5",
            "1.234",
            "1e3",
            "12,50",
            "99999999999999999999",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn transactions_without_an_id_get_a_stable_one() {
        let wire = WireTransaction {
            booking_date: Some("2026-12-01".into()),
            transaction_amount: Some(WireAmount {
                currency: "EUR".into(),
                amount: "-3.20".into(),
            }),
            remittance_information_unstructured: Some("Coffee".into()),
            ..WireTransaction::default()
        };
        let a = wire.to_transaction(TransactionStatus::Booked).unwrap();
        assert!(a.id.as_str().starts_with("bg-tx-"), "{}", a.id);
        assert_eq!(a.id, wire.to_transaction(TransactionStatus::Booked).unwrap().id);
        assert_eq!(a.value_date, time::macros::date!(2026 - 12 - 01));
        let referenced = WireTransaction {
            entry_reference: Some("E1".into()),
            ..wire
        };
        assert_eq!(
            referenced
                .to_transaction(TransactionStatus::Booked)
                .unwrap()
                .id
                .as_str(),
            "E1"
        );
    }

    #[test]
    fn access_and_scope() {
        let all: BTreeSet<_> = Permission::ALL.into_iter().collect();
        assert_eq!(
            Access::of(&all).all_psd2.as_deref(),
            Some(ALL_ACCOUNTS_WITH_OWNER_NAME)
        );
        assert_eq!(Access::of(&all).scope().unwrap(), all);
        let narrow: BTreeSet<_> = [Permission::Accounts, Permission::Transactions].into();
        assert_eq!(Access::of(&narrow).scope().unwrap(), narrow);
        let named = Access {
            accounts: Some(vec![AccountReference {
                iban: Some("DE89370400440532013000".into()),
                ..AccountReference::default()
            }]),
            ..Access::default()
        };
        assert!(named.scope().is_err());
    }
}
