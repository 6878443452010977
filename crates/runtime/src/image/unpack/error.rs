//! Everything unpacking a layer can fail with. Each variant names the step and, where
//! there is one, the archive entry (as the archive spells it, so a hostile name shows
//! up quoted and escaped in logs).

use std::io;
use std::path::PathBuf;

use crate::image::digest::Digest;

/// Errors of [`unpack_layer`](super::unpack_layer) and [`sync_dir`](super::sync_dir).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("open layer destination {path}: {source}")]
    OpenDest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer destination {path} is not empty")]
    DestNotEmpty { path: PathBuf },
    #[error("start the unpack worker thread: {source}")]
    Spawn {
        #[source]
        source: io::Error,
    },
    #[error("read the layer stream ({compression}): {source}")]
    Read {
        compression: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer stream exceeds the limit of {limit} uncompressed bytes")]
    TooManyBytes { limit: u64 },
    #[error("entry {path:?}: more than {limit} entries in the layer")]
    TooManyEntries { path: PathBuf, limit: u64 },
    #[error("entry {path:?}: stream ends early")]
    Truncated { path: PathBuf },
    #[error("entry {path:?}: bad tar header: {reason}")]
    Header { path: PathBuf, reason: &'static str },
    #[error("entry {path:?}: unsupported entry type {typeflag:?}")]
    UnsupportedType { path: PathBuf, typeflag: char },
    #[error("entry {path:?}: unsafe name: {reason}")]
    UnsafeName { path: PathBuf, reason: &'static str },
    #[error("entry {path:?}: parent {parent:?} is a symlink (never followed)")]
    BelowSymlink { path: PathBuf, parent: PathBuf },
    #[error("entry {path:?}: parent {parent:?} is not a directory")]
    ParentNotDirectory { path: PathBuf, parent: PathBuf },
    #[error("entry {path:?}: hardlink to {target:?}: {reason}")]
    Hardlink {
        path: PathBuf,
        target: PathBuf,
        reason: &'static str,
    },
    #[error("entry {path:?}: symlink target {target:?}: {reason}")]
    SymlinkTarget {
        path: PathBuf,
        target: PathBuf,
        reason: &'static str,
    },
    #[error("entry {path:?}: whiteout {reason}")]
    Whiteout { path: PathBuf, reason: &'static str },
    #[error("entry {path:?}: sparse file of {size} bytes exceeds the limit of {limit} bytes")]
    SparseTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("entry {path:?}: {step}: {source}")]
    Io {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer diff_id is {actual}, expected {expected}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    #[error("sync layer {path}: {source}")]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// A closure mapping an `io::Error` of `step` on entry `path` (nothing is built
    /// unless there is an error: this is on the path of every entry).
    pub(super) fn io<'a>(
        path: &'a [u8],
        step: &'static str,
    ) -> impl FnOnce(io::Error) -> UnpackError + 'a {
        move |source| UnpackError::Io {
            path: entry_path(path),
            step,
            source,
        }
    }
}

/// The most of an entry name an error carries: enough to find it, never megabytes.
const MAX_REPORTED_NAME: usize = 512;

/// An entry name as an error reports it (raw bytes, cut to a sane length).
pub(super) fn entry_path(name: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let cut = &name[..name.len().min(MAX_REPORTED_NAME)];
    std::ffi::OsStr::from_bytes(cut).into()
}
