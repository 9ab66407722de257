//! The institution family's commands (the admin CLI's, per project).

use super::InstitutionEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::ProjectId;
use crate::kernel::institution::InstitutionId;
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum InstitutionCommand {
    /// Lets the project's customers connect to the institution. Answers
    /// with the project.
    ActivateInstitution { institution_id: InstitutionId },
    /// No new connection to the institution (existing ones keep working).
    DeactivateInstitution { institution_id: InstitutionId },
}

impl<E: From<InstitutionEvent>> FamilyCommand<E> for InstitutionCommand {
    fn streams(&self, project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::ActivateInstitution { institution_id } | Self::DeactivateInstitution { institution_id } => {
                streams.push(StreamRef::Institution(project, institution_id.clone()));
            }
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::ActivateInstitution { institution_id } => ctx.activate_institution(institution_id),
            Self::DeactivateInstitution { institution_id } => ctx.deactivate_institution(institution_id),
        }
    }
}
