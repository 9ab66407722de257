//! Currency exchange for transfers between accounts of different currencies.
//!
//! # Rounding: always down, in the house's favour
//!
//! A conversion never gives the customer more than the exact value:
//!
//! 1. **The rate used** is the mid rate less the spread,
//!    `mid × (10,000 − spread_bps) / 10,000`, rounded **down** to the
//!    [`Rate`] scale (9 decimals).
//! 2. **The destination amount** is `source × rate used`, moved from the
//!    source currency's minor units to the destination's (EUR has 2
//!    decimals, JPY 0, KWD 3), rounded **down** to a whole minor unit.
//!
//! Both steps round toward zero, and amounts are positive, so the
//! destination never exceeds the exact `source × mid × (1 − spread)`, and
//! falls short of it by less than one minor unit plus `source × 10⁻⁹` (the
//! rate's last decimal). The destination is reproducible from the recorded
//! [`Conversion`] alone: `floor(source × rate_used)`, nothing else.
//! [`source_for_destination`] answers the inverse question, rounding the
//! source **up**: the smallest source amount that yields at least the wanted
//! destination.
//!
//! All arithmetic is exact integer arithmetic in `u128`; a result that does
//! not fit an `i64` amount is [`FxError::Overflow`], never a wrapped value.
//! A positive amount that would convert to zero is refused
//! ([`FxError::RoundsToZero`]) rather than taken for nothing.
//!
//! # Rate tables: both directions are configured explicitly
//!
//! [`RateTable`] holds one entry per *ordered* pair. EUR→USD does not imply
//! USD→EUR: the inverse of a rate is not a rate in our scale (1 / 1.0842 has
//! no finite decimal form), and each direction is its own market price with
//! its own spread. A pair that is not configured is an error naming it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::money::{Currency, Money};

/// Basis points in one whole (100 %).
pub const BPS_PER_UNIT: u32 = 10_000;

// ---------------------------------------------------------------------------
// Rate
// ---------------------------------------------------------------------------

/// An exchange rate: a positive decimal with up to 9 decimals, stored
/// exactly as an integer number of 10⁻⁹ (`1.0842` is `1_084_200_000`). How
/// many units of the destination currency one unit of the source currency
/// buys (major units: EUR→USD 1.0842, EUR→JPY 163.25).
///
/// Recorded in events as that integer. The scale is part of the recorded
/// format: it must never change.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Rate(u64);

/// Why a text is not a rate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("rate is empty: expected a positive decimal such as 1.0842")]
    Empty,
    #[error("rate must be positive, got {0:?}")]
    NotPositive(String),
    #[error("rate {0:?} is not a decimal number: expected digits with an optional `.` such as 1.0842")]
    Invalid(String),
    #[error("rate {0:?} has more than 9 decimals")]
    TooManyDecimals(String),
    #[error("rate {0:?} is too large (at most 18446744073.709551615)")]
    TooLarge(String),
}

impl Rate {
    /// Decimals kept.
    pub const DECIMALS: u32 = 9;
    /// The mantissa of 1.
    pub const SCALE: u64 = 1_000_000_000;
    pub const ONE: Self = Self(Self::SCALE);

    /// The rate `mantissa × 10⁻⁹`, if positive.
    pub const fn from_mantissa(mantissa: u64) -> Option<Self> {
        if mantissa == 0 { None } else { Some(Self(mantissa)) }
    }

    /// The rate in 10⁻⁹ (always > 0).
    pub const fn mantissa(self) -> u64 {
        self.0
    }

    /// Parses a plain positive decimal: digits, optionally a `.` and more
    /// digits (`1.0842`, `163`, `0.006123`). No sign, exponent, separators or
    /// spaces. Up to 9 decimals; zeros beyond the ninth are accepted (they
    /// change nothing), any other digit there is an error, never rounded.
    pub fn parse(text: &str) -> Result<Self, RateError> {
        if text.is_empty() {
            return Err(RateError::Empty);
        }
        if text.starts_with('-') {
            return Err(RateError::NotPositive(text.to_owned()));
        }
        let invalid = || RateError::Invalid(text.to_owned());
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || fraction.is_some_and(|part| !all_digits(part)) {
            return Err(invalid());
        }
        let fraction = fraction.unwrap_or("");
        let (kept, dropped) = fraction.split_at(fraction.len().min(Self::DECIMALS as usize));
        if dropped.bytes().any(|b| b != b'0') {
            return Err(RateError::TooManyDecimals(text.to_owned()));
        }
        let too_large = || RateError::TooLarge(text.to_owned());
        let mut mantissa: u64 = 0;
        for digit in whole.bytes().chain(kept.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(digit - b'0')))
                .ok_or_else(too_large)?;
        }
        let padding = Self::DECIMALS - kept.len() as u32;
        mantissa = mantissa.checked_mul(10_u64.pow(padding)).ok_or_else(too_large)?;
        Self::from_mantissa(mantissa).ok_or_else(|| RateError::NotPositive(text.to_owned()))
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, RateError> {
        Self::parse(text)
    }
}

impl fmt::Display for Rate {
    /// The shortest exact decimal: `1.0842`, `163`, `0.000000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, fraction) = (self.0 / Self::SCALE, self.0 % Self::SCALE);
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:09}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

/// A zero mantissa in the log: a rate is always positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an exchange rate must be positive")]
pub struct ZeroRate;

impl TryFrom<u64> for Rate {
    type Error = ZeroRate;

    fn try_from(mantissa: u64) -> Result<Self, ZeroRate> {
        Self::from_mantissa(mantissa).ok_or(ZeroRate)
    }
}

impl From<Rate> for u64 {
    fn from(rate: Rate) -> u64 {
        rate.0
    }
}

// ---------------------------------------------------------------------------
// Quotes and conversions
// ---------------------------------------------------------------------------

/// Why an exchange cannot be made. Nothing is converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FxError {
    #[error("no exchange rate is configured from {from} to {to}")]
    MissingRate { from: Currency, to: Currency },
    #[error("{0} to {0} is not an exchange")]
    SameCurrency(Currency),
    #[error("a spread of {spread_bps} bps is not below 10000 bps (100%)")]
    InvalidSpread { spread_bps: u32 },
    #[error("the rate {mid} less a spread of {spread_bps} bps rounds to zero")]
    RateUsedIsZero { mid: Rate, spread_bps: u32 },
    #[error("the quote converts from {expected}, not {found}")]
    CurrencyMismatch { expected: Currency, found: Currency },
    #[error("the amount to exchange must be positive, got {0}")]
    NotPositive(Money),
    #[error("{amount} is too small to exchange: it converts to 0 {to}")]
    RoundsToZero { amount: Money, to: Currency },
    #[error("the exchanged amount does not fit a 64-bit amount")]
    Overflow,
}

/// The price of exchanging `from` into `to`: the mid-market rate and the
/// spread taken from the customer, in basis points (30 = 0.30 %).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub from: Currency,
    pub to: Currency,
    pub mid: Rate,
    pub spread_bps: u32,
}

impl Quote {
    /// A quote for two different currencies with a spread below 100 %.
    pub fn new(from: Currency, to: Currency, mid: Rate, spread_bps: u32) -> Result<Self, FxError> {
        let quote = Self {
            from,
            to,
            mid,
            spread_bps,
        };
        quote.validate()?;
        Ok(quote)
    }

    fn validate(&self) -> Result<(), FxError> {
        if self.from == self.to {
            return Err(FxError::SameCurrency(self.from));
        }
        if self.spread_bps >= BPS_PER_UNIT {
            return Err(FxError::InvalidSpread {
                spread_bps: self.spread_bps,
            });
        }
        Ok(())
    }

    /// The rate the customer gets: `mid × (10,000 − spread_bps) / 10,000`,
    /// rounded down to 9 decimals.
    pub fn rate_used(&self) -> Result<Rate, FxError> {
        self.validate()?;
        let kept = u128::from(BPS_PER_UNIT - self.spread_bps);
        // ≤ u64::MAX × 10⁴: fits u128, and the quotient is ≤ mid, so fits u64.
        let mantissa = u128::from(self.mid.0) * kept / u128::from(BPS_PER_UNIT);
        u64::try_from(mantissa)
            .ok()
            .and_then(Rate::from_mantissa)
            .ok_or(FxError::RateUsedIsZero {
                mid: self.mid,
                spread_bps: self.spread_bps,
            })
    }
}

/// An exchange as it is recorded: what left, what arrived, and the rates.
/// `destination = floor(source × rate_used)` in the destination's minor
/// units; `rate_used = floor(mid × (1 − spread_bps / 10,000))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    pub source: Money,
    pub destination: Money,
    pub rate_used: Rate,
    pub mid: Rate,
    pub spread_bps: u32,
}

/// `(numerator, denominator)` turning `minor units of from × rate mantissa`
/// into minor units of `to`: the rate's 10⁹ and the exponent difference.
fn scaling(from: Currency, to: Currency) -> (u128, u128) {
    let (from_exp, to_exp) = (u32::from(from.exponent()), u32::from(to.exponent()));
    let scale = u128::from(Rate::SCALE);
    if to_exp >= from_exp {
        (10_u128.pow(to_exp - from_exp), scale)
    } else {
        (1, scale * 10_u128.pow(from_exp - to_exp))
    }
}

/// Exchanges a positive `source` amount at `quote`, rounding the destination
/// amount **down** (see the module docs).
pub fn convert(source: Money, quote: Quote) -> Result<Conversion, FxError> {
    let rate_used = quote.rate_used()?;
    if source.currency != quote.from {
        return Err(FxError::CurrencyMismatch {
            expected: quote.from,
            found: source.currency,
        });
    }
    let amount = u128::try_from(source.amount)
        .ok()
        .filter(|&amount| amount > 0)
        .ok_or(FxError::NotPositive(source))?;
    let (numerator, denominator) = scaling(quote.from, quote.to);
    // If this overflows u128 (> 3.4 × 10³⁸), the result would be at least
    // 3.4 × 10³⁸ / 10¹³ (the largest denominator), far beyond i64.
    let destination = amount
        .checked_mul(u128::from(rate_used.0))
        .and_then(|product| product.checked_mul(numerator))
        .ok_or(FxError::Overflow)?
        / denominator;
    let destination = i64::try_from(destination).map_err(|_| FxError::Overflow)?;
    if destination == 0 {
        return Err(FxError::RoundsToZero {
            amount: source,
            to: quote.to,
        });
    }
    Ok(Conversion {
        source,
        destination: Money::new(destination, quote.to),
        rate_used,
        mid: quote.mid,
        spread_bps: quote.spread_bps,
    })
}

/// The cheapest exchange that delivers at least `destination`: the smallest
/// source amount (rounded **up**) whose [`convert`] gives `destination` or,
/// when no source amount gives it exactly, the next amount above it. The
/// returned conversion is exactly what [`convert`] answers for its source.
pub fn source_for_destination(destination: Money, quote: Quote) -> Result<Conversion, FxError> {
    let rate_used = quote.rate_used()?;
    if destination.currency != quote.to {
        return Err(FxError::CurrencyMismatch {
            expected: quote.to,
            found: destination.currency,
        });
    }
    let wanted = u128::try_from(destination.amount)
        .ok()
        .filter(|&amount| amount > 0)
        .ok_or(FxError::NotPositive(destination))?;
    let (numerator, denominator) = scaling(quote.from, quote.to);
    // floor(s × r × n / d) ≥ w  ⇔  s × r × n ≥ w × d  ⇔  s ≥ ⌈w × d / (r × n)⌉.
    // w × d ≤ 9.3 × 10¹⁸ × 10¹³ and r × n ≤ 1.9 × 10¹⁹ × 10⁴: both fit u128.
    let needed = wanted * denominator;
    let per_unit = u128::from(rate_used.0) * numerator;
    let source = needed.div_ceil(per_unit);
    let source = i64::try_from(source).map_err(|_| FxError::Overflow)?;
    let conversion = convert(Money::new(source, quote.from), quote)?;
    debug_assert!(conversion.destination.amount >= destination.amount);
    Ok(conversion)
}

// ---------------------------------------------------------------------------
// Rate table
// ---------------------------------------------------------------------------

/// One configured direction: its mid rate and spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateEntry {
    pub mid: Rate,
    pub spread_bps: u32,
}

/// The configured exchange rates, one entry per ordered currency pair.
/// Inverse pairs are never derived (see the module docs): configure
/// `EUR USD` and `USD EUR` separately.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateTable {
    rates: BTreeMap<(Currency, Currency), RateEntry>,
}

impl RateTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces) the rate from `from` to `to`, answering the entry
    /// it replaced. Refuses a pair of one currency and a spread of 100 % or more.
    pub fn set(
        &mut self,
        from: Currency,
        to: Currency,
        mid: Rate,
        spread_bps: u32,
    ) -> Result<Option<RateEntry>, FxError> {
        Quote::new(from, to, mid, spread_bps)?;
        Ok(self.rates.insert((from, to), RateEntry { mid, spread_bps }))
    }

    pub fn get(&self, from: Currency, to: Currency) -> Option<RateEntry> {
        self.rates.get(&(from, to)).copied()
    }

    pub fn remove(&mut self, from: Currency, to: Currency) -> Option<RateEntry> {
        self.rates.remove(&(from, to))
    }

    /// The quote for exchanging `from` into `to`, or an error naming the
    /// missing pair.
    pub fn quote(&self, from: Currency, to: Currency) -> Result<Quote, FxError> {
        if from == to {
            return Err(FxError::SameCurrency(from));
        }
        let entry = self.get(from, to).ok_or(FxError::MissingRate { from, to })?;
        Ok(Quote {
            from,
            to,
            mid: entry.mid,
            spread_bps: entry.spread_bps,
        })
    }

    /// Every configured direction, ordered by (from, to).
    pub fn iter(&self) -> impl Iterator<Item = (Currency, Currency, RateEntry)> + '_ {
        self.rates.iter().map(|(&(from, to), &entry)| (from, to, entry))
    }

    pub fn len(&self) -> usize {
        self.rates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }
}
