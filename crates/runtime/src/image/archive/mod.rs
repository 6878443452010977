//! Offline images: importing OCI image layouts (directories or tars) and `docker save`
//! tars, exporting OCI layout tars, and importing an appliance's preload directory.
//!
//! Owns reading and writing archive formats; stores everything through [`Store`]
//! (never writing into the store's directories itself), so every blob is verified on
//! the way in.
//!
//! ```text
//! file ─sniff─► gzip / zstd / plain ─► tar entries (read, never extracted)
//!   blobs/<alg>/<hex>  ─► store.ingest(digest from the name)  (verified)
//!   other files        ─► store.put_reader                    (digest computed)
//!   index.json, oci-layout, manifest.json ─► memory (bounded)
//! then: OCI layout ─► walk index.json from the store ─► references from annotations
//!       docker save ─► an OCI manifest per manifest.json entry ─► RepoTags
//! directory (OCI layout) ─► walk index.json, ingesting each blob it reaches
//! ```
//!
//! An archive is hostile input: entry names with `..` or a leading `/`, links that
//! leave the archive, unsupported entry types, oversized JSON or extension headers,
//! wrong digests and missing blobs are errors naming the entry. An import that fails
//! tags nothing; blobs it already stored are unreferenced and go at the next GC.

mod docker;
mod entries;
mod layout;
mod preload;
mod save;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::digest::Digest;
use super::manifest::ManifestError;
use super::platform::Platform;
use super::reference::{Reference, ReferenceError};
use super::store::{Store, StoreError};

pub use preload::{PreloadReport, import_preload_dir};
pub use save::save;

/// Most entries read from one archive.
const MAX_ENTRIES: u64 = 100_000;
/// Most bytes read from one archive after decompression.
const MAX_ARCHIVE_BYTES: u64 = 256 << 30;

/// The annotation OCI layouts name an image with (skopeo and umoci write the tag only).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and Docker's) annotation with the full image name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Errors of importing and exporting archives.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: reading the archive: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: entry {entry:?}: {problem}")]
    BadEntry {
        path: PathBuf,
        entry: String,
        problem: &'static str,
    },
    #[error("{path}: entry {entry:?}: {source}")]
    Entry {
        path: PathBuf,
        entry: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("{path}: more than {max} entries")]
    TooManyEntries { path: PathBuf, max: u64 },
    #[error("{path}: {file} is more than the {max} bytes allowed")]
    TooLarge {
        path: PathBuf,
        file: String,
        max: u64,
    },
    #[error(
        "{path}: neither an OCI image layout (oci-layout and index.json) nor a docker save archive (manifest.json)"
    )]
    UnknownFormat { path: PathBuf },
    #[error("{path}: oci-layout: unsupported imageLayoutVersion {version:?}")]
    LayoutVersion { path: PathBuf, version: String },
    #[error("{path}: {file}: {source}")]
    Json {
        path: PathBuf,
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {file}: {source}")]
    Manifest {
        path: PathBuf,
        file: String,
        #[source]
        source: ManifestError,
    },
    #[error("{path}: blob {digest} is not in the archive")]
    MissingBlob { path: PathBuf, digest: Digest },
    #[error("{path}: {file} names {entry:?}, which is not in the archive")]
    MissingEntry {
        path: PathBuf,
        file: String,
        entry: String,
    },
    #[error(
        "{path}: blob {digest}: the descriptor says {expected} bytes, the archive has {actual}"
    )]
    SizeMismatch {
        path: PathBuf,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: manifest {digest}: indexes nest too deep or point at themselves")]
    IndexDepth { path: PathBuf, digest: Digest },
    #[error(
        "{path}: layer {entry:?} is uncompressed with digest {digest}, but the config's diff_id is {diff_id}"
    )]
    DiffIdMismatch {
        path: PathBuf,
        entry: String,
        digest: Digest,
        diff_id: Digest,
    },
    #[error("{path}: {file}: {name:?} is not an image reference: {source}")]
    BadReference {
        path: PathBuf,
        file: String,
        name: String,
        #[source]
        source: ReferenceError,
    },
    #[error("{path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: Box<StoreError>,
    },
    #[error("reference {reference} is not in the store")]
    NotFound { reference: Reference },
    #[error("image {reference}: blob {digest} is not in the store (pull it again)")]
    Incomplete { reference: String, digest: Digest },
}

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

fn store_err(path: &Path) -> impl FnOnce(StoreError) -> ArchiveError + '_ {
    move |source| ArchiveError::Store {
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

/// One image an import brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The reference it was tagged with, when the archive named it fully (`RepoTags`,
    /// `io.containerd.image.name`, or a `ref.name` with a repository). `None` when the
    /// archive gave only a tag or nothing: the caller tags it (else GC removes it).
    pub reference: Option<Reference>,
    /// `org.opencontainers.image.ref.name` as the archive wrote it.
    pub ref_name: Option<String>,
    /// The manifest or index the image is.
    pub digest: Digest,
}

/// Imports an OCI image layout directory, an OCI layout tar or a `docker save` tar
/// (the tars optionally gzip- or zstd-compressed), tagging what it names. For an index,
/// the manifest for `platform` must be complete; other platforms' content is imported
/// when present.
pub fn import(
    store: &Store,
    path: &Path,
    platform: &Platform,
) -> Result<Vec<Imported>, ArchiveError> {
    // Held until the images are tagged, so GC cannot take the blobs in between.
    let _g = store.hold().map_err(store_err(path))?;
    let meta = std::fs::metadata(path).map_err(io_err("inspect", path))?;
    let images = if meta.is_dir() {
        layout::import_dir(store, path, platform)?
    } else {
        let input = open_input(path)?;
        let scanned = entries::scan(store, input, path)?;
        if scanned.small.contains_key("index.json") && scanned.small.contains_key("oci-layout") {
            layout::import_scanned(store, path, &scanned, platform)?
        } else if scanned.small.contains_key("manifest.json") {
            docker::import(store, path, &scanned)?
        } else {
            return Err(ArchiveError::UnknownFormat {
                path: path.to_path_buf(),
            });
        }
    };
    for image in &images {
        if let Some(r) = &image.reference {
            store.tag(r, &image.digest).map_err(store_err(path))?;
        }
    }
    Ok(images)
}

/// The archive's bytes, decompressed if they start with a gzip or zstd magic number,
/// and cut off (as an error) past [`MAX_ARCHIVE_BYTES`].
fn open_input(path: &Path) -> Result<Box<dyn Read>, ArchiveError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut buffered = BufReader::with_capacity(256 << 10, file);
    let head = buffered.fill_buf().map_err(io_err("read", path))?;
    let inner: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(io_err("open", path))?)
    } else {
        Box::new(buffered)
    };
    Ok(Box::new(Capped {
        inner,
        left: MAX_ARCHIVE_BYTES,
    }))
}

/// Errors once more than `left` bytes have been read (a decompression bomb).
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "archive larger than allowed")
        })?;
        Ok(n)
    }
}
