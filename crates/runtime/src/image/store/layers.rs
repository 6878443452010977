//! Unpacked layers and the leases that keep them, one directory per chain id, shared by
//! every image with the same stack below it.
//!
//! ```text
//! ensure_layers ─► for each layer, bottom first:
//!   <chain>.json exists? reuse
//!   else locks/<chain>.lock ─► (exists now? reuse) ─► tmp/<chain>.<unique>/
//!        ─► unpack_layer(blob, expected diff id) ─► sync_dir ─► rename to <chain>/
//!        ─► write <chain>.json (last: a directory without it is incomplete)
//! ```

use std::collections::BTreeSet;
use std::fs::{self, DirBuilder};
use std::io::BufReader;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::refs::read_limited;
use super::{Store, StoreError, StoredImage, io_err, remove_any, sync_parent, validate_name};
use crate::image::digest::Digest;
use crate::image::unpack::{UnpackLimits, sync_dir, unpack_layer};

/// Largest lease or layer record read back.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// What [`Store::ensure_layers`] reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEvent {
    /// Already unpacked (by an earlier call or another image with the same base).
    Reused { chain_id: Digest },
    /// Another process or thread is unpacking it; waiting for that to finish.
    Waiting { chain_id: Digest },
    /// Unpacking layer `index` (from 0, bottom first) of `total`.
    Unpacking {
        chain_id: Digest,
        index: usize,
        total: usize,
    },
    Unpacked {
        chain_id: Digest,
        size: u64,
        entries: u64,
    },
}

/// `layers/<alg>/<chain>.json`: written once the directory is complete.
#[derive(Debug, Serialize, Deserialize)]
struct LayerRecord {
    diff_id: Digest,
    size: u64,
    entries: u64,
    unpacked: String,
}

/// `leases/<holder>`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct LeaseRecord {
    pub(super) layers: BTreeSet<Digest>,
    created: String,
}

impl Store {
    /// The directory of the layer `chain_id` (whether or not it is there).
    pub fn layer_path(&self, chain_id: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(chain_id.algorithm().name())
            .join(chain_id.hex())
    }

    fn layer_record_path(&self, chain_id: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(chain_id.algorithm().name())
            .join(format!("{}.json", chain_id.hex()))
    }

    /// True when the layer is completely unpacked.
    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        self.layer_record_path(chain_id).is_file() && self.layer_path(chain_id).is_dir()
    }

    /// Unpacks every layer of `image` that is not unpacked yet and returns the layer
    /// directories, bottom first: the lower directories of an overlay, reversed. Each
    /// layer is unpacked once: a concurrent caller waits for it and reuses it. The
    /// layer blobs must be in the store.
    pub fn ensure_layers(
        &self,
        image: &StoredImage,
        progress: &mut dyn FnMut(LayerEvent),
    ) -> Result<Vec<PathBuf>, StoreError> {
        let _g = self.hold()?;
        let total = image.layers.len();
        let mut dirs = Vec::with_capacity(total);
        for (index, layer) in image.layers.iter().enumerate() {
            let chain_id = &layer.chain_id;
            let dir = self.layer_path(chain_id);
            if self.has_layer(chain_id) {
                progress(LayerEvent::Reused {
                    chain_id: chain_id.clone(),
                });
                dirs.push(dir);
                continue;
            }
            let lock = match self.try_lock_key(chain_id.hex())? {
                Some(l) => l,
                None => {
                    progress(LayerEvent::Waiting {
                        chain_id: chain_id.clone(),
                    });
                    self.lock_key(chain_id.hex())?
                }
            };
            if self.has_layer(chain_id) {
                progress(LayerEvent::Reused {
                    chain_id: chain_id.clone(),
                });
                lock.remove();
                dirs.push(dir);
                continue;
            }
            progress(LayerEvent::Unpacking {
                chain_id: chain_id.clone(),
                index,
                total,
            });
            let result = self.unpack_one(image, index);
            lock.remove();
            let (size, entries) = result?;
            progress(LayerEvent::Unpacked {
                chain_id: chain_id.clone(),
                size,
                entries,
            });
            dirs.push(dir);
        }
        Ok(dirs)
    }

    /// Unpacks layer `index` of `image` into place. The caller holds its chain lock.
    fn unpack_one(&self, image: &StoredImage, index: usize) -> Result<(u64, u64), StoreError> {
        let layer = &image.layers[index];
        let chain_id = &layer.chain_id;
        let dir = self.layer_path(chain_id);
        // A directory without its record was left by a crash between rename and record.
        if dir.exists() {
            let old = self.tmp_path(chain_id.hex());
            fs::rename(&dir, &old).map_err(io_err("move aside incomplete layer", &dir))?;
            remove_any(&old)?;
        }
        let blob = self.open_blob_unlocked(&layer.blob_digest)?;
        let tmp = self.tmp_path(chain_id.hex());
        DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .map_err(io_err("make directory", &tmp))?;
        let unpacked = unpack_layer(
            BufReader::with_capacity(256 << 10, blob),
            layer.compression,
            &tmp,
            Some(&layer.diff_id),
            &UnpackLimits::default(),
        )
        .map_err(|source| StoreError::Unpack {
            chain_id: chain_id.clone(),
            blob: layer.blob_digest.clone(),
            source: Box::new(source),
        })
        .and_then(|u| {
            sync_dir(&tmp).map_err(|source| StoreError::Unpack {
                chain_id: chain_id.clone(),
                blob: layer.blob_digest.clone(),
                source: Box::new(source),
            })?;
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent).map_err(io_err("make directory", parent))?;
            }
            fs::rename(&tmp, &dir).map_err(io_err("rename into place", &dir))?;
            sync_parent(&dir)?;
            Ok(u)
        });
        let unpacked = match unpacked {
            Ok(u) => u,
            Err(e) => {
                let _ = remove_any(&tmp);
                return Err(e);
            }
        };
        let record = LayerRecord {
            diff_id: unpacked.diff_id,
            size: unpacked.size,
            entries: unpacked.entries,
            unpacked: now(),
        };
        let path = self.layer_record_path(chain_id);
        let bytes =
            serde_json::to_vec_pretty(&record).map_err(|source| StoreError::CorruptJson {
                path: path.clone(),
                source,
            })?;
        self.write_atomic(chain_id.hex(), &path, &bytes)?;
        Ok((unpacked.size, unpacked.entries))
    }

    /// Records that `holder` (a container) uses the layers `chain_ids`: GC keeps them
    /// until [`Store::release`]. Each layer must be unpacked, so a GC that ran between
    /// `ensure_layers` and this call is noticed (hold a [`super::StoreGuard`] across both
    /// to rule it out).
    pub fn lease(&self, holder: &str, chain_ids: &[Digest]) -> Result<(), StoreError> {
        validate_name("lease holder", holder)?;
        let _g = self.hold()?;
        for c in chain_ids {
            if !self.has_layer(c) {
                return Err(StoreError::LayerMissing {
                    chain_id: c.clone(),
                });
            }
        }
        let key = format!("lease-{holder}");
        let lock = self.lock_key(&key)?;
        let record = LeaseRecord {
            layers: chain_ids.iter().cloned().collect(),
            created: now(),
        };
        let path = self.root.join("leases").join(holder);
        let bytes =
            serde_json::to_vec_pretty(&record).map_err(|source| StoreError::CorruptJson {
                path: path.clone(),
                source,
            })?;
        self.write_atomic(&key, &path, &bytes)?;
        lock.remove();
        Ok(())
    }

    /// Ends `holder`'s lease. Releasing a lease that does not exist is not an error.
    pub fn release(&self, holder: &str) -> Result<(), StoreError> {
        validate_name("lease holder", holder)?;
        let path = self.root.join("leases").join(holder);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err("remove lease", &path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Every lease: holder and the chain ids it keeps.
    pub fn leases(&self) -> Result<Vec<(String, BTreeSet<Digest>)>, StoreError> {
        let mut out = Vec::new();
        for (name, path) in super::list_dir(&self.root.join("leases"))? {
            let Some(bytes) = read_limited(&path, MAX_RECORD_BYTES)? else {
                continue;
            };
            let record: LeaseRecord = serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::CorruptJson { path, source })?;
            out.push((name, record.layers));
        }
        Ok(out)
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
