//! Domain → proto for files.

use paycore_domain::file::StoredFile;
use paycore_sidestore::FileDigest;

use crate::convert::timestamp;
use crate::pb;

pub fn file_pb(file: &StoredFile) -> pb::File {
    pb::File {
        id: file.id.to_string(),
        created_at: Some(timestamp(file.created_at)),
        project_id: file.project_id.to_string(),
        hash: FileDigest::from_bytes(file.sha256).base64(),
        name: file.name.clone(),
        // A file is at most the server's upload limit, far below i64::MAX.
        size: i64::try_from(file.size).unwrap_or(i64::MAX),
    }
}
