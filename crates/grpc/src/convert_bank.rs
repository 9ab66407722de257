//! Proto ↔ domain for bank accounts, bank payouts, payin references, bank
//! payins, files and exchange rates. The rules of [`crate::convert`] hold:
//! every invalid field is recorded under its path in the request, and a
//! parser returns `None` only after recording at least one violation.

use paycore_domain::bank::{Concept, PayinReferenceCode};
use paycore_domain::banking::{
    BankAccount, BankPayin, BankPayinReference, BankPayout, BankPayoutState, FxRateEntry,
    IncomingBankTransfer, NewBankPayout, PayoutDestinationSource, StoredFile, check_beneficiary_name,
};
use paycore_domain::events::BankAccountInfo;
use paycore_domain::fx::Quote;
use paycore_domain::iban::Iban;
use paycore_domain::{
    AccountId, BankAccountId, BankPayinId, BankPayinReferenceId, BankPayoutId, Command, CustomerId, Money,
    TransactionId, Violations,
};
use paycore_sidestore::FileDigest;

use crate::convert::{Mask, id, meta, meta_pb, money, money_pb, optional_id, timestamp};
use crate::pb;

// ---------------------------------------------------------------- proto → domain

/// A required `BankAccountInfo` in `field`: a valid IBAN (the `IbanError`
/// says what is wrong) and a beneficiary name.
pub fn bank_account_info(
    info: Option<&pb::BankAccountInfo>,
    field: &str,
    v: &mut Violations,
) -> Option<BankAccountInfo> {
    let Some(info) = info else {
        v.add(field, "is required");
        return None;
    };
    let iban = v.check(&format!("{field}.iban"), Iban::parse(&info.iban));
    let name = v.check(
        &format!("{field}.beneficiary_name"),
        check_beneficiary_name(&info.beneficiary_name),
    );
    name?;
    Some(BankAccountInfo {
        iban: iban?,
        beneficiary_name: info.beneficiary_name.clone(),
    })
}

/// A required bank transfer concept in `field`.
pub fn concept(text: &str, field: &str, v: &mut Violations) -> Option<Concept> {
    v.check(field, Concept::parse(text))
}

/// A required positive amount in `field` (the deciders check it too; doing
/// it here reports it together with the other problems).
fn positive_money(value: Option<&pb::Money>, field: &str, v: &mut Violations) -> Option<Money> {
    let value = money(value, field, v)?;
    if value.amount <= 0 {
        v.add(format!("{field}.amount"), "must be positive");
        return None;
    }
    Some(value)
}

/// The `meta` of an update whose mask names it, `Some(None)` otherwise.
fn masked_meta(
    mask: Option<&Mask>,
    entries: &std::collections::BTreeMap<String, String>,
    v: &mut Violations,
) -> Option<Option<paycore_domain::Meta>> {
    match mask {
        Some(mask) if mask.has("meta") => meta(entries, "meta", v).map(Some),
        _ => Some(None),
    }
}

pub fn create_bank_account(
    request: &pb::CreateBankAccountRequest,
    id: BankAccountId,
    v: &mut Violations,
) -> Option<Command> {
    let info = bank_account_info(request.bank_account_info.as_ref(), "bank_account_info", v);
    let customer_id = optional_id::<CustomerId>(request.customer_id.as_deref(), "customer_id", v);
    let meta = meta(&request.meta, "meta", v);
    Some(Command::CreateBankAccount {
        id,
        info: info?,
        customer_id: customer_id?,
        meta: meta?,
    })
}

pub fn update_bank_account(request: &pb::UpdateBankAccountRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<BankAccountId>(&request.bank_account_id, "bank_account_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(Command::UpdateBankAccount { id: id?, meta: meta? })
}

/// What a new payout needs besides its request: its IDs and where the
/// search for a free miniref starts (the domain has no randomness).
#[derive(Clone, Copy, Debug)]
pub struct PayoutIds {
    pub payout: BankPayoutId,
    pub transaction: TransactionId,
    pub miniref_entropy: [u8; 8],
}

fn payout_destination(
    destination: Option<&pb::create_bank_payout_request::Destination>,
    v: &mut Violations,
) -> Option<PayoutDestinationSource> {
    use pb::create_bank_payout_request::Destination;
    match destination {
        Some(Destination::BankAccountId(raw)) => {
            id::<BankAccountId>(raw, "bank_account_id", v).map(PayoutDestinationSource::BankAccount)
        }
        Some(Destination::BankAccountInfo(info)) => {
            bank_account_info(Some(info), "bank_account_info", v).map(PayoutDestinationSource::Info)
        }
        None => {
            v.add(
                "destination",
                "is required: give exactly one of bank_account_id or bank_account_info",
            );
            None
        }
    }
}

pub fn create_bank_payout(
    request: &pb::CreateBankPayoutRequest,
    ids: PayoutIds,
    v: &mut Violations,
) -> Option<Command> {
    let account_id = id::<AccountId>(&request.account_id, "account_id", v);
    let destination = payout_destination(request.destination.as_ref(), v);
    let concept = concept(&request.concept, "concept", v);
    let value = positive_money(request.value.as_ref(), "value", v);
    let meta = meta(&request.meta, "meta", v);
    Some(Command::CreateBankPayout(NewBankPayout {
        id: ids.payout,
        account_id: account_id?,
        destination: destination?,
        concept: concept?,
        value: value?,
        meta: meta?,
        transaction_id: ids.transaction,
        miniref_entropy: ids.miniref_entropy,
    }))
}

pub fn update_bank_payout(request: &pb::UpdateBankPayoutRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<BankPayoutId>(&request.bank_payout_id, "bank_payout_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(Command::UpdateBankPayout { id: id?, meta: meta? })
}

pub fn create_bank_payin_reference(
    request: &pb::CreateBankPayinReferenceRequest,
    id: BankPayinReferenceId,
    candidates: Vec<PayinReferenceCode>,
    v: &mut Violations,
) -> Option<Command> {
    let account_id = self::id::<AccountId>(&request.account_id, "account_id", v);
    let meta = meta(&request.meta, "meta", v);
    Some(Command::CreateBankPayinReference {
        id,
        account_id: account_id?,
        candidates,
        meta: meta?,
    })
}

pub fn update_bank_payin_reference(
    request: &pb::UpdateBankPayinReferenceRequest,
    v: &mut Violations,
) -> Option<Command> {
    let id = id::<BankPayinReferenceId>(&request.bank_payin_reference_id, "bank_payin_reference_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["account_id", "meta"], v);
    let account_id = match &mask {
        Some(mask) if mask.has("account_id") => {
            self::id::<AccountId>(&request.account_id, "account_id", v).map(Some)
        }
        _ => Some(None),
    };
    let meta = masked_meta(mask.as_ref(), &request.meta, v);
    mask?;
    Some(Command::UpdateBankPayinReference {
        id: id?,
        account_id: account_id?,
        meta: meta?,
    })
}

/// The IDs a simulated incoming transfer needs.
#[derive(Clone, Copy, Debug)]
pub struct PayinIds {
    pub payin: BankPayinId,
    pub transaction: TransactionId,
}

pub fn simulate_bank_payin(
    request: &pb::SimulateBankPayinRequest,
    ids: PayinIds,
    v: &mut Violations,
) -> Option<Command> {
    let concept = concept(&request.concept, "concept", v);
    let value = positive_money(request.value.as_ref(), "value", v);
    let meta = meta(&request.meta, "meta", v);
    Some(Command::ReceiveBankPayin(IncomingBankTransfer {
        id: ids.payin,
        concept: concept?,
        value: value?,
        transaction_id: ids.transaction,
        meta: meta?,
    }))
}

pub fn update_bank_payin(request: &pb::UpdateBankPayinRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<BankPayinId>(&request.bank_payin_id, "bank_payin_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(Command::UpdateBankPayin { id: id?, meta: meta? })
}

// ---------------------------------------------------------------- domain → proto

pub fn bank_account_info_pb(info: &BankAccountInfo) -> pb::BankAccountInfo {
    pb::BankAccountInfo {
        iban: info.iban.to_string(),
        beneficiary_name: info.beneficiary_name.clone(),
    }
}

pub fn bank_account_pb(account: &BankAccount) -> pb::BankAccount {
    pb::BankAccount {
        id: account.id.to_string(),
        created_at: Some(timestamp(account.created_at)),
        project_id: account.project_id.to_string(),
        customer_id: account.customer_id.map(|id| id.to_string()),
        bank_account_info: Some(bank_account_info_pb(&account.bank_account_info)),
        meta: meta_pb(&account.meta),
    }
}

pub fn bank_payout_state_pb(state: BankPayoutState) -> pb::BankPayoutState {
    match state {
        BankPayoutState::Processing => pb::BankPayoutState::Processing,
        BankPayoutState::Completed => pb::BankPayoutState::Completed,
        BankPayoutState::Failed => pb::BankPayoutState::Failed,
        BankPayoutState::Refunded => pb::BankPayoutState::Refunded,
    }
}

pub fn bank_payout_pb(payout: &BankPayout) -> pb::BankPayout {
    pb::BankPayout {
        id: payout.id.to_string(),
        created_at: Some(timestamp(payout.created_at)),
        project_id: payout.project_id.to_string(),
        account_id: payout.account_id.to_string(),
        bank_account_id: payout.bank_account_id.map(|id| id.to_string()),
        bank_account_info: Some(bank_account_info_pb(&payout.bank_account_info)),
        transaction_id: payout.transaction_id.to_string(),
        failure_transaction_id: payout.failure_transaction_id.map(|id| id.to_string()),
        state: bank_payout_state_pb(payout.state).into(),
        concept: payout.concept.to_string(),
        miniref: payout.miniref.to_string(),
        value: Some(money_pb(payout.value)),
        meta: meta_pb(&payout.meta),
    }
}

pub fn bank_payin_reference_pb(reference: &BankPayinReference) -> pb::BankPayinReference {
    pb::BankPayinReference {
        id: reference.id.to_string(),
        created_at: Some(timestamp(reference.created_at)),
        project_id: reference.project_id.to_string(),
        account_id: reference.account_id.to_string(),
        reference: reference.reference.to_string(),
        meta: meta_pb(&reference.meta),
    }
}

pub fn bank_payin_pb(payin: &BankPayin) -> pb::BankPayin {
    pb::BankPayin {
        id: payin.id.to_string(),
        created_at: Some(timestamp(payin.created_at)),
        project_id: payin.project_id.to_string(),
        bank_payin_reference_id: payin.bank_payin_reference_id.to_string(),
        account_id: payin.account_id.to_string(),
        transaction_id: payin.transaction_id.to_string(),
        concept: payin.concept.to_string(),
        value: Some(money_pb(payin.value)),
        meta: meta_pb(&payin.meta),
    }
}

pub fn file_pb(file: &StoredFile) -> pb::File {
    pb::File {
        id: file.id.to_string(),
        created_at: Some(timestamp(file.created_at)),
        project_id: file.project_id.to_string(),
        hash: FileDigest::from_bytes(file.sha256).base64(),
        name: file.name.clone(),
        // A file is at most the server's upload limit, far below i64::MAX.
        size: i64::try_from(file.size).unwrap_or(i64::MAX),
    }
}

/// The rate transfers of a pair get, or empty if it rounds down to zero
/// (transfers then refuse the conversion).
pub fn rate_used_text(entry: &FxRateEntry) -> String {
    entry
        .current
        .and_then(|rate| {
            Quote::new(entry.from, entry.to, rate.mid_rate, rate.spread_bps)
                .and_then(|quote| quote.rate_used())
                .ok()
        })
        .map(|rate| rate.to_string())
        .unwrap_or_default()
}

/// A configured rate; `None` for a removed one.
pub fn fx_rate_pb(entry: &FxRateEntry) -> Option<pb::FxRate> {
    let rate = entry.current?;
    Some(pb::FxRate {
        source_currency: entry.from.code().to_owned(),
        destination_currency: entry.to.code().to_owned(),
        mid_rate: rate.mid_rate.to_string(),
        spread_bps: rate.spread_bps,
        rate_used: rate_used_text(entry),
        updated_at: Some(timestamp(entry.changed_at)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use paycore_domain::banking::FxRateValue;
    use paycore_domain::fx::Rate;
    use paycore_domain::{Currency, DomainError, Timestamp};
    use uuid::Uuid;

    const IBAN: &str = "ES9121000418450200051332";

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    fn info(iban: &str, name: &str) -> pb::BankAccountInfo {
        pb::BankAccountInfo {
            iban: iban.into(),
            beneficiary_name: name.into(),
        }
    }

    fn ids() -> PayoutIds {
        PayoutIds {
            payout: BankPayoutId::from_uuid(Uuid::from_u128(1)),
            transaction: TransactionId::from_uuid(Uuid::from_u128(2)),
            miniref_entropy: [7; 8],
        }
    }

    #[test]
    fn bank_account_info_names_each_bad_field() {
        let mut v = Violations::new();
        let parsed = bank_account_info(Some(&info(IBAN, "Jane Doe")), "bank_account_info", &mut v);
        assert!(v.is_empty());
        assert_eq!(parsed.map(|i| i.iban.to_string()), Some(IBAN.to_owned()));

        for bad in [
            "ES9121000418450200051333",
            "ES91210004184502000513",
            "ES91 2100 0418 4502 0005 1332",
            "QQ9121000418450200051332",
            "",
        ] {
            let mut v = Violations::new();
            assert!(bank_account_info(Some(&info(bad, "Jane")), "bank_account_info", &mut v).is_none());
            assert_eq!(fields(v), ["bank_account_info.iban"], "{bad}");
        }
        let mut v = Violations::new();
        assert!(bank_account_info(Some(&info("x", " ")), "bank_account_info", &mut v).is_none());
        assert_eq!(
            fields(v),
            ["bank_account_info.iban", "bank_account_info.beneficiary_name"]
        );
        let mut v = Violations::new();
        assert!(bank_account_info(None, "bank_account_info", &mut v).is_none());
        assert_eq!(fields(v), ["bank_account_info"]);
    }

    #[test]
    fn create_bank_payout_reports_every_problem_at_once() {
        let request = pb::CreateBankPayoutRequest {
            account_id: "cus_x".into(),
            destination: None,
            concept: "x".repeat(141),
            value: Some(pb::Money {
                currency: "EUR".into(),
                amount: 0,
            }),
            meta: Default::default(),
        };
        let mut v = Violations::new();
        assert!(create_bank_payout(&request, ids(), &mut v).is_none());
        assert_eq!(
            fields(v),
            ["account_id", "destination", "concept", "value.amount"]
        );
    }

    #[test]
    fn create_bank_payout_builds_the_command() {
        use pb::create_bank_payout_request::Destination;
        let account = AccountId::from_uuid(Uuid::from_u128(3));
        let request = pb::CreateBankPayoutRequest {
            account_id: account.to_string(),
            destination: Some(Destination::BankAccountInfo(info(IBAN, "Jane Doe"))),
            concept: "Invoice 42".into(),
            value: Some(pb::Money {
                currency: "EUR".into(),
                amount: 1250,
            }),
            meta: Default::default(),
        };
        let mut v = Violations::new();
        let Some(Command::CreateBankPayout(new)) = create_bank_payout(&request, ids(), &mut v) else {
            panic!("expected CreateBankPayout: {v:?}");
        };
        assert_eq!(new.account_id, account);
        assert_eq!(new.concept.as_str(), "Invoice 42");
        assert_eq!(new.value, Money::new(1250, Currency::EUR));
        assert_eq!(new.miniref_entropy, [7; 8]);
        assert!(matches!(new.destination, PayoutDestinationSource::Info(_)));

        let request = pb::CreateBankPayoutRequest {
            destination: Some(Destination::BankAccountId("ba_nope".into())),
            ..request
        };
        let mut v = Violations::new();
        assert!(create_bank_payout(&request, ids(), &mut v).is_none());
        assert_eq!(fields(v), ["bank_account_id"]);
    }

    #[test]
    fn payin_reference_updates_follow_the_mask() {
        let id = BankPayinReferenceId::from_uuid(Uuid::from_u128(4));
        let account = AccountId::from_uuid(Uuid::from_u128(5));
        let request = pb::UpdateBankPayinReferenceRequest {
            bank_payin_reference_id: id.to_string(),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["account_id".into()],
            }),
            account_id: account.to_string(),
            meta: [("k".to_owned(), "v".to_owned())].into(),
        };
        let mut v = Violations::new();
        assert_eq!(
            update_bank_payin_reference(&request, &mut v),
            Some(Command::UpdateBankPayinReference {
                id,
                account_id: Some(account),
                meta: None,
            })
        );
        let request = pb::UpdateBankPayinReferenceRequest {
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["account_id".into(), "meta".into()],
            }),
            account_id: String::new(),
            ..request
        };
        let mut v = Violations::new();
        assert!(update_bank_payin_reference(&request, &mut v).is_none());
        assert_eq!(fields(v), ["account_id"]);
    }

    #[test]
    fn simulate_bank_payin_checks_concept_and_value() {
        let ids = PayinIds {
            payin: BankPayinId::from_uuid(Uuid::from_u128(6)),
            transaction: TransactionId::from_uuid(Uuid::from_u128(7)),
        };
        let request = pb::SimulateBankPayinRequest {
            concept: "line\nbreak".into(),
            value: None,
            meta: Default::default(),
        };
        let mut v = Violations::new();
        assert!(simulate_bank_payin(&request, ids, &mut v).is_none());
        assert_eq!(fields(v), ["concept", "value"]);
    }

    #[test]
    fn fx_rates_show_exact_decimals_and_hide_removed_pairs() {
        let entry = FxRateEntry {
            from: Currency::EUR,
            to: Currency::USD,
            current: Some(FxRateValue {
                mid_rate: Rate::parse("1.0842").unwrap(),
                spread_bps: 30,
            }),
            changed_at: Timestamp::from_micros(1_000_000),
        };
        let shown = fx_rate_pb(&entry).unwrap();
        assert_eq!(
            (
                shown.mid_rate.as_str(),
                shown.rate_used.as_str(),
                shown.spread_bps
            ),
            ("1.0842", "1.0809474", 30)
        );
        assert_eq!(
            (
                shown.source_currency.as_str(),
                shown.destination_currency.as_str()
            ),
            ("EUR", "USD")
        );
        let removed = FxRateEntry {
            current: None,
            ..entry
        };
        assert_eq!(fx_rate_pb(&removed), None);
    }
}
