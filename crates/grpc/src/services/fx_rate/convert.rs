//! Domain → proto for exchange rates (shown as exact decimals).

use paycore_domain::fx_rate::FxRateEntry;
use paycore_domain::kernel::fx::Quote;

use crate::convert::timestamp;
use crate::pb;

/// The rate transfers of a pair get, or empty if it rounds down to zero
/// (transfers then refuse the conversion).
pub fn rate_used_text(entry: &FxRateEntry) -> String {
    entry
        .current
        .and_then(|rate| {
            Quote::new(entry.from, entry.to, rate.mid_rate, rate.spread_bps)
                .and_then(|quote| quote.rate_used())
                .ok()
        })
        .map(|rate| rate.to_string())
        .unwrap_or_default()
}

/// A configured rate; `None` for a removed one.
pub fn fx_rate_pb(entry: &FxRateEntry) -> Option<pb::FxRate> {
    let rate = entry.current?;
    Some(pb::FxRate {
        source_currency: entry.from.code().to_owned(),
        destination_currency: entry.to.code().to_owned(),
        mid_rate: rate.mid_rate.to_string(),
        spread_bps: rate.spread_bps,
        rate_used: rate_used_text(entry),
        updated_at: Some(timestamp(entry.changed_at)),
    })
}

#[cfg(test)]
mod tests {
    use paycore_domain::fx_rate::FxRateValue;
    use paycore_domain::kernel::fx::Rate;
    use paycore_domain::{Currency, Timestamp};

    use super::*;

    #[test]
    fn fx_rates_show_exact_decimals_and_hide_removed_pairs() {
        let entry = FxRateEntry {
            from: Currency::EUR,
            to: Currency::USD,
            current: Some(FxRateValue {
                mid_rate: Rate::parse("1.0842").unwrap(),
                spread_bps: 30,
            }),
            changed_at: Timestamp::from_micros(1_000_000),
        };
        let shown = fx_rate_pb(&entry).unwrap();
        assert_eq!(
            (
                shown.mid_rate.as_str(),
                shown.rate_used.as_str(),
                shown.spread_bps
            ),
            ("1.0842", "1.0809474", 30)
        );
        assert_eq!(
            (
                shown.source_currency.as_str(),
                shown.destination_currency.as_str()
            ),
            ("EUR", "USD")
        );
        let removed = FxRateEntry {
            current: None,
            ..entry
        };
        assert_eq!(fx_rate_pb(&removed), None);
    }
}
