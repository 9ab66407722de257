//! The file family: uploaded files (the content is kept beside the log, by
//! its SHA-256; the log records what was uploaded).

mod command;
pub use command::FileCommand;

use serde::{Deserialize, Serialize};

use crate::context::{Context, Decided, Owned, misapplied};
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

/// The file family's events: what its decider emits and its `evolve` folds
/// (the routers' `Event` wraps each as the variant of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileEvent {
    FileUploaded(FileUploaded),
}

impl Owned for StoredFile {
    fn project_id(&self) -> ProjectId {
        self.project_id
    }
}

impl Context<'_> {
    /// A file of the caller's project: how other families check an upload
    /// they refer to.
    pub(crate) fn file(&self, id: FileId) -> Result<&StoredFile, DomainError> {
        self.owned::<StoredFile>(&StreamRef::File(id))
            .ok_or_else(|| DomainError::not_found("file", id))
    }

    pub(crate) fn record_file<E: From<FileEvent>>(
        &self,
        id: FileId,
        sha256: [u8; 32],
        name: &str,
        size: u64,
    ) -> Result<Decided<E>, DomainError> {
        let project = self.project()?;
        let stream = StreamRef::File(id);
        self.must_be_new(&stream, "file", id)?;
        if name.trim().is_empty() || name.chars().count() > 255 || name.contains(['/', '\\', '\0']) {
            return Err(DomainError::invalid(
                "name",
                "must be 1 to 255 characters without path separators",
            ));
        }
        let event = FileEvent::FileUploaded(FileUploaded {
            id,
            project_id: project.id,
            sha256,
            name: name.to_owned(),
            size,
            created_at: self.now(),
        });
        Ok((vec![(stream, event.into())], ResourceRef::File(id)))
    }
}

/// Applies a file event to the file's state (`None` before the first).
pub(crate) fn evolve(state: Option<StoredFile>, event: FileEvent) -> Option<StoredFile> {
    match (state, event) {
        (None, FileEvent::FileUploaded(e)) => Some(StoredFile {
            id: e.id,
            project_id: e.project_id,
            sha256: e.sha256,
            name: e.name,
            size: e.size,
            created_at: e.created_at,
        }),
        (state, event) => misapplied(state, &event),
    }
}
