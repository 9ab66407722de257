//! Where the syncer gets the time and new IDs from. The server adapts its
//! own clock; tests move time (consent expiry after 180 days, refresh
//! schedules, a rate limit's next try) without waiting for it.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use paycore_domain::Timestamp;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::SyncError;

/// The time and fresh UUIDs.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> Timestamp;

    /// A fresh UUID for a new resource ID (version 7: IDs sort by creation).
    fn new_uuid(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// The system clock, in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX));
        Timestamp::from_micros(micros)
    }
}

/// The connector speaks `time`; the domain speaks microseconds.
pub(crate) fn to_offset(at: Timestamp) -> Result<OffsetDateTime, SyncError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.micros()) * 1_000)
        .map_err(|_| SyncError::Calendar)
}

pub(crate) fn from_offset(at: OffsetDateTime) -> Timestamp {
    let micros = at.unix_timestamp_nanos() / 1_000;
    Timestamp::from_micros(i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }))
}

/// Julian day of 1970-01-01, the domain's day 0.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

pub(crate) fn to_domain_date(date: time::Date) -> Option<paycore_domain::kernel::date::Date> {
    paycore_domain::kernel::date::Date::from_days_since_epoch(
        i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY,
    )
}

pub(crate) fn from_domain_date(date: paycore_domain::kernel::date::Date) -> Result<time::Date, SyncError> {
    let julian =
        i32::try_from(date.days_since_epoch() + UNIX_EPOCH_JULIAN_DAY).map_err(|_| SyncError::Calendar)?;
    time::Date::from_julian_day(julian).map_err(|_| SyncError::Calendar)
}

/// `at` plus a std duration, saturating.
pub(crate) fn plus(at: Timestamp, by: std::time::Duration) -> Timestamp {
    let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_micros(at.micros().saturating_add(micros))
}

pub(crate) fn minus(at: Timestamp, by: std::time::Duration) -> Timestamp {
    let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_micros(at.micros().saturating_sub(micros))
}

/// How long from `now` until `at` (zero if past).
pub(crate) fn until(now: Timestamp, at: Timestamp) -> std::time::Duration {
    let micros = at.micros().saturating_sub(now.micros());
    std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_cross_the_boundary_unchanged() {
        let at = Timestamp::from_micros(1_796_558_400_123_456);
        let offset = to_offset(at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(from_offset(offset), at);
        let day = to_domain_date(offset.date());
        assert_eq!(day, paycore_domain::kernel::date::Date::new(2026, 12, 6));
        let back = day.map(from_domain_date);
        assert!(matches!(back, Some(Ok(date)) if date == offset.date()));
    }
}
