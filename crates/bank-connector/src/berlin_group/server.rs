//! A Berlin Group NextGenPSD2 XS2A (AIS) server over any
//! [`BankConnector`]: with [`SandboxBank`](crate::SandboxBank), a real bank
//! API to test clients against (`examples/berlin_group_bank.rs` runs it).
//!
//! Each institution of the connector is one bank under
//! `/<institution>/v1/…`. Consents live in the server's memory (a
//! restarted server has forgotten them: `CONSENT_UNKNOWN`, as after a
//! bank revoked them; at most [`MAX_CONSENTS`]); everything else comes
//! from the connector. The PSU authenticates with `PSU-ID` and
//! `psuData.password` when the authorisation starts; the connector's
//! outcome picks the SCA approach (none, embedded one-time code,
//! decoupled, redirect). Like a bank, the server keeps each consent's
//! `frequencyPerDay` ([`ServerConfig::enforce_frequency`]).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::net::TcpListener;

use super::wire::{
    self, Access, AccountDetails, AccountDetailsResponse, AccountList, AccountReference, AccountReport,
    AuthorisationResponse, BalancesResponse, CardAccountList, ChallengeData, ConsentCreated,
    ConsentInformation, ConsentRequestBody, ConsentStatusResponse, ErrorBody, Href, Links, ScaMethod,
    StartAuthorisation, TppMessage, TransactionsResponse, UpdateAuthorisation, WireBalance, WireTransaction,
};
use super::{
    HEADER_CONSENT_ID, HEADER_PSU_ID, HEADER_PSU_IP_ADDRESS, HEADER_REQUEST_ID, HEADER_SANDBOX_NOW,
    HEADER_SANDBOX_PREVIOUS_SYNC, HEADER_TPP_NOK_REDIRECT_URI, HEADER_TPP_REDIRECT_URI,
};
use crate::connector::BankConnector;
use crate::error::ConnectorError;
use crate::model::{
    BookingStatus, Consent, ConsentRequest, Credentials, Institution, Permission, RedirectCallback, Session,
    SignInOutcome, SignInRequest, SyncPoint, TransactionQuery, TransactionStatus,
};
use crate::types::{AccountId, CardId, Cursor, InstitutionId};

/// How the server answers.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Transactions per page (`_links.next` leads to the next).
    pub page_size: u32,
    /// The server's public base URL for the links it hands out
    /// (`https://bank.example`); by default `http://` and the request's
    /// `Host`.
    pub public_url: Option<String>,
    /// Refuse accesses past the consent's `frequencyPerDay` (429
    /// `ACCESS_EXCEEDED`), as banks do.
    pub enforce_frequency: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            page_size: 500,
            public_url: None,
            enforce_frequency: true,
        }
    }
}

/// The server's routes over `bank`.
pub fn router(bank: Arc<dyn BankConnector>, config: ServerConfig) -> Router {
    let state = Arc::new(Bank {
        bank,
        config,
        consents: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/{institution}/v1/consents", axum::routing::post(create_consent))
        .route(
            "/{institution}/v1/consents/{consent}",
            get(get_consent).delete(delete_consent),
        )
        .route("/{institution}/v1/consents/{consent}/status", get(consent_status))
        .route(
            "/{institution}/v1/consents/{consent}/authorisations",
            axum::routing::post(start_authorisation),
        )
        .route(
            "/{institution}/v1/consents/{consent}/authorisations/{authorisation}",
            get(get_authorisation).put(update_authorisation),
        )
        .route("/{institution}/sca/{consent}/{authorisation}", get(sca_redirect))
        .route("/{institution}/v1/accounts", get(accounts))
        .route("/{institution}/v1/accounts/{account}", get(account))
        .route("/{institution}/v1/accounts/{account}/balances", get(balances))
        .route(
            "/{institution}/v1/accounts/{account}/transactions",
            get(transactions),
        )
        .route("/{institution}/v1/card-accounts", get(card_accounts))
        .route("/{institution}/v1/card-accounts/{account}", get(card_account))
        .route(
            "/{institution}/v1/card-accounts/{account}/balances",
            get(card_balances),
        )
        .route(
            "/{institution}/v1/card-accounts/{account}/transactions",
            get(card_transactions),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn(echo_request_id))
        .with_state(state)
}

/// Every answer carries the request's `X-Request-ID`.
async fn echo_request_id(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let id = request.headers().get(HEADER_REQUEST_ID).cloned();
    let mut response = next.run(request).await;
    if let Some(id) = id {
        response.headers_mut().insert(HEADER_REQUEST_ID, id);
    }
    response
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds a listener (port 0 picks a free one).
pub async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}

/// The most consents the server keeps.
pub const MAX_CONSENTS: usize = 100_000;

type Shared = Arc<Bank>;

#[derive(Debug)]
struct Bank {
    bank: Arc<dyn BankConnector>,
    config: ServerConfig,
    consents: Mutex<HashMap<String, ConsentRecord>>,
}

#[derive(Clone, Debug)]
struct ConsentRecord {
    institution: InstitutionId,
    psu_id: Option<String>,
    request: ConsentRequest,
    access: Access,
    redirect_uri: Option<String>,
    nok_redirect_uri: Option<String>,
    status: &'static str,
    /// The connector's consent, once authorised.
    granted: Option<Consent>,
    last_action: OffsetDateTime,
    authorisations: HashMap<String, Authorisation>,
    /// The accesses without the PSU of one UTC day (`frequencyPerDay`).
    accesses: (Option<time::Date>, BTreeSet<OffsetDateTime>),
}

impl ConsentRecord {
    /// The status at `now`: a valid consent past its `validUntil` is
    /// expired.
    fn status_at(&self, now: OffsetDateTime) -> &'static str {
        match &self.granted {
            Some(granted) if self.status == "valid" && now.date() > granted.valid_until => "expired",
            _ => self.status,
        }
    }
}

#[derive(Clone, Debug)]
struct Authorisation {
    step: Step,
    redirect_uri: Option<String>,
    nok_redirect_uri: Option<String>,
    psu_message: Option<String>,
}

#[derive(Clone, Debug)]
enum Step {
    OneTimeCode { challenge: String, prompt: String },
    Decoupled { challenge: String, prompt: String },
    Redirect { state: String },
    Finalised,
    Failed,
}

impl Step {
    fn sca_status(&self) -> &'static str {
        match self {
            Step::OneTimeCode { .. } | Step::Decoupled { .. } => "scaMethodSelected",
            Step::Redirect { .. } => "started",
            Step::Finalised => "finalised",
            Step::Failed => "failed",
        }
    }
}

/// An error answer: the status, one `tppMessages` entry, and `Retry-After`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    text: String,
    path: Option<&'static str>,
    retry_after: Option<i64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
            path: None,
            retry_after: None,
        }
    }

    fn format(text: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "FORMAT_ERROR", text)
    }

    fn consent_unknown() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "CONSENT_UNKNOWN",
            "no such consent at this bank",
        )
    }

    /// The answer to a connector's error at `now`.
    fn connector(error: ConnectorError, now: OffsetDateTime) -> Self {
        let seconds_until = |at: OffsetDateTime| (at - now).whole_seconds().max(0);
        let text = error.to_string();
        match error {
            ConnectorError::UnknownInstitution(_)
            | ConnectorError::UnknownAccount(_)
            | ConnectorError::UnknownCard(_) => Self::new(StatusCode::NOT_FOUND, "RESOURCE_UNKNOWN", text),
            ConnectorError::InvalidToken { what: "cursor" } => Self {
                path: Some("pageToken"),
                ..Self::format(text)
            },
            ConnectorError::InvalidToken { .. } | ConnectorError::InvalidRequest(_) => Self::format(text),
            ConnectorError::ConsentExpired { expired_at } => Self::new(
                StatusCode::UNAUTHORIZED,
                "CONSENT_EXPIRED",
                format!("consent expired at {}", wire::format_time(expired_at)),
            ),
            ConnectorError::SessionExpired { .. }
            | ConnectorError::OutOfScope(_)
            | ConnectorError::ScaRequired => Self::new(StatusCode::UNAUTHORIZED, "CONSENT_INVALID", text),
            ConnectorError::RateLimited { retry_after } => Self {
                retry_after: Some(seconds_until(retry_after)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "ACCESS_EXCEEDED", text)
            },
            ConnectorError::BankUnavailable { retry_after } => Self {
                retry_after: retry_after.map(seconds_until),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", text)
            },
            ConnectorError::Unsupported(_) => {
                Self::new(StatusCode::METHOD_NOT_ALLOWED, "SERVICE_INVALID", text)
            }
            ConnectorError::Protocol(_) | ConnectorError::Transport(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", text)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            tpp_messages: vec![TppMessage {
                category: "ERROR".into(),
                code: self.code.into(),
                path: self.path.map(String::from),
                text: Some(self.text),
            }],
        };
        let mut response = json(self.status, &body);
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

type Answer = Result<Response, ApiError>;

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Every request carries `X-Request-ID`.
fn request_id(headers: &HeaderMap) -> Result<(), ApiError> {
    header_text(headers, HEADER_REQUEST_ID)
        .map(|_| ())
        .ok_or_else(|| ApiError::format("X-Request-ID is missing"))
}

/// When the request happens: the sandbox's clock headers if sent (so a
/// client can drive the deterministic sandbox), else the wall clock and a
/// first sync.
fn sync_point(headers: &HeaderMap) -> Result<SyncPoint, ApiError> {
    let read = |name: &str| -> Result<Option<OffsetDateTime>, ApiError> {
        header_text(headers, name)
            .map(|text| {
                wire::parse_time(text).ok_or_else(|| ApiError::format(format!("{name} is no RFC 3339 time")))
            })
            .transpose()
    };
    let now = read(HEADER_SANDBOX_NOW)?.unwrap_or_else(OffsetDateTime::now_utc);
    Ok(SyncPoint {
        now,
        previous_sync: read(HEADER_SANDBOX_PREVIOUS_SYNC)?,
    })
}

fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Appends `pairs` to a URL's query.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        query.append_pair(key, value);
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{}", query.finish())
}

impl Bank {
    fn base(&self, headers: &HeaderMap) -> String {
        match &self.config.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!(
                "http://{}",
                header_text(headers, header::HOST.as_str()).unwrap_or("localhost")
            ),
        }
    }

    fn link(&self, headers: &HeaderMap, path: String) -> Href {
        Href {
            href: format!("{}{path}", self.base(headers)),
        }
    }

    async fn institution(&self, id: &str) -> Result<Institution, ApiError> {
        let now = OffsetDateTime::now_utc();
        self.bank
            .institutions()
            .await
            .map_err(|e| ApiError::connector(e, now))?
            .into_iter()
            .find(|i| i.id.as_str() == id)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "RESOURCE_UNKNOWN",
                    format!("no bank {id} here"),
                )
            })
    }

    fn with_consents<T>(&self, f: impl FnOnce(&mut HashMap<String, ConsentRecord>) -> T) -> T {
        let mut consents = self.consents.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut consents)
    }

    fn record(&self, institution: &str, consent: &str) -> Result<ConsentRecord, ApiError> {
        self.with_consents(|consents| consents.get(consent).cloned())
            .filter(|record| record.institution.as_str() == institution)
            .ok_or_else(ApiError::consent_unknown)
    }

    fn update(&self, consent: &str, f: impl FnOnce(&mut ConsentRecord)) {
        self.with_consents(|consents| {
            if let Some(record) = consents.get_mut(consent) {
                f(record);
            }
        });
    }

    /// The connector's consent behind a data request's `Consent-ID`, if
    /// it is valid and covers `need`.
    fn valid_consent(
        &self,
        institution: &str,
        headers: &HeaderMap,
        need: Permission,
    ) -> Result<(String, Consent), ApiError> {
        request_id(headers)?;
        let id = header_text(headers, HEADER_CONSENT_ID)
            .ok_or_else(|| ApiError::format("Consent-ID is missing"))?;
        let record = self.record(institution, id)?;
        let invalid = |text: &str| ApiError::new(StatusCode::UNAUTHORIZED, "CONSENT_INVALID", text);
        let consent = match (record.status, record.granted) {
            ("valid", Some(consent)) => consent,
            ("expired", _) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "CONSENT_EXPIRED",
                    "the consent has expired",
                ));
            }
            ("received", _) => return Err(invalid("the consent is not authorised yet")),
            (status, _) => return Err(invalid(&format!("the consent is {status}"))),
        };
        if !consent.scope.contains(&need) {
            return Err(invalid(&format!("the consent does not cover {need}")));
        }
        Ok((id.to_owned(), consent))
    }

    /// Counts an access without the PSU against the consent's
    /// `frequencyPerDay`, per UTC day, as banks do: past it, 429
    /// `ACCESS_EXCEEDED` until midnight UTC. An access is a sync point of
    /// the sandbox's clock (`X-Sandbox-Now`: every call of one sync is one
    /// access); on the wall clock, a list of accounts or card accounts (a
    /// sync's first call). Requests with `PSU-IP-Address` (the PSU present)
    /// are not counted.
    fn count_access(
        &self,
        consent_id: &str,
        consent: &Consent,
        headers: &HeaderMap,
        list: bool,
    ) -> Result<(), ApiError> {
        if !self.config.enforce_frequency || header_text(headers, HEADER_PSU_IP_ADDRESS).is_some() {
            return Ok(());
        }
        let at = sync_point(headers)?;
        if header_text(headers, HEADER_SANDBOX_NOW).is_none() && !list {
            return Ok(());
        }
        let now = at.now.to_offset(time::UtcOffset::UTC);
        let day = now.date();
        let allowed = self.with_consents(|consents| {
            let Some(record) = consents.get_mut(consent_id) else {
                return true;
            };
            let (seen_day, points) = &mut record.accesses;
            if *seen_day != Some(day) {
                *seen_day = Some(day);
                points.clear();
            }
            if points.contains(&now) {
                return true;
            }
            if points.len() >= consent.frequency_per_day as usize {
                return false;
            }
            points.insert(now);
            true
        });
        if allowed {
            return Ok(());
        }
        let midnight = day
            .next_day()
            .unwrap_or(day)
            .with_time(time::Time::MIDNIGHT)
            .assume_utc();
        Err(ApiError {
            retry_after: Some((midnight - now).whole_seconds().max(0)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ACCESS_EXCEEDED",
                format!(
                    "the consent allows {} accesses a day without the PSU",
                    consent.frequency_per_day
                ),
            )
        })
    }

    /// A connector's error on a data request; an expired consent stays so.
    fn data_error(&self, consent: &str, error: ConnectorError, now: OffsetDateTime) -> ApiError {
        if matches!(error, ConnectorError::ConsentExpired { .. }) {
            self.update(consent, |record| {
                record.status = "expired";
                record.last_action = now;
            });
        }
        ApiError::connector(error, now)
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "RESOURCE_UNKNOWN", "no such resource")
}

async fn create_consent(
    State(bank): State<Shared>,
    Path(institution): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    request_id(&headers)?;
    let at = sync_point(&headers)?;
    let described = bank.institution(&institution).await?;
    let body: ConsentRequestBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::format(format!("the consent request: {e}")))?;
    let scope = body.access.scope().map_err(ApiError::format)?;
    if !scope.contains(&Permission::Accounts) {
        return Err(ApiError::format("the access asks for nothing"));
    }
    let valid_until = wire::parse_date(&body.valid_until)
        .ok_or_else(|| ApiError::format(format!("validUntil {:?} is no date", body.valid_until)))?;
    if valid_until < at.now.date() {
        return Err(ApiError::format("validUntil is in the past"));
    }
    if body.frequency_per_day == 0 {
        return Err(ApiError::format("frequencyPerDay must be at least 1"));
    }
    if !body.recurring_indicator && body.frequency_per_day > 1 {
        return Err(ApiError::format("a one-off consent has frequencyPerDay 1"));
    }
    let id = new_id();
    let record = ConsentRecord {
        institution: described.id.clone(),
        psu_id: header_text(&headers, HEADER_PSU_ID).map(String::from),
        request: ConsentRequest {
            scope,
            valid_until,
            frequency_per_day: body.frequency_per_day,
            recurring: body.recurring_indicator,
            max_history_days: described.max_history_days,
        },
        access: body.access,
        redirect_uri: header_text(&headers, HEADER_TPP_REDIRECT_URI).map(String::from),
        nok_redirect_uri: header_text(&headers, HEADER_TPP_NOK_REDIRECT_URI).map(String::from),
        status: "received",
        granted: None,
        last_action: at.now,
        authorisations: HashMap::new(),
        accesses: (None, BTreeSet::new()),
    };
    bank.with_consents(|consents| {
        // Bounded: past the limit, the consent least recently acted on goes
        // (as a bank ends consents; its TPP sees CONSENT_UNKNOWN).
        if consents.len() >= MAX_CONSENTS
            && let Some(oldest) = consents
                .iter()
                .min_by_key(|(_, r)| r.last_action)
                .map(|(id, _)| id.clone())
        {
            consents.remove(&oldest);
        }
        consents.insert(id.clone(), record)
    });
    let path = format!("/{institution}/v1/consents/{id}");
    let links: Links = [
        ("self", bank.link(&headers, path.clone())),
        ("status", bank.link(&headers, format!("{path}/status"))),
        (
            "startAuthorisationWithPsuAuthentication",
            bank.link(&headers, format!("{path}/authorisations")),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let created = ConsentCreated {
        consent_status: "received".into(),
        consent_id: id,
        psu_message: None,
        links,
    };
    let mut response = json(StatusCode::CREATED, &created);
    if let Ok(location) = HeaderValue::from_str(&bank.link(&headers, path).href) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn get_consent(
    State(bank): State<Shared>,
    Path((institution, consent)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    request_id(&headers)?;
    let at = sync_point(&headers)?;
    let record = bank.record(&institution, &consent)?;
    let status = record.status_at(at.now);
    let (valid_until, frequency_per_day, recurring, access) = match &record.granted {
        Some(granted) => (
            granted.valid_until,
            granted.frequency_per_day,
            granted.recurring,
            Access::of(&granted.scope),
        ),
        None => (
            record.request.valid_until,
            record.request.frequency_per_day,
            record.request.recurring,
            record.access.clone(),
        ),
    };
    let path = format!("/{institution}/v1/consents/{consent}");
    Ok(json(
        StatusCode::OK,
        &ConsentInformation {
            access,
            recurring_indicator: recurring,
            valid_until: wire::format_date(valid_until),
            frequency_per_day,
            last_action_date: Some(wire::format_date(record.last_action.date())),
            consent_status: status.into(),
            links: [("status".to_owned(), bank.link(&headers, format!("{path}/status")))].into(),
        },
    ))
}

async fn consent_status(
    State(bank): State<Shared>,
    Path((institution, consent)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    request_id(&headers)?;
    let at = sync_point(&headers)?;
    let record = bank.record(&institution, &consent)?;
    Ok(json(
        StatusCode::OK,
        &ConsentStatusResponse {
            consent_status: record.status_at(at.now).into(),
        },
    ))
}

async fn delete_consent(
    State(bank): State<Shared>,
    Path((institution, consent)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    request_id(&headers)?;
    let at = sync_point(&headers)?;
    bank.record(&institution, &consent)?;
    bank.update(&consent, |record| {
        record.status = "terminatedByTpp";
        record.last_action = at.now;
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What an authorisation answers, with its links.
fn authorisation_answer(
    bank: &Bank,
    headers: &HeaderMap,
    institution: &str,
    consent: &str,
    id: &str,
    authorisation: &Authorisation,
) -> AuthorisationResponse {
    let path = format!("/{institution}/v1/consents/{consent}/authorisations/{id}");
    let mut links: Links = [("scaStatus".to_owned(), bank.link(headers, path.clone()))].into();
    let mut answer = AuthorisationResponse {
        sca_status: authorisation.step.sca_status().into(),
        authorisation_id: Some(id.to_owned()),
        chosen_sca_method: None,
        challenge_data: None,
        psu_message: authorisation.psu_message.clone(),
        links: Links::new(),
    };
    match &authorisation.step {
        Step::OneTimeCode { prompt, .. } => {
            answer.chosen_sca_method = Some(ScaMethod {
                authentication_type: "SMS_OTP".into(),
                authentication_method_id: "sms".into(),
                name: Some("SMS to your phone".into()),
            });
            answer.challenge_data = Some(ChallengeData {
                otp_max_length: Some(6),
                otp_format: Some("integer".into()),
                additional_information: Some(prompt.clone()),
            });
            links.insert("authoriseTransaction".into(), bank.link(headers, path));
        }
        Step::Decoupled { prompt, .. } => {
            answer.chosen_sca_method = Some(ScaMethod {
                authentication_type: "PUSH_OTP".into(),
                authentication_method_id: "app".into(),
                name: Some("Banking app".into()),
            });
            answer.psu_message = Some(prompt.clone());
        }
        Step::Redirect { .. } => {
            links.insert(
                "scaRedirect".into(),
                bank.link(headers, format!("/{institution}/sca/{consent}/{id}")),
            );
        }
        Step::Finalised | Step::Failed => {}
    }
    answer.links = links;
    answer
}

/// Moves an authorisation on with a connector's outcome: `Connected`
/// grants the consent (the consent is `valid`), a failure rejects it.
async fn settle(
    bank: &Bank,
    consent: &str,
    id: &str,
    outcome: SignInOutcome,
    now: OffsetDateTime,
) -> Result<Authorisation, ApiError> {
    let record = bank
        .with_consents(|c| c.get(consent).cloned())
        .ok_or_else(ApiError::consent_unknown)?;
    let mut authorisation =
        record.authorisations.get(id).cloned().ok_or_else(|| {
            ApiError::new(StatusCode::FORBIDDEN, "RESOURCE_UNKNOWN", "no such authorisation")
        })?;
    let mut granted = None;
    let mut status = record.status;
    match outcome {
        SignInOutcome::Connected { session } => {
            granted = Some(grant(bank, &session, now).await?);
            authorisation.step = Step::Finalised;
            authorisation.psu_message = None;
            status = "valid";
        }
        SignInOutcome::OneTimeCodeRequired { challenge } => {
            authorisation.step = Step::OneTimeCode {
                challenge: challenge.token,
                prompt: challenge.prompt,
            };
        }
        SignInOutcome::ScaRequired { challenge } => {
            authorisation.step = Step::Decoupled {
                challenge: challenge.token,
                prompt: challenge.prompt,
            };
        }
        SignInOutcome::RedirectRequired { state, .. } => authorisation.step = Step::Redirect { state },
        SignInOutcome::AuthenticationFailed { reason } => {
            authorisation.step = Step::Failed;
            authorisation.psu_message = Some(reason);
            status = "rejected";
        }
        SignInOutcome::InvalidCredentials => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "PSU_CREDENTIALS_INVALID",
                "the PSU-ID or password is wrong",
            ));
        }
        SignInOutcome::BankDown { retry_after } => {
            return Err(ApiError::connector(
                ConnectorError::BankUnavailable { retry_after },
                now,
            ));
        }
        SignInOutcome::RateLimited { retry_after } => {
            return Err(ApiError::connector(
                ConnectorError::RateLimited { retry_after },
                now,
            ));
        }
    }
    let stored = authorisation.clone();
    bank.update(consent, move |record| {
        record.authorisations.insert(id.to_owned(), stored);
        if granted.is_some() {
            record.granted = granted;
        }
        record.status = status;
        record.last_action = now;
    });
    Ok(authorisation)
}

async fn grant(bank: &Bank, session: &Session, now: OffsetDateTime) -> Result<Consent, ApiError> {
    bank.bank
        .grant_consent(session, now)
        .await
        .map_err(|e| ApiError::connector(e, now))
}

async fn start_authorisation(
    State(bank): State<Shared>,
    Path((institution, consent)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    request_id(&headers)?;
    let at = sync_point(&headers)?;
    let record = bank.record(&institution, &consent)?;
    if record.status != "received" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "STATUS_INVALID",
            format!("the consent is {}", record.status),
        ));
    }
    let start: StartAuthorisation = if body.is_empty() {
        StartAuthorisation::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::format(format!("the authorisation: {e}")))?
    };
    let psu_id = header_text(&headers, HEADER_PSU_ID)
        .map(String::from)
        .or(record.psu_id.clone());
    let (Some(psu_id), Some(password)) = (psu_id, start.psu_data.and_then(|d| d.password)) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "PSU_CREDENTIALS_INVALID",
            "this bank authenticates the PSU with PSU-ID and psuData.password",
        ));
    };
    let redirect_uri = header_text(&headers, HEADER_TPP_REDIRECT_URI)
        .map(String::from)
        .or(record.redirect_uri.clone());
    let nok_redirect_uri = header_text(&headers, HEADER_TPP_NOK_REDIRECT_URI)
        .map(String::from)
        .or(record.nok_redirect_uri.clone());
    let outcome = bank
        .bank
        .start_sign_in(SignInRequest {
            institution: record.institution.clone(),
            credentials: Credentials {
                username: psu_id,
                password,
            },
            consent: record.request.clone(),
            redirect_uri: redirect_uri.clone().unwrap_or_default(),
            now: at.now,
        })
        .await
        .map_err(|e| ApiError::connector(e, at.now))?;
    if matches!(outcome, SignInOutcome::RedirectRequired { .. }) && redirect_uri.is_none() {
        return Err(ApiError::format(
            "TPP-Redirect-URI is needed for the redirect approach",
        ));
    }
    let id = new_id();
    bank.update(&consent, |record| {
        record.authorisations.insert(
            id.clone(),
            Authorisation {
                step: Step::Failed,
                redirect_uri,
                nok_redirect_uri,
                psu_message: None,
            },
        );
    });
    let authorisation = settle(&bank, &consent, &id, outcome, at.now).await?;
    let answer = authorisation_answer(&bank, &headers, &institution, &consent, &id, &authorisation);
    Ok(json(StatusCode::CREATED, &answer))
}

fn find_authorisation(record: &ConsentRecord, id: &str) -> Result<Authorisation, ApiError> {
    record
        .authorisations
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "RESOURCE_UNKNOWN", "no such authorisation"))
}

async fn get_authorisation(
    State(bank): State<Shared>,
    Path((institution, consent, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Answer {
    request_id(&headers)?;
    let at = sync_point(&headers)?;
    let record = bank.record(&institution, &consent)?;
    let mut authorisation = find_authorisation(&record, &id)?;
    if let Step::Decoupled { challenge, .. } = &authorisation.step {
        let outcome = bank
            .bank
            .poll_sca(challenge, at.now)
            .await
            .map_err(|e| ApiError::connector(e, at.now))?;
        authorisation = settle(&bank, &consent, &id, outcome, at.now).await?;
    }
    let answer = authorisation_answer(&bank, &headers, &institution, &consent, &id, &authorisation);
    Ok(json(StatusCode::OK, &answer))
}

async fn update_authorisation(
    State(bank): State<Shared>,
    Path((institution, consent, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    request_id(&headers)?;
    let at = sync_point(&headers)?;
    let record = bank.record(&institution, &consent)?;
    let authorisation = find_authorisation(&record, &id)?;
    let update: UpdateAuthorisation =
        serde_json::from_slice(&body).map_err(|e| ApiError::format(format!("the authorisation: {e}")))?;
    let Step::OneTimeCode { challenge, .. } = &authorisation.step else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "STATUS_INVALID",
            format!("the authorisation is {}", authorisation.step.sca_status()),
        ));
    };
    let code = update
        .sca_authentication_data
        .ok_or_else(|| ApiError::format("scaAuthenticationData is missing"))?;
    let outcome = bank
        .bank
        .submit_one_time_code(challenge, &code, at.now)
        .await
        .map_err(|e| ApiError::connector(e, at.now))?;
    let authorisation = settle(&bank, &consent, &id, outcome, at.now).await?;
    let answer = authorisation_answer(&bank, &headers, &institution, &consent, &id, &authorisation);
    Ok(json(StatusCode::OK, &answer))
}

/// The bank's SCA page of the redirect approach: links to approve or
/// deny; following one finishes the authorisation and sends the PSU back
/// to the TPP (`TPP-Redirect-URI`, or `TPP-Nok-Redirect-URI` with
/// `error=access_denied`).
async fn sca_redirect(
    State(bank): State<Shared>,
    Path((institution, consent, id)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match sca_redirect_answer(&bank, &institution, &consent, &id, &query, &headers).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn sca_redirect_answer(
    bank: &Bank,
    institution: &str,
    consent: &str,
    id: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Answer {
    let at = sync_point(headers)?;
    let record = bank.record(institution, consent)?;
    let authorisation = find_authorisation(&record, id)?;
    let Step::Redirect { state } = &authorisation.step else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "STATUS_INVALID",
            format!("the authorisation is {}", authorisation.step.sca_status()),
        ));
    };
    let approve = match query.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            let page = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width\"><title>Sandbox bank: approve access</title></head>\
                 <body><h1>Approve access to your accounts?</h1>\
                 <p><a href=\"?decision=approve\">Approve</a></p><p><a href=\"?decision=deny\">Deny</a></p>\
                 </body></html>";
            let headers = [
                (header::CACHE_CONTROL, "no-store"),
                (header::REFERRER_POLICY, "no-referrer"),
            ];
            return Ok((headers, Html(page)).into_response());
        }
    };
    let callback = RedirectCallback {
        state: state.clone(),
        code: approve.then(|| "sandbox".to_owned()),
        error: (!approve).then(|| "access_denied".to_owned()),
    };
    let outcome = bank
        .bank
        .complete_redirect(&callback, at.now)
        .await
        .map_err(|e| ApiError::connector(e, at.now))?;
    let settled = settle(bank, consent, id, outcome, at.now).await?;
    let back = match (&settled.step, &authorisation.nok_redirect_uri) {
        (Step::Finalised, _) => authorisation.redirect_uri.clone().unwrap_or_default(),
        (_, Some(nok)) => nok.clone(),
        (_, None) => with_query(
            &authorisation.redirect_uri.clone().unwrap_or_default(),
            &[("error", "access_denied")],
        ),
    };
    Ok(Redirect::to(&back).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    #[serde(default)]
    with_balance: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionsQuery {
    booking_status: Option<String>,
    date_from: Option<String>,
    date_to: Option<String>,
    page_token: Option<String>,
}

/// The names of the owners of each account, holder first, when the
/// consent covers owners.
async fn owner_names(
    bank: &Bank,
    consent_id: &str,
    consent: &Consent,
    at: SyncPoint,
) -> Result<Option<HashMap<String, String>>, ApiError> {
    if !consent.scope.contains(&Permission::Owners) {
        return Ok(None);
    }
    let owners = bank
        .bank
        .owners(consent, at)
        .await
        .map_err(|e| bank.data_error(consent_id, e, at.now))?;
    Ok(Some(
        owners.into_iter().map(|o| (o.id.to_string(), o.name)).collect(),
    ))
}

fn names_of(
    owners: &[crate::model::AccountOwner],
    names: &Option<HashMap<String, String>>,
) -> Option<Vec<String>> {
    names.as_ref().map(|names| {
        owners
            .iter()
            .filter_map(|o| names.get(o.owner.as_str()).cloned())
            .collect()
    })
}

fn account_links(bank: &Bank, headers: &HeaderMap, base: &str, consent: &Consent) -> Links {
    let mut links = Links::new();
    if consent.scope.contains(&Permission::Balances) {
        links.insert("balances".into(), bank.link(headers, format!("{base}/balances")));
    }
    if consent.scope.contains(&Permission::Transactions) {
        links.insert(
            "transactions".into(),
            bank.link(headers, format!("{base}/transactions")),
        );
    }
    links
}

async fn list_accounts(
    bank: &Bank,
    institution: &str,
    headers: &HeaderMap,
    with_balance: bool,
) -> Result<Vec<AccountDetails>, ApiError> {
    let (id, consent) = bank.valid_consent(institution, headers, Permission::Accounts)?;
    bank.count_access(&id, &consent, headers, true)?;
    if with_balance && !consent.scope.contains(&Permission::Balances) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "CONSENT_INVALID",
            "the consent does not cover balances",
        ));
    }
    let at = sync_point(headers)?;
    let accounts = bank
        .bank
        .accounts(&consent, at)
        .await
        .map_err(|e| bank.data_error(&id, e, at.now))?;
    let names = owner_names(bank, &id, &consent, at).await?;
    Ok(accounts
        .iter()
        .map(|account| {
            let base = format!("/{institution}/v1/accounts/{}", account.id);
            AccountDetails::of(
                account,
                with_balance,
                names_of(&account.owners, &names),
                account_links(bank, headers, &base, &consent),
            )
        })
        .collect())
}

async fn accounts(
    State(bank): State<Shared>,
    Path(institution): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Answer {
    let accounts = list_accounts(&bank, &institution, &headers, query.with_balance.unwrap_or(false)).await?;
    Ok(json(StatusCode::OK, &AccountList { accounts }))
}

fn find_account(accounts: Vec<AccountDetails>, id: &str) -> Result<AccountDetails, ApiError> {
    accounts.into_iter().find(|a| a.resource_id == id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_UNKNOWN",
            format!("unknown account {id}"),
        )
    })
}

async fn account(
    State(bank): State<Shared>,
    Path((institution, account)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Answer {
    let accounts = list_accounts(&bank, &institution, &headers, query.with_balance.unwrap_or(false)).await?;
    Ok(json(
        StatusCode::OK,
        &AccountDetailsResponse {
            account: find_account(accounts, &account)?,
        },
    ))
}

async fn balances(
    State(bank): State<Shared>,
    Path((institution, account)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let accounts = list_accounts(&bank, &institution, &headers, true).await?;
    let account = find_account(accounts, &account)?;
    Ok(json(
        StatusCode::OK,
        &BalancesResponse {
            account: Some(account.reference),
            balances: account.balances.unwrap_or_default(),
        },
    ))
}

/// The query of a transactions request, checked.
fn transaction_query(
    query: &TransactionsQuery,
    page_size: u32,
    today: time::Date,
) -> Result<TransactionQuery, ApiError> {
    let status = match query.booking_status.as_deref() {
        Some("booked") => BookingStatus::Booked,
        Some("pending") => BookingStatus::Pending,
        Some("both") => BookingStatus::Both,
        Some(other) => {
            return Err(ApiError {
                path: Some("bookingStatus"),
                ..ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "PARAMETER_NOT_SUPPORTED",
                    format!("bookingStatus {other:?} is not supported"),
                )
            });
        }
        None => return Err(ApiError::format("bookingStatus is missing")),
    };
    let date = |text: &Option<String>, name: &str| {
        text.as_deref()
            .map(|t| wire::parse_date(t).ok_or_else(|| ApiError::format(format!("{name} {t:?} is no date"))))
            .transpose()
    };
    let from = date(&query.date_from, "dateFrom")?.ok_or_else(|| ApiError::format("dateFrom is missing"))?;
    let to = date(&query.date_to, "dateTo")?.unwrap_or(today);
    Ok(TransactionQuery {
        from,
        to,
        status,
        cursor: query.page_token.clone().map(Cursor),
        page_size,
    })
}

/// A page of transactions with the link to the next.
fn report(
    bank: &Bank,
    headers: &HeaderMap,
    path: &str,
    query: &TransactionQuery,
    page: crate::model::TransactionPage,
    card: bool,
) -> AccountReport {
    let (mut booked, mut pending) = (Vec::new(), Vec::new());
    for t in &page.transactions {
        match t.status {
            TransactionStatus::Booked => booked.push(WireTransaction::of(t, card)),
            TransactionStatus::Pending => pending.push(WireTransaction::of(t, card)),
        }
    }
    let status = match query.status {
        BookingStatus::Booked => "booked",
        BookingStatus::Pending => "pending",
        BookingStatus::Both => "both",
    };
    let mut links = Links::new();
    links.insert(
        "account".into(),
        bank.link(headers, path.trim_end_matches("/transactions").to_owned()),
    );
    if let Some(next) = page.next {
        let (from, to) = (wire::format_date(query.from), wire::format_date(query.to));
        let pairs = [
            ("bookingStatus", status),
            ("dateFrom", from.as_str()),
            ("dateTo", to.as_str()),
            ("pageToken", next.as_str()),
        ];
        links.insert("next".into(), bank.link(headers, with_query(path, &pairs)));
    }
    AccountReport {
        booked: (query.status != BookingStatus::Pending).then_some(booked),
        pending: (query.status != BookingStatus::Booked).then_some(pending),
        links,
    }
}

async fn transactions(
    State(bank): State<Shared>,
    Path((institution, account)): Path<(String, String)>,
    Query(query): Query<TransactionsQuery>,
    headers: HeaderMap,
) -> Answer {
    let (id, consent) = bank.valid_consent(&institution, &headers, Permission::Transactions)?;
    bank.count_access(&id, &consent, &headers, false)?;
    let at = sync_point(&headers)?;
    let query = transaction_query(&query, bank.config.page_size, at.now.date())?;
    let page = bank
        .bank
        .transactions(&consent, &AccountId::new(account.clone()), &query, at)
        .await
        .map_err(|e| bank.data_error(&id, e, at.now))?;
    let path = format!("/{institution}/v1/accounts/{account}/transactions");
    Ok(json(
        StatusCode::OK,
        &TransactionsResponse {
            account: None,
            transactions: Some(report(&bank, &headers, &path, &query, page, false)),
        },
    ))
}

async fn list_cards(
    bank: &Bank,
    institution: &str,
    headers: &HeaderMap,
    with_balance: bool,
) -> Result<Vec<AccountDetails>, ApiError> {
    let (id, consent) = bank.valid_consent(institution, headers, Permission::CreditCards)?;
    bank.count_access(&id, &consent, headers, true)?;
    let at = sync_point(headers)?;
    let cards = bank
        .bank
        .credit_cards(&consent, at)
        .await
        .map_err(|e| bank.data_error(&id, e, at.now))?;
    let names = owner_names(bank, &id, &consent, at).await?;
    Ok(cards
        .iter()
        .map(|card| {
            let base = format!("/{institution}/v1/card-accounts/{}", card.id);
            AccountDetails {
                resource_id: card.id.to_string(),
                reference: AccountReference {
                    masked_pan: Some(card.masked_number.clone()),
                    ..AccountReference::default()
                },
                currency: card.currency.to_string(),
                name: Some(card.name.clone()),
                product: Some("Credit card".into()),
                cash_account_type: Some("CARD".into()),
                owner_name: names_of(&card.owners, &names).map(|n| n.join(", ")),
                owner_names: names_of(&card.owners, &names).map(|names| {
                    names
                        .into_iter()
                        .map(|name| wire::OwnerName {
                            name,
                            role: Some("owner".into()),
                        })
                        .collect()
                }),
                credit_limit: Some(card.credit_limit.into()),
                balances: with_balance.then(|| card.balances.iter().map(WireBalance::from).collect()),
                links: account_links(bank, headers, &base, &consent),
            }
        })
        .collect())
}

async fn card_accounts(
    State(bank): State<Shared>,
    Path(institution): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Answer {
    let card_accounts =
        list_cards(&bank, &institution, &headers, query.with_balance.unwrap_or(false)).await?;
    Ok(json(StatusCode::OK, &CardAccountList { card_accounts }))
}

async fn card_account(
    State(bank): State<Shared>,
    Path((institution, account)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Answer {
    let cards = list_cards(&bank, &institution, &headers, query.with_balance.unwrap_or(false)).await?;
    let card = find_account(cards, &account)?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "cardAccount": card })))
}

async fn card_balances(
    State(bank): State<Shared>,
    Path((institution, account)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let cards = list_cards(&bank, &institution, &headers, true).await?;
    let card = find_account(cards, &account)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "cardAccount": card.reference, "balances": card.balances.unwrap_or_default() }),
    ))
}

async fn card_transactions(
    State(bank): State<Shared>,
    Path((institution, account)): Path<(String, String)>,
    Query(query): Query<TransactionsQuery>,
    headers: HeaderMap,
) -> Answer {
    let (id, consent) = bank.valid_consent(&institution, &headers, Permission::Transactions)?;
    bank.count_access(&id, &consent, &headers, false)?;
    let at = sync_point(&headers)?;
    let query = transaction_query(&query, bank.config.page_size, at.now.date())?;
    let page = bank
        .bank
        .card_transactions(&consent, &CardId::new(account.clone()), &query, at)
        .await
        .map_err(|e| bank.data_error(&id, e, at.now))?;
    let path = format!("/{institution}/v1/card-accounts/{account}/transactions");
    let report = report(&bank, &headers, &path, &query, page, true);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "cardTransactions": report }),
    ))
}
