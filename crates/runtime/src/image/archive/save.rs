//! Exporting images as an OCI image layout tar that skopeo, umoci, containerd and
//! Docker read.
//!
//! ```text
//! blobs/                      directories 0755, files 0644, owner 0:0, mtime 0
//! blobs/sha256/<hex>          every blob the images reach, sorted
//! index.json                  one entry per reference, in the order given
//! oci-layout                  {"imageLayoutVersion":"1.0.0"}
//! ```
//!
//! Each `index.json` entry carries `org.opencontainers.image.ref.name` = the tag (what
//! `skopeo copy oci-archive:FILE:TAG` and `umoci --image DIR:TAG` look up) and
//! `io.containerd.image.name` = the full reference (what containerd, Docker and moor's
//! own import read back). Equal store content gives byte-identical archives. The tar is
//! written next to `out` and renamed over it when complete.
//!
//! Manifests are written as the store holds them, since converting would change their
//! digests: a Docker schema 2 image pulled from Docker Hub stays one (skopeo and
//! containerd read it; umoci reads OCI manifests only). Of an index, the platforms whose
//! manifests are in the store are written.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::{ArchiveError, CONTAINERD_NAME, REF_NAME, io_err, store_err};
use crate::image::digest::Digest;
use crate::image::manifest::{self, MAX_MANIFEST_BYTES, OCI_INDEX, Parsed, kind_of};
use crate::image::reference::Reference;
use crate::image::store::{Store, StoreError};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexOut {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<EntryOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryOut {
    media_type: String,
    digest: Digest,
    size: u64,
    annotations: BTreeMap<&'static str, String>,
}

/// Writes the images `references` name to `out` as an OCI layout tar.
pub fn save(store: &Store, references: &[Reference], out: &Path) -> Result<(), ArchiveError> {
    let _g = store.hold().map_err(store_err(out))?;
    let mut blobs = BTreeSet::new();
    let mut entries: Vec<EntryOut> = Vec::new();
    for reference in references {
        let digest = store
            .resolve(reference)
            .map_err(store_err(out))?
            .ok_or_else(|| ArchiveError::NotFound {
                reference: reference.clone(),
            })?;
        let bytes = store
            .read_blob(&digest, MAX_MANIFEST_BYTES)
            .map_err(store_err(out))?;
        let parsed = manifest::parse(&bytes, None).map_err(|source| ArchiveError::Manifest {
            path: out.to_path_buf(),
            file: format!("manifest {digest}"),
            source,
        })?;
        collect(store, out, reference, &digest, &parsed, &mut blobs, 0)?;
        let mut annotations = BTreeMap::new();
        if let Some(tag) = &reference.tag {
            annotations.insert(REF_NAME, tag.clone());
        }
        annotations.insert(CONTAINERD_NAME, reference.to_string());
        let entry = EntryOut {
            media_type: parsed.media_type(),
            digest,
            size: bytes.len() as u64,
            annotations,
        };
        if !entries
            .iter()
            .any(|e| e.digest == entry.digest && e.annotations == entry.annotations)
        {
            entries.push(entry);
        }
    }
    let index = IndexOut {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests: entries,
    };
    let index_json = serde_json::to_vec(&index).map_err(|source| ArchiveError::Json {
        path: out.to_path_buf(),
        file: "index.json".into(),
        source,
    })?;

    let tmp = tmp_path(out);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    let result = write_tar(store, file, &blobs, &index_json, &tmp)
        .and_then(|()| fs::rename(&tmp, out).map_err(io_err("rename into place", out)))
        .and_then(|()| {
            let dir = out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("sync directory", dir))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Adds the blobs `parsed` reaches. An index's platforms that are not in the store are
/// left out (a pull fetches one platform); an image's config and layers must be there.
fn collect(
    store: &Store,
    out: &Path,
    reference: &Reference,
    digest: &Digest,
    parsed: &Parsed,
    blobs: &mut BTreeSet<Digest>,
    depth: usize,
) -> Result<(), ArchiveError> {
    let bad = |source| ArchiveError::Manifest {
        path: out.to_path_buf(),
        file: format!("manifest {digest}"),
        source,
    };
    if depth > 4 || !blobs.insert(digest.clone()) {
        return Ok(());
    }
    for child in parsed.children() {
        let d = manifest::descriptor_digest(child).map_err(bad)?;
        if !store.has_blob(&d) {
            if matches!(parsed, Parsed::Index(_)) {
                continue;
            }
            return Err(ArchiveError::Incomplete {
                reference: reference.to_string(),
                digest: d,
            });
        }
        if kind_of(child.media_type().as_ref()).is_some() {
            let bytes = store
                .read_blob(&d, MAX_MANIFEST_BYTES)
                .map_err(|source| match source {
                    StoreError::BlobMissing { digest } => ArchiveError::Incomplete {
                        reference: reference.to_string(),
                        digest,
                    },
                    other => store_err(out)(other),
                })?;
            let child_parsed =
                manifest::parse(&bytes, Some(child.media_type().as_ref())).map_err(bad)?;
            collect(store, out, reference, &d, &child_parsed, blobs, depth + 1)?;
        } else {
            blobs.insert(d);
        }
    }
    Ok(())
}

fn write_tar(
    store: &Store,
    file: File,
    blobs: &BTreeSet<Digest>,
    index_json: &[u8],
    tmp: &Path,
) -> Result<(), ArchiveError> {
    let write_err = io_err("write", tmp);
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    let mut dirs: Vec<String> = vec!["blobs/".into()];
    dirs.extend(
        blobs
            .iter()
            .map(|d| format!("blobs/{}/", d.algorithm().name()))
            .collect::<BTreeSet<_>>(),
    );
    let result = (|| -> io::Result<()> {
        for dir in &dirs {
            tar.append_data(
                &mut header(tar::EntryType::Directory, 0o755, 0),
                dir,
                io::empty(),
            )?;
        }
        for d in blobs {
            let name = format!("blobs/{}/{}", d.algorithm().name(), d.hex());
            let blob = store.open_blob(d).map_err(io::Error::other)?;
            let size = blob.metadata()?.len();
            tar.append_data(
                &mut header(tar::EntryType::Regular, 0o644, size),
                &name,
                blob,
            )?;
        }
        tar.append_data(
            &mut header(tar::EntryType::Regular, 0o644, index_json.len() as u64),
            "index.json",
            index_json,
        )?;
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        tar.append_data(
            &mut header(tar::EntryType::Regular, 0o644, layout.len() as u64),
            "oci-layout",
            &layout[..],
        )?;
        let mut w = tar.into_inner()?;
        w.flush()?;
        w.get_ref().sync_all()
    })();
    result.map_err(write_err)
}

/// A header with nothing of the machine that wrote it: owner 0:0, no names, mtime 0.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// `.<name>.<pid>-<n>.tmp` next to `out`.
fn tmp_path(out: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = out
        .file_name()
        .map_or("archive".into(), |n| n.to_string_lossy().into_owned());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    out.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}
