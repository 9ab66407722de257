//! Free-form key/value metadata the API stores on most objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::Violations;

pub const MAX_KEYS: usize = 50;
pub const MAX_KEY_CHARS: usize = 40;
pub const MAX_VALUE_CHARS: usize = 500;
/// Keys starting with `_` are reserved for the dashboard; these are the ones
/// it uses today and the only ones the API accepts.
pub const DASHBOARD_KEYS: &[&str] = &["_name", "_starred"];

/// Validated metadata. Ordered, so equal maps encode to equal bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta(BTreeMap<String, String>);

impl Meta {
    /// Validates `entries`, reporting every problem under `field` (`meta`,
    /// `meta.<key>`).
    pub fn parse(
        entries: impl IntoIterator<Item = (String, String)>,
        field: &str,
        violations: &mut Violations,
    ) -> Option<Self> {
        let map: BTreeMap<String, String> = entries.into_iter().collect();
        let mut ok = true;
        if map.len() > MAX_KEYS {
            violations.add(field, format!("at most {MAX_KEYS} keys, got {}", map.len()));
            ok = false;
        }
        for (key, value) in &map {
            let key_field = format!("{field}.{key}");
            if key.is_empty() {
                violations.add(field, "keys must not be empty");
                ok = false;
            } else if key.chars().count() > MAX_KEY_CHARS {
                violations.add(&key_field, format!("key longer than {MAX_KEY_CHARS} characters"));
                ok = false;
            } else if key.starts_with('_') && !DASHBOARD_KEYS.contains(&key.as_str()) {
                violations.add(
                    &key_field,
                    format!(
                        "keys starting with `_` are reserved; allowed: {}",
                        DASHBOARD_KEYS.join(", ")
                    ),
                );
                ok = false;
            }
            if value.chars().count() > MAX_VALUE_CHARS {
                violations.add(
                    &key_field,
                    format!("value longer than {MAX_VALUE_CHARS} characters"),
                );
                ok = false;
            }
        }
        ok.then_some(Self(map))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The payload of every family's `…MetaUpdated` event: the new meta, whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaUpdated {
    pub meta: Meta,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[(&str, &str)]) -> Result<Meta, Violations> {
        let mut violations = Violations::new();
        let meta = Meta::parse(
            entries.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            "meta",
            &mut violations,
        );
        meta.ok_or(violations)
    }

    #[test]
    fn accepts_ordinary_and_dashboard_keys() {
        let meta = parse(&[("user", "42"), ("_name", "Main"), ("_starred", "1")]).unwrap();
        assert_eq!(meta.get("_name"), Some("Main"));
    }

    #[test]
    fn enforces_limits_and_reserved_prefix() {
        assert!(parse(&[("_secret", "x")]).is_err());
        assert!(parse(&[(&"k".repeat(41), "x")]).is_err());
        assert!(parse(&[("k", &"v".repeat(501))]).is_err());
        assert!(parse(&[("", "v")]).is_err());
        let many: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
        let mut violations = Violations::new();
        assert!(Meta::parse(many, "meta", &mut violations).is_none());
        assert!(parse(&[(&"k".repeat(40), &"v".repeat(500))]).is_ok());
    }
}
