//! IBAN validation: one registry sample per country, every way an IBAN can
//! be wrong, and the guarantee of the mod-97 checksum — any single-character
//! substitution or adjacent transposition is refused — checked exhaustively
//! on the samples and by property tests on generated IBANs.

use paycore_domain::Violations;
use paycore_domain::kernel::iban::{IBAN_REGISTRY, Iban, IbanError};
use proptest::prelude::*;

/// The example IBAN of every country of the SWIFT IBAN registry.
const SAMPLES: &[&str] = &[
    "AD1200012030200359100100",
    "AE070331234567890123456",
    "AL47212110090000000235698741",
    "AT611904300234573201",
    "AZ21NABZ00000000137010001944",
    "BA391290079401028494",
    "BE68539007547034",
    "BG80BNBG96611020345678",
    "BH67BMAG00001299123456",
    "BI4210000100010000332045181",
    "BR1800360305000010009795493C1",
    "BY13NBRB3600900000002Z00AB00",
    "CH9300762011623852957",
    "CR05015202001026284066",
    "CY17002001280000001200527600",
    "CZ6508000000192000145399",
    "DE89370400440532013000",
    "DJ2100010000000154000100186",
    "DK5000400440116243",
    "DO28BAGR00000001212453611324",
    "EE382200221020145685",
    "EG380019000500000000263180002",
    "ES9121000418450200051332",
    "FI2112345600000785",
    "FK88SC123456789012",
    "FO6264600001631634",
    "FR1420041010050500013M02606",
    "GB82WEST12345698765432",
    "GE29NB0000000101904917",
    "GI75NWBK000000007099453",
    "GL8964710001000206",
    "GR1601101250000000012300695",
    "GT82TRAJ01020000001210029690",
    "HN88CABF00000000000250005469",
    "HR1210010051863000160",
    "HU42117730161111101800000000",
    "IE29AIBK93115212345678",
    "IL620108000000099999999",
    "IQ98NBIQ850123456789012",
    "IS140159260076545510730339",
    "IT60X0542811101000000123456",
    "JO94CBJO0010000000000131000302",
    "KW81CBKU0000000000001234560101",
    "KZ86125KZT5004100100",
    "LB62099900000001001901229114",
    "LC55HEMM000100010012001200023015",
    "LI21088100002324013AA",
    "LT121000011101001000",
    "LU280019400644750000",
    "LV80BANK0000435195001",
    "LY83002048000020100120361",
    "MC5811222000010123456789030",
    "MD24AG000225100013104168",
    "ME25505000012345678951",
    "MK07250120000058984",
    "MN121234123456789123",
    "MR1300020001010000123456753",
    "MT84MALT011000012345MTLCAST001S",
    "MU17BOMM0101101030300200000MUR",
    "NI45BAPR00000013000003558124",
    "NL91ABNA0417164300",
    "NO9386011117947",
    "OM810180000001299123456",
    "PK36SCBL0000001123456702",
    "PL61109010140000071219812874",
    "PS92PALS000000000400123456702",
    "PT50000201231234567890154",
    "QA58DOHB00001234567890ABCDEFG",
    "RO49AAAA1B31007593840000",
    "RS35260005601001611379",
    "RU0304452522540817810538091310419",
    "SA0380000000608010167519",
    "SC18SSCB11010000000000001497USD",
    "SD2129010501234001",
    "SE4550000000058398257466",
    "SI56263300012039086",
    "SK3112000000198742637541",
    "SM86U0322509800000000270100",
    "SO211000001001000100141",
    "ST23000100010051845310146",
    "SV62CENR00000000000000700025",
    "TL380080012345678910157",
    "TN5910006035183598478831",
    "TR330006100519786457841326",
    "UA213223130000026007233566001",
    "VA59001123000012345678",
    "VG96VPVG0000012345678901",
    "XK051212012345678906",
    "YE15CBYE0001018861234567891234",
];

/// An independent mod-97: the IBAN rearranged into one decimal string,
/// reduced nine digits at a time in a u64.
fn reference_mod97(iban: &str) -> u64 {
    let rearranged = format!("{}{}", &iban[4..], &iban[..4]);
    let digits: String = rearranged
        .chars()
        .map(|c| c.to_digit(36).expect("alphanumeric").to_string())
        .collect();
    let mut remainder = 0_u64;
    for chunk in digits.as_bytes().chunks(9) {
        let chunk = std::str::from_utf8(chunk).expect("ASCII digits");
        let value: u64 = format!("{remainder}{chunk}").parse().expect("at most 11 digits");
        remainder = value % 97;
    }
    remainder
}

fn reference_valid(iban: &str) -> bool {
    reference_mod97(iban) == 1
}

/// `iban` with its check digits computed by the reference mod-97.
fn with_check_digits(country: &str, bban: &str) -> String {
    let placeholder = format!("{country}00{bban}");
    let check = 98 - reference_mod97(&placeholder);
    format!("{country}{check:02}{bban}")
}

#[test]
fn registry_has_89_countries_and_every_sample_is_valid() {
    assert_eq!(IBAN_REGISTRY.len(), 89);
    assert_eq!(
        SAMPLES.len(),
        IBAN_REGISTRY.len(),
        "one sample per registry country"
    );
    for (sample, (country, length)) in SAMPLES.iter().zip(IBAN_REGISTRY) {
        assert!(reference_valid(sample), "{sample} fails the reference mod-97");
        let iban = Iban::parse(sample).unwrap_or_else(|e| panic!("{sample}: {e}"));
        assert_eq!(iban.country(), *country);
        assert_eq!(sample.len(), *length, "{sample}");
        assert_eq!(iban.as_str(), *sample);
        assert_eq!(iban.to_string(), *sample, "Display is the electronic form");
        assert_eq!(&sample[2..4], iban.check_digits());
        assert_eq!(&sample[4..], iban.bban());
        assert_eq!(sample.parse::<Iban>().unwrap(), iban);
    }
}

#[test]
fn registry_lengths_of_well_known_countries() {
    for (country, length) in [
        ("ES", 24),
        ("DE", 22),
        ("FR", 27),
        ("GB", 22),
        ("NL", 18),
        ("IT", 27),
        ("PT", 25),
        ("BE", 16),
        ("CH", 21),
        ("AT", 20),
        ("NO", 15),
        ("MT", 31),
        ("LC", 32),
        ("RU", 33),
    ] {
        assert_eq!(Iban::length_for(country), Some(length), "{country}");
    }
    for unknown in ["US", "CA", "AU", "JP", "CN", "IN", "XX", "es", "", "E", "ESP"] {
        assert_eq!(Iban::length_for(unknown), None, "{unknown}");
    }
}

#[test]
fn the_issue_and_brief_examples_parse() {
    for text in [
        "GB82WEST12345698765432",
        "DE89370400440532013000",
        "ES9121000418450200051332",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "BE68539007547034",
        "CH9300762011623852957",
        "IT60X0542811101000000123456",
        "NO9386011117947",
        "MT84MALT011000012345MTLCAST001S",
        "GB29NWBK60161331926819",
    ] {
        assert!(Iban::parse(text).is_ok(), "{text}");
    }
}

#[test]
fn printable_form_groups_by_four() {
    let iban = Iban::parse("ES9121000418450200051332").unwrap();
    assert_eq!(iban.printable(), "ES91 2100 0418 4502 0005 1332");
    let iban = Iban::parse("NO9386011117947").unwrap();
    assert_eq!(iban.printable(), "NO93 8601 1117 947");
    let iban = Iban::parse("MT84MALT011000012345MTLCAST001S").unwrap();
    assert_eq!(iban.printable(), "MT84 MALT 0110 0001 2345 MTLC AST0 01S");
    // The printable form is for people: given back, it is refused.
    assert_eq!(Iban::parse(&iban.printable()), Err(IbanError::ContainsSpaces));
}

#[test]
fn spaces_are_refused_with_a_hint_to_remove_them() {
    for text in [
        "ES91 2100 0418 4502 0005 1332",
        " ES9121000418450200051332",
        "ES9121000418450200051332 ",
        "ES91\t21000418450200051332",
        "ES91\u{a0}21000418450200051332",
        "ES912100041845020005133\n",
    ] {
        assert_eq!(Iban::parse(text), Err(IbanError::ContainsSpaces), "{text:?}");
    }
    let message = IbanError::ContainsSpaces.to_string();
    assert!(
        message.contains("without spaces") && message.contains("remove"),
        "{message}"
    );
}

#[test]
fn lowercase_and_other_characters_are_refused() {
    assert_eq!(
        Iban::parse("es9121000418450200051332"),
        Err(IbanError::InvalidCharacters {
            character: 'e',
            index: 0
        })
    );
    assert_eq!(
        Iban::parse("GB82west12345698765432"),
        Err(IbanError::InvalidCharacters {
            character: 'w',
            index: 4
        })
    );
    let error = Iban::parse("ES91-2100-0418-4502-0005-1332").unwrap_err();
    assert_eq!(
        error,
        IbanError::InvalidCharacters {
            character: '-',
            index: 4
        }
    );
    assert!(error.to_string().contains("uppercase"), "{error}");
    assert!(
        error.to_string().contains("position 5"),
        "1-based for people: {error}"
    );
    assert!(matches!(
        Iban::parse("ÉS9121000418450200051332"),
        Err(IbanError::InvalidCharacters {
            character: 'É',
            index: 0
        })
    ));
}

#[test]
fn unknown_countries_are_refused() {
    // A correct mod-97 does not make a country exist.
    let us = with_check_digits("US", "12345678901234567890");
    assert!(reference_valid(&us));
    assert_eq!(Iban::parse(&us), Err(IbanError::UnknownCountry("US".into())));
    assert_eq!(
        Iban::parse("XX82WEST12345698765432"),
        Err(IbanError::UnknownCountry("XX".into()))
    );
    assert_eq!(
        Iban::parse("1291000418450200051332"),
        Err(IbanError::UnknownCountry("12".into()))
    );
    assert_eq!(Iban::parse("E"), Err(IbanError::UnknownCountry("E".into())));
    assert_eq!(Iban::parse("E9"), Err(IbanError::UnknownCountry("E9".into())));
    // Iran's IBANs are not in the SWIFT registry.
    assert_eq!(
        Iban::parse("IR062960000000100324200001"),
        Err(IbanError::UnknownCountry("IR".into()))
    );
    let message = Iban::parse("XX82WEST12345698765432").unwrap_err().to_string();
    assert!(
        message.contains("\"XX\"") && message.contains("country code"),
        "{message}"
    );
}

#[test]
fn wrong_lengths_are_refused_naming_the_expected_length() {
    assert_eq!(
        Iban::parse("ES912100041845020005133"),
        Err(IbanError::WrongLength {
            country: "ES".into(),
            expected: 24,
            found: 23
        })
    );
    assert_eq!(
        Iban::parse("ES91210004184502000513321"),
        Err(IbanError::WrongLength {
            country: "ES".into(),
            expected: 24,
            found: 25
        })
    );
    // Valid checksum, wrong length for the country: still refused.
    let short_de = with_check_digits("DE", "3704004405320130");
    assert!(reference_valid(&short_de));
    assert!(matches!(
        Iban::parse(&short_de),
        Err(IbanError::WrongLength {
            expected: 22,
            found: 20,
            ..
        })
    ));
    assert!(matches!(
        Iban::parse("ES"),
        Err(IbanError::WrongLength { found: 2, .. })
    ));
    assert!(matches!(
        Iban::parse(&format!("GB82WEST{}", "1".repeat(40))),
        Err(IbanError::WrongLength {
            expected: 22,
            found: 48,
            ..
        })
    ));
    let message = Iban::parse("NO938601111794").unwrap_err().to_string();
    assert_eq!(
        message,
        "an IBAN of country NO has 15 characters, this one has 14"
    );
}

#[test]
fn empty_is_refused() {
    assert_eq!(Iban::parse(""), Err(IbanError::Empty));
}

#[test]
fn wrong_check_digits_are_refused() {
    assert_eq!(
        Iban::parse("GB83WEST12345698765432"),
        Err(IbanError::ChecksumFailed)
    );
    assert_eq!(
        Iban::parse("ES9221000418450200051332"),
        Err(IbanError::ChecksumFailed)
    );
    assert_eq!(
        Iban::parse("GBXXWEST12345698765432"),
        Err(IbanError::ChecksumFailed)
    );
    let message = IbanError::ChecksumFailed.to_string();
    assert!(message.contains("mod-97"), "{message}");
}

/// Check digits 00, 01 and 99 can satisfy mod-97 (they are congruent to 97,
/// 98 and 2) but ISO 13616 only issues 02–98.
#[test]
fn check_digits_outside_02_to_98_are_refused_even_when_mod97_holds() {
    let mut found = [false; 3];
    for account in 0_u64..10_000 {
        let bban = format!("WEST{account:014}");
        let iban = Iban::from_bban("GB", &bban).unwrap();
        let (alias, slot) = match iban.check_digits() {
            "97" => ("00", 0),
            "98" => ("01", 1),
            "02" => ("99", 2),
            _ => continue,
        };
        let aliased = format!("GB{alias}{bban}");
        assert!(reference_valid(&aliased), "{aliased} satisfies mod-97");
        assert_eq!(Iban::parse(&aliased), Err(IbanError::ChecksumFailed), "{aliased}");
        found[slot] = true;
        if found.iter().all(|&f| f) {
            return;
        }
    }
    panic!("did not find all three aliases: {found:?}");
}

#[test]
fn from_bban_computes_the_check_digits_of_every_sample() {
    for sample in SAMPLES {
        let iban = Iban::from_bban(&sample[..2], &sample[4..]).unwrap();
        assert_eq!(iban.as_str(), *sample);
    }
    assert_eq!(
        Iban::from_bban("XX", "1234"),
        Err(IbanError::UnknownCountry("XX".into()))
    );
    assert!(matches!(
        Iban::from_bban("ES", "210004184502000513"),
        Err(IbanError::WrongLength {
            expected: 24,
            found: 22,
            ..
        })
    ));
    assert!(matches!(
        Iban::from_bban("ES", "2100 0418"),
        Err(IbanError::ContainsSpaces)
    ));
    // The country is two letters, not a prefix that shifts the check digits.
    assert_eq!(
        Iban::from_bban("ESX", "00418450200051332"),
        Err(IbanError::UnknownCountry("ESX".into()))
    );
    assert_eq!(
        Iban::from_bban("es", "21000418450200051332"),
        Err(IbanError::UnknownCountry("es".into()))
    );
}

fn same_class_alternatives(character: u8) -> Vec<u8> {
    let class: Vec<u8> = if character.is_ascii_digit() {
        (b'0'..=b'9').collect()
    } else {
        (b'A'..=b'Z').collect()
    };
    class.into_iter().filter(|&c| c != character).collect()
}

/// Every single-character substitution (digit for digit, letter for letter)
/// anywhere in every sample, and every transposition of two different
/// adjacent characters of the same class, is refused.
#[test]
fn every_single_substitution_and_adjacent_transposition_of_the_samples_fails() {
    let mut tried = 0;
    for sample in SAMPLES {
        let bytes = sample.as_bytes();
        for position in 0..bytes.len() {
            for replacement in same_class_alternatives(bytes[position]) {
                let mut changed = bytes.to_vec();
                changed[position] = replacement;
                let changed = String::from_utf8(changed).unwrap();
                assert!(
                    Iban::parse(&changed).is_err(),
                    "{changed} (from {sample}) was accepted"
                );
                tried += 1;
            }
            if position + 1 < bytes.len()
                && bytes[position] != bytes[position + 1]
                && bytes[position].is_ascii_digit() == bytes[position + 1].is_ascii_digit()
            {
                let mut swapped = bytes.to_vec();
                swapped.swap(position, position + 1);
                let swapped = String::from_utf8(swapped).unwrap();
                assert!(
                    Iban::parse(&swapped).is_err(),
                    "{swapped} (from {sample}) was accepted"
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 20_000, "{tried}");
}

#[test]
fn errors_become_field_violations() {
    let mut violations = Violations::new();
    let iban = violations.check("bank_account_info.iban", Iban::parse("ES91 2100"));
    assert!(iban.is_none());
    let error = violations.into_result().unwrap_err();
    assert!(
        error
            .to_string()
            .contains("bank_account_info.iban: IBAN must be given without spaces")
    );
}

#[test]
fn serde_round_trips_as_the_electronic_form() {
    let iban = Iban::parse("FR1420041010050500013M02606").unwrap();
    let bytes = postcard::to_stdvec(&iban).unwrap();
    assert_eq!(bytes, postcard::to_stdvec("FR1420041010050500013M02606").unwrap());
    assert_eq!(postcard::from_bytes::<Iban>(&bytes).unwrap(), iban);
}

/// Decoding re-checks the permanent rules (characters, shape, mod-97) …
#[test]
fn decoding_refuses_what_is_not_an_iban() {
    for bad in [
        "",
        "GB83WEST12345698765432",
        "gb82west12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "GB01WEST",
        "1234",
    ] {
        let bytes = postcard::to_stdvec(bad).unwrap();
        assert!(postcard::from_bytes::<Iban>(&bytes).is_err(), "{bad:?}");
    }
}

/// … but not the registry, which SWIFT revises: what was recorded stays
/// readable (documented in the module).
#[test]
fn decoding_trusts_the_log_for_the_registry() {
    let old_costa_rica = with_check_digits("CR", "0152020010262840");
    assert!(Iban::parse(&old_costa_rica).is_err(), "not a current CR length");
    for recorded in [old_costa_rica.as_str(), "IR062960000000100324200001"] {
        let bytes = postcard::to_stdvec(recorded).unwrap();
        let iban: Iban = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(iban.as_str(), recorded);
    }
}

/// A BBAN of the right length for a registry country, mostly digits.
fn any_valid_iban() -> impl Strategy<Value = String> {
    (0..IBAN_REGISTRY.len()).prop_flat_map(|at| {
        let (country, length) = IBAN_REGISTRY[at];
        proptest::collection::vec(
            prop_oneof![3 => proptest::char::range('0', '9'), 1 => proptest::char::range('A', 'Z')],
            length - 4,
        )
        .prop_map(move |chars| with_check_digits(country, &chars.into_iter().collect::<String>()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn generated_ibans_parse_and_agree_with_from_bban(iban in any_valid_iban()) {
        let parsed = Iban::parse(&iban);
        // 98 - (n mod 97) is always within 02..=98.
        prop_assert!(parsed.is_ok(), "{iban}: {parsed:?}");
        let parsed = parsed.unwrap();
        prop_assert_eq!(Iban::from_bban(parsed.country(), parsed.bban()).unwrap(), parsed.clone());
        prop_assert_eq!(parsed.printable().replace(' ', ""), iban);
    }

    #[test]
    fn any_single_substitution_fails(iban in any_valid_iban(), position in any::<prop::sample::Index>(), pick in any::<prop::sample::Index>()) {
        let bytes = iban.as_bytes();
        let position = position.index(bytes.len());
        let alternatives = same_class_alternatives(bytes[position]);
        let mut changed = bytes.to_vec();
        changed[position] = *pick.get(&alternatives);
        let changed = String::from_utf8(changed).unwrap();
        prop_assert!(Iban::parse(&changed).is_err(), "{} (from {}) was accepted", changed, iban);
    }

    #[test]
    fn any_adjacent_transposition_of_same_class_characters_fails(iban in any_valid_iban(), position in any::<prop::sample::Index>()) {
        let bytes = iban.as_bytes();
        // The first transposable pair at or after a random position.
        let pairs = bytes.len() - 1;
        let start = position.index(pairs);
        let eligible = |at: &usize| {
            let (a, b) = (bytes[*at], bytes[*at + 1]);
            a != b && a.is_ascii_digit() == b.is_ascii_digit()
        };
        let Some(position) = (start..pairs).chain(0..start).find(eligible) else {
            return Ok(());
        };
        let mut swapped = bytes.to_vec();
        swapped.swap(position, position + 1);
        let swapped = String::from_utf8(swapped).unwrap();
        prop_assert!(Iban::parse(&swapped).is_err(), "{} (from {}) was accepted", swapped, iban);
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,40}") {
        let _ = Iban::parse(&text);
        let _ = Iban::from_bban(&text, &text);
    }
}
