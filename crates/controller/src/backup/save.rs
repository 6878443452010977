//! The client's side of `moor backup save`: receive the archive, check it, encrypt it into
//! a file that appears whole or not at all.
//!
//! Owns: the order of the steps, the checks on the stream (every frame, the byte count,
//! the digest, the archive's own counts), and the file's atomic creation. Does not own:
//! the encryption format (`format`) or what the controller sends (`service`).
//!
//! ```text
//! FILE's dir/.FILE.tmp.<pid> (0600, new) ─► BackupWriter (key derived first)
//! Backup ─► BackupStarted ─► Data… (digest, ArchiveParser, encrypt) ─► End (check)
//!        ─► final chunk ─► fsync ─► rename to FILE ─► fsync dir
//! any failure ─► the temporary file is removed; FILE is untouched
//! ```

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::api::{ApiError, BackupInfo, BackupPart, Request, Response};
use ring::digest;
use wire::frame::FrameError;

use super::archive::{ArchiveError, ArchiveParser};
use super::format::{BackupFileError, BackupWriter, Params};

/// How long the controller may stay silent between two frames of a backup (the first
/// one waits for a read barrier).
pub const FRAME_WAIT: Duration = Duration::from_secs(60);

/// Why a backup could not be saved. Nothing is left behind in any case.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("{0}")]
    Client(#[from] wire::ClientError),
    #[error("{0}")]
    Refused(ApiError),
    #[error("the controller failed during the backup: {0}")]
    Failed(ApiError),
    #[error("the backup stream broke after {bytes} bytes: {source}")]
    Stream {
        bytes: u64,
        #[source]
        source: FrameError,
    },
    #[error("the backup stream ended after {bytes} bytes without its end: truncated")]
    Truncated { bytes: u64 },
    #[error("the controller answered with {what}, not a backup (a moor version mismatch?)")]
    Unexpected { what: &'static str },
    #[error("the backup stream is damaged: {what} is {found}, the controller sent {declared}")]
    Mismatch {
        what: &'static str,
        declared: String,
        found: String,
    },
    #[error("the backup stream is damaged: {0}")]
    Archive(#[from] ArchiveError),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: BackupFileError,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SaveError {
    /// Whether trying again later (maybe at another controller) may work.
    pub fn is_retryable(&self) -> bool {
        match self {
            SaveError::Client(e) => e.is_retryable(),
            SaveError::Refused(e) => e.is_retryable(),
            SaveError::Stream { source, .. } => source.is_retryable(),
            _ => false,
        }
    }
}

/// What was saved.
#[derive(Debug, Clone)]
pub struct Saved {
    pub info: BackupInfo,
    /// The archive's size, before encryption.
    pub archive_bytes: u64,
    /// The file's size.
    pub file_bytes: u64,
}

/// The temporary file until it is renamed into place; removed if dropped before.
struct Pending {
    path: PathBuf,
    done: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SaveError {
    let path = path.to_path_buf();
    move |source| SaveError::Io {
        action,
        path,
        source,
    }
}

/// Takes a backup through `client` and writes it, encrypted with `passphrase`, to `file`
/// (replacing it atomically, mode 0600).
pub async fn save(
    client: &wire::Client,
    file: &Path,
    passphrase: &[u8],
    params: Params,
) -> Result<Saved, SaveError> {
    let name = file.file_name().ok_or_else(|| SaveError::Io {
        action: "write",
        path: file.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
    })?;
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    let mut pending = Pending {
        path: tmp.clone(),
        done: false,
    };
    let file_error = |source| SaveError::File {
        path: file.to_path_buf(),
        source,
    };
    // The slow key derivation before the controller starts sending.
    let mut writer = BackupWriter::new(out, passphrase, params).map_err(file_error)?;

    let request = wire::frame::encode(&Request::Backup)
        .map_err(|source| SaveError::Stream { bytes: 0, source })?;
    let mut stream = client.open(&request).await?;
    stream
        .finish()
        .map_err(|source| SaveError::Stream { bytes: 0, source })?;
    let first = stream
        .recv_frame_within(FRAME_WAIT)
        .await
        .map_err(|source| SaveError::Stream { bytes: 0, source })?
        .ok_or(SaveError::Truncated { bytes: 0 })?;
    let info = match wire::frame::decode::<Response>(&first) {
        Ok(Response::BackupStarted(info)) => info,
        Ok(Response::Error(e)) => return Err(SaveError::Refused(e)),
        Ok(_) => {
            return Err(SaveError::Unexpected {
                what: "another answer",
            });
        }
        Err(source) => return Err(SaveError::Stream { bytes: 0, source }),
    };

    let mut parser = ArchiveParser::new();
    let mut digest = digest::Context::new(&digest::SHA256);
    let mut bytes = 0u64;
    let (declared_bytes, declared_sha) = loop {
        let frame = stream
            .recv_frame_within(FRAME_WAIT)
            .await
            .map_err(|source| SaveError::Stream { bytes, source })?
            .ok_or(SaveError::Truncated { bytes })?;
        let part = wire::frame::decode::<BackupPart>(&frame)
            .map_err(|source| SaveError::Stream { bytes, source })?;
        match part {
            BackupPart::Data(data) => {
                digest.update(&data);
                bytes += data.len() as u64;
                parser.feed(&data)?;
                writer.write(&data).map_err(file_error)?;
            }
            BackupPart::End { bytes, sha256 } => break (bytes, sha256),
            BackupPart::Failed(e) => return Err(SaveError::Failed(e)),
        }
    };
    if declared_bytes != bytes {
        return Err(SaveError::Mismatch {
            what: "the size",
            declared: format!("{declared_bytes} bytes"),
            found: format!("{bytes} bytes"),
        });
    }
    let sha256 = digest.finish();
    if sha256.as_ref() != declared_sha.as_slice() {
        return Err(SaveError::Mismatch {
            what: "the SHA-256 digest",
            declared: hex(&declared_sha),
            found: hex(sha256.as_ref()),
        });
    }
    parser.finish()?;
    if parser.records() != info.records {
        return Err(SaveError::Mismatch {
            what: "the number of records",
            declared: info.records.to_string(),
            found: parser.records().to_string(),
        });
    }

    let out: File = writer.finish().map_err(file_error)?;
    out.sync_all().map_err(io("sync", &tmp))?;
    let file_bytes = out.metadata().map_err(io("inspect", &tmp))?.len();
    drop(out);
    std::fs::rename(&tmp, file).map_err(io("rename into place", file))?;
    pending.done = true;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync the directory", &dir))?;
    Ok(Saved {
        info,
        archive_bytes: bytes,
        file_bytes,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
