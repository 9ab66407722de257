//! The sandbox's sessions, challenges, redirect states, consents and
//! cursors are self-describing strings, not entries in a table: the sandbox
//! keeps no state, so it answers the same after a restart (an import
//! resumed after kill -9 goes on with the tokens it had). They are no
//! secret; real banks' tokens are opaque to the server all the same.
//!
//! `sbx1.<kind>.<user>.<institution>.<issued at, Unix seconds>[.<more>…]`

use time::OffsetDateTime;

use super::catalog::{SandboxInstitution, TestUser, sandbox_institution, test_user};
use crate::error::ConnectorError;

const PREFIX: &str = "sbx1";

#[derive(Debug)]
pub struct Token<'a> {
    pub user: &'static TestUser,
    pub institution: &'static SandboxInstitution,
    pub issued: OffsetDateTime,
    pub rest: Vec<&'a str>,
}

pub fn encode(
    kind: &str,
    user: &TestUser,
    institution: &SandboxInstitution,
    issued: OffsetDateTime,
    rest: &[impl AsRef<str>],
) -> String {
    let mut token = format!(
        "{PREFIX}.{kind}.{}.{}.{}",
        user.username,
        institution.id,
        issued.unix_timestamp()
    );
    for part in rest {
        token.push('.');
        token.push_str(part.as_ref());
    }
    token
}

pub fn decode<'a>(token: &'a str, kind: &str, what: &'static str) -> Result<Token<'a>, ConnectorError> {
    let invalid = || ConnectorError::InvalidToken { what };
    let mut parts = token.split('.');
    if parts.next() != Some(PREFIX) || parts.next() != Some(kind) {
        return Err(invalid());
    }
    let user = parts.next().and_then(test_user).ok_or_else(invalid)?;
    let institution = parts.next().and_then(sandbox_institution).ok_or_else(invalid)?;
    let issued = parts
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(invalid)?;
    Ok(Token {
        user,
        institution,
        issued,
        rest: parts.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::catalog::{INSTITUTIONS, TEST_USERS};
    use time::macros::datetime;

    #[test]
    fn round_trip_and_refusals() {
        let at = datetime!(2026-12-06 10:00 UTC);
        let token = encode("session", &TEST_USERS[0], &INSTITUTIONS[1], at, &["x"]);
        let decoded = decode(&token, "session", "session").unwrap();
        assert_eq!(decoded.user.username, "user_good");
        assert_eq!(decoded.institution.id, INSTITUTIONS[1].id);
        assert_eq!(decoded.issued, at);
        assert_eq!(decoded.rest, vec!["x"]);
        for bad in [
            "",
            "sbx1",
            "sbx1.otp.user_good.sandbox_de_rheinbank.1",
            "sbx1.session.nobody.sandbox_de_rheinbank.1",
            "sbx1.session.user_good.nowhere.1",
            "sbx1.session.user_good.sandbox_de_rheinbank.soon",
            "sbx2.session.user_good.sandbox_de_rheinbank.1",
        ] {
            assert!(decode(bad, "session", "session").is_err(), "{bad}");
        }
    }
}
