//! Errors of the Raft storage.
//!
//! Owns `StoreError`, which names the step that failed and the table and key involved.
//! Does not own request outcomes: a conflict is a [`Response`](super::Response), not an error.
//! Every `StoreError` is fatal to the Raft node that sees it (openraft stops on storage
//! errors); none is retryable.

use std::io;
use std::path::PathBuf;

use super::codec::CodecError;

/// A failure of the Raft log or state machine storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the storage directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the database")]
    Open(#[source] redb::DatabaseError),
    #[error("cannot begin a transaction")]
    Begin(#[source] redb::TransactionError),
    #[error("cannot open table {table}")]
    Table {
        table: &'static str,
        #[source]
        source: redb::TableError,
    },
    #[error("cannot access table {table}")]
    Access {
        table: &'static str,
        #[source]
        source: redb::StorageError,
    },
    #[error("cannot set commit durability")]
    Durability(#[source] redb::SetDurabilityError),
    #[error("cannot commit the transaction")]
    Commit(#[source] redb::CommitError),
    #[error("cannot abort the transaction")]
    Abort(#[source] redb::StorageError),
    #[error("corrupted record in table {table} at key {key}")]
    Corrupted {
        table: &'static str,
        key: String,
        #[source]
        source: CodecError,
    },
    #[error("cannot encode a record for table {table}")]
    Encode {
        table: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("log entry {found} follows {previous}: the log has a hole")]
    LogHole { previous: u64, found: u64 },
    #[error("log entry at index {index} carries log id index {found}")]
    LogIndexMismatch { index: u64, found: u64 },
    #[error("cannot {step} snapshot file {path}")]
    SnapshotFile {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupted snapshot {what}")]
    SnapshotCorrupted {
        what: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("snapshot data stops at {data:?} but its metadata says {meta:?}")]
    SnapshotMismatch {
        data: Option<u64>,
        meta: Option<u64>,
    },
    #[error("cannot encode the snapshot")]
    SnapshotEncode(#[source] CodecError),
    #[error("the storage task stopped before finishing")]
    TaskAborted(#[source] tokio::task::JoinError),
}

impl StoreError {
    /// Always false: the store never fails in a way a caller fixes by trying again.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl From<StoreError> for io::Error {
    fn from(err: StoreError) -> Self {
        let kind = match &err {
            StoreError::Corrupted { .. }
            | StoreError::LogHole { .. }
            | StoreError::LogIndexMismatch { .. }
            | StoreError::SnapshotCorrupted { .. }
            | StoreError::SnapshotMismatch { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
