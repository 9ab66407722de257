//! Deciding a connection's lifecycle: creation, the institution chosen on
//! the bank-selection page, the diagram's status changes, sources, consent
//! and deletion.

use super::events::*;
use super::state::AggregationConnection;
use crate::context::{Context, Decided};
use crate::kernel::error::{DomainError, Refusal, Violations};
use crate::kernel::id::{AggregationConnectionId, CustomerId};
use crate::kernel::institution::InstitutionId;
use crate::kernel::stream::{ResourceRef, StreamRef};

/// PSD2: the end user's consent lasts at most 180 days.
pub const CONSENT_MAX_DAYS: u16 = 180;
/// The longest redirect URL accepted.
pub const MAX_REDIRECT_URL_CHARS: usize = 2048;
/// The most sources a connection has (one per [`SourceKind`]).
pub const MAX_SOURCES: usize = 2;

/// A source of the institution, as the connector's catalogue lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewSource {
    pub kind: SourceKind,
    pub priority: u8,
    pub disabled: bool,
}

fn check_sources(sources: &[NewSource], violations: &mut Violations) -> Vec<ConnectionSource> {
    if sources.len() > MAX_SOURCES {
        violations.add("sources", format!("at most {MAX_SOURCES}"));
    }
    for (i, source) in sources.iter().enumerate() {
        if sources[..i].iter().any(|other| other.kind == source.kind) {
            violations.add(format!("sources[{i}].kind"), "each kind at most once");
        }
    }
    sources
        .iter()
        .map(|source| ConnectionSource {
            kind: source.kind,
            state: SourceState::NotSynced,
            last_update: None,
            disabled: source.disabled,
            priority: source.priority,
        })
        .collect()
}

fn check_redirect_url(url: &str, violations: &mut Violations) {
    let scheme = url.starts_with("https://") || url.starts_with("http://");
    if !scheme
        || url.chars().count() > MAX_REDIRECT_URL_CHARS
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        violations.add(
            "redirect_url",
            format!("must be an http(s) URL of at most {MAX_REDIRECT_URL_CHARS} characters without spaces"),
        );
    }
}

fn not_allowed(id: AggregationConnectionId, from: &ConnectionStatus, to: &str) -> DomainError {
    DomainError::refused(
        Refusal::ConnectionTransitionNotAllowed,
        format!(
            "aggregation connection {id} cannot go from {} to {to}",
            from.name()
        ),
    )
}

impl Context<'_> {
    /// A connection of the caller's project that is not deleted: how other
    /// families read it (a deleted one is not found, as everything under it).
    pub(crate) fn aggregation_connection(
        &self,
        id: AggregationConnectionId,
    ) -> Result<&AggregationConnection, DomainError> {
        self.owned::<AggregationConnection>(&StreamRef::AggregationConnection(id))
            .filter(|connection| !connection.is_deleted())
            .ok_or_else(|| DomainError::not_found("aggregation connection", id))
    }

    pub(crate) fn create_aggregation_connection<E: From<AggregationConnectionEvent>>(
        &self,
        id: AggregationConnectionId,
        customer_id: CustomerId,
        institution_id: Option<&InstitutionId>,
        sources: &[NewSource],
        redirect_url: Option<&str>,
    ) -> Result<Decided<E>, DomainError> {
        let mut violations = Violations::new();
        let sources = check_sources(sources, &mut violations);
        if institution_id.is_none() && !sources.is_empty() {
            violations.add("sources", "come with the institution: none before it is chosen");
        }
        if let Some(url) = redirect_url {
            check_redirect_url(url, &mut violations);
        }
        violations.into_result()?;
        let stream = StreamRef::AggregationConnection(id);
        self.must_be_new(&stream, "aggregation connection", id)?;
        self.customer(customer_id)?;
        if let Some(institution) = institution_id {
            self.active_institution(institution)?;
        }
        let event = AggregationConnectionEvent::AggregationConnectionCreated(AggregationConnectionCreated {
            id,
            project_id: self.project_id,
            customer_id,
            institution_id: institution_id.cloned(),
            sources,
            redirect_url: redirect_url.map(str::to_owned),
            created_at: self.now(),
        });
        Ok((
            vec![(stream, event.into())],
            ResourceRef::AggregationConnection(id),
        ))
    }

    /// The end user chose the institution on the bank-selection page.
    pub(crate) fn choose_aggregation_institution<E: From<AggregationConnectionEvent>>(
        &self,
        id: AggregationConnectionId,
        institution_id: &InstitutionId,
        sources: &[NewSource],
    ) -> Result<Decided<E>, DomainError> {
        let mut violations = Violations::new();
        let sources = check_sources(sources, &mut violations);
        violations.into_result()?;
        let connection = self.aggregation_connection(id)?;
        let resource = ResourceRef::AggregationConnection(id);
        if let Some(chosen) = &connection.institution_id {
            return if chosen == institution_id {
                Ok((Vec::new(), resource))
            } else {
                Err(DomainError::invalid(
                    "institution_id",
                    format!("the connection's institution is already {chosen}"),
                ))
            };
        }
        if !matches!(connection.status, ConnectionStatus::InitialActionRequired { .. }) {
            return Err(not_allowed(id, &connection.status, "choosing an institution"));
        }
        self.active_institution(institution_id)?;
        let event = AggregationConnectionEvent::AggregationInstitutionChosen(AggregationInstitutionChosen {
            institution_id: institution_id.clone(),
            sources,
            chosen_at: self.now(),
        });
        Ok((vec![(resource.stream(), event.into())], resource))
    }

    /// A move along the lifecycle diagram; the same status again (same
    /// reason, same next try) writes nothing, any other move the diagram
    /// does not draw is refused.
    pub(crate) fn change_aggregation_connection_status<E: From<AggregationConnectionEvent>>(
        &self,
        id: AggregationConnectionId,
        status: ConnectionStatus,
    ) -> Result<Decided<E>, DomainError> {
        let connection = self.aggregation_connection(id)?;
        let resource = ResourceRef::AggregationConnection(id);
        if connection.status == status {
            return Ok((Vec::new(), resource));
        }
        if !connection.status.may_become(&status) {
            return Err(not_allowed(id, &connection.status, status.name()));
        }
        if status == ConnectionStatus::Connecting && connection.institution_id.is_none() {
            return Err(DomainError::refused(
                Refusal::ConnectionTransitionNotAllowed,
                format!("aggregation connection {id} cannot connect before its institution is chosen"),
            ));
        }
        let consent_expired = ConnectionStatus::ActionRequired {
            reason: ActionRequiredReason::ConsentExpired,
        };
        if connection.status == consent_expired && connection.live_consent(self.now()).is_none() {
            return Err(DomainError::refused(
                Refusal::ConsentExpired,
                format!("aggregation connection {id} needs the end user's consent again before it syncs"),
            ));
        }
        if let ConnectionStatus::RefreshDelayed { next_try_at } = status
            && next_try_at <= self.now()
        {
            return Err(DomainError::invalid(
                "status.next_try_at",
                "must be in the future",
            ));
        }
        if status
            == (ConnectionStatus::ActionRequired {
                reason: ActionRequiredReason::ConsentExpired,
            })
        {
            return Err(DomainError::invalid(
                "status.reason",
                "consent expiry is recorded by ExpireAggregationConsent",
            ));
        }
        let event = AggregationConnectionEvent::AggregationConnectionStatusChanged(
            AggregationConnectionStatusChanged {
                status,
                changed_at: self.now(),
            },
        );
        Ok((vec![(resource.stream(), event.into())], resource))
    }

    /// A source's new state (and disabled flag); `last_update` moves to now
    /// when the source synced. Nothing to write when nothing changes.
    pub(crate) fn update_aggregation_source<E: From<AggregationConnectionEvent>>(
        &self,
        id: AggregationConnectionId,
        kind: SourceKind,
        state: SourceState,
        disabled: bool,
    ) -> Result<Decided<E>, DomainError> {
        let connection = self.aggregation_connection(id)?;
        let resource = ResourceRef::AggregationConnection(id);
        let Some(source) = connection.sources.iter().find(|s| s.kind == kind) else {
            return Err(DomainError::invalid(
                "kind",
                "the connection's institution has no such source",
            ));
        };
        let synced = state == SourceState::Synced;
        if source.state == state && source.disabled == disabled && !synced {
            return Ok((Vec::new(), resource));
        }
        let event = AggregationConnectionEvent::AggregationSourceUpdated(AggregationSourceUpdated {
            source: ConnectionSource {
                state,
                disabled,
                last_update: if synced {
                    Some(self.now())
                } else {
                    source.last_update
                },
                ..*source
            },
            updated_at: self.now(),
        });
        Ok((vec![(resource.stream(), event.into())], resource))
    }

    /// The end user consented, for `valid_for_days` (1 to 180) from now; a
    /// renewal replaces the consent before.
    pub(crate) fn grant_aggregation_consent<E: From<AggregationConnectionEvent>>(
        &self,
        id: AggregationConnectionId,
        valid_for_days: u16,
    ) -> Result<Decided<E>, DomainError> {
        if !(1..=CONSENT_MAX_DAYS).contains(&valid_for_days) {
            return Err(DomainError::invalid(
                "valid_for_days",
                format!("must be 1 to {CONSENT_MAX_DAYS}"),
            ));
        }
        let connection = self.aggregation_connection(id)?;
        if matches!(connection.status, ConnectionStatus::InitialActionRequired { .. }) {
            return Err(DomainError::refused(
                Refusal::ConnectionNotConnected,
                format!("aggregation connection {id} has not signed in at the bank yet"),
            ));
        }
        let resource = ResourceRef::AggregationConnection(id);
        let granted_at = self.now();
        let event = AggregationConnectionEvent::AggregationConsentGranted(AggregationConsentGranted {
            consent: Consent {
                granted_at,
                expires_at: granted_at.plus_seconds(i64::from(valid_for_days) * 86_400),
            },
        });
        Ok((vec![(resource.stream(), event.into())], resource))
    }

    /// The consent ran out: `ACTION_REQUIRED` (`CONSENT_EXPIRED`). Refused
    /// before it expires; nothing to write when already recorded.
    pub(crate) fn expire_aggregation_consent<E: From<AggregationConnectionEvent>>(
        &self,
        id: AggregationConnectionId,
    ) -> Result<Decided<E>, DomainError> {
        let connection = self.aggregation_connection(id)?;
        let resource = ResourceRef::AggregationConnection(id);
        let Some(consent) = connection.consent else {
            if connection.status
                == (ConnectionStatus::ActionRequired {
                    reason: ActionRequiredReason::ConsentExpired,
                })
            {
                return Ok((Vec::new(), resource));
            }
            return Err(DomainError::refused(
                Refusal::ConsentMissing,
                format!("aggregation connection {id} has no consent"),
            ));
        };
        if consent.is_live(self.now()) {
            return Err(DomainError::refused(
                Refusal::ConsentNotExpired,
                format!(
                    "the consent of aggregation connection {id} is valid until {:?}",
                    consent.expires_at
                ),
            ));
        }
        if !connection.status.may_expire_consent() {
            return Err(not_allowed(
                id,
                &connection.status,
                "ACTION_REQUIRED (consent expired)",
            ));
        }
        let event = AggregationConnectionEvent::AggregationConsentExpired(AggregationConsentExpired {
            expired_at: self.now(),
        });
        Ok((vec![(resource.stream(), event.into())], resource))
    }

    /// Deletes the connection (terminal): a deleted connection is not found.
    pub(crate) fn delete_aggregation_connection<E: From<AggregationConnectionEvent>>(
        &self,
        id: AggregationConnectionId,
    ) -> Result<Decided<E>, DomainError> {
        self.aggregation_connection(id)?;
        let resource = ResourceRef::AggregationConnection(id);
        let event = AggregationConnectionEvent::AggregationConnectionDeleted(AggregationConnectionDeleted {
            deleted_at: self.now(),
        });
        Ok((vec![(resource.stream(), event.into())], resource))
    }
}
