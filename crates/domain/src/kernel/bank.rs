//! Bank transfer vocabulary: the transfer [`Concept`], the payout
//! [`Miniref`] and the bank payin [`PayinReferenceCode`].
//!
//! # The reference alphabet
//!
//! Codes that people read aloud, type from a printout or copy into a bank
//! app's concept field use [`REFERENCE_ALPHABET`], 14 symbols:
//!
//! ```text
//! 3 4 6 7 9 F H K M R T W X Y
//! ```
//!
//! It leaves out the characters that are easy to confuse:
//!
//! - by sight: both members of `0`/`O`/`Q`/`D`, `1`/`I`/`L`, `2`/`Z`,
//!   `5`/`S`, `8`/`B` and `U`/`V`; of `6`/`G` only `6` stays;
//! - by ear (English letter names over a phone line): of the "E-set"
//!   `B C D E G P T V Z` only `T` stays; of `M`/`N` only `M`; of `A`/`J`/`K`
//!   only `K`; of `I`/`Y` only `Y`; of `Q`/`U` neither;
//! - vowels (`A E I O U`), so codes cannot spell words.
//!
//! No alphabet is unambiguous in every language (in Spanish `F`, `M` and `R`
//! are "efe", "eme", "erre"); when a code is read aloud, spelling it with
//! the ICAO alphabet (Kilo, Mike, Four …) removes the rest.
//!
//! Codes are case-insensitive on input and always shown in uppercase. The
//! alphabet is part of the recorded data format: it must never change.
//!
//! # Generating codes without randomness
//!
//! The domain has no randomness: the caller passes entropy in (bytes from
//! the command). [`PayinReferenceCode::candidates`] and
//! [`Miniref::candidates`] walk the whole code space from the point the
//! entropy picks, so a decider takes the first candidate not already in use
//! (`candidates(entropy).find(|code| !used(code))`), deterministically, and
//! only runs out when every code is taken.
//!
//! # Decoding from the log
//!
//! Codes re-check their alphabet and length when decoded (those rules are
//! the format itself). A [`Concept`] is trusted as recorded: its length limit
//! is a policy that may change, and a recorded concept must stay readable.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The symbols of payin reference codes and generated minirefs, in ASCII
/// order (see the module docs for why these).
pub const REFERENCE_ALPHABET: &[u8; 14] = b"34679FHKMRTWXY";

const BASE: u64 = REFERENCE_ALPHABET.len() as u64;

fn alphabet_digit(byte: u8) -> Option<u64> {
    REFERENCE_ALPHABET
        .iter()
        .position(|&symbol| symbol == byte.to_ascii_uppercase())
        .map(|digit| digit as u64)
}

/// Writes `index` in base 14 over the reference alphabet, most significant first.
fn encode_into(mut index: u64, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = REFERENCE_ALPHABET[(index % BASE) as usize];
        index /= BASE;
    }
}

/// Every code of a space of `space` codes once, starting where `entropy` points.
fn walk(entropy: [u8; 8], space: u64) -> impl Iterator<Item = u64> {
    let start = u64::from_le_bytes(entropy) % space;
    (0..space).map(move |step| (start + step) % space)
}

// ---------------------------------------------------------------------------
// Concept
// ---------------------------------------------------------------------------

/// The free text of a bank transfer (SEPA "remittance information"), shown
/// to the receiver: 1–140 characters, at least one of them visible, and no
/// control or invisible formatting characters (line breaks, tabs, zero-width
/// and bidirectional-override characters, which could make the receiver see
/// something other than what is recorded).
///
/// Other characters, accents included, are allowed: banks that cannot carry
/// them transliterate. The API advises keeping concepts under 20 characters
/// so bank networks do not cut them; that is advice, not a rule.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Concept(String);

/// Why a text cannot be a bank transfer concept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConceptError {
    #[error("concept must not be empty")]
    Empty,
    #[error("concept is at most {max} characters, got {found}")]
    TooLong { max: usize, found: usize },
    #[error(
        "concept may contain only printable characters; found {character:?} at position {}",
        .index + 1
    )]
    NotPrintable { character: char, index: usize },
}

impl Concept {
    /// The SEPA limit for unstructured remittance information.
    pub const MAX_CHARS: usize = 140;

    pub fn parse(text: &str) -> Result<Self, ConceptError> {
        if text.trim().is_empty() {
            return Err(ConceptError::Empty);
        }
        let found = text.chars().count();
        if found > Self::MAX_CHARS {
            return Err(ConceptError::TooLong {
                max: Self::MAX_CHARS,
                found,
            });
        }
        if let Some((index, character)) = text.chars().enumerate().find(|(_, c)| !is_printable(*c)) {
            return Err(ConceptError::NotPrintable { character, index });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Not a control character (`Cc`: line breaks, tabs, DEL …) nor an invisible
/// format character that changes how the text around it is shown.
fn is_printable(character: char) -> bool {
    !character.is_control()
        && !matches!(
            character,
            '\u{00AD}'                  // soft hyphen
            | '\u{200B}'..='\u{200F}'   // zero-width spaces and joiners, LRM, RLM
            | '\u{2028}'..='\u{202E}'   // line/paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'   // bidi isolates
            | '\u{FEFF}' // zero-width no-break space
        )
}

impl FromStr for Concept {
    type Err = ConceptError;

    fn from_str(text: &str) -> Result<Self, ConceptError> {
        Self::parse(text)
    }
}

impl fmt::Display for Concept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Concept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Concept({:?})", self.0)
    }
}

// ---------------------------------------------------------------------------
// Miniref
// ---------------------------------------------------------------------------

/// A payout's mini reference: 4–6 characters included in the bank
/// transfer's concept to tell apart transfers to the same IBAN. Unique per
/// destination IBAN for one year (the caller checks that against the IBAN's
/// recent minirefs; see [`Miniref::candidates`]), not globally.
///
/// Accepted on input: 4–6 letters `A`–`Z` and digits, case-insensitive,
/// stored in uppercase. Generated: always [`Miniref::GENERATED_LEN`] (6)
/// characters of [`REFERENCE_ALPHABET`], so 14⁶ = 7,529,536 per IBAN.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Miniref {
    bytes: [u8; Miniref::MAX_LEN],
    len: u8,
}

/// Why a text is not a miniref.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MinirefError {
    #[error("miniref must be 4 to 6 characters, got {0}")]
    WrongLength(usize),
    #[error("miniref may contain only letters A-Z and digits 0-9; found {0:?}")]
    InvalidCharacter(char),
}

impl Miniref {
    pub const MIN_LEN: usize = 4;
    pub const MAX_LEN: usize = 6;
    /// The length of the minirefs paycore generates.
    pub const GENERATED_LEN: usize = 6;
    /// How many generated minirefs exist: 14⁶.
    pub const SPACE: u64 = BASE.pow(Self::GENERATED_LEN as u32);

    pub fn parse(text: &str) -> Result<Self, MinirefError> {
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(MinirefError::InvalidCharacter(bad));
        }
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&text.len()) {
            return Err(MinirefError::WrongLength(text.len()));
        }
        let mut bytes = [0; Self::MAX_LEN];
        for (slot, byte) in bytes.iter_mut().zip(text.bytes()) {
            *slot = byte.to_ascii_uppercase();
        }
        Ok(Self {
            bytes,
            len: text.len() as u8,
        })
    }

    /// The generated miniref number `index % SPACE`.
    pub fn from_index(index: u64) -> Self {
        let mut bytes = [0; Self::MAX_LEN];
        encode_into(index % Self::SPACE, &mut bytes[..Self::GENERATED_LEN]);
        Self {
            bytes,
            len: Self::GENERATED_LEN as u8,
        }
    }

    /// A generated miniref chosen by `entropy` (bytes the caller drew).
    pub fn from_entropy(entropy: [u8; 8]) -> Self {
        Self::from_index(u64::from_le_bytes(entropy))
    }

    /// Every generated miniref exactly once, starting with
    /// [`Miniref::from_entropy`]`(entropy)`: take the first one not used for
    /// the destination IBAN in the last year.
    pub fn candidates(entropy: [u8; 8]) -> impl Iterator<Item = Self> {
        walk(entropy, Self::SPACE).map(Self::from_index)
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl FromStr for Miniref {
    type Err = MinirefError;

    fn from_str(text: &str) -> Result<Self, MinirefError> {
        Self::parse(text)
    }
}

impl fmt::Display for Miniref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Miniref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Miniref({})", self.as_str())
    }
}

impl Serialize for Miniref {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Miniref {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let miniref = Self::parse(&text).map_err(serde::de::Error::custom)?;
        if miniref.as_str() != text {
            return Err(serde::de::Error::custom(
                "miniref not in canonical uppercase form",
            ));
        }
        Ok(miniref)
    }
}

// ---------------------------------------------------------------------------
// PayinReferenceCode
// ---------------------------------------------------------------------------

/// The code of a bank payin reference (e.g. `KM4TRW9H`): the
/// sender writes it in the concept of a bank transfer to paycore's IBAN and
/// the money is credited to the reference's account.
///
/// [`PayinReferenceCode::LEN`] (8) characters of [`REFERENCE_ALPHABET`]:
/// 14⁸ ≈ 1.48 billion codes. Case-insensitive on input, uppercase when
/// shown. Uniqueness is the caller's job (see
/// [`PayinReferenceCode::candidates`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayinReferenceCode([u8; PayinReferenceCode::LEN]);

/// Why a text is not a payin reference code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayinReferenceCodeError {
    #[error("reference code must be 8 characters, got {0}")]
    WrongLength(usize),
    #[error("reference code may contain only the characters 3 4 6 7 9 F H K M R T W X Y; found {0:?}")]
    InvalidCharacter(char),
}

impl PayinReferenceCode {
    pub const LEN: usize = 8;
    /// How many codes exist: 14⁸.
    pub const SPACE: u64 = BASE.pow(Self::LEN as u32);

    /// Parses a code, case-insensitively.
    pub fn parse(text: &str) -> Result<Self, PayinReferenceCodeError> {
        if let Some(bad) = text
            .chars()
            .find(|&c| !c.is_ascii() || alphabet_digit(c as u8).is_none())
        {
            return Err(PayinReferenceCodeError::InvalidCharacter(bad));
        }
        let bytes: [u8; Self::LEN] = text
            .as_bytes()
            .try_into()
            .map_err(|_| PayinReferenceCodeError::WrongLength(text.chars().count()))?;
        Ok(Self(bytes.map(|byte| byte.to_ascii_uppercase())))
    }

    /// The code number `index % SPACE`.
    pub fn from_index(index: u64) -> Self {
        let mut bytes = [0; Self::LEN];
        encode_into(index % Self::SPACE, &mut bytes);
        Self(bytes)
    }

    /// The code chosen by `entropy` (bytes the caller drew). The bias of
    /// reducing 2⁶⁴ values to 14⁸ codes is below 10⁻⁹.
    pub fn from_entropy(entropy: [u8; 8]) -> Self {
        Self::from_index(u64::from_le_bytes(entropy))
    }

    /// Every code exactly once, starting with
    /// [`PayinReferenceCode::from_entropy`]`(entropy)`: take the first one
    /// not already in use.
    pub fn candidates(entropy: [u8; 8]) -> impl Iterator<Item = Self> {
        walk(entropy, Self::SPACE).map(Self::from_index)
    }

    /// Every string in a bank transfer concept that could be a reference
    /// code, in order of appearance and without repeats, for the caller to
    /// look up. Matching is case-insensitive. A candidate is
    ///
    /// - a word of exactly 8 characters (words are the runs of letters and
    ///   digits; anything else separates them: `REF:km4trw9h.` yields
    ///   `KM4TRW9H`), or
    /// - consecutive words separated only by spaces or hyphens that together
    ///   make 8 characters, because people and bank systems split codes
    ///   (`KM4T RW9H`, `KM4T-RW9H`);
    ///
    /// and in both cases only characters of the alphabet. A code glued to
    /// other letters or digits (`REFKM4TRW9H`) is not found. More than one
    /// candidate may turn out to be a known reference; what to do then
    /// (refuse as ambiguous, most likely) is the caller's decision.
    pub fn scan(concept: &str) -> impl Iterator<Item = Self> {
        let mut words: Vec<(&str, bool)> = Vec::new(); // (word, joinable to the previous one)
        let mut rest = concept;
        let mut joinable = false;
        while !rest.is_empty() {
            let word_start = rest.find(char::is_alphanumeric).unwrap_or(rest.len());
            let separator = &rest[..word_start];
            if !separator.is_empty() {
                joinable = separator.chars().all(|c| c == ' ' || c == '-');
            }
            rest = &rest[word_start..];
            let word_end = rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len());
            if word_end > 0 {
                words.push((&rest[..word_end], joinable));
            }
            rest = &rest[word_end..];
        }
        let mut found: Vec<Self> = Vec::new();
        for start in 0..words.len() {
            let mut joined = String::with_capacity(Self::LEN);
            for (index, (word, joinable)) in words.iter().enumerate().skip(start) {
                if index > start && !joinable {
                    break;
                }
                joined.push_str(word);
                if joined.len() >= Self::LEN {
                    break;
                }
            }
            if let Ok(code) = Self::parse(&joined)
                && !found.contains(&code)
            {
                found.push(code);
            }
        }
        found.into_iter()
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from the ASCII alphabet.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl FromStr for PayinReferenceCode {
    type Err = PayinReferenceCodeError;

    fn from_str(text: &str) -> Result<Self, PayinReferenceCodeError> {
        Self::parse(text)
    }
}

impl fmt::Display for PayinReferenceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PayinReferenceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayinReferenceCode({})", self.as_str())
    }
}

impl Serialize for PayinReferenceCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PayinReferenceCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let code = Self::parse(&text).map_err(serde::de::Error::custom)?;
        if code.as_str() != text {
            return Err(serde::de::Error::custom(
                "reference code not in canonical uppercase form",
            ));
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_is_sorted_unique_and_unambiguous() {
        assert!(REFERENCE_ALPHABET.windows(2).all(|pair| pair[0] < pair[1]));
        for confusable in b"0O1IL5S2Z8BGUVQDAEJNCP" {
            assert!(
                !REFERENCE_ALPHABET.contains(confusable),
                "{}",
                *confusable as char
            );
        }
    }

    #[test]
    fn encoding_is_base_14_most_significant_first() {
        assert_eq!(PayinReferenceCode::from_index(0).as_str(), "33333333");
        assert_eq!(PayinReferenceCode::from_index(1).as_str(), "33333334");
        assert_eq!(PayinReferenceCode::from_index(14).as_str(), "33333343");
        assert_eq!(
            PayinReferenceCode::from_index(PayinReferenceCode::SPACE - 1).as_str(),
            "YYYYYYYY"
        );
        assert_eq!(
            PayinReferenceCode::from_index(PayinReferenceCode::SPACE).as_str(),
            "33333333"
        );
        assert_eq!(Miniref::from_index(Miniref::SPACE - 1).as_str(), "YYYYYY");
    }
}
