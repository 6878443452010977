//! Images in the store: from a manifest (or index) digest to the config and the layers
//! to unpack, and the summaries `moor image ls` prints.
//!
//! ```text
//! digest ─► index? ─select(platform)─► manifest ─► config (diff ids) ─► layers + chain ids
//! ```

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use super::{Store, StoreError};
use crate::image::digest::Digest;
use crate::image::manifest::{
    self, DOCKER_CONFIG, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, OCI_CONFIG, Parsed,
};
use crate::image::platform::Platform;
use crate::image::reference::Reference;
use crate::image::unpack::Compression;

/// Most indexes followed from a reference to a manifest (an index of indexes is rare;
/// a chain this long is an attack).
pub(crate) const MAX_INDEX_DEPTH: usize = 4;

/// One layer of an image, bottom first.
#[derive(Debug, Clone)]
pub struct LayerRef {
    /// The (usually compressed) blob as the manifest describes it.
    pub blob: Descriptor,
    pub blob_digest: Digest,
    /// The digest of the uncompressed tar, from the config.
    pub diff_id: Digest,
    /// Names the layer together with everything below it: its directory's name.
    pub chain_id: Digest,
    pub compression: Compression,
}

/// An image whose manifest and config are in the store (its layer blobs may not be:
/// see [`Store::missing_blobs`]).
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The index the manifest was chosen from, if the reference named one.
    pub index_digest: Option<Digest>,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    /// What the config says the image runs on.
    pub platform: Platform,
    pub layers: Vec<LayerRef>,
}

impl StoredImage {
    /// The chain id of each layer, bottom first: what a container leases.
    pub fn chain_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.chain_id.clone()).collect()
    }

    /// Sum of the config's and the layers' blob sizes as the manifest gives them.
    pub fn blobs_size(&self) -> u64 {
        self.manifest.config().size() + self.layers.iter().map(|l| l.blob.size()).sum::<u64>()
    }
}

/// One line of `moor image ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub reference: Reference,
    /// What the reference points at (a manifest or an index).
    pub digest: Digest,
    /// The platform of the image chosen for the host, `None` if none could be chosen.
    pub platform: Option<Platform>,
    /// Bytes of every blob of the chosen image (index, manifest, config, layers).
    pub size: u64,
    /// The config's `created` time as it is written there.
    pub created: Option<String>,
    /// True when every blob of the chosen image is in the store.
    pub complete: bool,
}

impl Store {
    /// The image `manifest` names, for `platform`: follows an index to the platform's
    /// manifest (which must be in the store), reads and checks the config, and pairs
    /// each layer with its diff id and chain id.
    pub fn image(&self, manifest: &Digest, platform: &Platform) -> Result<StoredImage, StoreError> {
        let _g = self.hold()?;
        self.image_unlocked(manifest, platform)
    }

    pub(super) fn image_unlocked(
        &self,
        top: &Digest,
        platform: &Platform,
    ) -> Result<StoredImage, StoreError> {
        let (index_digest, manifest_digest, manifest) = self.find_manifest(top, platform)?;
        let config_desc = manifest.config();
        let config_digest = descriptor_digest(config_desc, &manifest_digest)?;
        let media_type = config_desc.media_type().to_string();
        if media_type != OCI_CONFIG && media_type != DOCKER_CONFIG {
            return Err(StoreError::NotAnImage {
                digest: manifest_digest,
                media_type,
            });
        }
        let bytes = self.read_blob_unlocked(&config_digest, MAX_CONFIG_BYTES)?;
        check_size(&config_digest, config_desc.size(), bytes.len() as u64)?;
        let config_err = |source| StoreError::Config {
            digest: config_digest.clone(),
            source,
        };
        let parsed = manifest::parse_config(&bytes).map_err(config_err)?;
        manifest::check_layer_count(&manifest, &parsed).map_err(config_err)?;
        let image_platform = manifest::config_platform(&parsed.config);
        if platform
            .rank(
                &image_platform.os,
                &image_platform.architecture,
                image_platform.variant.as_deref(),
            )
            .is_none()
        {
            return Err(StoreError::PlatformMismatch {
                digest: manifest_digest,
                found: image_platform.to_string(),
                wanted: platform.to_string(),
            });
        }

        let chains = manifest::chain_ids(&parsed.diff_ids);
        let mut layers = Vec::with_capacity(chains.len());
        for ((blob, diff_id), chain_id) in manifest.layers().iter().zip(parsed.diff_ids).zip(chains)
        {
            let blob_digest = descriptor_digest(blob, &manifest_digest)?;
            let compression =
                Compression::from_media_type(blob.media_type().as_ref()).ok_or_else(|| {
                    StoreError::LayerMediaType {
                        digest: blob_digest.clone(),
                        media_type: blob.media_type().to_string(),
                    }
                })?;
            layers.push(LayerRef {
                blob: blob.clone(),
                blob_digest,
                diff_id,
                chain_id,
                compression,
            });
        }
        Ok(StoredImage {
            index_digest,
            manifest_digest,
            manifest,
            config_digest,
            config: parsed.config,
            platform: image_platform,
            layers,
        })
    }

    /// Follows indexes from `top` to the manifest for `platform`.
    fn find_manifest(
        &self,
        top: &Digest,
        platform: &Platform,
    ) -> Result<(Option<Digest>, Digest, ImageManifest), StoreError> {
        let mut current = top.clone();
        let mut declared: Option<(String, u64)> = None;
        let mut seen: Vec<Digest> = Vec::new();
        let mut index_digest = None;
        while seen.len() <= MAX_INDEX_DEPTH && !seen.contains(&current) {
            seen.push(current.clone());
            let bytes = self.read_blob_unlocked(&current, MAX_MANIFEST_BYTES)?;
            if let Some((_, size)) = &declared {
                check_size(&current, *size, bytes.len() as u64)?;
            }
            let parsed = manifest::parse(&bytes, declared.as_ref().map(|(t, _)| t.as_str()))
                .map_err(|source| StoreError::Manifest {
                    digest: current.clone(),
                    source,
                })?;
            match parsed {
                Parsed::Image(m) => return Ok((index_digest, current, m)),
                Parsed::Index(index) => {
                    let chosen = manifest::select(&index, platform).map_err(|source| {
                        StoreError::Manifest {
                            digest: current.clone(),
                            source,
                        }
                    })?;
                    if index_digest.is_none() {
                        index_digest = Some(current.clone());
                    }
                    let next = descriptor_digest(&chosen, &current)?;
                    declared = Some((chosen.media_type().to_string(), chosen.size()));
                    current = next;
                }
            }
        }
        Err(StoreError::IndexDepth {
            digest: top.clone(),
            max: MAX_INDEX_DEPTH,
        })
    }

    /// The config and layer blobs of `image` that are not in the store.
    pub fn missing_blobs(&self, image: &StoredImage) -> Vec<Descriptor> {
        let mut out = Vec::new();
        if !self.has_blob(&image.config_digest) {
            out.push(image.manifest.config().clone());
        }
        for l in &image.layers {
            if !self.has_blob(&l.blob_digest) && !out.iter().any(|d| d.digest() == l.blob.digest())
            {
                out.push(l.blob.clone());
            }
        }
        out
    }

    /// A summary of every referenced image, with the image chosen for `platform` from
    /// each index, for `moor image ls`.
    pub fn usage(&self, platform: &Platform) -> Result<Vec<ImageSummary>, StoreError> {
        let _g = self.hold()?;
        let mut out = Vec::new();
        for (reference, digest) in self.references()? {
            let top_size = self.blob_size(&digest).unwrap_or(0);
            let summary = match self.image_unlocked(&digest, platform) {
                Ok(image) => {
                    let mut size = top_size + image.blobs_size();
                    if image.manifest_digest != digest {
                        size += self.blob_size(&image.manifest_digest).unwrap_or(0);
                    }
                    ImageSummary {
                        complete: self.missing_blobs(&image).is_empty(),
                        platform: Some(image.platform),
                        created: image.config.created().clone(),
                        size,
                        reference,
                        digest,
                    }
                }
                Err(e) => {
                    tracing::debug!(%reference, error = %e, "image summary");
                    ImageSummary {
                        reference,
                        digest,
                        platform: None,
                        size: top_size,
                        created: None,
                        complete: false,
                    }
                }
            };
            out.push(summary);
        }
        Ok(out)
    }
}

fn descriptor_digest(d: &Descriptor, manifest: &Digest) -> Result<Digest, StoreError> {
    manifest::descriptor_digest(d).map_err(|source| StoreError::Manifest {
        digest: manifest.clone(),
        source,
    })
}

fn check_size(digest: &Digest, expected: u64, actual: u64) -> Result<(), StoreError> {
    if expected != actual {
        return Err(StoreError::SizeMismatch {
            digest: digest.clone(),
            expected,
            actual,
        });
    }
    Ok(())
}
