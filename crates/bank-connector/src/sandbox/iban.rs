//! IBANs for the sandbox's accounts and counterparties: the registry's
//! length for the country and valid ISO 7064 MOD 97-10 check digits (the
//! French RIB key too), so that a strict IBAN parser accepts them.

/// A sandbox IBAN in `country` from `number` (its digits fill the account
/// part); `bank` overrides the country's default bank code. `None` for a
/// country without IBANs.
pub fn make_iban(country: &str, bank: Option<&str>, number: u64) -> Option<String> {
    let digits = format!("{number:020}");
    let tail = |n: usize| &digits[digits.len() - n..];
    let bban = match country {
        "GB" => format!("{}{}{}", bank.unwrap_or("SBXB"), "400012", tail(8)),
        "DE" => format!("{}{}", bank.unwrap_or("10010010"), tail(10)),
        "FR" => {
            let bank = bank.unwrap_or("20041");
            let branch = "01005";
            let account = tail(11);
            let key = rib_key(bank, branch, account)?;
            format!("{bank}{branch}{account}{key:02}")
        }
        "PL" => format!("{}{}", bank.unwrap_or("11402004"), tail(16)),
        "ES" => format!("{}{}{}", bank.unwrap_or("0049"), "0001", tail(12)),
        "IT" => format!("X{}{}{}", bank.unwrap_or("05428"), "11101", tail(12)),
        "CH" => format!("{}{}", bank.unwrap_or("00762"), tail(12)),
        _ => return None,
    };
    let check = 98 - mod97(&format!("{bban}{country}00"))?;
    Some(format!("{country}{check:02}{bban}"))
}

/// ISO 7064 MOD 97-10 of an alphanumeric string (letters as 10–35).
pub fn mod97(text: &str) -> Option<u32> {
    let mut rest = 0u32;
    for c in text.chars() {
        let value = c.to_digit(36)?;
        rest = if value < 10 {
            (rest * 10 + value) % 97
        } else {
            (rest * 100 + value) % 97
        };
    }
    Some(rest)
}

/// The French RIB key of numeric bank, branch and account codes.
fn rib_key(bank: &str, branch: &str, account: &str) -> Option<u64> {
    let bank: u64 = bank.parse().ok()?;
    let branch: u64 = branch.parse().ok()?;
    let account: u64 = account.parse().ok()?;
    Some(97 - ((89 * bank + 15 * branch + 3 * account) % 97))
}

/// Whether `iban` has valid check digits (for tests).
pub fn is_valid(iban: &str) -> bool {
    match (iban.get(..4), iban.get(4..)) {
        (Some(head), Some(tail)) if !tail.is_empty() => mod97(&format!("{tail}{head}")) == Some(1),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ibans_have_the_registry_length_and_check_digits() {
        for (country, length) in [
            ("GB", 22),
            ("DE", 22),
            ("FR", 27),
            ("PL", 28),
            ("ES", 24),
            ("IT", 27),
            ("CH", 21),
        ] {
            for number in [0, 1, 42, 9_876_543_210, u64::MAX] {
                let iban = make_iban(country, None, number).unwrap_or_default();
                assert_eq!(iban.len(), length, "{iban}");
                assert!(is_valid(&iban), "{iban}");
            }
        }
        assert_eq!(make_iban("US", None, 1), None);
        // A known valid IBAN (the ECBS example).
        assert!(is_valid("GB82WEST12345698765432"));
        assert!(!is_valid("GB82WEST12345698765433"));
        assert!(!is_valid("GB8"));
        assert!(!is_valid("GB€2WEST12345698765432"));
    }
}
