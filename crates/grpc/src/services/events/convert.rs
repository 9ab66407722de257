//! Domain events → `pb::EventEnvelope`, for `EventService.SubscribeEvents`.
//!
//! Every event type is mapped by an exhaustive `match`, so a new event fails
//! to compile until it is either given a message or explicitly withheld.
//! Events that create a resource carry the resource as `Get…` would have
//! answered right after (folded with the domain's own `evolve`), so the
//! two never disagree.

use paycore_domain::aggregate::Aggregate;
use paycore_domain::events::{MetaUpdated, TokenUse};
use paycore_domain::project::api_key::KeyKind;
use paycore_domain::{Event, StreamRef, Timestamp};
use paycore_store::RecordedEvent;

use crate::convert::{meta_pb, money_pb, timestamp};
use crate::pb;
use crate::pb::event_envelope::Event as Body;
use crate::services::account::convert::{account_pb, transaction_pb};
use crate::services::bank_account::convert::bank_account_pb;
use crate::services::bank_payin::convert::{bank_payin_pb, bank_payin_reference_pb};
use crate::services::bank_payout::convert::bank_payout_pb;
use crate::services::card::convert::{card_pb, card_token_pb};
use crate::services::card_payin::convert::{card_payin_pb, card_payin_refund_pb, decline_reason_pb};
use crate::services::customer::convert::{customer_pb, identity_pb};
use crate::services::file::convert::file_pb;
use crate::services::project::convert::project_pb;
use crate::services::transfer::convert::transfer_pb;

/// The stream categories whose events subscriptions deliver.
pub const DELIVERED_CATEGORIES: &[&str] = &[
    "project",
    "apikey",
    "customer",
    "account",
    "transfer",
    "projectbalance",
    "cardtoken",
    "card",
    "cardpayin",
    "cardpayinrefund",
    "bankaccount",
    "bankpayout",
    "bankpayinreference",
    "bankpayin",
    "file",
];

/// The stream categories whose events are never delivered (see [`delivers`]).
pub const WITHHELD_CATEGORIES: &[&str] = &[
    "idempotency",
    "payoutdestination",
    "payinreferencecode",
    "fxrate",
    "consumer",
    "deployment",
    // Open banking (issue 13): withheld until its typed messages exist.
    "institution",
    "aggregationconnection",
    "aggregationimport",
    "aggregatedaccount",
];

/// The event types of the withheld categories (see [`delivers`]): never
/// delivered, and refused as a filter.
pub const WITHHELD_EVENT_TYPES: &[&str] = &[
    "IdempotencyKeyUsed",
    "MinirefAssigned",
    "PayinReferenceCodeClaimed",
    "FxRateSet",
    "FxRateRemoved",
    "ConsumerPositionCommitted",
    "DeploymentBootstrapped",
    // Open banking (issue 13): withheld until its typed messages exist.
    "InstitutionActivated",
    "InstitutionDeactivated",
    "AggregationConnectionCreated",
    "AggregationInstitutionChosen",
    "AggregationConnectionStatusChanged",
    "AggregationSourceUpdated",
    "AggregationConsentGranted",
    "AggregationConsentExpired",
    "AggregationConnectionAccountsFound",
    "AggregationConnectionDeleted",
    "AggregationImportCreated",
    "AggregationImportStarted",
    "AggregationImportProgressed",
    "AggregationImportSucceeded",
    "AggregationImportFailed",
    "AggregatedAccountDiscovered",
    "AggregatedAccountUpdated",
    "AggregatedAccountEnabled",
    "AggregatedAccountArchived",
    "AggregatedAccountUnarchived",
    "AggregatedTransactionsRecorded",
    "AggregatedTransactionsRemoved",
];

/// Whether subscriptions deliver the events of `stream`; the policy behind
/// [`DELIVERED_CATEGORIES`], exhaustive so a new kind of stream is decided.
pub fn delivers(stream: &StreamRef) -> bool {
    match stream {
        StreamRef::Project(_)
        | StreamRef::ApiKey(_)
        | StreamRef::Customer(_)
        | StreamRef::Account(_)
        | StreamRef::Transfer(_)
        | StreamRef::ProjectBalance(..)
        | StreamRef::CardToken(_)
        | StreamRef::Card(_)
        | StreamRef::CardPayin(_)
        | StreamRef::CardPayinRefund(_)
        | StreamRef::BankAccount(_)
        | StreamRef::BankPayout(_)
        | StreamRef::BankPayinReference(_)
        | StreamRef::BankPayin(_)
        | StreamRef::File(_) => true,
        // Request hashes; guards shared by every project whose content the
        // payout and the reference carry; platform rates; our own
        // checkpoints; the platform's first-start record.
        StreamRef::Idempotency(..)
        | StreamRef::PayoutDestination(_)
        | StreamRef::PayinReferenceCode(_)
        | StreamRef::FxRate(..)
        | StreamRef::Consumer(..)
        | StreamRef::Deployment => false,
        // Open banking (issue 13): withheld until its typed messages exist.
        StreamRef::Institution(..)
        | StreamRef::AggregationConnection(_)
        | StreamRef::AggregationImport(_)
        | StreamRef::AggregatedAccount(_) => false,
    }
}

/// Every event type a subscription can deliver.
pub fn delivered_event_types() -> impl Iterator<Item = &'static str> {
    Event::TYPES
        .iter()
        .copied()
        .filter(|name| !WITHHELD_EVENT_TYPES.contains(name))
}

/// A creation event that did not fold into the state it creates: a bug
/// between this module and the domain, reported rather than skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{event_type} did not create a {kind}")]
pub struct NotCreated {
    pub event_type: &'static str,
    pub kind: &'static str,
}

/// The envelope of a stored event, already decoded as `event`; `None` for an
/// event that is never delivered.
pub fn envelope_pb(recorded: &RecordedEvent, event: &Event) -> Result<Option<pb::EventEnvelope>, NotCreated> {
    let Some(body) = event_pb(recorded.stream.id(), event)? else {
        return Ok(None);
    };
    let metadata = &recorded.metadata;
    Ok(Some(pb::EventEnvelope {
        position: recorded.position,
        stream: recorded.stream.to_string(),
        category: recorded.stream.category().to_owned(),
        version: recorded.version,
        event_type: recorded.event_type.to_string(),
        recorded_at: Some(timestamp(Timestamp::from_micros(recorded.recorded_at_micros))),
        correlation_id: metadata.correlation_id.map(|id| id.to_string()),
        traceparent: metadata.trace.map(|trace| trace.traceparent()),
        actor: metadata.actor.clone(),
        event: Some(body),
    }))
}

/// The typed message of `event`, which belongs to the stream whose ID (the
/// part after the category) is `id`; `None` for an event never delivered.
pub fn event_pb(id: &str, event: &Event) -> Result<Option<Body>, NotCreated> {
    let meta = |updated: &MetaUpdated| meta_updated_pb(id, updated);
    let body = match event {
        Event::ProjectCreated(_) => {
            Body::ProjectCreated(created(event, "project", |s| s.as_project().map(project_pb))?)
        }
        Event::ProjectMetaUpdated(e) => Body::ProjectMetaUpdated(meta(e)),
        Event::ApiKeyCreated(e) => Body::ApiKeyCreated(pb::ApiKeyCreatedEvent {
            api_key_id: e.id.to_string(),
            project_id: e.project_id.to_string(),
            kind: key_kind_pb(e.kind).into(),
            created_at: Some(timestamp(e.created_at)),
        }),
        Event::ApiKeyRevoked(e) => Body::ApiKeyRevoked(pb::ApiKeyRevokedEvent {
            api_key_id: id.to_owned(),
            revoked_at: Some(timestamp(e.revoked_at)),
        }),
        Event::CustomerCreated(_) => {
            Body::CustomerCreated(created(event, "customer", |s| s.as_customer().map(customer_pb))?)
        }
        Event::CustomerIdentityUpdated(e) => {
            Body::CustomerIdentityUpdated(pb::CustomerIdentityUpdatedEvent {
                customer_id: id.to_owned(),
                identity: e.identity.as_ref().map(identity_pb),
            })
        }
        Event::CustomerMetaUpdated(e) => Body::CustomerMetaUpdated(meta(e)),
        Event::AccountOpened(_) => {
            Body::AccountOpened(created(event, "account", |s| s.as_account().map(account_pb))?)
        }
        Event::NegativeBalanceAllowanceChanged(e) => {
            Body::NegativeBalanceAllowanceChanged(pb::NegativeBalanceAllowanceChangedEvent {
                account_id: id.to_owned(),
                allow_negative_balance: e.allow_negative_balance,
            })
        }
        Event::AccountMetaUpdated(e) => Body::AccountMetaUpdated(meta(e)),
        Event::TransactionRecorded(e) => Body::TransactionRecorded(transaction_pb(&e.transaction)),
        Event::TransferCreated(_) => {
            Body::TransferCreated(created(event, "transfer", |s| s.as_transfer().map(transfer_pb))?)
        }
        Event::TransferMetaUpdated(e) => Body::TransferMetaUpdated(meta(e)),
        Event::ProjectBalanceChanged(e) => Body::ProjectBalanceChanged(pb::ProjectBalanceChangedEvent {
            project_id: e.project_id.to_string(),
            delta: Some(money_pb(e.delta)),
            total_after: Some(money_pb(e.total_after)),
            account_id: e.account_id.to_string(),
            transaction_id: e.transaction_id.to_string(),
        }),
        Event::CardTokenCreated(_) => Body::CardTokenCreated(created(event, "card token", |s| {
            s.as_card_token().map(card_token_pb)
        })?),
        Event::CardTokenUsed(e) => Body::CardTokenUsed(pb::CardTokenUsedEvent {
            card_token_id: id.to_owned(),
            card_id: match e.used_by {
                TokenUse::Card(card) => Some(card.to_string()),
                TokenUse::CardPayin(_) => None,
            },
            card_payin_id: match e.used_by {
                TokenUse::CardPayin(payin) => Some(payin.to_string()),
                TokenUse::Card(_) => None,
            },
            used_at: Some(timestamp(e.used_at)),
        }),
        Event::CardCreated(_) => Body::CardCreated(created(event, "card", |s| s.as_card().map(card_pb))?),
        Event::CardMetaUpdated(e) => Body::CardMetaUpdated(meta(e)),
        Event::CardPayinCreated(_) => Body::CardPayinCreated(created(event, "card payin", |s| {
            s.as_card_payin().map(card_payin_pb)
        })?),
        Event::CardPayinAuthenticationRequested(e) => {
            Body::CardPayinAuthenticationRequested(pb::CardPayinAuthenticationRequestedEvent {
                card_payin_id: id.to_owned(),
                authentication_url: e.authentication_url.clone(),
            })
        }
        Event::CardPayinAuthorized(e) => Body::CardPayinAuthorized(pb::CardPayinAuthorizedEvent {
            card_payin_id: id.to_owned(),
            authorized_at: Some(timestamp(e.authorized_at)),
        }),
        Event::CardPayinDeclined(e) => Body::CardPayinDeclined(pb::CardPayinDeclinedEvent {
            card_payin_id: id.to_owned(),
            reason: decline_reason_pb(e.reason).into(),
            declined_at: Some(timestamp(e.declined_at)),
        }),
        Event::CardPayinSettled(e) => Body::CardPayinSettled(pb::CardPayinSettledEvent {
            card_payin_id: id.to_owned(),
            transaction_id: e.transaction_id.to_string(),
            settled_at: Some(timestamp(e.settled_at)),
        }),
        Event::CardPayinRefundChanged(e) => Body::CardPayinRefundChanged(pb::CardPayinRefundChangedEvent {
            card_payin_id: id.to_owned(),
            card_payin_refund_id: e.refund_id.to_string(),
            delta: Some(money_pb(e.delta)),
            refunded_value_after: Some(money_pb(e.refunded_value_after)),
        }),
        Event::CardPayinMetaUpdated(e) => Body::CardPayinMetaUpdated(meta(e)),
        Event::CardPayinRefundCreated(_) => {
            Body::CardPayinRefundCreated(created(event, "card payin refund", |s| {
                s.as_card_payin_refund().map(card_payin_refund_pb)
            })?)
        }
        Event::CardPayinRefundCompleted(e) => {
            Body::CardPayinRefundCompleted(pb::CardPayinRefundCompletedEvent {
                card_payin_refund_id: id.to_owned(),
                completed_at: Some(timestamp(e.completed_at)),
            })
        }
        Event::CardPayinRefundFailed(e) => Body::CardPayinRefundFailed(pb::CardPayinRefundFailedEvent {
            card_payin_refund_id: id.to_owned(),
            failure_transaction_id: e.failure_transaction_id.to_string(),
            failed_at: Some(timestamp(e.failed_at)),
        }),
        Event::CardPayinRefundMetaUpdated(e) => Body::CardPayinRefundMetaUpdated(meta(e)),
        Event::BankAccountCreated(_) => Body::BankAccountCreated(created(event, "bank account", |s| {
            s.as_bank_account().map(bank_account_pb)
        })?),
        Event::BankAccountMetaUpdated(e) => Body::BankAccountMetaUpdated(meta(e)),
        Event::BankPayoutCreated(_) => Body::BankPayoutCreated(created(event, "bank payout", |s| {
            s.as_bank_payout().map(bank_payout_pb)
        })?),
        Event::BankPayoutCompleted(e) => Body::BankPayoutCompleted(pb::BankPayoutCompletedEvent {
            bank_payout_id: id.to_owned(),
            completed_at: Some(timestamp(e.completed_at)),
        }),
        Event::BankPayoutFailed(e) => Body::BankPayoutFailed(pb::BankPayoutReversedEvent {
            bank_payout_id: id.to_owned(),
            failure_transaction_id: e.failure_transaction_id.to_string(),
            reversed_at: Some(timestamp(e.reversed_at)),
        }),
        Event::BankPayoutReturned(e) => Body::BankPayoutReturned(pb::BankPayoutReversedEvent {
            bank_payout_id: id.to_owned(),
            failure_transaction_id: e.failure_transaction_id.to_string(),
            reversed_at: Some(timestamp(e.reversed_at)),
        }),
        Event::BankPayoutMetaUpdated(e) => Body::BankPayoutMetaUpdated(meta(e)),
        Event::BankPayinReferenceCreated(_) => {
            Body::BankPayinReferenceCreated(created(event, "bank payin reference", |s| {
                s.as_bank_payin_reference().map(bank_payin_reference_pb)
            })?)
        }
        Event::BankPayinReferenceAccountChanged(e) => {
            Body::BankPayinReferenceAccountChanged(pb::BankPayinReferenceAccountChangedEvent {
                bank_payin_reference_id: id.to_owned(),
                account_id: e.account_id.to_string(),
            })
        }
        Event::BankPayinReferenceMetaUpdated(e) => Body::BankPayinReferenceMetaUpdated(meta(e)),
        Event::BankPayinReceived(_) => Body::BankPayinReceived(created(event, "bank payin", |s| {
            s.as_bank_payin().map(bank_payin_pb)
        })?),
        Event::BankPayinMetaUpdated(e) => Body::BankPayinMetaUpdated(meta(e)),
        Event::FileUploaded(_) => Body::FileUploaded(created(event, "file", |s| s.as_file().map(file_pb))?),
        // The withheld categories' events (see `delivers`).
        Event::IdempotencyKeyUsed(_)
        | Event::MinirefAssigned(_)
        | Event::PayinReferenceCodeClaimed(_)
        | Event::FxRateSet(_)
        | Event::FxRateRemoved(_)
        | Event::ConsumerPositionCommitted(_)
        | Event::DeploymentBootstrapped(_) => return Ok(None),
        // Open banking (issue 13): withheld until its typed messages exist.
        Event::InstitutionActivated(_)
        | Event::InstitutionDeactivated(_)
        | Event::AggregationConnectionCreated(_)
        | Event::AggregationInstitutionChosen(_)
        | Event::AggregationConnectionStatusChanged(_)
        | Event::AggregationSourceUpdated(_)
        | Event::AggregationConsentGranted(_)
        | Event::AggregationConsentExpired(_)
        | Event::AggregationConnectionAccountsFound(_)
        | Event::AggregationConnectionDeleted(_)
        | Event::AggregationImportCreated(_)
        | Event::AggregationImportStarted(_)
        | Event::AggregationImportProgressed(_)
        | Event::AggregationImportSucceeded(_)
        | Event::AggregationImportFailed(_)
        | Event::AggregatedAccountDiscovered(_)
        | Event::AggregatedAccountUpdated(_)
        | Event::AggregatedAccountEnabled(_)
        | Event::AggregatedAccountArchived(_)
        | Event::AggregatedAccountUnarchived(_)
        | Event::AggregatedTransactionsRecorded(_)
        | Event::AggregatedTransactionsRemoved(_) => return Ok(None),
    };
    Ok(Some(body))
}

/// The resource a creation event creates, as `to_pb` renders its state.
fn created<P>(
    event: &Event,
    kind: &'static str,
    to_pb: impl FnOnce(&Aggregate) -> Option<P>,
) -> Result<P, NotCreated> {
    to_pb(&Aggregate::Empty.evolve(event)).ok_or(NotCreated {
        event_type: event.event_type(),
        kind,
    })
}

fn meta_updated_pb(id: &str, updated: &MetaUpdated) -> pb::MetaUpdatedEvent {
    pb::MetaUpdatedEvent {
        id: id.to_owned(),
        meta: meta_pb(&updated.meta),
    }
}

fn key_kind_pb(kind: KeyKind) -> pb::ApiKeyKind {
    match kind {
        KeyKind::Secret => pb::ApiKeyKind::Secret,
        KeyKind::Public => pb::ApiKeyKind::Public,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use paycore_domain::consumer::ConsumerName;
    use paycore_domain::events::*;
    use paycore_domain::kernel::iban::Iban;
    use paycore_domain::*;
    use paycore_store::{EventMetadata, StreamName};
    use uuid::Uuid;

    use super::*;

    const AT: Timestamp = Timestamp::from_micros(1_750_000_000_250_000);

    fn project() -> ProjectId {
        ProjectId::from_uuid(Uuid::from_u128(1))
    }

    fn account() -> AccountId {
        AccountId::from_uuid(Uuid::from_u128(2))
    }

    fn recorded(stream: &StreamRef, version: u64, event: &Event) -> RecordedEvent {
        let encoded = event.encode();
        RecordedEvent {
            position: 41,
            stream: StreamName::from(stream.name()),
            version,
            event_type: encoded.event_type.into(),
            schema_version: encoded.schema_version,
            recorded_at_micros: 1_750_000_000_500_000,
            metadata: Arc::new(EventMetadata {
                correlation_id: Some(Uuid::from_u128(9)),
                causation_id: None,
                idempotency_key: Some("order-42".into()),
                actor: Some("key_x".into()),
                project_id: Some(project().to_string()),
                trace: None,
            }),
            payload: encoded.payload.into(),
            hash: [0; 32],
            last_in_commit: true,
        }
    }

    fn envelope(stream: &StreamRef, version: u64, event: &Event) -> Option<pb::EventEnvelope> {
        envelope_pb(&recorded(stream, version, event), event).unwrap()
    }

    #[test]
    fn a_transaction_arrives_typed_with_its_place_in_the_log() {
        let transaction = Transaction {
            id: TransactionId::from_uuid(Uuid::from_u128(3)),
            account_id: account(),
            project_id: project(),
            kind: TransactionKind::TransferSource(TransferId::from_uuid(Uuid::from_u128(4))),
            value: Money::new(-250, Currency::EUR),
            balance_after: Money::new(750, Currency::EUR),
            created_at: AT,
        };
        let event = Event::TransactionRecorded(TransactionRecorded { transaction });
        let envelope = envelope(&StreamRef::Account(account()), 3, &event).unwrap();
        assert_eq!(envelope.position, 41);
        assert_eq!(envelope.stream, format!("account-{}", account()));
        assert_eq!(envelope.category, "account");
        assert_eq!(envelope.version, 3);
        assert_eq!(envelope.event_type, "TransactionRecorded");
        assert_eq!(
            envelope.recorded_at,
            Some(prost_types::Timestamp {
                seconds: 1_750_000_000,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            envelope.correlation_id.as_deref(),
            Some("00000000-0000-0000-0000-000000000009")
        );
        assert_eq!(envelope.actor.as_deref(), Some("key_x"));
        let Some(Body::TransactionRecorded(tx)) = envelope.event else {
            panic!("{:?}", envelope.event);
        };
        assert_eq!(tx, transaction_pb(&transaction));
        assert_eq!(tx.r#type(), pb::TransactionType::TransferSource);
        assert_eq!(tx.balance_after.map(|m| m.amount), Some(750));
    }

    #[test]
    fn a_creation_carries_the_resource_as_created() {
        let event = Event::AccountOpened(AccountOpened {
            id: account(),
            project_id: project(),
            customer_id: None,
            currency: Currency::USD,
            allow_negative_balance: true,
            meta: Meta::default(),
            created_at: AT,
        });
        let Some(Body::AccountOpened(opened)) = event_pb(&account().to_string(), &event).unwrap() else {
            panic!("not an AccountOpened");
        };
        assert_eq!(opened.id, account().to_string());
        assert_eq!(opened.project_id, project().to_string());
        assert_eq!(
            opened.balance,
            Some(pb::Money {
                currency: "USD".into(),
                amount: 0
            })
        );
        assert!(opened.allow_negative_balance);
    }

    #[test]
    fn changes_name_their_resource_from_the_stream() {
        let mut v = Violations::new();
        let meta = Meta::parse([("k".to_owned(), "v".to_owned())], "meta", &mut v).unwrap();
        let event = Event::AccountMetaUpdated(MetaUpdated { meta });
        let envelope = envelope(&StreamRef::Account(account()), 1, &event).unwrap();
        let Some(Body::AccountMetaUpdated(updated)) = envelope.event else {
            panic!("{:?}", envelope.event);
        };
        assert_eq!(updated.id, account().to_string());
        assert_eq!(updated.meta.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn api_keys_arrive_without_their_secret_hash() {
        let key = ApiKeyId::from_uuid(Uuid::from_u128(5));
        let event = Event::ApiKeyCreated(ApiKeyCreated {
            id: key,
            project_id: project(),
            kind: KeyKind::Public,
            secret_hash: [0xa5; 32],
            created_at: AT,
        });
        let envelope = envelope(&StreamRef::ApiKey(key), 0, &event).unwrap();
        let Some(Body::ApiKeyCreated(created)) = &envelope.event else {
            panic!("{:?}", envelope.event);
        };
        assert_eq!(created.kind(), pb::ApiKeyKind::Public);
        assert_eq!(created.api_key_id, key.to_string());
        let encoded = prost::Message::encode_to_vec(&envelope);
        assert!(!encoded.windows(32).any(|window| window == [0xa5; 32]));
    }

    #[test]
    fn write_side_and_platform_events_are_withheld() {
        let withheld = [
            (
                StreamRef::Idempotency(project(), "k".into()),
                Event::IdempotencyKeyUsed(IdempotencyKeyUsed {
                    project_id: project(),
                    verbatim_key: None,
                    request_hash: [1; 32],
                    resource: ResourceRef::Account(account()),
                    used_at: AT,
                }),
            ),
            (
                StreamRef::FxRate(Currency::EUR, Currency::USD),
                Event::FxRateRemoved(FxRateRemoved { removed_at: AT }),
            ),
            (
                StreamRef::Consumer(project(), ConsumerName::parse("billing").unwrap()),
                Event::ConsumerPositionCommitted(ConsumerPositionCommitted {
                    project_id: project(),
                    consumer: ConsumerName::parse("billing").unwrap(),
                    position: 7,
                    committed_at: AT,
                }),
            ),
        ];
        for (stream, event) in withheld {
            assert!(!delivers(&stream), "{stream}");
            assert!(WITHHELD_EVENT_TYPES.contains(&event.event_type()));
            assert_eq!(envelope(&stream, 0, &event), None, "{stream}");
        }
    }

    #[test]
    fn the_category_lists_follow_the_policy() {
        let iban = Iban::parse("ES9121000418450200051332").unwrap();
        let every_kind = [
            StreamRef::Project(project()),
            StreamRef::ApiKey(ApiKeyId::from_uuid(Uuid::from_u128(2))),
            StreamRef::Customer(CustomerId::from_uuid(Uuid::from_u128(3))),
            StreamRef::Account(account()),
            StreamRef::Transfer(TransferId::from_uuid(Uuid::from_u128(5))),
            StreamRef::ProjectBalance(project(), Currency::EUR),
            StreamRef::Idempotency(project(), "k".into()),
            StreamRef::CardToken(CardTokenId::from_uuid(Uuid::from_u128(6))),
            StreamRef::Card(CardId::from_uuid(Uuid::from_u128(7))),
            StreamRef::CardPayin(CardPayinId::from_uuid(Uuid::from_u128(8))),
            StreamRef::CardPayinRefund(CardPayinRefundId::from_uuid(Uuid::from_u128(9))),
            StreamRef::BankAccount(BankAccountId::from_uuid(Uuid::from_u128(10))),
            StreamRef::BankPayout(BankPayoutId::from_uuid(Uuid::from_u128(11))),
            StreamRef::PayoutDestination(iban),
            StreamRef::BankPayinReference(BankPayinReferenceId::from_uuid(Uuid::from_u128(12))),
            StreamRef::PayinReferenceCode(paycore_domain::kernel::bank::PayinReferenceCode::from_index(1)),
            StreamRef::BankPayin(BankPayinId::from_uuid(Uuid::from_u128(13))),
            StreamRef::File(FileId::from_uuid(Uuid::from_u128(14))),
            StreamRef::FxRate(Currency::EUR, Currency::USD),
            StreamRef::Consumer(project(), ConsumerName::parse("b").unwrap()),
            StreamRef::Deployment,
            StreamRef::Institution(
                project(),
                paycore_domain::kernel::institution::InstitutionId::parse("SANDBOX_GB_BANK").unwrap(),
            ),
            StreamRef::AggregationConnection(paycore_domain::AggregationConnectionId::from_uuid(
                Uuid::from_u128(15),
            )),
            StreamRef::AggregationImport(paycore_domain::AggregationImportId::from_uuid(Uuid::from_u128(
                16,
            ))),
            StreamRef::AggregatedAccount(paycore_domain::AggregatedAccountId::from_uuid(Uuid::from_u128(
                17,
            ))),
        ];
        let delivered: Vec<&str> = every_kind
            .iter()
            .filter(|stream| delivers(stream))
            .map(StreamRef::category)
            .collect();
        assert_eq!(delivered, DELIVERED_CATEGORIES);
        let withheld: Vec<&str> = every_kind
            .iter()
            .filter(|stream| !delivers(stream))
            .map(StreamRef::category)
            .collect();
        assert_eq!(withheld, WITHHELD_CATEGORIES);
        for name in WITHHELD_EVENT_TYPES {
            assert!(Event::TYPES.contains(name), "{name}");
        }
        assert_eq!(
            delivered_event_types().count() + WITHHELD_EVENT_TYPES.len(),
            Event::TYPES.len()
        );
    }
}
