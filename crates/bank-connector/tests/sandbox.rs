#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! The sandbox bank, driven as a server would drive it: through
//! `Arc<dyn BankConnector>`, one test per behaviour a user relies on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use paycore_bank_connector::sandbox::iban_is_valid;
use paycore_bank_connector::{
    Account, AccountId, AccountIdentifier, BankConnector, BookingStatus, ConnectorError, Consent,
    ConsentRequest, Credentials, Cursor, InstitutionId, OwnerRole, Permission, RedirectCallback, SandboxBank,
    Session, SignInOutcome, SignInRequest, SyncPoint, Transaction, TransactionQuery, TransactionStatus,
};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-12-06 12:00 UTC);
const DE: &str = "sandbox_de_rheinbank";
const PL: &str = "sandbox_pl_wisla";
const GB: &str = "sandbox_gb_albion";

fn bank() -> Arc<dyn BankConnector> {
    Arc::new(SandboxBank::new())
}

fn sign_in(username: &str, password: &str, institution: &str, now: OffsetDateTime) -> SignInRequest {
    SignInRequest {
        institution: InstitutionId::new(institution),
        credentials: Credentials {
            username: username.into(),
            password: password.into(),
        },
        consent: consent_request(now),
        redirect_uri: "https://client.example/back".into(),
        now,
    }
}

fn consent_request(now: OffsetDateTime) -> ConsentRequest {
    ConsentRequest {
        scope: Permission::ALL.into_iter().collect(),
        valid_until: now.date().saturating_add(Duration::days(180)),
        frequency_per_day: 4,
        recurring: true,
        max_history_days: 1_826,
    }
}

async fn session_asking(bank: &dyn BankConnector, request: SignInRequest) -> Session {
    match bank.start_sign_in(request).await.unwrap() {
        SignInOutcome::Connected { session } => session,
        other => panic!("{other:?}"),
    }
}

async fn session(bank: &dyn BankConnector, user: &str, institution: &str, now: OffsetDateTime) -> Session {
    session_asking(bank, sign_in(user, "pass_good", institution, now)).await
}

async fn consent(bank: &dyn BankConnector, user: &str, institution: &str, now: OffsetDateTime) -> Consent {
    let session = session(bank, user, institution, now).await;
    bank.grant_consent(&session, now).await.unwrap()
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

/// Every transaction of an account, page after page.
async fn all_transactions(
    bank: &dyn BankConnector,
    consent: &Consent,
    account: &AccountId,
    at: SyncPoint,
    status: BookingStatus,
    page_size: u32,
) -> Vec<Transaction> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = bank
            .transactions(consent, account, &query(status, page_size, cursor), at)
            .await
            .unwrap();
        assert!(page.transactions.len() <= page_size as usize);
        all.extend(page.transactions);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

async fn accounts(bank: &dyn BankConnector, consent: &Consent, at: SyncPoint) -> Vec<Account> {
    bank.accounts(consent, at).await.unwrap()
}

#[tokio::test]
async fn institutions_span_several_countries() {
    let institutions = bank().institutions().await.unwrap();
    let countries: BTreeSet<_> = institutions.iter().map(|i| i.country.to_string()).collect();
    assert_eq!(countries, ["DE", "ES", "FR", "GB", "PL"].map(String::from).into());
    let ids: HashSet<_> = institutions.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids.len(), institutions.len());
    for institution in &institutions {
        assert!(!institution.sources.is_empty());
        assert_eq!(institution.max_refreshes_per_day, 4);
        assert_eq!(institution.max_consent_days, 180);
        assert!(institution.max_history_days >= 5 * 365);
    }
    assert!(institutions.iter().any(|i| i.credit_cards));
}

#[tokio::test]
async fn user_good_has_five_accounts_and_five_years_of_realistic_history() {
    let bank = bank();
    let consent = consent(&*bank, "user_good", DE, NOW).await;
    let at = SyncPoint::first(NOW);
    let accounts = accounts(&*bank, &consent, at).await;
    assert_eq!(accounts.len(), 5, "{accounts:#?}");
    let currencies: BTreeSet<_> = accounts.iter().map(|a| a.currency.to_string()).collect();
    assert_eq!(currencies, ["CHF", "EUR", "USD"].map(String::from).into());
    let mut total = 0;
    let mut descriptions = Vec::new();
    let mut foreign_currencies = BTreeSet::new();
    let mut countries = BTreeSet::new();
    for account in &accounts {
        assert_eq!(account.balances.len(), 3);
        let transactions =
            all_transactions(&*bank, &consent, &account.id, at, BookingStatus::Both, 1_000).await;
        assert!(
            transactions.len() >= 1_000,
            "{}: {} transactions",
            account.name,
            transactions.len()
        );
        let oldest = transactions.first().map(|t| t.value_date).unwrap();
        let newest = transactions.last().map(|t| t.value_date).unwrap();
        assert!(
            oldest <= date!(2021 - 12 - 20),
            "{}: oldest {oldest}",
            account.name
        );
        assert!(oldest >= NOW.date() - Duration::days(1_826));
        assert!(
            newest >= NOW.date() - Duration::days(3),
            "{}: newest {newest}",
            account.name
        );
        let ids: HashSet<_> = transactions.iter().map(|t| t.id.clone()).collect();
        assert_eq!(ids.len(), transactions.len(), "bank IDs are unique per account");
        for t in &transactions {
            assert_eq!(t.amount.currency, account.currency);
            assert_ne!(t.amount.minor, 0, "{t:?}");
            if let Some(original) = t.original_amount {
                foreign_currencies.insert(original.currency.to_string());
            }
            if let Some(country) = t.country {
                countries.insert(country.to_string());
            }
            if let Some(iban) = t.counterparty.as_ref().and_then(|c| c.iban.as_deref()) {
                assert!(iban_is_valid(iban), "{iban}");
            }
        }
        total += transactions.len();
        descriptions.extend(transactions.into_iter().map(|t| t.description));
    }
    assert!(total >= 10_000, "{total} transactions");
    let count = |needle: &str| descriptions.iter().filter(|d| d.contains(needle)).count();
    // Monthly salary and rent over five years, subscriptions, groceries,
    // transfers between own accounts seen from both sides.
    assert!((59..=62).contains(&count("SALARY")), "{}", count("SALARY"));
    assert!((59..=62).contains(&count("Rent ")), "{}", count("Rent "));
    assert!(count("NETFLIX") >= 59);
    assert!(count("REWE") + count("EDEKA") + count("ALDI") >= 500);
    assert!(count("Auto-save to Savings") >= 1_000);
    assert_eq!(
        count("Auto-save to Savings"),
        count("Auto-save from Current account")
    );
    assert!(count("Top-up to USD account") >= 4);
    assert!(foreign_currencies.len() >= 2, "{foreign_currencies:?}");
    assert!(countries.len() >= 3, "{countries:?}");
}

#[tokio::test]
async fn accounts_carry_identifiers_owners_and_consistent_balances() {
    let bank = bank();
    let consent = consent(&*bank, "user_good", DE, NOW).await;
    let at = SyncPoint::first(NOW);
    let owners = bank.owners(&consent, at).await.unwrap();
    assert_eq!(owners.len(), 2, "holder and co-holder: {owners:?}");
    for account in accounts(&*bank, &consent, at).await {
        match &account.identifier {
            AccountIdentifier::Iban(iban) => assert!(iban_is_valid(iban) && iban.starts_with("DE")),
            other => panic!("{other:?}"),
        }
        for owner in &account.owners {
            assert!(owners.iter().any(|o| o.id == owner.owner));
        }
        let balance = |i: usize| account.balances[i].amount.minor;
        let pending: i64 = all_transactions(&*bank, &consent, &account.id, at, BookingStatus::Pending, 1_000)
            .await
            .iter()
            .map(|t| t.amount.minor)
            .sum();
        assert_eq!(balance(1) - balance(0), pending, "expected = booked + pending");
        assert!(balance(2) >= balance(1), "available includes any overdraft");
    }
    // A GB bank identifies its sterling accounts by sort code and number.
    let consent = consent_for(&*bank, "user_good", GB).await;
    let accounts = accounts(&*bank, &consent, at).await;
    assert!(accounts.iter().any(|a| matches!(
        &a.identifier,
        AccountIdentifier::Other { scheme, .. } if scheme == "UK.OBIE.SortCodeAccountNumber"
    )));
}

async fn consent_for(bank: &dyn BankConnector, user: &str, institution: &str) -> Consent {
    consent(bank, user, institution, NOW).await
}

#[tokio::test]
async fn wrong_password_unknown_user_and_unknown_institution() {
    let bank = bank();
    for (user, password) in [
        ("user_good", "pass_bad"),
        ("user_otp", ""),
        ("nobody", "pass_good"),
    ] {
        assert_eq!(
            bank.start_sign_in(sign_in(user, password, DE, NOW))
                .await
                .unwrap(),
            SignInOutcome::InvalidCredentials
        );
    }
    assert!(matches!(
        bank.start_sign_in(sign_in("user_good", "pass_good", "nowhere", NOW))
            .await,
        Err(ConnectorError::UnknownInstitution(_))
    ));
}

#[tokio::test]
async fn user_otp_needs_the_documented_code() {
    let bank = bank();
    let SignInOutcome::OneTimeCodeRequired { challenge } = bank
        .start_sign_in(sign_in("user_otp", "pass_good", DE, NOW))
        .await
        .unwrap()
    else {
        panic!("no challenge")
    };
    let later = NOW + Duration::seconds(30);
    assert!(matches!(
        bank.submit_one_time_code(&challenge.token, "000000", later)
            .await
            .unwrap(),
        SignInOutcome::AuthenticationFailed { .. }
    ));
    assert!(matches!(
        bank.submit_one_time_code(&challenge.token, "123456", NOW + Duration::minutes(6))
            .await
            .unwrap(),
        SignInOutcome::AuthenticationFailed { .. }
    ));
    let SignInOutcome::Connected { session } = bank
        .submit_one_time_code(&challenge.token, "123456", later)
        .await
        .unwrap()
    else {
        panic!("not connected")
    };
    let consent = bank.grant_consent(&session, later).await.unwrap();
    assert_eq!(accounts(&*bank, &consent, SyncPoint::first(later)).await.len(), 2);
    assert!(matches!(
        bank.submit_one_time_code("sbx1.otp.forged", "123456", later)
            .await,
        Err(ConnectorError::InvalidToken { .. })
    ));
}

#[tokio::test]
async fn user_sca_approves_in_the_app() {
    let bank = bank();
    let SignInOutcome::ScaRequired { challenge } = bank
        .start_sign_in(sign_in("user_sca", "pass_good", DE, NOW))
        .await
        .unwrap()
    else {
        panic!("no SCA")
    };
    assert!(matches!(
        bank.poll_sca(&challenge.token, NOW + Duration::seconds(1))
            .await
            .unwrap(),
        SignInOutcome::ScaRequired { .. }
    ));
    assert!(matches!(
        bank.poll_sca(&challenge.token, NOW + Duration::seconds(3))
            .await
            .unwrap(),
        SignInOutcome::Connected { .. }
    ));
    assert!(matches!(
        bank.poll_sca(&challenge.token, NOW + Duration::minutes(6))
            .await
            .unwrap(),
        SignInOutcome::AuthenticationFailed { .. }
    ));
}

#[tokio::test]
async fn user_redirect_goes_through_web_authentication() {
    let bank = bank();
    let SignInOutcome::RedirectRequired { url, state } = bank
        .start_sign_in(sign_in("user_redirect", "pass_good", DE, NOW))
        .await
        .unwrap()
    else {
        panic!("no redirect")
    };
    assert!(url.starts_with("https://") && url.contains(&state), "{url}");
    let back = |error: Option<&str>| RedirectCallback {
        state: state.clone(),
        code: Some("sandbox".into()),
        error: error.map(String::from),
    };
    assert!(matches!(
        bank.complete_redirect(&back(Some("access_denied")), NOW)
            .await
            .unwrap(),
        SignInOutcome::AuthenticationFailed { .. }
    ));
    assert!(matches!(
        bank.complete_redirect(&back(None), NOW + Duration::minutes(1))
            .await
            .unwrap(),
        SignInOutcome::Connected { .. }
    ));
    let forged = RedirectCallback {
        state: "sbx1.redirect.user_good.nowhere.0".into(),
        code: None,
        error: None,
    };
    assert!(matches!(
        bank.complete_redirect(&forged, NOW).await,
        Err(ConnectorError::InvalidToken { .. })
    ));
}

#[tokio::test]
async fn user_bank_down_is_told_when_to_retry() {
    let outcome = bank()
        .start_sign_in(sign_in("user_bank_down", "pass_good", PL, NOW))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        SignInOutcome::BankDown {
            retry_after: Some(NOW + Duration::minutes(15))
        }
    );
}

#[tokio::test]
async fn user_rate_limited_gets_a_retry_time() {
    let bank = bank();
    let consent = consent(&*bank, "user_rate_limited", DE, NOW).await;
    let first = SyncPoint::first(NOW);
    assert_eq!(accounts(&*bank, &consent, first).await.len(), 2);
    let again = SyncPoint::after(NOW, NOW + Duration::hours(2));
    let error = bank.accounts(&consent, again).await.unwrap_err();
    assert_eq!(
        error,
        ConnectorError::RateLimited {
            retry_after: datetime!(2026-12-07 00:00 UTC)
        }
    );
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(datetime!(2026-12-07 00:00 UTC)));
    let tomorrow = SyncPoint::after(NOW, datetime!(2026-12-07 00:00 UTC));
    assert_eq!(accounts(&*bank, &consent, tomorrow).await.len(), 2);
}

#[tokio::test]
async fn consents_expire() {
    let bank = bank();
    // Every user: after valid_until.
    let consent = consent(&*bank, "user_good", DE, NOW).await;
    assert_eq!(consent.valid_until, NOW.date() + Duration::days(180));
    let late = SyncPoint::after(NOW, NOW + Duration::days(181));
    let error = bank.accounts(&consent, late).await.unwrap_err();
    assert!(
        matches!(error, ConnectorError::ConsentExpired { .. }),
        "{error:?}"
    );
    assert!(error.needs_user());

    // user_consent_expired: the bank revokes it after the first sync.
    let consent = consent_for(&*bank, "user_consent_expired", DE).await;
    assert_eq!(accounts(&*bank, &consent, SyncPoint::first(NOW)).await.len(), 2);
    let next = SyncPoint::after(NOW, NOW + Duration::days(1));
    assert!(matches!(
        bank.accounts(&consent, next).await,
        Err(ConnectorError::ConsentExpired { .. })
    ));
    // A new consent (a new sign-in) goes on.
    let renewed = self::consent(&*bank, "user_consent_expired", DE, NOW + Duration::days(1)).await;
    assert_eq!(accounts(&*bank, &renewed, next).await.len(), 2);
}

#[tokio::test]
async fn the_bank_grants_at_most_its_limits_and_sessions_expire() {
    let bank = bank();
    let mut request = sign_in("user_good", "pass_good", GB, NOW);
    request.consent.valid_until = NOW.date() + Duration::days(400);
    request.consent.frequency_per_day = 24;
    let session = session_asking(&*bank, request).await;
    let consent = bank.grant_consent(&session, NOW).await.unwrap();
    assert_eq!(consent.valid_until, NOW.date() + Duration::days(180));
    assert_eq!(consent.frequency_per_day, 4);
    assert!(
        !consent.scope.contains(&Permission::CreditCards),
        "GB bank: no cards"
    );
    assert_eq!(
        bank.credit_cards(&consent, SyncPoint::first(NOW)).await,
        Err(ConnectorError::Unsupported("credit cards"))
    );
    assert!(matches!(
        bank.grant_consent(&session, NOW + Duration::minutes(16)).await,
        Err(ConnectorError::SessionExpired { .. })
    ));

    // Requests that make no sense are refused before anything else.
    for broken in [
        |r: &mut ConsentRequest| r.scope = [Permission::Owners].into(),
        |r: &mut ConsentRequest| r.valid_until = date!(2026 - 01 - 01),
        |r: &mut ConsentRequest| r.frequency_per_day = 0,
        |r: &mut ConsentRequest| r.max_history_days = 0,
    ] {
        let mut request = sign_in("user_good", "pass_good", GB, NOW);
        broken(&mut request.consent);
        assert!(matches!(
            bank.start_sign_in(request).await,
            Err(ConnectorError::InvalidRequest(_))
        ));
    }

    let mut request = sign_in("user_good", "pass_good", GB, NOW);
    request.consent.scope = [Permission::Accounts].into();
    let session = session_asking(&*bank, request).await;
    let narrow = bank.grant_consent(&session, NOW).await.unwrap();
    let at = SyncPoint::first(NOW);
    assert_eq!(
        bank.owners(&narrow, at).await,
        Err(ConnectorError::OutOfScope(Permission::Owners))
    );
    let accounts = accounts(&*bank, &narrow, at).await;
    assert!(accounts.iter().all(|a| a.balances.is_empty()));
    assert_eq!(
        bank.transactions(
            &narrow,
            &accounts[0].id,
            &query(BookingStatus::Both, 10, None),
            at
        )
        .await,
        Err(ConnectorError::OutOfScope(Permission::Transactions))
    );
}

#[tokio::test]
async fn the_same_user_always_has_the_same_data() {
    // Two banks (as two servers, or before and after a restart), consents
    // granted at different times, the same sync point: equal answers.
    let (one, two) = (bank(), bank());
    let a = consent(&*one, "user_good", PL, NOW).await;
    let b = consent(&*two, "user_good", PL, NOW - Duration::days(3)).await;
    let at = SyncPoint::first(NOW);
    let accounts_a = accounts(&*one, &a, at).await;
    assert_eq!(accounts_a, accounts(&*two, &b, at).await);
    let first = &accounts_a[0].id;
    let ta = all_transactions(&*one, &a, first, at, BookingStatus::Both, 500).await;
    assert_eq!(
        ta,
        all_transactions(&*two, &b, first, at, BookingStatus::Both, 500).await
    );

    // A month later: the old transactions are all still there, unchanged
    // (booked ones byte for byte), and new ones follow.
    let later = SyncPoint::after(NOW, NOW + Duration::days(30));
    let tl = all_transactions(&*one, &a, first, later, BookingStatus::Both, 1_000).await;
    let by_id: HashMap<_, _> = tl.iter().map(|t| (t.id.clone(), t)).collect();
    for t in ta
        .iter()
        .filter(|t| t.value_date > NOW.date() - Duration::days(1_700))
    {
        let seen = by_id.get(&t.id).unwrap_or_else(|| panic!("{t:?} gone"));
        if t.status == TransactionStatus::Booked {
            assert_eq!(*seen, t);
        }
    }
    assert!(tl.last().unwrap().value_date > NOW.date() + Duration::days(25));

    // Another institution: another history.
    let de = consent(&*one, "user_good", DE, NOW).await;
    let de_accounts = accounts(&*one, &de, at).await;
    assert_ne!(de_accounts[0].id, accounts_a[0].id);
}

#[tokio::test]
async fn paging_returns_every_transaction_exactly_once() {
    let bank = bank();
    let consent = consent(&*bank, "user_good", DE, NOW).await;
    let at = SyncPoint::first(NOW);
    let account = accounts(&*bank, &consent, at).await.remove(0).id;
    let whole = all_transactions(&*bank, &consent, &account, at, BookingStatus::Both, 1_000).await;
    let small = all_transactions(&*bank, &consent, &account, at, BookingStatus::Both, 137).await;
    assert_eq!(whole, small);
    let ids: HashSet<_> = whole.iter().map(|t| &t.id).collect();
    assert_eq!(ids.len(), whole.len());
    // Oldest first.
    assert!(whole.windows(2).all(|w| w[0].value_date <= w[1].value_date));
    // Booked and pending split the whole.
    let booked = all_transactions(&*bank, &consent, &account, at, BookingStatus::Booked, 400).await;
    let pending = all_transactions(&*bank, &consent, &account, at, BookingStatus::Pending, 7).await;
    assert!(!pending.is_empty());
    assert_eq!(booked.len() + pending.len(), whole.len());
    assert!(booked.iter().all(|t| t.booking_date.is_some()));
    assert!(pending.iter().all(|t| t.booking_date.is_none()));

    // A date range.
    let range = TransactionQuery {
        from: date!(2024 - 03 - 01),
        to: date!(2024 - 03 - 31),
        status: BookingStatus::Both,
        cursor: None,
        page_size: 1_000,
    };
    let march = bank.transactions(&consent, &account, &range, at).await.unwrap();
    assert!(march.next.is_none());
    assert_eq!(
        march.transactions.len(),
        whole
            .iter()
            .filter(|t| t.value_date.year() == 2024 && t.value_date.month() == time::Month::March)
            .count()
    );

    // Bad input.
    let other = accounts(&*bank, &consent, at).await.remove(1).id;
    let page = bank
        .transactions(&consent, &account, &query(BookingStatus::Both, 10, None), at)
        .await
        .unwrap();
    assert!(matches!(
        bank.transactions(&consent, &other, &query(BookingStatus::Both, 10, page.next), at)
            .await,
        Err(ConnectorError::InvalidToken { what: "cursor" })
    ));
    for size in [0, 1_001] {
        assert!(matches!(
            bank.transactions(&consent, &account, &query(BookingStatus::Both, size, None), at)
                .await,
            Err(ConnectorError::InvalidRequest(_))
        ));
    }
    assert!(matches!(
        bank.transactions(
            &consent,
            &AccountId::new("sbx-acc-nope"),
            &query(BookingStatus::Both, 10, None),
            at
        )
        .await,
        Err(ConnectorError::UnknownAccount(_))
    ));
}

#[tokio::test]
async fn pending_card_payments_are_booked_later_with_the_same_id() {
    let bank = bank();
    let consent = consent(&*bank, "user_good", DE, NOW).await;
    let at = SyncPoint::first(NOW);
    let account = accounts(&*bank, &consent, at).await.remove(0).id;
    let pending = all_transactions(&*bank, &consent, &account, at, BookingStatus::Pending, 100).await;
    assert!(!pending.is_empty());
    let later = SyncPoint::after(NOW, NOW + Duration::days(5));
    let after = all_transactions(&*bank, &consent, &account, later, BookingStatus::Both, 1_000).await;
    let by_id: HashMap<_, _> = after.iter().map(|t| (t.id.clone(), t)).collect();
    for p in &pending {
        let booked = by_id[&p.id];
        assert_eq!(booked.status, TransactionStatus::Booked);
        assert!(booked.booking_date.unwrap() > p.value_date);
        assert_eq!(booked.description, p.description);
        if p.merchant_category_code == Some(5812) {
            // A restaurant: authorised without the tip, booked with it.
            assert!(booked.amount.minor < p.amount.minor, "{p:?} → {booked:?}");
        } else {
            assert_eq!(booked.amount, p.amount);
        }
    }
}

#[tokio::test]
async fn user_pending_posts_at_the_next_sync() {
    let bank = bank();
    let consent = consent(&*bank, "user_pending", ES_OR_DE, NOW).await;
    let first = SyncPoint::first(NOW);
    let account = accounts(&*bank, &consent, first).await.remove(0).id;
    let pending = all_transactions(&*bank, &consent, &account, first, BookingStatus::Pending, 100).await;
    assert!(pending.len() >= 14, "a week of pending: {}", pending.len());
    assert!(
        pending
            .iter()
            .all(|t| t.value_date > NOW.date() - Duration::days(7))
    );
    // The next sync, an hour later: booked, same IDs.
    let next = SyncPoint::after(NOW, NOW + Duration::hours(1));
    let after = all_transactions(&*bank, &consent, &account, next, BookingStatus::Both, 1_000).await;
    let by_id: HashMap<_, _> = after.iter().map(|t| (t.id.clone(), t)).collect();
    let booked = pending
        .iter()
        .filter(|p| by_id[&p.id].status == TransactionStatus::Booked)
        .count();
    assert!(booked * 2 > pending.len(), "{booked} of {} booked", pending.len());
}

const ES_OR_DE: &str = "sandbox_es_sol";

#[tokio::test]
async fn user_account_closes_loses_an_account_at_the_next_sync() {
    let bank = bank();
    let consent = consent(&*bank, "user_account_closes", FR, NOW).await;
    let first = accounts(&*bank, &consent, SyncPoint::first(NOW)).await;
    assert_eq!(first.len(), 3);
    let closing = first.iter().find(|a| a.name == "Old savings").unwrap().id.clone();
    let next = SyncPoint::after(NOW, NOW + Duration::days(1));
    let second = accounts(&*bank, &consent, next).await;
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|a| a.id != closing));
    let ids = |accounts: &[Account]| accounts.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&second), ids(&first[..2]));
    assert!(matches!(
        bank.transactions(&consent, &closing, &query(BookingStatus::Both, 10, None), next)
            .await,
        Err(ConnectorError::UnknownAccount(_))
    ));
}

const FR: &str = "sandbox_fr_lumiere";

#[tokio::test]
async fn user_joint_has_co_owners() {
    let bank = bank();
    let consent = consent(&*bank, "user_joint", GB, NOW).await;
    let at = SyncPoint::first(NOW);
    let owners = bank.owners(&consent, at).await.unwrap();
    assert_eq!(owners.len(), 2);
    let accounts = accounts(&*bank, &consent, at).await;
    let joint = accounts.iter().find(|a| a.name == "Joint account").unwrap();
    let roles: Vec<_> = joint.owners.iter().map(|o| o.role).collect();
    assert_eq!(roles, [OwnerRole::Holder, OwnerRole::CoHolder]);
    let sole = accounts.iter().find(|a| a.name == "Current account").unwrap();
    assert_eq!(sole.owners.len(), 1);
}

#[tokio::test]
async fn credit_cards_and_their_transactions() {
    let bank = bank();
    let consent = consent(&*bank, "user_good", PL, NOW).await;
    let at = SyncPoint::first(NOW);
    let cards = bank.credit_cards(&consent, at).await.unwrap();
    assert_eq!(cards.len(), 1);
    let card = &cards[0];
    assert!(card.masked_number.starts_with("••••"));
    assert_eq!(card.currency.as_str(), "PLN");
    let mut cursor = None;
    let mut seen = 0;
    loop {
        let page = bank
            .card_transactions(&consent, &card.id, &query(BookingStatus::Both, 1_000, cursor), at)
            .await
            .unwrap();
        seen += page.transactions.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(seen >= 1_000, "{seen}");
    // Other users have no card.
    let otp_less = consent_for(&*bank, "user_joint", PL).await;
    assert!(bank.credit_cards(&otp_less, at).await.unwrap().is_empty());
}

/// The sandbox's history is part of its contract: a server that imported
/// it must find the same transactions, with the same bank IDs, after an
/// upgrade. A change to the generator that moves these pins must bump
/// `GENERATOR_VERSION` in `sandbox/history.rs` (new IDs) and update them.
#[tokio::test]
async fn the_history_is_pinned() {
    use sha2::{Digest, Sha256};
    let bank = bank();
    let consent = consent(&*bank, "user_good", DE, NOW).await;
    let at = SyncPoint::first(NOW);
    let account = accounts(&*bank, &consent, at).await.remove(0);
    let all = all_transactions(&*bank, &consent, &account.id, at, BookingStatus::Both, 1_000).await;
    let mut digest = Sha256::new();
    for t in &all {
        let counterparty = t.counterparty.as_ref();
        digest.update(format!(
            "{}|{:?}|{:?}|{}|{}|{:?}|{:?}|{:?}|{}|{:?}|{:?}\n",
            t.id,
            t.status,
            t.booking_date.map(|d| d.to_string()),
            t.value_date,
            t.amount,
            t.original_amount.map(|a| a.to_string()),
            counterparty.map(|c| &c.name),
            counterparty.and_then(|c| c.iban.as_ref()),
            t.description,
            t.merchant_category_code,
            t.country.map(|c| c.to_string()),
        ));
    }
    let digest: String = digest.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let first = &all[0];
    assert_eq!(
        (account.id.as_str(), all.len(), first.id.as_str(), digest.as_str()),
        (
            "sbx-acc-0e578d3148bbfe1d",
            6286,
            "70d02297841630cf",
            "44e175ab9deb64f10bf7ed6be66f7e214fae2ad674ddc023e5affdc0c395cda8"
        )
    );
}

#[tokio::test]
async fn extreme_times_do_not_panic() {
    let bank = bank();
    for now in [
        time::PrimitiveDateTime::MAX.assume_utc(),
        time::PrimitiveDateTime::MIN.assume_utc(),
    ] {
        let mut request = sign_in("user_good", "pass_good", DE, now);
        request.consent.valid_until = now.date();
        request.consent.scope = [Permission::Accounts, Permission::Transactions].into();
        let Ok(SignInOutcome::Connected { session }) = bank.start_sign_in(request).await else {
            continue;
        };
        let Ok(consent) = bank.grant_consent(&session, now).await else {
            continue;
        };
        for at in [SyncPoint::first(now), SyncPoint::after(now, now)] {
            if let Ok(accounts) = bank.accounts(&consent, at).await {
                for account in accounts {
                    let _ = bank
                        .transactions(
                            &consent,
                            &account.id,
                            &query(BookingStatus::Both, 1_000, None),
                            at,
                        )
                        .await;
                }
            }
        }
        for challenge in [
            "sbx1.otp.user_otp.sandbox_de_rheinbank.253402300799",
            "sbx1.otp.user_otp.sandbox_de_rheinbank.-377705116800",
        ] {
            let _ = bank.submit_one_time_code(challenge, "123456", now).await;
        }
    }
}

#[tokio::test]
async fn restaurants_are_booked_with_the_tip() {
    let bank = bank();
    let consent = consent(&*bank, "user_good", DE, NOW).await;
    let account = accounts(&*bank, &consent, SyncPoint::first(NOW))
        .await
        .remove(0)
        .id;
    let recent = |now: OffsetDateTime| TransactionQuery {
        from: now.date() - Duration::days(5),
        to: now.date(),
        status: BookingStatus::Both,
        cursor: None,
        page_size: 1_000,
    };
    let mut tipped = 0;
    for day in 0..60 {
        let now = NOW - Duration::days(day);
        let at = SyncPoint::first(now);
        let pending = bank
            .transactions(&consent, &account, &recent(now), at)
            .await
            .unwrap();
        let later = now + Duration::days(5);
        let booked = bank
            .transactions(&consent, &account, &recent(now), SyncPoint::after(now, later))
            .await
            .unwrap()
            .transactions;
        for p in pending
            .transactions
            .iter()
            .filter(|t| t.status == TransactionStatus::Pending)
        {
            let b = booked.iter().find(|b| b.id == p.id).unwrap();
            if p.merchant_category_code == Some(5812) {
                assert_eq!(p.amount.minor, b.amount.minor * 10 / 11, "{p:?} → {b:?}");
                tipped += 1;
            }
        }
    }
    assert!(tipped > 0);
}

#[test]
fn every_test_user_and_institution_is_documented() {
    use paycore_bank_connector::sandbox::catalog::{INSTITUTIONS, TEST_USERS};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).unwrap();
    let crate_docs = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    for user in TEST_USERS {
        let row = format!("| `{}` |", user.username);
        assert!(readme.contains(&row), "README has no row for {}", user.username);
        assert!(
            crate_docs.contains(&row),
            "lib.rs has no row for {}",
            user.username
        );
    }
    for institution in INSTITUTIONS {
        assert!(
            readme.contains(&format!("`{}`", institution.id)),
            "{}",
            institution.id
        );
    }
}
