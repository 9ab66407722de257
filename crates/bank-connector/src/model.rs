//! What a connector exchanges with the server: its own types, not the
//! domain's (the server converts), so that a bank protocol can change
//! without touching the event log's types.

use std::collections::BTreeSet;
use std::fmt;

use time::{Date, OffsetDateTime};

use crate::types::{
    AccountId, Amount, BankTransactionId, CardId, CountryCode, CurrencyCode, Cursor, InstitutionId, OwnerId,
};

/// Where a connector reads an institution's data from. A connection may
/// have several; `Institution::sources` lists them in the order to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The bank's PSD2 (Berlin Group NextGenPSD2 or similar) AIS API.
    Psd2,
    /// The bank's web interface, signed in with the user's credentials.
    Web,
}

/// A bank the connector reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Institution {
    pub id: InstitutionId,
    pub name: String,
    pub country: CountryCode,
    /// Sources in priority order (the first is preferred).
    pub sources: Vec<Source>,
    /// How many syncs a day the bank allows per consent (Berlin Group
    /// `frequencyPerDay` upper bound; GoCardless-style limits are 4).
    pub max_refreshes_per_day: u32,
    /// The longest consent the bank grants, in days (PSD2: 180).
    pub max_consent_days: u32,
    /// How far back transactions can be read, in days (5 years: 1,826).
    pub max_history_days: u32,
    /// Whether the bank exposes credit cards (Kontomatik: PL and ES only).
    pub credit_cards: bool,
}

/// A username and password. The password never shows in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The start of a sign-in: who, where, and the consent the user will be
/// asked for. The consent comes first because under PSD2 signing in *is*
/// authorising a consent: a Berlin Group client creates it here
/// (`POST /v1/consents`) and the sign-in's SCA steps authorise it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInRequest {
    pub institution: InstitutionId,
    /// The user's credentials at the bank (a redirect-only bank needs just
    /// the username, Berlin Group `PSU-ID`, or nothing).
    pub credentials: Credentials,
    pub consent: ConsentRequest,
    /// Where the bank sends the user back after a redirect (web
    /// authentication, Berlin Group `TPP-Redirect-URI`).
    pub redirect_uri: String,
    pub now: OffsetDateTime,
}

/// A signed-in session at a bank: what a consent is granted under. Opaque
/// to the server, which may keep `token` (it is no secret of the user's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub token: String,
    pub institution: InstitutionId,
    pub expires_at: OffsetDateTime,
}

/// A step of a sign-in still waiting for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Handed back with the code or the poll.
    pub token: String,
    /// What to show the user ("Enter the code sent to •••• 42").
    pub prompt: String,
    pub expires_at: OffsetDateTime,
}

/// How a sign-in step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInOutcome {
    /// Signed in: grant a consent under the session.
    Connected { session: Session },
    /// The bank sent a one-time code: `submit_one_time_code`.
    OneTimeCodeRequired { challenge: Challenge },
    /// Web authentication: send the user to `url`; the bank sends them back
    /// to the request's `redirect_uri` with `state`: `complete_redirect`.
    RedirectRequired { url: String, state: String },
    /// Strong customer authentication in the bank's app (decoupled): the
    /// user approves there, the caller polls with `poll_sca`.
    ScaRequired { challenge: Challenge },
    /// Wrong username or password.
    InvalidCredentials,
    /// A wrong one-time code, a refused redirect or a refused approval.
    AuthenticationFailed { reason: String },
    /// The bank cannot be reached or answers with errors; try later.
    BankDown { retry_after: Option<OffsetDateTime> },
    /// Too many attempts; try again at `retry_after`.
    RateLimited { retry_after: OffsetDateTime },
}

/// What the bank sends the user back with after a redirect (the query of
/// the callback URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectCallback {
    pub state: String,
    /// OAuth-style authorisation code, if the bank sends one.
    pub code: Option<String>,
    /// `access_denied` and the like, if the user refused.
    pub error: Option<String>,
}

/// What a consent lets the holder read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// The list of accounts (always needed).
    Accounts,
    Balances,
    Transactions,
    Owners,
    CreditCards,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::Accounts,
        Permission::Balances,
        Permission::Transactions,
        Permission::Owners,
        Permission::CreditCards,
    ];
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::Accounts => "accounts",
            Permission::Balances => "balances",
            Permission::Transactions => "transactions",
            Permission::Owners => "owners",
            Permission::CreditCards => "credit_cards",
        })
    }
}

/// A consent asked for: Berlin Group `POST /v1/consents` (`access`,
/// `validUntil`, `frequencyPerDay`, `recurringIndicator`) and GoCardless's
/// end-user agreement (`max_historical_days`, `access_valid_for_days`,
/// `access_scope`) both map onto it. Renewing a consent (PSD2: every 180
/// days) is a new sign-in with a new request: the bank requires SCA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRequest {
    pub scope: BTreeSet<Permission>,
    /// The last day of access; at most the institution's
    /// `max_consent_days` after today.
    pub valid_until: Date,
    /// Syncs a day, 1 ..= the institution's `max_refreshes_per_day`.
    pub frequency_per_day: u32,
    /// Recurring access (`true`) or one-off (`false`).
    pub recurring: bool,
    /// How far back transactions may be read (days, ≤ the institution's).
    pub max_history_days: u32,
}

impl ConsentRequest {
    /// Everything the bank offers (every permission, its longest consent,
    /// its most syncs a day, its whole history), from `today`.
    pub fn everything(institution: &Institution, today: Date) -> Self {
        Self {
            scope: Permission::ALL.into_iter().collect(),
            valid_until: today.saturating_add(time::Duration::days(i64::from(institution.max_consent_days))),
            frequency_per_day: institution.max_refreshes_per_day,
            recurring: true,
            max_history_days: institution.max_history_days,
        }
    }
}

/// A consent granted: what data calls are made under. `id` is all a bank
/// needs (Berlin Group `Consent-ID`; the sandbox reads nothing else); the
/// rest is what the bank granted, which may be less than asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    pub id: String,
    pub institution: InstitutionId,
    pub granted_at: OffsetDateTime,
    pub valid_until: Date,
    pub frequency_per_day: u32,
    pub recurring: bool,
    pub max_history_days: u32,
    pub scope: BTreeSet<Permission>,
}

/// When a data call is made, and when the previous sync of the same
/// connection succeeded. Connectors never read the clock for data: the
/// same point gives the same answer, so imports and tests are repeatable.
/// Every call of one sync (every page) passes the same point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPoint {
    pub now: OffsetDateTime,
    /// `None` for the connection's first sync.
    pub previous_sync: Option<OffsetDateTime>,
}

impl SyncPoint {
    pub fn first(now: OffsetDateTime) -> Self {
        Self {
            now,
            previous_sync: None,
        }
    }

    pub fn after(previous_sync: OffsetDateTime, now: OffsetDateTime) -> Self {
        Self {
            now,
            previous_sync: Some(previous_sync),
        }
    }
}

/// An account holder's relation to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OwnerRole {
    Holder,
    CoHolder,
}

/// A person (or company) who holds accounts at the bank. Personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub id: OwnerId,
    pub name: String,
    pub email: Option<String>,
    pub address: Option<String>,
}

/// How an account is identified outside the bank.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AccountIdentifier {
    Iban(String),
    /// Another scheme, e.g. `UK.OBIE.SortCodeAccountNumber` with
    /// `40000412345678`, or a masked card number.
    Other {
        scheme: String,
        identification: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountType {
    Current,
    Savings,
    /// A current account in another currency than the bank's own.
    ForeignCurrency,
    Loan,
}

/// Berlin Group balance types (the ones the sandbox gives).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BalanceType {
    /// Booked transactions up to the end of the reference date.
    ClosingBooked,
    /// Booked plus pending.
    Expected,
    /// What the holder can spend now (expected plus any overdraft).
    InterimAvailable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    pub kind: BalanceType,
    pub amount: Amount,
    pub reference_date: Date,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountOwner {
    pub owner: OwnerId,
    pub role: OwnerRole,
}

/// An account at the bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub identifier: AccountIdentifier,
    pub name: String,
    pub kind: AccountType,
    pub currency: CurrencyCode,
    /// Empty unless the consent covers balances.
    pub balances: Vec<Balance>,
    pub owners: Vec<AccountOwner>,
}

/// A credit card at the bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditCard {
    pub id: CardId,
    /// Masked: `•••• 4242`.
    pub masked_number: String,
    pub name: String,
    pub currency: CurrencyCode,
    pub credit_limit: Amount,
    /// Empty unless the consent covers balances.
    pub balances: Vec<Balance>,
    pub owners: Vec<AccountOwner>,
}

/// Which transactions a query wants (Berlin Group `bookingStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BookingStatus {
    Booked,
    Pending,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    Pending,
    Booked,
}

/// A page of an account's (or card's) transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionQuery {
    /// First day (inclusive) of the transaction date; clamped to the
    /// consent's and the bank's history limit.
    pub from: Date,
    /// Last day (inclusive); clamped to today.
    pub to: Date,
    pub status: BookingStatus,
    /// `None` for the first page, then the previous page's `next`.
    pub cursor: Option<Cursor>,
    /// At most this many transactions (1 ..= 1,000).
    pub page_size: u32,
}

pub const MAX_PAGE_SIZE: u32 = 1_000;

/// The other side of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterparty {
    pub name: String,
    pub iban: Option<String>,
}

/// One transaction as the bank reports it. Personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The bank's own ID: the same while pending and once booked.
    pub id: BankTransactionId,
    pub status: TransactionStatus,
    /// When the bank booked it; `None` while pending.
    pub booking_date: Option<Date>,
    /// When it took effect (the card payment's day).
    pub value_date: Date,
    /// Signed, in the account's currency: negative out, positive in.
    pub amount: Amount,
    /// The amount in the currency it was made in, when that differs
    /// (Berlin Group `instructedAmount`).
    pub original_amount: Option<Amount>,
    pub counterparty: Option<Counterparty>,
    pub description: String,
    /// The card merchant's category (ISO 18245), for card payments.
    pub merchant_category_code: Option<u16>,
    /// Where a card payment was made.
    pub country: Option<CountryCode>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionPage {
    pub transactions: Vec<Transaction>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<Cursor>,
}
