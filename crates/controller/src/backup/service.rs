//! The controller's side of `moor backup save`: a read barrier, one read transaction of
//! the whole state, and the archive streamed to the client in frames.
//!
//! Owns: who may take a backup (admins: a backup holds the CA key), the order of the
//! steps, and moving the archive from the blocking reader to the stream with bounded
//! memory. Does not own: the archive layout (`archive`), encryption (the client encrypts
//! with its passphrase, `save`), the state's tables (`raft::StateReader::export`).
//!
//! ```text
//! Backup ─► admin? ─► read_barrier ─► pki files ─► spawn_blocking: export (one read txn)
//!   Response::BackupStarted{revision, index, records}    ◄─┤ Started
//!   BackupPart::Data (≤ PART bytes each) …               ◄─┤ Data   (channel of 4 parts)
//!   BackupPart::End{bytes, sha256}                       ◄─┘ Done
//! ```
//!
//! The barrier makes the copy linearizable: every write acknowledged before the call is
//! in it. The read transaction makes it consistent: one applied index, one revision. A
//! client that goes away closes the channel and the export stops at its next part.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use proto::api::{ApiError, BackupInfo, BackupPart, ErrorCode, Response};
use ring::digest;
use tokio::sync::mpsc;
use tracing::{info, warn};
use wire::Role;
use wire::frame::{FrameError, FramedStream};

use super::archive::{self, ARCHIVE_FORMAT, ArchiveHeader, ArchiveMember, Entry, Record};
use super::{CA_CERT_FILE, CA_KEY_FILE, MAX_PKI_FILE, SECRETS_KEY_FILE};
use crate::api::{Caller, Cluster};
use crate::raft::StateReader;

/// Archive bytes per `BackupPart::Data` frame: well under the 4 MiB frame limit.
pub const PART: usize = 256 * 1024;
/// Parts in flight between the reader and the stream.
const IN_FLIGHT: usize = 4;

/// Answers `Request::Backup`.
#[derive(Debug)]
pub struct BackupService<C: Cluster> {
    cluster: Arc<C>,
    pki: PathBuf,
    controller: String,
}

enum Produced {
    Started(BackupInfo),
    Data(Vec<u8>),
    Done { bytes: u64, sha256: Vec<u8> },
    Failed(String),
}

impl<C: Cluster> BackupService<C> {
    /// `pki` is this controller's `DATA_DIR/pki`; `controller` its name.
    pub fn new(cluster: Arc<C>, pki: PathBuf, controller: String) -> Self {
        BackupService {
            cluster,
            pki,
            controller,
        }
    }

    /// Streams a backup to `caller`, or answers one error.
    pub async fn handle(
        &self,
        caller: &Caller,
        stream: &mut FramedStream,
    ) -> Result<(), FrameError> {
        if caller.role != Role::Admin {
            let error = ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "{caller} may not take a backup: backups hold the cluster CA key (admin only)"
                ),
            );
            return stream.send(&Response::Error(error)).await;
        }
        if let Err(e) = self.cluster.read_barrier().await {
            let code = if e.is_retryable() {
                ErrorCode::Unavailable
            } else {
                ErrorCode::Internal
            };
            let error = ApiError::new(code, format!("read barrier before the backup: {e}"));
            return stream.send(&Response::Error(error)).await;
        }
        let files = match read_pki(&self.pki) {
            Ok(files) => files,
            Err(message) => {
                warn!(%message, "backup refused");
                let error = ApiError::new(ErrorCode::Internal, message);
                return stream.send(&Response::Error(error)).await;
            }
        };
        let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
        let reader = self.cluster.reader();
        let controller = self.controller.clone();
        let producer = tokio::task::spawn_blocking(move || produce(&reader, files, controller, tx));
        let mut started = None;
        let result = async {
            while let Some(item) = rx.recv().await {
                match item {
                    Produced::Started(info) => {
                        stream.send(&Response::BackupStarted(info.clone())).await?;
                        started = Some(info);
                    }
                    Produced::Data(bytes) => stream.send(&BackupPart::Data(bytes)).await?,
                    Produced::Done { bytes, sha256 } => {
                        stream.send(&BackupPart::End { bytes, sha256 }).await?;
                        if let Some(info) = &started {
                            info!(
                                caller = %caller,
                                revision = info.revision,
                                records = info.records,
                                bytes,
                                "backup taken"
                            );
                        }
                        return Ok(());
                    }
                    Produced::Failed(message) => {
                        warn!(%message, "backup failed");
                        let error = ApiError::new(ErrorCode::Internal, message);
                        return match started {
                            Some(_) => stream.send(&BackupPart::Failed(error)).await,
                            None => stream.send(&Response::Error(error)).await,
                        };
                    }
                }
            }
            // The producer ended without a word: it panicked. The client sees a stream
            // without its end and keeps nothing.
            Err(FrameError::ClosedStream)
        }
        .await;
        drop(rx);
        let _ = producer.await;
        result
    }
}

/// An error with its causes, for a message that crosses the wire.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// The CA and, when present, the secrets key, as `(file name, bytes)`.
fn read_pki(pki: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    for (name, required) in [
        (CA_CERT_FILE, true),
        (CA_KEY_FILE, true),
        (SECRETS_KEY_FILE, false),
    ] {
        let path = pki.join(name);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => continue,
            Err(e) => return Err(format!("read {}: {e}", path.display())),
            Ok(m) if m.len() > MAX_PKI_FILE => {
                return Err(format!(
                    "{}: {} bytes, more than {MAX_PKI_FILE} a key or certificate file may have",
                    path.display(),
                    m.len()
                ));
            }
            Ok(_) => {}
        }
        let data = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        files.push((name.to_string(), data));
    }
    // A key kept outside the data directory (`--secrets-key`) goes in as well: without it
    // the backup's secrets could not be read.
    if !files.iter().any(|(name, _)| name == SECRETS_KEY_FILE)
        && let Some(key) = crate::sealing::installed()
    {
        files.push((SECRETS_KEY_FILE.to_string(), key.bytes().to_vec()));
    }
    Ok(files)
}

/// The archive as it is written: parts of `PART` bytes to the channel, and its digest.
struct Sink {
    tx: mpsc::Sender<Produced>,
    buffer: Vec<u8>,
    bytes: u64,
    digest: digest::Context,
    error: Option<String>,
}

impl Sink {
    fn send(&self, item: Produced) -> ControlFlow<()> {
        match self.tx.blocking_send(item) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    }

    fn entry(&mut self, entry: &Entry) -> ControlFlow<()> {
        let bytes = match archive::encode(entry) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.error = Some(e.to_string());
                return ControlFlow::Break(());
            }
        };
        self.digest.update(&bytes);
        self.bytes += bytes.len() as u64;
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let take = (PART - self.buffer.len()).min(rest.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() == PART {
                self.flush()?;
            }
        }
        ControlFlow::Continue(())
    }

    fn flush(&mut self) -> ControlFlow<()> {
        if self.buffer.is_empty() {
            return ControlFlow::Continue(());
        }
        let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART));
        self.send(Produced::Data(part))
    }
}

/// Runs on a blocking thread: exports the state and writes the archive to `tx`.
fn produce(
    reader: &StateReader,
    files: Vec<(String, Vec<u8>)>,
    controller: String,
    tx: mpsc::Sender<Produced>,
) {
    let taken_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let file_count = files.len() as u32;
    let sink = RefCell::new(Sink {
        tx: tx.clone(),
        buffer: Vec::with_capacity(PART),
        bytes: 0,
        digest: digest::Context::new(&digest::SHA256),
        error: None,
    });
    let mut records = 0u64;
    let exported = reader.export(
        |head| {
            let mut sink = sink.borrow_mut();
            sink.send(Produced::Started(BackupInfo {
                revision: head.revision,
                applied_index: head.applied_index,
                records: head.records,
                controller: controller.clone(),
            }))?;
            sink.entry(&Entry::Header(ArchiveHeader {
                format: ARCHIVE_FORMAT,
                revision: head.revision,
                applied_index: head.applied_index,
                taken_at,
                controller: controller.clone(),
                members: head
                    .members
                    .into_iter()
                    .map(|(id, info)| ArchiveMember {
                        id,
                        name: info.name,
                        address: info.address,
                    })
                    .collect(),
                records: head.records,
            }))?;
            for (name, data) in files {
                sink.entry(&Entry::File { name, data })?;
            }
            ControlFlow::Continue(())
        },
        |key, object| {
            records += 1;
            sink.borrow_mut().entry(&Entry::Record(Record {
                kind: key.kind,
                namespace: key.namespace,
                name: key.name,
                value: object.value,
                create_revision: object.create_revision,
                mod_revision: object.mod_revision,
            }))
        },
    );
    let mut sink = sink.into_inner();
    let failed = match exported {
        Ok(ControlFlow::Continue(())) => {
            let end = Entry::End {
                records,
                files: file_count,
            };
            if sink.entry(&end).is_continue() && sink.flush().is_continue() {
                let sha256 = sink.digest.clone().finish().as_ref().to_vec();
                let _ = sink.send(Produced::Done {
                    bytes: sink.bytes,
                    sha256,
                });
                return;
            }
            sink.error.take()
        }
        Ok(ControlFlow::Break(())) => sink.error.take(),
        Err(e) => Some(format!("read the state for the backup: {}", chain(&e))),
    };
    // No message: the client went away, nobody to tell.
    if let Some(message) = failed {
        let _ = tx.blocking_send(Produced::Failed(message));
    }
}
