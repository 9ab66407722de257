//! `manifest.json`: what a backup holds, written last, so a backup without
//! one did not finish.
//!
//! It records the log position the backup was cut at and the chain hash that
//! ends there (what `check_prefix` must find in the copied segments), and
//! every file with its size and SHA-256 (what `backup verify` and `restore`
//! compare before trusting a byte). Paths are relative to the backup
//! directory, `/`-separated, and may not leave it.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::files::{fsync_dir, write_error};

/// The manifest's file name inside a backup.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The format this build writes and reads.
pub const FORMAT: &str = "paycore-backup-1";

/// A backup's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The `paycore` version that took it.
    pub paycore_version: String,
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The data directory it was taken of.
    pub source: String,
    pub log: LogPoint,
    /// Whether `vault.key` is in the backup.
    pub vault_key: bool,
    /// Every file of the backup but the manifest, in the order written.
    pub files: Vec<FileEntry>,
}

/// Where the copied log ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogPoint {
    /// Events in the backup: positions `0 .. events`.
    pub events: u64,
    /// Chain hash of position `events - 1`, hex (64 zeros when empty).
    pub last_hash: String,
    /// Commit time of the last event, microseconds since the Unix epoch.
    pub last_recorded_at_micros: i64,
}

/// One file of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the backup directory, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

impl FileEntry {
    pub fn new(path: &str, bytes: u64, sha256: &[u8; 32]) -> Self {
        Self {
            path: path.to_owned(),
            bytes,
            sha256: hex::encode(sha256),
        }
    }
}

impl Manifest {
    /// Total bytes of the files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.bytes).sum()
    }

    /// The chain hash as bytes.
    pub fn last_hash(&self) -> anyhow::Result<[u8; 32]> {
        let mut hash = [0; 32];
        hex::decode_to_slice(&self.log.last_hash, &mut hash).with_context(|| {
            format!(
                "the manifest's last_hash {:?} is not 64 hex digits",
                self.log.last_hash
            )
        })?;
        Ok(hash)
    }

    /// Checks what does not need the files: the format, every path stays
    /// inside the backup and appears once, every checksum is 64 hex digits.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.format != FORMAT {
            bail!(
                "the manifest's format is {:?}; this paycore reads {FORMAT:?}",
                self.format
            );
        }
        self.last_hash()?;
        let mut seen = std::collections::HashSet::new();
        for file in &self.files {
            relative_path(&file.path)?;
            if file.path == MANIFEST_FILE {
                bail!("the manifest lists itself");
            }
            if !seen.insert(file.path.as_str()) {
                bail!("the manifest lists {} twice", file.path);
            }
            if file.sha256.len() != 64 || hex::decode(&file.sha256).is_err() {
                bail!("the manifest's checksum of {} is not 64 hex digits", file.path);
            }
        }
        Ok(())
    }

    /// Reads and checks `dir/manifest.json`.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} does not exist: {} is not a paycore backup, or one that did not finish",
                path.display(),
                dir.display()
            ),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let manifest: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a backup manifest", path.display()))?;
        manifest
            .check()
            .with_context(|| format!("{} is not a usable backup manifest", path.display()))?;
        Ok(manifest)
    }

    /// Writes `dir/manifest.json` durably and atomically (temporary file,
    /// fsync, rename, fsync of the directory): it appears whole or not at all.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let temporary = dir.join(format!("{MANIFEST_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).context("encoding the backup manifest")?;
        let mut file = std::fs::File::create(&temporary).map_err(|e| write_error(&temporary, e))?;
        file.write_all(&text).map_err(|e| write_error(&temporary, e))?;
        file.sync_all().map_err(|e| write_error(&temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| write_error(&path, e))?;
        fsync_dir(dir)
    }
}

/// `path` as a relative path that stays inside the backup (no root, no
/// `..`, no empty or `.` parts): a manifest must never make `restore` write
/// outside the directory it restores into.
pub fn relative_path(path: &str) -> anyhow::Result<PathBuf> {
    let relative = PathBuf::from(path);
    let plain = !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && relative.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        bail!("the manifest names the file {path:?}, which is not a plain path inside the backup");
    }
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.to_owned(),
            paycore_version: "0.1.0".to_owned(),
            created_at: "2026-12-06T05:00:00Z".to_owned(),
            source: "/srv/paycore/data".to_owned(),
            log: LogPoint {
                events: 42,
                last_hash: hex::encode([7u8; 32]),
                last_recorded_at_micros: 1_700_000_000_000_000,
            },
            vault_key: true,
            files: vec![
                FileEntry::new("log/segments/00000000000000000000.log", 4096, &[1; 32]),
                FileEntry::new("vault.key", 64, &[2; 32]),
            ],
        }
    }

    #[test]
    fn round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let written = manifest();
        written.write(dir.path()).unwrap();
        assert!(!dir.path().join("manifest.json.tmp").exists());
        let read = Manifest::read(dir.path()).unwrap();
        assert_eq!(read, written);
        assert_eq!(read.total_bytes(), 4160);
        assert_eq!(read.last_hash().unwrap(), [7; 32]);
    }

    #[test]
    fn a_missing_manifest_says_the_backup_did_not_finish() {
        let dir = tempfile::tempdir().unwrap();
        let error = format!("{:#}", Manifest::read(dir.path()).unwrap_err());
        assert!(error.contains("manifest.json does not exist"), "{error}");
        assert!(error.contains("did not finish"), "{error}");
    }

    #[test]
    fn another_format_is_refused() {
        let mut other = manifest();
        other.format = "paycore-backup-9".to_owned();
        let error = format!("{:#}", other.check().unwrap_err());
        assert!(error.contains("paycore-backup-9"), "{error}");
    }

    #[test]
    fn paths_may_not_leave_the_backup() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "log/../../x",
            "log//x",
            "./x",
            "a\\b",
            "log/.",
        ] {
            let mut other = manifest();
            other.files[0].path = bad.to_owned();
            assert!(other.check().is_err(), "{bad:?} accepted");
        }
        assert!(relative_path("sidestore/cards/abc").is_ok());
    }

    #[test]
    fn duplicates_bad_checksums_and_unknown_fields_are_refused() {
        let mut twice = manifest();
        twice.files.push(twice.files[0].clone());
        assert!(twice.check().is_err());

        let mut short = manifest();
        short.files[1].sha256 = "abc".to_owned();
        assert!(short.check().is_err());

        let mut bad_hash = manifest();
        bad_hash.log.last_hash = "zz".repeat(32);
        assert!(bad_hash.check().is_err());

        let dir = tempfile::tempdir().unwrap();
        let mut value = serde_json::to_value(manifest()).unwrap();
        value["surprise"] = serde_json::Value::Bool(true);
        std::fs::write(dir.path().join(MANIFEST_FILE), value.to_string()).unwrap();
        assert!(Manifest::read(dir.path()).is_err());
    }
}
