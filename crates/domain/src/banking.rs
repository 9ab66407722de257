//! Bank accounts, payouts, payin references and payins, by their former
//! path: they live in the [`crate::bank_account`], [`crate::bank_payout`] and
//! [`crate::bank_payin`] families now, files and exchange rates in
//! [`crate::file`] and [`crate::fx_rate`].

pub use crate::bank_account::*;
pub use crate::bank_payin::*;
pub use crate::bank_payout::*;
pub use crate::file::StoredFile;
pub use crate::fx_rate::{FxRateEntry, FxRateValue};
