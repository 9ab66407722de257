//! The file family: uploaded files (the content is kept beside the log, by
//! its SHA-256; the log records what was uploaded).

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::context::{Context, Decided};
use crate::events::Event;
use crate::kernel::error::DomainError;
use crate::kernel::id::{FileId, ProjectId};
use crate::kernel::stream::{ResourceRef, StreamRef};
use crate::kernel::time::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileUploaded {
    pub id: FileId,
    pub project_id: ProjectId,
    /// SHA-256 of the content, which is stored outside the log under it.
    pub sha256: [u8; 32],
    pub name: String,
    pub size: u64,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub id: FileId,
    pub project_id: ProjectId,
    pub sha256: [u8; 32],
    pub name: String,
    pub size: u64,
    pub created_at: Timestamp,
}

impl Context<'_> {
    pub(crate) fn record_file(
        &self,
        id: FileId,
        sha256: [u8; 32],
        name: &str,
        size: u64,
    ) -> Result<Decided, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::File(id);
        self.must_be_new(&stream, "file", id)?;
        if name.trim().is_empty() || name.chars().count() > 255 || name.contains(['/', '\\', '\0']) {
            return Err(DomainError::invalid(
                "name",
                "must be 1 to 255 characters without path separators",
            ));
        }
        let event = Event::FileUploaded(FileUploaded {
            id,
            project_id: project.id,
            sha256,
            name: name.to_owned(),
            size,
            created_at: self.now(),
        });
        Ok((vec![(stream, event)], ResourceRef::File(id)))
    }
}

/// Applies a file event.
pub(crate) fn evolve(state: Aggregate, event: &Event) -> Aggregate {
    match (state, event) {
        (Aggregate::Empty, Event::FileUploaded(e)) => Aggregate::File(StoredFile {
            id: e.id,
            project_id: e.project_id,
            sha256: e.sha256,
            name: e.name.clone(),
            size: e.size,
            created_at: e.created_at,
        }),
        (state, event) => state.misapplied(event),
    }
}
