//! The fx_rate family: the platform's exchange rate of one ordered currency
//! pair, set and removed by the operator (`paycore fx`). Transfers read it
//! (see the transfer family) and record the rate they used.

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::context::{Context, Decided};
use crate::events::Event;
use crate::fx::Rate;
use crate::kernel::error::DomainError;
use crate::kernel::money::Currency;
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRateSet {
    pub from: Currency,
    pub to: Currency,
    pub mid_rate: Rate,
    pub spread_bps: u32,
    pub set_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRateRemoved {
    pub removed_at: Timestamp,
}

/// The exchange rate of one ordered currency pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRateEntry {
    pub from: Currency,
    pub to: Currency,
    /// `None` once removed.
    pub current: Option<FxRateValue>,
    pub changed_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRateValue {
    pub mid_rate: Rate,
    pub spread_bps: u32,
}

impl Context<'_> {
    /// Platform-wide: sets the exchange rate of one ordered pair.
    pub(crate) fn set_fx_rate(
        &self,
        from: Currency,
        to: Currency,
        mid_rate: Rate,
        spread_bps: u32,
    ) -> Result<Decided, DomainError> {
        crate::fx::Quote::new(from, to, mid_rate, spread_bps)
            .map_err(|error| DomainError::invalid("rate", error.to_string()))?;
        let event = Event::FxRateSet(FxRateSet {
            from,
            to,
            mid_rate,
            spread_bps,
            set_at: self.now(),
        });
        Ok((
            vec![(StreamRef::FxRate(from, to), event)],
            ResourceRef::FxRate(from, to),
        ))
    }

    pub(crate) fn remove_fx_rate(&self, from: Currency, to: Currency) -> Result<Decided, DomainError> {
        let stream = StreamRef::FxRate(from, to);
        match self.lookup.get(&stream) {
            Aggregate::FxRate(entry) if entry.current.is_some() => {}
            _ => return Err(DomainError::not_found("exchange rate", format!("{from}→{to}"))),
        }
        let event = Event::FxRateRemoved(FxRateRemoved {
            removed_at: self.now(),
        });
        Ok((vec![(stream, event)], ResourceRef::FxRate(from, to)))
    }
}

/// Applies an exchange rate event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty | Aggregate::FxRate(_), Event::FxRateSet(e)) => Aggregate::FxRate(FxRateEntry {
            from: e.from,
            to: e.to,
            current: Some(FxRateValue {
                mid_rate: e.mid_rate,
                spread_bps: e.spread_bps,
            }),
            changed_at: e.set_at,
        }),
        (Aggregate::FxRate(r), Event::FxRateRemoved(e)) => Aggregate::FxRate(FxRateEntry {
            current: None,
            changed_at: e.removed_at,
            ..r
        }),
        (state, event) => state.misapplied(event),
    }
}
