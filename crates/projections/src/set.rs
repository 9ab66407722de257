//! The served projections, side by side.

use paycore_store::Position;

use crate::models::{Accounts, Directory, FxRates, Resources, Transactions, Transfers};
use crate::slot::{Decoded, Live, ProjectionInfo, Slot};

/// Every projection paycore serves, in the order `projections status` lists them.
pub fn projections() -> [ProjectionInfo; 6] {
    [
        ProjectionInfo::of::<Directory>(),
        ProjectionInfo::of::<Accounts>(),
        ProjectionInfo::of::<Transactions>(),
        ProjectionInfo::of::<Transfers>(),
        ProjectionInfo::of::<Resources>(),
        ProjectionInfo::of::<FxRates>(),
    ]
}

/// The projection called `name`.
pub fn projection(name: &str) -> Option<ProjectionInfo> {
    projections().into_iter().find(|info| info.name == name)
}

#[derive(Debug, Default)]
pub(crate) struct Projections {
    pub directory: Live<Directory>,
    pub accounts: Live<Accounts>,
    pub transactions: Live<Transactions>,
    pub transfers: Live<Transfers>,
    pub resources: Live<Resources>,
    pub fx_rates: Live<FxRates>,
}

impl Projections {
    pub fn slots(&self) -> [&dyn Slot; 6] {
        [
            &self.directory,
            &self.accounts,
            &self.transactions,
            &self.transfers,
            &self.resources,
            &self.fx_rates,
        ]
    }

    pub fn slot(&self, name: &str) -> Option<&dyn Slot> {
        self.slots().into_iter().find(|slot| slot.info().name == name)
    }

    /// Events below this position are applied by every projection.
    pub fn checkpoint(&self) -> Position {
        self.slots()
            .iter()
            .map(|slot| slot.checkpoint())
            .min()
            .unwrap_or_default()
    }

    pub fn apply(&self, batch: &[Decoded]) {
        for slot in self.slots() {
            slot.apply(batch);
        }
    }
}
