//! Small validated value types of the connector's own: currency and country
//! codes, amounts in minor units, and the opaque identifiers a bank hands
//! out. Dates and times are the `time` crate's (`Date`, `OffsetDateTime`).

use std::fmt;
use std::str::FromStr;

use crate::error::ConnectorError;

/// An ISO 4217 currency code: three ASCII capital letters (`EUR`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CurrencyCode([u8; 3]);

impl CurrencyCode {
    /// A code known at compile time; panics in const evaluation if invalid.
    pub const fn from_static(code: &'static str) -> Self {
        let bytes = code.as_bytes();
        assert!(bytes.len() == 3, "a currency code has three letters");
        let mut i = 0;
        while i < 3 {
            assert!(bytes[i].is_ascii_uppercase(), "a currency code is A-Z");
            i += 1;
        }
        Self([bytes[0], bytes[1], bytes[2]])
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII capitals are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl FromStr for CurrencyCode {
    type Err = ConnectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(ConnectorError::InvalidRequest(format!(
                "currency {s:?} is not three capital letters"
            ))),
        }
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ISO 3166-1 alpha-2 country code: two ASCII capital letters (`DE`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// A code known at compile time; panics in const evaluation if invalid.
    pub const fn from_static(code: &'static str) -> Self {
        let bytes = code.as_bytes();
        assert!(bytes.len() == 2, "a country code has two letters");
        assert!(bytes[0].is_ascii_uppercase() && bytes[1].is_ascii_uppercase());
        Self([bytes[0], bytes[1]])
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XX")
    }
}

impl FromStr for CountryCode {
    type Err = ConnectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Ok(Self([*a, *b])),
            _ => Err(ConnectorError::InvalidRequest(format!(
                "country {s:?} is not two capital letters"
            ))),
        }
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signed amount in the currency's minor units (cents): `-1250 EUR` is
/// €12.50 out of the account, `+1250` into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Amount {
    pub minor: i64,
    pub currency: CurrencyCode,
}

impl Amount {
    pub const fn new(minor: i64, currency: CurrencyCode) -> Self {
        Self { minor, currency }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_id!(
    /// The connector's identifier of an institution (`sandbox_de_rheinbank`).
    InstitutionId
);
opaque_id!(
    /// The bank's own identifier of an account (Berlin Group `resourceId`),
    /// stable across syncs.
    AccountId
);
opaque_id!(
    /// The bank's own identifier of a credit card, stable across syncs.
    CardId
);
opaque_id!(
    /// The bank's own identifier of an owner, stable across syncs.
    OwnerId
);
opaque_id!(
    /// The bank's own identifier of a transaction (Berlin Group
    /// `transactionId`): the same while it is pending and once booked.
    BankTransactionId
);
opaque_id!(
    /// An opaque position in a list of transactions, handed back to get the
    /// next page.
    Cursor
);
