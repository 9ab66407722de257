//! `paycore backup` and `paycore restore`: consistent copies of an embedded
//! server's data directory, taken while it runs, checked by their hash
//! chain and a manifest of checksums, and put back in place atomically.
//!
//! What a backup holds (the layout of a data directory):
//!
//! ```text
//! DEST/log/segments/*.log   the log up to the backup's position, cut there (no index runs:
//!                           derived, rebuilt by the first start)
//! DEST/sidestore/…          sealed card numbers and uploaded files (write-once)
//! DEST/vault.key            the card vault key, mode 0600 (without it sealed numbers are lost)
//! DEST/manifest.json        position, last hash, every file's size and SHA-256; written last
//! ```
//!
//! Left out: the read models (`projections/`) and aggregate snapshots
//! (`snapshots/`), caches that the first start on the restored directory
//! rebuilds from the log. `take` says why the copy is consistent, `verify`
//! what a check covers, `restore` why a crash never leaves a half-restored
//! directory.

mod files;
mod manifest;
mod restore;
mod take;
mod verify;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::serve::StoreChoice;

/// `paycore backup`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// The directory to write the backup to: absent or empty (nothing is
    /// ever overwritten). It gets mode 0700: it holds the vault key.
    #[arg(value_name = "DEST", required = true)]
    dest: Option<PathBuf>,
    /// The vault key file, if the server runs with --vault-key-file (by
    /// default <data dir>/vault.key); copied into the backup as vault.key.
    #[arg(long, env = "PAYCORE_VAULT_KEY_FILE")]
    vault_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Check a backup: every file's size and SHA-256 against its manifest,
    /// and the copied log's frames and hash chain up to its position.
    Verify {
        /// The backup directory.
        #[arg(value_name = "DEST")]
        dest: PathBuf,
    },
}

/// `paycore restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory (made by `paycore backup`).
    #[arg(value_name = "SRC")]
    src: PathBuf,
    /// If the data directory already holds data: move it aside (renamed
    /// `<name>.before-restore-<unix time>`, never deleted) and restore in
    /// its place. Without it a data directory that holds anything is refused.
    #[arg(long)]
    replace: bool,
}

/// Runs `paycore backup …`.
pub async fn backup(data_dir: &Path, store: &StoreChoice, args: BackupArgs) -> anyhow::Result<()> {
    match (args.command, args.dest) {
        (Some(BackupCommand::Verify { dest }), _) => {
            let manifest = tokio::task::spawn_blocking(move || verify::verify(&dest)).await??;
            println!(
                "backup verified: {} events, last hash {}, {} files ({} bytes), taken {}",
                manifest.log.events,
                manifest.log.last_hash,
                manifest.files.len() + 1,
                manifest.total_bytes(),
                manifest.created_at
            );
            Ok(())
        }
        (None, Some(dest)) => take::take(data_dir, store, &dest, args.vault_key_file).await,
        (None, None) => anyhow::bail!("give the directory to write the backup to"),
    }
}

/// Runs `paycore restore …`.
pub async fn restore(data_dir: &Path, args: RestoreArgs) -> anyhow::Result<()> {
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || restore::restore(&args.src, &data_dir, args.replace)).await?
}
