#![allow(clippy::unwrap_used)]

//! Cards over gRPC: card tokens (public keys), stored cards, card payins on
//! the sandbox network (approvals, declines, 3-D Secure, settlement),
//! refunds (partial, full, failed, concurrent), live projects, idempotency,
//! and the proof that no full card number or CVC reaches the data directory
//! or the log.

use std::collections::BTreeMap;

use paycore_e2e::{
    Client, Server, amount, assert_bad_request, assert_bad_request_fields, assert_code, assert_reason,
    contains, expect_err, files_under, mask, meta, money, pb, sibling_id, test_dir, with_idempotency_key,
    with_prefix,
};
use paycore_grpc::{CardPayinServiceClient, CardServiceClient, CardTokenServiceClient};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

// ---------------------------------------------------------------- clients

/// Adds `authorization: Bearer <key>` to every request.
#[derive(Clone, Debug)]
struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

/// The card services and the stock client, with one API key.
#[derive(Clone, Debug)]
struct Cards {
    tokens: CardTokenServiceClient<Authed>,
    cards: CardServiceClient<Authed>,
    payins: CardPayinServiceClient<Authed>,
    client: Client,
}

impl Cards {
    fn new(server: &Server, key: &str) -> Self {
        let channel = server.channel();
        let bearer = Bearer(format!("Bearer {key}").parse().unwrap());
        Self {
            tokens: CardTokenServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            cards: CardServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            payins: CardPayinServiceClient::with_interceptor(channel.clone(), bearer),
            client: Client::new(channel, key),
        }
    }

    async fn token(&self, number: &str, cvc: &str) -> Result<pb::CardToken, Status> {
        let request = pb::CreateCardTokenRequest {
            card_info: Some(card_info(number, cvc)),
        };
        Ok(self.tokens.clone().create_card_token(request).await?.into_inner())
    }

    async fn card(&self, request: pb::CreateCardRequest) -> Result<pb::Card, Status> {
        Ok(self.cards.clone().create_card(request).await?.into_inner())
    }

    async fn payin(&self, request: pb::CreateCardPayinRequest) -> Result<pb::CardPayin, Status> {
        Ok(self.payins.clone().create_card_payin(request).await?.into_inner())
    }

    async fn get_payin(&self, id: &str) -> Result<pb::CardPayin, Status> {
        let request = pb::GetCardPayinRequest {
            card_payin_id: id.into(),
        };
        Ok(self.payins.clone().get_card_payin(request).await?.into_inner())
    }

    async fn settle(&self, id: &str) -> Result<pb::CardPayin, Status> {
        let request = pb::SettleCardPayinRequest {
            card_payin_id: id.into(),
        };
        Ok(self.payins.clone().settle_card_payin(request).await?.into_inner())
    }

    async fn authenticate(&self, id: &str, failed: bool) -> Result<pb::CardPayin, Status> {
        let request = pb::CompleteCardPayinAuthenticationRequest {
            card_payin_id: id.into(),
            authentication_failed: failed,
        };
        Ok(self
            .payins
            .clone()
            .complete_card_payin_authentication(request)
            .await?
            .into_inner())
    }

    async fn refund(&self, payin: &str, value: Option<i64>) -> Result<pb::CardPayinRefund, Status> {
        let request = refund_request(payin, value.and_then(|v| money("EUR", v)));
        Ok(self
            .payins
            .clone()
            .create_card_payin_refund(request)
            .await?
            .into_inner())
    }

    async fn all_payins(&self) -> Result<Vec<pb::CardPayin>, Status> {
        let request = pb::ListCardPayinsRequest {
            page_size: 100,
            page_token: String::new(),
        };
        Ok(self
            .payins
            .clone()
            .list_card_payins(request)
            .await?
            .into_inner()
            .items)
    }

    /// A settled payin of `value` EUR into `account` (sandbox, 4242…).
    async fn settled_payin(&self, account: &str, value: i64) -> Result<pb::CardPayin, Status> {
        let payin = self.payin(payin_request(account, value, APPROVED)).await?;
        self.settle(&payin.id).await
    }
}

// ---------------------------------------------------------------- builders

const APPROVED: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const NO_FUNDS: &str = "4000000000009995";
const ISSUER_EXPIRED: &str = "4000000000000069";
const NEEDS_3DS: &str = "4000000000003220";
const FAILS_3DS: &str = "4000000000003063";
const EXPIRATION_YEAR: i32 = 2040;

fn card_info(number: &str, cvc: &str) -> pb::CardInfoRequest {
    pb::CardInfoRequest {
        number: number.into(),
        expiration_month: 11,
        expiration_year: EXPIRATION_YEAR,
        cvc: cvc.into(),
    }
}

fn payin_request(account: &str, value: i64, number: &str) -> pb::CreateCardPayinRequest {
    pb::CreateCardPayinRequest {
        account_id: account.into(),
        value: money("EUR", value),
        card_info: Some(card_info(number, "123")),
        card_token_id: None,
        card_id: None,
        authentication_type: pb::AuthenticationType::None.into(),
        authentication_redirect_url: None,
        meta: BTreeMap::new(),
    }
}

fn three_d_secure(mut request: pb::CreateCardPayinRequest) -> pb::CreateCardPayinRequest {
    request.authentication_type = pb::AuthenticationType::ThreeDSecure.into();
    request.authentication_redirect_url = Some("https://shop.example/back?order=42".into());
    request
}

/// `request` charging the stored card or token `source` instead of card data.
fn from_source(mut request: pb::CreateCardPayinRequest, source: &str) -> pb::CreateCardPayinRequest {
    request.card_info = None;
    if source.starts_with("crdt_") {
        request.card_token_id = Some(source.into());
    } else {
        request.card_id = Some(source.into());
    }
    request
}

fn refund_request(payin: &str, value: Option<pb::Money>) -> pb::CreateCardPayinRefundRequest {
    pb::CreateCardPayinRefundRequest {
        card_payin_id: payin.into(),
        value,
        account_id: None,
        meta: BTreeMap::new(),
    }
}

fn card_from_info(number: &str, cvc: &str) -> pb::CreateCardRequest {
    pb::CreateCardRequest {
        card_info: Some(card_info(number, cvc)),
        card_token_id: None,
        customer_id: None,
        meta: BTreeMap::new(),
    }
}

fn card_from_token(token: &str) -> pb::CreateCardRequest {
    pb::CreateCardRequest {
        card_info: None,
        card_token_id: Some(token.into()),
        customer_id: None,
        meta: meta(&[("label", "main card")]),
    }
}

fn masked(number: &str) -> String {
    format!(
        "{}{}{}",
        &number[..6],
        "*".repeat(number.len() - 10),
        &number[number.len() - 4..]
    )
}

fn state(payin: &pb::CardPayin) -> pb::CardPayinState {
    payin.state()
}

/// `prefix` followed by its Luhn check digit.
fn luhn(prefix: &str) -> String {
    let sum: u32 = prefix
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, b)| {
            let digit = u32::from(b - b'0');
            if position % 2 == 0 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

// ---------------------------------------------------------------- tokens and cards

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_become_cards_once_and_public_keys_only_make_tokens() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let public = Cards::new(&server, &server.create_key(server.project_id(), true));
    let secret = Cards::new(&server, server.key());

    // A public key creates a token: masked data only.
    let token = public.token(APPROVED, "123").await?;
    assert!(token.id.starts_with("crdt_"), "{}", token.id);
    let info = token.card_info.clone().unwrap();
    assert_eq!(info.number, "424242******4242");
    assert_eq!(info.brand(), pb::CardBrand::Visa);
    assert_eq!(
        (info.expiration_month, info.expiration_year),
        (11, EXPIRATION_YEAR)
    );
    assert_eq!(info.fingerprint.len(), 16);
    assert_eq!(
        token.expires_at.unwrap().seconds - token.created_at.unwrap().seconds,
        600
    );
    assert!(token.used_at.is_none());

    // … and nothing else.
    let get = pb::GetCardTokenRequest {
        card_token_id: token.id.clone(),
    };
    assert_code(
        &expect_err(public.tokens.clone().get_card_token(get.clone()).await),
        Code::PermissionDenied,
    );
    assert_code(
        &expect_err(public.card(card_from_token(&token.id)).await),
        Code::PermissionDenied,
    );
    let account = secret.client.create_account("EUR", false).await?;
    assert_code(
        &expect_err(public.payin(payin_request(&account.id, 100, APPROVED)).await),
        Code::PermissionDenied,
    );
    assert_code(&expect_err(public.all_payins().await), Code::PermissionDenied);
    assert_code(
        &expect_err(public.client.account(&account.id).await),
        Code::PermissionDenied,
    );
    assert_code(
        &expect_err(public.client.create_account("EUR", false).await),
        Code::PermissionDenied,
    );

    // A secret key turns the token into a card, once.
    let customer = secret
        .client
        .customers
        .clone()
        .create_customer(pb::CreateCustomerRequest {
            identity: None,
            meta: BTreeMap::new(),
        })
        .await?
        .into_inner();
    let mut request = card_from_token(&token.id);
    request.customer_id = Some(customer.id.clone());
    let card = secret.card(request).await?;
    assert!(card.id.starts_with("crd_"), "{}", card.id);
    assert_eq!(card.card_token_id.as_deref(), Some(token.id.as_str()));
    assert_eq!(card.customer_id.as_deref(), Some(customer.id.as_str()));
    assert_eq!(card.card_info, token.card_info);
    assert_eq!(card.meta, meta(&[("label", "main card")]));
    let used = secret.tokens.clone().get_card_token(get).await?.into_inner();
    assert!(used.used_at.is_some());
    assert_eq!(used.card_id.as_deref(), Some(card.id.as_str()));

    let reused = expect_err(secret.card(card_from_token(&token.id)).await);
    assert_reason(&reused, Code::FailedPrecondition, "CARD_TOKEN_ALREADY_USED");
    let reused = expect_err(
        secret
            .payin(from_source(payin_request(&account.id, 100, APPROVED), &token.id))
            .await,
    );
    assert_reason(&reused, Code::FailedPrecondition, "CARD_TOKEN_ALREADY_USED");
    let unknown = expect_err(secret.card(card_from_token(&sibling_id(&token.id))).await);
    assert_code(&unknown, Code::NotFound);

    // Cards from card data: equal numbers, equal fingerprints.
    let same = secret.card(card_from_info(APPROVED, "999")).await?;
    let other = secret.card(card_from_info("5555555555554444", "999")).await?;
    assert_eq!(same.card_info.as_ref().unwrap().fingerprint, info.fingerprint);
    let other_info = other.card_info.clone().unwrap();
    assert_ne!(other_info.fingerprint, info.fingerprint);
    assert_eq!(other_info.brand(), pb::CardBrand::Mastercard);
    assert_eq!(other_info.number, "555555******4444");
    assert!(same.card_token_id.is_none());

    // Exactly one source.
    let mut both = card_from_token(&token.id);
    both.card_info = Some(card_info(APPROVED, "123"));
    assert_bad_request_fields(
        &expect_err(secret.card(both).await),
        &["card_info", "card_token_id"],
    );
    let mut neither = card_from_token(&token.id);
    neither.card_token_id = None;
    assert_bad_request_fields(&expect_err(secret.card(neither).await), &["card_info"]);

    // Reads, lists and meta updates.
    let got = secret
        .cards
        .clone()
        .get_card(pb::GetCardRequest {
            card_id: card.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(got, card);
    let listed = secret
        .cards
        .clone()
        .list_cards(pb::ListCardsRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(
        listed.items.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [other.id.as_str(), same.id.as_str()]
    );
    assert!(!listed.next_page_token.is_empty());
    let updated = secret
        .cards
        .clone()
        .update_card(pb::UpdateCardRequest {
            card_id: card.id.clone(),
            update_mask: Some(mask(&["meta"])),
            meta: meta(&[("label", "old card")]),
        })
        .await?
        .into_inner();
    assert_eq!(updated.meta, meta(&[("label", "old card")]));
    let bad_mask = secret
        .cards
        .clone()
        .update_card(pb::UpdateCardRequest {
            card_id: card.id.clone(),
            update_mask: Some(mask(&["card_info"])),
            meta: BTreeMap::new(),
        })
        .await;
    assert_bad_request(&expect_err(bad_mask), "update_mask");

    // Another project sees none of it and cannot use the tokens.
    let second = server.create_project("second", false);
    let stranger = Cards::new(&server, &second.key);
    let theirs = expect_err(
        stranger
            .cards
            .clone()
            .get_card(pb::GetCardRequest {
                card_id: card.id.clone(),
            })
            .await,
    );
    assert_code(&theirs, Code::NotFound);
    let fresh = public.token(APPROVED, "123").await?;
    assert_code(
        &expect_err(stranger.card(card_from_token(&fresh.id)).await),
        Code::NotFound,
    );
    // The token is still unused and works for its own project.
    secret.card(card_from_token(&fresh.id)).await?;

    // An idempotent retry of a token answers the same token.
    let request = pb::CreateCardTokenRequest {
        card_info: Some(card_info(APPROVED, "123")),
    };
    let first = public
        .tokens
        .clone()
        .create_card_token(with_idempotency_key(request.clone(), "token-1"))
        .await?
        .into_inner();
    let again = public
        .tokens
        .clone()
        .create_card_token(with_idempotency_key(request, "token-1"))
        .await?
        .into_inner();
    assert_eq!(first.id, again.id);
    Ok(())
}

/// Ten commands race for one token, round after round: exactly one uses it,
/// and every other one is refused as a use of a used token — also the ones
/// that read the token before the winner committed and look for its number
/// after the winner erased it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uses_of_one_token_refuse_all_but_one_precisely() -> anyhow::Result<()> {
    const ROUNDS: usize = 40;
    const RACERS: usize = 10;
    let dir = test_dir();
    let server = Server::start(dir.path());
    let cards = Cards::new(&server, server.key());
    let account = cards.client.create_account("EUR", false).await?;
    for round in 0..ROUNDS {
        let token = cards.token(APPROVED, "123").await?;
        let racers = (0..RACERS).map(|racer| {
            let cards = cards.clone();
            let (token, account) = (token.id.clone(), account.id.clone());
            tokio::spawn(async move {
                if (round + racer) % 2 == 0 {
                    cards.card(card_from_token(&token)).await.map(|card| card.id)
                } else {
                    let request = from_source(payin_request(&account, 100, APPROVED), &token);
                    cards.payin(request).await.map(|payin| payin.id)
                }
            })
        });
        let results = futures::future::join_all(racers).await;
        let mut winners = 0;
        for result in results {
            match result? {
                Ok(_) => winners += 1,
                Err(status) => assert_reason(&status, Code::FailedPrecondition, "CARD_TOKEN_ALREADY_USED"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_card_data_names_every_field_and_echoes_nothing() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let cards = Cards::new(&server, server.key());

    let check = |status: &Status, inputs: &[&str]| {
        for input in inputs {
            assert!(
                !status.message().contains(input),
                "the error echoes {input}: {}",
                status.message()
            );
        }
    };

    // Luhn, month 13 and a 2-digit CVC, all at once.
    let mut bad = card_info("4242424242424241", "12");
    bad.expiration_month = 13;
    let request = pb::CreateCardTokenRequest { card_info: Some(bad) };
    let status = expect_err(cards.tokens.clone().create_card_token(request).await);
    assert_bad_request_fields(
        &status,
        &["card_info.number", "card_info.expiration_month", "card_info.cvc"],
    );
    check(&status, &["4242424242424241"]);

    // An expired card is blamed on the year when the year is past.
    let mut expired = card_info(APPROVED, "123");
    expired.expiration_year = 2020;
    let status = expect_err(
        cards
            .card(pb::CreateCardRequest {
                card_info: Some(expired),
                ..card_from_info(APPROVED, "123")
            })
            .await,
    );
    assert_bad_request_fields(&status, &["card_info.expiration_year"]);

    // Two-digit years, separators, short numbers and long CVCs.
    for (number, month, year, cvc, fields) in [
        (APPROVED, 12, 40, "123", &["card_info.expiration_year"][..]),
        ("4242 4242 4242 4242", 12, 2040, "123", &["card_info.number"][..]),
        (
            "4242",
            0,
            2040,
            "12345",
            &["card_info.number", "card_info.expiration_month", "card_info.cvc"][..],
        ),
        (APPROVED, 12, 2040, "", &["card_info.cvc"][..]),
    ] {
        let request = pb::CreateCardTokenRequest {
            card_info: Some(pb::CardInfoRequest {
                number: number.into(),
                expiration_month: month,
                expiration_year: year,
                cvc: cvc.into(),
            }),
        };
        let status = expect_err(cards.tokens.clone().create_card_token(request).await);
        assert_bad_request_fields(&status, fields);
        let inputs: Vec<&str> = [number, cvc].into_iter().filter(|s| s.len() >= 3).collect();
        check(&status, &inputs);
    }

    // A payin reports the card's problems together with its own.
    let account = cards.client.create_account("EUR", false).await?;
    let mut request = payin_request("", 0, "4000000000000001");
    request.card_info.as_mut().unwrap().cvc = "12".into();
    let status = expect_err(cards.payin(request).await);
    assert_bad_request_fields(
        &status,
        &["account_id", "value.amount", "card_info.number", "card_info.cvc"],
    );
    check(&status, &["4000000000000001"]);

    // Currency, 3-D Secure redirect and the card source.
    let mut request = payin_request(&account.id, 100, APPROVED);
    request.value = money("USD", 100);
    assert_bad_request(&expect_err(cards.payin(request).await), "value.currency");
    let mut request = payin_request(&account.id, 100, APPROVED);
    request.authentication_redirect_url = Some("https://shop.example".into());
    assert_bad_request_fields(
        &expect_err(cards.payin(request).await),
        &["authentication_redirect_url"],
    );
    let mut request = payin_request(&account.id, 100, APPROVED);
    request.card_id = Some("crd_nope".into());
    assert_bad_request_fields(
        &expect_err(cards.payin(request).await),
        &["card_info", "card_id", "card_id"],
    );
    // Nothing was recorded by any of it.
    assert!(cards.all_payins().await?.is_empty());
    Ok(())
}

// ---------------------------------------------------------------- payins

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payins_follow_the_sandbox_network() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let cards = Cards::new(&server, server.key());
    let account = cards.client.create_account("EUR", false).await?;

    // Approved, then settled: the account is credited only then.
    let payin = cards.payin(payin_request(&account.id, 1_000, APPROVED)).await?;
    assert!(payin.id.starts_with("cpi_"), "{}", payin.id);
    assert_eq!(state(&payin), pb::CardPayinState::Authorized);
    assert_eq!(payin.decline_reason(), pb::DeclineReason::Unspecified);
    assert_eq!(payin.card_info.as_ref().unwrap().number, "424242******4242");
    assert_eq!(payin.authentication_type(), pb::AuthenticationType::None);
    assert!(payin.transaction_id.is_none() && payin.authentication_url.is_none());
    assert_eq!(amount(&payin.refunded_value), 0);
    assert_eq!(cards.client.balance(&account.id).await?, 0);
    let settled = cards.settle(&payin.id).await?;
    assert_eq!(state(&settled), pb::CardPayinState::Settled);
    assert_eq!(cards.client.balance(&account.id).await?, 1_000);
    let history = cards.client.check_transaction_chain(&account.id).await?;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].r#type(), pb::TransactionType::CardPayin);
    assert_eq!(history[0].card_payin_id.as_deref(), Some(payin.id.as_str()));
    assert_eq!(settled.transaction_id.as_deref(), Some(history[0].id.as_str()));

    // Declines, each with its reason.
    for (number, reason) in [
        (DECLINED, pb::DeclineReason::CardDeclined),
        (NO_FUNDS, pb::DeclineReason::InsufficientFunds),
        (ISSUER_EXPIRED, pb::DeclineReason::ExpiredCard),
        (NEEDS_3DS, pb::DeclineReason::AuthenticationRequired),
    ] {
        let declined = cards.payin(payin_request(&account.id, 500, number)).await?;
        assert_eq!(state(&declined), pb::CardPayinState::Declined, "{number}");
        assert_eq!(declined.decline_reason(), reason, "{number}");
    }

    // Settling a declined payin is refused and writes nothing.
    let declined = cards.payin(payin_request(&account.id, 500, DECLINED)).await?;
    let before = (cards.client.snapshot().await?, cards.all_payins().await?);
    let refused = expect_err(cards.settle(&declined.id).await);
    assert_reason(&refused, Code::FailedPrecondition, "CARD_PAYIN_NOT_AUTHORIZED");
    let refused = expect_err(cards.settle(&settled.id).await);
    assert_reason(&refused, Code::FailedPrecondition, "CARD_PAYIN_NOT_AUTHORIZED");
    assert_eq!(
        (cards.client.snapshot().await?, cards.all_payins().await?),
        before
    );

    // 3-D Secure: pending, then the cardholder passes, then settlement.
    let pending = cards
        .payin(three_d_secure(payin_request(&account.id, 700, NEEDS_3DS)))
        .await?;
    assert_eq!(state(&pending), pb::CardPayinState::AuthenticationPending);
    assert_eq!(
        pending.authentication_type(),
        pb::AuthenticationType::ThreeDSecure
    );
    // The challenge link names the payin and carries its token (32 hex digits).
    let url = pending.authentication_url.as_deref().unwrap_or_default();
    let token = url
        .strip_prefix(&format!(
            "https://3ds.sandbox.paycore.invalid/challenge/{}?token=",
            pending.id
        ))
        .unwrap_or_else(|| panic!("{url}"));
    assert!(
        token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{url}"
    );
    assert_eq!(
        pending.authentication_redirect_url.as_deref(),
        Some("https://shop.example/back?order=42")
    );
    assert_reason(
        &expect_err(cards.settle(&pending.id).await),
        Code::FailedPrecondition,
        "CARD_PAYIN_NOT_AUTHORIZED",
    );
    let authorized = cards.authenticate(&pending.id, false).await?;
    assert_eq!(state(&authorized), pb::CardPayinState::Authorized);
    assert_reason(
        &expect_err(cards.authenticate(&pending.id, false).await),
        Code::FailedPrecondition,
        "CARD_PAYIN_NOT_AWAITING_AUTHENTICATION",
    );
    assert_eq!(
        state(&cards.settle(&pending.id).await?),
        pb::CardPayinState::Settled
    );
    assert_eq!(cards.client.balance(&account.id).await?, 1_700);

    // A card that fails 3-D Secure, and a cardholder who fails it.
    for (number, failed) in [(FAILS_3DS, false), (APPROVED, true)] {
        let pending = cards
            .payin(three_d_secure(payin_request(&account.id, 300, number)))
            .await?;
        let declined = cards.authenticate(&pending.id, failed).await?;
        assert_eq!(state(&declined), pb::CardPayinState::Declined);
        assert_eq!(declined.decline_reason(), pb::DeclineReason::AuthenticationFailed);
    }
    // Asking for 3-D Secure on a card that does not need it is allowed.
    let pending = cards
        .payin(three_d_secure(payin_request(&account.id, 300, DECLINED)))
        .await?;
    let declined = cards.authenticate(&pending.id, false).await?;
    assert_eq!(declined.decline_reason(), pb::DeclineReason::CardDeclined);

    // Stored cards and tokens, with and without 3-D Secure.
    let card = cards.card(card_from_info(NEEDS_3DS, "321")).await?;
    let direct = cards
        .payin(from_source(payin_request(&account.id, 100, APPROVED), &card.id))
        .await?;
    assert_eq!(direct.card_id.as_deref(), Some(card.id.as_str()));
    assert_eq!(direct.decline_reason(), pb::DeclineReason::AuthenticationRequired);
    for _ in 0..2 {
        // The stored card's number stays available for the next payin.
        let pending = cards
            .payin(three_d_secure(from_source(
                payin_request(&account.id, 100, APPROVED),
                &card.id,
            )))
            .await?;
        assert_eq!(
            state(&cards.authenticate(&pending.id, false).await?),
            pb::CardPayinState::Authorized
        );
    }
    let token = cards.token(NEEDS_3DS, "321").await?;
    let pending = cards
        .payin(three_d_secure(from_source(
            payin_request(&account.id, 100, APPROVED),
            &token.id,
        )))
        .await?;
    assert_eq!(pending.card_token_id.as_deref(), Some(token.id.as_str()));
    assert_eq!(pending.card_info, token.card_info);
    assert_eq!(
        state(&cards.authenticate(&pending.id, false).await?),
        pb::CardPayinState::Authorized
    );
    let token = cards.token(APPROVED, "321").await?;
    let direct = cards
        .payin(from_source(payin_request(&account.id, 100, APPROVED), &token.id))
        .await?;
    assert_eq!(state(&direct), pb::CardPayinState::Authorized);

    // Unknown sources and accounts.
    let unknown_card = from_source(payin_request(&account.id, 100, APPROVED), &sibling_id(&card.id));
    assert_code(&expect_err(cards.payin(unknown_card).await), Code::NotFound);
    let unknown_account = payin_request(&sibling_id(&account.id), 100, APPROVED);
    assert_code(&expect_err(cards.payin(unknown_account).await), Code::NotFound);

    // Reads, lists and meta.
    let listed = cards.all_payins().await?;
    assert_eq!(listed.first().map(|p| p.id.as_str()), Some(direct.id.as_str()));
    assert_eq!(listed.last().map(|p| p.id.as_str()), Some(payin.id.as_str()));
    assert_eq!(
        cards.get_payin(&pending.id).await?.state(),
        pb::CardPayinState::Authorized
    );
    let updated = cards
        .payins
        .clone()
        .update_card_payin(pb::UpdateCardPayinRequest {
            card_payin_id: payin.id.clone(),
            update_mask: Some(mask(&["meta"])),
            meta: meta(&[("order", "42")]),
        })
        .await?
        .into_inner();
    assert_eq!(updated.meta, meta(&[("order", "42")]));
    assert_eq!(state(&updated), pb::CardPayinState::Settled);
    assert_code(
        &expect_err(cards.get_payin(&sibling_id(&payin.id)).await),
        Code::NotFound,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_answer_the_first_payin() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let cards = Cards::new(&server, server.key());
    let account = cards.client.create_account("EUR", false).await?;

    let request = three_d_secure(payin_request(&account.id, 900, NEEDS_3DS));
    let create = |request: pb::CreateCardPayinRequest, key: &str| {
        let mut payins = cards.payins.clone();
        let request = with_idempotency_key(request, key);
        async move { payins.create_card_payin(request).await.map(|r| r.into_inner()) }
    };
    let first = create(request.clone(), "payin-1").await?;
    let again = create(request.clone(), "payin-1").await?;
    assert_eq!(again.id, first.id);
    assert_eq!(cards.all_payins().await?.len(), 1);
    // Another CVC is the same card; another amount is another request.
    let mut other_cvc = request.clone();
    other_cvc.card_info.as_mut().unwrap().cvc = "987".into();
    assert_eq!(create(other_cvc, "payin-1").await?.id, first.id);
    let mut other_amount = request.clone();
    other_amount.value = money("EUR", 901);
    assert_reason(
        &expect_err(create(other_amount, "payin-1").await),
        Code::InvalidArgument,
        "IDEMPOTENCY_KEY_REUSED",
    );

    // The state-changing calls take keys too.
    let complete = |key: &str| {
        let mut payins = cards.payins.clone();
        let request = with_idempotency_key(
            pb::CompleteCardPayinAuthenticationRequest {
                card_payin_id: first.id.clone(),
                authentication_failed: false,
            },
            key,
        );
        async move { payins.complete_card_payin_authentication(request).await }
    };
    complete("auth-1").await?;
    let retried = complete("auth-1").await?.into_inner();
    assert_eq!(retried.state(), pb::CardPayinState::Authorized);
    let settle = |key: &str| {
        let mut payins = cards.payins.clone();
        let request = with_idempotency_key(
            pb::SettleCardPayinRequest {
                card_payin_id: first.id.clone(),
            },
            key,
        );
        async move { payins.settle_card_payin(request).await }
    };
    settle("settle-1").await?;
    assert_eq!(
        settle("settle-1").await?.into_inner().state(),
        pb::CardPayinState::Settled
    );
    assert_eq!(cards.client.balance(&account.id).await?, 900);

    // A retry after the token was used answers the payin, not a refusal.
    let token = cards.token(APPROVED, "123").await?;
    let from_token = from_source(payin_request(&account.id, 50, APPROVED), &token.id);
    let first = create(from_token.clone(), "payin-2").await?;
    assert_eq!(create(from_token.clone(), "payin-2").await?.id, first.id);
    assert_reason(
        &expect_err(create(from_token, "payin-3").await),
        Code::FailedPrecondition,
        "CARD_TOKEN_ALREADY_USED",
    );

    // Get, List and Update refuse keys.
    let get = with_idempotency_key(
        pb::GetCardPayinRequest {
            card_payin_id: first.id.clone(),
        },
        "get-1",
    );
    assert_bad_request(
        &expect_err(cards.payins.clone().get_card_payin(get).await),
        "idempotency-key",
    );
    Ok(())
}

// ---------------------------------------------------------------- refunds

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_take_and_give_back_funds() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let cards = Cards::new(&server, server.key());
    let account = cards.client.create_account("EUR", false).await?;
    let payin = cards.settled_payin(&account.id, 10_000).await?;

    // Partial.
    let partial = cards.refund(&payin.id, Some(2_500)).await?;
    assert!(partial.id.starts_with("cpr_"), "{}", partial.id);
    assert_eq!(partial.state(), pb::CardPayinRefundState::Processing);
    assert_eq!(partial.card_payin_id, payin.id);
    assert_eq!(partial.account_id, account.id);
    assert_eq!(amount(&partial.value), 2_500);
    assert_eq!(amount(&cards.get_payin(&payin.id).await?.refunded_value), 2_500);
    assert_eq!(cards.client.balance(&account.id).await?, 7_500);

    // Over what is left, another currency, a zero amount.
    assert_reason(
        &expect_err(cards.refund(&payin.id, Some(7_501)).await),
        Code::FailedPrecondition,
        "REFUND_EXCEEDS_PAYIN",
    );
    let usd = refund_request(&payin.id, money("USD", 100));
    assert_bad_request(
        &expect_err(cards.payins.clone().create_card_payin_refund(usd).await),
        "value.currency",
    );
    assert_bad_request(
        &expect_err(cards.refund(&payin.id, Some(0)).await),
        "value.amount",
    );

    // Without a value: what is left.
    let rest = cards.refund(&payin.id, None).await?;
    assert_eq!(amount(&rest.value), 7_500);
    assert_eq!(amount(&cards.get_payin(&payin.id).await?.refunded_value), 10_000);
    assert_eq!(cards.client.balance(&account.id).await?, 0);
    assert_reason(
        &expect_err(cards.refund(&payin.id, None).await),
        Code::FailedPrecondition,
        "REFUND_EXCEEDS_PAYIN",
    );

    // Completed; failed gives the funds back.
    let complete = pb::CompleteCardPayinRefundRequest {
        card_payin_refund_id: partial.id.clone(),
    };
    let completed = cards
        .payins
        .clone()
        .complete_card_payin_refund(complete.clone())
        .await?
        .into_inner();
    assert_eq!(completed.state(), pb::CardPayinRefundState::Completed);
    assert_reason(
        &expect_err(cards.payins.clone().complete_card_payin_refund(complete).await),
        Code::FailedPrecondition,
        "REFUND_NOT_PROCESSING",
    );
    let failed = cards
        .payins
        .clone()
        .fail_card_payin_refund(pb::FailCardPayinRefundRequest {
            card_payin_refund_id: rest.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(failed.state(), pb::CardPayinRefundState::Failed);
    assert!(failed.failure_transaction_id.is_some());
    assert_eq!(amount(&cards.get_payin(&payin.id).await?.refunded_value), 2_500);
    assert_eq!(cards.client.balance(&account.id).await?, 7_500);
    let history = cards.client.check_transaction_chain(&account.id).await?;
    let types: Vec<_> = history.iter().map(pb::Transaction::r#type).collect();
    assert_eq!(
        types,
        [
            pb::TransactionType::CardPayin,
            pb::TransactionType::CardPayinRefund,
            pb::TransactionType::CardPayinRefund,
            pb::TransactionType::CardPayinRefundFailure,
        ]
    );
    assert_eq!(history[3].card_payin_refund_id.as_deref(), Some(rest.id.as_str()));
    assert_eq!(
        failed.failure_transaction_id.as_deref(),
        Some(history[3].id.as_str())
    );

    // Refunded again from another account.
    let other = cards.client.create_account("EUR", false).await?;
    cards.client.set_balance(&other.id, "EUR", 1_000).await?;
    let mut request = refund_request(&payin.id, money("EUR", 600));
    request.account_id = Some(other.id.clone());
    let from_other = cards
        .payins
        .clone()
        .create_card_payin_refund(request)
        .await?
        .into_inner();
    assert_eq!(from_other.account_id, other.id);
    assert_eq!(cards.client.balance(&other.id).await?, 400);

    // Lists, reads, meta.
    let list = |page_size: i32, page_token: String| {
        let mut payins = cards.payins.clone();
        let request = pb::ListCardPayinRefundsRequest {
            card_payin_id: payin.id.clone(),
            page_size,
            page_token,
        };
        async move {
            payins
                .list_card_payin_refunds(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let all = list(100, String::new()).await?;
    assert_eq!(
        all.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [from_other.id.as_str(), rest.id.as_str(), partial.id.as_str()]
    );
    let first_page = list(2, String::new()).await?;
    let second_page = list(2, first_page.next_page_token.clone()).await?;
    assert_eq!(first_page.items.len() + second_page.items.len(), 3);
    assert!(second_page.next_page_token.is_empty());
    let unknown = pb::ListCardPayinRefundsRequest {
        card_payin_id: sibling_id(&payin.id),
        page_size: 0,
        page_token: String::new(),
    };
    assert_code(
        &expect_err(cards.payins.clone().list_card_payin_refunds(unknown).await),
        Code::NotFound,
    );
    let got = cards
        .payins
        .clone()
        .get_card_payin_refund(pb::GetCardPayinRefundRequest {
            card_payin_refund_id: rest.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(got, failed);
    let updated = cards
        .payins
        .clone()
        .update_card_payin_refund(pb::UpdateCardPayinRefundRequest {
            card_payin_refund_id: rest.id.clone(),
            update_mask: Some(mask(&["meta"])),
            meta: meta(&[("ticket", "7")]),
        })
        .await?
        .into_inner();
    assert_eq!(updated.meta, meta(&[("ticket", "7")]));

    // Only settled payins are refunded.
    let authorized = cards.payin(payin_request(&account.id, 100, APPROVED)).await?;
    assert_reason(
        &expect_err(cards.refund(&authorized.id, None).await),
        Code::FailedPrecondition,
        "CARD_PAYIN_NOT_SETTLED",
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_never_exceed_the_payin() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let cards = Cards::new(&server, server.key());
    let account = cards.client.create_account("EUR", false).await?;
    let payin = cards.settled_payin(&account.id, 1_000).await?;

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            // One channel per task, so the requests really race.
            let cards = Cards::new(&server, server.key());
            let id = payin.id.clone();
            tokio::spawn(async move { cards.refund(&id, Some(300)).await })
        })
        .collect();
    let mut succeeded = Vec::new();
    for task in tasks {
        match task.await? {
            Ok(refund) => succeeded.push(refund),
            Err(status) => assert_reason(&status, Code::FailedPrecondition, "REFUND_EXCEEDS_PAYIN"),
        }
    }
    assert!(
        (1..=3).contains(&succeeded.len()),
        "{} refunds of 30% succeeded",
        succeeded.len()
    );
    let refunded: i64 = succeeded.iter().map(|r| amount(&r.value)).sum();
    assert_eq!(
        amount(&cards.get_payin(&payin.id).await?.refunded_value),
        refunded
    );
    assert_eq!(cards.client.balance(&account.id).await?, 1_000 - refunded);
    cards.client.check_transaction_chain(&account.id).await?;
    Ok(())
}

// ---------------------------------------------------------------- live projects

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_projects_have_no_card_network_and_no_sandbox_calls() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let live = server.create_project("live", true);
    let cards = Cards::new(&server, &live.key);
    let account = cards.client.create_account("EUR", false).await?;

    // Tokens and cards need no network.
    let token = cards.token(APPROVED, "123").await?;
    let card = cards.card(card_from_token(&token.id)).await?;

    let before = cards.client.snapshot().await?;
    for request in [
        payin_request(&account.id, 100, APPROVED),
        three_d_secure(payin_request(&account.id, 100, NEEDS_3DS)),
        from_source(payin_request(&account.id, 100, APPROVED), &card.id),
    ] {
        assert_reason(
            &expect_err(cards.payin(request).await),
            Code::FailedPrecondition,
            "CARD_NETWORK_UNAVAILABLE",
        );
    }
    assert!(cards.all_payins().await?.is_empty());
    assert_eq!(cards.client.snapshot().await?, before);

    // The sandbox-only calls, whatever they name.
    let payin_id = with_prefix(&account.id, "cpi");
    let refund_id = with_prefix(&account.id, "cpr");
    let payin_id = payin_id.as_str();
    let sandbox_only = |status: Status| assert_reason(&status, Code::FailedPrecondition, "SANDBOX_ONLY");
    sandbox_only(expect_err(cards.settle(payin_id).await));
    sandbox_only(expect_err(cards.authenticate(payin_id, false).await));
    sandbox_only(expect_err(
        cards
            .payins
            .clone()
            .complete_card_payin_refund(pb::CompleteCardPayinRefundRequest {
                card_payin_refund_id: refund_id.clone(),
            })
            .await,
    ));
    sandbox_only(expect_err(
        cards
            .payins
            .clone()
            .fail_card_payin_refund(pb::FailCardPayinRefundRequest {
                card_payin_refund_id: refund_id.clone(),
            })
            .await,
    ));
    Ok(())
}

// ---------------------------------------------------------------- redaction

/// The maximal runs of ASCII digits in `bytes`: a CVC "appears" only as a
/// whole run, not inside a longer number (3 or 4 digits occur by chance
/// inside timestamps, amounts and binary data).
fn digit_runs(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|b| !b.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_numbers_and_cvcs_reach_neither_disk_nor_log() -> anyhow::Result<()> {
    let dir = test_dir();
    let mut server = Server::start(dir.path());
    let public = Cards::new(&server, &server.create_key(server.project_id(), true));
    let cards = Cards::new(&server, server.key());
    let account = cards.client.create_account("EUR", false).await?;

    // Distinctive numbers (none is a sandbox test card: all approve) and CVCs.
    let token_number = luhn("491748392617503");
    let card_number = luhn("527461938205746");
    let direct_number = luhn("37926184305172");
    let secure_number = luhn("601173948265103");
    let token_3ds_number = luhn("491795031846627");
    let refused_number = luhn("453918273645091");
    let numbers = [
        &token_number,
        &card_number,
        &direct_number,
        &secure_number,
        &token_3ds_number,
        &refused_number,
    ];
    let cvcs = ["8361", "7492", "9053", "6718", "5827", "4169"];

    // A token (public key) turned into a card; a card from card data.
    let token = public.token(&token_number, cvcs[0]).await?;
    let from_token = cards.card(card_from_token(&token.id)).await?;
    let stored = cards.card(card_from_info(&card_number, cvcs[1])).await?;
    // Payins: card data, 3-D Secure with card data (idempotent retry too),
    // stored cards, a token with 3-D Secure.
    let mut direct = payin_request(&account.id, 100, &direct_number);
    direct.card_info.as_mut().unwrap().cvc = cvcs[2].into();
    let direct = cards.payin(direct).await?;
    let mut secure = three_d_secure(payin_request(&account.id, 200, &secure_number));
    secure.card_info.as_mut().unwrap().cvc = cvcs[3].into();
    let secure_first = cards
        .payins
        .clone()
        .create_card_payin(with_idempotency_key(secure.clone(), "secure-1"))
        .await?
        .into_inner();
    let secure_again = cards
        .payins
        .clone()
        .create_card_payin(with_idempotency_key(secure, "secure-1"))
        .await?
        .into_inner();
    assert_eq!(secure_first.id, secure_again.id);
    cards.authenticate(&secure_first.id, false).await?;
    for source in [&from_token.id, &stored.id] {
        let payin = cards
            .payin(three_d_secure(from_source(
                payin_request(&account.id, 300, APPROVED),
                source,
            )))
            .await?;
        cards.authenticate(&payin.id, false).await?;
        cards
            .payin(from_source(payin_request(&account.id, 300, APPROVED), source))
            .await?;
    }
    let token_3ds = public.token(&token_3ds_number, cvcs[4]).await?;
    let payin = cards
        .payin(three_d_secure(from_source(
            payin_request(&account.id, 400, APPROVED),
            &token_3ds.id,
        )))
        .await?;
    let authorized = cards.authenticate(&payin.id, false).await?;
    assert_eq!(authorized.state(), pb::CardPayinState::Authorized);
    cards.settle(&direct.id).await?;
    // Refused requests: a bad CVC with a good number, an expired card.
    let mut refused = card_info(&refused_number, "12");
    let status = expect_err(
        cards
            .card(pb::CreateCardRequest {
                card_info: Some(refused.clone()),
                ..card_from_info(APPROVED, "123")
            })
            .await,
    );
    assert_bad_request_fields(&status, &["card_info.cvc"]);
    refused.cvc = cvcs[5].into();
    refused.expiration_year = 2021;
    let status = expect_err(
        public
            .tokens
            .clone()
            .create_card_token(pb::CreateCardTokenRequest {
                card_info: Some(refused),
            })
            .await,
    );
    assert_bad_request_fields(&status, &["card_info.expiration_year"]);

    // Closing the connections lets the graceful stop finish at once; it
    // also writes the read-model snapshot, which is searched too.
    drop((cards, public));
    server.stop_ok();

    let files = files_under(&server.data_dir());
    assert!(
        files.len() > 3,
        "{:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let log = server.log();
    assert!(log.contains("card payin created"), "payin decisions are logged");
    // The search does see what was stored: the masked numbers are there.
    let stored_masked = masked(&direct_number);
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, stored_masked.as_bytes())),
        "no file holds {stored_masked}"
    );
    for (path, bytes) in files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .chain([("log", log.as_bytes())])
    {
        for number in numbers {
            assert!(
                !contains(bytes, number.as_bytes()),
                "{path} holds the card number {number}"
            );
        }
        let runs = digit_runs(bytes);
        for cvc in cvcs {
            assert!(!runs.contains(&cvc.as_bytes()), "{path} holds the CVC {cvc}");
        }
    }
    // The log names the cards of payins, masked: first 6, stars, last 4,
    // and never the first 6 digits followed by more digits.
    for number in [
        &direct_number,
        &secure_number,
        &token_3ds_number,
        &card_number,
        &token_number,
    ] {
        let hidden = masked(number);
        assert!(log.contains(&hidden), "the log does not mention {hidden}");
        for (at, _) in log.match_indices(&number[..6]) {
            let rest = &log[at..];
            assert!(
                rest.starts_with(&hidden) || !rest[6..].starts_with(|c: char| c.is_ascii_digit() || c == '*'),
                "the log shows {number} other than as {hidden}: {}",
                &rest[..rest.len().min(40)]
            );
        }
    }
    Ok(())
}
