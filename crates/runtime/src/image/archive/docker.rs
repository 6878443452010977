//! `docker save` archives: `manifest.json` lists, per image, a config file, layer tars
//! and `RepoTags`. Each entry becomes an OCI image manifest in the store whose
//! descriptors carry the digests computed while scanning.
//!
//! Docker writes layers uncompressed, so each layer's blob digest must equal the
//! config's diff id; a compressed layer (detected from its first bytes) is checked when
//! it is unpacked instead.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::entries::{Scanned, normalize};
use super::{ArchiveError, Imported, store_err};
use crate::image::digest::Digest;
use crate::image::manifest::{
    self, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, OCI_CONFIG, OCI_MANIFEST,
};
use crate::image::reference::Reference;
use crate::image::store::Store;
use crate::image::unpack::Compression;

/// Most images one `manifest.json` may list.
const MAX_IMAGES: usize = 1000;

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// An OCI manifest written with a fixed field order, so equal input makes equal bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: DescriptorOut,
    layers: Vec<DescriptorOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorOut {
    media_type: &'static str,
    digest: Digest,
    size: u64,
}

/// Converts every image of a scanned `docker save` archive.
pub(super) fn import(
    store: &Store,
    archive: &Path,
    scanned: &Scanned,
) -> Result<Vec<Imported>, ArchiveError> {
    let file = "manifest.json";
    let bytes = scanned
        .small
        .get(file)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let manifest_err = |source| ArchiveError::Manifest {
        path: archive.to_path_buf(),
        file: file.into(),
        source,
    };
    let value =
        manifest::parse_json(bytes, "manifest.json", MAX_MANIFEST_BYTES).map_err(manifest_err)?;
    let entries: Vec<Entry> =
        serde_json::from_value(value).map_err(|source| ArchiveError::Json {
            path: archive.to_path_buf(),
            file: file.into(),
            source,
        })?;
    if entries.len() > MAX_IMAGES {
        return Err(ArchiveError::TooLarge {
            path: archive.to_path_buf(),
            file: format!("{file} ({} images)", entries.len()),
            max: MAX_IMAGES as u64,
        });
    }

    let mut images = Vec::new();
    for entry in entries {
        let (config_digest, config_size) = find(archive, scanned, &entry.config)?;
        let config_bytes = store
            .read_blob(&config_digest, MAX_CONFIG_BYTES)
            .map_err(store_err(archive))?;
        let config =
            manifest::parse_config(&config_bytes).map_err(|source| ArchiveError::Manifest {
                path: archive.to_path_buf(),
                file: entry.config.clone(),
                source,
            })?;
        if config.diff_ids.len() != entry.layers.len() {
            return Err(manifest_err(manifest::ManifestError::LayerCount {
                layers: entry.layers.len(),
                diff_ids: config.diff_ids.len(),
            }));
        }
        let mut layers = Vec::with_capacity(entry.layers.len());
        for (name, diff_id) in entry.layers.iter().zip(&config.diff_ids) {
            let (digest, size) = find(archive, scanned, name)?;
            let media_type = match sniff(store, archive, &digest)? {
                Compression::Gzip => LAYER_GZIP,
                Compression::Zstd => LAYER_ZSTD,
                Compression::None => {
                    if &digest != diff_id {
                        return Err(ArchiveError::DiffIdMismatch {
                            path: archive.to_path_buf(),
                            entry: name.clone(),
                            digest,
                            diff_id: diff_id.clone(),
                        });
                    }
                    LAYER_TAR
                }
            };
            layers.push(DescriptorOut {
                media_type,
                digest,
                size,
            });
        }
        let out = ManifestOut {
            schema_version: 2,
            media_type: OCI_MANIFEST,
            config: DescriptorOut {
                media_type: OCI_CONFIG,
                digest: config_digest,
                size: config_size,
            },
            layers,
        };
        let json = serde_json::to_vec(&out).map_err(|source| ArchiveError::Json {
            path: archive.to_path_buf(),
            file: file.into(),
            source,
        })?;
        let digest = store.put_blob(&json).map_err(store_err(archive))?;

        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            images.push(Imported {
                reference: None,
                ref_name: None,
                digest: digest.clone(),
            });
        }
        for tag in tags {
            let reference: Reference =
                tag.parse().map_err(|source| ArchiveError::BadReference {
                    path: archive.to_path_buf(),
                    file: file.into(),
                    name: tag.chars().take(300).collect(),
                    source,
                })?;
            images.push(Imported {
                reference: Some(reference),
                ref_name: None,
                digest: digest.clone(),
            });
        }
    }
    Ok(images)
}

/// The stored file `manifest.json` names.
fn find(archive: &Path, scanned: &Scanned, name: &str) -> Result<(Digest, u64), ArchiveError> {
    let missing = || ArchiveError::MissingEntry {
        path: archive.to_path_buf(),
        file: "manifest.json".into(),
        entry: name.chars().take(300).collect(),
    };
    let normal = normalize(name.as_bytes()).map_err(|problem| ArchiveError::BadEntry {
        path: archive.to_path_buf(),
        entry: name.chars().take(300).collect(),
        problem,
    })?;
    scanned.lookup(&normal).cloned().ok_or_else(missing)
}

/// The compression a stored layer blob starts with.
fn sniff(store: &Store, archive: &Path, digest: &Digest) -> Result<Compression, ArchiveError> {
    let file = store.open_blob(digest).map_err(store_err(archive))?;
    let mut head = Vec::with_capacity(8);
    file.take(8)
        .read_to_end(&mut head)
        .map_err(super::io_err("read", &store.blob_path(digest)))?;
    Ok(Compression::sniff(&head))
}
