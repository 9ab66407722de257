//! `paycore backup DEST`: a consistent copy of the data directory, taken
//! while the server runs (or, without one, holding the log's lock).
//!
//! Order matters, and is the whole consistency argument:
//!
//! 1. The durable position `N` and the hash ending there are taken first
//!    (from the server's admin socket, or from the log opened here).
//! 2. The log's segments are copied up to `N` and cut there
//!    (`paycore_store::log::copy_prefix`): an exact prefix of the history,
//!    whatever the server appends meanwhile.
//! 3. The side storage (`sidestore/`: sealed card numbers, files) is copied
//!    after that. It is write-once, and a blob is stored before the command
//!    that refers to it is appended, so every blob an event before `N`
//!    names is there by now (later ones may come along: unused, harmless).
//! 4. The vault key (`vault.key`, or `--vault-key-file`) is copied, mode
//!    0600: without it the sealed card numbers cannot be read.
//! 5. The copied log is read back and checked (frames, hash chain, position
//!    and last hash as taken in step 1), then `manifest.json` is written
//!    last: a backup without one did not finish.
//!
//! Read models and aggregate snapshots are caches: left out, rebuilt from
//! the log by the first start on the restored directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use paycore_grpc::admin;
use paycore_store::log::{check_prefix, copy_prefix};
use paycore_store::{LogOptions, LogStore, StoreError};

use super::files::{self, copy_file, copy_tree, create_dir, is_absent_or_empty};
use super::manifest::{FORMAT, FileEntry, LogPoint, Manifest};
use crate::serve::StoreChoice;

/// Takes a backup of `data_dir` into `dest`, which must be absent or empty.
/// On failure the partial copy is removed (it could not be trusted anyway).
pub async fn take(
    data_dir: &Path,
    store: &StoreChoice,
    dest: &Path,
    vault_key_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    if let StoreChoice::Postgres { .. } = store {
        bail!(
            "`paycore backup` copies the embedded log; a PostgreSQL store is backed up with \
             PostgreSQL's own tools (pg_basebackup and WAL archiving, or pg_dump), then checked \
             with `paycore audit --store …` (README, \"Backups\")"
        );
    }
    let segments = data_dir.join("log").join("segments");
    if !segments.is_dir() {
        bail!(
            "{} holds no embedded log ({} does not exist)",
            data_dir.display(),
            segments.display()
        );
    }
    if !is_absent_or_empty(dest)? {
        bail!(
            "{} is not empty: a backup never overwrites anything; give a new directory",
            dest.display()
        );
    }
    let created = !dest.exists();
    create_dir(dest)?;
    let started = Instant::now();
    match take_into(data_dir, dest, vault_key_file).await {
        Ok(manifest) => {
            println!("backup:    {}", dest.display());
            println!("position:  {} events", manifest.log.events);
            println!("last hash: {}", manifest.log.last_hash);
            println!(
                "files:     {} ({} bytes), in {:.1} s",
                manifest.files.len() + 1,
                manifest.total_bytes(),
                started.elapsed().as_secs_f64()
            );
            if !manifest.vault_key {
                println!(
                    "warning:   no vault key was copied: keep the server's --vault-key-file safe \
                     yourself, or the sealed card numbers in this backup are lost"
                );
            }
            Ok(())
        }
        Err(error) => {
            // A partial backup is useless; leave the destination as it was.
            let cleaned = std::fs::remove_dir_all(dest).and_then(|()| {
                if created {
                    Ok(())
                } else {
                    std::fs::create_dir(dest)
                }
            });
            match cleaned {
                Ok(()) => Err(error.context(format!("the partial backup in {} was removed", dest.display()))),
                Err(cleanup) => Err(error.context(format!(
                    "the partial backup in {} could not be removed ({cleanup}): delete it before trying again",
                    dest.display()
                ))),
            }
        }
    }
}

async fn take_into(
    data_dir: &Path,
    dest: &Path,
    vault_key_file: Option<PathBuf>,
) -> anyhow::Result<Manifest> {
    let log_dir = data_dir.join("log");
    // 1. The point, and who holds the log while the copy runs: the server,
    // or this command (so no server starts on a log being read from disk).
    let opened = {
        let log_dir = log_dir.clone();
        tokio::task::spawn_blocking(move || LogStore::open(&log_dir, LogOptions::default()))
            .await
            .context("opening the event log")?
    };
    let (point, local) = match opened {
        Ok((log, _report)) => (admin::backup_point(&log).await?, Some(Arc::new(log))),
        Err(StoreError::Locked(_)) => {
            let point = admin::connect(data_dir)
                .await
                .with_context(|| {
                    format!(
                        "{} is held by a running paycore server, but its admin socket ({}) does not answer",
                        data_dir.display(),
                        data_dir.join(admin::SOCKET_NAME).display()
                    )
                })?
                .get_backup_point(admin::pb::GetBackupPointRequest {})
                .await
                .map_err(|status| anyhow::anyhow!("the server refused: {}", status.message()))?
                .into_inner();
            let mut last_hash = [0; 32];
            if point.last_hash.len() != 32 {
                bail!(
                    "the server answered a last hash of {} bytes",
                    point.last_hash.len()
                );
            }
            last_hash.copy_from_slice(&point.last_hash);
            let point = admin::BackupPoint {
                position: point.position,
                last_hash,
            };
            (point, None)
        }
        Err(error) => {
            return Err(error).with_context(|| format!("opening the event log in {}", log_dir.display()));
        }
    };
    tracing::info!(
        position = point.position,
        "backing up the log up to this position"
    );

    // 2. The log, cut at the point.
    let copied = {
        let (log_dir, dest_log) = (log_dir.clone(), dest.join("log"));
        tokio::task::spawn_blocking(move || copy_prefix(&log_dir, &dest_log, point.position))
            .await
            .context("copying the event log")?
            .context("copying the event log")?
    };
    if copied.last_hash != point.last_hash {
        bail!(
            "the copied log ends with hash {} at position {}, but the log said {}",
            hex::encode(copied.last_hash),
            point.position,
            hex::encode(point.last_hash)
        );
    }
    let mut entries: Vec<FileEntry> = copied
        .segments
        .iter()
        .map(|segment| {
            FileEntry::new(
                &format!("log/segments/{}", segment.name),
                segment.bytes,
                &segment.sha256,
            )
        })
        .collect();

    // 3 and 4. Side storage and vault key: blocking file copies.
    let (data, target) = (data_dir.to_path_buf(), dest.to_path_buf());
    let (entries, vault_key) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        copy_tree(&data, &target, "sidestore", &mut entries)?;
        let vault_src = vault_key_file.unwrap_or_else(|| data.join("vault.key"));
        let vault_key = if vault_src.is_file() {
            let (bytes, sha256) = copy_file(&vault_src, &target.join("vault.key"))?;
            entries.push(FileEntry::new("vault.key", bytes, &sha256));
            true
        } else {
            tracing::warn!(file = %vault_src.display(), "no vault key to back up");
            false
        };
        files::fsync_dir(&target)?;
        Ok((entries, vault_key))
    })
    .await
    .context("copying the side storage")??;

    // The copy is complete: let a server start again if none was running.
    if let Some(log) = local {
        tokio::task::spawn_blocking(move || log.close())
            .await
            .context("closing the event log")?
            .context("closing the event log")?;
    }

    // 5. Read the copy back, then write the manifest.
    let dest_log = dest.join("log");
    let checked = tokio::task::spawn_blocking(move || check_prefix(&dest_log))
        .await
        .context("checking the copied log")?
        .context("checking the copied log")?;
    if checked.events != copied.events || checked.last_hash != copied.last_hash {
        bail!(
            "the copied log reads back as {} events ending with hash {}, not {} ending with {}",
            checked.events,
            hex::encode(checked.last_hash),
            copied.events,
            hex::encode(copied.last_hash)
        );
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        paycore_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: now_rfc3339(),
        source: std::path::absolute(data_dir)
            .unwrap_or_else(|_| data_dir.to_path_buf())
            .display()
            .to_string(),
        log: LogPoint {
            events: copied.events,
            last_hash: hex::encode(copied.last_hash),
            last_recorded_at_micros: copied.last_recorded_at_micros,
        },
        vault_key,
        files: entries,
    };
    manifest.write(dest)?;
    Ok(manifest)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
