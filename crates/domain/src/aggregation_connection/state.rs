//! A connection's state and how its events evolve it.

use serde::{Deserialize, Serialize};

use super::events::{AggregationConnectionEvent, ConnectionSource, ConnectionStatus, Consent};
use crate::context::{Owned, misapplied};
use crate::kernel::id::{AggregatedAccountId, AggregationConnectionId, CustomerId, ProjectId};
use crate::kernel::institution::InstitutionId;
use crate::kernel::time::Timestamp;

/// A customer's connection to an institution. Its size is bounded: a few
/// sources and the IDs of the bank's accounts (a handful; the sync refuses
/// more than `MAX_ACCOUNTS_PER_CONNECTION`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationConnection {
    pub id: AggregationConnectionId,
    pub project_id: ProjectId,
    pub customer_id: CustomerId,
    pub institution_id: Option<InstitutionId>,
    pub status: ConnectionStatus,
    pub sources: Vec<ConnectionSource>,
    pub consent: Option<Consent>,
    /// Every account the connection's syncs found, in the order found
    /// (archived ones included).
    pub accounts: Vec<AggregatedAccountId>,
    pub redirect_url: Option<String>,
    pub created_at: Timestamp,
    /// The last change of `status`.
    pub status_changed_at: Timestamp,
    /// Set once deleted (terminal).
    pub deleted_at: Option<Timestamp>,
}

impl Owned for AggregationConnection {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

impl AggregationConnection {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// The consent if it is still valid at `now`.
    pub fn live_consent(&self, now: Timestamp) -> Option<Consent> {
        self.consent.filter(|consent| consent.is_live(now))
    }
}

pub(crate) fn evolve(
    state: Option<AggregationConnection>,
    event: AggregationConnectionEvent,
) -> Option<AggregationConnection> {
    use AggregationConnectionEvent as E;
    Some(match (state, event) {
        (None, E::AggregationConnectionCreated(e)) => AggregationConnection {
            id: e.id,
            project_id: e.project_id,
            customer_id: e.customer_id,
            institution_id: e.institution_id,
            status: ConnectionStatus::InitialActionRequired { reason: None },
            sources: e.sources,
            consent: None,
            accounts: Vec::new(),
            redirect_url: e.redirect_url,
            created_at: e.created_at,
            status_changed_at: e.created_at,
            deleted_at: None,
        },
        (Some(c), E::AggregationInstitutionChosen(e)) => AggregationConnection {
            institution_id: Some(e.institution_id),
            sources: e.sources,
            ..c
        },
        (Some(c), E::AggregationConnectionStatusChanged(e)) => AggregationConnection {
            status: e.status,
            status_changed_at: e.changed_at,
            ..c
        },
        (Some(mut c), E::AggregationSourceUpdated(e)) => {
            match c.sources.iter_mut().find(|s| s.kind == e.source.kind) {
                Some(source) => *source = e.source,
                None => c.sources.push(e.source),
            }
            c
        }
        (Some(c), E::AggregationConsentGranted(e)) => AggregationConnection {
            consent: Some(e.consent),
            ..c
        },
        (Some(c), E::AggregationConsentExpired(e)) => AggregationConnection {
            consent: None,
            status: ConnectionStatus::ActionRequired {
                reason: super::events::ActionRequiredReason::ConsentExpired,
            },
            status_changed_at: e.expired_at,
            ..c
        },
        (Some(mut c), E::AggregationConnectionAccountsFound(e)) => {
            c.accounts.extend(e.account_ids);
            c
        }
        (Some(c), E::AggregationConnectionDeleted(e)) => AggregationConnection {
            deleted_at: Some(e.deleted_at),
            ..c
        },
        (state, event) => return misapplied(state, &event),
    })
}
