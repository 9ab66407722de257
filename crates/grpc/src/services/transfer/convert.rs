//! Proto ⇄ domain for transfers (and their exchange).

use paycore_domain::transfer::TransferCommand;
use paycore_domain::{AccountId, Command, TransactionId, TransferId, Violations};

use crate::convert::*;
use crate::pb;
use paycore_domain::aggregate::Transfer;

/// The IDs a new transfer needs.
#[derive(Clone, Copy, Debug)]
pub struct TransferIds {
    pub transfer: TransferId,
    pub source_transaction: TransactionId,
    pub destination_transaction: TransactionId,
}

pub fn create_transfer(
    request: &pb::CreateTransferRequest,
    ids: TransferIds,
    v: &mut Violations,
) -> Option<Command> {
    let source = id::<AccountId>(&request.source_account_id, "source_account_id", v);
    let destination = id::<AccountId>(&request.destination_account_id, "destination_account_id", v);
    let value = money(request.value.as_ref(), "value", v);
    // The decider checks these too; checking here reports them together with
    // the parsing problems.
    let positive = value.is_none_or(|value| value.amount > 0);
    if !positive {
        v.add("value.amount", "must be positive");
    }
    let distinct = source.is_none() || source != destination;
    if !distinct {
        v.add("destination_account_id", "must differ from source_account_id");
    }
    let meta = meta(&request.meta, "meta", v);
    if !(positive && distinct) {
        return None;
    }
    Some(
        TransferCommand::CreateTransfer {
            id: ids.transfer,
            source_account_id: source?,
            destination_account_id: destination?,
            value: value?,
            meta: meta?,
            source_transaction_id: ids.source_transaction,
            destination_transaction_id: ids.destination_transaction,
        }
        .into(),
    )
}

pub fn update_transfer(request: &pb::UpdateTransferRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<TransferId>(&request.transfer_id, "transfer_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(TransferCommand::UpdateTransfer { id: id?, meta: meta? }.into())
}

pub fn transfer_pb(transfer: &Transfer) -> pb::Transfer {
    pb::Transfer {
        id: transfer.id.to_string(),
        created_at: Some(timestamp(transfer.created_at)),
        project_id: transfer.project_id.to_string(),
        source_account_id: transfer.source_account_id.to_string(),
        source_transaction_id: transfer.source_transaction_id.to_string(),
        destination_account_id: transfer.destination_account_id.to_string(),
        destination_transaction_id: transfer.destination_transaction_id.to_string(),
        value: Some(money_pb(transfer.value)),
        meta: meta_pb(&transfer.meta),
        exchange: transfer.exchange.as_ref().map(exchange_pb),
    }
}

/// The conversion a cross-currency transfer recorded; rates as exact decimals.
pub fn exchange_pb(exchange: &paycore_domain::events::Exchange) -> pb::Exchange {
    pb::Exchange {
        destination_value: Some(money_pb(exchange.destination_value)),
        mid_rate: exchange.mid_rate.to_string(),
        spread_bps: exchange.spread_bps,
        rate_used: exchange.rate_used.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use paycore_domain::{Currency, Money};
    use uuid::Uuid;

    use super::*;
    use crate::convert::tests::{acc, eur, fields, mask};

    fn ids() -> TransferIds {
        TransferIds {
            transfer: TransferId::from_uuid(Uuid::from_u128(10)),
            source_transaction: TransactionId::from_uuid(Uuid::from_u128(11)),
            destination_transaction: TransactionId::from_uuid(Uuid::from_u128(12)),
        }
    }

    #[test]
    fn create_transfer_reports_every_problem_at_once() {
        let request = pb::CreateTransferRequest {
            source_account_id: "cus_x".into(),
            destination_account_id: String::new(),
            value: Some(pb::Money {
                currency: "EURO".into(),
                amount: 5,
            }),
            meta: [("_secret".to_owned(), "x".to_owned())].into(),
        };
        let mut v = Violations::new();
        assert!(create_transfer(&request, ids(), &mut v).is_none());
        assert_eq!(
            fields(v),
            [
                "source_account_id",
                "destination_account_id",
                "value.currency",
                "meta._secret"
            ]
        );

        let request = pb::CreateTransferRequest {
            source_account_id: acc(1).to_string(),
            destination_account_id: acc(1).to_string(),
            value: eur(0),
            meta: BTreeMap::new(),
        };
        let mut v = Violations::new();
        assert!(create_transfer(&request, ids(), &mut v).is_none());
        assert_eq!(fields(v), ["value.amount", "destination_account_id"]);

        let request = pb::CreateTransferRequest {
            value: None,
            ..request
        };
        let mut v = Violations::new();
        assert!(create_transfer(&request, ids(), &mut v).is_none());
        assert_eq!(fields(v), ["value", "destination_account_id"]);
    }

    #[test]
    fn create_transfer_builds_the_command() {
        let request = pb::CreateTransferRequest {
            source_account_id: acc(1).to_string(),
            destination_account_id: acc(2).to_string(),
            value: eur(250),
            meta: [("order".to_owned(), "42".to_owned())].into(),
        };
        let mut v = Violations::new();
        let command = create_transfer(&request, ids(), &mut v).unwrap();
        assert!(v.is_empty());
        let Command::Transfer(TransferCommand::CreateTransfer {
            id,
            source_account_id,
            destination_account_id,
            value,
            meta,
            source_transaction_id,
            destination_transaction_id,
        }) = command
        else {
            panic!("wrong command");
        };
        assert_eq!(id, ids().transfer);
        assert_eq!((source_account_id, destination_account_id), (acc(1), acc(2)));
        assert_eq!(value, Money::new(250, Currency::EUR));
        assert_eq!(meta.get("order"), Some("42"));
        assert_eq!(source_transaction_id, ids().source_transaction);
        assert_eq!(destination_transaction_id, ids().destination_transaction);
    }

    #[test]
    fn exchanges_show_rates_as_exact_decimals() {
        let rate = |text| paycore_domain::kernel::fx::Rate::parse(text).unwrap();
        let exchange = paycore_domain::events::Exchange {
            destination_value: Money::new(1_080, "USD".parse().unwrap()),
            mid_rate: rate("1.0842"),
            spread_bps: 30,
            rate_used: rate("1.0809474"),
        };
        assert_eq!(
            exchange_pb(&exchange),
            pb::Exchange {
                destination_value: Some(pb::Money {
                    currency: "USD".into(),
                    amount: 1_080
                }),
                mid_rate: "1.0842".into(),
                spread_bps: 30,
                rate_used: "1.0809474".into(),
            }
        );
    }

    #[test]
    fn update_transfer_names_a_bad_id_and_mask() {
        let request = pb::UpdateTransferRequest {
            transfer_id: "trf_bad".into(),
            update_mask: mask(&["metadata"]),
            meta: BTreeMap::new(),
        };
        let mut v = Violations::new();
        assert!(update_transfer(&request, &mut v).is_none());
        assert_eq!(fields(v), ["transfer_id", "update_mask"]);
    }
}
