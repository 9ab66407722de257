//! [`BerlinGroupClient`]: a [`BankConnector`] against any Berlin Group
//! NextGenPSD2 bank (the module docs of [`super`] map the trait onto the
//! standard).
//!
//! What it honours on top of the protocol:
//!
//! - **`frequencyPerDay`, itself.** A sync is every call made with one
//!   [`SyncPoint`]; the client counts the distinct sync points per consent
//!   and UTC day (of the sync point's `now`), and a sync beyond the
//!   consent's `frequency_per_day` is `RateLimited` until the next
//!   midnight UTC without a request reaching the bank: banks answer an
//!   exceeded frequency with 429 and may count the refused call too.
//! - **HTTP 429** is `RateLimited`, at `now` plus `Retry-After` (seconds or
//!   an HTTP date), else at the next midnight UTC; never retried here.
//! - **Timeouts, retries**: every exchange has a timeout; GETs (idempotent)
//!   are tried again after a timeout, a connection error or a 5xx, with
//!   exponential backoff and jitter, a bounded number of times (a 503 whose
//!   `Retry-After` is longer than the backoff is given up at once);
//!   consent creation, authorisations and deletions are sent once.
//! - **Paging**: `_links.next` is followed as the trait's cursor (only on
//!   the bank's own origin, so a link never sends the `Consent-ID`
//!   elsewhere).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::header::HeaderName;
use hyper::{Method, StatusCode, Uri};
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use super::http::{HttpRequest, HttpResponse, RetryPolicy, Transport, TransportError};
use super::wire::{
    self, Access, AccountDetails, AccountList, AuthorisationResponse, CardAccountList, ConsentCreated,
    ConsentInformation, ConsentRequestBody, ConsentStatusResponse, ErrorBody, PsuData, StartAuthorisation,
    TransactionsResponse, UpdateAuthorisation,
};
use super::{
    HEADER_CONSENT_ID, HEADER_PSU_ID, HEADER_REQUEST_ID, HEADER_SANDBOX_NOW, HEADER_SANDBOX_PREVIOUS_SYNC,
    HEADER_TPP_EXPLICIT_AUTHORISATION_PREFERRED, HEADER_TPP_REDIRECT_PREFERRED, HEADER_TPP_REDIRECT_URI,
};
use crate::connector::BankConnector;
use crate::error::ConnectorError;
use crate::model::{
    Account, AccountOwner, BookingStatus, Challenge, Consent, CreditCard, Institution, MAX_PAGE_SIZE, Owner,
    OwnerRole, Permission, RedirectCallback, Session, SignInOutcome, SignInRequest, SyncPoint,
    TransactionPage, TransactionQuery, TransactionStatus,
};
use crate::types::{AccountId, Amount, CardId, Cursor, InstitutionId, OwnerId};

/// How long the client lets a session (the consent just authorised) wait
/// for `grant_consent`, and a challenge for its answer.
pub const SESSION_MINUTES: i64 = 15;
pub const CHALLENGE_MINUTES: i64 = 5;

/// One bank: its institution as the server shows it, and the base URL of
/// its NextGenPSD2 API (the part before `/v1/…`).
#[derive(Clone, Debug)]
pub struct BankEndpoint {
    pub institution: Institution,
    pub base_url: String,
}

#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    pub banks: Vec<BankEndpoint>,
    pub retry: RetryPolicy,
    /// Send the trait's time as `X-Sandbox-Now`/`X-Sandbox-Previous-Sync`
    /// (for the repository's sandbox server; real banks use their clock).
    pub sandbox_clock: bool,
    /// Roots trusted besides the system's, for `https` bank URLs.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

#[derive(Debug)]
struct Bank {
    institution: Institution,
    base: String,
    origin: String,
}

/// A Berlin Group NextGenPSD2 (AIS) client.
#[derive(Debug)]
pub struct BerlinGroupClient {
    banks: Vec<Bank>,
    transport: Transport,
    sandbox_clock: bool,
    /// Per consent: the UTC day and the sync points seen on it.
    syncs: Mutex<HashMap<String, (Date, BTreeSet<OffsetDateTime>)>>,
}

fn origin_of(uri: &Uri) -> Option<String> {
    let scheme = uri.scheme_str().filter(|s| *s == "http" || *s == "https")?;
    Some(format!("{scheme}://{}", uri.authority()?))
}

impl BerlinGroupClient {
    pub fn new(config: ClientConfig) -> Result<Self, ConnectorError> {
        let mut banks = Vec::new();
        for endpoint in config.banks {
            let base = endpoint.base_url.trim_end_matches('/').to_owned();
            let uri: Uri = base
                .parse()
                .map_err(|e| ConnectorError::InvalidRequest(format!("bank URL {base:?}: {e}")))?;
            let origin = origin_of(&uri)
                .ok_or_else(|| ConnectorError::InvalidRequest(format!("bank URL {base:?} is not http(s)")))?;
            banks.push(Bank {
                institution: endpoint.institution,
                base,
                origin,
            });
        }
        let transport =
            Transport::new(config.retry, &config.extra_roots).map_err(ConnectorError::InvalidRequest)?;
        Ok(Self {
            banks,
            transport,
            sandbox_clock: config.sandbox_clock,
            syncs: Mutex::new(HashMap::new()),
        })
    }

    fn bank(&self, id: &InstitutionId) -> Result<&Bank, ConnectorError> {
        self.banks
            .iter()
            .find(|b| &b.institution.id == id)
            .ok_or_else(|| ConnectorError::UnknownInstitution(id.to_string()))
    }

    /// A link of the bank's as a URL, refused if it leads elsewhere.
    fn resolve(&self, bank: &Bank, href: &str) -> Result<Uri, ConnectorError> {
        let url = if href.starts_with('/') {
            format!("{}{href}", bank.origin)
        } else {
            href.to_owned()
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| ConnectorError::Protocol(format!("link {href:?}: {e}")))?;
        if origin_of(&uri).as_deref() != Some(bank.origin.as_str()) {
            return Err(ConnectorError::Protocol(format!(
                "link {href:?} leaves the bank's origin {}",
                bank.origin
            )));
        }
        Ok(uri)
    }

    fn url(&self, bank: &Bank, path: &str) -> Result<Uri, ConnectorError> {
        let url = format!("{}{path}", bank.base);
        url.parse()
            .map_err(|e| ConnectorError::InvalidRequest(format!("{url:?}: {e}")))
    }

    /// Counts the sync `at` against the consent's `frequencyPerDay`.
    fn count_sync(&self, consent: &Consent, at: SyncPoint) -> Result<(), ConnectorError> {
        let now = at.now.to_offset(UtcOffset::UTC);
        let day = now.date();
        let mut syncs = self.syncs.lock().unwrap_or_else(PoisonError::into_inner);
        if syncs.len() > 100_000 {
            syncs.retain(|_, (d, _)| *d >= day);
        }
        let (seen_day, points) = syncs
            .entry(consent.id.clone())
            .or_insert_with(|| (day, BTreeSet::new()));
        if *seen_day != day {
            *seen_day = day;
            points.clear();
        }
        if points.contains(&now) {
            return Ok(());
        }
        if points.len() >= consent.frequency_per_day as usize {
            return Err(ConnectorError::RateLimited {
                retry_after: next_midnight_utc(now),
            });
        }
        points.insert(now);
        Ok(())
    }

    async fn send(
        &self,
        method: Method,
        url: Uri,
        headers: Vec<(HeaderName, String)>,
        body: Option<Vec<u8>>,
        now: OffsetDateTime,
        previous_sync: Option<OffsetDateTime>,
    ) -> Result<HttpResponse, ConnectorError> {
        let mut all = vec![(HeaderName::from_static(HEADER_REQUEST_ID), request_id())];
        all.extend(headers);
        if self.sandbox_clock {
            all.push((
                HeaderName::from_static(HEADER_SANDBOX_NOW),
                wire::format_time(now),
            ));
            if let Some(previous) = previous_sync {
                all.push((
                    HeaderName::from_static(HEADER_SANDBOX_PREVIOUS_SYNC),
                    wire::format_time(previous),
                ));
            }
        }
        let request = HttpRequest {
            method,
            url,
            headers: all,
            body,
        };
        self.transport.send(&request).await.map_err(|e| match e {
            TransportError::Invalid(text) => ConnectorError::InvalidRequest(text),
            other => ConnectorError::Transport(other.to_string()),
        })
    }

    /// A data request under a consent: scope and frequency checked here
    /// first, then `GET` with `Consent-ID`.
    async fn data<T: DeserializeOwned>(
        &self,
        consent: &Consent,
        need: &[Permission],
        url: Uri,
        at: SyncPoint,
        on_unknown: impl FnOnce() -> ConnectorError,
    ) -> Result<T, ConnectorError> {
        if let Some(missing) = need.iter().find(|p| !consent.scope.contains(p)) {
            return Err(ConnectorError::OutOfScope(*missing));
        }
        self.count_sync(consent, at)?;
        let headers = vec![(HeaderName::from_static(HEADER_CONSENT_ID), consent.id.clone())];
        let response = self
            .send(Method::GET, url, headers, None, at.now, at.previous_sync)
            .await?;
        if response.status.is_success() {
            return parse(&response);
        }
        let mut error = error_of(&response, at.now);
        error = match (&error, code_of(&response).as_deref()) {
            (_, Some("RESOURCE_UNKNOWN")) => on_unknown(),
            // The scope was checked here: the bank holds the consent itself
            // invalid (revoked, ended), and the user must consent again.
            (_, Some("CONSENT_INVALID")) => ConnectorError::ConsentExpired { expired_at: at.now },
            _ => error,
        };
        Err(error)
    }

    /// The outcome an authorisation's answer means.
    fn outcome(
        &self,
        bank: &Bank,
        base: &Token,
        answer: AuthorisationResponse,
        now: OffsetDateTime,
    ) -> SignInOutcome {
        let issued = OffsetDateTime::from_unix_timestamp(base.issued).unwrap_or(now);
        let token = |authorisation: Option<String>| {
            Token {
                authorisation,
                ..base.clone()
            }
            .encode()
        };
        match answer.sca_status.as_str() {
            "finalised" | "exempted" => {
                return SignInOutcome::Connected {
                    session: Session {
                        token: token(None),
                        institution: bank.institution.id.clone(),
                        expires_at: now.saturating_add(Duration::minutes(SESSION_MINUTES)),
                    },
                };
            }
            "failed" => {
                return SignInOutcome::AuthenticationFailed {
                    reason: answer
                        .psu_message
                        .unwrap_or_else(|| "the bank refused the authentication".into()),
                };
            }
            _ => {}
        }
        if let Some(redirect) = answer.links.get("scaRedirect") {
            return SignInOutcome::RedirectRequired {
                url: redirect.href.clone(),
                state: token(None),
            };
        }
        let expires_at = issued.saturating_add(Duration::minutes(CHALLENGE_MINUTES));
        let challenge_token = token(answer.authorisation_id.clone());
        if answer.links.contains_key("authoriseTransaction") || answer.challenge_data.is_some() {
            let prompt = answer
                .challenge_data
                .and_then(|c| c.additional_information)
                .or(answer.psu_message)
                .unwrap_or_else(|| "Enter the one-time code".into());
            return SignInOutcome::OneTimeCodeRequired {
                challenge: Challenge {
                    token: challenge_token,
                    prompt,
                    expires_at,
                },
            };
        }
        SignInOutcome::ScaRequired {
            challenge: Challenge {
                token: challenge_token,
                prompt: answer
                    .psu_message
                    .unwrap_or_else(|| "Approve the access in your banking app".into()),
                expires_at,
            },
        }
    }

    /// A refused sign-in step: the outcomes the user or the server acts on,
    /// else an error.
    fn sign_in_refusal(
        response: &HttpResponse,
        now: OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError> {
        match (response.status, code_of(response).as_deref()) {
            (_, Some("PSU_CREDENTIALS_INVALID")) => Ok(SignInOutcome::InvalidCredentials),
            _ => match error_of(response, now) {
                ConnectorError::RateLimited { retry_after } => Ok(SignInOutcome::RateLimited { retry_after }),
                ConnectorError::BankUnavailable { retry_after } => {
                    Ok(SignInOutcome::BankDown { retry_after })
                }
                ConnectorError::Transport(_) => Ok(SignInOutcome::BankDown { retry_after: None }),
                other => Err(other),
            },
        }
    }

    async fn authorisation_step(
        &self,
        token: &Token,
        what: &'static str,
        method: Method,
        body: Option<Vec<u8>>,
        now: OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError> {
        let bank = self.bank(&InstitutionId::new(token.institution.clone()))?;
        let authorisation = token
            .authorisation
            .as_deref()
            .ok_or(ConnectorError::InvalidToken { what })?;
        let url = self.url(
            bank,
            &format!(
                "/v1/consents/{}/authorisations/{}",
                segment(&token.consent),
                segment(authorisation)
            ),
        )?;
        let response = match self.send(method, url, Vec::new(), body, now, None).await {
            Ok(response) => response,
            Err(ConnectorError::Transport(_)) => return Ok(SignInOutcome::BankDown { retry_after: None }),
            Err(other) => return Err(other),
        };
        if !response.status.is_success() {
            return match code_of(&response).as_deref() {
                Some("RESOURCE_UNKNOWN" | "CONSENT_UNKNOWN" | "STATUS_INVALID") => {
                    Err(ConnectorError::InvalidToken { what })
                }
                _ => Self::sign_in_refusal(&response, now),
            };
        }
        let answer: AuthorisationResponse = parse(&response)?;
        Ok(self.outcome(bank, token, answer, now))
    }

    fn transactions_url(
        &self,
        bank: &Bank,
        path: &str,
        query: &TransactionQuery,
    ) -> Result<Uri, ConnectorError> {
        let status = match query.status {
            BookingStatus::Booked => "booked",
            BookingStatus::Pending => "pending",
            BookingStatus::Both => "both",
        };
        let pairs = form_urlencoded::Serializer::new(String::new())
            .append_pair("bookingStatus", status)
            .append_pair("dateFrom", &wire::format_date(query.from))
            .append_pair("dateTo", &wire::format_date(query.to))
            .finish();
        self.url(bank, &format!("{path}?{pairs}"))
    }

    /// A page of transactions of an account or card: the bank's page (the
    /// first, or the cursor's), cut to `page_size`.
    async fn page(
        &self,
        consent: &Consent,
        path: &str,
        query: &TransactionQuery,
        at: SyncPoint,
        need: &[Permission],
        on_unknown: impl FnOnce() -> ConnectorError,
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
        let bank = self.bank(&consent.institution)?;
        // The consent's history, which the bank does not know of: kept here.
        let oldest = at
            .now
            .date()
            .saturating_sub(Duration::days(i64::from(consent.max_history_days.max(1)) - 1));
        let query = &TransactionQuery {
            from: query.from.max(oldest),
            ..query.clone()
        };
        if query.from > query.to {
            return Ok(TransactionPage {
                transactions: Vec::new(),
                next: None,
            });
        }
        let (url, skip) = match &query.cursor {
            None => (self.transactions_url(bank, path, query)?, 0),
            Some(cursor) => {
                let token =
                    Token::decode(cursor.as_str()).ok_or(ConnectorError::InvalidToken { what: "cursor" })?;
                let href = token
                    .href
                    .filter(|_| {
                        token.consent == consent.id && token.institution == bank.institution.id.as_str()
                    })
                    .ok_or(ConnectorError::InvalidToken { what: "cursor" })?;
                let url = self.resolve(bank, &href)?;
                // A cursor of another account's list is no cursor of this one.
                if !url.path().ends_with(path) {
                    return Err(ConnectorError::InvalidToken { what: "cursor" });
                }
                (url, token.skip)
            }
        };
        let answer: TransactionsResponse = self.data(consent, need, url.clone(), at, on_unknown).await?;
        let report = answer.transactions.unwrap_or_default();
        let mut all = Vec::new();
        for (list, status) in [
            (&report.booked, TransactionStatus::Booked),
            (&report.pending, TransactionStatus::Pending),
        ] {
            for t in list.iter().flatten() {
                all.push(t.to_transaction(status).map_err(ConnectorError::Protocol)?);
            }
        }
        let taken: Vec<_> = all
            .into_iter()
            .skip(skip as usize)
            .take(query.page_size as usize + 1)
            .collect();
        let token = |href: String, skip: u32| {
            Cursor(
                Token {
                    institution: bank.institution.id.to_string(),
                    consent: consent.id.clone(),
                    authorisation: None,
                    issued: 0,
                    href: Some(href),
                    skip,
                    history_days: 0,
                }
                .encode(),
            )
        };
        let mut transactions = taken;
        let next = if transactions.len() > query.page_size as usize {
            transactions.truncate(query.page_size as usize);
            Some(token(url.to_string(), skip.saturating_add(query.page_size)))
        } else {
            match report.links.get("next") {
                Some(next) => {
                    // Checked now, so a bad link fails this page, not the next.
                    self.resolve(bank, &next.href)?;
                    Some(token(next.href.clone(), 0))
                }
                None => None,
            }
        };
        Ok(TransactionPage { transactions, next })
    }

    fn account_of(details: AccountDetails, today: Date) -> Result<(Account, Vec<String>), ConnectorError> {
        let identifier = details.reference.identifier().ok_or_else(|| {
            ConnectorError::Protocol(format!("account {} has no identifier", details.resource_id))
        })?;
        let names: Vec<String> = match (&details.owner_names, &details.owner_name) {
            (Some(names), _) => names.iter().map(|n| n.name.clone()).collect(),
            (None, Some(name)) => vec![name.clone()],
            (None, None) => Vec::new(),
        };
        let account = Account {
            id: AccountId::new(details.resource_id.clone()),
            identifier,
            name: details.name.clone().unwrap_or_default(),
            kind: wire::kind_of(details.product.as_deref(), details.cash_account_type.as_deref()),
            currency: details.currency.parse()?,
            balances: balances_of(&details, today)?,
            owners: owners_of(&names),
        };
        Ok((account, names))
    }
}

fn balances_of(details: &AccountDetails, today: Date) -> Result<Vec<crate::model::Balance>, ConnectorError> {
    let mut balances = Vec::new();
    for balance in details.balances.iter().flatten() {
        if let Some(balance) = balance.to_balance(today).map_err(ConnectorError::Protocol)? {
            balances.push(balance);
        }
    }
    Ok(balances)
}

/// The client's ID of an owner known only by name.
fn owner_id(name: &str) -> OwnerId {
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    OwnerId(format!("bg-owner-{hex}"))
}

fn owners_of(names: &[String]) -> Vec<AccountOwner> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| AccountOwner {
            owner: owner_id(name),
            role: if i == 0 {
                OwnerRole::Holder
            } else {
                OwnerRole::CoHolder
            },
        })
        .collect()
}

fn next_midnight_utc(now: OffsetDateTime) -> OffsetDateTime {
    let today = now.to_offset(UtcOffset::UTC).date();
    today
        .next_day()
        .unwrap_or(today)
        .with_time(Time::MIDNIGHT)
        .assume_utc()
}

/// A new `X-Request-ID` (a random UUID, version 4).
fn request_id() -> String {
    let bits = rand::random::<u128>() & !(0xF000 << 64) | (0x4000 << 64);
    let bits = bits & !(0xC000 << 48) | (0x8000 << 48);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse<T: DeserializeOwned>(response: &HttpResponse) -> Result<T, ConnectorError> {
    serde_json::from_slice(&response.body)
        .map_err(|e| ConnectorError::Protocol(format!("the bank's answer (HTTP {}): {e}", response.status)))
}

fn first_message(response: &HttpResponse) -> Option<wire::TppMessage> {
    serde_json::from_slice::<ErrorBody>(&response.body)
        .ok()
        .and_then(|b| b.tpp_messages.into_iter().next())
}

fn code_of(response: &HttpResponse) -> Option<String> {
    first_message(response).map(|m| m.code)
}

/// `Retry-After` as a time: seconds after `now`, or an HTTP date.
fn retry_after(response: &HttpResponse, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let value = response.retry_after()?.trim();
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(now.saturating_add(Duration::seconds(seconds.max(0))));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(value, format)
        .ok()
        .map(|t| t.assume_utc())
}

/// The error a refused request means.
fn error_of(response: &HttpResponse, now: OffsetDateTime) -> ConnectorError {
    let message = first_message(response);
    let code = message.as_ref().map(|m| m.code.as_str()).unwrap_or_default();
    let text = message
        .as_ref()
        .and_then(|m| m.text.clone())
        .unwrap_or_else(|| response.status.to_string());
    let status = response.status;
    if status == StatusCode::TOO_MANY_REQUESTS || code == "ACCESS_EXCEEDED" {
        return ConnectorError::RateLimited {
            retry_after: retry_after(response, now).unwrap_or_else(|| next_midnight_utc(now)),
        };
    }
    match code {
        "SERVICE_UNAVAILABLE" => ConnectorError::BankUnavailable {
            retry_after: retry_after(response, now),
        },
        "CONSENT_EXPIRED" => ConnectorError::ConsentExpired {
            expired_at: text.rsplit(' ').next().and_then(wire::parse_time).unwrap_or(now),
        },
        // A consent the bank no longer knows: the user must consent again.
        "CONSENT_UNKNOWN" => ConnectorError::ConsentExpired { expired_at: now },
        "SERVICE_INVALID" => ConnectorError::Unsupported("this service"),
        "FORMAT_ERROR" if message.as_ref().and_then(|m| m.path.as_deref()) == Some("pageToken") => {
            ConnectorError::InvalidToken { what: "cursor" }
        }
        "FORMAT_ERROR" | "PARAMETER_NOT_SUPPORTED" | "PARAMETER_NOT_CONSISTENT" => {
            ConnectorError::InvalidRequest(text)
        }
        "PSU_CREDENTIALS_INVALID" => ConnectorError::ScaRequired,
        _ if status.is_server_error() => ConnectorError::BankUnavailable {
            retry_after: retry_after(response, now),
        },
        _ => ConnectorError::Protocol(format!("HTTP {status} {code}: {text}")),
    }
}

/// The client's own tokens (sessions, challenges, redirect states,
/// cursors): what it needs to find the consent again, so that the client
/// keeps no state a restart would lose.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Token {
    #[serde(rename = "i")]
    institution: String,
    #[serde(rename = "c")]
    consent: String,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    authorisation: Option<String>,
    #[serde(rename = "t", default)]
    issued: i64,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    href: Option<String>,
    #[serde(rename = "s", default)]
    skip: u32,
    /// The days of history the sign-in asked for (BG consents carry none).
    #[serde(rename = "d", default)]
    history_days: u32,
}

const TOKEN_PREFIX: &str = "bg1.";

impl Token {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text.strip_prefix(TOKEN_PREFIX)?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl BerlinGroupClient {
    /// Ends a consent at the bank (`DELETE /v1/consents/{id}`), as when
    /// the connection is deleted. A consent the bank no longer knows is
    /// ended already.
    pub async fn delete_consent(&self, consent: &Consent, now: OffsetDateTime) -> Result<(), ConnectorError> {
        let bank = self.bank(&consent.institution)?;
        let url = self.url(bank, &format!("/v1/consents/{}", segment(&consent.id)))?;
        let response = self
            .send(Method::DELETE, url, Vec::new(), None, now, None)
            .await?;
        if response.status.is_success() || code_of(&response).as_deref() == Some("CONSENT_UNKNOWN") {
            return Ok(());
        }
        Err(error_of(&response, now))
    }
}

#[async_trait]
impl BankConnector for BerlinGroupClient {
    async fn institutions(&self) -> Result<Vec<Institution>, ConnectorError> {
        Ok(self.banks.iter().map(|b| b.institution.clone()).collect())
    }

    async fn start_sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, ConnectorError> {
        let bank = self.bank(&request.institution)?;
        let now = request.now;
        let consent = &request.consent;
        if !consent.scope.contains(&Permission::Accounts) {
            return Err(ConnectorError::InvalidRequest(
                "a consent covers at least the accounts".into(),
            ));
        }
        if consent.frequency_per_day == 0 || consent.max_history_days == 0 {
            return Err(ConnectorError::InvalidRequest(
                "frequency_per_day and max_history_days must be at least 1".into(),
            ));
        }
        let body = ConsentRequestBody {
            access: Access::of(&consent.scope),
            recurring_indicator: consent.recurring,
            valid_until: wire::format_date(consent.valid_until),
            frequency_per_day: consent.frequency_per_day,
            combined_service_indicator: false,
        };
        let body = serde_json::to_vec(&body).map_err(|e| ConnectorError::InvalidRequest(e.to_string()))?;
        let psu = || {
            (
                HeaderName::from_static(HEADER_PSU_ID),
                request.credentials.username.clone(),
            )
        };
        let headers = vec![
            psu(),
            (
                HeaderName::from_static(HEADER_TPP_REDIRECT_URI),
                request.redirect_uri.clone(),
            ),
            (
                HeaderName::from_static(HEADER_TPP_REDIRECT_PREFERRED),
                "false".into(),
            ),
            (
                HeaderName::from_static(HEADER_TPP_EXPLICIT_AUTHORISATION_PREFERRED),
                "true".into(),
            ),
        ];
        let url = self.url(bank, "/v1/consents")?;
        let response = match self.send(Method::POST, url, headers, Some(body), now, None).await {
            Ok(response) => response,
            Err(ConnectorError::Transport(_)) => return Ok(SignInOutcome::BankDown { retry_after: None }),
            Err(other) => return Err(other),
        };
        if !response.status.is_success() {
            return Self::sign_in_refusal(&response, now);
        }
        let created: ConsentCreated = parse(&response)?;
        let start = ["startAuthorisationWithPsuAuthentication", "startAuthorisation"]
            .iter()
            .find_map(|k| created.links.get(*k));
        let url = match start {
            Some(link) => self.resolve(bank, &link.href)?,
            None => self.url(
                bank,
                &format!("/v1/consents/{}/authorisations", segment(&created.consent_id)),
            )?,
        };
        // The bank sends the user back to the redirect URI with the
        // client's state in it (the redirect approach).
        let base = Token {
            institution: bank.institution.id.to_string(),
            consent: created.consent_id.clone(),
            authorisation: None,
            issued: now.unix_timestamp(),
            href: None,
            skip: 0,
            history_days: consent.max_history_days,
        };
        let state = base.encode();
        let back = form_urlencoded::Serializer::new(String::new())
            .append_pair("state", &state)
            .finish();
        let separator = if request.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let redirect_uri = format!("{}{separator}{back}", request.redirect_uri);
        let start = StartAuthorisation {
            psu_data: Some(PsuData {
                password: Some(request.credentials.password.clone()),
            }),
        };
        let body = serde_json::to_vec(&start).map_err(|e| ConnectorError::InvalidRequest(e.to_string()))?;
        let headers = vec![
            psu(),
            (HeaderName::from_static(HEADER_TPP_REDIRECT_URI), redirect_uri),
        ];
        let response = match self.send(Method::POST, url, headers, Some(body), now, None).await {
            Ok(response) => response,
            Err(ConnectorError::Transport(_)) => return Ok(SignInOutcome::BankDown { retry_after: None }),
            Err(other) => return Err(other),
        };
        if !response.status.is_success() {
            return Self::sign_in_refusal(&response, now);
        }
        let answer: AuthorisationResponse = parse(&response)?;
        Ok(self.outcome(bank, &base, answer, now))
    }

    async fn submit_one_time_code(
        &self,
        challenge: &str,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError> {
        let what = "one-time code challenge";
        let token = Token::decode(challenge).ok_or(ConnectorError::InvalidToken { what })?;
        let body = UpdateAuthorisation {
            sca_authentication_data: Some(code.to_owned()),
            psu_data: None,
        };
        let body = serde_json::to_vec(&body).map_err(|e| ConnectorError::InvalidRequest(e.to_string()))?;
        self.authorisation_step(&token, what, Method::PUT, Some(body), now)
            .await
    }

    async fn complete_redirect(
        &self,
        callback: &RedirectCallback,
        now: OffsetDateTime,
    ) -> Result<SignInOutcome, ConnectorError> {
        let what = "redirect state";
        let token = Token::decode(&callback.state).ok_or(ConnectorError::InvalidToken { what })?;
        let bank = self.bank(&InstitutionId::new(token.institution.clone()))?;
        if let Some(error) = &callback.error {
            return Ok(SignInOutcome::AuthenticationFailed {
                reason: error.clone(),
            });
        }
        let url = self.url(bank, &format!("/v1/consents/{}/status", segment(&token.consent)))?;
        let response = match self.send(Method::GET, url, Vec::new(), None, now, None).await {
            Ok(response) => response,
            Err(ConnectorError::Transport(_)) => return Ok(SignInOutcome::BankDown { retry_after: None }),
            Err(other) => return Err(other),
        };
        if !response.status.is_success() {
            return match code_of(&response).as_deref() {
                Some("CONSENT_UNKNOWN" | "RESOURCE_UNKNOWN") => Err(ConnectorError::InvalidToken { what }),
                _ => Self::sign_in_refusal(&response, now),
            };
        }
        let status: ConsentStatusResponse = parse(&response)?;
        Ok(match status.consent_status.as_str() {
            "valid" => SignInOutcome::Connected {
                session: Session {
                    token: token.encode(),
                    institution: bank.institution.id.clone(),
                    expires_at: now.saturating_add(Duration::minutes(SESSION_MINUTES)),
                },
            },
            "received" | "partiallyAuthorised" => SignInOutcome::AuthenticationFailed {
                reason: "the bank has not confirmed the authentication".into(),
            },
            other => SignInOutcome::AuthenticationFailed {
                reason: format!("the consent is {other}"),
            },
        })
    }

    async fn poll_sca(&self, challenge: &str, now: OffsetDateTime) -> Result<SignInOutcome, ConnectorError> {
        let what = "SCA challenge";
        let token = Token::decode(challenge).ok_or(ConnectorError::InvalidToken { what })?;
        self.authorisation_step(&token, what, Method::GET, None, now)
            .await
    }

    async fn grant_consent(&self, session: &Session, now: OffsetDateTime) -> Result<Consent, ConnectorError> {
        let token = Token::decode(&session.token)
            .filter(|t| t.institution == session.institution.as_str())
            .ok_or(ConnectorError::InvalidToken { what: "session" })?;
        if now > session.expires_at {
            return Err(ConnectorError::SessionExpired {
                expired_at: session.expires_at,
            });
        }
        let bank = self.bank(&session.institution)?;
        let url = self.url(bank, &format!("/v1/consents/{}", segment(&token.consent)))?;
        let response = self.send(Method::GET, url, Vec::new(), None, now, None).await?;
        if !response.status.is_success() {
            return Err(match code_of(&response).as_deref() {
                Some("CONSENT_UNKNOWN" | "RESOURCE_UNKNOWN") => {
                    ConnectorError::InvalidToken { what: "session" }
                }
                _ => error_of(&response, now),
            });
        }
        let info: ConsentInformation = parse(&response)?;
        match info.consent_status.as_str() {
            "valid" => {}
            "expired" => return Err(ConnectorError::ConsentExpired { expired_at: now }),
            _ => return Err(ConnectorError::InvalidToken { what: "session" }),
        }
        let valid_until = wire::parse_date(&info.valid_until)
            .ok_or_else(|| ConnectorError::Protocol(format!("validUntil {:?}", info.valid_until)))?;
        Ok(Consent {
            id: token.consent,
            institution: bank.institution.id.clone(),
            granted_at: now,
            valid_until,
            frequency_per_day: info.frequency_per_day,
            recurring: info.recurring_indicator,
            max_history_days: match token.history_days {
                0 => bank.institution.max_history_days,
                asked => asked.min(bank.institution.max_history_days),
            },
            scope: info.access.scope().map_err(ConnectorError::Protocol)?,
        })
    }

    async fn owners(&self, consent: &Consent, at: SyncPoint) -> Result<Vec<Owner>, ConnectorError> {
        let bank = self.bank(&consent.institution)?;
        let url = self.url(bank, "/v1/accounts")?;
        let list: AccountList = self
            .data(
                consent,
                &[Permission::Accounts, Permission::Owners],
                url,
                at,
                || ConnectorError::InvalidToken { what: "consent" },
            )
            .await?;
        let mut owners: Vec<Owner> = Vec::new();
        for details in list.accounts {
            let (_, names) = Self::account_of(details, at.now.date())?;
            for name in names {
                let id = owner_id(&name);
                if !owners.iter().any(|o| o.id == id) {
                    owners.push(Owner {
                        id,
                        name,
                        email: None,
                        address: None,
                    });
                }
            }
        }
        Ok(owners)
    }

    async fn accounts(&self, consent: &Consent, at: SyncPoint) -> Result<Vec<Account>, ConnectorError> {
        let bank = self.bank(&consent.institution)?;
        let with_balance = consent.scope.contains(&Permission::Balances);
        let url = self.url(bank, &format!("/v1/accounts?withBalance={with_balance}"))?;
        let list: AccountList = self
            .data(consent, &[Permission::Accounts], url, at, || {
                ConnectorError::InvalidToken { what: "consent" }
            })
            .await?;
        list.accounts
            .into_iter()
            .map(|details| Self::account_of(details, at.now.date()).map(|(account, _)| account))
            .collect()
    }

    async fn transactions(
        &self,
        consent: &Consent,
        account: &AccountId,
        query: &TransactionQuery,
        at: SyncPoint,
    ) -> Result<TransactionPage, ConnectorError> {
        let path = format!("/v1/accounts/{}/transactions", segment(account.as_str()));
        let account = account.clone();
        self.page(
            consent,
            &path,
            query,
            at,
            &[Permission::Transactions],
            move || ConnectorError::UnknownAccount(account.to_string()),
        )
        .await
    }

    async fn credit_cards(
        &self,
        consent: &Consent,
        at: SyncPoint,
    ) -> Result<Vec<CreditCard>, ConnectorError> {
        let bank = self.bank(&consent.institution)?;
        if !bank.institution.credit_cards {
            return Err(ConnectorError::Unsupported("credit cards"));
        }
        let with_balance = consent.scope.contains(&Permission::Balances);
        let url = self.url(bank, &format!("/v1/card-accounts?withBalance={with_balance}"))?;
        let list: Result<CardAccountList, _> = self
            .data(
                consent,
                &[Permission::Accounts, Permission::CreditCards],
                url,
                at,
                || ConnectorError::InvalidToken { what: "consent" },
            )
            .await;
        let list = list.map_err(|e| match e {
            ConnectorError::Unsupported(_) => ConnectorError::Unsupported("credit cards"),
            other => other,
        })?;
        let today = at.now.date();
        list.card_accounts
            .into_iter()
            .map(|details| {
                let currency = details.currency.parse()?;
                let names: Vec<String> = details
                    .owner_names
                    .iter()
                    .flatten()
                    .map(|n| n.name.clone())
                    .collect();
                Ok(CreditCard {
                    id: CardId::new(details.resource_id.clone()),
                    masked_number: details.reference.masked_pan.clone().unwrap_or_default(),
                    name: details.name.clone().unwrap_or_default(),
                    currency,
                    credit_limit: match &details.credit_limit {
                        Some(limit) => limit
                            .to_amount()
                            .ok_or_else(|| ConnectorError::Protocol(format!("creditLimit {limit:?}")))?,
                        None => Amount::new(0, currency),
                    },
                    balances: balances_of(&details, today)?,
                    owners: owners_of(&names),
                })
            })
            .collect()
    }

    async fn card_transactions(
        &self,
        consent: &Consent,
        card: &CardId,
        query: &TransactionQuery,
        at: SyncPoint,
    ) -> Result<TransactionPage, ConnectorError> {
        let bank = self.bank(&consent.institution)?;
        if !bank.institution.credit_cards {
            return Err(ConnectorError::Unsupported("credit cards"));
        }
        let path = format!("/v1/card-accounts/{}/transactions", segment(card.as_str()));
        let card = card.clone();
        self.page(
            consent,
            &path,
            query,
            at,
            &[Permission::CreditCards, Permission::Transactions],
            move || ConnectorError::UnknownCard(card.to_string()),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let token = Token {
            institution: "bank".into(),
            consent: "c.1/2".into(),
            authorisation: Some("a".into()),
            issued: 42,
            href: None,
            skip: 0,
            history_days: 90,
        };
        let decoded = Token::decode(&token.encode()).unwrap();
        assert_eq!((decoded.consent.as_str(), decoded.issued), ("c.1/2", 42));
        for bad in ["", "bg1.", "bg1.!!", "sbx1.x", "bg1.e30"] {
            assert!(Token::decode(bad).is_none(), "{bad}");
        }
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
