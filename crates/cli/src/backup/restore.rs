//! `paycore restore SRC --data-dir D`: a verified backup put in place so
//! that a crash at any moment never leaves `D` half restored.
//!
//! The files are copied (and their checksums compared once more) into a
//! sibling of `D`, `.<name>.restoring`, which only then is renamed to `D`
//! (one `rename` on the same file system). Until that rename `D` is as it
//! was, or, with `--replace`, already moved aside to
//! `<name>.before-restore-<unix time>` (never deleted): a crash leaves either
//! no `D` or the old one, and running the restore again starts over (the
//! leftover `.<name>.restoring` is removed first).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rustix::fs::FlockOperation;

use super::files::{copy_file, create_dir, fsync_dir, is_absent_or_empty};
use super::manifest::relative_path;
use super::verify::verify;

/// Whether a process holds the lock file at `path` (a server's
/// `server.lock`, or the log's `LOCK`). Never creates it.
fn held(path: &Path) -> bool {
    let Ok(file) = File::options().read(true).write(true).open(path) else {
        return false;
    };
    // Our probe's lock goes with `file`, at the end of this function.
    rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err()
}

/// The parent directory and file name of `data_dir`.
fn split(data_dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let absolute =
        std::path::absolute(data_dir).with_context(|| format!("resolving {}", data_dir.display()))?;
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name().and_then(|n| n.to_str()))
    else {
        bail!(
            "give the data directory to restore into by name (not {})",
            data_dir.display()
        );
    };
    if name == "." || name == ".." {
        bail!(
            "give the data directory to restore into by name (not {})",
            data_dir.display()
        );
    }
    Ok((parent.to_path_buf(), name.to_owned()))
}

/// Restores the backup in `src` into `data_dir`.
pub fn restore(src: &Path, data_dir: &Path, replace: bool) -> anyhow::Result<()> {
    let (parent, name) = split(data_dir)?;
    let target = parent.join(&name);
    let occupied = !is_absent_or_empty(&target)?;
    if held(&target.join("server.lock")) || held(&target.join("log").join("LOCK")) {
        bail!(
            "a paycore process (a server, or a command such as the audit) is using {}: stop it first",
            target.display()
        );
    }
    if occupied && !replace {
        bail!(
            "{} already holds data: restore into a new directory, or give --replace to move it aside \
             (it is kept, renamed) and put the backup in its place",
            target.display()
        );
    }

    let manifest = verify(src).with_context(|| format!("the backup in {} does not verify", src.display()))?;
    println!(
        "verified:  {} ({} events, last hash {})",
        src.display(),
        manifest.log.events,
        manifest.log.last_hash
    );

    let staging = parent.join(format!(".{name}.restoring"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| {
            format!(
                "removing {}, left by a restore that did not finish",
                staging.display()
            )
        })?;
    }
    create_dir(&staging.join("log").join("segments"))?;
    let mut dirs = vec![staging.join("log").join("segments"), staging.join("log")];
    for file in &manifest.files {
        let relative = relative_path(&file.path)?;
        let to = staging.join(&relative);
        if let Some(dir) = to.parent().filter(|dir| !dirs.iter().any(|d| d == dir)) {
            create_dir(dir)?;
            dirs.push(dir.to_path_buf());
        }
        let from = src.join(&relative);
        let (bytes, sha256) = copy_file(&from, &to)?;
        if bytes != file.bytes || hex::encode(sha256) != file.sha256 {
            bail!(
                "{} changed while it was being restored (it no longer matches the manifest)",
                from.display()
            );
        }
    }
    // Deepest first, then the staging directory itself: every entry durable
    // before the rename makes the directory the data directory.
    dirs.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
    for dir in &dirs {
        fsync_dir(dir)?;
    }
    fsync_dir(&staging)?;

    if occupied {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        let aside = parent.join(format!("{name}.before-restore-{stamp}"));
        std::fs::rename(&target, &aside)
            .with_context(|| format!("moving {} aside to {}", target.display(), aside.display()))?;
        println!(
            "moved:     the former {} to {}",
            target.display(),
            aside.display()
        );
    } else if target.exists() {
        std::fs::remove_dir(&target).with_context(|| format!("removing the empty {}", target.display()))?;
    }
    std::fs::rename(&staging, &target)
        .with_context(|| format!("renaming {} to {}", staging.display(), target.display()))?;
    fsync_dir(&parent)?;
    println!("restored:  {}", target.display());
    if !manifest.vault_key {
        println!(
            "warning:   the backup holds no vault key: start the server with the --vault-key-file \
             it ran with"
        );
    }
    println!(
        "next:      `paycore audit --data-dir {}`, then start the server on it",
        target.display()
    );
    Ok(())
}
