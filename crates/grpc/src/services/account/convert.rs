//! Proto ⇄ domain for accounts and their transactions.

use paycore_domain::account::{AccountCommand, PendingPhase, PendingTransaction};
use paycore_domain::{AccountId, Command, CustomerId, TransactionId, TransactionKind, Violations};

use crate::convert::*;
use crate::pb;
use paycore_domain::aggregate::Account;
use paycore_domain::history::AccountHistory;

pub fn create_account(
    request: &pb::CreateAccountRequest,
    id: AccountId,
    v: &mut Violations,
) -> Option<Command> {
    let currency = currency(&request.currency, "currency", v);
    let customer_id = optional_id::<CustomerId>(request.customer_id.as_deref(), "customer_id", v);
    let meta = meta(&request.meta, "meta", v);
    Some(
        AccountCommand::CreateAccount {
            id,
            currency: currency?,
            customer_id: customer_id?,
            allow_negative_balance: request.allow_negative_balance,
            meta: meta?,
        }
        .into(),
    )
}

/// `magic_transaction` is the ID of the transaction a `balance` change records.
pub fn update_account(
    request: &pb::UpdateAccountRequest,
    magic_transaction: TransactionId,
    v: &mut Violations,
) -> Option<Command> {
    let id = id::<AccountId>(&request.account_id, "account_id", v);
    let mask = Mask::parse(
        request.update_mask.as_ref(),
        &["allow_negative_balance", "balance", "meta"],
        v,
    )?;
    let allow_negative_balance = mask
        .has("allow_negative_balance")
        .then_some(request.allow_negative_balance);
    let balance = if mask.has("balance") {
        money(request.balance.as_ref(), "balance", v).map(|m| Some((m, magic_transaction)))
    } else {
        Some(None)
    };
    let meta = if mask.has("meta") {
        meta(&request.meta, "meta", v).map(Some)
    } else {
        Some(None)
    };
    Some(
        AccountCommand::UpdateAccount {
            id: id?,
            allow_negative_balance,
            meta: meta?,
            balance: balance?,
        }
        .into(),
    )
}

pub fn account_pb(account: &Account) -> pb::Account {
    pb::Account {
        id: account.id.to_string(),
        created_at: Some(timestamp(account.created_at)),
        project_id: account.project_id.to_string(),
        customer_id: account.customer_id.map(|id| id.to_string()),
        balance: Some(money_pb(account.balance)),
        allow_negative_balance: account.allow_negative_balance,
        meta: meta_pb(&account.meta),
        pending_debits: Some(money_pb(account.pending_debits)),
        pending_credits: Some(money_pb(account.pending_credits)),
        available_balance: Some(money_pb(account.available())),
    }
}

pub fn transaction_type_pb(kind: TransactionKind) -> pb::TransactionType {
    match kind {
        TransactionKind::Magic => pb::TransactionType::Magic,
        TransactionKind::TransferSource(_) => pb::TransactionType::TransferSource,
        TransactionKind::TransferDestination(_) => pb::TransactionType::TransferDestination,
        TransactionKind::CardPayin(_) => pb::TransactionType::CardPayin,
        TransactionKind::CardPayinRefund(_) => pb::TransactionType::CardPayinRefund,
        TransactionKind::CardPayinRefundFailure(_) => pb::TransactionType::CardPayinRefundFailure,
        TransactionKind::BankPayout(_) => pb::TransactionType::BankPayout,
        TransactionKind::BankPayoutFailure(_) => pb::TransactionType::BankPayoutFailure,
        TransactionKind::BankPayin(_) => pb::TransactionType::BankPayin,
        TransactionKind::PostedTransferSource(_) => pb::TransactionType::PostedTransferSource,
        TransactionKind::PostedTransferDestination(_) => pb::TransactionType::PostedTransferDestination,
    }
}

/// One phase of a pending transfer's hold on an account.
pub fn pending_transaction_pb(pending: &PendingTransaction) -> pb::PendingTransaction {
    let phase = match pending.phase {
        PendingPhase::Reserved => pb::PendingPhase::Reserved,
        PendingPhase::Posted => pb::PendingPhase::Posted,
        PendingPhase::Voided => pb::PendingPhase::Voided,
        PendingPhase::Expired => pb::PendingPhase::Expired,
    };
    pb::PendingTransaction {
        id: pending.id.to_string(),
        transfer_id: pending.transfer_id.to_string(),
        account_id: pending.account_id.to_string(),
        project_id: pending.project_id.to_string(),
        phase: phase.into(),
        value: Some(money_pb(pending.value)),
        pending_debits_after: Some(money_pb(pending.pending_debits_after)),
        pending_credits_after: Some(money_pb(pending.pending_credits_after)),
        created_at: Some(timestamp(pending.created_at)),
    }
}

/// `AccountService.GetAccountAt`'s answer.
pub fn account_at_pb(history: &AccountHistory) -> pb::AccountAt {
    pb::AccountAt {
        account: Some(account_pb(&history.account)),
        position: i64::try_from(history.position).unwrap_or(i64::MAX),
        recorded_at: Some(timestamp(history.recorded_at)),
    }
}

pub fn transaction_pb(transaction: &paycore_domain::Transaction) -> pb::Transaction {
    pb::Transaction {
        id: transaction.id.to_string(),
        created_at: Some(timestamp(transaction.created_at)),
        project_id: transaction.project_id.to_string(),
        account_id: transaction.account_id.to_string(),
        r#type: transaction_type_pb(transaction.kind).into(),
        value: Some(money_pb(transaction.value)),
        balance_after: Some(money_pb(transaction.balance_after)),
        transfer_id: transaction.kind.transfer_id().map(|id| id.to_string()),
        card_payin_id: match transaction.kind {
            TransactionKind::CardPayin(id) => Some(id.to_string()),
            _ => None,
        },
        card_payin_refund_id: match transaction.kind {
            TransactionKind::CardPayinRefund(id) | TransactionKind::CardPayinRefundFailure(id) => {
                Some(id.to_string())
            }
            _ => None,
        },
        bank_payout_id: match transaction.kind {
            TransactionKind::BankPayout(id) | TransactionKind::BankPayoutFailure(id) => Some(id.to_string()),
            _ => None,
        },
        bank_payin_id: match transaction.kind {
            TransactionKind::BankPayin(id) => Some(id.to_string()),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use paycore_domain::{Currency, Meta, Money, ProjectId, Timestamp, TransferId};
    use uuid::Uuid;

    use super::*;
    use crate::convert::tests::{acc, eur, fields, mask, violations};

    #[test]
    fn create_account_parses_currency_customer_and_meta() {
        let id = acc(3);
        let request = pb::CreateAccountRequest {
            currency: "JPY".into(),
            allow_negative_balance: true,
            customer_id: Some(CustomerId::from_uuid(Uuid::from_u128(4)).to_string()),
            meta: BTreeMap::new(),
        };
        let mut v = Violations::new();
        let command = create_account(&request, id, &mut v).unwrap();
        assert_eq!(
            command,
            AccountCommand::CreateAccount {
                id,
                currency: "JPY".parse().unwrap(),
                customer_id: Some(CustomerId::from_uuid(Uuid::from_u128(4))),
                allow_negative_balance: true,
                meta: Meta::default(),
            }
            .into()
        );
        let request = pb::CreateAccountRequest {
            currency: "eur".into(),
            customer_id: Some("acc_1".into()),
            ..request
        };
        let mut v = Violations::new();
        assert!(create_account(&request, id, &mut v).is_none());
        assert_eq!(fields(v), ["currency", "customer_id"]);
        let mut v = Violations::new();
        assert!(create_account(&pb::CreateAccountRequest::default(), id, &mut v).is_none());
        assert_eq!(violations(v)[0].description, "is required");
    }

    #[test]
    fn transactions_carry_type_and_cause() {
        let transfer = TransferId::from_uuid(Uuid::from_u128(7));
        let transaction = paycore_domain::Transaction {
            id: TransactionId::from_uuid(Uuid::from_u128(8)),
            account_id: acc(1),
            project_id: ProjectId::from_uuid(Uuid::from_u128(2)),
            kind: TransactionKind::TransferSource(transfer),
            value: Money::new(-100, Currency::EUR),
            balance_after: Money::new(900, Currency::EUR),
            created_at: Timestamp::from_micros(0),
        };
        let pb = transaction_pb(&transaction);
        assert_eq!(pb.r#type(), pb::TransactionType::TransferSource);
        assert_eq!(pb.transfer_id, Some(transfer.to_string()));
        assert_eq!(pb.value, eur(-100));
        assert_eq!(pb.balance_after, eur(900));
        let magic = transaction_pb(&paycore_domain::Transaction {
            kind: TransactionKind::Magic,
            ..transaction
        });
        assert_eq!(magic.r#type(), pb::TransactionType::Magic);
        assert_eq!(magic.transfer_id, None);
    }

    #[test]
    fn update_account_masks_name_what_may_change() {
        let base = pb::UpdateAccountRequest {
            account_id: acc(1).to_string(),
            update_mask: mask(&["balance", "allow_negative_balance"]),
            allow_negative_balance: true,
            balance: eur(-500),
            meta: [("k".to_owned(), "v".to_owned())].into(),
        };
        let tx = TransactionId::from_uuid(Uuid::from_u128(9));
        let mut v = Violations::new();
        let command = update_account(&base, tx, &mut v).unwrap();
        assert_eq!(
            command,
            AccountCommand::UpdateAccount {
                id: acc(1),
                allow_negative_balance: Some(true),
                meta: None,
                balance: Some((Money::new(-500, Currency::EUR), tx)),
            }
            .into()
        );
        for bad in [None, mask(&[]), mask(&["meta", "id"]), mask(&["*"])] {
            let request = pb::UpdateAccountRequest {
                update_mask: bad.clone(),
                ..base.clone()
            };
            let mut v = Violations::new();
            assert!(update_account(&request, tx, &mut v).is_none(), "{bad:?}");
            assert_eq!(fields(v), ["update_mask"]);
        }
        let request = pb::UpdateAccountRequest {
            update_mask: mask(&["balance"]),
            balance: None,
            ..base.clone()
        };
        let mut v = Violations::new();
        assert!(update_account(&request, tx, &mut v).is_none());
        assert_eq!(fields(v), ["balance"]);
    }
}
