//! OCI image layouts: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`, as a directory
//! or as a tar already scanned into the store.
//!
//! Each `index.json` entry is walked: a manifest needs its config and layers; an index
//! needs the manifest [`select`](crate::image::manifest::select) picks for the
//! platform, and its other entries are taken when present.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use oci_spec::image::Descriptor;
use serde::Deserialize;

use super::entries::Scanned;
use super::{ArchiveError, CONTAINERD_NAME, Imported, REF_NAME, io_err, store_err};
use crate::image::digest::Digest;
use crate::image::manifest::{self, MAX_BLOB_SIZE, MAX_MANIFEST_BYTES, OCI_INDEX, Parsed, kind_of};
use crate::image::platform::Platform;
use crate::image::store::{Store, StoreError};

/// Most indexes below `index.json` followed to reach a manifest.
const MAX_DEPTH: usize = 4;

/// Where a layout's blobs come from.
trait Source {
    /// Makes sure the blob is in the store; false if the layout does not have it.
    fn fetch(&mut self, store: &Store, digest: &Digest, size: u64) -> Result<bool, ArchiveError>;
}

/// A tar scanned into the store: a blob is there or not.
struct Stored<'a> {
    archive: &'a Path,
}

impl Source for Stored<'_> {
    fn fetch(&mut self, store: &Store, digest: &Digest, size: u64) -> Result<bool, ArchiveError> {
        present_with_size(store, self.archive, digest, size)
    }
}

fn present_with_size(
    store: &Store,
    archive: &Path,
    digest: &Digest,
    size: u64,
) -> Result<bool, ArchiveError> {
    match store.blob_size(digest) {
        Ok(actual) if actual == size => Ok(true),
        Ok(actual) => Err(ArchiveError::SizeMismatch {
            path: archive.to_path_buf(),
            digest: digest.clone(),
            expected: size,
            actual,
        }),
        Err(StoreError::BlobMissing { .. }) => Ok(false),
        Err(e) => Err(store_err(archive)(e)),
    }
}

/// A layout directory: blobs are read from it (never through a symlink) and ingested.
struct Dir<'a> {
    root: &'a Path,
}

impl Source for Dir<'_> {
    fn fetch(&mut self, store: &Store, digest: &Digest, size: u64) -> Result<bool, ArchiveError> {
        if present_with_size(store, self.root, digest, size)? {
            return Ok(true);
        }
        let alg_dir = self.root.join("blobs").join(digest.algorithm().name());
        for dir in [self.root.join("blobs"), alg_dir.clone()] {
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(bad_entry(
                        self.root,
                        &dir,
                        "not a directory (symlinks are not followed)",
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io_err("inspect", &dir)(e)),
            }
        }
        let path = alg_dir.join(digest.hex());
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(bad_entry(self.root, &path, "is a symlink (not followed)"));
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        if !file.metadata().map_err(io_err("inspect", &path))?.is_file() {
            return Err(bad_entry(self.root, &path, "not a regular file"));
        }
        store
            .ingest(digest, Some(size), MAX_BLOB_SIZE, file, &mut |_| {})
            .map_err(|source| ArchiveError::Entry {
                path: self.root.to_path_buf(),
                entry: relative(self.root, &path),
                source: Box::new(source),
            })?;
        Ok(true)
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn bad_entry(root: &Path, path: &Path, problem: &'static str) -> ArchiveError {
    ArchiveError::BadEntry {
        path: root.to_path_buf(),
        entry: relative(root, path),
        problem,
    }
}

/// Imports an OCI layout directory.
pub(super) fn import_dir(
    store: &Store,
    root: &Path,
    platform: &Platform,
) -> Result<Vec<Imported>, ArchiveError> {
    let read_small = |name: &str| -> Result<Vec<u8>, ArchiveError> {
        let path = root.join(name);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => ArchiveError::UnknownFormat {
                    path: root.to_path_buf(),
                },
                _ => io_err("open", &path)(e),
            })?;
        read_limited(file, &path, name)
    };
    let layout = read_small("oci-layout")?;
    let index = read_small("index.json")?;
    import_layout(store, root, &layout, &index, platform, &mut Dir { root })
}

fn read_limited(file: File, path: &Path, name: &str) -> Result<Vec<u8>, ArchiveError> {
    use std::io::Read;
    let mut out = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(io_err("read", path))?;
    if out.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ArchiveError::TooLarge {
            path: path.to_path_buf(),
            file: name.to_string(),
            max: MAX_MANIFEST_BYTES,
        });
    }
    Ok(out)
}

/// Imports an OCI layout tar whose blobs [`super::entries::scan`] stored.
pub(super) fn import_scanned(
    store: &Store,
    archive: &Path,
    scanned: &Scanned,
    platform: &Platform,
) -> Result<Vec<Imported>, ArchiveError> {
    let get = |name: &str| {
        scanned
            .small
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    import_layout(
        store,
        archive,
        get("oci-layout"),
        get("index.json"),
        platform,
        &mut Stored { archive },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

fn import_layout(
    store: &Store,
    archive: &Path,
    layout: &[u8],
    index: &[u8],
    platform: &Platform,
    source: &mut dyn Source,
) -> Result<Vec<Imported>, ArchiveError> {
    let layout: LayoutFile =
        serde_json::from_slice(layout).map_err(|source| ArchiveError::Json {
            path: archive.to_path_buf(),
            file: "oci-layout".into(),
            source,
        })?;
    if !layout.image_layout_version.starts_with("1.") {
        return Err(ArchiveError::LayoutVersion {
            path: archive.to_path_buf(),
            version: layout.image_layout_version.chars().take(50).collect(),
        });
    }
    let index = match manifest::parse(index, Some(OCI_INDEX)) {
        Ok(Parsed::Index(i)) => i,
        Ok(Parsed::Image(_)) => unreachable_shape(archive)?,
        Err(source) => {
            return Err(ArchiveError::Manifest {
                path: archive.to_path_buf(),
                file: "index.json".into(),
                source,
            });
        }
    };
    let mut images = Vec::new();
    for desc in index.manifests() {
        if kind_of(desc.media_type().as_ref()).is_none() {
            continue;
        }
        let digest = descriptor_digest(archive, "index.json", desc)?;
        walk(
            store,
            archive,
            source,
            desc,
            platform,
            true,
            0,
            &mut Vec::new(),
        )?;
        let (reference, ref_name) = names(archive, desc)?;
        images.push(Imported {
            reference,
            ref_name,
            digest,
        });
    }
    Ok(images)
}

/// `parse` with a declared index type never returns an image; kept as an error rather
/// than a panic all the same.
fn unreachable_shape<T>(archive: &Path) -> Result<T, ArchiveError> {
    Err(ArchiveError::Manifest {
        path: archive.to_path_buf(),
        file: "index.json".into(),
        source: manifest::ManifestError::ShapeMismatch {
            media_type: OCI_INDEX.into(),
            shape: "an image manifest",
        },
    })
}

fn descriptor_digest(archive: &Path, file: &str, d: &Descriptor) -> Result<Digest, ArchiveError> {
    manifest::descriptor_digest(d).map_err(|source| ArchiveError::Manifest {
        path: archive.to_path_buf(),
        file: file.to_string(),
        source,
    })
}

/// Brings `desc` and what it reaches into the store. `required`: missing content is
/// an error (else it is skipped). `stack`: the manifests above, to refuse cycles.
#[allow(clippy::too_many_arguments)]
fn walk(
    store: &Store,
    archive: &Path,
    source: &mut dyn Source,
    desc: &Descriptor,
    platform: &Platform,
    required: bool,
    depth: usize,
    stack: &mut Vec<Digest>,
) -> Result<(), ArchiveError> {
    let digest = descriptor_digest(archive, "index.json", desc)?;
    let media_type = desc.media_type().to_string();
    let kind = kind_of(&media_type);
    if kind.is_some() && (depth > MAX_DEPTH || stack.contains(&digest)) {
        return Err(ArchiveError::IndexDepth {
            path: archive.to_path_buf(),
            digest,
        });
    }
    if !source.fetch(store, &digest, desc.size())? {
        if required {
            return Err(ArchiveError::MissingBlob {
                path: archive.to_path_buf(),
                digest,
            });
        }
        return Ok(());
    }
    if kind.is_none() {
        return Ok(());
    }
    let file = format!("manifest {digest}");
    let bytes = store
        .read_blob(&digest, MAX_MANIFEST_BYTES)
        .map_err(store_err(archive))?;
    let parsed =
        manifest::parse(&bytes, Some(&media_type)).map_err(|source| ArchiveError::Manifest {
            path: archive.to_path_buf(),
            file: file.clone(),
            source,
        })?;
    stack.push(digest);
    match parsed {
        Parsed::Index(index) => {
            let chosen = match manifest::select(&index, platform) {
                Ok(c) => Some(c),
                Err(source) if required => {
                    return Err(ArchiveError::Manifest {
                        path: archive.to_path_buf(),
                        file,
                        source,
                    });
                }
                Err(_) => None,
            };
            for child in index.manifests() {
                let needed = required && chosen.as_ref() == Some(child);
                walk(
                    store,
                    archive,
                    source,
                    child,
                    platform,
                    needed,
                    depth + 1,
                    stack,
                )?;
            }
        }
        Parsed::Image(m) => {
            for child in std::iter::once(m.config()).chain(m.layers()) {
                walk(
                    store,
                    archive,
                    source,
                    child,
                    platform,
                    required,
                    depth + 1,
                    stack,
                )?;
            }
        }
    }
    stack.pop();
    Ok(())
}

/// The reference and raw `ref.name` of an `index.json` entry (see [`Imported`]).
fn names(
    archive: &Path,
    desc: &Descriptor,
) -> Result<(Option<super::Reference>, Option<String>), ArchiveError> {
    let annotations = desc.annotations().as_ref();
    let ref_name = annotations.and_then(|a| a.get(REF_NAME)).cloned();
    if let Some(full) = annotations.and_then(|a| a.get(CONTAINERD_NAME)) {
        let reference = full.parse().map_err(|source| ArchiveError::BadReference {
            path: archive.to_path_buf(),
            file: "index.json".into(),
            name: full.chars().take(300).collect(),
            source,
        })?;
        return Ok((Some(reference), ref_name));
    }
    // A ref.name with a repository in it is a full name (some tools write them so);
    // a bare tag is not, and is left for the caller to name.
    let reference = ref_name
        .as_deref()
        .filter(|n| n.contains('/') || n.contains(':'))
        .and_then(|n| n.parse().ok());
    Ok((reference, ref_name))
}
