pub mod convert;

use std::collections::HashMap;
use std::fmt;

use paycore_domain::file::FileCommand;
use paycore_domain::{Aggregate, FileId, ResourceRef, Violations};
use paycore_projections::ResourceKind;
use paycore_sidestore::{FileDigest, SideStoreError, TooLarge, UploadBuffer};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};

use super::{Handlers, correlation_id, finish, methods, unexpected};
use crate::errors::{ERROR_DOMAIN, REASON_STORE_UNAVAILABLE, internal, invalid_argument};
use crate::pb::{self, file_service_server::FileService, upload_file_request::Data};
use crate::{auth, idempotency};

/// The largest chunk `DownloadFile` sends.
pub const DOWNLOAD_CHUNK_BYTES: usize = 64 * 1024;
/// `ErrorInfo.reason` of an upload over the server's size limit.
pub const REASON_FILE_TOO_LARGE: &str = "FILE_TOO_LARGE";
/// The longest file name accepted (the decider's rule).
const MAX_NAME_CHARS: usize = 255;

/// What an upload's idempotency key is bound to: the name and the content's
/// digest, not how the content was cut into chunks (a retry may cut it
/// differently and is still the same upload).
#[derive(Clone, PartialEq, prost::Message)]
struct UploadIdentity {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bytes = "vec", tag = "2")]
    sha256: Vec<u8>,
}

fn violation(field: &str, description: impl Into<String>) -> Status {
    invalid_argument(&[paycore_domain::FieldViolation::new(field, description)])
}

/// The decider's rule for names, checked before any content is read so a
/// bad name costs no upload (the decider checks it again).
fn check_name(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(violation("name", "is required"));
    }
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains(['/', '\\', '\0']) {
        return Err(violation(
            "name",
            "must be 1 to 255 characters without path separators",
        ));
    }
    Ok(())
}

/// INVALID_ARGUMENT on `chunk` with reason `FILE_TOO_LARGE`: retrying the
/// same upload can never succeed, which is what INVALID_ARGUMENT tells a
/// client (RESOURCE_EXHAUSTED is often retried).
fn too_large(error: TooLarge) -> Status {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation("chunk", error.to_string());
    details.set_error_info(
        REASON_FILE_TOO_LARGE,
        ERROR_DOMAIN,
        HashMap::<String, String>::new(),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: chunk: {error}"),
        details,
    )
}

/// Side storage down is worth a retry; anything else (corrupt content) is
/// an internal error whose detail only goes to the log.
fn side_store_status(error: &SideStoreError) -> Status {
    match error {
        SideStoreError::Unavailable(detail) => {
            tracing::warn!(%detail, "side storage unavailable");
            let mut details = ErrorDetails::new();
            details.set_error_info(
                REASON_STORE_UNAVAILABLE,
                ERROR_DOMAIN,
                HashMap::<String, String>::new(),
            );
            Status::with_error_details(
                Code::Unavailable,
                "storage temporarily unavailable; retry later",
                details,
            )
        }
        other => internal(other),
    }
}

/// Reads an upload: the name first, then the chunks, refusing it as soon as
/// it passes `limit` bytes (the rest is never read).
async fn read_upload(
    stream: &mut Streaming<pb::UploadFileRequest>,
    limit: usize,
) -> Result<(String, UploadBuffer), Status> {
    let name = match stream.message().await?.and_then(|message| message.data) {
        Some(Data::Name(name)) => name,
        _ => return Err(violation("name", "is required in the first message")),
    };
    check_name(&name)?;
    let mut upload = UploadBuffer::new(limit);
    while let Some(message) = stream.message().await? {
        match message.data {
            Some(Data::Chunk(chunk)) => upload.push(&chunk).map_err(too_large)?,
            Some(Data::Name(_)) => {
                return Err(violation("name", "only the first message may carry the name"));
            }
            // An empty message adds nothing.
            None => {}
        }
    }
    if upload.is_empty() {
        return Err(violation(
            "chunk",
            "the file is empty: send its content in `chunk` messages after the name",
        ));
    }
    Ok((name, upload))
}

fn file_answer(state: &Aggregate) -> Result<Response<pb::File>, Status> {
    let file = state.as_file().ok_or_else(|| unexpected("file", state))?;
    Ok(Response::new(convert::file_pb(file)))
}

/// A file's content as `DownloadFile` messages of at most
/// [`DOWNLOAD_CHUNK_BYTES`], cut as they are sent.
pub struct DownloadChunks {
    content: Vec<u8>,
    offset: usize,
}

impl Iterator for DownloadChunks {
    type Item = Result<pb::DownloadFileResponse, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.content.get(self.offset..).filter(|rest| !rest.is_empty())?;
        let chunk = rest[..rest.len().min(DOWNLOAD_CHUNK_BYTES)].to_vec();
        self.offset += chunk.len();
        Some(Ok(pb::DownloadFileResponse { chunk }))
    }
}

/// Sizes only: the content may be a personal document.
impl fmt::Debug for DownloadChunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadChunks")
            .field("len", &self.content.len())
            .field("offset", &self.offset)
            .finish()
    }
}

#[tonic::async_trait]
impl FileService for Handlers {
    async fn upload_file(
        &self,
        request: Request<Streaming<pb::UploadFileRequest>>,
    ) -> Result<Response<pb::File>, Status> {
        let caller = auth::authenticate(&self.state.engine, request.metadata()).await?;
        // A malformed key is refused before any content is read; the hash it
        // is bound to is only known at the end.
        let mut v = Violations::new();
        let scope = self.key_scope(&caller)?;
        idempotency::key(
            &scope,
            request.metadata(),
            methods::UPLOAD_FILE,
            &UploadIdentity::default(),
            &mut v,
        );
        finish(v, Some(()))?;
        let (metadata, _, mut stream) = request.into_parts();
        let (name, upload) = read_upload(&mut stream, self.state.max_file_bytes).await?;
        let size = u64::try_from(upload.len()).unwrap_or(u64::MAX);
        // Stored before the event that refers to it, so a recorded file
        // always has its content; a refused command leaves only bytes that
        // nothing refers to (and an identical upload later reuses them).
        let digest = self
            .state
            .side
            .files
            .put_upload(upload)
            .await
            .map_err(|error| side_store_status(&error))?;
        let identity = UploadIdentity {
            name: name.clone(),
            sha256: digest.as_bytes().to_vec(),
        };
        let mut v = Violations::new();
        let key = idempotency::key(&scope, &metadata, methods::UPLOAD_FILE, &identity, &mut v);
        finish(v, Some(()))?;
        let command = FileCommand::RecordFile {
            id: FileId::from_uuid(self.new_uuid()),
            sha256: *digest.as_bytes(),
            name,
            size,
        }
        .into();
        let state = self
            .execute(&caller, correlation_id(&metadata), key, command)
            .await?;
        file_answer(&state)
    }

    async fn get_file(&self, request: Request<pb::GetFileRequest>) -> Result<Response<pb::File>, Status> {
        let id = &request.get_ref().file_id;
        let state = self
            .get_one(
                &request,
                "file_id",
                id,
                "file",
                async |read, project, id: FileId| read.resource(project, ResourceRef::File(id)).await,
            )
            .await?;
        file_answer(&state)
    }

    async fn list_files(
        &self,
        request: Request<pb::ListFilesRequest>,
    ) -> Result<Response<pb::ListFilesResponse>, Status> {
        let (size, token) = (request.get_ref().page_size, &request.get_ref().page_token);
        let page = self
            .list_page(&request, size, token, async |read, project, page| {
                read.list_resources(project, ResourceKind::File, page).await
            })
            .await?;
        Ok(Response::new(pb::ListFilesResponse {
            items: page
                .items
                .iter()
                .filter_map(Aggregate::as_file)
                .map(convert::file_pb)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    type DownloadFileStream = tokio_stream::Iter<DownloadChunks>;

    async fn download_file(
        &self,
        request: Request<pb::DownloadFileRequest>,
    ) -> Result<Response<Self::DownloadFileStream>, Status> {
        let id = &request.get_ref().file_id;
        let state = self
            .get_one(
                &request,
                "file_id",
                id,
                "file",
                async |read, project, id: FileId| read.resource(project, ResourceRef::File(id)).await,
            )
            .await?;
        let file = state.as_file().ok_or_else(|| unexpected("file", &state))?;
        let digest = FileDigest::from_bytes(file.sha256);
        // `get` re-hashes what it read: corrupt bytes are an error, never sent.
        let content = self
            .state
            .side
            .files
            .get(digest)
            .await
            .map_err(|error| side_store_status(&error))?
            .ok_or_else(|| internal(format!("the content of {} ({digest}) is missing", file.id)))?;
        Ok(Response::new(tokio_stream::iter(DownloadChunks {
            content,
            offset: 0,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_cut_in_chunks_of_64_kib() {
        let content: Vec<u8> = (0..DOWNLOAD_CHUNK_BYTES * 2 + 5).map(|i| i as u8).collect();
        let chunks: Vec<Vec<u8>> = DownloadChunks {
            content: content.clone(),
            offset: 0,
        }
        .map(|chunk| chunk.unwrap().chunk)
        .collect();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [DOWNLOAD_CHUNK_BYTES, DOWNLOAD_CHUNK_BYTES, 5]
        );
        assert_eq!(chunks.concat(), content);
    }

    #[test]
    fn names_follow_the_deciders_rule() {
        assert!(check_name("passport.jpg").is_ok());
        assert!(check_name(&"é".repeat(255)).is_ok());
        for bad in ["", "  ", "a/b", "a\\b", "a\0b"] {
            assert_eq!(
                check_name(bad).unwrap_err().code(),
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
        assert!(check_name(&"x".repeat(256)).is_err());
    }

    #[test]
    fn too_large_names_the_field_and_the_reason() {
        let status = too_large(TooLarge { limit: 10 });
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        assert_eq!(
            details.error_info().map(|info| info.reason.as_str()),
            Some(REASON_FILE_TOO_LARGE)
        );
        assert_eq!(
            details
                .bad_request()
                .map(|bad| bad.field_violations[0].field.as_str()),
            Some("chunk")
        );
    }
}
