//! The projections paycore serves.

use crate::models::{Accounts, Directory, FxRates, OpenBanking, Resources, Transactions, Transfers};
use crate::slot::ProjectionInfo;

/// Every projection paycore serves, in the order `projections status` lists them.
pub fn projections() -> [ProjectionInfo; 7] {
    [
        ProjectionInfo::of::<Directory>(),
        ProjectionInfo::of::<Accounts>(),
        ProjectionInfo::of::<Transactions>(),
        ProjectionInfo::of::<Transfers>(),
        ProjectionInfo::of::<Resources>(),
        ProjectionInfo::of::<FxRates>(),
        ProjectionInfo::of::<OpenBanking>(),
    ]
}

/// The projection called `name`.
pub fn projection(name: &str) -> Option<ProjectionInfo> {
    projections().into_iter().find(|info| info.name == name)
}
