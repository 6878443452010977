//! Garbage collection: under `store.lock` held exclusively, keep what references and
//! leases reach, remove the rest.
//!
//! ```text
//! refs.json ─► index ─► manifests ─► config + layer blobs
//!                                     └─► config diff ids ─► chain ids ─► layer dirs
//! leases/*  ─► chain ids ─► layer dirs
//! ```
//!
//! Content GC cannot read (a manifest that does not parse, a config that is missing) is
//! kept as far as it is reachable; GC never fails because of bad content, only because
//! it cannot read its own records (then it removes nothing).

use std::collections::BTreeSet;

use super::lock::Mode;
use super::{Store, StoreError, list_dir, remove_any, tree_size};
use crate::image::digest::Digest;
use crate::image::manifest::{self, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, Parsed};
use crate::image::store::image::MAX_INDEX_DEPTH;

/// What a GC removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: u64,
    pub layers_removed: u64,
    pub bytes_freed: u64,
}

#[derive(Debug, Default)]
struct Keep {
    blobs: BTreeSet<Digest>,
    layers: BTreeSet<Digest>,
}

impl Store {
    /// Removes every blob and layer no reference and no lease reaches. Waits for every
    /// other user of the store to finish and keeps them out while it runs.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _x = self.store_lock(Mode::Exclusive)?;
        let mut keep = Keep::default();
        for (_, digest) in self.references()? {
            self.mark(&digest, None, 0, &mut keep);
        }
        for (_, layers) in self.leases()? {
            keep.layers.extend(layers);
        }

        let mut report = GcReport::default();
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(alg);
            for (name, path) in list_dir(&dir)? {
                let kept = format!("{alg}:{name}")
                    .parse::<Digest>()
                    .is_ok_and(|d| keep.blobs.contains(&d));
                if kept {
                    continue;
                }
                let size = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
                remove_any(&path)?;
                report.blobs_removed += 1;
                report.bytes_freed += size;
            }

            let dir = self.root.join("layers").join(alg);
            // Records first, so a crash halfway leaves directories without records:
            // incomplete layers, which are redone or removed, never trusted.
            let entries = list_dir(&dir)?;
            let (records, dirs): (Vec<_>, Vec<_>) =
                entries.into_iter().partition(|(n, _)| n.ends_with(".json"));
            for (name, path) in records {
                let hex = name.trim_end_matches(".json");
                if !is_kept(alg, hex, &keep.layers) {
                    remove_any(&path)?;
                }
            }
            for (name, path) in dirs {
                if is_kept(alg, &name, &keep.layers) {
                    continue;
                }
                let size = tree_size(&path);
                let aside = self.tmp_path(&name);
                std::fs::rename(&path, &aside).map_err(super::io_err("move aside layer", &path))?;
                remove_any(&aside)?;
                report.layers_removed += 1;
                report.bytes_freed += size;
            }
        }
        self.clean_up()?;
        tracing::info!(?report, "image store garbage collected");
        Ok(report)
    }

    /// Marks `digest` and what it reaches. `declared` is the media type of the
    /// descriptor that pointed here.
    fn mark(&self, digest: &Digest, declared: Option<&str>, depth: usize, keep: &mut Keep) {
        if !keep.blobs.insert(digest.clone()) || depth > MAX_INDEX_DEPTH {
            return;
        }
        let Ok(bytes) = self.read_blob_unlocked(digest, MAX_MANIFEST_BYTES) else {
            return;
        };
        let parsed = match manifest::parse(&bytes, declared) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%digest, error = %e, "gc: keeping a manifest it cannot parse");
                return;
            }
        };
        match parsed {
            Parsed::Index(index) => {
                for d in index.manifests() {
                    if let Ok(child) = manifest::descriptor_digest(d) {
                        self.mark(&child, Some(d.media_type().as_ref()), depth + 1, keep);
                    }
                }
            }
            Parsed::Image(m) => {
                for d in std::iter::once(m.config()).chain(m.layers()) {
                    if let Ok(child) = manifest::descriptor_digest(d) {
                        keep.blobs.insert(child);
                    }
                }
                let Ok(config_digest) = manifest::descriptor_digest(m.config()) else {
                    return;
                };
                let config = self
                    .read_blob_unlocked(&config_digest, MAX_CONFIG_BYTES)
                    .ok()
                    .and_then(|b| manifest::parse_config(&b).ok());
                if let Some(config) = config {
                    keep.layers.extend(manifest::chain_ids(&config.diff_ids));
                }
            }
        }
    }
}

fn is_kept(alg: &str, hex: &str, layers: &BTreeSet<Digest>) -> bool {
    format!("{alg}:{hex}")
        .parse::<Digest>()
        .is_ok_and(|d| layers.contains(&d))
}
