//! The frame every page shares: the document, its styles, and the headers
//! every answer carries.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// Styles for every page: one column that fits a phone, large targets,
/// visible focus, colours with enough contrast.
const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1a1a1a;background:#f4f5f7}\
main{max-width:28rem;margin:0 auto;padding:1.5rem 1rem}\
h1{font-size:1.4rem;margin:0 0 1rem}\
.card{background:#fff;border:1px solid #d0d4da;border-radius:.5rem;padding:1.25rem}\
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem;margin:0 0 1.25rem}\
dt{color:#4a4f57}dd{margin:0;font-weight:600;overflow-wrap:anywhere}\
label{display:block;font-weight:600;margin-bottom:.25rem}\
input{width:100%;font:inherit;font-size:1.25rem;letter-spacing:.2em;padding:.6rem;border:2px solid #6b7280;border-radius:.375rem}\
input[aria-invalid=true]{border-color:#b42318}\
.hint{color:#4a4f57;font-size:.9rem;margin:.25rem 0 1rem}\
.error{color:#b42318;font-weight:600;margin:.25rem 0 1rem}\
.actions{display:flex;flex-wrap:wrap;gap:.75rem}\
button{font:inherit;font-weight:600;padding:.7rem 1.2rem;border-radius:.375rem;border:2px solid #1d4ed8;min-height:2.75rem;cursor:pointer}\
a.button{display:inline-block;text-decoration:none;font-weight:600;padding:.7rem 1.2rem;border-radius:.375rem;border:2px solid #1d4ed8}button.primary,a.primary{background:#1d4ed8;color:#fff}button.secondary{background:#fff;color:#1d4ed8}\
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}\
input.text{letter-spacing:normal;font-size:1rem;margin-bottom:.75rem}select{width:100%;font:inherit;padding:.6rem;border:2px solid #6b7280;border-radius:.375rem;margin-bottom:.75rem;background:#fff}h2{font-size:1.1rem;margin:1.25rem 0 .5rem}ul.choices{list-style:none;margin:0;padding:0;display:grid;gap:.5rem}button.choice{width:100%;display:flex;justify-content:space-between;gap:1rem;text-align:left;background:#fff;color:#1a1a1a;border:2px solid #d0d4da}button.choice:hover{border-color:#1d4ed8}.choice .meta{color:#4a4f57;font-weight:400}fieldset{border:0;margin:0 0 1rem;padding:0}legend{font-weight:600;margin-bottom:.5rem}.check{display:flex;align-items:center;gap:.6rem;margin:.4rem 0}.check input{width:1.4rem;height:1.4rem;margin:0}.check label{margin:0;font-weight:400}.sandbox{display:inline-block;background:#fef3c7;color:#78350f;border-radius:.25rem;padding:0 .4rem;font-size:.8rem;font-weight:700;margin-bottom:.5rem}\
";

/// A whole page with `status`: the document around `content`.
pub(crate) fn page(status: StatusCode, title: &str, content: Markup) -> Response {
    document(status, title, None, content)
}

/// A page that reloads itself every `seconds` (while the server works).
pub(crate) fn page_with_refresh(status: StatusCode, title: &str, seconds: u32, content: Markup) -> Response {
    document(status, title, Some(seconds), content)
}

fn document(status: StatusCode, title: &str, refresh: Option<u32>, content: Markup) -> Response {
    let document = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) " · paycore" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                main { (content) }
            }
        }
    };
    let mut response = (status, document).into_response();
    let headers = response.headers_mut();
    // The URL carries the link's token: never cached, never sent onward.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A page saying something, with a heading and one paragraph.
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(
        status,
        title,
        html! {
            div.card {
                h1 { (title) }
                p { (text) }
            }
        },
    )
}

pub(crate) async fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address. These pages are reached through the link you were sent.",
    )
}
