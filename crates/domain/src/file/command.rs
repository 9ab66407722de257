//! The file family's command: recording an upload.

use super::FileEvent;
use crate::context::{Context, Decided, FamilyCommand};
use crate::kernel::error::DomainError;
use crate::kernel::id::{FileId, ProjectId};
use crate::kernel::stream::StreamRef;

#[derive(Clone, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum FileCommand {
    RecordFile {
        id: FileId,
        sha256: [u8; 32],
        name: String,
        size: u64,
    },
}

impl<E: From<FileEvent>> FamilyCommand<E> for FileCommand {
    fn streams(&self, _project: ProjectId, streams: &mut Vec<StreamRef>) {
        match self {
            Self::RecordFile { id, .. } => streams.push(StreamRef::File(*id)),
        }
    }

    fn created_stream(&self) -> Option<StreamRef> {
        match self {
            Self::RecordFile { id, .. } => Some(StreamRef::File(*id)),
        }
    }

    fn decide(&self, ctx: &Context<'_>) -> Result<Decided<E>, DomainError> {
        match self {
            Self::RecordFile {
                id,
                sha256,
                name,
                size,
            } => ctx.record_file(*id, *sha256, name, *size),
        }
    }
}
