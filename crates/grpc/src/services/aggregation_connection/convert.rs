//! Connections: domain → proto, and the create request's fields.

use paycore_domain::aggregation_connection::{
    ActionRequiredReason, AggregationConnection, ConnectionSource, ConnectionStatus, Consent, SourceKind,
    SourceState,
};

use paycore_domain::kernel::institution::InstitutionId;
use paycore_domain::{CustomerId, Violations};

use crate::convert::{self as shared, timestamp};
use crate::pb;
use crate::services::institution::convert::institution_id;

/// A connection's status as its three fields: the status, the reason the
/// end user must act, and when the next try is due.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusPb {
    pub status: pb::AggregationConnectionStatus,
    pub action_required_reason: Option<pb::AggregationActionRequiredReason>,
    pub next_try_at: Option<prost_types::Timestamp>,
}

pub fn status_pb(status: &ConnectionStatus) -> StatusPb {
    use pb::AggregationConnectionStatus as S;
    let (status, reason, next_try_at) = match *status {
        ConnectionStatus::InitialActionRequired { reason } => (S::InitialActionRequired, reason, None),
        ConnectionStatus::Connecting => (S::Connecting, None, None),
        ConnectionStatus::Updating => (S::Updating, None, None),
        ConnectionStatus::Connected => (S::Connected, None, None),
        ConnectionStatus::ActionRequired { reason } => (S::ActionRequired, Some(reason), None),
        ConnectionStatus::RefreshDelayed { next_try_at } => {
            (S::RefreshDelayed, None, Some(timestamp(next_try_at)))
        }
    };
    StatusPb {
        status,
        action_required_reason: reason.map(action_required_reason_pb),
        next_try_at,
    }
}

pub fn action_required_reason_pb(reason: ActionRequiredReason) -> pb::AggregationActionRequiredReason {
    use pb::AggregationActionRequiredReason as R;
    match reason {
        ActionRequiredReason::ScaRequired => R::ScaRequired,
        ActionRequiredReason::WebAuthenticationRequired => R::WebAuthenticationRequired,
        ActionRequiredReason::CredentialsInvalid => R::CredentialsInvalid,
        ActionRequiredReason::OneTimeCodeRequired => R::OneTimeCodeRequired,
        ActionRequiredReason::ConsentExpired => R::ConsentExpired,
    }
}

pub fn source_pb(source: &ConnectionSource) -> pb::AggregationConnectionSource {
    use pb::AggregationSourceState as S;
    let (state, reason) = match source.state {
        SourceState::NotSynced => (S::NotSynced, None),
        SourceState::Synced => (S::Synced, None),
        SourceState::ActionRequired { reason } => (S::ActionRequired, Some(reason)),
        SourceState::Unavailable => (S::Unavailable, None),
    };
    pb::AggregationConnectionSource {
        kind: match source.kind {
            SourceKind::Web => pb::InstitutionSource::Web,
            SourceKind::Psd2Api => pb::InstitutionSource::Psd2Api,
        }
        .into(),
        state: state.into(),
        action_required_reason: reason.map(|reason| action_required_reason_pb(reason).into()),
        last_updated_at: source.last_update.map(timestamp),
        disabled: source.disabled,
        priority: source.priority.into(),
    }
}

pub fn consent_pb(consent: &Consent) -> pb::AggregationConsent {
    pb::AggregationConsent {
        granted_at: Some(timestamp(consent.granted_at)),
        expires_at: Some(timestamp(consent.expires_at)),
    }
}

pub fn aggregation_connection_pb(connection: &AggregationConnection) -> pb::AggregationConnection {
    let status = status_pb(&connection.status);
    pb::AggregationConnection {
        id: connection.id.to_string(),
        created_at: Some(timestamp(connection.created_at)),
        project_id: connection.project_id.to_string(),
        customer_id: connection.customer_id.to_string(),
        institution_id: connection.institution_id.as_ref().map(ToString::to_string),
        status: status.status.into(),
        action_required_reason: status.action_required_reason.map(Into::into),
        next_try_at: status.next_try_at,
        status_changed_at: Some(timestamp(connection.status_changed_at)),
        sources: connection.sources.iter().map(source_pb).collect(),
        consent: connection.consent.as_ref().map(consent_pb),
        aggregated_account_ids: connection.accounts.iter().map(ToString::to_string).collect(),
        redirect_url: connection.redirect_url.clone(),
        authentication_url: None,
    }
}

/// What `CreateAggregationConnection` asks for.
#[derive(Debug)]
pub struct NewConnection {
    pub customer: CustomerId,
    /// `None`: the end user chooses on the bank-selection page.
    pub institution: Option<InstitutionId>,
    pub redirect_url: Option<String>,
}

/// The request's fields; `None` with a violation per bad field (the domain
/// checks the redirect URL).
pub fn create_request(
    request: &pb::CreateAggregationConnectionRequest,
    v: &mut Violations,
) -> Option<NewConnection> {
    let customer = shared::id::<CustomerId>(&request.customer_id, "customer_id", v);
    let institution = match request.institution_id.as_deref() {
        None => Some(None),
        Some(raw) => institution_id(raw, v).map(Some),
    };
    let (customer, institution) = customer.zip(institution)?;
    Some(NewConnection {
        customer,
        institution,
        redirect_url: request.redirect_url.clone(),
    })
}
