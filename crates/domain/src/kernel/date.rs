//! Calendar dates (no time of day, no zone): a document's expiry, a bank
//! transaction's booking and value dates, an import's history window.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// A date of the proleptic Gregorian calendar. Stored as its parts (the
/// shape customers' identity documents have always had in the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Date {
    /// Builds a date if it exists in the proleptic Gregorian calendar.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (year >= 1 && (1..=days).contains(&day)).then_some(Self { year, month, day })
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days_since_epoch(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let (month, day) = (i64::from(self.month), i64::from(self.day));
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    /// The date `days` after 1970-01-01, if it is within years 1 to 65535.
    pub fn from_days_since_epoch(days: i64) -> Option<Self> {
        // Howard Hinnant's civil_from_days.
        let z = days.checked_add(719_468)?;
        let era = z.div_euclid(146_097);
        let day_of_era = z - era * 146_097;
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Self::new(
            u16::try_from(year).ok()?,
            u8::try_from(month).ok()?,
            u8::try_from(day).ok()?,
        )
    }

    /// The (UTC) date of a point in time.
    pub fn of(time: Timestamp) -> Option<Self> {
        Self::from_days_since_epoch(time.micros().div_euclid(MICROS_PER_DAY))
    }

    /// The date `days` later (earlier when negative), if it exists.
    pub fn plus_days(self, days: i64) -> Option<Self> {
        Self::from_days_since_epoch(self.days_since_epoch().checked_add(days)?)
    }

    /// Months since year 0 (`year × 12 + month − 1`): a month's index.
    pub fn month_index(self) -> u32 {
        u32::from(self.year) * 12 + u32::from(self.month) - 1
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let digits = |range: std::ops::Range<usize>| -> Option<u16> {
            let part = text.get(range)?;
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        Self::new(
            digits(0..4)?,
            u8::try_from(digits(5..7)?).ok()?,
            u8::try_from(digits(8..10)?).ok()?,
        )
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn knows_the_calendar() {
        assert!(Date::new(2024, 2, 29).is_some() && Date::new(2023, 2, 29).is_none());
        assert!(Date::new(2024, 13, 1).is_none() && Date::new(0, 1, 1).is_none());
        assert_eq!(Date::new(1970, 1, 1).map(Date::days_since_epoch), Some(0));
        assert_eq!(Date::new(2000, 3, 1).map(Date::days_since_epoch), Some(11_017));
        assert_eq!(Date::of(Timestamp::from_micros(-1)), Date::new(1969, 12, 31));
        assert_eq!(Date::parse("2026-12-06"), Date::new(2026, 12, 6));
        assert_eq!(
            Date::new(2026, 1, 5).map(|d| d.to_string()).as_deref(),
            Some("2026-01-05")
        );
        for bad in [
            "2026-02-30",
            "2026-2-03",
            "20261203xx",
            "+026-01-01",
            "2026-01-0x",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn days_round_trip(days in -719_162i64..23_000_000) {
            let date = Date::from_days_since_epoch(days);
            prop_assert!(date.is_some());
            prop_assert_eq!(date.map(Date::days_since_epoch), Some(days));
            let next = Date::from_days_since_epoch(days + 1);
            prop_assert!(date < next || next.is_none());
        }
    }
}
