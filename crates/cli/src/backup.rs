//! `moor backup save|restore`: an encrypted copy of the whole cluster state and CA, and a
//! new first controller made from one. The work is in `controller::backup`.
//!
//! ```text
//! moor backup save FILE [--passphrase-file P] ─► Request::Backup (admin) ─► FILE (0600)
//! moor backup restore FILE --data-dir D --name N --listen A [--advertise A]
//!     ─► D ready for `moor --data-dir D controller`
//! passphrase: --passphrase-file P, else $MOOR_BACKUP_PASSPHRASE; never empty
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use controller::backup::{self, Params};

use crate::cluster::{Failure, Session, finish};

/// The environment variable read when no `--passphrase-file` is given.
const PASSPHRASE_ENV: &str = "MOOR_BACKUP_PASSPHRASE";
/// The largest passphrase file read.
const MAX_PASSPHRASE_FILE: u64 = 64 * 1024;

/// `moor backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Save the cluster's whole state, CA and secrets key, encrypted, to FILE (admin).
    Save(SaveArgs),
    /// Make a new cluster's first controller in --data-dir from a backup; then start it
    /// with `moor --data-dir DIR controller`.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
struct SaveArgs {
    /// Where to write the backup (replaced atomically if it exists).
    file: PathBuf,
    /// A file holding the passphrase (one trailing newline is ignored); without it,
    /// $MOOR_BACKUP_PASSPHRASE.
    #[arg(long, value_name = "PATH")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The backup to restore.
    file: PathBuf,
    /// A file holding the passphrase (one trailing newline is ignored); without it,
    /// $MOOR_BACKUP_PASSPHRASE.
    #[arg(long, value_name = "PATH")]
    passphrase_file: Option<PathBuf>,
    /// The new controller's name, in its certificate (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Where the new controller will listen (UDP, QUIC).
    #[arg(long, default_value = "0.0.0.0:7443")]
    listen: SocketAddr,
    /// Where the others will reach it, if not --listen.
    #[arg(long)]
    advertise: Option<SocketAddr>,
}

/// Runs a `moor backup` command.
pub fn main(args: BackupArgs, data_dir: &Path, config: Option<&Path>) -> ExitCode {
    match args.command {
        BackupCommand::Save(save) => finish(run_save(&save, config)),
        BackupCommand::Restore(restore) => finish(run_restore(&restore, data_dir)),
    }
}

fn run_save(args: &SaveArgs, config: Option<&Path>) -> Result<(), Failure> {
    let passphrase = passphrase(args.passphrase_file.as_deref())?;
    let session = Session::open(config)?;
    let (runtime, client, described) = (session.runtime(), session.client(), session.described());
    let saved = runtime
        .block_on(backup::save(
            client,
            &args.file,
            &passphrase,
            Params::default(),
        ))
        .map_err(|e| {
            if e.is_retryable() {
                Failure::Unreachable(anyhow!("no controller answered ({described}): {e}"))
            } else {
                Failure::Refused(anyhow!("backup to {}: {e}", args.file.display()))
            }
        })?;
    println!(
        "backup of revision {} ({} records, from controller {}) written to {} ({} bytes, encrypted)",
        saved.info.revision,
        saved.info.records,
        saved.info.controller,
        args.file.display(),
        saved.file_bytes
    );
    Ok(())
}

fn run_restore(args: &RestoreArgs, data_dir: &Path) -> Result<(), Failure> {
    let passphrase = passphrase(args.passphrase_file.as_deref())?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => crate::controller::host_name()
            .ok_or_else(|| anyhow!("the host name is not a usable node name: give --name"))?,
    };
    let restored = backup::restore(&backup::RestoreOptions {
        file: args.file.clone(),
        passphrase,
        data_dir: data_dir.to_path_buf(),
        name,
        listen: args.listen,
        advertise: args.advertise,
        user_config: std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| Path::new(&h).join(".moor/config")),
        now: std::time::SystemTime::now(),
    })
    .map_err(|e| anyhow!("restore: {e}"))?;
    let taken = UNIX_EPOCH + Duration::from_secs(restored.header.taken_at);
    println!(
        "restored revision {} ({} records) of a backup taken {} from controller {}",
        restored.header.revision,
        restored.records,
        humantime::format_rfc3339_seconds(taken),
        restored.header.controller
    );
    println!(
        "new controller {} (id {}) at {}; admin credentials in {}{}",
        restored.member.name,
        restored.member.id,
        restored.member.advertise,
        restored.admin_config.display(),
        restored
            .user_config
            .as_ref()
            .map(|p| format!(" and {}", p.display()))
            .unwrap_or_default()
    );
    if !restored.released.is_empty() {
        println!(
            "the old group's controller names are free again: {}",
            restored.released.join(", ")
        );
    }
    println!(
        "start it with: moor --data-dir {} controller",
        data_dir.display()
    );
    Ok(())
}

/// The passphrase from `--passphrase-file` or the environment; never empty.
fn passphrase(file: Option<&Path>) -> Result<Vec<u8>, Failure> {
    let mut bytes = match file {
        Some(path) => {
            let len = std::fs::metadata(path)
                .with_context(|| format!("--passphrase-file {}", path.display()))?
                .len();
            if len > MAX_PASSPHRASE_FILE {
                return Err(anyhow!(
                    "--passphrase-file {}: {len} bytes; a passphrase file holds at most {MAX_PASSPHRASE_FILE}",
                    path.display()
                )
                .into());
            }
            std::fs::read(path).with_context(|| format!("--passphrase-file {}", path.display()))?
        }
        None => match std::env::var_os(PASSPHRASE_ENV) {
            Some(value) => std::os::unix::ffi::OsStringExt::into_vec(value),
            None => {
                return Err(anyhow!(
                    "a backup is encrypted: give a passphrase with --passphrase-file PATH or ${PASSPHRASE_ENV}"
                )
                .into());
            }
        },
    };
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        let source = match file {
            Some(path) => format!("--passphrase-file {}", path.display()),
            None => format!("${PASSPHRASE_ENV}"),
        };
        return Err(anyhow!("{source}: the passphrase is empty; a backup needs one").into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passphrase_file_loses_one_newline_and_may_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "secret words\r\n").unwrap();
        assert_eq!(passphrase(Some(&path)).unwrap(), b"secret words");
        std::fs::write(&path, "two\n\n").unwrap();
        assert_eq!(passphrase(Some(&path)).unwrap(), b"two\n");
        std::fs::write(&path, "\n").unwrap();
        let Err(Failure::Refused(e)) = passphrase(Some(&path)) else {
            panic!("an empty passphrase was accepted");
        };
        assert!(e.to_string().contains("the passphrase is empty"), "{e}");
        let Err(Failure::Refused(e)) = passphrase(Some(&dir.path().join("absent"))) else {
            panic!("a missing file was accepted");
        };
        assert!(format!("{e:#}").contains("absent"), "{e:#}");
    }
}
