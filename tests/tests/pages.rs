//! The hosted pages in a real browser: Debian's chromium, headless, driven
//! through chromedriver (WebDriver) at a phone's screen size.
//!
//! - The 3-D Secure challenge: the cardholder passes with the sandbox code
//!   using only the keyboard, fails with another code, corrects a malformed
//!   one, cancels; each time the payin's state is read back over gRPC and
//!   the browser ends at the shop's redirect URL.
//! - The bank connection pages: an end user searches and chooses a bank,
//!   signs in (a wrong password, then a one-time code; the bank's own page
//!   and back; an approval in the bank's app), shares accounts, and ends at
//!   the client's redirect URL; the connection, accounts and imported
//!   transactions are read back over gRPC.
//!
//! Screenshots go to `target/tmp/pages/` (`CARGO_TARGET_TMPDIR`).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (packages
//! `chromium` and `chromium-driver`; `make test` installs them when
//! missing), or `CHROMEDRIVER` / `CHROMIUM` pointing elsewhere.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use paycore_e2e::{Authed, Server, money};
use paycore_grpc::pb;
use paycore_grpc::pb::card_payin_service_client::CardPayinServiceClient;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Request;

const PASSES_AFTER_3DS: &str = "4000000000003220";
const SANDBOX_CODE: &str = "123456";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: install Debian's chromium and chromium-driver (`make test` does), or set {variable}",
        path.display()
    );
    path
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(tool("CHROMEDRIVER", "/usr/bin/chromedriver"))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A headless chromium the size of a phone (390 × 844 CSS pixels).
async fn browser(driver: &Driver) -> Browser {
    let chromium = tool("CHROMIUM", "/usr/bin/chromium");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=390,844"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// A shop's web server: answers every request with a page saying so.
async fn shop() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let body = "<!doctype html><title>Shop</title><h1>Back at the shop</h1>";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    address
}

struct Shop {
    payins: CardPayinServiceClient<Authed>,
    account: String,
    back: String,
}

impl Shop {
    async fn payin(&mut self, number: &str) -> pb::CardPayin {
        let request = pb::CreateCardPayinRequest {
            account_id: self.account.clone(),
            value: money("EUR", 4_250),
            card_info: Some(pb::CardInfoRequest {
                number: number.into(),
                expiration_month: 11,
                expiration_year: 2040,
                cvc: "123".into(),
            }),
            card_token_id: None,
            card_id: None,
            authentication_type: pb::AuthenticationType::ThreeDSecure.into(),
            authentication_redirect_url: Some(self.back.clone()),
            meta: BTreeMap::new(),
        };
        self.payins.create_card_payin(request).await.unwrap().into_inner()
    }

    async fn get(&mut self, id: &str) -> pb::CardPayin {
        let request = Request::new(pb::GetCardPayinRequest {
            card_payin_id: id.into(),
        });
        self.payins.get_card_payin(request).await.unwrap().into_inner()
    }
}

/// Waits until the browser is at a URL starting with `prefix`.
async fn arrives_at(browser: &Browser, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = browser.current_url().await.unwrap().to_string();
        if url.starts_with(prefix) {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "the browser stayed at {url}, not {prefix}…"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for `search` on the page: a form sent with Enter navigates after
/// the key press returns, so the next page may not be there yet.
async fn element(browser: &Browser, search: Locator<'_>) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(search)
        .await
        .unwrap()
}

async fn heading(browser: &Browser) -> String {
    element(browser, Locator::Css("h1")).await.text().await.unwrap()
}

async fn screenshot(browser: &Browser, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pages");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The pages' address, as the server printed it.
fn pages_address(server: &Server) -> String {
    server
        .stdout_lines()
        .iter()
        .find_map(|line| {
            line.strip_prefix("paycore pages on ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
        .expect("the server printed where its pages are")
}

#[tokio::test]
async fn a_cardholder_answers_the_challenge_page_in_a_browser() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(root.path(), &[("PAYCORE_PAGES_LISTEN", "127.0.0.1:0")]);
    let pages = pages_address(&server);
    let client = server.client();
    let account = client.create_account("EUR", false).await.unwrap();
    let shop_address = shop().await;
    let mut shop = Shop {
        payins: CardPayinServiceClient::with_interceptor(server.channel(), paycore_e2e::bearer(server.key())),
        account: account.id.clone(),
        back: format!("http://{shop_address}/checkout/done?order=42"),
    };
    let driver = driver().await;
    let browser = browser(&driver).await;

    // Passed with the sandbox code, typed and sent with the keyboard only.
    let payin = shop.payin(PASSES_AFTER_3DS).await;
    let link = payin.authentication_url.clone().unwrap();
    assert!(
        link.starts_with(&format!("{pages}/3ds/{}?token=", payin.id)),
        "{link}"
    );
    browser.goto(&link).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "Verify your payment · paycore");
    let page = browser.source().await.unwrap();
    assert!(
        page.contains("42.50 EUR") && page.contains("Visa ending in 3220"),
        "{page}"
    );
    let label = browser.find(Locator::Css("label[for=code]")).await.unwrap();
    assert_eq!(label.text().await.unwrap(), "One-time code");
    let fits = browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the page fits a phone's width");
    screenshot(&browser, "3ds-challenge").await;
    let focused = browser.active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("code"),
        "the code field has the focus"
    );
    focused
        .send_keys(&format!("{SANDBOX_CODE}\u{E007}"))
        .await
        .unwrap();
    let back = arrives_at(&browser, &shop.back).await;
    assert_eq!(back, shop.back);
    assert_eq!(heading(&browser).await, "Back at the shop");
    assert_eq!(shop.get(&payin.id).await.state(), pb::CardPayinState::Authorized);
    // The link again: what became of the payment, nothing more to answer.
    browser.goto(&link).await.unwrap();
    assert_eq!(heading(&browser).await, "Payment verified");
    assert!(browser.find(Locator::Css("form")).await.is_err());

    // A wrong code fails the authentication.
    let payin = shop.payin(PASSES_AFTER_3DS).await;
    browser
        .goto(payin.authentication_url.as_deref().unwrap())
        .await
        .unwrap();
    let code = browser.find(Locator::Id("code")).await.unwrap();
    code.send_keys("654321").await.unwrap();
    browser
        .find(Locator::Css("button[value=verify]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrives_at(&browser, &shop.back).await;
    let declined = shop.get(&payin.id).await;
    assert_eq!(declined.state(), pb::CardPayinState::Declined);
    assert_eq!(declined.decline_reason(), pb::DeclineReason::AuthenticationFailed);

    // A malformed code is asked again, said why, and fails nothing; then
    // the cardholder cancels.
    let payin = shop.payin(PASSES_AFTER_3DS).await;
    browser
        .goto(payin.authentication_url.as_deref().unwrap())
        .await
        .unwrap();
    browser
        .find(Locator::Id("code"))
        .await
        .unwrap()
        .send_keys("12\u{E007}")
        .await
        .unwrap();
    let alert = element(&browser, Locator::Css("[role=alert]")).await;
    assert_eq!(
        alert.text().await.unwrap(),
        "Enter the 6-digit code, digits only."
    );
    let code = browser.find(Locator::Id("code")).await.unwrap();
    assert_eq!(code.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert!(
        code.attr("aria-describedby")
            .await
            .unwrap()
            .unwrap()
            .contains("code-error")
    );
    screenshot(&browser, "3ds-challenge-malformed-code").await;
    assert_eq!(
        shop.get(&payin.id).await.state(),
        pb::CardPayinState::AuthenticationPending
    );
    browser
        .find(Locator::Css("button[value=cancel]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrives_at(&browser, &shop.back).await;
    assert_eq!(shop.get(&payin.id).await.state(), pb::CardPayinState::Declined);

    // A link whose token was changed opens nothing.
    let payin = shop.payin(PASSES_AFTER_3DS).await;
    let link = payin.authentication_url.unwrap();
    let forged = format!(
        "{}{}",
        &link[..link.len() - 1],
        if link.ends_with('0') { "1" } else { "0" }
    );
    browser.goto(&forged).await.unwrap();
    assert_eq!(heading(&browser).await, "Link not valid");
    assert_eq!(
        shop.get(&payin.id).await.state(),
        pb::CardPayinState::AuthenticationPending
    );

    browser.close().await.unwrap();
}

type Connections = paycore_grpc::AggregationConnectionServiceClient<Authed>;
type AggregatedAccounts = paycore_grpc::AggregatedAccountServiceClient<Authed>;

/// Waits until the page's heading is `expected` (pages that reload
/// themselves while the server works get there on their own).
async fn heading_becomes(browser: &Browser, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = browser
            .find(Locator::Css("h1"))
            .await
            .ok()
            .map(|h1| async move { h1.text().await.unwrap_or_default() });
        let now = match now {
            Some(text) => text.await,
            None => String::new(),
        };
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page says {now:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_into(browser: &Browser, id: &str, text: &str) {
    element(browser, Locator::Id(id))
        .await
        .send_keys(text)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_end_user_connects_a_bank_on_the_hosted_pages_in_a_browser() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(root.path(), &[("PAYCORE_PAGES_LISTEN", "127.0.0.1:0")]);
    let pages = pages_address(&server);
    for bank in ["sandbox_de_rheinbank", "sandbox_fr_lumiere"] {
        let activated = server.cli(&["institutions", "activate", "--project", server.project_id(), bank]);
        assert!(activated.status.success());
    }
    let customer = server
        .client()
        .customers
        .create_customer(pb::CreateCustomerRequest::default())
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut connections: Connections = paycore_grpc::AggregationConnectionServiceClient::with_interceptor(
        server.channel(),
        paycore_e2e::bearer(server.key()),
    );
    let mut accounts: AggregatedAccounts = paycore_grpc::AggregatedAccountServiceClient::with_interceptor(
        server.channel(),
        paycore_e2e::bearer(server.key()),
    );
    let shop_address = shop().await;
    let back = format!("http://{shop_address}/banks/connected");
    let driver = driver().await;
    let browser = browser(&driver).await;

    // Through the bank-selection page: search, choose, a one-time code.
    let connection = connections
        .create_aggregation_connection(pb::CreateAggregationConnectionRequest {
            customer_id: customer.clone(),
            institution_id: None,
            redirect_url: Some(back.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let link = connection.authentication_url.clone().unwrap();
    assert!(
        link.starts_with(&format!("{pages}/connect/{}?token=", connection.id)),
        "{link}"
    );
    browser.goto(&link).await.unwrap();
    assert_eq!(heading(&browser).await, "Choose your bank");
    assert_eq!(
        browser
            .find_all(Locator::Css("button.choice"))
            .await
            .unwrap()
            .len(),
        2
    );
    screenshot(&browser, "connect-1-choose-bank").await;
    type_into(&browser, "q", "RHEIN\u{E007}").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser
        .find_all(Locator::Css("button.choice"))
        .await
        .unwrap()
        .len()
        != 1
    {
        assert!(Instant::now() < deadline, "the search did not narrow the list");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bank = element(&browser, Locator::Css("button.choice")).await;
    assert!(bank.text().await.unwrap().contains("DE"));
    bank.send_keys("\u{E007}").await.unwrap();
    heading_becomes(&browser, "Sign in to your bank").await;
    let fits = browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the page fits a phone's width");
    screenshot(&browser, "connect-2-sign-in").await;
    // A wrong password first: said so, asked again.
    type_into(&browser, "username", "user_otp").await;
    type_into(&browser, "password", "wrong\u{E007}").await;
    let alert = element(&browser, Locator::Css("[role=alert]")).await;
    assert!(
        alert.text().await.unwrap().contains("did not accept"),
        "{}",
        alert.text().await.unwrap()
    );
    type_into(&browser, "username", "user_otp").await;
    type_into(&browser, "password", "pass_good\u{E007}").await;
    heading_becomes(&browser, "Enter your code").await;
    let source = browser.source().await.unwrap();
    assert!(source.contains("phone ending 42"), "{source}");
    screenshot(&browser, "connect-3-one-time-code").await;
    type_into(&browser, "code", "123456\u{E007}").await;
    heading_becomes(&browser, "Choose the accounts to share").await;
    let boxes = browser
        .find_all(Locator::Css("input[type=checkbox]"))
        .await
        .unwrap();
    assert_eq!(boxes.len(), 2);
    for checkbox in &boxes {
        let id = checkbox.attr("id").await.unwrap().unwrap();
        let label = browser
            .find(Locator::Css(&format!("label[for='{id}']")))
            .await
            .unwrap();
        assert!(
            !label.text().await.unwrap().is_empty(),
            "every checkbox is labelled"
        );
    }
    screenshot(&browser, "connect-4-consent").await;
    // Only the first account is shared.
    boxes[1].click().await.unwrap();
    element(&browser, Locator::Css("button.primary"))
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(arrives_at(&browser, &back).await, back);

    let listed = accounts
        .list_aggregated_accounts(pb::ListAggregatedAccountsRequest {
            of: Some(pb::list_aggregated_accounts_request::Of::ConnectionId(
                connection.id.clone(),
            )),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(listed.iter().filter(|account| !account.disabled).count(), 1);
    let connected = connections
        .get_aggregation_connection(pb::GetAggregationConnectionRequest {
            connection_id: connection.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(connected.institution_id.as_deref(), Some("sandbox_de_rheinbank"));
    // The consent started an import that reads the shared account.
    let shared = listed
        .iter()
        .find(|account| !account.disabled)
        .unwrap()
        .id
        .clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = accounts
            .list_aggregated_transactions(pb::ListAggregatedTransactionsRequest {
                aggregated_account_id: shared.clone(),
                page_size: 5,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if !page.items.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no transactions imported after the consent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The web authentication user: to the bank's own page and back.
    let connection = connections
        .create_aggregation_connection(pb::CreateAggregationConnectionRequest {
            customer_id: customer,
            institution_id: Some("sandbox_fr_lumiere".into()),
            redirect_url: Some(back.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    browser
        .goto(connection.authentication_url.as_deref().unwrap())
        .await
        .unwrap();
    heading_becomes(&browser, "Sign in to your bank").await;
    type_into(&browser, "username", "user_redirect").await;
    type_into(&browser, "password", "pass_good\u{E007}").await;
    arrives_at(
        &browser,
        &format!("{pages}/sandbox-bank/sandbox_fr_lumiere/authorize?"),
    )
    .await;
    heading_becomes(&browser, "Share your accounts?").await;
    screenshot(&browser, "connect-5-bank-page").await;
    element(&browser, Locator::Css("button[value=allow]"))
        .await
        .click()
        .await
        .unwrap();
    heading_becomes(&browser, "Choose the accounts to share").await;
    element(&browser, Locator::Css("button.primary"))
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(arrives_at(&browser, &back).await, back);

    // SCA in the bank's app: the page waits for the end user's word, then
    // asks the bank.
    let sca = connections
        .create_aggregation_connection(pb::CreateAggregationConnectionRequest {
            customer_id: connected.customer_id.clone(),
            institution_id: Some("sandbox_de_rheinbank".into()),
            redirect_url: Some(back.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    browser
        .goto(sca.authentication_url.as_deref().unwrap())
        .await
        .unwrap();
    heading_becomes(&browser, "Sign in to your bank").await;
    type_into(&browser, "username", "user_sca").await;
    type_into(&browser, "password", "pass_good\u{E007}").await;
    heading_becomes(&browser, "Approve in your bank's app").await;
    screenshot(&browser, "connect-6-approve-in-app").await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    element(&browser, Locator::Css("button.primary"))
        .await
        .click()
        .await
        .unwrap();
    heading_becomes(&browser, "Choose the accounts to share").await;

    // A link whose token was changed opens nothing.
    let link = connection.authentication_url.unwrap();
    let forged = format!(
        "{}{}",
        &link[..link.len() - 1],
        if link.ends_with('0') { "1" } else { "0" }
    );
    browser.goto(&forged).await.unwrap();
    assert_eq!(heading(&browser).await, "Link not valid");

    browser.close().await.unwrap();
}
