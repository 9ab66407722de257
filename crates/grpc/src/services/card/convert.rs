//! Proto ⇄ domain for card tokens and cards, with the rules of
//! [`crate::convert`]: every invalid field is recorded in [`Violations`]
//! under its path in the request, and a parser that returns `None` has
//! recorded at least one.
//!
//! Card data is validated here by the domain's `validate_card_info`, whose
//! messages never echo the input. What leaves this module towards a command,
//! a response or a log line is a [`CardInfo`] (masked number, fingerprint),
//! never a full number or a CVC. Card payins take their card through
//! [`card_source`], [`card_info_request`] and [`card_info_for_hash`].

use paycore_domain::aggregate::Aggregate;
use paycore_domain::card::CardCommand;
use paycore_domain::card::{Card, CardToken};
use paycore_domain::card::{CardBrand, CardInfo, CardNumber, ValidatedCard, YearMonth, validate_card_info};
use paycore_domain::events::TokenUse;
use paycore_domain::{CardId, CardTokenId, Command, Meta, Violations};

use crate::convert::{self as shared, meta_pb, meta_update, timestamp};
use crate::pb;

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
        .map(|id| shared::optional_id::<CardTokenId>(Some(id), "card_token_id", v).flatten());
    let card = fields
        .card_id
        .map(|id| shared::optional_id::<CardId>(Some(id), "card_id", v).flatten());
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
    let customer_id = shared::optional_id(request.customer_id.as_deref(), "customer_id", v);
    let meta = shared::meta(&request.meta, "meta", v);
    Some(CardRequest {
        source: source?,
        customer_id: customer_id?,
        meta: meta?,
    })
}

pub fn update_card(request: &pb::UpdateCardRequest, v: &mut Violations) -> Option<Command> {
    let id = shared::id::<CardId>(&request.card_id, "card_id", v);
    let meta = meta_update(request.update_mask.as_ref(), &request.meta, v);
    Some(CardCommand::UpdateCard { id: id?, meta: meta? }.into())
}

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

/// The proto of a listed card, payin or refund state; `None` for an
/// aggregate of another kind (the read models never list one).
pub fn card_pb_of(state: &Aggregate) -> Option<pb::Card> {
    state.as_card().map(card_pb)
}

#[cfg(test)]
mod tests {
    use paycore_domain::DomainError;

    use super::*;

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
}
