//! Proto ⇄ domain for bank accounts. The bank payout family parses a
//! destination with [`bank_account_info`].

use paycore_domain::bank_account::BankAccountCommand;
use paycore_domain::bank_account::{BankAccount, check_beneficiary_name};
use paycore_domain::events::BankAccountInfo;
use paycore_domain::kernel::iban::Iban;
use paycore_domain::{BankAccountId, Command, CustomerId, Violations};

use crate::convert::{Mask, id, meta, meta_pb, optional_id, timestamp};
use crate::pb;

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

pub fn create_bank_account(
    request: &pb::CreateBankAccountRequest,
    id: BankAccountId,
    v: &mut Violations,
) -> Option<Command> {
    let info = bank_account_info(request.bank_account_info.as_ref(), "bank_account_info", v);
    let customer_id = optional_id::<CustomerId>(request.customer_id.as_deref(), "customer_id", v);
    let meta = meta(&request.meta, "meta", v);
    Some(
        BankAccountCommand::CreateBankAccount {
            id,
            info: info?,
            customer_id: customer_id?,
            meta: meta?,
        }
        .into(),
    )
}

pub fn update_bank_account(request: &pb::UpdateBankAccountRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<BankAccountId>(&request.bank_account_id, "bank_account_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(BankAccountCommand::UpdateBankAccount { id: id?, meta: meta? }.into())
}

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

#[cfg(test)]
mod tests {
    use paycore_domain::DomainError;

    use super::*;

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
}
