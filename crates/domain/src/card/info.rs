//! Card data: numbers, brands, expiry dates, CVCs, fingerprints, and the
//! rules that validate a card-info request.
//!
//! # What may be kept where
//!
//! | datum | event log, read models, responses, errors, log lines | elsewhere |
//! |---|---|---|
//! | CVC ([`Cvc`]) | **never** | **never**: validated, handed to the card network in memory, dropped |
//! | full number ([`CardNumber`]) | **never** | only encrypted, outside the event log, for later payins with a stored card |
//! | masked number, brand, expiry, fingerprint ([`CardInfo`]) | yes | yes |
//!
//! The types enforce the table as far as types can:
//!
//! - [`CardNumber`] and [`Cvc`] implement neither `Serialize` nor
//!   `Deserialize`, so no event, snapshot or response can embed them.
//!   Their `Debug` (and `CardNumber`'s `Display`) print the masked number
//!   and `***`, so a stray `{:?}` in a log line leaks nothing. The full
//!   digits come out only through the explicitly named
//!   [`CardNumber::digits`] (for the encryption path) and [`Cvc::digits`]
//!   (for the card network).
//! - [`CardInfo`], what events and responses carry, is built from a
//!   `CardNumber` by masking it; its number field is a [`MaskedCardNumber`],
//!   which even when deserialized is checked to hide all but the first 6 and
//!   last 4 digits.
//! - No [`CardError`] carries any part of the input: error messages (which
//!   become API field violations and log lines) never echo a number or CVC.
//!
//! # Input rules
//!
//! A card number is 12 to 19 ASCII digits and passes the Luhn check. Anything
//! else, including spaces and dashes (`4242 4242 …`), is **rejected**, not
//! stripped: the API documents the field as a plain number, and silently
//! rewriting card input would hide client bugs. Expiry: month 1–12, a full
//! 4-digit year, not before the current month (a card is valid through the
//! last day of its expiry month). The current month comes in as an argument
//! ([`YearMonth`], e.g. from the command's timestamp), never from a clock. The
//! CVC is 3 or 4 digits for every brand (the reference says "3 or 4 digits";
//! issuers, not we, check that an American Express CVC has 4).
//!
//! # Fingerprints
//!
//! A [`Fingerprint`] is HMAC-SHA256 of the number's digits under a per-project
//! key (see [`fingerprint_key`]), rendered as 16 base62 characters: equal
//! numbers in one project have equal fingerprints; across projects they
//! differ, and without the key a fingerprint cannot be checked against
//! guessed numbers.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::kernel::error::Violations;
use crate::kernel::id::ProjectId;
use crate::kernel::time::Timestamp;

/// Shortest and longest card numbers (ISO/IEC 7812).
pub const MIN_DIGITS: usize = 12;
pub const MAX_DIGITS: usize = 19;

/// How many leading and trailing digits a masked number shows.
const SHOWN_FIRST: usize = 6;
const SHOWN_LAST: usize = 4;
const MASK: char = '*';

/// Why card input was refused. Messages read after a field name
/// (`card_info.number: is not a valid card number`) and never contain any
/// part of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// The number has a character other than an ASCII digit (spaces and
    /// dashes included).
    #[error("must contain only digits, without spaces or dashes")]
    NotDigits,
    /// The number has fewer than 12 or more than 19 digits.
    #[error("must have {MIN_DIGITS} to {MAX_DIGITS} digits, has {digits}")]
    WrongLength { digits: usize },
    /// The number fails the Luhn checksum (a typo).
    #[error("is not a valid card number (Luhn check failed)")]
    LuhnCheckFailed,
    /// The expiration month is not 1–12.
    #[error("must be a month from 1 to 12")]
    MonthOutOfRange,
    /// The expiration year is not a full 4-digit year (`25` instead of `2025`).
    #[error("must be a full 4-digit year, e.g. 2030")]
    YearNotFourDigits,
    /// The card expired before the current month.
    #[error("the card has expired")]
    Expired,
    /// The CVC is not 3 or 4 digits.
    #[error("must be 3 or 4 digits")]
    CvcInvalid,
}

/// Stored card data ([`MaskedCardNumber`], [`Fingerprint`]) that does not
/// have the shape it must have: a corrupt or forged record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}")]
pub struct MalformedCardData {
    what: &'static str,
}

// ---------------------------------------------------------------------------
// Brand
// ---------------------------------------------------------------------------

/// The card scheme, recognised from the number's first digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardBrand {
    Visa,
    Mastercard,
    AmericanExpress,
    Discover,
    DinersClub,
    Jcb,
    Maestro,
    Unionpay,
    Unknown,
}

/// `(digits, low, high, brand)`: a number whose first `digits` digits, read
/// as an integer, lie in `low..=high` is of `brand`. The first matching row
/// wins, and the only overlap is deliberate: Discover's 622126–622925 lies
/// inside UnionPay's 62, and Discover is listed first (those co-branded cards
/// are routed as Discover), so UnionPay gets the rest of 62. A unit test
/// proves there is no other overlap. Every row needs at most 6 digits, so the
/// brand of a masked number (which shows 6) is the brand of the number.
const BRAND_RANGES: &[(usize, u32, u32, CardBrand)] = &[
    (1, 4, 4, CardBrand::Visa),
    (2, 51, 55, CardBrand::Mastercard),
    (4, 2221, 2720, CardBrand::Mastercard),
    (2, 34, 34, CardBrand::AmericanExpress),
    (2, 37, 37, CardBrand::AmericanExpress),
    (4, 6011, 6011, CardBrand::Discover),
    (3, 644, 649, CardBrand::Discover),
    (2, 65, 65, CardBrand::Discover),
    (6, 622126, 622925, CardBrand::Discover),
    (3, 300, 305, CardBrand::DinersClub),
    (4, 3095, 3095, CardBrand::DinersClub),
    (2, 36, 36, CardBrand::DinersClub),
    (2, 38, 39, CardBrand::DinersClub),
    (4, 3528, 3589, CardBrand::Jcb),
    (2, 50, 50, CardBrand::Maestro),
    (2, 56, 58, CardBrand::Maestro),
    (4, 6304, 6304, CardBrand::Maestro),
    (4, 6759, 6759, CardBrand::Maestro),
    (4, 6761, 6763, CardBrand::Maestro),
    (6, 676770, 676770, CardBrand::Maestro),
    (6, 676774, 676774, CardBrand::Maestro),
    (2, 62, 62, CardBrand::Unionpay),
    (2, 81, 81, CardBrand::Unionpay),
];

impl CardBrand {
    pub const ALL: [Self; 9] = [
        Self::Visa,
        Self::Mastercard,
        Self::AmericanExpress,
        Self::Discover,
        Self::DinersClub,
        Self::Jcb,
        Self::Maestro,
        Self::Unionpay,
        Self::Unknown,
    ];

    /// The API's name of the brand (`american_express`, `diners_club`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::AmericanExpress => "american_express",
            Self::Discover => "discover",
            Self::DinersClub => "diners_club",
            Self::Jcb => "jcb",
            Self::Maestro => "maestro",
            Self::Unionpay => "unionpay",
            Self::Unknown => "unknown",
        }
    }

    /// The brand with the API name `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|brand| brand.as_str() == name)
    }

    /// The brand of a number starting with `digits` (at least the first 6
    /// digits of it for a certain answer; see the precedence above
    /// `BRAND_RANGES`). Anything unrecognised is [`CardBrand::Unknown`].
    pub fn of_prefix(digits: &str) -> Self {
        let bytes = digits.as_bytes();
        let leading = |count: usize| -> Option<u32> {
            let head = bytes.get(..count)?;
            head.iter().try_fold(0u32, |value, &b| {
                b.is_ascii_digit().then(|| value * 10 + u32::from(b - b'0'))
            })
        };
        BRAND_RANGES
            .iter()
            .find(|(count, low, high, _)| {
                leading(*count).is_some_and(|value| (*low..=*high).contains(&value))
            })
            .map_or(Self::Unknown, |&(_, _, _, brand)| brand)
    }
}

impl fmt::Display for CardBrand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Number
// ---------------------------------------------------------------------------

/// Whether `digits` (ASCII digits) pass the Luhn checksum.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &b)| {
            let digit = u32::from(b - b'0');
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A full card number (PAN): 12–19 ASCII digits, Luhn-valid.
///
/// Deliberately not `Serialize`/`Deserialize`: it cannot enter an event,
/// snapshot or response. `Debug` and `Display` show the masked form
/// (`411436******6785`); the full digits come out only through
/// [`CardNumber::digits`].
///
/// ```compile_fail
/// fn serializable<T: serde::Serialize>() {}
/// serializable::<paycore_domain::card::CardNumber>();
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CardNumber(String);

impl CardNumber {
    /// Parses a card number. Only ASCII digits are accepted: spaces, dashes
    /// and any other separator are rejected ([`CardError::NotDigits`]),
    /// never stripped. Then the length (12–19) and the Luhn check.
    pub fn parse(text: &str) -> Result<Self, CardError> {
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::NotDigits);
        }
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&text.len()) {
            return Err(CardError::WrongLength { digits: text.len() });
        }
        if !luhn_valid(text.as_bytes()) {
            return Err(CardError::LuhnCheckFailed);
        }
        Ok(Self(text.to_owned()))
    }

    /// The brand, from the number's first digits.
    pub fn brand(&self) -> CardBrand {
        CardBrand::of_prefix(&self.0)
    }

    /// The first 6 and last 4 digits with a `*` for every other digit.
    pub fn masked(&self) -> MaskedCardNumber {
        let hidden = self.0.len() - SHOWN_FIRST - SHOWN_LAST;
        let mut masked = String::with_capacity(self.0.len());
        masked.push_str(&self.0[..SHOWN_FIRST]);
        masked.extend(std::iter::repeat_n(MASK, hidden));
        masked.push_str(&self.0[self.0.len() - SHOWN_LAST..]);
        MaskedCardNumber(masked)
    }

    /// The last 4 digits (shown to people: "card ending in 6785").
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - SHOWN_LAST..]
    }

    /// **The full card number.** Only for the path that encrypts it for
    /// storage outside the event log, and for the card network. Never put
    /// the result in an event, a response, an error or a log line.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// This number's fingerprint under a project's key; see [`fingerprint`].
    pub fn fingerprint(&self, key: &[u8; 32]) -> Fingerprint {
        fingerprint(self, key)
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

/// The masked form: `411436******6785`.
impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.masked(), f)
    }
}

/// A card number as it may be stored and shown: the first 6 and last 4
/// digits, every other digit replaced by `*` (`411436******6785`), as many
/// characters as the number has digits.
///
/// Built by [`CardNumber::masked`]; parsing and deserializing check the shape,
/// so a value of this type never holds a full number, whatever its source.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MaskedCardNumber(String);

impl MaskedCardNumber {
    /// Accepts `dddddd*…*dddd`: 12–19 characters, 6 digits, at least two
    /// `*`, 4 digits.
    pub fn parse(text: &str) -> Result<Self, MalformedCardData> {
        let bytes = text.as_bytes();
        let shaped = (MIN_DIGITS..=MAX_DIGITS).contains(&bytes.len())
            && bytes[..SHOWN_FIRST].iter().all(u8::is_ascii_digit)
            && bytes[SHOWN_FIRST..bytes.len() - SHOWN_LAST]
                .iter()
                .all(|&b| b == MASK as u8)
            && bytes[bytes.len() - SHOWN_LAST..].iter().all(u8::is_ascii_digit);
        if shaped {
            Ok(Self(text.to_owned()))
        } else {
            Err(MalformedCardData {
                what: "masked card number",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 6 digits (the issuer identification number).
    pub fn first6(&self) -> &str {
        &self.0[..SHOWN_FIRST]
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - SHOWN_LAST..]
    }

    /// The brand, from the 6 digits shown (the same as the full number's).
    pub fn brand(&self) -> CardBrand {
        CardBrand::of_prefix(self.first6())
    }
}

impl TryFrom<String> for MaskedCardNumber {
    type Error = MalformedCardData;

    fn try_from(text: String) -> Result<Self, MalformedCardData> {
        Self::parse(&text)
    }
}

impl From<MaskedCardNumber> for String {
    fn from(masked: MaskedCardNumber) -> String {
        masked.0
    }
}

impl fmt::Display for MaskedCardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MaskedCardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------

/// A calendar month in UTC: "now", as far as card expiry is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    pub year: u16,
    pub month: u8,
}

impl YearMonth {
    pub const fn new(year: u16, month: u8) -> Self {
        Self { year, month }
    }

    /// The UTC month `at` falls in (years outside 0–65535 saturate).
    pub fn of(at: Timestamp) -> Self {
        const MICROS_PER_DAY: i64 = 86_400_000_000;
        // Howard Hinnant's `civil_from_days`, on the proleptic Gregorian calendar.
        let days = at.micros().div_euclid(MICROS_PER_DAY);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153; // March = 0
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Self {
            year: u16::try_from(year.max(0)).unwrap_or(u16::MAX),
            month: u8::try_from(month).unwrap_or(1),
        }
    }
}

/// A card's expiry month. A card is valid through the last day of it.
///
/// Built by [`Expiry::new`], which refuses a date in the past; deserializing
/// (replaying the log) takes what was valid when it was recorded. Check
/// [`Expiry::is_expired_at`] again before charging a stored card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Expiry {
    month: u8,
    year: u16,
}

impl Expiry {
    /// Validates an expiry given the current UTC year and month (passed in,
    /// never read from a clock): month 1–12, year 1000–9999, and not before
    /// `now_year`/`now_month` (the current month itself is still valid).
    pub fn new(month: u8, year: u16, now_year: u16, now_month: u8) -> Result<Self, CardError> {
        if !(1..=12).contains(&month) {
            return Err(CardError::MonthOutOfRange);
        }
        if !(1000..=9999).contains(&year) {
            return Err(CardError::YearNotFourDigits);
        }
        let expiry = Self { month, year };
        if expiry.is_expired_at(YearMonth::new(now_year, now_month)) {
            return Err(CardError::Expired);
        }
        Ok(expiry)
    }

    /// 1–12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// Four digits.
    pub fn year(self) -> u16 {
        self.year
    }

    /// Whether the card can no longer be used in the month `now`.
    pub fn is_expired_at(self, now: YearMonth) -> bool {
        (self.year, self.month) < (now.year, now.month)
    }
}

/// `12/2023`.
impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}/{}", self.month, self.year)
    }
}

// ---------------------------------------------------------------------------
// CVC
// ---------------------------------------------------------------------------

/// A card verification code: 3 or 4 ASCII digits, for every brand.
///
/// Never stored, never logged: not `Serialize`, and `Debug` prints `Cvc(***)`.
/// It lives only as long as the request that carried it.
///
/// ```compile_fail
/// fn serializable<T: serde::Serialize>() {}
/// serializable::<paycore_domain::card::Cvc>();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Cvc(String);

impl Cvc {
    /// Accepts 3 or 4 ASCII digits and nothing else.
    pub fn parse(text: &str) -> Result<Self, CardError> {
        if (3..=4).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(CardError::CvcInvalid)
        }
    }

    /// **The CVC itself**, only to hand to the card network in memory.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cvc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cvc(***)")
    }
}

// ---------------------------------------------------------------------------
// Fingerprint
// ---------------------------------------------------------------------------

const FINGERPRINT_LEN: usize = 16;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Domain separation for [`fingerprint_key`]: a server secret used for
/// something else yields unrelated keys.
const FINGERPRINT_KEY_CONTEXT: &[u8] = b"paycore/card-fingerprint/v1\0";

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts a key of any length (RFC 2104 hashes or pads it); the
    // error case of `new_from_slice` exists only for fixed-key MACs.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The fingerprint key of one project: HMAC-SHA256 under the server's
/// fingerprint secret of a fixed context string and the project's UUID. The
/// same secret and project always give the same key (fingerprints survive a
/// restart and a rebuild); different projects get unrelated keys.
pub fn fingerprint_key(server_secret: &[u8], project: ProjectId) -> [u8; 32] {
    hmac_sha256(
        server_secret,
        &[FINGERPRINT_KEY_CONTEXT, project.uuid().as_bytes()],
    )
}

/// The keyed fingerprint of a card number: HMAC-SHA256(`key`, digits), its
/// first 16 bytes as a big-endian integer written in 16 base62 digits (about
/// 95 bits). `key` is the project's key ([`fingerprint_key`]).
pub fn fingerprint(number: &CardNumber, key: &[u8; 32]) -> Fingerprint {
    let mac = hmac_sha256(key, &[number.digits().as_bytes()]);
    let mut head = [0u8; 16];
    head.copy_from_slice(&mac[..16]);
    let mut value = u128::from_be_bytes(head);
    let mut text = [0u8; FINGERPRINT_LEN];
    for slot in text.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    Fingerprint(text)
}

/// A keyed hash of a card number, 16 characters of `[0-9A-Za-z]`
/// (`yFe94Qso636auIaB`): equal for equal numbers within a project, different
/// across projects. Built by [`fingerprint`]. Serializes as its text:
///
/// ```
/// fn serializable<T: serde::Serialize>() {}
/// serializable::<paycore_domain::card::Fingerprint>();
/// serializable::<paycore_domain::card::CardInfo>();
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// Accepts 16 base62 characters (for lookups by fingerprint).
    pub fn parse(text: &str) -> Result<Self, MalformedCardData> {
        let bytes: [u8; FINGERPRINT_LEN] = text
            .as_bytes()
            .try_into()
            .map_err(|_| MalformedCardData { what: "fingerprint" })?;
        if bytes.iter().all(u8::is_ascii_alphanumeric) {
            Ok(Self(bytes))
        } else {
            Err(MalformedCardData { what: "fingerprint" })
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = MalformedCardData;

    fn try_from(text: String) -> Result<Self, MalformedCardData> {
        Self::parse(&text)
    }
}

impl From<Fingerprint> for String {
    fn from(fingerprint: Fingerprint) -> String {
        fingerprint.as_str().to_owned()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Card info and request validation
// ---------------------------------------------------------------------------

/// What events, read models and responses carry about a card: the masked
/// number, brand, expiry and fingerprint. Never the full number or the CVC.
///
/// Built only from a [`CardNumber`] ([`CardInfo::new`]), by masking it; the
/// brand is decided then and kept (a later change of the brand table does not
/// rewrite history).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CardInfo {
    number: MaskedCardNumber,
    brand: CardBrand,
    expiry: Expiry,
    fingerprint: Fingerprint,
}

impl CardInfo {
    /// The card info of `number`, fingerprinted with the project's key.
    pub fn new(number: &CardNumber, expiry: Expiry, fingerprint_key: &[u8; 32]) -> Self {
        Self {
            number: number.masked(),
            brand: number.brand(),
            expiry,
            fingerprint: number.fingerprint(fingerprint_key),
        }
    }

    /// `411436******6785`.
    pub fn number(&self) -> &MaskedCardNumber {
        &self.number
    }

    pub fn brand(&self) -> CardBrand {
        self.brand
    }

    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

/// `visa 411436******6785 12/2023`.
impl fmt::Display for CardInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.brand, self.number, self.expiry)
    }
}

/// A card-info request that passed every check. Its `Debug` is safe (masked
/// number, hidden CVC); it is not serializable. Turn it into what may be
/// stored with [`ValidatedCard::info`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedCard {
    pub number: CardNumber,
    pub expiry: Expiry,
    pub cvc: Cvc,
}

impl ValidatedCard {
    /// The storable part, fingerprinted with the project's key.
    pub fn info(&self, fingerprint_key: &[u8; 32]) -> CardInfo {
        CardInfo::new(&self.number, self.expiry, fingerprint_key)
    }
}

/// Validates a card-info request (`CardInfoRequest` of the API), reporting
/// every bad field at once under `field` — `"card_info"` gives
/// `card_info.number`, `card_info.expiration_month`,
/// `card_info.expiration_year` and `card_info.cvc`. An expired card is
/// reported on the year when the year is past, else on the month. The
/// descriptions are [`CardError`] messages and never echo the input.
///
/// Month and year come as `i64` so that any integer the transport carries
/// (`int32`, `uint32`) is judged without truncation.
pub fn validate_card_info(
    number: &str,
    expiration_month: i64,
    expiration_year: i64,
    cvc: &str,
    today: YearMonth,
    field: &str,
    violations: &mut Violations,
) -> Option<ValidatedCard> {
    let number_field = format!("{field}.number");
    let month_field = format!("{field}.expiration_month");
    let year_field = format!("{field}.expiration_year");
    let cvc_field = format!("{field}.cvc");

    let number = violations.check(&number_field, CardNumber::parse(number));
    let month = violations.check(
        &month_field,
        u8::try_from(expiration_month)
            .ok()
            .filter(|month| (1..=12).contains(month))
            .ok_or(CardError::MonthOutOfRange),
    );
    let year = violations.check(
        &year_field,
        u16::try_from(expiration_year)
            .ok()
            .filter(|year| (1000..=9999).contains(year))
            .ok_or(CardError::YearNotFourDigits),
    );
    let expiry = match (month, year) {
        (Some(month), Some(year)) => match Expiry::new(month, year, today.year, today.month) {
            Ok(expiry) => Some(expiry),
            Err(error) => {
                let blame = if year < today.year {
                    &year_field
                } else {
                    &month_field
                };
                violations.add(blame.as_str(), error.to_string());
                None
            }
        },
        _ => None,
    };
    let cvc = violations.check(&cvc_field, Cvc::parse(cvc));
    Some(ValidatedCard {
        number: number?,
        expiry: expiry?,
        cvc: cvc?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The brand table has exactly one overlap, the documented one.
    #[test]
    fn brand_ranges_overlap_only_where_documented() {
        let mut text = String::with_capacity(6);
        for prefix in 0u32..1_000_000 {
            text.clear();
            fmt::Write::write_fmt(&mut text, format_args!("{prefix:06}")).expect("write to a String");
            let matching: Vec<CardBrand> = BRAND_RANGES
                .iter()
                .filter(|(count, low, high, _)| {
                    let leading = prefix / 10u32.pow(6 - *count as u32);
                    (*low..=*high).contains(&leading)
                })
                .map(|&(_, _, _, brand)| brand)
                .collect();
            if (622_126..=622_925).contains(&prefix) {
                assert_eq!(matching, [CardBrand::Discover, CardBrand::Unionpay], "{text}");
                assert_eq!(CardBrand::of_prefix(&text), CardBrand::Discover);
            } else {
                assert!(matching.len() <= 1, "{text}: {matching:?}");
                assert_eq!(
                    CardBrand::of_prefix(&text),
                    matching.first().copied().unwrap_or(CardBrand::Unknown),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn luhn_matches_the_textbook_examples() {
        assert!(luhn_valid(b"79927398713"));
        for wrong in [b"79927398710", b"79927398711", b"79927398712", b"79927398714"] {
            assert!(!luhn_valid(wrong));
        }
    }

    #[test]
    fn year_month_of_timestamps() {
        let at = |seconds: i64| YearMonth::of(Timestamp::from_micros(seconds * 1_000_000));
        assert_eq!(at(0), YearMonth::new(1970, 1));
        assert_eq!(at(-1), YearMonth::new(1969, 12));
        // 2024-02-29T23:59:59Z and one second later.
        assert_eq!(at(1_709_251_199), YearMonth::new(2024, 2));
        assert_eq!(at(1_709_251_200), YearMonth::new(2024, 3));
        // 2025-12-31T23:59:59Z and one second later.
        assert_eq!(at(1_767_225_599), YearMonth::new(2025, 12));
        assert_eq!(at(1_767_225_600), YearMonth::new(2026, 1));
        assert_eq!(YearMonth::of(Timestamp::from_micros(i64::MIN)).year, 0);
        assert_eq!(YearMonth::of(Timestamp::from_micros(i64::MAX)).year, u16::MAX);
    }
}
