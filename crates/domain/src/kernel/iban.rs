//! International Bank Account Numbers (ISO 13616).
//!
//! An [`Iban`] is accepted only in its *electronic form*: no spaces (the API
//! says so: "must be given without spaces"), uppercase letters `A`–`Z` and
//! digits only, a country code from the SWIFT IBAN registry with exactly the
//! length the registry gives that country, check digits `02`–`98`, and the
//! ISO 7064 MOD 97-10 checksum. Lowercase input and spaces are refused with an
//! error that says how to fix them, rather than silently normalised: what the
//! caller sent is what the bank will see.
//!
//! The per-country BBAN structure (which positions are digits, bank codes,
//! national check digits) is not checked: the registry length and the mod-97
//! checksum catch every mistyped character (a digit for another digit, a
//! letter for another letter) and every swap of two adjacent digits or two
//! adjacent letters, which is what the API promises. (Swapping a digit with an
//! adjacent letter can escape mod-97: `1B` and `B1` weigh the same.)
//!
//! # Decoding from the log
//!
//! [`Iban::parse`] checks everything above. Decoding an `Iban` from an event
//! (serde) re-checks only the rules that can never change — the character
//! set, the shape (two letters, two check digits `02`–`98`, 5–34 characters)
//! and the mod-97 checksum — but not the registry's country list and lengths,
//! which SWIFT revises (Costa Rica went from 21 to 22 characters in 2016). An
//! IBAN accepted once stays readable forever, whatever the registry says
//! later.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The SWIFT IBAN registry (ISO 13616): every country code that has IBANs
/// and the total length of its IBANs (country code and check digits
/// included). Sorted by code. Territories that use their parent's prefix
/// (Åland uses `FI`; French overseas territories `FR`; Jersey, Guernsey and
/// the Isle of Man `GB`) have no entry of their own, as in the registry.
pub const IBAN_REGISTRY: &[(&str, usize)] = &[
    ("AD", 24), // Andorra
    ("AE", 23), // United Arab Emirates
    ("AL", 28), // Albania
    ("AT", 20), // Austria
    ("AZ", 28), // Azerbaijan
    ("BA", 20), // Bosnia and Herzegovina
    ("BE", 16), // Belgium
    ("BG", 22), // Bulgaria
    ("BH", 22), // Bahrain
    ("BI", 27), // Burundi
    ("BR", 29), // Brazil
    ("BY", 28), // Belarus
    ("CH", 21), // Switzerland
    ("CR", 22), // Costa Rica
    ("CY", 28), // Cyprus
    ("CZ", 24), // Czechia
    ("DE", 22), // Germany
    ("DJ", 27), // Djibouti
    ("DK", 18), // Denmark
    ("DO", 28), // Dominican Republic
    ("EE", 20), // Estonia
    ("EG", 29), // Egypt
    ("ES", 24), // Spain
    ("FI", 18), // Finland
    ("FK", 18), // Falkland Islands
    ("FO", 18), // Faroe Islands
    ("FR", 27), // France
    ("GB", 22), // United Kingdom
    ("GE", 22), // Georgia
    ("GI", 23), // Gibraltar
    ("GL", 18), // Greenland
    ("GR", 27), // Greece
    ("GT", 28), // Guatemala
    ("HN", 28), // Honduras
    ("HR", 21), // Croatia
    ("HU", 28), // Hungary
    ("IE", 22), // Ireland
    ("IL", 23), // Israel
    ("IQ", 23), // Iraq
    ("IS", 26), // Iceland
    ("IT", 27), // Italy
    ("JO", 30), // Jordan
    ("KW", 30), // Kuwait
    ("KZ", 20), // Kazakhstan
    ("LB", 28), // Lebanon
    ("LC", 32), // Saint Lucia
    ("LI", 21), // Liechtenstein
    ("LT", 20), // Lithuania
    ("LU", 20), // Luxembourg
    ("LV", 21), // Latvia
    ("LY", 25), // Libya
    ("MC", 27), // Monaco
    ("MD", 24), // Moldova
    ("ME", 22), // Montenegro
    ("MK", 19), // North Macedonia
    ("MN", 20), // Mongolia
    ("MR", 27), // Mauritania
    ("MT", 31), // Malta
    ("MU", 30), // Mauritius
    ("NI", 28), // Nicaragua
    ("NL", 18), // Netherlands
    ("NO", 15), // Norway
    ("OM", 23), // Oman
    ("PK", 24), // Pakistan
    ("PL", 28), // Poland
    ("PS", 29), // Palestine
    ("PT", 25), // Portugal
    ("QA", 29), // Qatar
    ("RO", 24), // Romania
    ("RS", 22), // Serbia
    ("RU", 33), // Russia
    ("SA", 24), // Saudi Arabia
    ("SC", 31), // Seychelles
    ("SD", 18), // Sudan
    ("SE", 24), // Sweden
    ("SI", 19), // Slovenia
    ("SK", 24), // Slovakia
    ("SM", 27), // San Marino
    ("SO", 23), // Somalia
    ("ST", 25), // Sao Tome and Principe
    ("SV", 28), // El Salvador
    ("TL", 23), // Timor-Leste
    ("TN", 24), // Tunisia
    ("TR", 26), // Turkey
    ("UA", 29), // Ukraine
    ("VA", 22), // Vatican City
    ("VG", 24), // British Virgin Islands
    ("XK", 20), // Kosovo
    ("YE", 30), // Yemen
];

/// The longest IBAN ISO 13616 allows.
pub const MAX_LEN: usize = 34;
/// The shortest structurally possible IBAN: country, check digits, one BBAN character.
const MIN_STRUCTURAL_LEN: usize = 5;

/// Why a text is not a valid IBAN. The messages are meant for the API caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IbanError {
    #[error("IBAN is empty")]
    Empty,
    #[error("IBAN must be given without spaces: remove them (e.g. `ES9121000418450200051332`)")]
    ContainsSpaces,
    #[error(
        "IBAN may contain only uppercase letters A-Z and digits 0-9; found {character:?} at position {}",
        .index + 1
    )]
    InvalidCharacters { character: char, index: usize },
    #[error("IBAN must start with a two-letter country code from the IBAN registry; {0:?} is not one")]
    UnknownCountry(String),
    #[error("an IBAN of country {country} has {expected} characters, this one has {found}")]
    WrongLength {
        country: String,
        expected: usize,
        found: usize,
    },
    #[error("IBAN check digits do not match (mod-97 checksum failed): check the number for typos")]
    ChecksumFailed,
}

/// A valid IBAN in electronic form (`ES9121000418450200051332`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iban(String);

impl Iban {
    /// Validates an IBAN given in electronic form (no spaces, uppercase).
    pub fn parse(text: &str) -> Result<Self, IbanError> {
        check_characters(text)?;
        let country = &text[..2];
        let expected =
            Self::length_for(country).ok_or_else(|| IbanError::UnknownCountry(country.to_owned()))?;
        if text.len() != expected {
            return Err(IbanError::WrongLength {
                country: country.to_owned(),
                expected,
                found: text.len(),
            });
        }
        check_digits(text)?;
        Ok(Self(text.to_owned()))
    }

    /// Builds the IBAN of a country's BBAN (the national account number),
    /// computing its check digits. The result is validated like [`Iban::parse`].
    pub fn from_bban(country: &str, bban: &str) -> Result<Self, IbanError> {
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(IbanError::UnknownCountry(country.to_owned()));
        }
        let mut text = format!("{country}00{bban}");
        check_characters(&text)?;
        let check = 98 - mod97(&text);
        text.replace_range(2..4, &format!("{check:02}"));
        Self::parse(&text)
    }

    /// The registry's IBAN length for a country code, if it has IBANs.
    pub fn length_for(country: &str) -> Option<usize> {
        IBAN_REGISTRY
            .binary_search_by(|(code, _)| (*code).cmp(country))
            .ok()
            .map(|at| IBAN_REGISTRY[at].1)
    }

    /// The ISO 3166 country code (`ES`).
    pub fn country(&self) -> &str {
        &self.0[..2]
    }

    /// The two check digits (`91`).
    pub fn check_digits(&self) -> &str {
        &self.0[2..4]
    }

    /// The national account number after the check digits.
    pub fn bban(&self) -> &str {
        &self.0[4..]
    }

    /// The electronic form, as stored and sent to banks.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The printed form: groups of four separated by spaces
    /// (`ES91 2100 0418 4502 0005 1332`). For display only; [`Iban::parse`]
    /// refuses it.
    pub fn printable(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + self.0.len() / 4);
        for (index, character) in self.0.chars().enumerate() {
            if index > 0 && index % 4 == 0 {
                out.push(' ');
            }
            out.push(character);
        }
        out
    }
}

/// Non-empty, no spaces, only `A`–`Z`/`0`–`9`, starting with two letters.
fn check_characters(text: &str) -> Result<(), IbanError> {
    if text.is_empty() {
        return Err(IbanError::Empty);
    }
    if text.chars().any(char::is_whitespace) {
        return Err(IbanError::ContainsSpaces);
    }
    if let Some((index, character)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
    {
        return Err(IbanError::InvalidCharacters { character, index });
    }
    // Only ASCII from here on: byte offsets are character offsets.
    let bytes = text.as_bytes();
    if bytes.len() < 2 || !bytes[..2].iter().all(u8::is_ascii_uppercase) {
        return Err(IbanError::UnknownCountry(text.chars().take(2).collect()));
    }
    Ok(())
}

/// What every IBAN satisfies whatever the registry says: the characters of
/// [`check_characters`], 5–34 characters, check digits `02`–`98` and the
/// mod-97 checksum. Used when decoding from the log.
fn check_permanent_rules(text: &str) -> Result<(), IbanError> {
    check_characters(text)?;
    if !(MIN_STRUCTURAL_LEN..=MAX_LEN).contains(&text.len()) {
        return Err(IbanError::WrongLength {
            country: text[..2].to_owned(),
            expected: text.len().clamp(MIN_STRUCTURAL_LEN, MAX_LEN),
            found: text.len(),
        });
    }
    check_digits(text)
}

/// Check digits are two digits in `02..=98` and the whole IBAN is 1 mod 97.
/// Expects the output of [`check_characters`] at least four characters long.
fn check_digits(text: &str) -> Result<(), IbanError> {
    let Some(digits) = text.as_bytes().get(2..4) else {
        return Err(IbanError::ChecksumFailed);
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(IbanError::ChecksumFailed);
    }
    let value = (digits[0] - b'0') * 10 + (digits[1] - b'0');
    if !(2..=98).contains(&value) || mod97(text) != 1 {
        return Err(IbanError::ChecksumFailed);
    }
    Ok(())
}

/// ISO 7064 MOD 97-10 of an IBAN: the first four characters are moved to the
/// end, each letter becomes two digits (`A` = 10 … `Z` = 35), and the
/// resulting number is reduced modulo 97 as it is read, a character at a
/// time (Horner's rule), so nothing wider than a `u32` is ever needed.
/// Expects `A`–`Z`/`0`–`9` only.
fn mod97(text: &str) -> u32 {
    let bytes = text.as_bytes();
    let (head, tail) = bytes.split_at(4.min(bytes.len()));
    tail.iter().chain(head).fold(0, |remainder, &byte| match byte {
        b'0'..=b'9' => (remainder * 10 + u32::from(byte - b'0')) % 97,
        _ => (remainder * 100 + u32::from(byte.saturating_sub(b'A')) + 10) % 97,
    })
}

impl FromStr for Iban {
    type Err = IbanError;

    fn from_str(text: &str) -> Result<Self, IbanError> {
        Self::parse(text)
    }
}

impl fmt::Display for Iban {
    /// The electronic form (no spaces); see [`Iban::printable`] for groups of four.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Iban({})", self.0)
    }
}

impl Serialize for Iban {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Iban {
    /// Re-checks the permanent rules only (see the module docs): an IBAN
    /// recorded under an older registry still decodes.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        check_permanent_rules(&text).map_err(serde::de::Error::custom)?;
        Ok(Self(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_sorted_unique_and_in_range() {
        assert!(IBAN_REGISTRY.windows(2).all(|pair| pair[0].0 < pair[1].0));
        for (code, length) in IBAN_REGISTRY {
            assert!(
                code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()),
                "{code}"
            );
            assert!((15..=MAX_LEN).contains(length), "{code} {length}");
        }
    }

    #[test]
    fn mod97_of_known_values() {
        assert_eq!(mod97("GB82WEST12345698765432"), 1);
        // 3214282912345698765432161182 mod 97 (the worked example of ISO 13616).
        assert_eq!(mod97("GB00WEST12345698765432"), 98 - 82);
    }
}
