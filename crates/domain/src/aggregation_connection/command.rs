//! The aggregation connection family's commands.

use super::decide::NewSource;
use super::events::{AggregationConnectionEvent, ConnectionStatus, SourceKind, SourceState};
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{AggregationConnectionId, CustomerId, ProjectId};
use crate::kernel::institution::InstitutionId;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum AggregationConnectionCommand {
    /// A connection for a customer of the project, to an active institution
    /// (with its sources, from the connector's catalogue), or without one
    /// for the bank-selection page.
    CreateAggregationConnection {
        id: AggregationConnectionId,
        customer_id: CustomerId,
        institution_id: Option<InstitutionId>,
        sources: Vec<NewSource>,
        redirect_url: Option<String>,
    },
    ChooseAggregationInstitution {
        id: AggregationConnectionId,
        institution_id: InstitutionId,
        sources: Vec<NewSource>,
    },
    ChangeAggregationConnectionStatus {
        id: AggregationConnectionId,
        status: ConnectionStatus,
    },
    UpdateAggregationSource {
        id: AggregationConnectionId,
        kind: SourceKind,
        state: SourceState,
        disabled: bool,
    },
    GrantAggregationConsent {
        id: AggregationConnectionId,
        valid_for_days: u16,
    },
    ExpireAggregationConsent {
        id: AggregationConnectionId,
    },
    DeleteAggregationConnection {
        id: AggregationConnectionId,
    },
}

impl<E: From<AggregationConnectionEvent>> FamilyCommand<E> for AggregationConnectionCommand {
    fn streams(&self, project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::CreateAggregationConnection {
                id,
                customer_id,
                institution_id,
                ..
            } => {
                streams.push(StreamRef::AggregationConnection(*id));
                streams.push(StreamRef::Customer(*customer_id));
                streams.extend(
                    institution_id
                        .iter()
                        .map(|institution| StreamRef::Institution(project, institution.clone())),
                );
            }
            Self::ChooseAggregationInstitution {
                id, institution_id, ..
            } => {
                streams.push(StreamRef::AggregationConnection(*id));
                streams.push(StreamRef::Institution(project, institution_id.clone()));
            }
            Self::ChangeAggregationConnectionStatus { id, .. }
            | Self::UpdateAggregationSource { id, .. }
            | Self::GrantAggregationConsent { id, .. }
            | Self::ExpireAggregationConsent { id }
            | Self::DeleteAggregationConnection { id } => streams.push(StreamRef::AggregationConnection(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::CreateAggregationConnection { id, .. } => Some(StreamRef::AggregationConnection(*id)),
            _ => None,
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::CreateAggregationConnection {
                id,
                customer_id,
                institution_id,
                sources,
                redirect_url,
            } => ctx.create_aggregation_connection(
                *id,
                *customer_id,
                institution_id.as_ref(),
                sources,
                redirect_url.as_deref(),
            ),
            Self::ChooseAggregationInstitution {
                id,
                institution_id,
                sources,
            } => ctx.choose_aggregation_institution(*id, institution_id, sources),
            Self::ChangeAggregationConnectionStatus { id, status } => {
                ctx.change_aggregation_connection_status(*id, *status)
            }
            Self::UpdateAggregationSource {
                id,
                kind,
                state,
                disabled,
            } => ctx.update_aggregation_source(*id, *kind, *state, *disabled),
            Self::GrantAggregationConsent { id, valid_for_days } => {
                ctx.grant_aggregation_consent(*id, *valid_for_days)
            }
            Self::ExpireAggregationConsent { id } => ctx.expire_aggregation_consent(*id),
            Self::DeleteAggregationConnection { id } => ctx.delete_aggregation_connection(*id),
        }
    }
}
