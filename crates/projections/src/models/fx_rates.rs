//! `fx-rates`: the platform's exchange rates, removed ones included.

use paycore_domain::fx_rate::FxRateEntry;
use paycore_domain::{Aggregate, Event, StreamRef};

use super::{Applied, Projection, evolve};
use crate::db::ModelError;
use crate::rows::{Key, RowsMut};

pub(crate) struct FxRates;

impl Projection for FxRates {
    const NAME: &'static str = "fx-rates";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "the platform's exchange rates";

    fn apply(rows: &mut RowsMut<'_>, applied: &Applied<'_>) -> Result<(), ModelError> {
        let event = applied.event;
        if !matches!(event, Event::FxRateSet(_) | Event::FxRateRemoved(_)) {
            return Ok(());
        }
        // By ordered pair (EUR→USD is not USD→EUR).
        if let Some(StreamRef::FxRate(from, to)) = applied.stream() {
            let key = Key::FxRate(from, to);
            let state = rows.value::<FxRateEntry>(key)?.map(Aggregate::FxRate);
            if let Some(Aggregate::FxRate(entry)) = evolve(state, event) {
                rows.set_value(key, &entry)?;
            }
        }
        Ok(())
    }
}
