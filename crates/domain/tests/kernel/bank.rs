//! Bank transfer vocabulary: concepts, minirefs and payin reference codes —
//! generated from entropy passed in, case-insensitive on input, and found
//! back inside the concepts people actually write.

use std::collections::HashSet;

use paycore_domain::kernel::bank::{
    Concept, ConceptError, Miniref, MinirefError, PayinReferenceCode, PayinReferenceCodeError,
    REFERENCE_ALPHABET,
};
use proptest::prelude::*;

fn code(text: &str) -> PayinReferenceCode {
    PayinReferenceCode::parse(text).expect("valid code")
}

fn scan(concept: &str) -> Vec<String> {
    PayinReferenceCode::scan(concept)
        .map(|code| code.to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// Concept
// ---------------------------------------------------------------------------

#[test]
fn concepts_of_1_to_140_printable_characters_are_accepted() {
    for text in [
        "x",
        "Factura 2024/117",
        "Pago a Pepito Martínez — junio",
        "Überweisung für Müller & Söhne",
        "REF KM4TRW9H",
        "  padded  ",
    ] {
        assert_eq!(Concept::parse(text).unwrap().as_str(), text);
    }
    let longest = "é".repeat(Concept::MAX_CHARS);
    assert_eq!(
        Concept::parse(&longest).unwrap().as_str(),
        longest,
        "counted in characters"
    );
}

#[test]
fn empty_long_and_unprintable_concepts_are_refused() {
    assert_eq!(Concept::parse(""), Err(ConceptError::Empty));
    assert_eq!(Concept::parse("   "), Err(ConceptError::Empty));
    assert_eq!(
        Concept::parse(&"a".repeat(141)),
        Err(ConceptError::TooLong { max: 140, found: 141 })
    );
    for (text, character, index) in [
        ("line\nbreak", '\n', 4),
        ("tab\there", '\t', 3),
        ("nul\0", '\0', 3),
        ("zero\u{200B}width", '\u{200B}', 4),
        ("evil \u{202E}fdp.exe", '\u{202E}', 5),
        ("\u{FEFF}bom", '\u{FEFF}', 0),
        ("del\u{7F}", '\u{7F}', 3),
    ] {
        assert_eq!(
            Concept::parse(text),
            Err(ConceptError::NotPrintable { character, index }),
            "{text:?}"
        );
    }
    let message = Concept::parse("a\nb").unwrap_err().to_string();
    assert!(
        message.contains("printable") && message.contains("position 2"),
        "{message}"
    );
}

#[test]
fn concepts_round_trip_through_serde() {
    let concept: Concept = "Alquiler marzo".parse().unwrap();
    let bytes = postcard::to_stdvec(&concept).unwrap();
    assert_eq!(bytes, postcard::to_stdvec("Alquiler marzo").unwrap());
    assert_eq!(postcard::from_bytes::<Concept>(&bytes).unwrap(), concept);
}

// ---------------------------------------------------------------------------
// Miniref
// ---------------------------------------------------------------------------

#[test]
fn minirefs_are_4_to_6_letters_or_digits_stored_uppercase() {
    for text in ["AB12", "A1B2C", "ZZZZZZ", "0000", "abc123"] {
        let miniref = Miniref::parse(text).unwrap();
        assert_eq!(miniref.as_str(), text.to_ascii_uppercase());
    }
    assert_eq!(Miniref::parse("ABC"), Err(MinirefError::WrongLength(3)));
    assert_eq!(Miniref::parse("ABCDEFG"), Err(MinirefError::WrongLength(7)));
    assert_eq!(Miniref::parse(""), Err(MinirefError::WrongLength(0)));
    assert_eq!(Miniref::parse("AB-12"), Err(MinirefError::InvalidCharacter('-')));
    assert_eq!(Miniref::parse("AB 12"), Err(MinirefError::InvalidCharacter(' ')));
    assert_eq!(Miniref::parse("ÁB12"), Err(MinirefError::InvalidCharacter('Á')));
}

#[test]
fn generated_minirefs_are_6_unambiguous_characters() {
    for seed in 0_u8..=255 {
        let miniref = Miniref::from_entropy([seed; 8]);
        assert_eq!(miniref.as_str().len(), Miniref::GENERATED_LEN);
        assert!(
            miniref.as_str().bytes().all(|b| REFERENCE_ALPHABET.contains(&b)),
            "{miniref}"
        );
        assert_eq!(Miniref::parse(miniref.as_str()).unwrap(), miniref);
    }
    assert_eq!(Miniref::SPACE, 7_529_536);
}

/// The candidates of any entropy are every generated miniref exactly once
/// (consecutive indexes from the entropy's, wrapping around), so "the first
/// one not used for this IBAN" always exists until all are used.
#[test]
fn miniref_candidates_cover_the_whole_space_once() {
    let entropy = 0x0123_4567_89ab_cdef_u64.to_le_bytes();
    let space = usize::try_from(Miniref::SPACE).unwrap();
    assert_eq!(Miniref::candidates(entropy).size_hint(), (space, Some(space)));
    assert_eq!(
        Miniref::candidates(entropy).next(),
        Some(Miniref::from_entropy(entropy))
    );
    // A window across the wrap-around: all distinct, all generated-form.
    let near_end = (Miniref::SPACE - 50_000).to_le_bytes();
    let window: Vec<Miniref> = Miniref::candidates(near_end).take(100_000).collect();
    assert_eq!(window[49_999].as_str(), "YYYYYY");
    assert_eq!(window[50_000].as_str(), "333333");
    assert_eq!(window.iter().collect::<HashSet<_>>().len(), window.len());
}

#[test]
fn first_unused_miniref_is_deterministic() {
    let entropy = [7; 8];
    let taken: HashSet<Miniref> = Miniref::candidates(entropy).take(3).collect();
    let pick = |entropy| Miniref::candidates(entropy).find(|m| !taken.contains(m)).unwrap();
    assert_eq!(pick(entropy), pick(entropy));
    assert_eq!(pick(entropy), Miniref::candidates(entropy).nth(3).unwrap());
}

#[test]
fn minirefs_round_trip_through_serde_in_canonical_form() {
    let miniref = Miniref::parse("ab12").unwrap();
    let bytes = postcard::to_stdvec(&miniref).unwrap();
    assert_eq!(bytes, postcard::to_stdvec("AB12").unwrap());
    assert_eq!(postcard::from_bytes::<Miniref>(&bytes).unwrap(), miniref);
    for bad in ["ab12", "ABC", "AB-12"] {
        let bytes = postcard::to_stdvec(bad).unwrap();
        assert!(postcard::from_bytes::<Miniref>(&bytes).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------------------
// PayinReferenceCode
// ---------------------------------------------------------------------------

#[test]
fn codes_are_8_characters_of_the_alphabet_case_insensitive() {
    assert_eq!(code("KM4TRW9H").as_str(), "KM4TRW9H");
    assert_eq!(code("km4trw9h"), code("KM4TRW9H"));
    assert_eq!(code("Km4tRw9H").to_string(), "KM4TRW9H");
    assert_eq!(
        PayinReferenceCode::parse("KM4TRW9"),
        Err(PayinReferenceCodeError::WrongLength(7))
    );
    assert_eq!(
        PayinReferenceCode::parse("KM4TRW9HX"),
        Err(PayinReferenceCodeError::WrongLength(9))
    );
    for (text, bad) in [
        ("KM4TRW90", '0'),
        ("KM4TRW9O", 'O'),
        ("KM4TRW91", '1'),
        ("KM4TRW9I", 'I'),
        ("KM4TRW9L", 'L'),
        ("KM4TRW95", '5'),
        ("KM4TRW9S", 'S'),
        ("KM4TRW92", '2'),
        ("KM4TRW9Z", 'Z'),
        ("KM4TRW98", '8'),
        ("KM4TRW9B", 'B'),
        ("KM4TRW9b", 'b'),
        ("KM4T-W9H", '-'),
        ("KM4TRW9Ñ", 'Ñ'),
    ] {
        assert_eq!(
            PayinReferenceCode::parse(text),
            Err(PayinReferenceCodeError::InvalidCharacter(bad)),
            "{text}"
        );
    }
    let message = PayinReferenceCode::parse("KM4TRW90").unwrap_err().to_string();
    assert!(message.contains("3 4 6 7 9 F H K M R T W X Y"), "{message}");
}

#[test]
fn codes_come_from_the_entropy_passed_in() {
    let a = PayinReferenceCode::from_entropy([1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(a, PayinReferenceCode::from_entropy([1, 2, 3, 4, 5, 6, 7, 8]));
    assert_ne!(a, PayinReferenceCode::from_entropy([1, 2, 3, 4, 5, 6, 7, 9]));
    assert_eq!(PayinReferenceCode::from_entropy([0; 8]).as_str(), "33333333");
    let codes: HashSet<PayinReferenceCode> = (0_u64..10_000)
        .map(|n| PayinReferenceCode::from_entropy(n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()))
        .collect();
    assert_eq!(codes.len(), 10_000);
    assert_eq!(PayinReferenceCode::SPACE, 1_475_789_056);
}

#[test]
fn code_candidates_start_at_the_entropy_and_wrap_around() {
    let last = PayinReferenceCode::SPACE - 1;
    let mut candidates = PayinReferenceCode::candidates(last.to_le_bytes());
    assert_eq!(candidates.next().unwrap().as_str(), "YYYYYYYY");
    assert_eq!(candidates.next().unwrap().as_str(), "33333333");
    assert_eq!(candidates.next().unwrap().as_str(), "33333334");
    let distinct: HashSet<_> = PayinReferenceCode::candidates([9; 8]).take(50_000).collect();
    assert_eq!(distinct.len(), 50_000);
}

#[test]
fn scan_finds_codes_separated_by_anything_but_letters_and_digits() {
    assert_eq!(scan("KM4TRW9H"), ["KM4TRW9H"]);
    assert_eq!(scan("Pago factura 117 ref KM4TRW9H gracias"), ["KM4TRW9H"]);
    assert_eq!(scan("ref:km4trw9h."), ["KM4TRW9H"]);
    assert_eq!(scan("(KM4TRW9H)/2024"), ["KM4TRW9H"]);
    assert_eq!(scan("«km4TRW9h»"), ["KM4TRW9H"]);
}

#[test]
fn scan_joins_codes_split_by_spaces_or_hyphens() {
    assert_eq!(scan("ref KM4T RW9H"), ["KM4TRW9H"]);
    assert_eq!(scan("ref KM4T-RW9H"), ["KM4TRW9H"]);
    assert_eq!(scan("KM 4T RW 9H end"), ["KM4TRW9H"]);
    assert_eq!(scan("KM4T - RW9H"), ["KM4TRW9H"]);
    // Other separators do not join.
    assert!(scan("KM4T/RW9H").is_empty());
    assert!(scan("KM4T.RW9H").is_empty());
}

#[test]
fn scan_ignores_what_cannot_be_a_code() {
    assert!(scan("").is_empty());
    assert!(scan("Pago alquiler marzo").is_empty());
    assert!(scan("REFKM4TRW9H").is_empty(), "glued to other letters");
    assert!(scan("KM4TRW9H7").is_empty(), "glued to a digit");
    assert!(scan("ñKM4TRW9H").is_empty(), "glued to a non-ASCII letter");
    assert!(scan("KM4TRW9S").is_empty(), "S is not in the alphabet");
    assert!(scan("12345678").is_empty());
}

#[test]
fn scan_yields_every_candidate_once_in_order() {
    assert_eq!(
        scan("TTTTTTTT and KM4TRW9H, again km4trw9h"),
        ["TTTTTTTT", "KM4TRW9H"]
    );
    // Every reading is offered; the caller looks each up.
    assert_eq!(scan("MM KM4TRW9H"), ["KM4TRW9H"]);
    assert_eq!(scan("FH KM4TRW"), ["FHKM4TRW"]);
}

#[test]
fn codes_round_trip_through_serde_in_canonical_form() {
    let reference = code("km4trw9h");
    let bytes = postcard::to_stdvec(&reference).unwrap();
    assert_eq!(bytes, postcard::to_stdvec("KM4TRW9H").unwrap());
    assert_eq!(
        postcard::from_bytes::<PayinReferenceCode>(&bytes).unwrap(),
        reference
    );
    for bad in ["km4trw9h", "KM4TRW90", "KM4TRW9"] {
        let bytes = postcard::to_stdvec(bad).unwrap();
        assert!(
            postcard::from_bytes::<PayinReferenceCode>(&bytes).is_err(),
            "{bad}"
        );
    }
}

fn any_code() -> impl Strategy<Value = PayinReferenceCode> {
    any::<[u8; 8]>().prop_map(PayinReferenceCode::from_entropy)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn a_code_anywhere_in_a_concept_is_found(
        reference in any_code(),
        lowercase in any::<bool>(),
        before in "[a-zA-Z0-9 .,:/-]{0,40}",
        after in "[a-zA-Z0-9 .,:/-]{0,40}",
    ) {
        let written = if lowercase { reference.as_str().to_lowercase() } else { reference.to_string() };
        let concept = format!("{before} {written}.{after}");
        let found: Vec<PayinReferenceCode> = PayinReferenceCode::scan(&concept).collect();
        prop_assert!(found.contains(&reference), "{} not found in {:?}: {:?}", reference, concept, found);
        let unique: HashSet<_> = found.iter().collect();
        prop_assert_eq!(unique.len(), found.len());
    }

    #[test]
    fn everything_scan_finds_is_in_the_concept(concept in "\\PC{0,140}") {
        let squeezed: String = concept
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect::<String>()
            .to_ascii_uppercase();
        for found in PayinReferenceCode::scan(&concept) {
            prop_assert!(squeezed.contains(found.as_str()), "{} not in {:?}", found, concept);
        }
    }

    #[test]
    fn codes_parse_back(reference in any_code()) {
        prop_assert_eq!(PayinReferenceCode::parse(reference.as_str()).unwrap(), reference);
        prop_assert_eq!(PayinReferenceCode::parse(&reference.as_str().to_lowercase()).unwrap(), reference);
    }

    #[test]
    fn distinct_indexes_give_distinct_codes(a in 0..PayinReferenceCode::SPACE, b in 0..PayinReferenceCode::SPACE) {
        prop_assume!(a != b);
        prop_assert_ne!(PayinReferenceCode::from_index(a), PayinReferenceCode::from_index(b));
    }
}
