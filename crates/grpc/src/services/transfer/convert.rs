//! Proto ⇄ domain for transfers (and their exchange).

use paycore_domain::transfer::{PendingTerms, TransferCommand, TransferStatus};
use paycore_domain::{AccountId, Command, Timestamp, TransactionId, TransferId, Violations};

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

/// The shortest and longest `pending_timeout`.
const PENDING_TIMEOUT_MICROS: std::ops::RangeInclusive<i64> = 1_000_000..=30 * 24 * 3_600 * 1_000_000;

/// `CreateTransfer` (also one transfer of a batch), at `now`: the time a
/// `pending_timeout` counts from.
pub fn create_transfer(
    request: &pb::CreateTransferRequest,
    ids: TransferIds,
    now: Timestamp,
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
    let pending = match &request.pending_timeout {
        None => Some(None),
        Some(timeout) => pending_terms(timeout, now, v).map(Some),
    };
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
            pending: pending?,
        }
        .into(),
    )
}

/// A pending transfer's deadline: `timeout` after `now`.
fn pending_terms(
    timeout: &prost_types::Duration,
    now: Timestamp,
    v: &mut Violations,
) -> Option<PendingTerms> {
    let micros = timeout
        .seconds
        .checked_mul(1_000_000)
        .and_then(|micros| micros.checked_add(i64::from(timeout.nanos / 1_000)));
    let whole_micros = timeout.nanos % 1_000 == 0;
    match micros {
        Some(micros) if whole_micros && PENDING_TIMEOUT_MICROS.contains(&micros) => Some(PendingTerms {
            expires_at: Timestamp::from_micros(now.0.saturating_add(micros)),
        }),
        _ => {
            v.add(
                "pending_timeout",
                "must be 1 second to 30 days, in whole microseconds",
            );
            None
        }
    }
}

/// `PostPendingTransfer`, with the IDs of the two transactions that move
/// the posted amount.
pub fn post_pending_transfer(
    request: &pb::PostPendingTransferRequest,
    (source_transaction_id, destination_transaction_id): (TransactionId, TransactionId),
    v: &mut Violations,
) -> Option<Command> {
    let id = id::<TransferId>(&request.transfer_id, "transfer_id", v);
    let value = match &request.value {
        None => Some(None),
        Some(value) => money(Some(value), "value", v).map(Some),
    };
    if value.flatten().is_some_and(|value| value.amount <= 0) {
        v.add("value.amount", "must be positive");
        return None;
    }
    Some(
        TransferCommand::PostPendingTransfer {
            id: id?,
            value: value?,
            source_transaction_id,
            destination_transaction_id,
        }
        .into(),
    )
}

pub fn void_pending_transfer(
    request: &pb::VoidPendingTransferRequest,
    v: &mut Violations,
) -> Option<Command> {
    let id = id::<TransferId>(&request.transfer_id, "transfer_id", v);
    Some(TransferCommand::VoidPendingTransfer { id: id? }.into())
}

pub fn update_transfer(request: &pb::UpdateTransferRequest, v: &mut Violations) -> Option<Command> {
    let id = id::<TransferId>(&request.transfer_id, "transfer_id", v);
    let mask = Mask::parse(request.update_mask.as_ref(), &["meta"], v);
    let meta = meta(&request.meta, "meta", v);
    mask?;
    Some(TransferCommand::UpdateTransfer { id: id?, meta: meta? }.into())
}

pub fn transfer_pb(transfer: &Transfer) -> pb::Transfer {
    let (status, ended_at) = match transfer.status {
        TransferStatus::Posted { posted_at, legs, .. } => {
            (pb::TransferStatus::Posted, legs.map(|_| posted_at))
        }
        TransferStatus::Pending { .. } => (pb::TransferStatus::Pending, None),
        TransferStatus::Voided { at } => (pb::TransferStatus::Voided, Some(at)),
        TransferStatus::Expired { at } => (pb::TransferStatus::Expired, Some(at)),
    };
    let posted_legs = match transfer.status {
        TransferStatus::Posted {
            value,
            legs: Some((source, destination)),
            ..
        } => Some((value, source, destination)),
        _ => None,
    };
    pb::Transfer {
        status: status.into(),
        expires_at: transfer.pending_until().map(timestamp),
        posted_value: posted_legs.map(|(value, _, _)| money_pb(value)),
        posted_source_transaction_id: posted_legs.map(|(_, source, _)| source.to_string()),
        posted_destination_transaction_id: posted_legs.map(|(_, _, destination)| destination.to_string()),
        ended_at: ended_at.map(timestamp),
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

    const NOW: Timestamp = Timestamp::from_micros(1_700_000_000_000_000);

    #[test]
    fn a_pending_timeout_sets_the_deadline_within_bounds() {
        let request = |seconds: i64, nanos: i32| pb::CreateTransferRequest {
            source_account_id: acc(1).to_string(),
            destination_account_id: acc(2).to_string(),
            value: eur(250),
            meta: BTreeMap::new(),
            pending_timeout: Some(prost_types::Duration { seconds, nanos }),
        };
        let mut v = Violations::new();
        let command = create_transfer(&request(3_600, 500_000), ids(), NOW, &mut v).unwrap();
        let Command::Transfer(TransferCommand::CreateTransfer { pending, .. }) = command else {
            panic!("wrong command");
        };
        let expected = Timestamp::from_micros(NOW.0 + 3_600_000_000 + 500);
        assert_eq!(pending, Some(PendingTerms { expires_at: expected }));
        for (seconds, nanos) in [
            (0, 999_999_000),
            (30 * 86_400, 1_000),
            (60, 1),
            (-5, 0),
            (i64::MAX, 0),
        ] {
            let mut v = Violations::new();
            assert!(create_transfer(&request(seconds, nanos), ids(), NOW, &mut v).is_none());
            assert_eq!(fields(v), ["pending_timeout"], "{seconds}s {nanos}ns");
        }
        let mut v = Violations::new();
        assert!(create_transfer(&request(30 * 86_400, 0), ids(), NOW, &mut v).is_some());
    }

    #[test]
    fn post_takes_the_whole_value_or_a_positive_amount() {
        let legs = (ids().source_transaction, ids().destination_transaction);
        let request = |value| pb::PostPendingTransferRequest {
            transfer_id: ids().transfer.to_string(),
            value,
        };
        let mut v = Violations::new();
        let whole = post_pending_transfer(&request(None), legs, &mut v).unwrap();
        assert!(matches!(
            whole,
            Command::Transfer(TransferCommand::PostPendingTransfer { value: None, .. })
        ));
        let part = post_pending_transfer(&request(eur(5)), legs, &mut v).unwrap();
        assert!(matches!(
            part,
            Command::Transfer(TransferCommand::PostPendingTransfer { value: Some(value), .. })
                if value == Money::new(5, Currency::EUR)
        ));
        assert!(post_pending_transfer(&request(eur(0)), legs, &mut v).is_none());
        assert_eq!(fields(v), ["value.amount"]);
        let mut v = Violations::new();
        let bad = pb::PostPendingTransferRequest {
            transfer_id: "acc_x".into(),
            value: None,
        };
        assert!(post_pending_transfer(&bad, legs, &mut v).is_none());
        assert_eq!(fields(v), ["transfer_id"]);
    }

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
            pending_timeout: None,
        };
        let mut v = Violations::new();
        assert!(create_transfer(&request, ids(), NOW, &mut v).is_none());
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
            pending_timeout: None,
        };
        let mut v = Violations::new();
        assert!(create_transfer(&request, ids(), NOW, &mut v).is_none());
        assert_eq!(fields(v), ["value.amount", "destination_account_id"]);

        let request = pb::CreateTransferRequest {
            value: None,
            ..request
        };
        let mut v = Violations::new();
        assert!(create_transfer(&request, ids(), NOW, &mut v).is_none());
        assert_eq!(fields(v), ["value", "destination_account_id"]);
    }

    #[test]
    fn create_transfer_builds_the_command() {
        let request = pb::CreateTransferRequest {
            source_account_id: acc(1).to_string(),
            destination_account_id: acc(2).to_string(),
            value: eur(250),
            meta: [("order".to_owned(), "42".to_owned())].into(),
            pending_timeout: None,
        };
        let mut v = Violations::new();
        let command = create_transfer(&request, ids(), NOW, &mut v).unwrap();
        assert!(v.is_empty());
        let Command::Transfer(TransferCommand::CreateTransfer {
            id,
            source_account_id,
            destination_account_id,
            value,
            meta,
            source_transaction_id,
            destination_transaction_id,
            pending,
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
        assert_eq!(pending, None);
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
