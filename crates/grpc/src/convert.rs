//! Proto ↔ domain: the helpers every family's conversion shares (IDs,
//! money, meta and update masks, timestamps and `as_of` points, paging,
//! bank concepts). Each family's own conversions live beside its service,
//! in `services::<family>::convert`.
//!
//! Parsing collects every invalid field of a request into
//! [`Violations`], named by its path in the request (`value.currency`,
//! `identity.document.type`), so a client sees all its mistakes at once.
//!
//! Every parser returning `None` has recorded at least one violation, and
//! handlers check the violations before using a parsed value.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use paycore_domain::history::AsOf;
use paycore_domain::kernel::bank::Concept;
use paycore_domain::kernel::id::IdError;
use paycore_domain::{Currency, Meta, Money, Violations};
use paycore_projections::PageRequest;

use crate::pb;

/// Page size when the request gives none (0).
pub const DEFAULT_PAGE_SIZE: usize = 10;
/// Largest page a list returns.
pub const MAX_PAGE_SIZE: usize = 100;

// ---------------------------------------------------------------- proto → domain

/// A required ID of type `T` in `field`.
pub fn id<T: FromStr<Err = IdError>>(text: &str, field: &str, v: &mut Violations) -> Option<T> {
    if text.is_empty() {
        v.add(field, "is required");
        return None;
    }
    v.check(field, text.parse::<T>())
}

/// An optional ID: absent is fine, present must parse.
pub fn optional_id<T: FromStr<Err = IdError>>(
    text: Option<&str>,
    field: &str,
    v: &mut Violations,
) -> Option<Option<T>> {
    match text {
        None => Some(None),
        Some(text) => v.check(field, text.parse::<T>()).map(Some),
    }
}

/// Earliest and latest seconds of a `google.protobuf.Timestamp`
/// (0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z).
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// An optional `as_of` point (field `as_of`): absent is `Some(None)`; a
/// negative position or an invalid timestamp is a violation on
/// `as_of.position` / `as_of.time`.
pub fn as_of(as_of: Option<&pb::AsOf>, v: &mut Violations) -> Option<Option<AsOf>> {
    let Some(point) = as_of.and_then(|as_of| as_of.point.as_ref()) else {
        return Some(None);
    };
    match point {
        pb::as_of::Point::Position(position) => match u64::try_from(*position) {
            Ok(position) => Some(Some(AsOf::Position(position))),
            Err(_) => {
                v.add("as_of.position", format!("must be 0 or more, got {position}"));
                None
            }
        },
        pb::as_of::Point::Time(time) => {
            if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&time.seconds)
                || !(0..1_000_000_000).contains(&time.nanos)
            {
                v.add(
                    "as_of.time",
                    "must be a valid timestamp: seconds within 0001-01-01 … 9999-12-31, nanos within 0 … 999999999",
                );
                return None;
            }
            let micros = time.seconds * 1_000_000 + i64::from(time.nanos / 1_000);
            Some(Some(AsOf::Time(paycore_domain::Timestamp::from_micros(micros))))
        }
    }
}

/// A required `as_of` point: absent is a violation on `as_of`.
pub fn required_as_of(as_of: Option<&pb::AsOf>, v: &mut Violations) -> Option<AsOf> {
    match self::as_of(as_of, v)? {
        Some(point) => Some(point),
        None => {
            v.add("as_of", "required: a position or a time");
            None
        }
    }
}

pub fn currency(code: &str, field: &str, v: &mut Violations) -> Option<Currency> {
    if code.is_empty() {
        v.add(field, "is required");
        return None;
    }
    v.check(field, code.parse::<Currency>())
}

/// A required `Money` message in `field`.
pub fn money(money: Option<&pb::Money>, field: &str, v: &mut Violations) -> Option<Money> {
    let Some(money) = money else {
        v.add(field, "is required");
        return None;
    };
    let currency = currency(&money.currency, &format!("{field}.currency"), v)?;
    Some(Money::new(money.amount, currency))
}

pub fn meta(entries: &BTreeMap<String, String>, field: &str, v: &mut Violations) -> Option<Meta> {
    Meta::parse(entries.iter().map(|(k, val)| (k.clone(), val.clone())), field, v)
}

/// The paths of an update mask, each checked against `allowed`.
#[derive(Debug)]
pub struct Mask(BTreeSet<String>);

impl Mask {
    pub fn parse(
        mask: Option<&prost_types::FieldMask>,
        allowed: &[&str],
        v: &mut Violations,
    ) -> Option<Self> {
        let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
        let allowed_list = allowed.join(", ");
        if paths.is_empty() {
            v.add(
                "update_mask",
                format!("is required: name the fields to change ({allowed_list})"),
            );
            return None;
        }
        let mut ok = true;
        for path in paths {
            if !allowed.contains(&path.as_str()) {
                v.add(
                    "update_mask",
                    format!("unknown path `{path}`; allowed: {allowed_list}"),
                );
                ok = false;
            }
        }
        ok.then(|| Self(paths.iter().cloned().collect()))
    }

    pub fn has(&self, path: &str) -> bool {
        self.0.contains(path)
    }
}

/// `page_size` and `page_token` of a list request.
pub fn page_request(page_size: i32, page_token: &str, v: &mut Violations) -> Option<PageRequest> {
    let size = match usize::try_from(page_size) {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(size) if size <= MAX_PAGE_SIZE => size,
        _ => {
            v.add(
                "page_size",
                format!(
                    "must be between 1 and {MAX_PAGE_SIZE} (0 for the default, {DEFAULT_PAGE_SIZE}), got {page_size}"
                ),
            );
            return None;
        }
    };
    let token = (!page_token.is_empty()).then(|| page_token.to_owned());
    Some(PageRequest { size, token })
}

/// A required positive amount in `field` (the deciders check it too; doing
/// it here reports it together with the other problems).
pub fn positive_money(value: Option<&pb::Money>, field: &str, v: &mut Violations) -> Option<Money> {
    let value = money(value, field, v)?;
    if value.amount <= 0 {
        v.add(format!("{field}.amount"), "must be positive");
        return None;
    }
    Some(value)
}

/// `update_mask` (only `meta`) and `meta` of an `Update*` request.
pub fn meta_update(
    mask: Option<&prost_types::FieldMask>,
    meta: &std::collections::BTreeMap<String, String>,
    v: &mut Violations,
) -> Option<Meta> {
    let mask = Mask::parse(mask, &["meta"], v);
    let meta = self::meta(meta, "meta", v);
    mask?;
    meta
}

/// A required bank transfer concept in `field`.
pub fn concept(text: &str, field: &str, v: &mut Violations) -> Option<Concept> {
    v.check(field, Concept::parse(text))
}

/// The `meta` of an update whose mask names it, `Some(None)` otherwise.
pub fn masked_meta(
    mask: Option<&Mask>,
    entries: &std::collections::BTreeMap<String, String>,
    v: &mut Violations,
) -> Option<Option<paycore_domain::Meta>> {
    match mask {
        Some(mask) if mask.has("meta") => meta(entries, "meta", v).map(Some),
        _ => Some(None),
    }
}

// ---------------------------------------------------------------- domain → proto

pub fn timestamp(at: paycore_domain::Timestamp) -> prost_types::Timestamp {
    let micros = at.micros();
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        // In 0..1_000_000_000, so it fits.
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

pub fn money_pb(money: Money) -> pb::Money {
    pb::Money {
        currency: money.currency.code().to_owned(),
        amount: money.amount,
    }
}

/// A calendar date as the shared `Date` message.
pub fn date_pb(date: paycore_domain::kernel::date::Date) -> pb::Date {
    pb::Date {
        year: date.year.into(),
        month: date.month.into(),
        day: date.day.into(),
    }
}

pub fn meta_pb(meta: &Meta) -> BTreeMap<String, String> {
    meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use paycore_domain::{AccountId, DomainError, FieldViolation, Timestamp};
    use uuid::Uuid;

    pub(crate) fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    pub(crate) fn violations(v: Violations) -> Vec<FieldViolation> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(fields)) => fields,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    pub(crate) fn acc(n: u128) -> AccountId {
        AccountId::from_uuid(Uuid::from_u128(n))
    }

    pub(crate) fn eur(amount: i64) -> Option<pb::Money> {
        Some(pb::Money {
            currency: "EUR".into(),
            amount,
        })
    }

    #[test]
    fn page_size_bounds() {
        let ok = |size, token: &str| {
            let mut v = Violations::new();
            let page = page_request(size, token, &mut v);
            assert!(v.is_empty());
            page.map(|p| (p.size, p.token))
        };
        assert_eq!(ok(0, ""), Some((DEFAULT_PAGE_SIZE, None)));
        assert_eq!(ok(1, "abc"), Some((1, Some("abc".to_owned()))));
        assert_eq!(ok(100, ""), Some((100, None)));
        for bad in [-1, 101, i32::MIN, i32::MAX] {
            let mut v = Violations::new();
            assert!(page_request(bad, "", &mut v).is_none());
            assert_eq!(fields(v), ["page_size"]);
        }
    }

    #[test]
    fn ids_name_their_field() {
        let mut v = Violations::new();
        let good = acc(1).to_string();
        assert_eq!(id::<AccountId>(&good, "account_id", &mut v), Some(acc(1)));
        assert!(id::<AccountId>("", "a", &mut v).is_none());
        assert!(id::<AccountId>(&good.replace("acc_", "cus_"), "b", &mut v).is_none());
        assert!(id::<AccountId>("acc_nope", "c", &mut v).is_none());
        assert_eq!(optional_id::<AccountId>(None, "d", &mut v), Some(None));
        assert!(optional_id::<AccountId>(Some(""), "e", &mut v).is_none());
        let found = violations(v);
        assert_eq!(
            found.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c", "e"]
        );
        assert_eq!(found[0].description, "is required");
        assert!(found[1].description.contains("acc_"), "{}", found[1].description);
    }

    pub(crate) fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        })
    }

    #[test]
    fn as_of_points_parse_or_name_their_field() {
        let point = |point| pb::AsOf { point: Some(point) };
        let time = |seconds, nanos| point(pb::as_of::Point::Time(prost_types::Timestamp { seconds, nanos }));
        let mut v = Violations::new();
        assert_eq!(as_of(None, &mut v), Some(None));
        assert_eq!(as_of(Some(&pb::AsOf { point: None }), &mut v), Some(None));
        assert_eq!(
            as_of(Some(&point(pb::as_of::Point::Position(7))), &mut v),
            Some(Some(AsOf::Position(7)))
        );
        // Finer than a microsecond is dropped; before 1970 is fine.
        assert_eq!(
            as_of(Some(&time(-2, 1_999)), &mut v),
            Some(Some(AsOf::Time(Timestamp::from_micros(-1_999_999))))
        );
        assert!(v.is_empty());
        for (bad, field) in [
            (point(pb::as_of::Point::Position(-1)), "as_of.position"),
            (time(0, -1), "as_of.time"),
            (time(0, 1_000_000_000), "as_of.time"),
            (time(MAX_TIMESTAMP_SECONDS + 1, 0), "as_of.time"),
            (time(MIN_TIMESTAMP_SECONDS - 1, 0), "as_of.time"),
        ] {
            let mut v = Violations::new();
            assert_eq!(as_of(Some(&bad), &mut v), None);
            assert_eq!(fields(v), [field]);
        }
        let mut v = Violations::new();
        assert_eq!(required_as_of(None, &mut v), None);
        assert_eq!(fields(v), ["as_of"]);
    }

    #[test]
    fn timestamps_split_into_seconds_and_nanos() {
        assert_eq!(
            timestamp(Timestamp::from_micros(1_500_000)),
            prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            timestamp(Timestamp::from_micros(-1)),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_999_000
            }
        );
    }
}
