//! Currency exchange: rates parse exactly, conversions round down (never
//! more than the exact value, checked against exact rational arithmetic),
//! minor-unit exponents are honoured (EUR 2, JPY 0, KWD 3, UYW 4), and
//! overflow is an error, never a wrapped amount.

use paycore_domain::kernel::fx::{
    Conversion, FxError, Quote, Rate, RateEntry, RateError, RateTable, convert, source_for_destination,
};
use paycore_domain::{Currency, Money};
use proptest::prelude::*;

fn currency(code: &str) -> Currency {
    code.parse().expect("known currency")
}

fn rate(text: &str) -> Rate {
    Rate::parse(text).expect("valid rate")
}

fn quote(from: &str, to: &str, mid: &str, spread_bps: u32) -> Quote {
    Quote::new(currency(from), currency(to), rate(mid), spread_bps).expect("valid quote")
}

fn money(amount: i64, code: &str) -> Money {
    Money::new(amount, currency(code))
}

// ---------------------------------------------------------------------------
// Rate
// ---------------------------------------------------------------------------

#[test]
fn rates_parse_exactly() {
    assert_eq!(rate("1.0842").mantissa(), 1_084_200_000);
    assert_eq!(rate("163").mantissa(), 163_000_000_000);
    assert_eq!(rate("163.25").mantissa(), 163_250_000_000);
    assert_eq!(rate("0.000000001").mantissa(), 1);
    assert_eq!(rate("0.5").mantissa(), 500_000_000);
    assert_eq!(rate("007.50").mantissa(), 7_500_000_000);
    assert_eq!(
        rate("1.000000000000"),
        Rate::ONE,
        "zeros past the 9th decimal change nothing"
    );
    assert_eq!(rate("18446744073.709551615").mantissa(), u64::MAX);
    assert_eq!("1.0842".parse::<Rate>().unwrap(), rate("1.0842"));
}

#[test]
fn rates_display_as_the_shortest_exact_decimal() {
    for (text, shown) in [
        ("1.0842", "1.0842"),
        ("1.084200", "1.0842"),
        ("163", "163"),
        ("163.000", "163"),
        ("0.000000001", "0.000000001"),
        ("0.1", "0.1"),
        ("18446744073.709551615", "18446744073.709551615"),
    ] {
        assert_eq!(rate(text).to_string(), shown);
    }
    assert_eq!(format!("{:?}", rate("1.0842")), "Rate(1.0842)");
}

#[test]
fn bad_rates_are_refused() {
    assert_eq!(Rate::parse(""), Err(RateError::Empty));
    for zero in ["0", "0.0", "000.000000000", "0.0000000001"] {
        let expected = if zero == "0.0000000001" {
            RateError::TooManyDecimals(zero.into())
        } else {
            RateError::NotPositive(zero.into())
        };
        assert_eq!(Rate::parse(zero), Err(expected), "{zero}");
    }
    for negative in ["-1", "-1.0842", "-0"] {
        assert_eq!(
            Rate::parse(negative),
            Err(RateError::NotPositive(negative.into()))
        );
    }
    for invalid in [
        "abc", "1,0842", " 1.08", "1.08 ", "1.", ".5", "+1", "1e3", "1.2.3", "1_000", "١", "0x10", "NaN",
        "inf",
    ] {
        assert_eq!(
            Rate::parse(invalid),
            Err(RateError::Invalid(invalid.into())),
            "{invalid:?}"
        );
    }
    for precise in ["1.0000000001", "1.08420000001", "0.1234567891"] {
        assert_eq!(
            Rate::parse(precise),
            Err(RateError::TooManyDecimals(precise.into()))
        );
    }
    for large in ["18446744073.709551616", "18446744074", "99999999999999999999999"] {
        assert_eq!(Rate::parse(large), Err(RateError::TooLarge(large.into())));
    }
    let message = Rate::parse("1,08").unwrap_err().to_string();
    assert!(
        message.contains("1.0842"),
        "the message shows the expected form: {message}"
    );
}

#[test]
fn rates_are_recorded_as_their_mantissa_and_zero_is_refused_on_decode() {
    let bytes = postcard::to_stdvec(&rate("1.0842")).unwrap();
    assert_eq!(bytes, postcard::to_stdvec(&1_084_200_000_u64).unwrap());
    assert_eq!(postcard::from_bytes::<Rate>(&bytes).unwrap(), rate("1.0842"));
    let zero = postcard::to_stdvec(&0_u64).unwrap();
    assert!(postcard::from_bytes::<Rate>(&zero).is_err());
    assert_eq!(Rate::from_mantissa(0), None);
}

// ---------------------------------------------------------------------------
// convert: worked examples
// ---------------------------------------------------------------------------

/// 100.00 EUR at 1.0842 with 30 bps:
/// rate used = 1.0842 × (1 − 0.0030) = 1.0842 × 0.997 = 1.0809474 (exact);
/// 100.00 × 1.0809474 = 108.09474 USD → rounded down to 108.09 USD.
#[test]
fn hundred_euros_at_1_0842_with_30_bps_give_108_09_dollars() {
    let conversion = convert(money(10_000, "EUR"), quote("EUR", "USD", "1.0842", 30)).unwrap();
    assert_eq!(
        conversion,
        Conversion {
            source: money(10_000, "EUR"),
            destination: money(10_809, "USD"),
            rate_used: rate("1.0809474"),
            mid: rate("1.0842"),
            spread_bps: 30,
        }
    );
    assert_eq!(conversion.destination.to_string(), "108.09 USD");
}

#[test]
fn zero_spread_uses_the_mid_rate() {
    let conversion = convert(money(10_000, "EUR"), quote("EUR", "USD", "1.0842", 0)).unwrap();
    assert_eq!(conversion.rate_used, conversion.mid);
    assert_eq!(conversion.destination, money(10_842, "USD"));
}

#[test]
fn exponents_are_honoured() {
    let cases = [
        // 10,000 JPY × 0.0061 = 61.00 EUR.
        (
            money(10_000, "JPY"),
            quote("JPY", "EUR", "0.0061", 0),
            money(6_100, "EUR"),
        ),
        // Rate used 0.0061 × 0.995 = 0.0060695; 10,000 JPY → 60.695 EUR → 60.69 EUR.
        (
            money(10_000, "JPY"),
            quote("JPY", "EUR", "0.0061", 50),
            money(6_069, "EUR"),
        ),
        // 1.00 EUR × 163.25 = 163.25 JPY → 163 JPY.
        (
            money(100, "EUR"),
            quote("EUR", "JPY", "163.25", 0),
            money(163, "JPY"),
        ),
        // 10.00 EUR × 0.3333 = 3.333 KWD = 3,333 fils.
        (
            money(1_000, "EUR"),
            quote("EUR", "KWD", "0.3333", 0),
            money(3_333, "KWD"),
        ),
        // 1.000 KWD × 491.123456789 = 491.12… JPY → 491 JPY.
        (
            money(1_000, "KWD"),
            quote("KWD", "JPY", "491.123456789", 0),
            money(491, "JPY"),
        ),
        // 1,000 JPY × 0.002 = 2.000 KWD.
        (
            money(1_000, "JPY"),
            quote("JPY", "KWD", "0.002", 0),
            money(2_000, "KWD"),
        ),
        // 1.234 KWD × 3.25 = 4.0105 EUR → 4.01 EUR.
        (
            money(1_234, "KWD"),
            quote("KWD", "EUR", "3.25", 0),
            money(401, "EUR"),
        ),
        // 1.0000 UYW (4 decimals) × 3.5 = 3.5 JPY → 3 JPY.
        (
            money(10_000, "UYW"),
            quote("UYW", "JPY", "3.5", 0),
            money(3, "JPY"),
        ),
        // 1 JPY × 0.5 = 0.5 UYW = 5,000 ten-thousandths.
        (
            money(1, "JPY"),
            quote("JPY", "UYW", "0.5", 0),
            money(5_000, "UYW"),
        ),
    ];
    for (source, quote, expected) in cases {
        let conversion = convert(source, quote).unwrap();
        assert_eq!(conversion.destination, expected, "{source:?} at {quote:?}");
    }
}

#[test]
fn rounding_is_down_in_the_house_favour() {
    // 0.01 EUR × 1.5 = 0.015 USD → 0.01 USD.
    let conversion = convert(money(1, "EUR"), quote("EUR", "USD", "1.5", 0)).unwrap();
    assert_eq!(conversion.destination, money(1, "USD"));
    // 0.01 EUR × 1.999999999 → 0.01 USD, never 0.02.
    let conversion = convert(money(1, "EUR"), quote("EUR", "USD", "1.999999999", 0)).unwrap();
    assert_eq!(conversion.destination, money(1, "USD"));
    // The rate used is rounded down too: 1.000000001 × 0.9999 = 0.9999000009999 → 0.999900000.
    let conversion = convert(money(100, "EUR"), quote("EUR", "USD", "1.000000001", 1)).unwrap();
    assert_eq!(conversion.rate_used, rate("0.9999"));
    assert_eq!(conversion.destination, money(99, "USD"));
}

#[test]
fn amounts_that_convert_to_nothing_are_refused() {
    // 1 JPY × 0.0061 = 0.0061 EUR: less than a cent.
    assert_eq!(
        convert(money(1, "JPY"), quote("JPY", "EUR", "0.0061", 0)),
        Err(FxError::RoundsToZero {
            amount: money(1, "JPY"),
            to: Currency::EUR
        })
    );
    // 0.001 KWD × 491.12 = 0.49 JPY.
    assert!(matches!(
        convert(money(1, "KWD"), quote("KWD", "JPY", "491.123456789", 0)),
        Err(FxError::RoundsToZero { .. })
    ));
    let message = convert(money(1, "JPY"), quote("JPY", "EUR", "0.0061", 0))
        .unwrap_err()
        .to_string();
    assert_eq!(message, "1 JPY is too small to exchange: it converts to 0 EUR");
}

#[test]
fn huge_amounts_overflow_instead_of_wrapping() {
    // Result beyond i64: 92,233,720,368,547,758.07 EUR × 163.25.
    assert_eq!(
        convert(money(i64::MAX, "EUR"), quote("EUR", "JPY", "163.25", 0)),
        Err(FxError::Overflow)
    );
    // Intermediate beyond u128: i64::MAX × u64::MAX × 10³.
    assert_eq!(
        convert(
            money(i64::MAX, "JPY"),
            quote("JPY", "KWD", "18446744073.709551615", 0)
        ),
        Err(FxError::Overflow)
    );
    // The largest amount still fits exactly at rate 1.
    let conversion = convert(money(i64::MAX, "EUR"), quote("EUR", "USD", "1", 0)).unwrap();
    assert_eq!(conversion.destination, money(i64::MAX, "USD"));
    // And just past it does not.
    assert_eq!(
        convert(money(i64::MAX, "EUR"), quote("EUR", "USD", "1.000000001", 0)),
        Err(FxError::Overflow)
    );
}

#[test]
fn bad_requests_are_refused() {
    let eur_usd = quote("EUR", "USD", "1.0842", 30);
    assert_eq!(
        convert(money(0, "EUR"), eur_usd),
        Err(FxError::NotPositive(money(0, "EUR")))
    );
    assert_eq!(
        convert(money(-100, "EUR"), eur_usd),
        Err(FxError::NotPositive(money(-100, "EUR")))
    );
    assert_eq!(
        convert(money(100, "GBP"), eur_usd),
        Err(FxError::CurrencyMismatch {
            expected: Currency::EUR,
            found: currency("GBP")
        })
    );
    assert_eq!(
        Quote::new(Currency::EUR, Currency::EUR, Rate::ONE, 0),
        Err(FxError::SameCurrency(Currency::EUR))
    );
    assert_eq!(
        Quote::new(Currency::EUR, Currency::USD, Rate::ONE, 10_000),
        Err(FxError::InvalidSpread { spread_bps: 10_000 })
    );
    // Quote's fields are public: convert re-checks them.
    let hand_made = Quote {
        spread_bps: 20_000,
        ..eur_usd
    };
    assert_eq!(
        convert(money(100, "EUR"), hand_made),
        Err(FxError::InvalidSpread { spread_bps: 20_000 })
    );
    let tiny = Quote::new(Currency::EUR, Currency::USD, Rate::from_mantissa(1).unwrap(), 1).unwrap();
    assert_eq!(
        convert(money(100, "EUR"), tiny),
        Err(FxError::RateUsedIsZero {
            mid: Rate::from_mantissa(1).unwrap(),
            spread_bps: 1
        })
    );
    assert!(Quote::new(Currency::EUR, Currency::USD, Rate::ONE, 9_999).is_ok());
}

#[test]
fn conversions_and_quotes_round_trip_through_serde() {
    let conversion = convert(money(10_000, "EUR"), quote("EUR", "USD", "1.0842", 30)).unwrap();
    let bytes = postcard::to_stdvec(&conversion).unwrap();
    assert_eq!(postcard::from_bytes::<Conversion>(&bytes).unwrap(), conversion);
    let q = quote("KWD", "JPY", "491.123456789", 7);
    let bytes = postcard::to_stdvec(&q).unwrap();
    assert_eq!(postcard::from_bytes::<Quote>(&bytes).unwrap(), q);
}

// ---------------------------------------------------------------------------
// source_for_destination
// ---------------------------------------------------------------------------

#[test]
fn source_for_destination_rounds_the_source_up() {
    let eur_usd = quote("EUR", "USD", "1.0842", 30);
    // 108.09 / 1.0809474 = 99.9956… → 100.00 EUR, which gives exactly 108.09.
    let conversion = source_for_destination(money(10_809, "USD"), eur_usd).unwrap();
    assert_eq!(conversion.source, money(10_000, "EUR"));
    assert_eq!(conversion.destination, money(10_809, "USD"));
    // 108.10 / 1.0809474 = 100.0048… → 100.01 EUR, which gives 108.1055 → 108.10.
    let conversion = source_for_destination(money(10_810, "USD"), eur_usd).unwrap();
    assert_eq!(conversion.source, money(10_001, "EUR"));
    assert_eq!(conversion.destination, money(10_810, "USD"));
    assert_eq!(
        convert(money(10_000, "EUR"), eur_usd).unwrap().destination,
        money(10_809, "USD"),
        "one cent less is not enough"
    );

    let eur_jpy = quote("EUR", "JPY", "163.25", 0);
    // 164 / 163.25 = 1.0045… EUR → 1.01 EUR, which gives 164.88 → 164 JPY.
    let conversion = source_for_destination(money(164, "JPY"), eur_jpy).unwrap();
    assert_eq!(conversion.source, money(101, "EUR"));
    assert_eq!(conversion.destination, money(164, "JPY"));
    // Not every destination is reachable exactly: 1 cent buys 1.6325 → 1 JPY,
    // 2 cents 3.265 → 3 JPY; there is no way to get exactly 2 JPY.
    let conversion = source_for_destination(money(2, "JPY"), eur_jpy).unwrap();
    assert_eq!(conversion.source, money(2, "EUR"));
    assert_eq!(conversion.destination, money(3, "JPY"));
}

#[test]
fn source_for_destination_refuses_bad_requests() {
    let eur_usd = quote("EUR", "USD", "1.0842", 30);
    assert!(matches!(
        source_for_destination(money(0, "USD"), eur_usd),
        Err(FxError::NotPositive(_))
    ));
    assert!(matches!(
        source_for_destination(money(100, "EUR"), eur_usd),
        Err(FxError::CurrencyMismatch { .. })
    ));
    // Would need more than i64::MAX cents.
    assert_eq!(
        source_for_destination(money(i64::MAX, "JPY"), quote("EUR", "JPY", "0.5", 0)),
        Err(FxError::Overflow)
    );
}

// ---------------------------------------------------------------------------
// RateTable
// ---------------------------------------------------------------------------

#[test]
fn rate_table_quotes_configured_pairs_only() {
    let (eur, usd, jpy) = (Currency::EUR, Currency::USD, currency("JPY"));
    let mut table = RateTable::new();
    assert!(table.is_empty());
    assert_eq!(table.set(eur, usd, rate("1.0842"), 30), Ok(None));
    assert_eq!(
        table.quote(eur, usd),
        Ok(Quote {
            from: eur,
            to: usd,
            mid: rate("1.0842"),
            spread_bps: 30
        })
    );
    // The inverse is not derived.
    assert_eq!(
        table.quote(usd, eur),
        Err(FxError::MissingRate { from: usd, to: eur })
    );
    assert_eq!(
        table.quote(usd, eur).unwrap_err().to_string(),
        "no exchange rate is configured from USD to EUR"
    );
    table.set(usd, eur, rate("0.9201"), 25).unwrap();
    assert_eq!(table.quote(usd, eur).unwrap().mid, rate("0.9201"));
    // Replacing answers the old entry.
    assert_eq!(
        table.set(eur, usd, rate("1.0850"), 20),
        Ok(Some(RateEntry {
            mid: rate("1.0842"),
            spread_bps: 30
        }))
    );
    assert_eq!(
        table.get(eur, usd),
        Some(RateEntry {
            mid: rate("1.085"),
            spread_bps: 20
        })
    );
    table.set(eur, jpy, rate("163.25"), 40).unwrap();
    let pairs: Vec<(String, String)> = table
        .iter()
        .map(|(from, to, _)| (from.to_string(), to.to_string()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("EUR".into(), "JPY".into()),
            ("EUR".into(), "USD".into()),
            ("USD".into(), "EUR".into())
        ]
    );
    assert_eq!(table.len(), 3);
    assert!(table.remove(eur, jpy).is_some());
    assert!(matches!(table.quote(eur, jpy), Err(FxError::MissingRate { .. })));
}

#[test]
fn rate_table_refuses_nonsense() {
    let mut table = RateTable::new();
    assert_eq!(
        table.set(Currency::EUR, Currency::EUR, Rate::ONE, 0),
        Err(FxError::SameCurrency(Currency::EUR))
    );
    assert_eq!(
        table.set(Currency::EUR, Currency::USD, Rate::ONE, 10_000),
        Err(FxError::InvalidSpread { spread_bps: 10_000 })
    );
    assert!(table.is_empty());
    assert_eq!(
        table.quote(Currency::EUR, Currency::EUR),
        Err(FxError::SameCurrency(Currency::EUR))
    );
}

#[test]
fn a_table_quote_converts_end_to_end() {
    let mut table = RateTable::new();
    table
        .set(Currency::EUR, Currency::USD, rate("1.0842"), 30)
        .unwrap();
    let quote = table.quote(Currency::EUR, Currency::USD).unwrap();
    let conversion = convert(money(10_000, "EUR"), quote).unwrap();
    assert_eq!(conversion.destination, money(10_809, "USD"));
}

// ---------------------------------------------------------------------------
// Properties against exact rational arithmetic
// ---------------------------------------------------------------------------

const CODES: &[&str] = &["EUR", "USD", "JPY", "CLP", "KWD", "BHD", "UYW"];

fn any_pair() -> impl Strategy<Value = (Currency, Currency)> {
    (0..CODES.len(), 0..CODES.len())
        .prop_filter("two currencies", |(a, b)| a != b)
        .prop_map(|(a, b)| (currency(CODES[a]), currency(CODES[b])))
}

fn pow10(exponent: u8) -> u128 {
    10_u128.pow(u32::from(exponent))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

    /// The exact customer value is `a × mid × (10⁴ − bps) × 10^to_exp /
    /// (10⁹ × 10⁴ × 10^from_exp)` = N / D. The destination never exceeds it,
    /// and falls short by less than one minor unit plus the rate's last
    /// decimal on the amount (a × 10^to_exp / (10⁹ × 10^from_exp)).
    #[test]
    fn never_more_than_the_exact_value(
        amount in 1_i64..=1_000_000_000_000,
        mid in 1_u64..=10_000_000_000_000,
        spread_bps in prop_oneof![Just(0_u32), 0_u32..10_000],
        (from, to) in any_pair(),
    ) {
        let mid_rate = Rate::from_mantissa(mid).unwrap();
        let quote = Quote::new(from, to, mid_rate, spread_bps).unwrap();
        let a = amount as u128;
        let numerator = a * u128::from(mid) * u128::from(10_000 - spread_bps) * pow10(to.exponent());
        let denominator = 1_000_000_000_u128 * 10_000 * pow10(from.exponent());
        match convert(Money::new(amount, from), quote) {
            Ok(conversion) => {
                let destination = conversion.destination.amount as u128;
                prop_assert_eq!(conversion.destination.currency, to);
                prop_assert_eq!(conversion.source, Money::new(amount, from));
                prop_assert!(destination * denominator <= numerator, "more than exact: {:?}", conversion);
                prop_assert!(
                    numerator - destination * denominator < denominator + a * pow10(to.exponent()) * 10_000,
                    "too far below exact: {:?}", conversion
                );
                // Reproducible from the record alone: floor(source × rate_used).
                let rate_used = u128::from(conversion.rate_used.mantissa());
                prop_assert_eq!(
                    destination,
                    a * rate_used * pow10(to.exponent()) / (1_000_000_000 * pow10(from.exponent()))
                );
                prop_assert!(conversion.rate_used <= conversion.mid);
                if spread_bps == 0 {
                    prop_assert_eq!(conversion.rate_used, conversion.mid);
                }
            }
            Err(FxError::RoundsToZero { .. }) => {
                // Only when even the exact value is below the rounding bound.
                prop_assert!(numerator < denominator + a * pow10(to.exponent()) * 10_000);
            }
            Err(FxError::Overflow) => {
                // Only when even the rounded-down result is beyond i64.
                prop_assert!(numerator > i64::MAX as u128 * denominator);
            }
            Err(FxError::RateUsedIsZero { .. }) => {
                prop_assert!(u128::from(mid) * u128::from(10_000 - spread_bps) < 10_000);
            }
            Err(other) => prop_assert!(false, "unexpected {}", other),
        }
    }

    /// The source found is the smallest that delivers at least the destination.
    #[test]
    fn source_for_destination_is_minimal(
        wanted in 1_i64..=1_000_000_000_000,
        mid in 1_000_u64..=10_000_000_000_000,
        spread_bps in 0_u32..5_000,
        (from, to) in any_pair(),
    ) {
        let quote = Quote::new(from, to, Rate::from_mantissa(mid).unwrap(), spread_bps).unwrap();
        match source_for_destination(Money::new(wanted, to), quote) {
            Ok(conversion) => {
                prop_assert!(conversion.destination.amount >= wanted);
                prop_assert_eq!(convert(conversion.source, quote).unwrap(), conversion);
                let one_less = conversion.source.amount - 1;
                if one_less > 0 {
                    match convert(Money::new(one_less, from), quote) {
                        Ok(smaller) => prop_assert!(smaller.destination.amount < wanted),
                        Err(error) => prop_assert!(matches!(error, FxError::RoundsToZero { .. }), "{}", error),
                    }
                }
            }
            Err(error) => prop_assert!(matches!(error, FxError::Overflow), "{}", error),
        }
    }

    #[test]
    fn rates_display_and_parse_back(mantissa in 1_u64..) {
        let rate = Rate::from_mantissa(mantissa).unwrap();
        prop_assert_eq!(Rate::parse(&rate.to_string()), Ok(rate));
    }

    #[test]
    fn convert_never_panics(amount in any::<i64>(), mid in 1_u64.., spread_bps in any::<u32>(), (from, to) in any_pair()) {
        let quote = Quote { from, to, mid: Rate::from_mantissa(mid).unwrap(), spread_bps };
        let _ = convert(Money::new(amount, from), quote);
        let _ = source_for_destination(Money::new(amount, to), quote);
    }
}
