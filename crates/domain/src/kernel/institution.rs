//! Institutions (banks) a connection reads from: identified by the
//! connector's catalogue ID, a plain code such as `SANDBOX_GB_BANK`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest institution ID accepted.
pub const MAX_INSTITUTION_ID_CHARS: usize = 64;

/// An institution of the connector's catalogue: 1 to 64 characters of
/// ASCII letters, digits, `_` and `-`, starting with a letter or digit.
/// Not personal data (it names a bank, not a person), so it may appear in
/// stream names (`institution-prj_….SANDBOX_GB_BANK`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct InstitutionId(String);

impl TryFrom<String> for InstitutionId {
    type Error = InvalidInstitutionId;

    /// Decoding checks like parsing: a stored ID is a valid one.
    fn try_from(text: String) -> Result<Self, InvalidInstitutionId> {
        Self::parse(&text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be 1 to {MAX_INSTITUTION_ID_CHARS} characters of letters, digits, `_` and `-`, starting with a letter or digit, e.g. SANDBOX_GB_BANK"
)]
pub struct InvalidInstitutionId;

impl InstitutionId {
    pub fn parse(text: &str) -> Result<Self, InvalidInstitutionId> {
        let valid = (1..=MAX_INSTITUTION_ID_CHARS).contains(&text.len())
            && text.starts_with(|c: char| c.is_ascii_alphanumeric())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidInstitutionId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for InstitutionId {
    type Err = InvalidInstitutionId;

    fn from_str(text: &str) -> Result<Self, InvalidInstitutionId> {
        Self::parse(text)
    }
}

impl fmt::Display for InstitutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstitutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_catalogue_codes_only() {
        for good in ["SANDBOX_GB_BANK", "REVOLUT_REVOGB21", "a", "bank-2"] {
            assert_eq!(
                InstitutionId::parse(good).map(|id| id.to_string()).as_deref(),
                Ok(good)
            );
        }
        let long = "A".repeat(MAX_INSTITUTION_ID_CHARS + 1);
        for bad in ["", "_X", "-X", "BANK.GB", "BANK GB", "BANKÉ", long.as_str()] {
            assert_eq!(InstitutionId::parse(bad), Err(InvalidInstitutionId), "{bad}");
        }
    }
}
