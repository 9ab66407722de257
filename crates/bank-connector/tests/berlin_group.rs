#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! The Berlin Group client against the repository's Berlin Group server
//! over the sandbox bank, for real over loopback: every sandbox user, the
//! same data as the sandbox gives directly, and the bank misbehaving (429,
//! a stall, a 5xx), with the requests that reach the server counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use paycore_bank_connector::berlin_group::{
    BankEndpoint, BerlinGroupClient, ClientConfig, RetryPolicy, ServerConfig, router, server,
};
use paycore_bank_connector::{
    Account, AccountId, BankConnector, BookingStatus, CardId, ConnectorError, Consent, ConsentRequest,
    Credentials, Cursor, InstitutionId, Permission, RedirectCallback, SandboxBank, SignInOutcome,
    SignInRequest, SyncPoint, Transaction, TransactionPage, TransactionQuery, TransactionStatus,
};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NOW: OffsetDateTime = datetime!(2026-12-06 12:00 UTC);
const DE: &str = "sandbox_de_rheinbank";
const PL: &str = "sandbox_pl_wisla";
const GB: &str = "sandbox_gb_albion";
const FR: &str = "sandbox_fr_lumiere";
const BACK: &str = "https://client.example/back";

#[derive(Clone, Debug)]
enum Fault {
    /// Answer this status (with this `Retry-After`) instead of the bank.
    Status(u16, &'static str, Option<u64>),
    /// Wait this long, then answer.
    Stall(StdDuration),
}

/// The server on a loopback port, the faults to inject into the next
/// requests, and how many requests reached it.
#[derive(Clone, Debug)]
struct Bank {
    address: SocketAddr,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    requests: Arc<AtomicUsize>,
}

impl Bank {
    async fn start() -> Self {
        let faults: Arc<Mutex<VecDeque<Fault>>> = Arc::default();
        let requests: Arc<AtomicUsize> = Arc::default();
        let (f, r) = (faults.clone(), requests.clone());
        let app = router(
            Arc::new(SandboxBank::new()),
            ServerConfig {
                page_size: 250,
                ..ServerConfig::default()
            },
        )
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let (faults, requests) = (f.clone(), r.clone());
                async move {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let fault = faults.lock().unwrap().pop_front();
                    match fault {
                        Some(Fault::Status(status, code, retry_after)) => {
                            let body =
                                format!(r#"{{"tppMessages":[{{"category":"ERROR","code":"{code}"}}]}}"#);
                            let mut response = (
                                StatusCode::from_u16(status).unwrap(),
                                [(header::CONTENT_TYPE, "application/json")],
                                body,
                            )
                                .into_response();
                            if let Some(seconds) = retry_after {
                                response
                                    .headers_mut()
                                    .insert(header::RETRY_AFTER, seconds.to_string().parse().unwrap());
                            }
                            response
                        }
                        Some(Fault::Stall(wait)) => {
                            tokio::time::sleep(wait).await;
                            next.run(request).await
                        }
                        None => next.run(request).await,
                    }
                }
            },
        ));
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(server::serve(listener, app, std::future::pending()));
        Self {
            address,
            faults,
            requests,
        }
    }

    fn inject(&self, fault: Fault) {
        self.faults.lock().unwrap().push_back(fault);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    async fn berlin_group_client(&self, retry: RetryPolicy) -> BerlinGroupClient {
        let banks = SandboxBank::new()
            .institutions()
            .await
            .unwrap()
            .into_iter()
            .map(|institution| BankEndpoint {
                base_url: format!("http://{}/{}", self.address, institution.id),
                institution,
            })
            .collect();
        BerlinGroupClient::new(ClientConfig {
            banks,
            retry,
            sandbox_clock: true,
            extra_roots: Vec::new(),
        })
        .unwrap()
    }

    async fn client_with(&self, retry: RetryPolicy) -> Arc<dyn BankConnector> {
        Arc::new(self.berlin_group_client(retry).await)
    }

    async fn client(&self) -> Arc<dyn BankConnector> {
        self.client_with(RetryPolicy {
            timeout: StdDuration::from_secs(20),
            max_attempts: 3,
            base_backoff: StdDuration::from_millis(10),
            max_backoff: StdDuration::from_millis(200),
        })
        .await
    }
}

fn sign_in(username: &str, password: &str, institution: &str, now: OffsetDateTime) -> SignInRequest {
    SignInRequest {
        institution: InstitutionId::new(institution),
        credentials: Credentials {
            username: username.into(),
            password: password.into(),
        },
        consent: ConsentRequest {
            scope: Permission::ALL.into_iter().collect(),
            valid_until: now.date().saturating_add(Duration::days(180)),
            frequency_per_day: 4,
            recurring: true,
            max_history_days: 1_826,
        },
        redirect_uri: BACK.into(),
        now,
    }
}

async fn consent_asking(bank: &dyn BankConnector, request: SignInRequest) -> Consent {
    let now = request.now;
    match bank.start_sign_in(request).await.unwrap() {
        SignInOutcome::Connected { session } => bank.grant_consent(&session, now).await.unwrap(),
        other => panic!("{other:?}"),
    }
}

async fn consent(bank: &dyn BankConnector, user: &str, institution: &str, now: OffsetDateTime) -> Consent {
    consent_asking(bank, sign_in(user, "pass_good", institution, now)).await
}

fn query(status: BookingStatus, page_size: u32, cursor: Option<Cursor>) -> TransactionQuery {
    TransactionQuery {
        from: date!(2000 - 01 - 01),
        to: date!(2100 - 01 - 01),
        status,
        cursor,
        page_size,
    }
}

/// Every transaction of an account (or card), page after page.
async fn all_transactions(
    bank: &dyn BankConnector,
    consent: &Consent,
    account: &str,
    card: bool,
    at: SyncPoint,
    page_size: u32,
) -> Vec<Transaction> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let query = query(BookingStatus::Both, page_size, cursor);
        let page: TransactionPage = if card {
            bank.card_transactions(consent, &CardId::new(account), &query, at)
                .await
        } else {
            bank.transactions(consent, &AccountId::new(account), &query, at)
                .await
        }
        .unwrap();
        assert!(page.transactions.len() <= page_size as usize);
        all.extend(page.transactions);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

fn by_id(transactions: &[Transaction]) -> HashMap<String, Transaction> {
    let map: HashMap<_, _> = transactions
        .iter()
        .map(|t| (t.id.to_string(), t.clone()))
        .collect();
    assert_eq!(map.len(), transactions.len(), "every transaction exactly once");
    map
}

/// An account without its owners' IDs (the standard carries only names).
fn without_owner_ids(account: &Account) -> (Account, Vec<String>) {
    let mut account = account.clone();
    let roles = account.owners.iter().map(|o| format!("{:?}", o.role)).collect();
    account.owners.clear();
    (account, roles)
}

#[tokio::test]
async fn user_good_through_the_client_is_the_sandbox() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let direct: Arc<dyn BankConnector> = Arc::new(SandboxBank::new());
    let at = SyncPoint::first(NOW);
    for institution in [DE, PL] {
        let over_http = consent(&*client, "user_good", institution, NOW).await;
        let sandbox = consent(&*direct, "user_good", institution, NOW).await;
        assert_eq!(over_http.valid_until, sandbox.valid_until);
        assert_eq!(over_http.frequency_per_day, sandbox.frequency_per_day);
        assert_eq!(over_http.scope, sandbox.scope);
        assert_eq!(over_http.max_history_days, sandbox.max_history_days);

        let accounts = client.accounts(&over_http, at).await.unwrap();
        let expected = direct.accounts(&sandbox, at).await.unwrap();
        assert_eq!(accounts.len(), 5);
        assert_eq!(
            accounts.iter().map(without_owner_ids).collect::<Vec<_>>(),
            expected.iter().map(without_owner_ids).collect::<Vec<_>>()
        );
        let owners = client.owners(&over_http, at).await.unwrap();
        let expected_owners = direct.owners(&sandbox, at).await.unwrap();
        assert_eq!(
            owners.iter().map(|o| &o.name).collect::<Vec<_>>(),
            expected_owners.iter().map(|o| &o.name).collect::<Vec<_>>()
        );
        for account in &accounts {
            for owner in &account.owners {
                assert!(owners.iter().any(|o| o.id == owner.owner));
            }
            let mine = all_transactions(&*client, &over_http, account.id.as_str(), false, at, 1_000).await;
            let theirs = all_transactions(&*direct, &sandbox, account.id.as_str(), false, at, 1_000).await;
            assert!(mine.len() > 250, "several pages of the bank's");
            assert_eq!(by_id(&mine), by_id(&theirs), "{}", account.name);
        }

        if institution == PL {
            let cards = client.credit_cards(&over_http, at).await.unwrap();
            let expected = direct.credit_cards(&sandbox, at).await.unwrap();
            assert_eq!(cards.len(), 1);
            let strip = |c: &paycore_bank_connector::CreditCard| {
                let mut c = c.clone();
                c.owners.clear();
                c
            };
            assert_eq!(strip(&cards[0]), strip(&expected[0]));
            let mine = all_transactions(&*client, &over_http, cards[0].id.as_str(), true, at, 1_000).await;
            let theirs = all_transactions(&*direct, &sandbox, cards[0].id.as_str(), true, at, 1_000).await;
            assert!(!mine.is_empty());
            assert_eq!(by_id(&mine), by_id(&theirs));
        }
    }
}

#[tokio::test]
async fn pages_of_any_size_cover_every_transaction_once() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let consent = consent(&*client, "user_good", DE, NOW).await;
    let at = SyncPoint::first(NOW);
    let account = client.accounts(&consent, at).await.unwrap().remove(1).id;
    let whole = all_transactions(&*client, &consent, account.as_str(), false, at, 1_000).await;
    let small = all_transactions(&*client, &consent, account.as_str(), false, at, 137).await;
    assert_eq!(by_id(&whole), by_id(&small));
    assert_eq!(whole, small, "the same order too");

    // A date range, and pending only.
    let march = TransactionQuery {
        from: date!(2024 - 03 - 01),
        to: date!(2024 - 03 - 31),
        status: BookingStatus::Booked,
        cursor: None,
        page_size: 1_000,
    };
    let page = client.transactions(&consent, &account, &march, at).await.unwrap();
    assert!(page.next.is_none());
    assert_eq!(
        page.transactions.len(),
        whole
            .iter()
            .filter(|t| t.value_date >= march.from && t.value_date <= march.to)
            .count()
    );
    let pending = client
        .transactions(
            &consent,
            &account,
            &query(BookingStatus::Pending, 1_000, None),
            at,
        )
        .await
        .unwrap();
    assert!(
        pending
            .transactions
            .iter()
            .all(|t| t.status == TransactionStatus::Pending)
    );

    // Cursors of another account, or made up, are refused.
    let other = client.accounts(&consent, at).await.unwrap().remove(0).id;
    let first = client
        .transactions(&consent, &account, &query(BookingStatus::Both, 10, None), at)
        .await
        .unwrap();
    assert!(matches!(
        client
            .transactions(&consent, &other, &query(BookingStatus::Both, 10, first.next), at)
            .await,
        Err(ConnectorError::InvalidToken { what: "cursor" })
    ));
    assert!(matches!(
        client
            .transactions(
                &consent,
                &account,
                &query(BookingStatus::Both, 10, Some(Cursor("bg1.nope".into()))),
                at
            )
            .await,
        Err(ConnectorError::InvalidToken { what: "cursor" })
    ));
    assert!(matches!(
        client
            .transactions(
                &consent,
                &AccountId::new("sbx-acc-nope"),
                &query(BookingStatus::Both, 10, None),
                at
            )
            .await,
        Err(ConnectorError::UnknownAccount(_))
    ));
    for size in [0, 1_001] {
        assert!(matches!(
            client
                .transactions(&consent, &account, &query(BookingStatus::Both, size, None), at)
                .await,
            Err(ConnectorError::InvalidRequest(_))
        ));
    }
}

#[tokio::test]
async fn wrong_password_unknown_user_and_bank_down() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    for (user, password) in [("user_good", "pass_bad"), ("nobody", "pass_good")] {
        assert_eq!(
            client
                .start_sign_in(sign_in(user, password, DE, NOW))
                .await
                .unwrap(),
            SignInOutcome::InvalidCredentials
        );
    }
    assert_eq!(
        client
            .start_sign_in(sign_in("user_bank_down", "pass_good", PL, NOW))
            .await
            .unwrap(),
        SignInOutcome::BankDown {
            retry_after: Some(NOW + Duration::minutes(15))
        }
    );
    assert!(matches!(
        client
            .start_sign_in(sign_in("user_good", "pass_good", "nowhere", NOW))
            .await,
        Err(ConnectorError::UnknownInstitution(_))
    ));
    // Requests that make no sense are refused, by the bank or before it.
    for broken in [
        |r: &mut ConsentRequest| r.scope = [Permission::Owners].into(),
        |r: &mut ConsentRequest| r.valid_until = date!(2026 - 01 - 01),
        |r: &mut ConsentRequest| r.frequency_per_day = 0,
        |r: &mut ConsentRequest| r.max_history_days = 0,
    ] {
        let mut request = sign_in("user_good", "pass_good", DE, NOW);
        broken(&mut request.consent);
        assert!(matches!(
            client.start_sign_in(request).await,
            Err(ConnectorError::InvalidRequest(_))
        ));
    }
}

#[tokio::test]
async fn user_otp_enters_the_code() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let SignInOutcome::OneTimeCodeRequired { challenge } = client
        .start_sign_in(sign_in("user_otp", "pass_good", DE, NOW))
        .await
        .unwrap()
    else {
        panic!("no one-time code")
    };
    assert!(challenge.prompt.contains("123456"), "{}", challenge.prompt);
    let later = NOW + Duration::seconds(30);
    let SignInOutcome::Connected { session } = client
        .submit_one_time_code(&challenge.token, "123456", later)
        .await
        .unwrap()
    else {
        panic!("not connected")
    };
    let consent = client.grant_consent(&session, later).await.unwrap();
    assert_eq!(
        client
            .accounts(&consent, SyncPoint::first(later))
            .await
            .unwrap()
            .len(),
        2
    );

    // A wrong code fails the authorisation (and the consent).
    let SignInOutcome::OneTimeCodeRequired { challenge } = client
        .start_sign_in(sign_in("user_otp", "pass_good", DE, NOW))
        .await
        .unwrap()
    else {
        panic!("no one-time code")
    };
    assert!(matches!(
        client
            .submit_one_time_code(&challenge.token, "000000", later)
            .await
            .unwrap(),
        SignInOutcome::AuthenticationFailed { .. }
    ));
    assert!(matches!(
        client
            .submit_one_time_code(&challenge.token, "123456", later)
            .await,
        Err(ConnectorError::InvalidToken { .. })
    ));
    assert!(matches!(
        client
            .submit_one_time_code("sbx1.otp.forged", "123456", later)
            .await,
        Err(ConnectorError::InvalidToken { .. })
    ));
}

#[tokio::test]
async fn user_sca_approves_in_the_app() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let SignInOutcome::ScaRequired { challenge } = client
        .start_sign_in(sign_in("user_sca", "pass_good", FR, NOW))
        .await
        .unwrap()
    else {
        panic!("no SCA")
    };
    assert!(matches!(
        client
            .poll_sca(&challenge.token, NOW + Duration::seconds(1))
            .await
            .unwrap(),
        SignInOutcome::ScaRequired { .. }
    ));
    let at = NOW + Duration::seconds(3);
    let SignInOutcome::Connected { session } = client.poll_sca(&challenge.token, at).await.unwrap() else {
        panic!("not approved")
    };
    let consent = client.grant_consent(&session, at).await.unwrap();
    assert_eq!(
        client
            .accounts(&consent, SyncPoint::first(at))
            .await
            .unwrap()
            .len(),
        2
    );
}

/// A GET over a plain TCP connection: the status, headers and body.
async fn get(url: &str, headers: &[(&str, String)]) -> (u16, HashMap<String, String>, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn state_of(location: &str) -> (Option<String>, Option<String>) {
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    let pairs: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    (pairs.get("state").cloned(), pairs.get("error").cloned())
}

#[tokio::test]
async fn user_redirect_goes_through_the_banks_page() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let clock = vec![("x-sandbox-now", "2026-12-06T12:01:00Z".to_owned())];
    let SignInOutcome::RedirectRequired { url, state } = client
        .start_sign_in(sign_in("user_redirect", "pass_good", DE, NOW))
        .await
        .unwrap()
    else {
        panic!("no redirect")
    };
    assert!(url.starts_with(&format!("http://{}/", bank.address)), "{url}");
    // The bank's page, then the PSU approves.
    let (status, _, page) = get(&url, &clock).await;
    assert_eq!(status, 200);
    assert!(page.contains("decision=approve"), "{page}");
    let (status, headers, _) = get(&format!("{url}?decision=approve"), &clock).await;
    assert_eq!(status, 303);
    let location = &headers["location"];
    assert!(location.starts_with(BACK), "{location}");
    let (back_state, error) = state_of(location);
    assert_eq!((back_state.as_deref(), error), (Some(state.as_str()), None));
    let callback = RedirectCallback {
        state,
        code: None,
        error: None,
    };
    let at = NOW + Duration::minutes(1);
    let SignInOutcome::Connected { session } = client.complete_redirect(&callback, at).await.unwrap() else {
        panic!("not connected")
    };
    let consent = client.grant_consent(&session, at).await.unwrap();
    assert_eq!(
        client
            .accounts(&consent, SyncPoint::first(at))
            .await
            .unwrap()
            .len(),
        2
    );

    // The PSU denies: back with an error, and the consent is rejected.
    let SignInOutcome::RedirectRequired { url, state } = client
        .start_sign_in(sign_in("user_redirect", "pass_good", DE, NOW))
        .await
        .unwrap()
    else {
        panic!("no redirect")
    };
    let (status, headers, _) = get(&format!("{url}?decision=deny"), &clock).await;
    assert_eq!(status, 303);
    let (back_state, error) = state_of(&headers["location"]);
    assert_eq!(back_state.as_deref(), Some(state.as_str()));
    assert_eq!(error.as_deref(), Some("access_denied"));
    for error in [error, None] {
        let callback = RedirectCallback {
            state: state.clone(),
            code: None,
            error,
        };
        assert!(matches!(
            client.complete_redirect(&callback, at).await.unwrap(),
            SignInOutcome::AuthenticationFailed { .. }
        ));
    }
}

#[tokio::test]
async fn user_rate_limited_gets_429_and_a_retry_time() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let consent = consent(&*client, "user_rate_limited", DE, NOW).await;
    assert_eq!(
        client
            .accounts(&consent, SyncPoint::first(NOW))
            .await
            .unwrap()
            .len(),
        2
    );
    let again = SyncPoint::after(NOW, NOW + Duration::hours(2));
    let before = bank.requests();
    assert_eq!(
        client.accounts(&consent, again).await.unwrap_err(),
        ConnectorError::RateLimited {
            retry_after: datetime!(2026-12-07 00:00 UTC)
        }
    );
    assert_eq!(bank.requests(), before + 1, "a 429 is not retried");
    let tomorrow = SyncPoint::after(NOW, datetime!(2026-12-07 00:00 UTC));
    assert_eq!(client.accounts(&consent, tomorrow).await.unwrap().len(), 2);

    // On the wire: 429, ACCESS_EXCEEDED, Retry-After in seconds.
    let (status, headers, body) = get(
        &format!("http://{}/{DE}/v1/accounts", bank.address),
        &[
            ("x-request-id", "1".into()),
            ("consent-id", consent.id.clone()),
            ("x-sandbox-now", "2026-12-06T14:00:00Z".into()),
            ("x-sandbox-previous-sync", "2026-12-06T12:00:00Z".into()),
        ],
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "36000");
    assert!(body.contains(r#""code":"ACCESS_EXCEEDED""#), "{body}");
}

#[tokio::test]
async fn consents_expire() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let consent = consent(&*client, "user_good", GB, NOW).await;
    let late = SyncPoint::after(NOW, NOW + Duration::days(181));
    let error = client.accounts(&consent, late).await.unwrap_err();
    assert!(
        matches!(error, ConnectorError::ConsentExpired { .. }),
        "{error:?}"
    );

    let consent = self::consent(&*client, "user_consent_expired", DE, NOW).await;
    assert_eq!(
        client
            .accounts(&consent, SyncPoint::first(NOW))
            .await
            .unwrap()
            .len(),
        2
    );
    let next = SyncPoint::after(NOW, NOW + Duration::days(1));
    assert_eq!(
        client.accounts(&consent, next).await,
        Err(ConnectorError::ConsentExpired { expired_at: NOW })
    );
    // The bank keeps it expired; a new consent goes on.
    assert!(matches!(
        client
            .accounts(&consent, SyncPoint::first(NOW + Duration::days(1)))
            .await,
        Err(ConnectorError::ConsentExpired { .. })
    ));
    let renewed = self::consent(&*client, "user_consent_expired", DE, NOW + Duration::days(1)).await;
    assert_eq!(client.accounts(&renewed, next).await.unwrap().len(), 2);

    // A consent the client ended (the connection deleted) is refused after.
    let concrete = bank.berlin_group_client(RetryPolicy::default()).await;
    let ended = self::consent(&concrete, "user_joint", DE, NOW).await;
    concrete.delete_consent(&ended, NOW).await.unwrap();
    concrete.delete_consent(&ended, NOW).await.unwrap();
    assert_eq!(
        concrete.accounts(&ended, SyncPoint::first(NOW)).await,
        Err(ConnectorError::ConsentExpired { expired_at: NOW })
    );
}

#[tokio::test]
async fn user_account_closes_and_user_pending_posts() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let consent = consent(&*client, "user_account_closes", FR, NOW).await;
    let first = client.accounts(&consent, SyncPoint::first(NOW)).await.unwrap();
    assert_eq!(first.len(), 3);
    let closing = first.iter().find(|a| a.name == "Old savings").unwrap().id.clone();
    let next = SyncPoint::after(NOW, NOW + Duration::days(1));
    let second = client.accounts(&consent, next).await.unwrap();
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|a| a.id != closing));
    assert!(matches!(
        client
            .transactions(&consent, &closing, &query(BookingStatus::Both, 10, None), next)
            .await,
        Err(ConnectorError::UnknownAccount(_))
    ));

    let consent = self::consent(&*client, "user_pending", "sandbox_es_sol", NOW).await;
    let first = SyncPoint::first(NOW);
    let account = client.accounts(&consent, first).await.unwrap().remove(0).id;
    let pending = client
        .transactions(
            &consent,
            &account,
            &query(BookingStatus::Pending, 1_000, None),
            first,
        )
        .await
        .unwrap()
        .transactions;
    assert!(pending.len() >= 14, "{}", pending.len());
    let next = SyncPoint::after(NOW, NOW + Duration::hours(1));
    let after = all_transactions(&*client, &consent, account.as_str(), false, next, 1_000).await;
    let after = by_id(&after);
    let booked = pending
        .iter()
        .filter(|p| after[p.id.as_str()].status == TransactionStatus::Booked)
        .count();
    assert!(booked * 2 > pending.len(), "{booked} of {}", pending.len());
}

#[tokio::test]
async fn a_429_from_the_bank_is_honoured_without_retrying() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let consent = consent(&*client, "user_good", GB, NOW).await;
    bank.inject(Fault::Status(429, "ACCESS_EXCEEDED", Some(120)));
    let before = bank.requests();
    assert_eq!(
        client.accounts(&consent, SyncPoint::first(NOW)).await,
        Err(ConnectorError::RateLimited {
            retry_after: NOW + Duration::seconds(120)
        })
    );
    assert_eq!(bank.requests(), before + 1);
    // Without Retry-After: the next midnight UTC.
    bank.inject(Fault::Status(429, "ACCESS_EXCEEDED", None));
    assert_eq!(
        client.accounts(&consent, SyncPoint::first(NOW)).await,
        Err(ConnectorError::RateLimited {
            retry_after: datetime!(2026-12-07 00:00 UTC)
        })
    );
}

#[tokio::test]
async fn a_stalled_bank_times_out_and_the_retry_succeeds() {
    let bank = Bank::start().await;
    let client = bank
        .client_with(RetryPolicy {
            timeout: StdDuration::from_millis(500),
            max_attempts: 3,
            base_backoff: StdDuration::from_millis(10),
            max_backoff: StdDuration::from_millis(100),
        })
        .await;
    let consent = consent(&*client, "user_joint", GB, NOW).await;
    bank.inject(Fault::Stall(StdDuration::from_secs(3)));
    let before = bank.requests();
    let started = std::time::Instant::now();
    assert_eq!(
        client
            .accounts(&consent, SyncPoint::first(NOW))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(bank.requests(), before + 2, "one timed out, one answered");
    assert!(started.elapsed() < StdDuration::from_secs(3));

    // Every attempt stalled: a transport error, after the bounded attempts.
    for _ in 0..3 {
        bank.inject(Fault::Stall(StdDuration::from_secs(2)));
    }
    let before = bank.requests();
    assert!(matches!(
        client.accounts(&consent, SyncPoint::first(NOW)).await,
        Err(ConnectorError::Transport(_))
    ));
    assert_eq!(bank.requests(), before + 3);
}

#[tokio::test]
async fn a_5xx_once_is_retried_but_a_consent_is_created_once() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let consent = consent(&*client, "user_joint", GB, NOW).await;
    for (status, code) in [
        (503, "SERVICE_UNAVAILABLE"),
        (500, "INTERNAL_SERVER_ERROR"),
        (502, ""),
    ] {
        bank.inject(Fault::Status(status, code, None));
        let before = bank.requests();
        assert_eq!(
            client
                .accounts(&consent, SyncPoint::first(NOW))
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(bank.requests(), before + 2, "{status}");
    }
    // A 503 asking for longer than the client waits: given up at once.
    bank.inject(Fault::Status(503, "SERVICE_UNAVAILABLE", Some(600)));
    let before = bank.requests();
    assert_eq!(
        client.accounts(&consent, SyncPoint::first(NOW)).await,
        Err(ConnectorError::BankUnavailable {
            retry_after: Some(NOW + Duration::minutes(10))
        })
    );
    assert_eq!(bank.requests(), before + 1);
    // POST /v1/consents is not idempotent: sent once.
    bank.inject(Fault::Status(500, "", None));
    let before = bank.requests();
    assert_eq!(
        client
            .start_sign_in(sign_in("user_good", "pass_good", GB, NOW))
            .await
            .unwrap(),
        SignInOutcome::BankDown { retry_after: None }
    );
    assert_eq!(bank.requests(), before + 1);
}

#[tokio::test]
async fn frequency_per_day_is_kept_by_the_client() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let mut request = sign_in("user_good", "pass_good", GB, NOW);
    request.consent.frequency_per_day = 2;
    let consent = consent_asking(&*client, request).await;
    assert_eq!(consent.frequency_per_day, 2);
    let first = SyncPoint::first(NOW);
    let accounts = client.accounts(&consent, first).await.unwrap();
    // Every call of one sync is one access.
    client.owners(&consent, first).await.unwrap();
    client
        .transactions(
            &consent,
            &accounts[0].id,
            &query(BookingStatus::Both, 10, None),
            first,
        )
        .await
        .unwrap();
    let second = SyncPoint::after(NOW, NOW + Duration::hours(1));
    client.accounts(&consent, second).await.unwrap();
    let third = SyncPoint::after(NOW + Duration::hours(1), NOW + Duration::hours(2));
    let before = bank.requests();
    assert_eq!(
        client.accounts(&consent, third).await,
        Err(ConnectorError::RateLimited {
            retry_after: datetime!(2026-12-07 00:00 UTC)
        })
    );
    assert_eq!(bank.requests(), before, "no request reached the bank");
    // The syncs already counted go on; the next day counts anew.
    client.accounts(&consent, second).await.unwrap();
    let tomorrow = SyncPoint::after(NOW, datetime!(2026-12-07 08:00 UTC));
    client.accounts(&consent, tomorrow).await.unwrap();
}

#[tokio::test]
async fn scope_cards_and_errors_on_the_wire() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let at = SyncPoint::first(NOW);
    let mut request = sign_in("user_good", "pass_good", GB, NOW);
    request.consent.scope = [Permission::Accounts].into();
    let narrow = consent_asking(&*client, request).await;
    assert_eq!(
        narrow.scope,
        HashSet::from([Permission::Accounts]).into_iter().collect()
    );
    let before = bank.requests();
    assert_eq!(
        client.owners(&narrow, at).await,
        Err(ConnectorError::OutOfScope(Permission::Owners))
    );
    assert_eq!(bank.requests(), before);
    let accounts = client.accounts(&narrow, at).await.unwrap();
    assert!(accounts.iter().all(|a| a.balances.is_empty()));
    assert_eq!(
        client
            .transactions(
                &narrow,
                &accounts[0].id,
                &query(BookingStatus::Both, 10, None),
                at
            )
            .await,
        Err(ConnectorError::OutOfScope(Permission::Transactions))
    );
    let full = consent(&*client, "user_good", GB, NOW).await;
    assert_eq!(
        client.credit_cards(&full, at).await,
        Err(ConnectorError::Unsupported("credit cards"))
    );
    let pl = consent(&*client, "user_joint", PL, NOW).await;
    assert!(client.credit_cards(&pl, at).await.unwrap().is_empty());

    // tppMessages with the standard's codes.
    let url = format!("http://{}/{GB}/v1/accounts", bank.address);
    let (status, headers, body) = get(&url, &[("x-request-id", "req-1".into())]).await;
    assert_eq!(status, 400);
    assert_eq!(headers["x-request-id"], "req-1");
    assert!(
        body.contains(r#""tppMessages":[{"category":"ERROR","code":"FORMAT_ERROR""#),
        "{body}"
    );
    let (status, _, body) = get(
        &url,
        &[("x-request-id", "1".into()), ("consent-id", "nope".into())],
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("CONSENT_UNKNOWN"), "{body}");
    let (status, _, body) = get(
        &format!("{url}/sbx-acc-nope/transactions?bookingStatus=both&dateFrom=2026-01-01"),
        &[
            ("x-request-id", "1".into()),
            ("consent-id", full.id.clone()),
            ("x-sandbox-now", "2026-12-06T12:00:00Z".into()),
        ],
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.contains("RESOURCE_UNKNOWN"), "{body}");
    let (status, _, body) = get(
        &format!("http://{}/{GB}/v1/consents/{}", bank.address, full.id),
        &[("x-request-id", "1".into())],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""consentStatus":"valid""#), "{body}");
    assert!(body.contains(r#""frequencyPerDay":4"#), "{body}");
}

#[tokio::test]
async fn an_https_bank_through_rustls() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = router(
        Arc::new(SandboxBank::new()),
        ServerConfig {
            public_url: Some(format!("https://localhost:{port}")),
            ..ServerConfig::default()
        },
    );
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        tower::ServiceExt::oneshot(app.clone(), request)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let institution = SandboxBank::new()
        .institutions()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.id.as_str() == GB)
        .unwrap();
    let endpoint = BankEndpoint {
        institution,
        base_url: format!("https://localhost:{port}/{GB}"),
    };
    let client = |extra_roots| {
        BerlinGroupClient::new(ClientConfig {
            banks: vec![endpoint.clone()],
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            sandbox_clock: true,
            extra_roots,
        })
        .unwrap()
    };
    let trusting = client(vec![cert]);
    let consent = consent(&trusting, "user_joint", GB, NOW).await;
    assert_eq!(
        trusting
            .accounts(&consent, SyncPoint::first(NOW))
            .await
            .unwrap()
            .len(),
        2
    );
    // A certificate the client does not trust: the bank cannot be reached.
    assert_eq!(
        client(Vec::new())
            .start_sign_in(sign_in("user_joint", "pass_good", GB, NOW))
            .await
            .unwrap(),
        SignInOutcome::BankDown { retry_after: None }
    );
}

#[tokio::test]
async fn the_history_asked_for_is_kept() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let direct: Arc<dyn BankConnector> = Arc::new(SandboxBank::new());
    let asking = || {
        let mut request = sign_in("user_good", "pass_good", GB, NOW);
        request.consent.max_history_days = 90;
        request
    };
    let over_http = consent_asking(&*client, asking()).await;
    let sandbox = consent_asking(&*direct, asking()).await;
    assert_eq!(over_http.max_history_days, 90);
    let at = SyncPoint::first(NOW);
    let account = client.accounts(&over_http, at).await.unwrap().remove(0).id;
    let mine = all_transactions(&*client, &over_http, account.as_str(), false, at, 1_000).await;
    let theirs = all_transactions(&*direct, &sandbox, account.as_str(), false, at, 1_000).await;
    assert!(!mine.is_empty());
    assert!(
        mine.iter()
            .all(|t| t.value_date > NOW.date() - Duration::days(90))
    );
    assert_eq!(by_id(&mine), by_id(&theirs));
}

#[tokio::test]
async fn the_server_keeps_frequency_per_day_as_banks_do() {
    let bank = Bank::start().await;
    let client = bank.client().await;
    let mut request = sign_in("user_good", "pass_good", GB, NOW);
    request.consent.frequency_per_day = 2;
    let consent = consent_asking(&*client, request).await;
    let url = format!("http://{}/{GB}/v1/accounts", bank.address);
    let at = |time: &str, psu: bool| {
        let mut headers = vec![
            ("x-request-id", "1".to_owned()),
            ("consent-id", consent.id.clone()),
            ("x-sandbox-now", time.to_owned()),
        ];
        if psu {
            headers.push(("psu-ip-address", "192.0.2.1".to_owned()));
        }
        headers
    };
    for time in [
        "2026-12-06T12:00:00Z",
        "2026-12-06T13:00:00Z",
        "2026-12-06T12:00:00Z",
    ] {
        assert_eq!(get(&url, &at(time, false)).await.0, 200, "{time}");
    }
    let (status, headers, body) = get(&url, &at("2026-12-06T14:00:00Z", false)).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "36000");
    assert!(body.contains("ACCESS_EXCEEDED"), "{body}");
    // With the PSU present, or the next day: answered.
    assert_eq!(get(&url, &at("2026-12-06T14:00:00Z", true)).await.0, 200);
    assert_eq!(get(&url, &at("2026-12-07T01:00:00Z", false)).await.0, 200);
}
