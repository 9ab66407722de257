//! The fx_rate family: the platform's exchange rate of one ordered currency
//! pair, set and removed by the operator (`paycore fx`). Transfers read it
//! (see the transfer family) and record the rate they used.

mod command;
pub use command::FxRateCommand;

use serde::{Deserialize, Serialize};

use crate::context::{Context, Decided, misapplied};
use crate::kernel::error::DomainError;
use crate::kernel::fx::Rate;
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

/// The fx_rate family's events: what its deciders emit and its `evolve`
/// folds (the routers' `Event` wraps each as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FxRateEvent {
    FxRateSet(FxRateSet),
    FxRateRemoved(FxRateRemoved),
}

impl Context<'_> {
    /// The current exchange rate from `from` to `to`, if one is set: how
    /// transfers read it.
    pub(crate) fn fx_rate(&self, from: Currency, to: Currency) -> Option<FxRateValue> {
        self.state::<FxRateEntry>(&StreamRef::FxRate(from, to))
            .and_then(|entry| entry.current)
    }

    /// Platform-wide: sets the exchange rate of one ordered pair.
    pub(crate) fn set_fx_rate<E: From<FxRateEvent>>(
        &self,
        from: Currency,
        to: Currency,
        mid_rate: Rate,
        spread_bps: u32,
    ) -> Result<Decided<E>, DomainError> {
        crate::kernel::fx::Quote::new(from, to, mid_rate, spread_bps)
            .map_err(|error| DomainError::invalid("rate", error.to_string()))?;
        let event = FxRateEvent::FxRateSet(FxRateSet {
            from,
            to,
            mid_rate,
            spread_bps,
            set_at: self.now(),
        });
        Ok((
            vec![(StreamRef::FxRate(from, to), event.into())],
            ResourceRef::FxRate(from, to),
        ))
    }

    pub(crate) fn remove_fx_rate<E: From<FxRateEvent>>(
        &self,
        from: Currency,
        to: Currency,
    ) -> Result<Decided<E>, DomainError> {
        let stream = StreamRef::FxRate(from, to);
        if self.fx_rate(from, to).is_none() {
            return Err(DomainError::not_found("exchange rate", format!("{from}→{to}")));
        }
        let event = FxRateEvent::FxRateRemoved(FxRateRemoved {
            removed_at: self.now(),
        });
        Ok((vec![(stream, event.into())], ResourceRef::FxRate(from, to)))
    }
}

/// Applies an exchange rate event to the pair's state (`None` before the
/// first).
pub(crate) fn evolve(state: Option<FxRateEntry>, event: FxRateEvent) -> Option<FxRateEntry> {
    Some(match (state, event) {
        (_, FxRateEvent::FxRateSet(e)) => FxRateEntry {
            from: e.from,
            to: e.to,
            current: Some(FxRateValue {
                mid_rate: e.mid_rate,
                spread_bps: e.spread_bps,
            }),
            changed_at: e.set_at,
        },
        (Some(r), FxRateEvent::FxRateRemoved(e)) => FxRateEntry {
            current: None,
            changed_at: e.removed_at,
            ..r
        },
        (state, event) => return misapplied(state, &event),
    })
}
