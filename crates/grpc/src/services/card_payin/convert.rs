//! Proto ⇄ domain for card payins and their refunds (the card itself is
//! parsed by the card family's conversion).

use paycore_domain::aggregate::Aggregate;
use paycore_domain::card::YearMonth;
use paycore_domain::card_payin::CardPayinCommand;
use paycore_domain::card_payin::{
    AuthenticationType, CardPayin, CardPayinRefund, CardPayinState, DeclineReason, NewRefund, RefundState,
};
use paycore_domain::{
    AccountId, CardPayinId, CardPayinRefundId, Command, Meta, Money, TransactionId, Violations,
};

use crate::convert::{self as shared, meta_pb, meta_update, money_pb, positive_money, timestamp};
use crate::pb;
use crate::services::card::convert::{SourceFields, SourceRequest, card_info_pb, card_source};

/// The longest `authentication_redirect_url` accepted.
pub const MAX_REDIRECT_URL_LEN: usize = 2048;

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
    let account_id = shared::id::<AccountId>(&request.account_id, "account_id", v);
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
    let meta = shared::meta(&request.meta, "meta", v);
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
    let card_payin_id = shared::id::<CardPayinId>(&request.card_payin_id, "card_payin_id", v);
    let value = match &request.value {
        None => Some(None),
        Some(value) => positive_money(Some(value), "value", v).map(Some),
    };
    let account_id = shared::optional_id::<AccountId>(request.account_id.as_deref(), "account_id", v);
    let meta = shared::meta(&request.meta, "meta", v);
    Some(
        CardPayinCommand::CreateCardPayinRefund(NewRefund {
            id: ids.refund,
            card_payin_id: card_payin_id?,
            value: value?,
            account_id: account_id?,
            transaction_id: ids.transaction,
            meta: meta?,
        })
        .into(),
    )
}

pub fn update_card_payin(request: &pb::UpdateCardPayinRequest, v: &mut Violations) -> Option<Command> {
    let id = shared::id::<CardPayinId>(&request.card_payin_id, "card_payin_id", v);
    let meta = meta_update(request.update_mask.as_ref(), &request.meta, v);
    Some(CardPayinCommand::UpdateCardPayin { id: id?, meta: meta? }.into())
}

pub fn update_card_payin_refund(
    request: &pb::UpdateCardPayinRefundRequest,
    v: &mut Violations,
) -> Option<Command> {
    let id = shared::id::<CardPayinRefundId>(&request.card_payin_refund_id, "card_payin_refund_id", v);
    let meta = meta_update(request.update_mask.as_ref(), &request.meta, v);
    Some(CardPayinCommand::UpdateCardPayinRefund { id: id?, meta: meta? }.into())
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

pub fn card_payin_pb_of(state: &Aggregate) -> Option<pb::CardPayin> {
    state.as_card_payin().map(card_payin_pb)
}

pub fn card_payin_refund_pb_of(state: &Aggregate) -> Option<pb::CardPayinRefund> {
    state.as_card_payin_refund().map(card_payin_refund_pb)
}

#[cfg(test)]
mod tests {
    use paycore_domain::DomainError;
    use paycore_domain::card::CardBrand;

    use super::*;
    use crate::services::card::convert::card_brand_pb;

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
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
        let Some(Command::CardPayin(CardPayinCommand::CreateCardPayinRefund(refund))) =
            create_card_payin_refund(&request, ids, &mut v)
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
