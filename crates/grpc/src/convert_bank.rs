//! The bank, file and exchange rate conversions under their former path
//! (the fuzz targets use it); they live beside their
//! services, in `services/<family>/convert.rs`.

pub use crate::convert::concept;
pub use crate::services::bank_account::convert::{
    bank_account_info, bank_account_info_pb, bank_account_pb, create_bank_account, update_bank_account,
};
pub use crate::services::bank_payin::convert::{
    PayinIds, bank_payin_pb, bank_payin_reference_pb, create_bank_payin_reference, simulate_bank_payin,
    update_bank_payin, update_bank_payin_reference,
};
pub use crate::services::bank_payout::convert::{
    PayoutIds, bank_payout_pb, bank_payout_state_pb, create_bank_payout, update_bank_payout,
};
pub use crate::services::file::convert::file_pb;
pub use crate::services::fx_rate::convert::{fx_rate_pb, rate_used_text};
