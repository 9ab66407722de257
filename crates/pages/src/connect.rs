//! The connection pages: where a connection's `authentication_url` sends
//! the end user to connect their bank — choose the bank (search by name,
//! filter by country), sign in (credentials, then a one-time code, an
//! approval in the bank's app, or a visit to the bank's own page), choose
//! the accounts to share, then back to the client's redirect URL.
//!
//! One address per connection shows whatever the connection needs now, so
//! a reload, the back button or a second tab never acts twice: every form
//! posts to its own address and answers with a redirect (303) back to it.
//! While the server signs in or reads the accounts, the page reloads itself
//! every few seconds (a `refresh` meta, no script).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use paycore_aggregation_sync::{SignInStep, SyncError};
use paycore_bank_connector::{Institution, RedirectCallback};
use paycore_domain::aggregate::{AggregatedAccount, AggregationConnection};
use paycore_domain::aggregation_connection::{ActionRequiredReason, ConnectionStatus};
use paycore_grpc::connect::{ConnectError, Connections};
use serde::Deserialize;

use crate::layout::{message, page, page_with_refresh};

/// Where the connection pages are, under the listener's root.
pub const CONNECT_PATH: &str = "/connect";

/// Where banks send the end user back to after their own page:
/// `<this>/<connection ID>?state=…`.
pub const CALLBACK_PATH: &str = "/connect/callback";

/// Seconds between reloads while the server works.
const RELOAD_SECONDS: u32 = 2;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Shown {
    #[serde(default)]
    token: String,
    /// The bank search.
    #[serde(default)]
    q: String,
    #[serde(default)]
    country: String,
    /// A message from the last step, by name (`Notice`).
    #[serde(default)]
    notice: String,
}

/// `GET /connect/<connection>?token=…`: what the connection needs now.
pub(crate) async fn show(
    State(connections): State<Connections>,
    Path(id): Path<String>,
    Query(shown): Query<Shown>,
) -> Response {
    let connection = match connections.connection(&id, &shown.token).await {
        Ok(connection) => connection,
        Err(error) => return error_page(&error),
    };
    let notice = Notice::parse(&shown.notice);
    let bank = match connections.institution(&connection).await {
        Ok(bank) => bank,
        Err(error) => return error_page(&error),
    };
    let link = Link::of(&connection, bank.as_ref(), &shown.token);
    if connection.institution_id.is_none() {
        let country = Some(shown.country.trim()).filter(|c| !c.is_empty());
        return match connections.institutions(&connection, &shown.q, None).await {
            Ok(all) => bank_selection(&link, &all, &shown.q, country, notice),
            Err(error) => error_page(&error),
        };
    }
    match connection.status {
        ConnectionStatus::InitialActionRequired { reason } => {
            sign_in_page(&connections, &connection, &link, reason, notice).await
        }
        ConnectionStatus::ActionRequired { reason } => {
            sign_in_page(&connections, &connection, &link, Some(reason), notice).await
        }
        ConnectionStatus::Connecting => working("Signing in", "Signing in at your bank…"),
        ConnectionStatus::Updating if connection.accounts.is_empty() => working(
            "Reading your accounts",
            "Reading the list of your accounts at your bank…",
        ),
        ConnectionStatus::Updating
        | ConnectionStatus::Connected
        | ConnectionStatus::RefreshDelayed { .. } => match connections.accounts(&connection).await {
            Ok(accounts) if accounts.iter().any(AggregatedAccount::is_disabled) => {
                if matches!(connection.status, ConnectionStatus::Updating) {
                    working(
                        "Reading your accounts",
                        "Reading the list of your accounts at your bank…",
                    )
                } else {
                    consent_page(&link, &accounts, notice)
                }
            }
            Ok(_) => done(&connection),
            Err(error) => error_page(&error),
        },
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Chosen {
    #[serde(default)]
    token: String,
    #[serde(default)]
    institution: String,
}

/// `POST /connect/<connection>/institution`: the bank chosen.
pub(crate) async fn choose(
    State(connections): State<Connections>,
    Path(id): Path<String>,
    Form(chosen): Form<Chosen>,
) -> Response {
    match connections
        .choose_institution(&id, &chosen.token, &chosen.institution)
        .await
    {
        Ok(_) => back(&id, &chosen.token, None),
        Err(ConnectError::Refused(_)) => back(&id, &chosen.token, Some(Notice::ChooseListed)),
        Err(error) => error_page(&error),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /connect/<connection>/credentials`.
pub(crate) async fn credentials(
    State(connections): State<Connections>,
    Path(id): Path<String>,
    Form(sign_in): Form<SignIn>,
) -> Response {
    if sign_in.username.trim().is_empty() {
        return back(&id, &sign_in.token, Some(Notice::UsernameMissing));
    }
    let step = connections
        .submit_credentials(&id, &sign_in.token, sign_in.username.trim(), &sign_in.password)
        .await;
    after_step(&id, &sign_in.token, step)
}

#[derive(Debug, Deserialize)]
pub(crate) struct Code {
    #[serde(default)]
    token: String,
    #[serde(default)]
    code: String,
}

/// `POST /connect/<connection>/code`.
pub(crate) async fn code(
    State(connections): State<Connections>,
    Path(id): Path<String>,
    Form(code): Form<Code>,
) -> Response {
    if code.code.trim().is_empty() {
        return back(&id, &code.token, Some(Notice::CodeMissing));
    }
    let step = connections
        .submit_one_time_code(&id, &code.token, code.code.trim())
        .await;
    after_step(&id, &code.token, step)
}

#[derive(Debug, Deserialize)]
pub(crate) struct Token {
    #[serde(default)]
    token: String,
}

/// `POST /connect/<connection>/approved`: the end user says they approved
/// in the bank's app; the bank is asked.
pub(crate) async fn approved(
    State(connections): State<Connections>,
    Path(id): Path<String>,
    Form(form): Form<Token>,
) -> Response {
    let step = connections.poll_sca(&id, &form.token).await;
    after_step(&id, &form.token, step)
}

#[derive(Debug, Deserialize)]
pub(crate) struct Callback {
    #[serde(default)]
    state: String,
    code: Option<String>,
    error: Option<String>,
}

/// `GET /connect/callback/<connection>?state=…`: back from the bank's page.
pub(crate) async fn callback(
    State(connections): State<Connections>,
    Path(id): Path<String>,
    Query(callback): Query<Callback>,
) -> Response {
    let callback = RedirectCallback {
        state: callback.state,
        code: callback.code,
        error: callback.error,
    };
    match connections.complete_redirect(&id, callback).await {
        Ok((_, link)) => see_other(&format!("{CONNECT_PATH}{link}")),
        Err(error) => error_page(&error),
    }
}

/// `POST /connect/<connection>/consent`: the accounts to share.
pub(crate) async fn consent(
    State(connections): State<Connections>,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let token = fields
        .iter()
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let chosen: Vec<String> = fields
        .into_iter()
        .filter(|(name, _)| name == "account")
        .map(|(_, value)| value)
        .collect();
    if chosen.is_empty() {
        return back(&id, &token, Some(Notice::ChooseAccount));
    }
    match connections.consent(&id, &token, &chosen).await {
        Ok(connection) => done(&connection),
        Err(ConnectError::Refused(_)) => back(&id, &token, Some(Notice::ChooseAccount)),
        Err(error) => error_page(&error),
    }
}

/// What to say above a form after the last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Notice {
    ChooseListed,
    UsernameMissing,
    CodeMissing,
    ChooseAccount,
    BankDown,
    RateLimited,
    StartAgain,
}

impl Notice {
    const ALL: [Notice; 7] = [
        Notice::ChooseListed,
        Notice::UsernameMissing,
        Notice::CodeMissing,
        Notice::ChooseAccount,
        Notice::BankDown,
        Notice::RateLimited,
        Notice::StartAgain,
    ];

    fn name(self) -> &'static str {
        match self {
            Notice::ChooseListed => "choose-listed",
            Notice::UsernameMissing => "username-missing",
            Notice::CodeMissing => "code-missing",
            Notice::ChooseAccount => "choose-account",
            Notice::BankDown => "bank-down",
            Notice::RateLimited => "rate-limited",
            Notice::StartAgain => "start-again",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|notice| notice.name() == name)
    }

    fn text(self) -> &'static str {
        match self {
            Notice::ChooseListed => "Choose one of the banks listed.",
            Notice::UsernameMissing => "Enter your username.",
            Notice::CodeMissing => "Enter the code your bank sent you.",
            Notice::ChooseAccount => "Choose at least one of the accounts listed.",
            Notice::BankDown => "Your bank is not answering right now. Try again in a few minutes.",
            Notice::RateLimited => "Your bank asks to wait before trying again. Try again in a few minutes.",
            Notice::StartAgain => "That step is over. Please start again.",
        }
    }
}

/// The connection page's address with its token.
struct Link {
    id: String,
    token: String,
    bank: String,
}

impl Link {
    fn of(connection: &AggregationConnection, bank: Option<&Institution>, token: &str) -> Self {
        let bank = match (bank, &connection.institution_id) {
            (Some(bank), _) => bank.name.clone(),
            (None, Some(id)) => id.to_string(),
            (None, None) => String::new(),
        };
        Self {
            id: connection.id.to_string(),
            token: token.to_owned(),
            bank,
        }
    }

    fn action(&self, step: &str) -> String {
        format!("{CONNECT_PATH}/{}/{step}", self.id)
    }
}

/// What a sign-in step's answer leads to: the bank's page, or this page.
fn after_step(id: &str, token: &str, step: Result<SignInStep, ConnectError>) -> Response {
    match step {
        Ok(SignInStep::RedirectRequired { url }) => see_other(&url),
        Ok(_) => back(id, token, None),
        Err(ConnectError::Sync(SyncError::BankUnavailable { .. })) => back(id, token, Some(Notice::BankDown)),
        Err(ConnectError::Sync(SyncError::RateLimited { .. })) => back(id, token, Some(Notice::RateLimited)),
        Err(ConnectError::Sync(
            SyncError::WrongStep { .. } | SyncError::StepMissing(_) | SyncError::RedirectMismatch(_),
        )) => back(id, token, Some(Notice::StartAgain)),
        Err(error) => error_page(&error),
    }
}

/// 303 to the connection's page (a reload then shows, never posts again).
fn back(id: &str, token: &str, notice: Option<Notice>) -> Response {
    let mut location = format!("{CONNECT_PATH}/{id}?token={}", urlencoding(token));
    if let Some(notice) = notice {
        location.push_str("&notice=");
        location.push_str(notice.name());
    }
    see_other(&location)
}

pub(crate) fn see_other(location: &str) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        return message(
            StatusCode::BAD_GATEWAY,
            "Something went wrong",
            "The bank's address could not be opened.",
        );
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `value` encoded for a URL's query (tokens are hex, so this is a guard
/// rather than a need).
fn urlencoding(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn notice_markup(notice: Option<Notice>) -> Markup {
    html! {
        @if let Some(notice) = notice {
            p.error id="notice" role="alert" { (notice.text()) }
        }
    }
}

fn bank_selection(
    link: &Link,
    all: &[Institution],
    query: &str,
    country: Option<&str>,
    notice: Option<Notice>,
) -> Response {
    let mut countries: Vec<String> = all.iter().map(|i| i.country.to_string()).collect();
    countries.sort();
    countries.dedup();
    let shown: Vec<&Institution> = all
        .iter()
        .filter(|i| country.is_none_or(|c| i.country.as_str() == c))
        .collect();
    page(
        StatusCode::OK,
        "Choose your bank",
        html! {
            div.card {
                span.sandbox { "Sandbox" }
                h1 { "Choose your bank" }
                (notice_markup(notice))
                form method="get" action={ (CONNECT_PATH) "/" (link.id) } role="search" {
                    input type="hidden" name="token" value=(link.token);
                    label for="q" { "Search by name" }
                    input.text id="q" name="q" type="search" value=(query) autocomplete="off";
                    label for="country" { "Country" }
                    select id="country" name="country" {
                        option value="" selected[country.is_none()] { "All countries" }
                        @for code in &countries {
                            option value=(code) selected[country == Some(code.as_str())] { (code) }
                        }
                    }
                    div.actions { button.secondary type="submit" { "Search" } }
                }
                h2 id="banks-heading" { "Banks" }
                @if shown.is_empty() {
                    p { "No bank matches. Try another name or country." }
                } @else {
                    ul.choices aria-labelledby="banks-heading" {
                        @for institution in shown {
                            li {
                                form method="post" action=(link.action("institution")) {
                                    input type="hidden" name="token" value=(link.token);
                                    button.choice type="submit" name="institution" value=(institution.id.as_str()) {
                                        span.name { (institution.name) }
                                        span.meta { (institution.country.as_str()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The sign-in step the connection waits for: the bank's question as it
/// asked it, or the credentials form (first, or again).
async fn sign_in_page(
    connections: &Connections,
    connection: &AggregationConnection,
    link: &Link,
    reason: Option<ActionRequiredReason>,
    notice: Option<Notice>,
) -> Response {
    let waiting = match connections.waiting(connection).await {
        Ok(waiting) => waiting,
        Err(error) => return error_page(&error),
    };
    match waiting {
        Some(SignInStep::OneTimeCodeRequired { prompt }) => code_page(link, &prompt, notice),
        Some(SignInStep::ScaRequired { prompt }) => approval_page(link, &prompt, notice),
        Some(SignInStep::RedirectRequired { url }) => bank_page(link, &url, notice),
        _ => credentials_page(link, reason, notice),
    }
}

fn credentials_page(link: &Link, reason: Option<ActionRequiredReason>, notice: Option<Notice>) -> Response {
    let why = match reason {
        Some(ActionRequiredReason::CredentialsInvalid) => {
            Some("Your bank did not accept that sign-in. Check your username and password and try again.")
        }
        Some(ActionRequiredReason::ConsentExpired) => {
            Some("Your consent to share your accounts has ended. Sign in again to renew it.")
        }
        Some(ActionRequiredReason::WebAuthenticationRequired) => {
            Some("The sign-in at your bank's page did not finish. Sign in again to continue.")
        }
        _ => None,
    };
    page(
        StatusCode::OK,
        "Sign in to your bank",
        html! {
            div.card {
                span.sandbox { "Sandbox" }
                h1 { "Sign in to your bank" }
                p.hint { "Bank: " strong { (link.bank) } }
                (notice_markup(notice))
                @if let Some(why) = why {
                    p.error role="alert" { (why) }
                }
                form method="post" action=(link.action("credentials")) {
                    input type="hidden" name="token" value=(link.token);
                    label for="username" { "Username" }
                    input.text id="username" name="username" type="text" autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input.text id="password" name="password" type="password" autocomplete="current-password" aria-describedby="password-hint";
                    p.hint id="password-hint" {
                        "Sent to your bank only; paycore never keeps it. In the sandbox, the test users' password is "
                        strong { "pass_good" } "."
                    }
                    div.actions { button.primary type="submit" { "Sign in" } }
                }
            }
        },
    )
}

fn code_page(link: &Link, prompt: &str, notice: Option<Notice>) -> Response {
    page(
        StatusCode::OK,
        "Enter your code",
        html! {
            div.card {
                span.sandbox { "Sandbox" }
                h1 { "Enter your code" }
                (notice_markup(notice))
                p { (prompt) }
                form method="post" action=(link.action("code")) {
                    input type="hidden" name="token" value=(link.token);
                    label for="code" { "One-time code" }
                    input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                        required autofocus aria-describedby="code-hint";
                    p.hint id="code-hint" { "Your bank sent you a code. In the sandbox, it is " strong { "123456" } "." }
                    div.actions { button.primary type="submit" { "Continue" } }
                }
            }
        },
    )
}

fn approval_page(link: &Link, prompt: &str, notice: Option<Notice>) -> Response {
    page(
        StatusCode::OK,
        "Approve in your bank's app",
        html! {
            div.card {
                span.sandbox { "Sandbox" }
                h1 { "Approve in your bank's app" }
                (notice_markup(notice))
                p { (prompt) }
                p.hint { "Approve the request in your bank's app, then continue here. In the sandbox, it is approved 2 seconds after it was sent." }
                form method="post" action=(link.action("approved")) {
                    input type="hidden" name="token" value=(link.token);
                    div.actions { button.primary type="submit" { "I approved it" } }
                }
            }
        },
    )
}

fn consent_page(link: &Link, accounts: &[AggregatedAccount], notice: Option<Notice>) -> Response {
    page(
        StatusCode::OK,
        "Choose the accounts to share",
        html! {
            div.card {
                span.sandbox { "Sandbox" }
                h1 { "Choose the accounts to share" }
                (notice_markup(notice))
                form method="post" action=(link.action("consent")) {
                    input type="hidden" name="token" value=(link.token);
                    fieldset {
                        legend { "Your accounts at " (link.bank) }
                        @for account in accounts {
                            @let field = format!("account-{}", account.id);
                            div.check {
                                input type="checkbox" id=(field) name="account" value=(account.id.to_string())
                                    checked[account.is_disabled()] disabled[!account.is_disabled()];
                                label for=(field) {
                                    (account.personal.name)
                                    @if !account.is_disabled() { " (shared)" }
                                }
                            }
                        }
                    }
                    p.hint { "Their balances and up to 5 years of transactions are read now and at each refresh, until your consent ends." }
                    div.actions { button.primary type="submit" { "Share selected accounts" } }
                }
            }
        },
    )
}

/// The bank's own sign-in page, to continue there.
fn bank_page(link: &Link, url: &str, notice: Option<Notice>) -> Response {
    page(
        StatusCode::OK,
        "Continue at your bank",
        html! {
            div.card {
                span.sandbox { "Sandbox" }
                h1 { "Continue at your bank" }
                (notice_markup(notice))
                p { "Your bank signs you in on its own page, then sends you back here." }
                div.actions { a.button.primary href=(url) { "Continue to " (link.bank) } }
                form method="post" action=(link.action("credentials")) {
                    input type="hidden" name="token" value=(link.token);
                    p.hint { "Not working? Sign in again:" }
                    label for="username" { "Username" }
                    input.text id="username" name="username" type="text" autocomplete="username" required;
                    div.actions { button.secondary type="submit" { "Start again" } }
                }
            }
        },
    )
}

/// The server is working: the page reloads itself.
fn working(title: &str, text: &str) -> Response {
    page_with_refresh(
        StatusCode::OK,
        title,
        RELOAD_SECONDS,
        html! {
            div.card {
                h1 { (title) }
                p role="status" { (text) " This page updates by itself." }
            }
        },
    )
}

/// Done: back to the client, or a last page if it gave no address.
fn done(connection: &AggregationConnection) -> Response {
    match &connection.redirect_url {
        Some(url) => see_other(url),
        None => message(
            StatusCode::OK,
            "Your bank is connected",
            "Your accounts are being shared. You can close this page.",
        ),
    }
}

fn error_page(error: &ConnectError) -> Response {
    match error {
        ConnectError::UnknownLink => message(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This bank connection link is not valid. Use the link you were sent, complete and unchanged.",
        ),
        ConnectError::Refused(text) => message(StatusCode::UNPROCESSABLE_ENTITY, "Not possible", text),
        ConnectError::Sync(SyncError::ConnectionNotFound(_)) => message(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This bank connection no longer exists.",
        ),
        ConnectError::Sync(error) => {
            tracing::warn!(%error, "a connection page's step failed");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "Your bank could not be reached just now. Wait a moment and try again.",
            )
        }
        ConnectError::Failed(status) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "a connection page failed");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "This step could not be completed just now. Wait a moment and try again.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_by_name() {
        for notice in Notice::ALL {
            assert_eq!(Notice::parse(notice.name()), Some(notice));
        }
        assert_eq!(Notice::parse("<script>"), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(urlencoding("ab12-_."), "ab12-_.");
        assert_eq!(urlencoding("a b&c"), "a+b%26c");
    }
}
