//! The sandbox's 3-D Secure challenge: the page a payin's
//! `authentication_url` opens, and the answer to its form.
//!
//! The sandbox's one-time code is [`SANDBOX_CODE`]: entering it passes the
//! challenge (the card then gets its usual answer from the sandbox
//! network), any other well-formed code fails it, as does "Cancel payment"
//! (the payin is declined with `authentication_failed`). A malformed code
//! (empty, not six digits) is asked again without failing anything.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use paycore_domain::card_payin::{CardPayin, CardPayinState};
use paycore_grpc::challenge::{ChallengeError, Challenges};
use serde::Deserialize;

use crate::layout::{message, page};

/// The one-time code that passes a sandbox challenge.
pub const SANDBOX_CODE: &str = "123456";

#[derive(Debug, Deserialize)]
pub(crate) struct Link {
    #[serde(default)]
    token: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Submitted {
    #[serde(default)]
    token: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    action: String,
}

/// `GET /3ds/<payin>?token=…`: the challenge, or what became of the payin.
pub(crate) async fn show(
    State(challenges): State<Challenges>,
    Path(payin): Path<String>,
    Query(link): Query<Link>,
) -> Response {
    match challenges.payin(&payin, &link.token).await {
        Ok(payin) if payin.state == CardPayinState::AuthenticationPending => {
            challenge_page(StatusCode::OK, &payin, &link.token, None)
        }
        Ok(payin) => outcome_page(&payin),
        Err(error) => error_page(&error),
    }
}

/// `POST /3ds/<payin>`: the cardholder's answer; back to the shop.
pub(crate) async fn answer(
    State(challenges): State<Challenges>,
    Path(payin): Path<String>,
    Form(submitted): Form<Submitted>,
) -> Response {
    let passed = match submitted.action.as_str() {
        "cancel" => false,
        "verify" => {
            let code = submitted.code.trim();
            if code.len() != SANDBOX_CODE.len() || !code.bytes().all(|byte| byte.is_ascii_digit()) {
                return match challenges.payin(&payin, &submitted.token).await {
                    Ok(payin) if payin.state == CardPayinState::AuthenticationPending => challenge_page(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &payin,
                        &submitted.token,
                        Some("Enter the 6-digit code, digits only."),
                    ),
                    Ok(payin) => outcome_page(&payin),
                    Err(error) => error_page(&error),
                };
            }
            code == SANDBOX_CODE
        }
        _ => {
            return message(
                StatusCode::BAD_REQUEST,
                "Something went wrong",
                "The form was not sent as expected. Go back and try again.",
            );
        }
    };
    match challenges.answer(&payin, &submitted.token, passed).await {
        Ok(payin) => back_to_shop(&payin),
        Err(error) => error_page(&error),
    }
}

/// To the merchant's redirect URL (a 303, so a reload does not post
/// again), or the outcome here when the payin has none.
fn back_to_shop(payin: &CardPayin) -> Response {
    match payin
        .authentication_redirect_url
        .as_deref()
        .and_then(|url| HeaderValue::from_str(url).ok())
    {
        Some(location) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
                .headers_mut()
                .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }
        None => outcome_page(payin),
    }
}

fn challenge_page(status: StatusCode, payin: &CardPayin, token: &str, error: Option<&str>) -> Response {
    let hint_ids = if error.is_some() {
        "code-hint code-error"
    } else {
        "code-hint"
    };
    page(
        status,
        "Verify your payment",
        html! {
            div.card {
                span.sandbox { "Sandbox" }
                h1 { "Verify your payment" }
                (summary(payin))
                form method="post" action={ "/3ds/" (payin.id) } novalidate {
                    input type="hidden" name="token" value=(token);
                    label for="code" { "One-time code" }
                    input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                        maxlength="6" required autofocus aria-describedby=(hint_ids)
                        aria-invalid=[error.map(|_| "true")];
                    p.hint id="code-hint" {
                        "Your bank sent a code to your phone. In the sandbox, the code is "
                        strong { (SANDBOX_CODE) } "; any other code fails the verification."
                    }
                    @if let Some(error) = error {
                        p.error id="code-error" role="alert" { (error) }
                    }
                    div.actions {
                        button.primary type="submit" name="action" value="verify" { "Verify" }
                        button.secondary type="submit" name="action" value="cancel" { "Cancel payment" }
                    }
                }
            }
        },
    )
}

fn summary(payin: &CardPayin) -> Markup {
    html! {
        dl {
            dt { "Amount" } dd { (payin.value) }
            dt { "Card" } dd { (brand_name(payin.card_info.brand().as_str())) " ending in " (payin.card_info.number().last4()) }
            dt { "Payment" } dd { code { (payin.id) } }
        }
    }
}

/// A brand as people write it: `american_express` → `American Express`.
fn brand_name(brand: &str) -> String {
    brand
        .split('_')
        .map(|word| {
            let mut letters = word.chars();
            letters
                .next()
                .map(|first| first.to_uppercase().chain(letters).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What became of a payin no longer awaiting its challenge.
fn outcome_page(payin: &CardPayin) -> Response {
    let (title, text) = match payin.state {
        CardPayinState::Authorized | CardPayinState::Settled => (
            "Payment verified",
            "This payment was verified. You can close this page and return to the shop.",
        ),
        CardPayinState::Declined => (
            "Payment declined",
            "This payment was declined. You can close this page and return to the shop.",
        ),
        CardPayinState::Processing | CardPayinState::AuthenticationPending => (
            "Payment in progress",
            "This payment is being processed. You can close this page and return to the shop.",
        ),
    };
    page(
        StatusCode::OK,
        title,
        html! {
            div.card {
                h1 { (title) }
                (summary(payin))
                p { (text) }
            }
        },
    )
}

fn error_page(error: &ChallengeError) -> Response {
    match error {
        ChallengeError::UnknownLink => message(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This payment verification link is not valid. Use the link the shop sent you to, complete and unchanged.",
        ),
        ChallengeError::NotSandbox => message(
            StatusCode::FORBIDDEN,
            "Not available",
            "Payments of live projects are not verified on this page.",
        ),
        ChallengeError::Failed(status) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "a 3-D Secure challenge page failed");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "The payment could not be verified just now. Wait a moment and try again.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::brand_name;

    #[test]
    fn brands_are_written_as_people_write_them() {
        assert_eq!(brand_name("visa"), "Visa");
        assert_eq!(brand_name("american_express"), "American Express");
        assert_eq!(brand_name(""), "");
    }
}
