//! The read models on disk: `PCRM`, model version (u32 LE), SHA-256 of the
//! body, then the postcard body. Written to a temporary file, fsync'd and
//! renamed over the old one, so a crash leaves the old or the new snapshot,
//! never half of one.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::models::Models;

const MAGIC: &[u8; 4] = b"PCRM";
/// Bump when `Models` or how events fold into it changes: an older snapshot
/// is then ignored and the models are rebuilt from the log.
const MODEL_VERSION: u32 = 3;
const HEADER: usize = 4 + 4 + 32;

pub(crate) fn encode(models: &Models) -> Vec<u8> {
    let body = postcard::to_stdvec(models).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&MODEL_VERSION.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

fn decode(bytes: &[u8]) -> Option<Models> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return None;
    }
    let version = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
    let body = &bytes[HEADER..];
    if version != MODEL_VERSION || Sha256::digest(body).as_slice() != &bytes[8..HEADER] {
        return None;
    }
    postcard::from_bytes(body).ok()
}

/// The models saved at `path`, or `None` (missing, damaged or of another
/// model version: the caller rebuilds from the log).
pub(crate) async fn load(path: &Path) -> Option<Models> {
    let bytes = tokio::fs::read(path).await.ok()?;
    let models = decode(&bytes);
    if models.is_none() {
        tracing::warn!(path = %path.display(), "read-model snapshot unusable; rebuilding from the log");
    }
    models
}

pub(crate) async fn save(path: &Path, encoded: Vec<u8>) -> Result<(), crate::ProjectionError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        save_blocking(&path, &encoded).map_err(|source| crate::ProjectionError::Snapshot { path, source })
    })
    .await
    .map_err(|error| crate::ProjectionError::Snapshot {
        path: Default::default(),
        source: std::io::Error::other(error),
    })?
}

fn save_blocking(path: &Path, encoded: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(encoded)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
