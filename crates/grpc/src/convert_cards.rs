//! The card and card payin conversions under their former path (the fuzz
//! targets use it); they live beside their services, in
//! `services/card/convert.rs` and `services/card_payin/convert.rs`.

pub use crate::services::card::convert::{
    CardRequest, SourceFields, SourceRequest, card_brand_pb, card_info_for_hash, card_info_pb,
    card_info_request, card_pb, card_pb_of, card_source, card_token_pb, create_card, update_card,
};
pub use crate::services::card_payin::convert::{
    AuthenticationRequest, MAX_REDIRECT_URL_LEN, PayinRequest, RefundIds, authentication,
    authentication_type_pb, card_payin_pb, card_payin_pb_of, card_payin_refund_pb, card_payin_refund_pb_of,
    card_payin_state_pb, create_card_payin, create_card_payin_refund, decline_reason_pb, refund_state_pb,
    update_card_payin, update_card_payin_refund,
};
