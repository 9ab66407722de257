//! Customer identity (KYC fields) and its validation.

use serde::{Deserialize, Serialize};

use crate::kernel::error::Violations;
use crate::kernel::id::FileId;

/// A calendar date (document expiry): the kernel's.
pub use crate::kernel::date::Date;

/// ISO 3166-1 alpha-2 codes.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL \
BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM \
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC \
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE \
NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD \
SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA \
UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Whether `code` is an ISO 3166-1 alpha-2 country code (uppercase).
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && COUNTRIES.split_ascii_whitespace().any(|known| known == code)
}

/// Whether `number` is in E.164 form: `+`, a non-zero digit, at most 15 digits.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmploymentStatus {
    Student,
    Employed,
    SelfEmployed,
    Searching,
    NotEmployed,
}

impl EmploymentStatus {
    pub const ALL: [Self; 5] = [
        Self::Student,
        Self::Employed,
        Self::SelfEmployed,
        Self::Searching,
        Self::NotEmployed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Student => "student",
            Self::Employed => "employed",
            Self::SelfEmployed => "self_employed",
            Self::Searching => "searching",
            Self::NotEmployed => "not_employed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocumentType {
    NationalId,
    Passport,
}

impl DocumentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NationalId => "national_id",
            Self::Passport => "passport",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line_1: String,
    pub line_2: String,
    pub postal_code: String,
    pub city: String,
    pub region: String,
    pub country: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityDocument {
    pub document_type: DocumentType,
    pub country: String,
    pub number: String,
    pub expiration_date: Option<Date>,
    pub front_file_id: Option<FileId>,
    pub back_file_id: Option<FileId>,
    pub selfie_file_id: Option<FileId>,
}

impl IdentityDocument {
    /// The uploaded files this document refers to, front, back, selfie.
    pub fn file_ids(&self) -> impl Iterator<Item = FileId> + '_ {
        [self.front_file_id, self.back_file_id, self.selfie_file_id]
            .into_iter()
            .flatten()
    }
}

/// Who a customer is. Every field but the names is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub first_name: String,
    pub last_name: String,
    pub email_address: Option<String>,
    pub phone_number: Option<String>,
    pub nationality: Option<String>,
    pub employment_status: Option<EmploymentStatus>,
    pub address: Option<Address>,
    pub document: Option<IdentityDocument>,
}

const MAX_TEXT_CHARS: usize = 200;

fn check_text(violations: &mut Violations, field: &str, text: &str, required: bool) {
    if required && text.trim().is_empty() {
        violations.add(field, "is required");
    } else if text.chars().count() > MAX_TEXT_CHARS {
        violations.add(field, format!("longer than {MAX_TEXT_CHARS} characters"));
    }
}

fn check_country(violations: &mut Violations, field: &str, code: &str) {
    if !is_country_code(code) {
        violations.add(field, "must be an ISO 3166-1 alpha-2 country code, e.g. ES");
    }
}

/// A plausible address: one `@`, non-empty local part, a dot in the domain,
/// no whitespace. Deliverability is not the API's business.
fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !text.chars().any(char::is_whitespace)
        && text.len() <= 254
}

impl Identity {
    /// Reports every invalid field under `field` (e.g. `identity.nationality`).
    pub fn validate(&self, field: &str, violations: &mut Violations) {
        check_text(violations, &format!("{field}.first_name"), &self.first_name, true);
        check_text(violations, &format!("{field}.last_name"), &self.last_name, true);
        if let Some(email) = &self.email_address
            && !is_email(email)
        {
            violations.add(format!("{field}.email_address"), "is not an email address");
        }
        if let Some(phone) = &self.phone_number
            && !is_e164(phone)
        {
            violations.add(
                format!("{field}.phone_number"),
                "must be in E.164 format, e.g. +34600111222",
            );
        }
        if let Some(nationality) = &self.nationality {
            check_country(violations, &format!("{field}.nationality"), nationality);
        }
        if let Some(address) = &self.address {
            let at = format!("{field}.address");
            check_text(violations, &format!("{at}.line_1"), &address.line_1, true);
            check_text(violations, &format!("{at}.line_2"), &address.line_2, false);
            check_text(
                violations,
                &format!("{at}.postal_code"),
                &address.postal_code,
                false,
            );
            check_text(violations, &format!("{at}.city"), &address.city, true);
            check_text(violations, &format!("{at}.region"), &address.region, false);
            check_country(violations, &format!("{at}.country"), &address.country);
        }
        if let Some(document) = &self.document {
            let at = format!("{field}.document");
            check_country(violations, &format!("{at}.country"), &document.country);
            check_text(violations, &format!("{at}.number"), &document.number, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_codes_and_formats() {
        assert!(is_country_code("ES") && is_country_code("US"));
        assert!(!is_country_code("es") && !is_country_code("XX") && !is_country_code("ESP"));
        assert!(is_e164("+34600111222"));
        for bad in ["34600111222", "+0123", "+1", "+1234567890123456", "+34 600"] {
            assert!(!is_e164(bad), "{bad}");
        }
        assert!(Date::new(2024, 2, 29).is_some() && Date::new(2023, 2, 29).is_none());
        assert!(Date::new(2024, 13, 1).is_none());
    }

    #[test]
    fn reports_every_bad_field() {
        let identity = Identity {
            first_name: "".into(),
            last_name: "McJohn".into(),
            email_address: Some("not-an-email".into()),
            phone_number: Some("600111222".into()),
            nationality: Some("XX".into()),
            ..Identity::default()
        };
        let mut violations = Violations::new();
        identity.validate("identity", &mut violations);
        let Err(crate::kernel::error::DomainError::Invalid(fields)) = violations.into_result() else {
            panic!("expected violations");
        };
        let names: Vec<_> = fields.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "identity.first_name",
                "identity.email_address",
                "identity.phone_number",
                "identity.nationality"
            ]
        );
    }
}
