//! `fx-rates`: the platform's exchange rates, removed ones included.

use std::collections::BTreeMap;

use paycore_domain::banking::FxRateEntry;
use paycore_domain::money::Currency;
use paycore_domain::{Aggregate, Event, StreamRef};
use serde::{Deserialize, Serialize};

use super::{Applied, Projection, evolve};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct FxRates {
    /// By ordered pair (EUR→USD is not USD→EUR).
    pub rates: BTreeMap<(Currency, Currency), FxRateEntry>,
}

impl Projection for FxRates {
    const NAME: &'static str = "fx-rates";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "the platform's exchange rates";

    fn apply(&mut self, applied: &Applied<'_>) {
        let event = applied.event;
        if !matches!(event, Event::FxRateSet(_) | Event::FxRateRemoved(_)) {
            return;
        }
        if let Some(StreamRef::FxRate(from, to)) = applied.stream() {
            let state = self.rates.remove(&(from, to)).map(Aggregate::FxRate);
            if let Some(Aggregate::FxRate(entry)) = evolve(state, event) {
                self.rates.insert((from, to), entry);
            }
        }
    }
}
