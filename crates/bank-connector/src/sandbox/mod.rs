//! The sandbox bank: a [`BankConnector`] with fixed institutions and one
//! test user per behaviour, answering from a deterministic generator (see
//! the crate docs for the table of users, and `history.rs` for how the
//! history is made).

pub mod catalog;
mod history;
mod iban;
mod markets;
mod tokens;

use std::collections::BTreeSet;

use async_trait::async_trait;
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use crate::connector::BankConnector;
use crate::error::ConnectorError;
use crate::model::{
    Account, AccountOwner, Balance, BalanceType, BookingStatus, Challenge, Consent, ConsentRequest,
    CreditCard, Institution, MAX_PAGE_SIZE, Owner, OwnerRole, Permission, RedirectCallback, Session,
    SignInOutcome, SignInRequest, SyncPoint, TransactionPage, TransactionQuery, TransactionStatus,
};
use crate::types::{AccountId, Amount, CardId, Cursor, InstitutionId, OwnerId};
use catalog::{
    Behaviour, CO_HOLDER_NAME, INSTITUTIONS, MAX_CONSENT_DAYS, MAX_HISTORY_DAYS, MAX_REFRESHES_PER_DAY, Role,
    SANDBOX_ONE_TIME_CODE, SANDBOX_PASSWORD, SANDBOX_SCA_APPROVAL_SECONDS, SandboxInstitution, TestUser,
    sandbox_institution, test_user,
};
use history::{AccountPlan, Generator, Raw};
pub use iban::is_valid as iban_is_valid;

/// How long a session lasts after sign-in.
pub const SESSION_MINUTES: i64 = 15;
/// How long a one-time code, an app approval or a redirect may take.
pub const CHALLENGE_MINUTES: i64 = 5;
/// How many days back `user_pending` shows its transactions as pending at
/// the connection's first sync.
pub const PENDING_DAYS: i64 = 7;

/// `value` encoded for a URL's query.
fn query_value(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

const OTP_PROMPT: &str = "Enter the code sent to your phone ending 42 (sandbox: 123456)";
const SCA_PROMPT: &str = "Approve the sign-in in your banking app";

/// Where the sandbox's web authentication page is when none is served.
pub const SANDBOX_AUTHORIZE_BASE: &str = "https://sandbox-bank.invalid";

/// The sandbox bank. Stateless: everything it needs is in the tokens it
/// hands out, so any number of servers (or restarts) answer alike.
#[derive(Clone, Debug, Default)]
pub struct SandboxBank {
    /// Where its web authentication page is served (the redirect user's
    /// `RedirectRequired` URL is `<this>/<institution>/authorize?…`);
    /// `None`: [`SANDBOX_AUTHORIZE_BASE`], a page nobody serves.
    authorize_base: Option<String>,
}

impl SandboxBank {
    pub fn new() -> Self {
        Self::default()
    }

    /// The sandbox with its web authentication page at `base` (paycore's
    /// hosted pages serve one at `<public URL>/sandbox-bank`).
    pub fn with_authorize_base(base: impl Into<String>) -> Self {
        Self {
            authorize_base: Some(base.into()),
        }
    }

    fn institution(&self, id: &InstitutionId) -> Result<&'static SandboxInstitution, ConnectorError> {
        sandbox_institution(id.as_str()).ok_or_else(|| ConnectorError::UnknownInstitution(id.to_string()))
    }

    fn connected(
        user: &TestUser,
        institution: &SandboxInstitution,
        grant: &[&str],
        now: OffsetDateTime,
    ) -> SignInOutcome {
        SignInOutcome::Connected {
            session: Session {
                token: tokens::encode("session", user, institution, now, grant),
                institution: InstitutionId::new(institution.id),
                expires_at: now.saturating_add(Duration::minutes(SESSION_MINUTES)),
            },
        }
    }

    fn challenge(
        kind: &str,
        prompt: &str,
        user: &TestUser,
        institution: &SandboxInstitution,
        grant: &[&str],
        issued: OffsetDateTime,
    ) -> Challenge {
        Challenge {
            token: tokens::encode(kind, user, institution, issued, grant),
            prompt: prompt.to_owned(),
            expires_at: issued.saturating_add(Duration::minutes(CHALLENGE_MINUTES)),
        }
    }

    /// Checks a data call against its consent and the user's behaviour.
    fn open(&self, consent: &Consent, at: SyncPoint, need: Permission) -> Result<Access, ConnectorError> {
        let token = tokens::decode(&consent.id, "consent", "consent")?;
        let grant = Grant::decode(&token.rest).ok_or(ConnectorError::InvalidToken { what: "consent" })?;
        if !grant.scope.contains(&need) {
            return Err(ConnectorError::OutOfScope(need));
        }
        let today = at.now.date();
        if today > grant.valid_until {
            return Err(ConnectorError::ConsentExpired {
                expired_at: grant
                    .valid_until
                    .next_day()
                    .unwrap_or(grant.valid_until)
                    .with_time(Time::MIDNIGHT)
                    .assume_utc(),
            });
        }
        match (token.user.behaviour, at.previous_sync) {
            (Behaviour::ConsentExpired, Some(previous)) if previous >= token.issued => {
                return Err(ConnectorError::ConsentExpired { expired_at: previous });
            }
            (Behaviour::RateLimited, Some(previous))
                if previous.to_offset(UtcOffset::UTC).date() == at.now.to_offset(UtcOffset::UTC).date() =>
            {
                return Err(ConnectorError::RateLimited {
                    retry_after: next_midnight_utc(at.now),
                });
            }
            _ => {}
        }
        Ok(Access {
            generator: Generator::new(token.user, token.institution),
            at,
            today,
            max_history_days: grant.max_history_days,
            scope: grant.scope,
        })
    }
}

/// A consent checked, with the user's generator.
#[derive(Debug)]
struct Access {
    generator: Generator,
    at: SyncPoint,
    today: Date,
    max_history_days: u32,
    scope: BTreeSet<Permission>,
}

fn next_midnight_utc(now: OffsetDateTime) -> OffsetDateTime {
    let today = now.to_offset(UtcOffset::UTC).date();
    today
        .next_day()
        .unwrap_or(today)
        .with_time(Time::MIDNIGHT)
        .assume_utc()
}

/// The consent as the sandbox grants it: carried from the sign-in through
/// its challenge, session and consent tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Grant {
    valid_until: Date,
    frequency_per_day: u32,
    recurring: bool,
    max_history_days: u32,
    scope: BTreeSet<Permission>,
}

impl Grant {
    /// What the bank grants of a request: refused if it makes no sense,
    /// else cut to the bank's limits.
    fn of(
        request: &ConsentRequest,
        institution: &SandboxInstitution,
        today: Date,
    ) -> Result<Self, ConnectorError> {
        if !request.scope.contains(&Permission::Accounts) {
            return Err(ConnectorError::InvalidRequest(
                "a consent covers at least the accounts".into(),
            ));
        }
        if request.valid_until < today {
            return Err(ConnectorError::InvalidRequest(
                "valid_until is in the past".into(),
            ));
        }
        if request.frequency_per_day == 0 || request.max_history_days == 0 {
            return Err(ConnectorError::InvalidRequest(
                "frequency_per_day and max_history_days must be at least 1".into(),
            ));
        }
        let mut scope = request.scope.clone();
        if !institution.credit_cards {
            scope.remove(&Permission::CreditCards);
        }
        Ok(Self {
            valid_until: request
                .valid_until
                .min(today.saturating_add(Duration::days(i64::from(MAX_CONSENT_DAYS)))),
            frequency_per_day: request.frequency_per_day.min(MAX_REFRESHES_PER_DAY),
            recurring: request.recurring,
            max_history_days: request.max_history_days.min(MAX_HISTORY_DAYS),
            scope,
        })
    }

    fn encode(&self) -> Vec<String> {
        let bits = Permission::ALL
            .iter()
            .enumerate()
            .filter(|(_, p)| self.scope.contains(p))
            .fold(0u8, |bits, (i, _)| bits | (1 << i));
        vec![
            self.valid_until.to_julian_day().to_string(),
            self.frequency_per_day.to_string(),
            u8::from(self.recurring).to_string(),
            self.max_history_days.to_string(),
            bits.to_string(),
        ]
    }

    fn decode(parts: &[&str]) -> Option<Self> {
        let [valid_until, frequency, recurring, history, bits] = parts else {
            return None;
        };
        let bits: u8 = bits.parse().ok()?;
        Some(Self {
            valid_until: Date::from_julian_day(valid_until.parse().ok()?).ok()?,
            frequency_per_day: frequency.parse().ok()?,
            recurring: match *recurring {
                "0" => false,
                "1" => true,
                _ => return None,
            },
            max_history_days: history.parse().ok()?,
            scope: Permission::ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, p)| *p)
                .collect(),
        })
    }
}

impl Access {
    fn user(&self) -> &'static TestUser {
        self.generator.user
    }

    /// The accounts (not cards) the bank still has.
    fn accounts(&self) -> impl Iterator<Item = &AccountPlan> {
        let first_sync = self.at.previous_sync.is_none();
        self.generator
            .accounts
            .iter()
            .filter(move |a| a.role != Role::CreditCard && (first_sync || a.role != Role::Closing))
    }

    fn cards(&self) -> impl Iterator<Item = &AccountPlan> {
        self.generator
            .accounts
            .iter()
            .filter(|a| a.role == Role::CreditCard && !a.hidden)
    }

    fn status(&self, raw: &Raw) -> TransactionStatus {
        let held = self.user().behaviour == Behaviour::PendingPosts
            && self.at.previous_sync.is_none()
            && raw.date > self.today.saturating_sub(Duration::days(PENDING_DAYS));
        if held || raw.booking_date() > self.today {
            TransactionStatus::Pending
        } else {
            TransactionStatus::Booked
        }
    }

    fn owners_of(&self, account: &AccountPlan) -> Vec<AccountOwner> {
        let mut owners = vec![AccountOwner {
            owner: self.owner_id(false),
            role: OwnerRole::Holder,
        }];
        if account.is_joint() {
            owners.push(AccountOwner {
                owner: self.owner_id(true),
                role: OwnerRole::CoHolder,
            });
        }
        owners
    }

    fn owner_id(&self, co_holder: bool) -> OwnerId {
        let who = if co_holder { "co" } else { "holder" };
        OwnerId(format!(
            "sbx-own-{}-{}-{who}",
            self.user().username,
            self.generator.institution.id
        ))
    }

    /// Closing booked, expected and available balances as of today.
    fn balances(&self, account: &AccountPlan) -> Vec<Balance> {
        if !self.scope.contains(&Permission::Balances) {
            return Vec::new();
        }
        let (mut booked, mut expected) = (0i64, 0i64);
        let (mut transfers, mut raws) = (Vec::new(), Vec::new());
        let mut date = account.opened;
        while date <= self.today {
            self.generator.day(account, date, &mut transfers, &mut raws);
            for raw in &raws {
                let status = self.status(raw);
                let (amount, _) = raw.amounts(status);
                expected = expected.saturating_add(amount);
                if status == TransactionStatus::Booked {
                    booked = booked.saturating_add(amount);
                }
            }
            match date.next_day() {
                Some(next) => date = next,
                None => break,
            }
        }
        let amount = |minor| Amount::new(minor, account.currency);
        vec![
            Balance {
                kind: BalanceType::ClosingBooked,
                amount: amount(booked),
                reference_date: self.today,
            },
            Balance {
                kind: BalanceType::Expected,
                amount: amount(expected),
                reference_date: self.today,
            },
            Balance {
                kind: BalanceType::InterimAvailable,
                amount: amount(expected.saturating_add(account.credit_line())),
                reference_date: self.today,
            },
        ]
    }

    fn page(
        &self,
        account: &AccountPlan,
        query: &TransactionQuery,
    ) -> Result<TransactionPage, ConnectorError> {
        if query.page_size == 0 || query.page_size > MAX_PAGE_SIZE {
            return Err(ConnectorError::InvalidRequest(format!(
                "page_size must be 1 to {MAX_PAGE_SIZE}"
            )));
        }
        if query.from > query.to {
            return Err(ConnectorError::InvalidRequest(
                "the date range ends before it starts".into(),
            ));
        }
        let history = i64::from(self.max_history_days.min(MAX_HISTORY_DAYS));
        let oldest = self.today.saturating_sub(Duration::days(history - 1));
        let from = query.from.max(oldest).max(account.opened);
        let to = query.to.min(self.today);
        // The cursor: the account and the (day, sequence) of the last
        // transaction returned; the page goes on strictly after it.
        let after = match &query.cursor {
            None => None,
            Some(cursor) => Some(parse_cursor(cursor, &account.id)?),
        };
        let wanted = |status: TransactionStatus| match query.status {
            BookingStatus::Both => true,
            BookingStatus::Booked => status == TransactionStatus::Booked,
            BookingStatus::Pending => status == TransactionStatus::Pending,
        };
        let mut transactions = Vec::new();
        let mut last = None;
        let (mut transfers, mut raws) = (Vec::new(), Vec::new());
        let mut date = match after {
            Some((day, _)) => from.max(day),
            None => from,
        };
        while date <= to {
            self.generator.day(account, date, &mut transfers, &mut raws);
            for raw in &raws {
                if after.is_some_and(|(day, seq)| (raw.date, raw.seq) <= (day, seq)) {
                    continue;
                }
                let status = self.status(raw);
                if !wanted(status) {
                    continue;
                }
                if transactions.len() == query.page_size as usize {
                    // There is more: the next page starts after the last one.
                    let next = last.map(|(day, seq)| cursor(&account.id, day, seq));
                    return Ok(TransactionPage { transactions, next });
                }
                transactions.push(self.generator.materialize(account, raw, status));
                last = Some((raw.date, raw.seq));
            }
            match date.next_day() {
                Some(next) => date = next,
                None => break,
            }
        }
        Ok(TransactionPage {
            transactions,
            next: None,
        })
    }
}

fn cursor(account: &str, day: Date, seq: u16) -> Cursor {
    Cursor(format!("{account}.{}.{seq}", day.to_julian_day()))
}

fn parse_cursor(cursor: &Cursor, account: &str) -> Result<(Date, u16), ConnectorError> {
    let invalid = || ConnectorError::InvalidToken { what: "cursor" };
    let mut parts = cursor.as_str().split('.');
    if parts.next() != Some(account) {
        return Err(invalid());
    }
    let day = parts
        .next()
        .and_then(|d| d.parse::<i32>().ok())
        .and_then(|d| Date::from_julian_day(d).ok())
        .ok_or_else(invalid)?;
    let seq = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(invalid)?;
    if parts.next().is_some() {
        return Err(invalid());
    }
    Ok((day, seq))
}

#[async_trait]
impl BankConnector for SandboxBank {
    async fn institutions(&self) -> Result<Vec<Institution>, ConnectorError> {
        Ok(INSTITUTIONS.iter().map(SandboxInstitution::describe).collect())
    }

    async fn start_sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, ConnectorError> {
        let institution = self.institution(&request.institution)?;
        let now = request.now;
        let grant = Grant::of(&request.consent, institution, now.date())?.encode();
        let grant: Vec<&str> = grant.iter().map(String::as_str).collect();
        let Some(user) = test_user(&request.credentials.username)
            .filter(|_| request.credentials.password == SANDBOX_PASSWORD)
        else {
            return Ok(SignInOutcome::InvalidCredentials);
        };
        Ok(match user.behaviour {
            Behaviour::BankDown => SignInOutcome::BankDown {
                retry_after: Some(now.saturating_add(Duration::minutes(15))),
            },
            Behaviour::OneTimeCode => SignInOutcome::OneTimeCodeRequired {
                challenge: Self::challenge("otp", OTP_PROMPT, user, institution, &grant, now),
            },
            Behaviour::Sca => SignInOutcome::ScaRequired {
                challenge: Self::challenge("sca", SCA_PROMPT, user, institution, &grant, now),
            },
            Behaviour::Redirect => {
                let state = tokens::encode("redirect", user, institution, now, &grant);
                // Like an OAuth authorisation URL: the page sends the user
                // back to the redirect URI with the state.
                let base = self.authorize_base.as_deref().unwrap_or(SANDBOX_AUTHORIZE_BASE);
                SignInOutcome::RedirectRequired {
                    url: format!(
                        "{}/{}/authorize?state={state}&redirect_uri={}",
                        base.trim_end_matches('/'),
                        institution.id,
                        query_value(&request.redirect_uri)
                    ),
                    state,
                }
            }
            _ => Self::connected(user, institution, &grant, now),
        })
    }

    async fn submit_one_time_code(
        &self,
        challenge: &str,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError> {
        let token = tokens::decode(challenge, "otp", "one-time code challenge")?;
        if now > token.issued.saturating_add(Duration::minutes(CHALLENGE_MINUTES)) {
            return Ok(SignInOutcome::AuthenticationFailed {
                reason: "the one-time code expired".into(),
            });
        }
        if code.trim() != SANDBOX_ONE_TIME_CODE {
            return Ok(SignInOutcome::AuthenticationFailed {
                reason: "wrong one-time code".into(),
            });
        }
        Ok(Self::connected(token.user, token.institution, &token.rest, now))
    }

    async fn complete_redirect(
        &self,
        callback: &RedirectCallback,
        now: OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError> {
        let token = tokens::decode(&callback.state, "redirect", "redirect state")?;
        if let Some(error) = &callback.error {
            return Ok(SignInOutcome::AuthenticationFailed {
                reason: error.clone(),
            });
        }
        if now > token.issued.saturating_add(Duration::minutes(CHALLENGE_MINUTES)) {
            return Ok(SignInOutcome::AuthenticationFailed {
                reason: "the web authentication took too long".into(),
            });
        }
        Ok(Self::connected(token.user, token.institution, &token.rest, now))
    }

    async fn poll_sca(&self, challenge: &str, now: OffsetDateTime) -> Result<SignInOutcome, ConnectorError> {
        let token = tokens::decode(challenge, "sca", "SCA challenge")?;
        if now > token.issued.saturating_add(Duration::minutes(CHALLENGE_MINUTES)) {
            return Ok(SignInOutcome::AuthenticationFailed {
                reason: "not approved in the app in time".into(),
            });
        }
        if now
            < token
                .issued
                .saturating_add(Duration::seconds(SANDBOX_SCA_APPROVAL_SECONDS))
        {
            return Ok(SignInOutcome::ScaRequired {
                challenge: Self::challenge(
                    "sca",
                    SCA_PROMPT,
                    token.user,
                    token.institution,
                    &token.rest,
                    token.issued,
                ),
            });
        }
        Ok(Self::connected(token.user, token.institution, &token.rest, now))
    }

    async fn grant_consent(&self, session: &Session, now: OffsetDateTime) -> Result<Consent, ConnectorError> {
        let token = tokens::decode(&session.token, "session", "session")?;
        if token.institution.id != session.institution.as_str() {
            return Err(ConnectorError::InvalidToken { what: "session" });
        }
        let expires_at = token.issued.saturating_add(Duration::minutes(SESSION_MINUTES));
        if now > expires_at {
            return Err(ConnectorError::SessionExpired {
                expired_at: expires_at,
            });
        }
        let grant = Grant::decode(&token.rest).ok_or(ConnectorError::InvalidToken { what: "session" })?;
        let id = tokens::encode("consent", token.user, token.institution, now, &token.rest);
        Ok(Consent {
            id,
            institution: session.institution.clone(),
            granted_at: now,
            valid_until: grant.valid_until,
            frequency_per_day: grant.frequency_per_day,
            recurring: grant.recurring,
            max_history_days: grant.max_history_days,
            scope: grant.scope,
        })
    }

    async fn owners(&self, consent: &Consent, at: SyncPoint) -> Result<Vec<Owner>, ConnectorError> {
        let access = self.open(consent, at, Permission::Owners)?;
        let user = access.user();
        let city = access.generator.institution.country;
        let mut owners = vec![Owner {
            id: access.owner_id(false),
            name: user.name.to_owned(),
            email: Some(format!("{}@example.com", user.username.replace('_', "."))),
            address: Some(format!("1 Sandbox Street, {city}")),
        }];
        if access.accounts().any(AccountPlan::is_joint) {
            owners.push(Owner {
                id: access.owner_id(true),
                name: CO_HOLDER_NAME.to_owned(),
                email: None,
                address: Some(format!("1 Sandbox Street, {city}")),
            });
        }
        Ok(owners)
    }

    async fn accounts(&self, consent: &Consent, at: SyncPoint) -> Result<Vec<Account>, ConnectorError> {
        let access = self.open(consent, at, Permission::Accounts)?;
        Ok(access
            .accounts()
            .map(|a| Account {
                id: AccountId::new(a.id.clone()),
                identifier: a.identifier.clone(),
                name: a.name.clone(),
                kind: a.kind(),
                currency: a.currency,
                balances: access.balances(a),
                owners: access.owners_of(a),
            })
            .collect())
    }

    async fn transactions(
        &self,
        consent: &Consent,
        account: &AccountId,
        query: &TransactionQuery,
        at: SyncPoint,
    ) -> Result<TransactionPage, ConnectorError> {
        let access = self.open(consent, at, Permission::Transactions)?;
        let plan = access
            .accounts()
            .find(|a| a.id == account.as_str())
            .ok_or_else(|| ConnectorError::UnknownAccount(account.to_string()))?;
        access.page(plan, query)
    }

    async fn credit_cards(
        &self,
        consent: &Consent,
        at: SyncPoint,
    ) -> Result<Vec<CreditCard>, ConnectorError> {
        let access = self.open(consent, at, Permission::Accounts)?;
        if !access.generator.institution.credit_cards {
            return Err(ConnectorError::Unsupported("credit cards"));
        }
        if !access.scope.contains(&Permission::CreditCards) {
            return Err(ConnectorError::OutOfScope(Permission::CreditCards));
        }
        Ok(access
            .cards()
            .map(|c| CreditCard {
                id: CardId::new(c.id.clone()),
                masked_number: match &c.identifier {
                    crate::model::AccountIdentifier::Other { identification, .. } => identification.clone(),
                    crate::model::AccountIdentifier::Iban(iban) => iban.clone(),
                },
                name: c.name.clone(),
                currency: c.currency,
                credit_limit: Amount::new(c.credit_line(), c.currency),
                balances: access.balances(c),
                owners: access.owners_of(c),
            })
            .collect())
    }

    async fn card_transactions(
        &self,
        consent: &Consent,
        card: &CardId,
        query: &TransactionQuery,
        at: SyncPoint,
    ) -> Result<TransactionPage, ConnectorError> {
        let access = self.open(consent, at, Permission::Transactions)?;
        if !access.generator.institution.credit_cards {
            return Err(ConnectorError::Unsupported("credit cards"));
        }
        if !access.scope.contains(&Permission::CreditCards) {
            return Err(ConnectorError::OutOfScope(Permission::CreditCards));
        }
        let plan = access
            .cards()
            .find(|c| c.id == card.as_str())
            .ok_or_else(|| ConnectorError::UnknownCard(card.to_string()))?;
        access.page(plan, query)
    }
}
