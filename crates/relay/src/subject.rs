//! Which events go on the bus, and under which subject.
//!
//! The relay publishes what an `EventService.SubscribeEvents` call would
//! deliver to the event's project, and nothing else: the event's stream is of
//! a delivered category ([`DELIVERED_CATEGORIES`], the subscription's own
//! list) and the event names its project. Write-side bookkeeping and platform
//! events (`idempotency`, `payoutdestination`, `payinreferencecode`,
//! `fxrate`, `consumer`, `deployment`) never leave the server, as with the
//! subscription. The subject is
//! `<prefix>.<project ID>.<category>.<event type>`, so a consumer filters by
//! project, category and type with NATS wildcards
//! (`paycore.prj_….account.>`, `paycore.*.transfer.TransferCreated`).

use paycore_grpc::services::events::convert::DELIVERED_CATEGORIES;
use paycore_store::RecordedEvent;

/// The default first token of every subject.
pub const DEFAULT_SUBJECT_PREFIX: &str = "paycore";

/// The subject of `event` under `prefix`, or `None` if the relay does not
/// publish it (the subscription would not deliver it either).
///
/// An event that should be published but whose names cannot form a subject
/// is an error rather than skipped: the relay never leaves a hole.
pub fn subject_of(prefix: &str, event: &RecordedEvent) -> Result<Option<String>, BadSubject> {
    let category = event.stream.category();
    if !DELIVERED_CATEGORIES.contains(&category) {
        return Ok(None);
    }
    let Some(project) = event.metadata.project_id.as_deref() else {
        // The subscription delivers an event only to the project it names.
        return Ok(None);
    };
    for token in [project, category, &*event.event_type] {
        if !is_token(token) {
            return Err(BadSubject {
                position: event.position,
                token: token.to_owned(),
            });
        }
    }
    Ok(Some(format!(
        "{prefix}.{project}.{category}.{}",
        event.event_type
    )))
}

/// The subjects a relay's JetStream stream captures: everything under the
/// prefix.
pub fn stream_subjects(prefix: &str) -> String {
    format!("{prefix}.>")
}

/// An event whose project, category or type cannot be a subject token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the event at position {position} cannot be published: {token:?} is not a valid NATS subject token")]
pub struct BadSubject {
    pub position: u64,
    pub token: String,
}

/// Whether `prefix` is one or more subject tokens without wildcards.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty() && prefix.split('.').all(is_token)
}

/// A NATS subject token: not empty, no separator, wildcard or whitespace.
/// Ours are narrower still (IDs, categories and type names are ASCII
/// letters, digits and `_`); the check guards against a future name that is
/// not.
fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use paycore_store::{EventMetadata, StreamName};

    use super::*;

    fn event(stream: &str, event_type: &str, project: Option<&str>) -> RecordedEvent {
        RecordedEvent {
            position: 7,
            stream: StreamName::from(stream.to_owned()),
            version: 0,
            event_type: Arc::from(event_type),
            schema_version: 1,
            recorded_at_micros: 0,
            metadata: Arc::new(EventMetadata {
                project_id: project.map(str::to_owned),
                ..EventMetadata::default()
            }),
            payload: Bytes::new(),
            hash: [0; 32],
            last_in_commit: true,
        }
    }

    const PRJ: &str = "prj_01m7z1py9me5zsx09x8kv1vnx8";

    #[test]
    fn subjects_name_project_category_and_type() {
        let transfer = event("transfer-trf_01m7z1", "TransferCreated", Some(PRJ));
        assert_eq!(
            subject_of("paycore", &transfer).unwrap().as_deref(),
            Some(format!("paycore.{PRJ}.transfer.TransferCreated").as_str())
        );
        let total = event(
            &format!("projectbalance-{PRJ}.EUR"),
            "ProjectBalanceChanged",
            Some(PRJ),
        );
        assert_eq!(
            subject_of("acme.paycore", &total).unwrap().as_deref(),
            Some(format!("acme.paycore.{PRJ}.projectbalance.ProjectBalanceChanged").as_str())
        );
    }

    #[test]
    fn what_the_subscription_withholds_is_not_published() {
        for (stream, event_type) in [
            ("idempotency-prj_1.h1-ab", "IdempotencyKeyUsed"),
            ("payoutdestination-DE89370400440532013000", "MinirefAssigned"),
            ("payinreferencecode-ABC123", "PayinReferenceCodeClaimed"),
            ("fxrate-EUR.USD", "FxRateSet"),
            ("consumer-prj_1.billing", "ConsumerPositionCommitted"),
            ("deployment-bootstrap", "DeploymentBootstrapped"),
        ] {
            let withheld = event(stream, event_type, Some(PRJ));
            assert_eq!(subject_of("paycore", &withheld).unwrap(), None, "{stream}");
        }
        // Delivered categories only reach the project they name.
        let orphan = event("account-acc_1", "AccountOpened", None);
        assert_eq!(subject_of("paycore", &orphan).unwrap(), None);
    }

    #[test]
    fn every_delivered_category_is_published() {
        for category in DELIVERED_CATEGORIES {
            let delivered = event(&format!("{category}-x_1"), "Something", Some(PRJ));
            assert!(subject_of("paycore", &delivered).unwrap().is_some(), "{category}");
        }
    }

    #[test]
    fn a_name_that_cannot_be_a_token_stops_the_relay() {
        let bad = event("account-acc_1", "Account.Opened", Some(PRJ));
        assert_eq!(
            subject_of("paycore", &bad),
            Err(BadSubject {
                position: 7,
                token: "Account.Opened".into()
            })
        );
        let bad = event("account-acc_1", "AccountOpened", Some("prj *"));
        assert!(subject_of("paycore", &bad).is_err());
    }

    #[test]
    fn prefixes() {
        assert!(valid_prefix("paycore"));
        assert!(valid_prefix("acme.payments-eu"));
        for bad in ["", ".", "a..b", "a.*", "a.>", "a b", "a.", "ü"] {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
        assert_eq!(stream_subjects("acme.paycore"), "acme.paycore.>");
    }
}
