//! The institution family: which institutions (banks) of the connector's
//! catalogue a project activated. The catalogue itself (names, countries,
//! logos, supported sources) belongs to the connector, outside the domain;
//! the domain records only each project's activations, one stream per
//! project and institution (`institution-prj_….SANDBOX_GB_BANK`), so a
//! project's state never grows with the catalogue. The aggregation
//! connection family checks an activation through
//! `Context::active_institution`.

mod command;
pub use command::InstitutionCommand;

use serde::{Deserialize, Serialize};

use crate::context::{Context, Decided, Owned, misapplied};
use crate::kernel::error::{DomainError, Refusal};
use crate::kernel::id::ProjectId;
use crate::kernel::institution::InstitutionId;
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

/// A project activated an institution (again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionActivated {
    pub project_id: ProjectId,
    pub institution_id: InstitutionId,
    pub activated_at: Timestamp,
}

/// A project deactivated an institution: no new connection to it.
/// Existing connections keep working (their consent was given).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionDeactivated {
    pub project_id: ProjectId,
    pub institution_id: InstitutionId,
    pub deactivated_at: Timestamp,
}

/// The institution family's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstitutionEvent {
    InstitutionActivated(InstitutionActivated),
    InstitutionDeactivated(InstitutionDeactivated),
}

/// One project's activation of one institution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionActivation {
    pub project_id: ProjectId,
    pub institution_id: InstitutionId,
    pub active: bool,
    /// When `active` last changed.
    pub changed_at: Timestamp,
}

impl Owned for InstitutionActivation {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

pub(crate) fn evolve(
    state: Option<InstitutionActivation>,
    event: InstitutionEvent,
) -> Option<InstitutionActivation> {
    Some(match (state, event) {
        (_, InstitutionEvent::InstitutionActivated(e)) => InstitutionActivation {
            project_id: e.project_id,
            institution_id: e.institution_id,
            active: true,
            changed_at: e.activated_at,
        },
        (Some(state), InstitutionEvent::InstitutionDeactivated(e)) => InstitutionActivation {
            active: false,
            changed_at: e.deactivated_at,
            ..state
        },
        (state, event) => return misapplied(state, &event),
    })
}

impl Context<'_> {
    fn activation(&self, institution: &InstitutionId) -> Option<&InstitutionActivation> {
        self.owned::<InstitutionActivation>(&StreamRef::Institution(self.project_id, institution.clone()))
    }

    /// Refuses unless the caller's project has `institution` active (the
    /// command must have read `StreamRef::Institution(project, institution)`).
    pub(crate) fn active_institution(&self, institution: &InstitutionId) -> Result<(), DomainError> {
        match self.activation(institution) {
            Some(activation) if activation.active => Ok(()),
            _ => Err(DomainError::refused(
                Refusal::InstitutionNotActive,
                format!("institution {institution} is not active in this project"),
            )),
        }
    }

    /// Activates `institution`; nothing to write when it already is.
    pub(crate) fn activate_institution<E: From<InstitutionEvent>>(
        &self,
        institution: &InstitutionId,
    ) -> Result<Decided<E>, DomainError> {
        self.project()?;
        let resource = ResourceRef::Project(self.project_id);
        if self.activation(institution).is_some_and(|a| a.active) {
            return Ok((Vec::new(), resource));
        }
        let event = InstitutionEvent::InstitutionActivated(InstitutionActivated {
            project_id: self.project_id,
            institution_id: institution.clone(),
            activated_at: self.now(),
        });
        Ok((
            vec![(
                StreamRef::Institution(self.project_id, institution.clone()),
                event.into(),
            )],
            resource,
        ))
    }

    /// Deactivates `institution`; nothing to write when it is not active.
    pub(crate) fn deactivate_institution<E: From<InstitutionEvent>>(
        &self,
        institution: &InstitutionId,
    ) -> Result<Decided<E>, DomainError> {
        self.project()?;
        let resource = ResourceRef::Project(self.project_id);
        if !self.activation(institution).is_some_and(|a| a.active) {
            return Ok((Vec::new(), resource));
        }
        let event = InstitutionEvent::InstitutionDeactivated(InstitutionDeactivated {
            project_id: self.project_id,
            institution_id: institution.clone(),
            deactivated_at: self.now(),
        });
        Ok((
            vec![(
                StreamRef::Institution(self.project_id, institution.clone()),
                event.into(),
            )],
            resource,
        ))
    }
}
