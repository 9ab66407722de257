//! Proto ⇄ domain for bank payin references and bank payins.

use paycore_domain::bank_payin::BankPayinCommand;
use paycore_domain::bank_payin::{BankPayin, BankPayinReference, IncomingBankTransfer};
use paycore_domain::kernel::bank::PayinReferenceCode;
use paycore_domain::{AccountId, BankPayinId, BankPayinReferenceId, Command, TransactionId, Violations};

use crate::convert::{Mask, concept, id, masked_meta, meta, meta_pb, money_pb, positive_money, timestamp};
use crate::pb;

pub fn create_bank_payin_reference(
    request: &pb::CreateBankPayinReferenceRequest,
    id: BankPayinReferenceId,
    candidates: Vec<PayinReferenceCode>,
    v: &mut Violations,
) -> Option<Command> {
    let account_id = self::id::<AccountId>(&request.account_id, "account_id", v);
    let meta = meta(&request.meta, "meta", v);
    Some(
        BankPayinCommand::CreateBankPayinReference {
            id,
            account_id: account_id?,
            candidates,
            meta: meta?,
        }
        .into(),
    )
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
    Some(
        BankPayinCommand::UpdateBankPayinReference {
            id: id?,
            account_id: account_id?,
            meta: meta?,
        }
        .into(),
    )
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
    Some(
        BankPayinCommand::ReceiveBankPayin(IncomingBankTransfer {
            id: ids.payin,
            concept: concept?,
            value: value?,
            transaction_id: ids.transaction,
            meta: meta?,
        })
        .into(),
    )
}

pub fn update_bank_payin(request: &pb::UpdateBankPayinRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<BankPayinId>(&request.bank_payin_id, "bank_payin_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(BankPayinCommand::UpdateBankPayin { id: id?, meta: meta? }.into())
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

#[cfg(test)]
mod tests {
    use paycore_domain::DomainError;
    use uuid::Uuid;

    use super::*;

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(DomainError::Invalid(fields)) => fields.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("unexpected {other:?}"),
        }
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
            Some(
                BankPayinCommand::UpdateBankPayinReference {
                    id,
                    account_id: Some(account),
                    meta: None,
                }
                .into()
            )
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
}
