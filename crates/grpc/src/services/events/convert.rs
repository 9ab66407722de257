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
use crate::services::account::convert::{account_pb, pending_transaction_pb, transaction_pb};
use crate::services::aggregated_account::convert::{
    account_personal_pb, account_type_pb, aggregated_account_pb, aggregated_transaction_pb, balance_pb,
};
use crate::services::aggregation_connection::convert::{
    aggregation_connection_pb, consent_pb, source_pb, status_pb,
};
use crate::services::aggregation_import::convert::{aggregation_import_pb, failure_pb, progress_pb};
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
    "institution",
    "aggregationconnection",
    "aggregationimport",
    "aggregatedaccount",
];

/// The stream categories whose events are never delivered (see [`delivers`]).
pub const WITHHELD_CATEGORIES: &[&str] = &[
    "idempotency",
    "payoutdestination",
    "payinreferencecode",
    "fxrate",
    "consumer",
    "deployment",
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
        // Open banking: the project's activations (an operator's act on the
        // project, like its API keys), its customers' connections, imports,
        // and accounts at other banks with their transactions (personal data
        // in `personal` sub-messages only, for crypto-shredding).
        StreamRef::Institution(..)
        | StreamRef::AggregationConnection(_)
        | StreamRef::AggregationImport(_)
        | StreamRef::AggregatedAccount(_) => true,
        // Request hashes; guards shared by every project whose content the
        // payout and the reference carry; platform rates; our own
        // checkpoints; the platform's first-start record.
        StreamRef::Idempotency(..)
        | StreamRef::PayoutDestination(_)
        | StreamRef::PayinReferenceCode(_)
        | StreamRef::FxRate(..)
        | StreamRef::Consumer(..)
        | StreamRef::Deployment => false,
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
        Event::InstitutionActivated(e) => Body::InstitutionActivated(pb::InstitutionActivatedEvent {
            project_id: e.project_id.to_string(),
            institution_id: e.institution_id.to_string(),
            activated_at: Some(timestamp(e.activated_at)),
        }),
        Event::InstitutionDeactivated(e) => Body::InstitutionDeactivated(pb::InstitutionDeactivatedEvent {
            project_id: e.project_id.to_string(),
            institution_id: e.institution_id.to_string(),
            deactivated_at: Some(timestamp(e.deactivated_at)),
        }),
        Event::AggregationConnectionCreated(_) => {
            Body::AggregationConnectionCreated(created(event, "connection", |s| {
                s.as_aggregation_connection().map(aggregation_connection_pb)
            })?)
        }
        Event::AggregationInstitutionChosen(e) => {
            Body::AggregationInstitutionChosen(pb::AggregationInstitutionChosenEvent {
                connection_id: id.to_owned(),
                institution_id: e.institution_id.to_string(),
                sources: e.sources.iter().map(source_pb).collect(),
                chosen_at: Some(timestamp(e.chosen_at)),
            })
        }
        Event::AggregationConnectionStatusChanged(e) => {
            let status = status_pb(&e.status);
            Body::AggregationConnectionStatusChanged(pb::AggregationConnectionStatusChangedEvent {
                connection_id: id.to_owned(),
                status: status.status.into(),
                action_required_reason: status.action_required_reason.map(Into::into),
                next_try_at: status.next_try_at,
                changed_at: Some(timestamp(e.changed_at)),
            })
        }
        Event::AggregationSourceUpdated(e) => {
            Body::AggregationSourceUpdated(pb::AggregationSourceUpdatedEvent {
                connection_id: id.to_owned(),
                source: Some(source_pb(&e.source)),
                updated_at: Some(timestamp(e.updated_at)),
            })
        }
        Event::AggregationConsentGranted(e) => {
            Body::AggregationConsentGranted(pb::AggregationConsentGrantedEvent {
                connection_id: id.to_owned(),
                consent: Some(consent_pb(&e.consent)),
            })
        }
        Event::AggregationConsentExpired(e) => {
            Body::AggregationConsentExpired(pb::AggregationConsentExpiredEvent {
                connection_id: id.to_owned(),
                expired_at: Some(timestamp(e.expired_at)),
            })
        }
        Event::AggregationConnectionAccountsFound(e) => {
            Body::AggregationConnectionAccountsFound(pb::AggregationConnectionAccountsFoundEvent {
                connection_id: id.to_owned(),
                aggregated_account_ids: e.account_ids.iter().map(ToString::to_string).collect(),
                found_at: Some(timestamp(e.found_at)),
            })
        }
        Event::AggregationConnectionDeleted(e) => {
            Body::AggregationConnectionDeleted(pb::AggregationConnectionDeletedEvent {
                connection_id: id.to_owned(),
                deleted_at: Some(timestamp(e.deleted_at)),
            })
        }
        Event::AggregationImportCreated(_) => {
            Body::AggregationImportCreated(created(event, "import", |s| {
                s.as_aggregation_import().map(aggregation_import_pb)
            })?)
        }
        Event::AggregationImportStarted(e) => {
            Body::AggregationImportStarted(pb::AggregationImportStartedEvent {
                import_id: id.to_owned(),
                started_at: Some(timestamp(e.started_at)),
            })
        }
        Event::AggregationImportProgressed(e) => {
            Body::AggregationImportProgressed(pb::AggregationImportProgressedEvent {
                import_id: id.to_owned(),
                progress: Some(progress_pb(&e.progress)),
                progressed_at: Some(timestamp(e.progressed_at)),
            })
        }
        Event::AggregationImportSucceeded(e) => {
            Body::AggregationImportSucceeded(pb::AggregationImportSucceededEvent {
                import_id: id.to_owned(),
                progress: Some(progress_pb(&e.progress)),
                finished_at: Some(timestamp(e.finished_at)),
            })
        }
        Event::AggregationImportFailed(e) => {
            Body::AggregationImportFailed(pb::AggregationImportFailedEvent {
                import_id: id.to_owned(),
                failure: Some(failure_pb(&e.reason, &e.detail)),
                finished_at: Some(timestamp(e.finished_at)),
            })
        }
        Event::AggregatedAccountDiscovered(_) => {
            Body::AggregatedAccountDiscovered(created(event, "aggregated account", |s| {
                s.as_aggregated_account().map(aggregated_account_pb)
            })?)
        }
        Event::AggregatedAccountUpdated(e) => {
            Body::AggregatedAccountUpdated(pb::AggregatedAccountUpdatedEvent {
                aggregated_account_id: id.to_owned(),
                r#type: account_type_pb(e.account_type).into(),
                personal: Some(account_personal_pb(&e.personal)),
                balances: e.balances.iter().map(balance_pb).collect(),
                updated_at: Some(timestamp(e.updated_at)),
            })
        }
        Event::AggregatedAccountEnabled(e) => {
            Body::AggregatedAccountEnabled(pb::AggregatedAccountEnabledEvent {
                aggregated_account_id: id.to_owned(),
                enabled_at: Some(timestamp(e.enabled_at)),
            })
        }
        Event::AggregatedAccountArchived(e) => {
            Body::AggregatedAccountArchived(pb::AggregatedAccountArchivedEvent {
                aggregated_account_id: id.to_owned(),
                archived_at: Some(timestamp(e.archived_at)),
            })
        }
        Event::AggregatedAccountUnarchived(e) => {
            Body::AggregatedAccountUnarchived(pb::AggregatedAccountUnarchivedEvent {
                aggregated_account_id: id.to_owned(),
                unarchived_at: Some(timestamp(e.unarchived_at)),
            })
        }
        Event::AggregatedTransactionsRecorded(e) => {
            Body::AggregatedTransactionsRecorded(pb::AggregatedTransactionsRecordedEvent {
                aggregated_account_id: id.to_owned(),
                import_id: e.import_id.map(|import| import.to_string()),
                transactions: e.transactions.iter().map(aggregated_transaction_pb).collect(),
                recorded_at: Some(timestamp(e.recorded_at)),
            })
        }
        Event::AggregatedTransactionsRemoved(e) => {
            Body::AggregatedTransactionsRemoved(pb::AggregatedTransactionsRemovedEvent {
                aggregated_account_id: id.to_owned(),
                import_id: e.import_id.map(|import| import.to_string()),
                transaction_ids: e.transaction_ids.iter().map(ToString::to_string).collect(),
                removed_at: Some(timestamp(e.removed_at)),
            })
        }
        Event::PendingTransferCreated(_) => {
            Body::PendingTransferCreated(created(event, "transfer", |s| s.as_transfer().map(transfer_pb))?)
        }
        Event::PendingTransferPosted(e) => Body::PendingTransferPosted(pb::PendingTransferPostedEvent {
            transfer_id: id.to_owned(),
            value: Some(money_pb(e.value)),
            source_transaction_id: e.source_transaction_id.to_string(),
            destination_transaction_id: e.destination_transaction_id.to_string(),
            posted_at: Some(timestamp(e.posted_at)),
        }),
        Event::PendingTransferVoided(e) => Body::PendingTransferVoided(pb::PendingTransferVoidedEvent {
            transfer_id: id.to_owned(),
            voided_at: Some(timestamp(e.voided_at)),
        }),
        Event::PendingTransferExpired(e) => Body::PendingTransferExpired(pb::PendingTransferExpiredEvent {
            transfer_id: id.to_owned(),
            expired_at: Some(timestamp(e.expired_at)),
        }),
        Event::PendingTransactionRecorded(e) => {
            Body::PendingTransactionRecorded(pending_transaction_pb(&e.pending))
        }
        // The withheld categories' events (see `delivers`).
        Event::IdempotencyKeyUsed(_)
        | Event::MinirefAssigned(_)
        | Event::PayinReferenceCodeClaimed(_)
        | Event::FxRateSet(_)
        | Event::FxRateRemoved(_)
        | Event::ConsumerPositionCommitted(_)
        | Event::DeploymentBootstrapped(_) => return Ok(None),
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

    // ---------------------------------------------------------------- open banking

    mod open_banking {
        use paycore_domain::aggregated_account::{
            AccountIdentifier, AccountOwner, AccountPersonal, AggregatedAccountType, AggregatedTransaction,
            Balance, BalanceType, BankId, Counterparty, OwnerRole, TransactionPersonal, TransactionStatus,
            transaction_id,
        };
        use paycore_domain::aggregation_connection::{
            ActionRequiredReason, ConnectionSource, ConnectionStatus, Consent, SourceKind, SourceState,
        };
        use paycore_domain::aggregation_import::{ImportFailure, ImportKind, ImportParts, ImportProgress};
        use paycore_domain::kernel::date::Date;
        use paycore_domain::kernel::institution::InstitutionId;

        use super::*;

        const LATER: Timestamp = Timestamp::from_micros(1_750_000_600_000_000);
        const IBAN: &str = "ES9121000418450200051332";
        const OWNER: &str = "Ada Lovelace";
        const COUNTERPARTY: &str = "Grocer & Sons";
        const DESCRIPTION: &str = "CARD 4242 GROCER & SONS LONDON";

        fn connection() -> AggregationConnectionId {
            AggregationConnectionId::from_uuid(Uuid::from_u128(21))
        }

        fn import() -> AggregationImportId {
            AggregationImportId::from_uuid(Uuid::from_u128(22))
        }

        fn aggregated() -> AggregatedAccountId {
            AggregatedAccountId::from_uuid(Uuid::from_u128(23))
        }

        fn customer() -> CustomerId {
            CustomerId::from_uuid(Uuid::from_u128(24))
        }

        fn institution() -> InstitutionId {
            InstitutionId::parse("sandbox_gb_albion").unwrap()
        }

        fn gbp() -> Currency {
            "GBP".parse().unwrap()
        }

        fn date(day: u8) -> Date {
            Date::new(2025, 6, day).unwrap()
        }

        fn source(state: SourceState) -> ConnectionSource {
            ConnectionSource {
                kind: SourceKind::Psd2Api,
                state,
                last_update: Some(AT),
                disabled: false,
                priority: 1,
            }
        }

        fn personal() -> AccountPersonal {
            AccountPersonal {
                bank_account_id: BankId::parse("ALB-0001").unwrap(),
                name: "Ada's current account".into(),
                identifier: Some(AccountIdentifier::Iban(Iban::parse(IBAN).unwrap())),
                owners: vec![AccountOwner {
                    name: OWNER.into(),
                    role: OwnerRole::Owner,
                }],
            }
        }

        fn transaction() -> AggregatedTransaction {
            let bank_id = BankId::parse("T-9001").unwrap();
            AggregatedTransaction {
                id: transaction_id(aggregated(), &bank_id),
                bank_transaction_id: bank_id,
                status: TransactionStatus::Booked,
                booking_date: date(2),
                value_date: Some(date(3)),
                amount: Money::new(-4_250, gbp()),
                replaces: None,
                personal: TransactionPersonal {
                    counterparty: Some(Counterparty {
                        name: Some(COUNTERPARTY.into()),
                        identifier: Some(AccountIdentifier::Other {
                            scheme: "SORT_CODE_ACCOUNT_NUMBER".into(),
                            value: "40-47-84 70872490".into(),
                        }),
                    }),
                    description: DESCRIPTION.into(),
                },
            }
        }

        /// One event of every open banking type, with its stream.
        fn every_event() -> Vec<(StreamRef, Event)> {
            let conn = StreamRef::AggregationConnection(connection());
            let imp = StreamRef::AggregationImport(import());
            let acc = StreamRef::AggregatedAccount(aggregated());
            let inst = StreamRef::Institution(project(), institution());
            let progress = ImportProgress {
                accounts_found: 5,
                accounts_done: 2,
                transactions_seen: 9_000,
                transactions_recorded: 8_500,
            };
            vec![
                (
                    inst.clone(),
                    Event::InstitutionActivated(InstitutionActivated {
                        project_id: project(),
                        institution_id: institution(),
                        activated_at: AT,
                    }),
                ),
                (
                    inst,
                    Event::InstitutionDeactivated(InstitutionDeactivated {
                        project_id: project(),
                        institution_id: institution(),
                        deactivated_at: LATER,
                    }),
                ),
                (
                    conn.clone(),
                    Event::AggregationConnectionCreated(AggregationConnectionCreated {
                        id: connection(),
                        project_id: project(),
                        customer_id: customer(),
                        institution_id: Some(institution()),
                        sources: vec![source(SourceState::NotSynced)],
                        redirect_url: Some("https://shop.example/back".into()),
                        created_at: AT,
                    }),
                ),
                (
                    conn.clone(),
                    Event::AggregationInstitutionChosen(AggregationInstitutionChosen {
                        institution_id: institution(),
                        sources: vec![source(SourceState::NotSynced)],
                        chosen_at: AT,
                    }),
                ),
                (
                    conn.clone(),
                    Event::AggregationConnectionStatusChanged(AggregationConnectionStatusChanged {
                        status: ConnectionStatus::ActionRequired {
                            reason: ActionRequiredReason::ScaRequired,
                        },
                        changed_at: LATER,
                    }),
                ),
                (
                    conn.clone(),
                    Event::AggregationSourceUpdated(AggregationSourceUpdated {
                        source: source(SourceState::ActionRequired {
                            reason: ActionRequiredReason::WebAuthenticationRequired,
                        }),
                        updated_at: LATER,
                    }),
                ),
                (
                    conn.clone(),
                    Event::AggregationConsentGranted(AggregationConsentGranted {
                        consent: Consent {
                            granted_at: AT,
                            expires_at: LATER,
                        },
                    }),
                ),
                (
                    conn.clone(),
                    Event::AggregationConsentExpired(AggregationConsentExpired { expired_at: LATER }),
                ),
                (
                    conn.clone(),
                    Event::AggregationConnectionAccountsFound(AggregationConnectionAccountsFound {
                        account_ids: vec![aggregated()],
                        found_at: AT,
                    }),
                ),
                (
                    conn,
                    Event::AggregationConnectionDeleted(AggregationConnectionDeleted { deleted_at: LATER }),
                ),
                (
                    imp.clone(),
                    Event::AggregationImportCreated(AggregationImportCreated {
                        id: import(),
                        project_id: project(),
                        connection_id: connection(),
                        kind: ImportKind::Advanced,
                        parts: ImportParts {
                            owners: false,
                            accounts: true,
                            transactions: true,
                            credit_cards: false,
                        },
                        history_from: date(1),
                        created_at: AT,
                    }),
                ),
                (
                    imp.clone(),
                    Event::AggregationImportStarted(AggregationImportStarted { started_at: AT }),
                ),
                (
                    imp.clone(),
                    Event::AggregationImportProgressed(AggregationImportProgressed {
                        progress,
                        progressed_at: AT,
                    }),
                ),
                (
                    imp.clone(),
                    Event::AggregationImportSucceeded(AggregationImportSucceeded {
                        progress,
                        finished_at: LATER,
                    }),
                ),
                (
                    imp,
                    Event::AggregationImportFailed(AggregationImportFailed {
                        reason: ImportFailure::RateLimited { next_try_at: LATER },
                        detail: "429 from the bank".into(),
                        finished_at: LATER,
                    }),
                ),
                (
                    acc.clone(),
                    Event::AggregatedAccountDiscovered(AggregatedAccountDiscovered {
                        id: aggregated(),
                        project_id: project(),
                        connection_id: connection(),
                        customer_id: customer(),
                        account_type: AggregatedAccountType::Current,
                        currency: gbp(),
                        personal: personal().before_consent(),
                        discovered_at: AT,
                    }),
                ),
                (
                    acc.clone(),
                    Event::AggregatedAccountUpdated(AggregatedAccountUpdated {
                        account_type: AggregatedAccountType::Current,
                        personal: personal(),
                        balances: vec![Balance {
                            balance_type: BalanceType::ClosingBooked,
                            amount: Money::new(123_456, gbp()),
                            date: date(4),
                        }],
                        updated_at: LATER,
                    }),
                ),
                (
                    acc.clone(),
                    Event::AggregatedAccountEnabled(AggregatedAccountEnabled { enabled_at: LATER }),
                ),
                (
                    acc.clone(),
                    Event::AggregatedAccountArchived(AggregatedAccountArchived { archived_at: LATER }),
                ),
                (
                    acc.clone(),
                    Event::AggregatedAccountUnarchived(AggregatedAccountUnarchived { unarchived_at: LATER }),
                ),
                (
                    acc.clone(),
                    Event::AggregatedTransactionsRecorded(AggregatedTransactionsRecorded {
                        import_id: Some(import()),
                        transactions: vec![transaction()],
                        recorded_at: LATER,
                    }),
                ),
                (
                    acc,
                    Event::AggregatedTransactionsRemoved(AggregatedTransactionsRemoved {
                        import_id: None,
                        transaction_ids: vec![transaction().id],
                        removed_at: LATER,
                    }),
                ),
            ]
        }

        fn body(stream: &StreamRef, event: &Event) -> Body {
            envelope(stream, 1, event).unwrap().event.unwrap()
        }

        #[test]
        fn every_open_banking_event_is_delivered_typed_under_its_own_name() {
            let events = every_event();
            let mut types: Vec<&str> = events.iter().map(|(_, event)| event.event_type()).collect();
            types.sort_unstable();
            types.dedup();
            assert_eq!(types.len(), 22, "one sample per open banking event type");
            for (stream, event) in &events {
                assert!(delivers(stream), "{stream}");
                assert!(DELIVERED_CATEGORIES.contains(&stream.category()));
                assert!(delivered_event_types().any(|name| name == event.event_type()));
                let envelope = envelope(stream, 1, event).unwrap();
                assert_eq!(envelope.category, stream.category());
                assert_eq!(envelope.event_type, event.event_type());
                // The oneof field set is the event type's (snake case of the
                // same name).
                let body = format!("{:?}", envelope.event.unwrap());
                assert!(body.starts_with(&format!("{}(", event.event_type())), "{body}");
            }
        }

        #[test]
        fn an_institution_activation_names_project_and_institution() {
            let stream = StreamRef::Institution(project(), institution());
            let (_, event) = &every_event()[0];
            let Body::InstitutionActivated(activated) = body(&stream, event) else {
                panic!("not an InstitutionActivated");
            };
            assert_eq!(activated.project_id, project().to_string());
            assert_eq!(activated.institution_id, "sandbox_gb_albion");
            assert_eq!(activated.activated_at, Some(timestamp(AT)));
        }

        #[test]
        fn a_connection_arrives_as_created_and_its_changes_by_id() {
            let events = every_event();
            let find = |name: &str| events.iter().find(|(_, e)| e.event_type() == name).unwrap();
            let (stream, event) = find("AggregationConnectionCreated");
            let Body::AggregationConnectionCreated(created) = body(stream, event) else {
                panic!("not a connection");
            };
            assert_eq!(created.id, connection().to_string());
            assert_eq!(created.project_id, project().to_string());
            assert_eq!(created.customer_id, customer().to_string());
            assert_eq!(created.institution_id.as_deref(), Some("sandbox_gb_albion"));
            assert_eq!(
                created.status(),
                pb::AggregationConnectionStatus::InitialActionRequired
            );
            assert_eq!(created.action_required_reason, None);
            assert_eq!(created.status_changed_at, Some(timestamp(AT)));
            assert_eq!(created.sources.len(), 1);
            assert_eq!(created.sources[0].kind(), pb::InstitutionSource::Psd2Api);
            assert_eq!(created.sources[0].state(), pb::AggregationSourceState::NotSynced);
            assert_eq!(created.sources[0].priority, 1);
            assert_eq!(created.consent, None);
            assert!(created.aggregated_account_ids.is_empty());
            assert_eq!(created.redirect_url.as_deref(), Some("https://shop.example/back"));

            let (stream, event) = find("AggregationConnectionStatusChanged");
            let Body::AggregationConnectionStatusChanged(changed) = body(stream, event) else {
                panic!("not a status change");
            };
            assert_eq!(changed.connection_id, connection().to_string());
            assert_eq!(changed.status(), pb::AggregationConnectionStatus::ActionRequired);
            assert_eq!(
                changed.action_required_reason(),
                pb::AggregationActionRequiredReason::ScaRequired
            );
            assert_eq!(changed.next_try_at, None);

            let delayed = Event::AggregationConnectionStatusChanged(AggregationConnectionStatusChanged {
                status: ConnectionStatus::RefreshDelayed { next_try_at: LATER },
                changed_at: AT,
            });
            let Body::AggregationConnectionStatusChanged(changed) = body(stream, &delayed) else {
                panic!("not a status change");
            };
            assert_eq!(changed.status(), pb::AggregationConnectionStatus::RefreshDelayed);
            assert_eq!(changed.action_required_reason, None);
            assert_eq!(changed.next_try_at, Some(timestamp(LATER)));

            let (stream, event) = find("AggregationSourceUpdated");
            let Body::AggregationSourceUpdated(updated) = body(stream, event) else {
                panic!("not a source update");
            };
            let source = updated.source.unwrap();
            assert_eq!(source.state(), pb::AggregationSourceState::ActionRequired);
            assert_eq!(
                source.action_required_reason(),
                pb::AggregationActionRequiredReason::WebAuthenticationRequired
            );
            assert_eq!(source.last_updated_at, Some(timestamp(AT)));

            let (stream, event) = find("AggregationConnectionDeleted");
            let Body::AggregationConnectionDeleted(deleted) = body(stream, event) else {
                panic!("not a deletion");
            };
            assert_eq!(deleted.connection_id, connection().to_string());
            assert_eq!(deleted.deleted_at, Some(timestamp(LATER)));
        }

        #[test]
        fn an_import_arrives_as_created_and_its_failure_with_its_reason() {
            let events = every_event();
            let find = |name: &str| events.iter().find(|(_, e)| e.event_type() == name).unwrap();
            let (stream, event) = find("AggregationImportCreated");
            let Body::AggregationImportCreated(created) = body(stream, event) else {
                panic!("not an import");
            };
            assert_eq!(created.id, import().to_string());
            assert_eq!(created.connection_id, connection().to_string());
            assert_eq!(created.kind(), pb::AggregationImportKind::Advanced);
            assert_eq!(created.status(), pb::AggregationImportStatus::Pending);
            let parts = created.parts.unwrap();
            assert!(parts.accounts && parts.transactions && !parts.owners && !parts.credit_cards);
            assert_eq!(
                created.history_from,
                Some(pb::Date {
                    year: 2025,
                    month: 6,
                    day: 1
                })
            );
            assert_eq!(created.progress, Some(pb::AggregationImportProgress::default()));
            assert_eq!(
                (created.failure, created.started_at, created.finished_at),
                (None, None, None)
            );

            let (stream, event) = find("AggregationImportSucceeded");
            let Body::AggregationImportSucceeded(succeeded) = body(stream, event) else {
                panic!("not a success");
            };
            assert_eq!(succeeded.import_id, import().to_string());
            let progress = succeeded.progress.unwrap();
            assert_eq!(
                (progress.accounts_found, progress.transactions_recorded),
                (5, 8_500)
            );

            let (stream, event) = find("AggregationImportFailed");
            let Body::AggregationImportFailed(failed) = body(stream, event) else {
                panic!("not a failure");
            };
            let failure = failed.failure.unwrap();
            assert_eq!(failure.reason(), pb::AggregationImportFailureReason::RateLimited);
            assert_eq!(failure.next_try_at, Some(timestamp(LATER)));
            assert_eq!(failure.action_required_reason, None);
            assert_eq!(failure.detail, "429 from the bank");
        }

        /// Every string of `message` (encoded), outside `personal`, must not
        /// hold any of `secrets`: personal data is in the `personal`
        /// sub-messages only.
        fn assert_only_in_personal(encoded_without_personal: &[u8], secrets: &[&str]) {
            for secret in secrets {
                assert!(
                    !encoded_without_personal
                        .windows(secret.len())
                        .any(|window| window == secret.as_bytes()),
                    "{secret} outside `personal`"
                );
            }
        }

        #[test]
        fn an_account_arrives_disabled_with_its_name_only_then_its_details_in_personal() {
            let events = every_event();
            let find = |name: &str| events.iter().find(|(_, e)| e.event_type() == name).unwrap();
            let (stream, event) = find("AggregatedAccountDiscovered");
            let Body::AggregatedAccountDiscovered(mut discovered) = body(stream, event) else {
                panic!("not an account");
            };
            assert_eq!(discovered.id, aggregated().to_string());
            assert_eq!(discovered.connection_id, connection().to_string());
            assert_eq!(discovered.customer_id, customer().to_string());
            assert_eq!(discovered.r#type(), pb::AggregatedAccountType::Current);
            assert_eq!(discovered.currency, "GBP");
            assert!(discovered.disabled);
            assert_eq!((discovered.enabled_at, discovered.archived_at), (None, None));
            assert_eq!(discovered.updated_at, Some(timestamp(AT)));
            let personal = discovered.personal.take().unwrap();
            assert_eq!(personal.name, "Ada's current account");
            assert_eq!(personal.bank_account_id, "ALB-0001");
            assert_eq!((personal.identifier, personal.owners.len()), (None, 0));
            assert_only_in_personal(
                &prost::Message::encode_to_vec(&discovered),
                &["Ada's current account", "ALB-0001"],
            );

            let (stream, event) = find("AggregatedAccountUpdated");
            let Body::AggregatedAccountUpdated(mut updated) = body(stream, event) else {
                panic!("not an account update");
            };
            assert_eq!(updated.aggregated_account_id, aggregated().to_string());
            assert_eq!(updated.balances.len(), 1);
            assert_eq!(
                updated.balances[0].r#type(),
                pb::AggregatedBalanceType::ClosingBooked
            );
            assert_eq!(
                updated.balances[0].amount,
                Some(pb::Money {
                    currency: "GBP".into(),
                    amount: 123_456
                })
            );
            let personal = updated.personal.take().unwrap();
            assert_eq!(
                personal.identifier.and_then(|i| i.identifier),
                Some(pb::aggregated_account_identifier::Identifier::Iban(IBAN.into()))
            );
            assert_eq!(personal.owners.len(), 1);
            assert_eq!(personal.owners[0].name, OWNER);
            assert_eq!(personal.owners[0].role(), pb::AggregatedAccountOwnerRole::Owner);
            assert_only_in_personal(
                &prost::Message::encode_to_vec(&updated),
                &[IBAN, OWNER, "Ada's current account", "ALB-0001"],
            );
        }

        #[test]
        fn transactions_arrive_with_counterparty_and_description_in_personal() {
            let events = every_event();
            let find = |name: &str| events.iter().find(|(_, e)| e.event_type() == name).unwrap();
            let (stream, event) = find("AggregatedTransactionsRecorded");
            let Body::AggregatedTransactionsRecorded(mut recorded) = body(stream, event) else {
                panic!("not a batch");
            };
            assert_eq!(recorded.aggregated_account_id, aggregated().to_string());
            assert_eq!(recorded.import_id, Some(import().to_string()));
            assert_eq!(recorded.transactions.len(), 1);
            let tx = &mut recorded.transactions[0];
            assert_eq!(tx.id, transaction().id.to_string());
            assert!(tx.id.starts_with("atx_"), "{}", tx.id);
            assert_eq!(tx.bank_transaction_id, "T-9001");
            assert_eq!(tx.status(), pb::AggregatedTransactionStatus::Booked);
            assert_eq!(
                tx.booking_date,
                Some(pb::Date {
                    year: 2025,
                    month: 6,
                    day: 2
                })
            );
            assert_eq!(tx.value_date.map(|d| d.day), Some(3));
            assert_eq!(tx.amount.as_ref().map(|m| m.amount), Some(-4_250));
            assert_eq!(tx.replaces, None);
            let personal = tx.personal.take().unwrap();
            assert_eq!(personal.description, DESCRIPTION);
            let counterparty = personal.counterparty.unwrap();
            assert_eq!(counterparty.name.as_deref(), Some(COUNTERPARTY));
            assert_eq!(
                counterparty.identifier.and_then(|i| i.identifier),
                Some(pb::aggregated_account_identifier::Identifier::Other(
                    pb::OtherAccountIdentifier {
                        scheme: "SORT_CODE_ACCOUNT_NUMBER".into(),
                        value: "40-47-84 70872490".into(),
                    }
                ))
            );
            assert_only_in_personal(
                &prost::Message::encode_to_vec(&recorded),
                &[COUNTERPARTY, DESCRIPTION, "70872490"],
            );

            let (stream, event) = find("AggregatedTransactionsRemoved");
            let Body::AggregatedTransactionsRemoved(removed) = body(stream, event) else {
                panic!("not a removal");
            };
            assert_eq!(removed.import_id, None);
            assert_eq!(removed.transaction_ids, [transaction().id.to_string()]);
        }

        /// A batch of `count` transactions whose personal texts are
        /// `description` and a counterparty name of `name_chars`, encoded.
        fn batch_bytes(count: usize, description: &str, name_chars: usize) -> usize {
            let transactions = (0..count)
                .map(|i| {
                    let bank_id = BankId::parse(&format!("2025-06-02-{i:08}")).unwrap();
                    let mut transaction = transaction();
                    transaction.id = transaction_id(aggregated(), &bank_id);
                    transaction.bank_transaction_id = bank_id;
                    transaction.personal = TransactionPersonal {
                        counterparty: Some(Counterparty {
                            name: Some("N".repeat(name_chars)),
                            identifier: Some(AccountIdentifier::Iban(Iban::parse(IBAN).unwrap())),
                        }),
                        description: description.into(),
                    };
                    transaction
                })
                .collect();
            let event = Event::AggregatedTransactionsRecorded(AggregatedTransactionsRecorded {
                import_id: Some(import()),
                transactions,
                recorded_at: LATER,
            });
            let stream = StreamRef::AggregatedAccount(aggregated());
            prost::Message::encoded_len(&envelope(&stream, 1, &event).unwrap())
        }

        /// What a batch weighs on the wire: one event is one message (one
        /// position, one NATS message), so its size is what subscribers' and
        /// NATS's message limits must take.
        #[test]
        fn a_page_of_transactions_fits_the_usual_message_limits() {
            use paycore_domain::aggregated_account::{MAX_BATCH_TEXT_BYTES, MAX_TRANSACTIONS_PER_BATCH};
            let typical = batch_bytes(MAX_TRANSACTIONS_PER_BATCH, DESCRIPTION, 20);
            // The largest batch the domain accepts: as many transactions as
            // it takes, their texts filling its text budget (bank ID and
            // IBAN included).
            let per_transaction = MAX_BATCH_TEXT_BYTES / MAX_TRANSACTIONS_PER_BATCH;
            let description = "x".repeat(per_transaction - "2025-06-02-00000000".len() - IBAN.len());
            let largest = batch_bytes(MAX_TRANSACTIONS_PER_BATCH, &description, 0);
            eprintln!("typical {MAX_TRANSACTIONS_PER_BATCH}: {typical} B; largest accepted: {largest} B");
            // Well under NATS's default `max_payload` (1 MiB) and tonic's
            // default decoding limit (4 MiB): the relay can publish every
            // event the domain writes.
            assert!(typical < 256 * 1024, "{typical}");
            assert!(largest < 1024 * 1024, "{largest}");
        }
    }
}
