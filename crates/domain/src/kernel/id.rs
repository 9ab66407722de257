//! Typed identifiers: a resource prefix plus a UUID v7 in lowercase Crockford
//! base32, e.g. `acc_01jd5k8y3q4vbb1c6w7e8f9g0h`.
//!
//! UUID v7 starts with a millisecond timestamp and the encoding preserves byte
//! order, so IDs of one kind sort by creation time. The domain never creates
//! a UUID itself (no clock, no randomness here): callers pass one in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Crockford's base32 alphabet, lowercase. Ascending in ASCII, so encoded IDs
/// sort like the bytes they encode.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// 128 bits in 5-bit digits.
const ENCODED_LEN: usize = 26;

/// Why a string is not an ID of the expected kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected an ID starting with `{expected}_`")]
    WrongPrefix { expected: &'static str },
    #[error("malformed ID: expected `{expected}_` followed by 26 base32 characters")]
    Malformed { expected: &'static str },
}

fn encode(uuid: Uuid) -> [u8; ENCODED_LEN] {
    let mut value = uuid.as_u128();
    let mut out = [b'0'; ENCODED_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 0x1f) as usize];
        value >>= 5;
    }
    out
}

fn decode_digit(byte: u8) -> Option<u128> {
    ALPHABET
        .iter()
        .position(|&c| c == byte)
        .map(|digit| digit as u128)
}

fn decode(text: &str) -> Option<Uuid> {
    let bytes = text.as_bytes();
    // 26 digits hold 130 bits; the first digit may only carry the top 3 bits.
    if bytes.len() != ENCODED_LEN || decode_digit(bytes[0])? > 7 {
        return None;
    }
    let mut value: u128 = 0;
    for &byte in bytes {
        value = (value << 5) | decode_digit(byte)?;
    }
    Some(Uuid::from_u128(value))
}

/// Parses `<prefix>_<26 base32>` into its UUID.
pub(crate) fn parse_prefixed(text: &str, prefix: &'static str) -> Result<Uuid, IdError> {
    let Some((found, body)) = text.split_once('_') else {
        return Err(IdError::Malformed { expected: prefix });
    };
    if found != prefix {
        return Err(IdError::WrongPrefix { expected: prefix });
    }
    decode(body).ok_or(IdError::Malformed { expected: prefix })
}

pub(crate) fn write_prefixed(f: &mut fmt::Formatter<'_>, prefix: &str, uuid: Uuid) -> fmt::Result {
    let encoded = encode(uuid);
    f.write_str(prefix)?;
    f.write_str("_")?;
    // The alphabet is ASCII, so this cannot fail.
    f.write_str(std::str::from_utf8(&encoded).map_err(|_| fmt::Error)?)
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_prefixed(f, $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                parse_prefixed(text, $prefix).map(Self)
            }
        }
    };
}

typed_id!(/// A project: the owner of everything else.
    ProjectId, "prj");
typed_id!(/// An API key of a project.
    ApiKeyId, "key");
typed_id!(/// A customer of a project.
    CustomerId, "cus");
typed_id!(/// An account holding funds in one currency.
    AccountId, "acc");
typed_id!(/// One balance change of one account.
    TransactionId, "tx");
typed_id!(/// A transfer between two accounts.
    TransferId, "trf");
typed_id!(/// An uploaded file (identity documents).
    FileId, "file");
typed_id!(/// Card data uploaded once (single use, expires after 10 minutes).
    CardTokenId, "crdt");
typed_id!(/// A card stored for later payins.
    CardId, "crd");
typed_id!(/// A charge on a card, into an account.
    CardPayinId, "cpi");
typed_id!(/// A refund of a settled card payin.
    CardPayinRefundId, "cpr");
typed_id!(/// A bank account outside paycore (an IBAN and its holder).
    BankAccountId, "ba");
typed_id!(/// A bank transfer out of an account to an IBAN.
    BankPayoutId, "bpo");
typed_id!(/// A reference code that routes incoming bank transfers to an account.
    BankPayinReferenceId, "bpir");
typed_id!(/// An incoming bank transfer credited to an account.
    BankPayinId, "bpi");
typed_id!(/// A customer's connection to an institution (open banking, account information).
    AggregationConnectionId, "conn");
typed_id!(/// One import job of a connection's data.
    AggregationImportId, "imp");
typed_id!(/// An account at another bank, found through a connection.
    AggregatedAccountId, "aacc");
typed_id!(/// A transaction of an aggregated account: derived from the account and the
    /// bank's own transaction ID (a UUID v8), so it is the same at every sync.
    AggregatedTransactionId, "atx");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_with_prefix_and_parses_back() {
        let id = AccountId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001));
        let text = id.to_string();
        assert!(text.starts_with("acc_"));
        assert_eq!(text.len(), 4 + ENCODED_LEN);
        assert_eq!(text.parse::<AccountId>(), Ok(id));
    }

    #[test]
    fn rejects_wrong_prefix_and_garbage() {
        let id = AccountId::from_uuid(Uuid::from_u128(42)).to_string();
        assert_eq!(
            id.replacen("acc", "cus", 1).parse::<AccountId>(),
            Err(IdError::WrongPrefix { expected: "acc" })
        );
        for bad in [
            "",
            "acc",
            "acc_",
            "acc_zzz",
            "acc_01jd5k8y3q4vbb1c6w7e8f9g0u",
            "acc_81jd5k8y3q4vbb1c6w7e8f9g0h",
        ] {
            assert_eq!(
                bad.parse::<AccountId>(),
                Err(IdError::Malformed { expected: "acc" }),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trips_and_preserves_order(a: u128, b: u128) {
            let (ia, ib) = (TransferId::from_uuid(Uuid::from_u128(a)), TransferId::from_uuid(Uuid::from_u128(b)));
            prop_assert_eq!(ia.to_string().parse::<TransferId>(), Ok(ia));
            prop_assert_eq!(a.cmp(&b), ia.to_string().cmp(&ib.to_string()));
        }
    }
}
