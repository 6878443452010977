//! Unpacking one image layer (a tar stream, maybe compressed) into an empty directory
//! that overlayfs can use as a lower layer.
//!
//! Owns: decompression, the diff_id check, tar parsing, the rules that make a hostile
//! layer harmless (see `docs/images.md`, "Layers are hostile input"), whiteouts in
//! overlayfs's format. Does not own: where the directory is, renaming it into the
//! store, removing it after a failure, the one `syncfs` (see [`sync_dir`]) — the store
//! does those.
//!
//! ```text
//! caller's thread                       worker thread (joined before returning)
//! input -> decompress -> sha256, count  ==chunks==>  tar -> entries -> files under dest
//!          (stream)     (limit: max_bytes)           (tar, extract, tree, at)
//! ```
//!
//! Nothing is written outside `dest`: every name is checked ([`name`]), every directory
//! is walked from a descriptor of `dest` one component at a time without following a
//! symlink ([`tree`]), and metadata goes on descriptors or `*at` calls that do not
//! follow ([`at`]). The worker thread exists for speed (decompression and hashing
//! overlap with file system work, as `tar -xzf` overlaps with `gzip -d`); it is joined
//! before [`unpack_layer`] returns, so the process is as single-threaded after as it
//! was before.

mod at;
mod error;
mod extract;
mod name;
mod pax;
mod sparse;
mod stream;
mod tar;
mod tree;

#[cfg(test)]
mod tests;

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

pub use error::UnpackError;

use crate::image::digest::{Algorithm, Digest};
use stream::{ChunkReader, DEPTH, ProduceError};

/// How a layer's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression an OCI or Docker layer media type names; `None` for a media type
    /// that is not a layer moor can unpack.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        match essence {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    /// The compression the first bytes of a blob show (gzip or zstd magic), else `None`.
    pub fn sniff(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if first_bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Bounds on what one layer may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Uncompressed stream bytes (the tar itself), and separately the apparent size of
    /// all sparse files together.
    pub max_bytes: u64,
    /// Archive entries (files, directories, links, whiteouts...).
    pub max_entries: u64,
    /// Bytes in an entry name or link target.
    pub max_path: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
            max_path: 4096,
        }
    }
}

/// What a layer turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Digest of the whole uncompressed stream.
    pub diff_id: Digest,
    /// Bytes in the uncompressed stream.
    pub size: u64,
    /// Archive entries unpacked.
    pub entries: u64,
}

/// Unpacks one layer into `dest`, an existing EMPTY directory that the caller made
/// (inside the store's tmp dir). Hashes the uncompressed stream (sha256, or the
/// algorithm of `expected_diff_id`) and, when `expected_diff_id` is given, fails if it
/// differs — after consuming the whole stream (including any padding after the tar
/// end, as the diff_id covers the whole stream).
///
/// On error `dest` holds part of the layer and the caller removes it; nothing is ever
/// written outside it. Files are not synced: call [`sync_dir`] once when done.
pub fn unpack_layer(
    input: impl Read,
    compression: Compression,
    dest: &Path,
    expected_diff_id: Option<&Digest>,
    limits: &UnpackLimits,
) -> Result<Unpacked, UnpackError> {
    let algorithm = expected_diff_id.map_or(Algorithm::Sha256, Digest::algorithm);
    let (full_tx, full_rx) = sync_channel(DEPTH);
    let (empty_tx, empty_rx) = sync_channel(DEPTH + 2);
    let (produced, extracted) = std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("moor-unpack".into())
            .spawn_scoped(scope, move || {
                let reader = ChunkReader::new(full_rx, empty_tx);
                unpack_entries(reader, dest, limits)
            })
            .map_err(|source| UnpackError::Spawn { source })?;
        let produced = stream::produce(
            input,
            compression,
            algorithm,
            limits.max_bytes,
            full_tx,
            empty_rx,
        );
        // A panic in the worker is a bug, not input: let it reach the caller's thread.
        let extracted = match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Ok::<_, UnpackError>((produced, extracted))
    })?;
    // A failed stream explains whatever the worker then saw (usually a truncation).
    let (diff_id, size) = match produced {
        Ok(done) => done,
        Err(ProduceError::Failed(e)) => return Err(e),
        // The worker hangs up early only after failing.
        Err(ProduceError::ConsumerGone) => {
            return Err(extracted.err().unwrap_or_else(|| UnpackError::Truncated {
                path: PathBuf::new(),
            }));
        }
    };
    let entries = extracted?;
    if let Some(expected) = expected_diff_id
        && *expected != diff_id
    {
        return Err(UnpackError::DiffIdMismatch {
            expected: expected.clone(),
            actual: diff_id,
        });
    }
    Ok(Unpacked {
        diff_id,
        size,
        entries,
    })
}

/// The worker's side: tar entries to files, then the rest of the stream drained so the
/// producer hashes it to the end.
fn unpack_entries(
    reader: ChunkReader,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<u64, UnpackError> {
    let mut tree = tree::Tree::new(dest)?;
    let mut tar = tar::TarReader::new(reader, limits.max_path);
    let entries = extract::extract(&mut tar, &mut tree, limits)?;
    tree.finish()?;
    tar.into_inner().drain();
    Ok(entries)
}

/// `syncfs` of the file system holding `dest`: one call makes a whole unpacked layer
/// durable, instead of an `fsync` per file.
pub fn sync_dir(dest: &Path) -> Result<(), UnpackError> {
    let sync_err = |source| UnpackError::Sync {
        path: dest.to_path_buf(),
        source,
    };
    let fd = at::open_dir_path(dest).map_err(sync_err)?;
    at::syncfs(fd.as_fd()).map_err(sync_err)
}
