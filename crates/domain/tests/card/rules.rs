//! Card rules: numbers (digits, length, Luhn), brands, masking, expiry, CVC,
//! fingerprints, the card-info request validator, and the promise that no
//! full number or CVC shows in any `Debug`, `Display`, error or encoding.

use paycore_domain::card::*;
use paycore_domain::{DomainError, FieldViolation, ProjectId, Violations};
use proptest::prelude::*;
use serde::Deserialize;
use uuid::Uuid;

const KEY_A: [u8; 32] = [0xa5; 32];
const KEY_B: [u8; 32] = [0x5a; 32];
const TODAY: YearMonth = YearMonth::new(2025, 6);

fn number(text: &str) -> CardNumber {
    CardNumber::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

/// The usual test numbers of the card schemes.
const KNOWN: &[(&str, CardBrand)] = &[
    ("4242424242424242", CardBrand::Visa),
    ("4000056655665556", CardBrand::Visa),
    ("4114360123456785", CardBrand::Visa),
    ("4222222222222", CardBrand::Visa),
    ("5555555555554444", CardBrand::Mastercard),
    ("2223003122003222", CardBrand::Mastercard),
    ("5105105105105100", CardBrand::Mastercard),
    ("378282246310005", CardBrand::AmericanExpress),
    ("371449635398431", CardBrand::AmericanExpress),
    ("6011111111111117", CardBrand::Discover),
    ("6011000990139424", CardBrand::Discover),
    ("3056930009020004", CardBrand::DinersClub),
    ("36227206271667", CardBrand::DinersClub),
    ("3566002020360505", CardBrand::Jcb),
    ("6200000000000005", CardBrand::Unionpay),
    ("6759649826438453", CardBrand::Maestro),
];

#[test]
fn known_test_numbers_parse_with_their_brand() {
    for &(text, brand) in KNOWN {
        let parsed = number(text);
        assert_eq!(parsed.brand(), brand, "{text}");
        assert_eq!(parsed.digits(), text);
        assert_eq!(
            parsed.masked().brand(),
            brand,
            "{text}: the masked number keeps the brand"
        );
    }
}

#[test]
fn brands_by_prefix_with_documented_precedence() {
    let cases: &[(&str, CardBrand)] = &[
        ("4", CardBrand::Visa),
        ("510000", CardBrand::Mastercard),
        ("559999", CardBrand::Mastercard),
        ("222100", CardBrand::Mastercard),
        ("272099", CardBrand::Mastercard),
        ("222099", CardBrand::Unknown),
        ("272100", CardBrand::Unknown),
        ("340000", CardBrand::AmericanExpress),
        ("370000", CardBrand::AmericanExpress),
        ("601100", CardBrand::Discover),
        ("644000", CardBrand::Discover),
        ("649999", CardBrand::Discover),
        ("650000", CardBrand::Discover),
        // Discover's range inside UnionPay's 62: Discover wins.
        ("622126", CardBrand::Discover),
        ("622925", CardBrand::Discover),
        ("622125", CardBrand::Unionpay),
        ("622926", CardBrand::Unionpay),
        ("620000", CardBrand::Unionpay),
        ("810000", CardBrand::Unionpay),
        ("300000", CardBrand::DinersClub),
        ("305999", CardBrand::DinersClub),
        ("309500", CardBrand::DinersClub),
        ("360000", CardBrand::DinersClub),
        ("380000", CardBrand::DinersClub),
        ("399999", CardBrand::DinersClub),
        ("306000", CardBrand::Unknown),
        ("352800", CardBrand::Jcb),
        ("358999", CardBrand::Jcb),
        ("352700", CardBrand::Unknown),
        ("359000", CardBrand::Unknown),
        ("501800", CardBrand::Maestro),
        ("560000", CardBrand::Maestro),
        ("589999", CardBrand::Maestro),
        ("630400", CardBrand::Maestro),
        ("675900", CardBrand::Maestro),
        ("676100", CardBrand::Maestro),
        ("676770", CardBrand::Maestro),
        ("676774", CardBrand::Maestro),
        ("676771", CardBrand::Unknown),
        ("601200", CardBrand::Unknown),
        ("100000", CardBrand::Unknown),
        ("990000", CardBrand::Unknown),
        ("", CardBrand::Unknown),
        ("62", CardBrand::Unionpay),
        ("x42424", CardBrand::Unknown),
    ];
    for &(prefix, brand) in cases {
        assert_eq!(CardBrand::of_prefix(prefix), brand, "{prefix:?}");
    }
}

#[test]
fn brand_names_match_the_api() {
    let names: Vec<&str> = CardBrand::ALL.iter().map(|brand| brand.as_str()).collect();
    assert_eq!(
        names,
        [
            "visa",
            "mastercard",
            "american_express",
            "discover",
            "diners_club",
            "jcb",
            "maestro",
            "unionpay",
            "unknown"
        ]
    );
    for brand in CardBrand::ALL {
        assert_eq!(CardBrand::from_name(brand.as_str()), Some(brand));
        assert_eq!(brand.to_string(), brand.as_str());
        // Serde uses the same names.
        let de = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(brand.as_str());
        assert_eq!(CardBrand::deserialize(de), Ok(brand));
    }
    assert_eq!(CardBrand::from_name("amex"), None);
    assert_eq!(CardBrand::from_name("Visa"), None);
}

#[test]
fn luhn_failures_are_refused() {
    for &(text, _) in KNOWN {
        let last = text.as_bytes()[text.len() - 1] - b'0';
        for wrong in (0..10).filter(|&d| d != last) {
            let bad = format!("{}{wrong}", &text[..text.len() - 1]);
            assert_eq!(CardNumber::parse(&bad), Err(CardError::LuhnCheckFailed), "{bad}");
        }
    }
    // Two adjacent digits swapped (most transpositions are caught).
    assert_eq!(
        CardNumber::parse("4242424242424224"),
        Err(CardError::LuhnCheckFailed)
    );
}

#[test]
fn only_ascii_digits_are_accepted() {
    for bad in [
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        " 4242424242424242",
        "4242424242424242 ",
        "4242424242424242\n",
        "+4242424242424242",
        "424242424242424a",
        "４２４２４２４２４２４２４２４２",
        "4242424242424242٣",
    ] {
        assert_eq!(CardNumber::parse(bad), Err(CardError::NotDigits), "{bad:?}");
    }
}

#[test]
fn lengths_from_12_to_19_digits() {
    assert_eq!(CardNumber::parse(""), Err(CardError::WrongLength { digits: 0 }));
    // Luhn-valid numbers of 11 and 20 digits are still refused for length.
    assert_eq!(
        CardNumber::parse("79927398713"),
        Err(CardError::WrongLength { digits: 11 })
    );
    assert_eq!(
        CardNumber::parse("42424242424242424242"),
        Err(CardError::WrongLength { digits: 20 })
    );
    assert_eq!(
        CardNumber::parse(&"4".repeat(200)),
        Err(CardError::WrongLength { digits: 200 })
    );
    let twelve = number("424242424242");
    assert_eq!(twelve.masked().as_str(), "424242**4242");
    let nineteen = number("4242424242424242428");
    assert_eq!(nineteen.masked().as_str(), "424242*********2428");
}

#[test]
fn masks_keep_first_6_and_last_4() {
    let cases = [
        ("4114360123456785", "411436******6785"),
        ("4242424242424242", "424242******4242"),
        ("378282246310005", "378282*****0005"),
        ("36227206271667", "362272****1667"),
        ("4222222222222", "422222***2222"),
    ];
    for (full, masked) in cases {
        let parsed = number(full);
        assert_eq!(parsed.masked().as_str(), masked);
        assert_eq!(parsed.to_string(), masked);
        assert_eq!(format!("{parsed:?}"), format!("CardNumber({masked})"));
        assert_eq!(parsed.masked().first6(), &full[..6]);
        assert_eq!(parsed.masked().last4(), &full[full.len() - 4..]);
        assert_eq!(parsed.last4(), &full[full.len() - 4..]);
        assert_eq!(MaskedCardNumber::parse(masked), Ok(parsed.masked()));
    }
}

#[test]
fn masked_numbers_must_hide_the_middle() {
    for bad in [
        "4242424242424242",
        "424242*****24242",
        "42424******42424",
        "424242******424",
        "424242*4242",
        "424242**********4242",
        "42424a******4242",
        "",
    ] {
        assert!(MaskedCardNumber::parse(bad).is_err(), "{bad:?}");
    }
    let error = MaskedCardNumber::parse("4242424242424242").expect_err("a full number is refused");
    assert_eq!(error.to_string(), "malformed masked card number");
}

#[test]
fn expiry_this_month_is_valid_last_month_is_not() {
    let expiry = Expiry::new(6, 2025, 2025, 6).expect("valid through the end of its month");
    assert_eq!((expiry.month(), expiry.year()), (6, 2025));
    assert_eq!(expiry.to_string(), "06/2025");
    assert_eq!(Expiry::new(5, 2025, 2025, 6), Err(CardError::Expired));
    assert_eq!(Expiry::new(12, 2024, 2025, 6), Err(CardError::Expired));
    assert!(Expiry::new(1, 2026, 2025, 6).is_ok());
    assert!(Expiry::new(12, 2099, 2025, 6).is_ok());
    // January: last month is December of last year.
    assert_eq!(Expiry::new(12, 2024, 2025, 1), Err(CardError::Expired));
    assert!(Expiry::new(1, 2025, 2025, 1).is_ok());

    assert!(!expiry.is_expired_at(YearMonth::new(2025, 6)));
    assert!(expiry.is_expired_at(YearMonth::new(2025, 7)));
    assert!(expiry.is_expired_at(YearMonth::new(2026, 1)));
    assert!(!expiry.is_expired_at(YearMonth::new(2024, 12)));
}

#[test]
fn expiry_month_and_year_ranges() {
    assert_eq!(Expiry::new(0, 2030, 2025, 6), Err(CardError::MonthOutOfRange));
    assert_eq!(Expiry::new(13, 2030, 2025, 6), Err(CardError::MonthOutOfRange));
    assert_eq!(Expiry::new(255, 2030, 2025, 6), Err(CardError::MonthOutOfRange));
    assert_eq!(Expiry::new(12, 99, 2025, 6), Err(CardError::YearNotFourDigits));
    assert_eq!(Expiry::new(12, 25, 2025, 6), Err(CardError::YearNotFourDigits));
    assert_eq!(Expiry::new(12, 999, 2025, 6), Err(CardError::YearNotFourDigits));
    assert_eq!(
        Expiry::new(12, 10_000, 2025, 6),
        Err(CardError::YearNotFourDigits)
    );
    assert!(Expiry::new(12, 9999, 2025, 6).is_ok());
    // Month is judged before year, year before expiry.
    assert_eq!(Expiry::new(0, 99, 2025, 6), Err(CardError::MonthOutOfRange));
    assert_eq!(Expiry::new(1, 1000, 2025, 6), Err(CardError::Expired));
}

#[test]
fn cvc_is_3_or_4_digits_for_every_brand() {
    for good in ["000", "123", "1234", "9999"] {
        let cvc = Cvc::parse(good).expect(good);
        assert_eq!(cvc.digits(), good);
        assert_eq!(format!("{cvc:?}"), "Cvc(***)");
    }
    for bad in [
        "",
        "1",
        "12",
        "12345",
        "12a",
        " 123",
        "123 ",
        "1 23",
        "１２３",
        "-12",
    ] {
        assert_eq!(Cvc::parse(bad), Err(CardError::CvcInvalid), "{bad:?}");
    }
}

#[test]
fn fingerprints_are_keyed_per_project() {
    let visa = number("4242424242424242");
    let same = number("4242424242424242");
    let other = number("4000056655665556");
    let a = fingerprint(&visa, &KEY_A);
    assert_eq!(a, fingerprint(&same, &KEY_A), "equal within a project");
    assert_eq!(a, visa.fingerprint(&KEY_A));
    assert_ne!(a, fingerprint(&visa, &KEY_B), "different across projects");
    assert_ne!(a, fingerprint(&other, &KEY_A), "different numbers");

    let text = a.as_str();
    assert_eq!(text.len(), 16);
    assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()), "{text}");
    assert_eq!(Fingerprint::parse(text), Ok(a));
    assert_eq!(a.to_string(), text);
    assert_eq!(format!("{a:?}"), format!("Fingerprint({text})"));
    for bad in [
        "",
        "yFe94Qso636auIa",
        "yFe94Qso636auIaBx",
        "yFe94Qso636auI-B",
        "yFe94Qso636auI_B",
    ] {
        assert!(Fingerprint::parse(bad).is_err(), "{bad:?}");
    }
    assert!(
        Fingerprint::parse("yFe94Qso636auIaB").is_ok(),
        "the reference's example"
    );
}

#[test]
fn fingerprints_are_stable_across_releases() {
    // Stored fingerprints are compared with new ones forever: the algorithm
    // (HMAC-SHA256, first 16 bytes, 16 base62 digits) must never change.
    let key = fingerprint_key(
        b"server fingerprint secret",
        ProjectId::from_uuid(Uuid::from_u128(1)),
    );
    assert_eq!(hex::encode(key), PINNED_KEY);
    assert_eq!(
        fingerprint(&number("4242424242424242"), &key).as_str(),
        PINNED_FINGERPRINT
    );
    assert_eq!(
        fingerprint(&number("4242424242424242"), &[0; 32]).as_str(),
        PINNED_ZERO_KEY
    );
}

// Computed independently with Python's `hmac` and `hashlib` modules.
const PINNED_KEY: &str = "03bd69573f27ec5e0be1b72a6e4c6e183d80811c2d6f617a2bcdf7d8354b2c0a";
const PINNED_FINGERPRINT: &str = "fNefMP727cPtrvxa";
const PINNED_ZERO_KEY: &str = "oDYcAKHbyIPU7mhL";

#[test]
fn fingerprint_keys_differ_per_project_and_secret() {
    let p1 = ProjectId::from_uuid(Uuid::from_u128(1));
    let p2 = ProjectId::from_uuid(Uuid::from_u128(2));
    assert_eq!(fingerprint_key(b"secret", p1), fingerprint_key(b"secret", p1));
    assert_ne!(fingerprint_key(b"secret", p1), fingerprint_key(b"secret", p2));
    assert_ne!(fingerprint_key(b"secret", p1), fingerprint_key(b"other", p1));
    let visa = number("4242424242424242");
    assert_ne!(
        fingerprint(&visa, &fingerprint_key(b"secret", p1)),
        fingerprint(&visa, &fingerprint_key(b"secret", p2))
    );
}

#[test]
fn card_info_carries_only_what_may_be_stored() {
    let visa = number("4114360123456785");
    let expiry = Expiry::new(12, 2030, 2025, 6).expect("valid");
    let info = CardInfo::new(&visa, expiry, &KEY_A);
    assert_eq!(info.number().as_str(), "411436******6785");
    assert_eq!(info.brand(), CardBrand::Visa);
    assert_eq!(info.expiry(), expiry);
    assert_eq!(info.fingerprint(), fingerprint(&visa, &KEY_A));
    assert_eq!(info.to_string(), "visa 411436******6785 12/2030");

    let bytes = postcard::to_stdvec(&info).expect("encode");
    assert!(!contains(&bytes, visa.digits().as_bytes()));
    assert_eq!(postcard::from_bytes::<CardInfo>(&bytes), Ok(info.clone()));
}

/// `CardInfo`'s encoding with any string in the number field.
#[derive(serde::Serialize)]
struct ForgedCardInfo<'a> {
    number: &'a str,
    brand: CardBrand,
    expiry: Expiry,
    fingerprint: Fingerprint,
}

#[test]
fn a_record_with_a_full_number_does_not_decode() {
    let visa = number("4242424242424242");
    let info = CardInfo::new(&visa, Expiry::new(1, 2030, 2025, 6).expect("valid"), &KEY_A);
    let encode = |number: &str| {
        postcard::to_stdvec(&ForgedCardInfo {
            number,
            brand: info.brand(),
            expiry: info.expiry(),
            fingerprint: info.fingerprint(),
        })
        .expect("encode")
    };
    assert_eq!(
        encode(info.number().as_str()),
        postcard::to_stdvec(&info).expect("encode"),
        "the forged layout is CardInfo's"
    );
    assert!(postcard::from_bytes::<CardInfo>(&encode("4242424242424242")).is_err());
    assert!(postcard::from_bytes::<CardInfo>(&encode("4242424242*42424")).is_err());
}

fn violations_of(result: Result<(), DomainError>) -> Vec<FieldViolation> {
    match result {
        Ok(()) => Vec::new(),
        Err(DomainError::Invalid(violations)) => violations,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

fn validate(number: &str, month: i64, year: i64, cvc: &str) -> (Option<ValidatedCard>, Vec<FieldViolation>) {
    let mut violations = Violations::new();
    let card = validate_card_info(number, month, year, cvc, TODAY, "card_info", &mut violations);
    (card, violations_of(violations.into_result()))
}

fn fields(violations: &[FieldViolation]) -> Vec<&str> {
    violations.iter().map(|v| v.field.as_str()).collect()
}

#[test]
fn a_valid_request_validates() {
    let (card, violations) = validate("4242424242424242", 6, 2025, "123");
    assert!(violations.is_empty(), "{violations:?}");
    let card = card.expect("valid");
    assert_eq!(card.number.digits(), "4242424242424242");
    assert_eq!((card.expiry.month(), card.expiry.year()), (6, 2025));
    assert_eq!(card.cvc.digits(), "123");
    let debug = format!("{card:?}");
    assert!(!debug.contains("4242424242424242"), "{debug}");
    assert!(!debug.contains("123"), "{debug}");
    assert_eq!(
        card.info(&KEY_A),
        CardInfo::new(&card.number, card.expiry, &KEY_A)
    );
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let (card, violations) = validate("4242424242424241", 13, 99, "12");
    assert!(card.is_none());
    assert_eq!(
        violations,
        [
            FieldViolation::new(
                "card_info.number",
                "is not a valid card number (Luhn check failed)"
            ),
            FieldViolation::new("card_info.expiration_month", "must be a month from 1 to 12"),
            FieldViolation::new(
                "card_info.expiration_year",
                "must be a full 4-digit year, e.g. 2030"
            ),
            FieldViolation::new("card_info.cvc", "must be 3 or 4 digits"),
        ]
    );
    for violation in &violations {
        assert!(!violation.description.contains("4242"), "{violation:?}");
    }

    let (_, violations) = validate("4242 4242 4242 4242", 0, 2030, "1234");
    assert_eq!(
        fields(&violations),
        ["card_info.number", "card_info.expiration_month"]
    );
    assert_eq!(
        violations[0].description,
        "must contain only digits, without spaces or dashes"
    );
    let (_, violations) = validate("42424242", 12, 2030, "123");
    assert_eq!(violations[0].description, "must have 12 to 19 digits, has 8");
}

#[test]
fn out_of_range_integers_are_not_truncated() {
    // 256 + 6 would be month 6 after a careless `as u8`; 65536 + 2030 year 2030.
    let (card, violations) = validate("4242424242424242", 262, 67_566, "123");
    assert!(card.is_none());
    assert_eq!(
        fields(&violations),
        ["card_info.expiration_month", "card_info.expiration_year"]
    );
    let (_, violations) = validate("4242424242424242", -6, -2030, "123");
    assert_eq!(
        fields(&violations),
        ["card_info.expiration_month", "card_info.expiration_year"]
    );
}

#[test]
fn an_expired_card_is_blamed_on_the_field_that_is_past() {
    let (card, violations) = validate("4242424242424242", 12, 2024, "123");
    assert!(card.is_none());
    assert_eq!(
        violations,
        [FieldViolation::new(
            "card_info.expiration_year",
            "the card has expired"
        )]
    );
    let (_, violations) = validate("4242424242424242", 5, 2025, "123");
    assert_eq!(
        violations,
        [FieldViolation::new(
            "card_info.expiration_month",
            "the card has expired"
        )]
    );
}

#[test]
fn the_field_prefix_is_the_callers() {
    let mut violations = Violations::new();
    let card = validate_card_info("1", 1, 2030, "1", TODAY, "payment.card", &mut violations);
    assert!(card.is_none());
    assert_eq!(
        fields(&violations_of(violations.into_result())),
        ["payment.card.number", "payment.card.cvc"]
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// A Luhn-valid number: `prefix`, random digits, a check digit, `len` in all.
fn luhn_complete(prefix: &str, body: &[u8], len: usize) -> String {
    let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
    digits.extend(body.iter().map(|d| d % 10));
    digits.truncate(len - 1);
    // The check digit takes the rightmost place, so the payload's rightmost
    // digit is the first one doubled.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            let digit = u32::from(digit);
            if position % 2 == 0 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    let check = u8::try_from((10 - sum % 10) % 10).expect("a digit");
    digits.push(check);
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

fn valid_number() -> impl Strategy<Value = String> {
    let prefixes = prop::sample::select(vec![
        "", "4", "51", "55", "2221", "2720", "34", "37", "6011", "644", "65", "622126", "622925", "300",
        "36", "38", "3528", "3589", "50", "56", "6304", "6759", "676770", "62", "81", "9",
    ]);
    (
        prefixes,
        prop::collection::vec(0u8..10, MAX_DIGITS),
        MIN_DIGITS..=MAX_DIGITS,
    )
        .prop_map(|(prefix, body, len)| luhn_complete(prefix, &body, len))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_rendering_shows_the_full_number(text in valid_number(), month in 1u8..=12, cvc in "[0-9]{3,4}") {
        let card = CardNumber::parse(&text).expect("generated numbers are valid");
        prop_assert_eq!(card.digits(), text.as_str());
        let expiry = Expiry::new(month, 2030, 2025, 6).expect("valid");
        let info = CardInfo::new(&card, expiry, &KEY_A);
        let validated = ValidatedCard { number: card.clone(), expiry, cvc: Cvc::parse(&cvc).expect("valid") };
        for rendered in [
            format!("{card:?}"),
            format!("{card}"),
            format!("{card:#?}"),
            format!("{info:?}"),
            format!("{info}"),
            format!("{info:#?}"),
            format!("{validated:?}"),
            format!("{:?}", card.masked()),
        ] {
            prop_assert!(!rendered.contains(&text), "{} shows {}", rendered, text);
        }
        let bytes = postcard::to_stdvec(&info).expect("encode");
        prop_assert!(!contains(&bytes, text.as_bytes()));
    }

    #[test]
    fn masking_keeps_exactly_first_6_and_last_4(text in valid_number()) {
        let card = CardNumber::parse(&text).expect("generated numbers are valid");
        let masked = card.masked();
        let shown = masked.as_str();
        prop_assert_eq!(shown.len(), text.len());
        prop_assert_eq!(&shown[..6], &text[..6]);
        prop_assert_eq!(&shown[text.len() - 4..], &text[text.len() - 4..]);
        prop_assert!(shown[6..text.len() - 4].bytes().all(|b| b == b'*'));
        prop_assert_eq!(masked.brand(), card.brand());
        prop_assert_eq!(MaskedCardNumber::parse(shown), Ok(masked.clone()));
    }

    #[test]
    fn any_single_digit_error_is_caught(text in valid_number(), at in any::<prop::sample::Index>(), delta in 1u8..10) {
        let mut bytes = text.into_bytes();
        let at = at.index(bytes.len());
        bytes[at] = b'0' + (bytes[at] - b'0' + delta) % 10;
        let typo = String::from_utf8(bytes).expect("ascii");
        prop_assert_eq!(CardNumber::parse(&typo), Err(CardError::LuhnCheckFailed));
    }

    #[test]
    fn fingerprints_depend_on_number_and_key(a in valid_number(), b in valid_number(), key in any::<[u8; 32]>()) {
        let (na, nb) = (CardNumber::parse(&a).expect("valid"), CardNumber::parse(&b).expect("valid"));
        prop_assert_eq!(fingerprint(&na, &key) == fingerprint(&nb, &key), a == b);
        let mut other = key;
        other[0] ^= 1;
        prop_assert_ne!(fingerprint(&na, &key), fingerprint(&na, &other));
    }

    #[test]
    fn parsing_never_panics(text in "\\PC{0,25}") {
        let _ = CardNumber::parse(&text);
        let _ = MaskedCardNumber::parse(&text);
        let _ = Fingerprint::parse(&text);
        let _ = Cvc::parse(&text);
    }
}
