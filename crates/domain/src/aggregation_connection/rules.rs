//! The lifecycle's invariants as pure checks of an event against the
//! connection's state before it: what the audit replay checks (issue 13,
//! item 6). The deciders never write an event these checks reject.

use super::events::{AggregationConnectionStatusChanged, AggregationConsentExpired};
use super::state::AggregationConnection;

/// A lifecycle rule an event broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionRule {
    /// An event after the connection's deletion (terminal).
    AfterDeletion,
    /// A status change the diagram does not draw.
    NotInDiagram,
    /// Consent expiry from a status that has not signed in.
    ConsentExpiryNotAllowed,
    /// Consent expiry before the consent's `expires_at` (or without one).
    ConsentExpiredEarly,
}

impl ConnectionRule {
    /// The rule's name, as the audit reports it.
    pub fn name(self) -> &'static str {
        match self {
            Self::AfterDeletion => "aggregation_connection_deleted_is_terminal",
            Self::NotInDiagram => "aggregation_connection_transition_in_diagram",
            Self::ConsentExpiryNotAllowed => "aggregation_consent_expiry_after_sign_in",
            Self::ConsentExpiredEarly => "aggregation_consent_expiry_on_time",
        }
    }
}

/// What a status change breaks, folded into `connection` (its state
/// before). A change to the same status is never written, so it breaks the
/// diagram too.
pub fn check_status_changed(
    connection: &AggregationConnection,
    event: &AggregationConnectionStatusChanged,
) -> Option<ConnectionRule> {
    if connection.is_deleted() {
        Some(ConnectionRule::AfterDeletion)
    } else if !connection.status.may_become(&event.status) {
        Some(ConnectionRule::NotInDiagram)
    } else {
        None
    }
}

/// What a consent expiry breaks, folded into `connection` (its state
/// before).
pub fn check_consent_expired(
    connection: &AggregationConnection,
    event: &AggregationConsentExpired,
) -> Option<ConnectionRule> {
    if connection.is_deleted() {
        Some(ConnectionRule::AfterDeletion)
    } else if !connection.status.may_expire_consent() {
        Some(ConnectionRule::ConsentExpiryNotAllowed)
    } else if connection
        .consent
        .is_none_or(|consent| event.expired_at < consent.expires_at)
    {
        Some(ConnectionRule::ConsentExpiredEarly)
    } else {
        None
    }
}
