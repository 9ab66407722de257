//! `paycore backup verify DEST`: is this backup still what was taken?
//!
//! Every file the manifest lists must have its size and SHA-256 (a flipped
//! byte anywhere is named with its file), no segment may be there that the
//! manifest does not list, and the copied log must read back frame by frame
//! with an intact hash chain from position 0 to the manifest's position,
//! ending with the manifest's last hash.

use std::path::Path;

use anyhow::{Context, bail};
use paycore_store::log::check_prefix;

use super::files::hash_file;
use super::manifest::{Manifest, relative_path};

/// Verifies the backup in `dir`; answers its manifest when it holds.
pub fn verify(dir: &Path) -> anyhow::Result<Manifest> {
    let manifest = Manifest::read(dir)?;
    for file in &manifest.files {
        let path = dir.join(relative_path(&file.path)?);
        let (bytes, sha256) = hash_file(&path)?;
        if bytes != file.bytes {
            bail!(
                "{} is damaged: {bytes} bytes, the manifest says {}",
                path.display(),
                file.bytes
            );
        }
        let sha256 = hex::encode(sha256);
        if sha256 != file.sha256 {
            bail!(
                "{} is damaged: its SHA-256 is {sha256}, the manifest says {}",
                path.display(),
                file.sha256
            );
        }
    }
    let log_dir = dir.join("log");
    if !log_dir.join("segments").is_dir() {
        bail!("{} does not exist", log_dir.join("segments").display());
    }
    let checked =
        check_prefix(&log_dir).with_context(|| format!("checking the log in {}", log_dir.display()))?;
    for segment in &checked.segments {
        let listed = format!("log/segments/{}", segment.name);
        if !manifest.files.iter().any(|file| file.path == listed) {
            bail!(
                "{} is not in the manifest: it does not belong to this backup",
                log_dir.join("segments").join(&segment.name).display()
            );
        }
    }
    if checked.events != manifest.log.events || checked.last_hash != manifest.last_hash()? {
        bail!(
            "the log in {} holds {} events ending with hash {}; the manifest says {} ending with {}",
            log_dir.display(),
            checked.events,
            hex::encode(checked.last_hash),
            manifest.log.events,
            manifest.log.last_hash
        );
    }
    Ok(manifest)
}
