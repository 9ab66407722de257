//! The name of a durable event subscriber, part of its stream's name
//! (`consumer-<project>.<name>`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A consumer's name: 1–64 characters of `a`–`z`, `0`–`9`, `_` and `-`.
/// No `.`, so the stream name `consumer-<project>.<name>` parses back.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerName(String);

/// Why a text cannot be a consumer name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerNameError {
    #[error("must be 1 to {max} characters, got {found}", max = ConsumerName::MAX_CHARS)]
    Length { found: usize },
    #[error("may contain only a-z, 0-9, '_' and '-'; found {character:?} at position {}", .index + 1)]
    Character { character: char, index: usize },
}

impl ConsumerName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(text: &str) -> Result<Self, ConsumerNameError> {
        let found = text.chars().count();
        if found == 0 || found > Self::MAX_CHARS {
            return Err(ConsumerNameError::Length { found });
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if let Some((index, character)) = text.chars().enumerate().find(|(_, c)| !allowed(*c)) {
            return Err(ConsumerNameError::Character { character, index });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConsumerName({})", self.0)
    }
}

impl Serialize for ConsumerName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ConsumerName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}
