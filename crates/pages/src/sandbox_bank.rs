//! The sandbox bank's own sign-in page, for its web authentication test
//! user (`user_redirect`): the page a bank would show at its
//! `RedirectRequired` URL. "Allow" sends the end user back to paycore's
//! callback with the sign-in's `state`; "Deny" with `error=access_denied`,
//! as OAuth authorisation servers do. It sends nobody anywhere but the
//! deployment's own callback.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use paycore_grpc::connect::Connections;
use serde::Deserialize;

use crate::connect::see_other;
use crate::layout::{message, page};

/// Where the page is, under the listener's root:
/// `<this>/<institution>/authorize?state=…&redirect_uri=…`.
pub const SANDBOX_BANK_PATH: &str = "/sandbox-bank";

#[derive(Debug, Deserialize)]
pub(crate) struct Authorization {
    #[serde(default)]
    state: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    decision: String,
}

/// `GET /sandbox-bank/<institution>/authorize`.
pub(crate) async fn show(
    State(connections): State<Connections>,
    Path(institution): Path<String>,
    Query(asked): Query<Authorization>,
) -> Response {
    if let Some(refused) = refuse(&connections, &asked) {
        return refused;
    }
    page(
        StatusCode::OK,
        "Sandbox bank",
        html! {
            div.card {
                span.sandbox { "Sandbox bank" }
                h1 { "Share your accounts?" }
                p { "You are signed in at " strong { (institution) } ". paycore asks to read your accounts, their balances and transactions." }
                form method="post" action={ (SANDBOX_BANK_PATH) "/" (institution) "/authorize" } {
                    input type="hidden" name="state" value=(asked.state);
                    input type="hidden" name="redirect_uri" value=(asked.redirect_uri);
                    div.actions {
                        button.primary type="submit" name="decision" value="allow" { "Allow" }
                        button.secondary type="submit" name="decision" value="deny" { "Deny" }
                    }
                }
            }
        },
    )
}

/// `POST /sandbox-bank/<institution>/authorize`: back to paycore.
pub(crate) async fn decide(
    State(connections): State<Connections>,
    Form(asked): Form<Authorization>,
) -> Response {
    if let Some(refused) = refuse(&connections, &asked) {
        return refused;
    }
    let state: String = form_urlencoded::byte_serialize(asked.state.as_bytes()).collect();
    let outcome = match asked.decision.as_str() {
        "allow" => "code=sandbox",
        _ => "error=access_denied",
    };
    see_other(&format!("{}?state={state}&{outcome}", asked.redirect_uri))
}

/// A page for a request this page does not answer: no state, or a return
/// address other than the deployment's callback.
fn refuse(connections: &Connections, asked: &Authorization) -> Option<Response> {
    let callback = format!("{}/", connections.bank_redirect_uri().trim_end_matches('/'));
    let back_home = asked.redirect_uri.starts_with(&callback)
        && !asked.redirect_uri[callback.len()..].contains(['/', '?', '#']);
    (asked.state.is_empty() || !back_home).then(|| {
        message(
            StatusCode::BAD_REQUEST,
            "Link not valid",
            "This sign-in link is not valid. Start again from the page that sent you here.",
        )
    })
}
