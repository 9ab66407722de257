//! Proto ↔ domain for card tokens, cards, card payins and refunds, with the
//! rules of [`crate::convert`]: every invalid field is recorded in
//! [`Violations`] under its path in the request, and a parser that returns
//! `None` has recorded at least one.
//!
//! Card data is validated here by the domain's `validate_card_info`, whose
//! messages never echo the input. What leaves this module towards a command,
//! a response or a log line is a [`CardInfo`] (masked number, fingerprint),
//! never a full number or a CVC.

use paycore_domain::aggregate::Aggregate;
use paycore_domain::card::{CardBrand, CardInfo, CardNumber, ValidatedCard, YearMonth, validate_card_info};
use paycore_domain::events::TokenUse;
use paycore_domain::payments::{
    AuthenticationType, Card, CardPayin, CardPayinRefund, CardPayinState, CardToken, DeclineReason,
    NewRefund, RefundState,
};
use paycore_domain::{
    AccountId, CardId, CardPayinId, CardPayinRefundId, CardTokenId, Command, Meta, Money, TransactionId,
    Violations,
};

use crate::convert::{self, Mask, meta_pb, money_pb, timestamp};
use crate::pb;

/// The longest `authentication_redirect_url` accepted.
pub const MAX_REDIRECT_URL_LEN: usize = 2048;

// ---------------------------------------------------------------- proto → domain

/// Card data of a request (`field` is its path, e.g. `card_info`), checked in
/// full against the current month.
pub fn card_info_request(
    request: &pb::CardInfoRequest,
    field: &str,
    today: YearMonth,
    v: &mut Violations,
) -> Option<ValidatedCard> {
    validate_card_info(
        &request.number,
        i64::from(request.expiration_month),
        i64::from(request.expiration_year),
        &request.cvc,
        today,
        field,
        v,
    )
}

/// The card data of a request as it enters the idempotency hash: the number
/// replaced by its fingerprint under the project's key and the CVC left out.
/// The hash is kept in the event log, and a plain hash of a card number can
/// be reversed by trying the few billion numbers of an issuer; the keyed
/// fingerprint cannot, and still tells two cards apart.
pub fn card_info_for_hash(request: &pb::CardInfoRequest, fingerprint_key: &[u8; 32]) -> pb::CardInfoRequest {
    let number = CardNumber::parse(&request.number)
        .map(|number| number.fingerprint(fingerprint_key).to_string())
        // An invalid number is refused before any key is recorded.
        .unwrap_or_default();
    pb::CardInfoRequest {
        number,
        expiration_month: request.expiration_month,
        expiration_year: request.expiration_year,
        cvc: String::new(),
    }
}

/// Where the card of a request comes from, before its number is looked up.
#[derive(Debug)]
pub enum SourceRequest {
    /// Card data in the request; `Debug` shows the masked number only.
    Info(ValidatedCard),
    Token(CardTokenId),
    Card(CardId),
}

/// The card fields of a request, of which exactly one must be given.
#[derive(Clone, Copy, Debug)]
pub struct SourceFields<'a> {
    pub card_info: Option<&'a pb::CardInfoRequest>,
    pub card_token_id: Option<&'a str>,
    pub card_id: Option<&'a str>,
    /// Whether the request has a `card_id` field (payins do, cards do not).
    pub accepts_card_id: bool,
}

/// The one card source of a request. None given is a violation on
/// `card_info`; several given, one on each of them. Each given field is
/// checked either way, so every mistake is reported at once.
pub fn card_source(fields: SourceFields<'_>, today: YearMonth, v: &mut Violations) -> Option<SourceRequest> {
    let choices = if fields.accepts_card_id {
        "card_info, card_token_id or card_id"
    } else {
        "card_info or card_token_id"
    };
    let info = fields
        .card_info
        .map(|info| card_info_request(info, "card_info", today, v));
    let token = fields
        .card_token_id
        .map(|id| convert::optional_id::<CardTokenId>(Some(id), "card_token_id", v).flatten());
    let card = fields
        .card_id
        .map(|id| convert::optional_id::<CardId>(Some(id), "card_id", v).flatten());
    let given = [
        ("card_info", info.is_some()),
        ("card_token_id", token.is_some()),
        ("card_id", card.is_some()),
    ];
    match given.iter().filter(|(_, present)| *present).count() {
        0 => {
            v.add("card_info", format!("is required: give exactly one of {choices}"));
            None
        }
        1 => match (info, token, card) {
            (Some(info), _, _) => info.map(SourceRequest::Info),
            (_, Some(token), _) => token.map(SourceRequest::Token),
            (_, _, Some(card)) => card.map(SourceRequest::Card),
            (None, None, None) => None,
        },
        _ => {
            for (field, present) in given {
                if present {
                    v.add(field, format!("give exactly one of {choices}, not several"));
                }
            }
            None
        }
    }
}

/// How the cardholder authenticates a new payin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthenticationRequest {
    None,
    ThreeDSecure { redirect_url: Option<String> },
}

/// `authentication_type` (UNSPECIFIED means NONE) and
/// `authentication_redirect_url` (only with 3-D Secure: silently dropping it
/// would hide a client bug).
pub fn authentication(
    authentication_type: i32,
    redirect_url: Option<&str>,
    v: &mut Violations,
) -> Option<AuthenticationRequest> {
    use pb::AuthenticationType as P;
    let three_d_secure = match P::try_from(authentication_type) {
        Ok(P::Unspecified | P::None) => false,
        Ok(P::ThreeDSecure) => true,
        Err(_) => {
            v.add(
                "authentication_type",
                format!("unknown authentication type {authentication_type}"),
            );
            return None;
        }
    };
    let redirect_url = match redirect_url {
        None => None,
        Some(_) if !three_d_secure => {
            v.add(
                "authentication_redirect_url",
                "is only accepted with AUTHENTICATION_TYPE_THREE_D_SECURE",
            );
            return None;
        }
        Some(url) => Some(redirect(url, v)?),
    };
    Some(if three_d_secure {
        AuthenticationRequest::ThreeDSecure { redirect_url }
    } else {
        AuthenticationRequest::None
    })
}

/// An absolute `https://` or `http://` URL without whitespace or control
/// characters, at most [`MAX_REDIRECT_URL_LEN`] bytes.
fn redirect(url: &str, v: &mut Violations) -> Option<String> {
    const FIELD: &str = "authentication_redirect_url";
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let problem = if url.len() > MAX_REDIRECT_URL_LEN {
        Some(format!("must be at most {MAX_REDIRECT_URL_LEN} characters"))
    } else if rest.is_none_or(str::is_empty) {
        Some("must be an absolute https:// or http:// URL".to_owned())
    } else if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain spaces or control characters".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => {
            v.add(FIELD, problem);
            None
        }
        None => Some(url.to_owned()),
    }
}

/// A required, positive `value`.
fn positive_money(value: Option<&pb::Money>, field: &str, v: &mut Violations) -> Option<Money> {
    let value = convert::money(value, field, v)?;
    if value.amount <= 0 {
        v.add(format!("{field}.amount"), "must be positive");
        return None;
    }
    Some(value)
}

/// A parsed `CreateCardRequest`, before the token's number is looked up.
#[derive(Debug)]
pub struct CardRequest {
    pub source: SourceRequest,
    pub customer_id: Option<paycore_domain::CustomerId>,
    pub meta: Meta,
}

pub fn create_card(
    request: &pb::CreateCardRequest,
    today: YearMonth,
    v: &mut Violations,
) -> Option<CardRequest> {
    let fields = SourceFields {
        card_info: request.card_info.as_ref(),
        card_token_id: request.card_token_id.as_deref(),
        card_id: None,
        accepts_card_id: false,
    };
    let source = card_source(fields, today, v);
    let customer_id = convert::optional_id(request.customer_id.as_deref(), "customer_id", v);
    let meta = convert::meta(&request.meta, "meta", v);
    Some(CardRequest {
        source: source?,
        customer_id: customer_id?,
        meta: meta?,
    })
}

/// A parsed `CreateCardPayinRequest`, before the card's number is looked up
/// and the network asked.
#[derive(Debug)]
pub struct PayinRequest {
    pub account_id: AccountId,
    pub value: Money,
    pub source: SourceRequest,
    pub authentication: AuthenticationRequest,
    pub meta: Meta,
}

pub fn create_card_payin(
    request: &pb::CreateCardPayinRequest,
    today: YearMonth,
    v: &mut Violations,
) -> Option<PayinRequest> {
    let account_id = convert::id::<AccountId>(&request.account_id, "account_id", v);
    let value = positive_money(request.value.as_ref(), "value", v);
    let fields = SourceFields {
        card_info: request.card_info.as_ref(),
        card_token_id: request.card_token_id.as_deref(),
        card_id: request.card_id.as_deref(),
        accepts_card_id: true,
    };
    let source = card_source(fields, today, v);
    let authentication = authentication(
        request.authentication_type,
        request.authentication_redirect_url.as_deref(),
        v,
    );
    let meta = convert::meta(&request.meta, "meta", v);
    Some(PayinRequest {
        account_id: account_id?,
        value: value?,
        source: source?,
        authentication: authentication?,
        meta: meta?,
    })
}

/// The IDs a new refund needs.
#[derive(Clone, Copy, Debug)]
pub struct RefundIds {
    pub refund: CardPayinRefundId,
    pub transaction: TransactionId,
}

pub fn create_card_payin_refund(
    request: &pb::CreateCardPayinRefundRequest,
    ids: RefundIds,
    v: &mut Violations,
) -> Option<Command> {
    let card_payin_id = convert::id::<CardPayinId>(&request.card_payin_id, "card_payin_id", v);
    let value = match &request.value {
        None => Some(None),
        Some(value) => positive_money(Some(value), "value", v).map(Some),
    };
    let account_id = convert::optional_id::<AccountId>(request.account_id.as_deref(), "account_id", v);
    let meta = convert::meta(&request.meta, "meta", v);
    Some(Command::CreateCardPayinRefund(NewRefund {
        id: ids.refund,
        card_payin_id: card_payin_id?,
        value: value?,
        account_id: account_id?,
        transaction_id: ids.transaction,
        meta: meta?,
    }))
}

/// `update_mask` (only `meta`) and `meta` of an `Update*` request.
fn meta_update(
    mask: Option<&prost_types::FieldMask>,
    meta: &std::collections::BTreeMap<String, String>,
    v: &mut Violations,
) -> Option<Meta> {
    let mask = Mask::parse(mask, &["meta"], v);
    let meta = convert::meta(meta, "meta", v);
    mask?;
    meta
}

pub fn update_card(request: &pb::UpdateCardRequest, v: &mut Violations) -> Option<Command> {
    let id = convert::id::<CardId>(&request.card_id, "card_id", v);
    let meta = meta_update(request.update_mask.as_ref(), &request.meta, v);
    Some(Command::UpdateCard { id: id?, meta: meta? })
}

pub fn update_card_payin(request: &pb::UpdateCardPayinRequest, v: &mut Violations) -> Option<Command> {
    let id = convert::id::<CardPayinId>(&request.card_payin_id, "card_payin_id", v);
    let meta = meta_update(request.update_mask.as_ref(), &request.meta, v);
    Some(Command::UpdateCardPayin { id: id?, meta: meta? })
}

pub fn update_card_payin_refund(
    request: &pb::UpdateCardPayinRefundRequest,
    v: &mut Violations,
) -> Option<Command> {
    let id = convert::id::<CardPayinRefundId>(&request.card_payin_refund_id, "card_payin_refund_id", v);
    let meta = meta_update(request.update_mask.as_ref(), &request.meta, v);
    Some(Command::UpdateCardPayinRefund { id: id?, meta: meta? })
}

// ---------------------------------------------------------------- domain → proto

pub fn card_brand_pb(brand: CardBrand) -> pb::CardBrand {
    match brand {
        CardBrand::Visa => pb::CardBrand::Visa,
        CardBrand::Mastercard => pb::CardBrand::Mastercard,
        CardBrand::AmericanExpress => pb::CardBrand::AmericanExpress,
        CardBrand::Discover => pb::CardBrand::Discover,
        CardBrand::DinersClub => pb::CardBrand::DinersClub,
        CardBrand::Jcb => pb::CardBrand::Jcb,
        CardBrand::Maestro => pb::CardBrand::Maestro,
        CardBrand::Unionpay => pb::CardBrand::Unionpay,
        CardBrand::Unknown => pb::CardBrand::Unknown,
    }
}

pub fn card_info_pb(info: &CardInfo) -> pb::CardInfo {
    pb::CardInfo {
        number: info.number().as_str().to_owned(),
        expiration_month: info.expiry().month().into(),
        expiration_year: info.expiry().year().into(),
        brand: card_brand_pb(info.brand()).into(),
        fingerprint: info.fingerprint().to_string(),
    }
}

pub fn card_token_pb(token: &CardToken) -> pb::CardToken {
    let (used_by, used_at) = token.used.unzip();
    pb::CardToken {
        id: token.id.to_string(),
        created_at: Some(timestamp(token.created_at)),
        project_id: token.project_id.to_string(),
        card_info: Some(card_info_pb(&token.card_info)),
        expires_at: Some(timestamp(token.expires_at)),
        used_at: used_at.map(timestamp),
        card_id: match used_by {
            Some(TokenUse::Card(id)) => Some(id.to_string()),
            _ => None,
        },
        card_payin_id: match used_by {
            Some(TokenUse::CardPayin(id)) => Some(id.to_string()),
            _ => None,
        },
    }
}

pub fn card_pb(card: &Card) -> pb::Card {
    pb::Card {
        id: card.id.to_string(),
        created_at: Some(timestamp(card.created_at)),
        project_id: card.project_id.to_string(),
        customer_id: card.customer_id.map(|id| id.to_string()),
        card_info: Some(card_info_pb(&card.card_info)),
        card_token_id: card.card_token_id.map(|id| id.to_string()),
        meta: meta_pb(&card.meta),
    }
}

pub fn card_payin_state_pb(state: CardPayinState) -> pb::CardPayinState {
    match state {
        CardPayinState::Processing => pb::CardPayinState::Processing,
        CardPayinState::AuthenticationPending => pb::CardPayinState::AuthenticationPending,
        CardPayinState::Authorized => pb::CardPayinState::Authorized,
        CardPayinState::Declined => pb::CardPayinState::Declined,
        CardPayinState::Settled => pb::CardPayinState::Settled,
    }
}

pub fn decline_reason_pb(reason: DeclineReason) -> pb::DeclineReason {
    match reason {
        DeclineReason::CardDeclined => pb::DeclineReason::CardDeclined,
        DeclineReason::InsufficientFunds => pb::DeclineReason::InsufficientFunds,
        DeclineReason::ExpiredCard => pb::DeclineReason::ExpiredCard,
        DeclineReason::AuthenticationRequired => pb::DeclineReason::AuthenticationRequired,
        DeclineReason::AuthenticationFailed => pb::DeclineReason::AuthenticationFailed,
    }
}

pub fn authentication_type_pb(kind: AuthenticationType) -> pb::AuthenticationType {
    match kind {
        AuthenticationType::None => pb::AuthenticationType::None,
        AuthenticationType::ThreeDSecure => pb::AuthenticationType::ThreeDSecure,
    }
}

pub fn card_payin_pb(payin: &CardPayin) -> pb::CardPayin {
    pb::CardPayin {
        id: payin.id.to_string(),
        created_at: Some(timestamp(payin.created_at)),
        project_id: payin.project_id.to_string(),
        state: card_payin_state_pb(payin.state).into(),
        decline_reason: payin
            .decline_reason
            .map_or(pb::DeclineReason::Unspecified, decline_reason_pb)
            .into(),
        card_id: payin.card_id.map(|id| id.to_string()),
        card_token_id: payin.card_token_id.map(|id| id.to_string()),
        card_info: Some(card_info_pb(&payin.card_info)),
        account_id: payin.account_id.to_string(),
        transaction_id: payin.transaction_id.map(|id| id.to_string()),
        authentication_type: authentication_type_pb(payin.authentication_type).into(),
        authentication_url: payin.authentication_url.clone(),
        authentication_redirect_url: payin.authentication_redirect_url.clone(),
        value: Some(money_pb(payin.value)),
        refunded_value: Some(money_pb(payin.refunded_value)),
        meta: meta_pb(&payin.meta),
    }
}

pub fn refund_state_pb(state: RefundState) -> pb::CardPayinRefundState {
    match state {
        RefundState::Processing => pb::CardPayinRefundState::Processing,
        RefundState::Completed => pb::CardPayinRefundState::Completed,
        RefundState::Failed => pb::CardPayinRefundState::Failed,
    }
}

pub fn card_payin_refund_pb(refund: &CardPayinRefund) -> pb::CardPayinRefund {
    pb::CardPayinRefund {
        id: refund.id.to_string(),
        created_at: Some(timestamp(refund.created_at)),
        project_id: refund.project_id.to_string(),
        card_payin_id: refund.card_payin_id.to_string(),
        account_id: refund.account_id.to_string(),
        state: refund_state_pb(refund.state).into(),
        transaction_id: refund.transaction_id.to_string(),
        failure_transaction_id: refund.failure_transaction_id.map(|id| id.to_string()),
        value: Some(money_pb(refund.value)),
        meta: meta_pb(&refund.meta),
    }
}

/// The proto of a listed card, payin or refund state; `None` for an
/// aggregate of another kind (the read models never list one).
pub fn card_pb_of(state: &Aggregate) -> Option<pb::Card> {
    state.as_card().map(card_pb)
}

pub fn card_payin_pb_of(state: &Aggregate) -> Option<pb::CardPayin> {
    state.as_card_payin().map(card_payin_pb)
}

pub fn card_payin_refund_pb_of(state: &Aggregate) -> Option<pb::CardPayinRefund> {
    state.as_card_payin_refund().map(card_payin_refund_pb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paycore_domain::DomainError;

    const TODAY: YearMonth = YearMonth::new(2025, 6);

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn card(number: &str, month: i32, year: i32, cvc: &str) -> pb::CardInfoRequest {
        pb::CardInfoRequest {
            number: number.into(),
            expiration_month: month,
            expiration_year: year,
            cvc: cvc.into(),
        }
    }

    fn source(
        info: Option<&pb::CardInfoRequest>,
        token: Option<&str>,
        card: Option<&str>,
    ) -> (Option<SourceRequest>, Vec<String>) {
        let mut v = Violations::new();
        let fields_given = SourceFields {
            card_info: info,
            card_token_id: token,
            card_id: card,
            accepts_card_id: true,
        };
        let parsed = card_source(fields_given, TODAY, &mut v);
        (parsed, fields(v))
    }

    #[test]
    fn card_data_reports_every_field_without_echoing_it() {
        let mut v = Violations::new();
        let bad = card("4242424242424241", 13, 2030, "12");
        assert!(card_info_request(&bad, "card_info", TODAY, &mut v).is_none());
        let Err(DomainError::Invalid(violations)) = v.into_result() else {
            panic!("expected violations");
        };
        let named: Vec<_> = violations.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            named,
            ["card_info.number", "card_info.expiration_month", "card_info.cvc"]
        );
        for violation in &violations {
            assert!(!violation.description.contains("4242"), "{violation:?}");
        }
        let mut v = Violations::new();
        let expired = card("4242424242424242", 12, 2024, "123");
        assert!(card_info_request(&expired, "card_info", TODAY, &mut v).is_none());
        assert_eq!(fields(v), ["card_info.expiration_year"]);
    }

    #[test]
    fn exactly_one_card_source() {
        let good = card("4242424242424242", 12, 2030, "123");
        let token = CardTokenId::from_uuid(uuid::Uuid::from_u128(1)).to_string();
        let stored = CardId::from_uuid(uuid::Uuid::from_u128(2)).to_string();

        let (parsed, violations) = source(Some(&good), None, None);
        assert!(matches!(parsed, Some(SourceRequest::Info(_))), "{violations:?}");
        let (parsed, _) = source(None, Some(&token), None);
        assert!(matches!(parsed, Some(SourceRequest::Token(_))));
        let (parsed, _) = source(None, None, Some(&stored));
        assert!(matches!(parsed, Some(SourceRequest::Card(_))));

        assert_eq!(source(None, None, None).1, ["card_info"]);
        assert_eq!(
            source(Some(&good), Some(&token), Some(&stored)).1,
            ["card_info", "card_token_id", "card_id"]
        );
        // A malformed ID is reported as such, along with the ambiguity.
        let (parsed, violations) = source(None, Some(&stored), Some("crd_nope"));
        assert!(parsed.is_none());
        assert_eq!(
            violations,
            ["card_token_id", "card_id", "card_token_id", "card_id"]
        );
    }

    #[test]
    fn the_hashed_request_has_neither_number_nor_cvc() {
        let key = [3; 32];
        let request = card("4000000000003220", 11, 2031, "9517");
        let hashed = card_info_for_hash(&request, &key);
        assert!(!hashed.number.contains("4000000000003220"));
        assert_eq!(hashed.number.len(), 16);
        assert!(hashed.cvc.is_empty());
        assert_eq!((hashed.expiration_month, hashed.expiration_year), (11, 2031));
        // Equal cards hash equally whatever the CVC; other cards differently.
        let other_cvc = card("4000000000003220", 11, 2031, "1111");
        assert_eq!(card_info_for_hash(&other_cvc, &key), hashed);
        let other_card = card("4242424242424242", 11, 2031, "9517");
        assert_ne!(card_info_for_hash(&other_card, &key), hashed);
    }

    #[test]
    fn authentication_and_redirect() {
        let check = |kind: pb::AuthenticationType, url: Option<&str>| {
            let mut v = Violations::new();
            let parsed = authentication(kind.into(), url, &mut v);
            (parsed, fields(v))
        };
        use pb::AuthenticationType as P;
        assert_eq!(check(P::Unspecified, None).0, Some(AuthenticationRequest::None));
        assert_eq!(check(P::None, None).0, Some(AuthenticationRequest::None));
        assert_eq!(
            check(P::ThreeDSecure, Some("https://shop.example/back?o=1")).0,
            Some(AuthenticationRequest::ThreeDSecure {
                redirect_url: Some("https://shop.example/back?o=1".into())
            })
        );
        assert_eq!(
            check(P::None, Some("https://shop.example")).1,
            ["authentication_redirect_url"]
        );
        let long = format!("https://{}", "a".repeat(MAX_REDIRECT_URL_LEN));
        for bad in [
            "",
            "shop.example",
            "https://",
            "ftp://x",
            "https://a b",
            long.as_str(),
        ] {
            assert_eq!(
                check(P::ThreeDSecure, Some(bad)).1,
                ["authentication_redirect_url"],
                "{bad}"
            );
        }
        let mut v = Violations::new();
        assert!(authentication(42, None, &mut v).is_none());
        assert_eq!(fields(v), ["authentication_type"]);
    }

    #[test]
    fn refund_value_is_optional_but_positive() {
        let ids = RefundIds {
            refund: CardPayinRefundId::from_uuid(uuid::Uuid::from_u128(1)),
            transaction: TransactionId::from_uuid(uuid::Uuid::from_u128(2)),
        };
        let payin = CardPayinId::from_uuid(uuid::Uuid::from_u128(3)).to_string();
        let mut request = pb::CreateCardPayinRefundRequest {
            card_payin_id: payin,
            value: None,
            account_id: None,
            meta: Default::default(),
        };
        let mut v = Violations::new();
        let Some(Command::CreateCardPayinRefund(refund)) = create_card_payin_refund(&request, ids, &mut v)
        else {
            panic!("a refund without value is valid");
        };
        assert_eq!(refund.value, None);
        request.value = Some(pb::Money {
            currency: "EUR".into(),
            amount: 0,
        });
        request.account_id = Some("acc_nope".into());
        let mut v = Violations::new();
        assert!(create_card_payin_refund(&request, ids, &mut v).is_none());
        assert_eq!(fields(v), ["value.amount", "account_id"]);
    }

    #[test]
    fn every_brand_and_state_has_a_proto_value() {
        for brand in CardBrand::ALL {
            assert_ne!(card_brand_pb(brand), pb::CardBrand::Unspecified);
        }
        for reason in DeclineReason::ALL {
            assert_ne!(decline_reason_pb(reason), pb::DeclineReason::Unspecified);
        }
    }
}
