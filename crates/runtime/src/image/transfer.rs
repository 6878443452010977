//! Pull and push: the registry client and the store, put together.
//!
//! ```text
//! pull REF: resolve ─ manifest (index? choose the platform, fetch its manifest)
//!           ─ config ─ layer blobs (a few at once, each verified as it streams in)
//!           ─ unpack missing layers (once per chain id) ─ tag
//! push REF: the image in the store ─ blobs the registry lacks ─ manifest(s) ─ tag
//! ```
//!
//! The store is held (shared) from the first blob in to the tag, so a garbage
//! collection cannot take a blob of a pull that has not finished.

use std::sync::Mutex;

use crate::image::digest::Digest;
use crate::image::manifest::{self, MAX_BLOB_SIZE, MAX_CONFIG_BYTES, Parsed};
use crate::image::platform::Platform;
use crate::image::reference::Reference;
use crate::image::registry::{Registry, RegistryError, RegistryOptions};
use crate::image::store::{LayerEvent, Store, StoreError, StoredImage};

/// How many blobs download at once.
const PARALLEL_BLOBS: usize = 3;

/// Errors of a pull or a push.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("manifest {digest} from {reference}: {source}")]
    Manifest {
        reference: String,
        digest: Digest,
        #[source]
        source: manifest::ManifestError,
    },
    #[error("{reference} is not in the store")]
    NotInStore { reference: String },
    #[error(
        "{reference}: blob {digest} is not in the store, so it cannot be pushed (pull the image again)"
    )]
    Incomplete {
        reference: String,
        digest: Box<Digest>,
    },
}

impl TransferError {
    /// Whether trying again later may succeed (a network or server fault).
    pub fn is_retryable(&self) -> bool {
        matches!(self, TransferError::Registry(e) if e.is_retryable())
    }
}

/// What a pull or push reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The reference names this manifest (or index).
    Resolved {
        reference: String,
        digest: Digest,
    },
    /// A blob starts moving (`kind`: "config", "layer", "manifest").
    Blob {
        digest: Digest,
        size: u64,
        kind: &'static str,
    },
    /// Bytes of that blob so far.
    Progress {
        digest: Digest,
        done: u64,
    },
    /// The blob is in place; `skipped` when it was there already.
    BlobDone {
        digest: Digest,
        skipped: bool,
    },
    Layer(LayerEvent),
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// What the reference names (an index for a multi-platform image).
    pub digest: Digest,
    pub image: StoredImage,
}

/// Pulls `reference` for `platform` into the store, unpacks its layers and tags it.
pub fn pull(
    store: &Store,
    options: RegistryOptions,
    reference: &Reference,
    platform: &Platform,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Pulled, TransferError> {
    let registry = Registry::for_reference(reference, options)?;
    let _hold = store.hold()?;
    let top = fetch_manifest_into(store, &registry, reference, events)?;
    events(Event::Resolved {
        reference: reference.to_string(),
        digest: top.0.clone(),
    });
    if let Parsed::Index(index) = &top.1 {
        let chosen =
            manifest::select(index, platform).map_err(|source| TransferError::Manifest {
                reference: reference.to_string(),
                digest: top.0.clone(),
                source,
            })?;
        let digest =
            manifest::descriptor_digest(&chosen).map_err(|source| TransferError::Manifest {
                reference: reference.to_string(),
                digest: top.0.clone(),
                source,
            })?;
        if !store.has_blob(&digest) {
            fetch_manifest_into(store, &registry, &reference.with_digest(digest), events)?;
        }
    }
    let config = store_config_first(store, &registry, reference, &top.0, platform, events)?;
    let image = config;
    let missing = store.missing_blobs(&image);
    download(store, &registry, &reference.repository, &missing, events)?;
    store.ensure_layers(&image, &mut |e| events(Event::Layer(e)))?;
    if reference.tag.is_some() {
        store.tag(reference, &top.0)?;
    }
    Ok(Pulled {
        digest: top.0,
        image,
    })
}

/// Fetches a manifest (verified against its digest by the client), stores it, parses it.
fn fetch_manifest_into(
    store: &Store,
    registry: &Registry,
    reference: &Reference,
    events: &(dyn Fn(Event) + Sync),
) -> Result<(Digest, Parsed), TransferError> {
    let fetched = registry.fetch_manifest(reference)?;
    let parsed = manifest::parse(&fetched.bytes, Some(&fetched.media_type)).map_err(|source| {
        TransferError::Manifest {
            reference: reference.to_string(),
            digest: fetched.digest.clone(),
            source,
        }
    })?;
    let size = fetched.bytes.len() as u64;
    events(Event::Blob {
        digest: fetched.digest.clone(),
        size,
        kind: "manifest",
    });
    store.ingest(
        &fetched.digest,
        Some(size),
        size,
        fetched.bytes.as_slice(),
        &mut |_| {},
    )?;
    events(Event::BlobDone {
        digest: fetched.digest.clone(),
        skipped: false,
    });
    Ok((fetched.digest, parsed))
}

/// Makes sure the chosen manifest's config is in the store, then reads the image.
fn store_config_first(
    store: &Store,
    registry: &Registry,
    reference: &Reference,
    top: &Digest,
    platform: &Platform,
    events: &(dyn Fn(Event) + Sync),
) -> Result<StoredImage, TransferError> {
    match store.image(top, platform) {
        Ok(image) => Ok(image),
        Err(StoreError::BlobMissing { digest }) => {
            // The config (the only blob `image` reads besides manifests).
            let reader = registry.fetch_blob(&reference.repository, &digest, None)?;
            events(Event::Blob {
                digest: digest.clone(),
                size: 0,
                kind: "config",
            });
            store.ingest(&digest, None, MAX_CONFIG_BYTES, reader, &mut |_| {})?;
            events(Event::BlobDone {
                digest: digest.clone(),
                skipped: false,
            });
            Ok(store.image(top, platform)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Downloads `blobs` into the store, [`PARALLEL_BLOBS`] at a time; the first error wins.
fn download(
    store: &Store,
    registry: &Registry,
    repository: &str,
    blobs: &[oci_spec::image::Descriptor],
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), TransferError> {
    let queue = Mutex::new(blobs.iter());
    let failure: Mutex<Option<TransferError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_BLOBS.min(blobs.len()) {
            scope.spawn(|| {
                loop {
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let next = match queue.lock() {
                        Ok(mut q) => q.next(),
                        Err(_) => return,
                    };
                    let Some(desc) = next else {
                        return;
                    };
                    if let Err(e) = download_one(store, registry, repository, desc, events)
                        && let Ok(mut f) = failure.lock()
                    {
                        f.get_or_insert(e);
                    }
                }
            });
        }
    });
    match failure.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

fn download_one(
    store: &Store,
    registry: &Registry,
    repository: &str,
    desc: &oci_spec::image::Descriptor,
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), TransferError> {
    let digest: Digest =
        desc.digest()
            .to_string()
            .parse()
            .map_err(|_| StoreError::BlobMissing {
                digest: Digest::sha256(b""),
            })?;
    let size = desc.size();
    events(Event::Blob {
        digest: digest.clone(),
        size,
        kind: "layer",
    });
    let reader = registry.fetch_blob(repository, &digest, Some(size))?;
    store.ingest(&digest, Some(size), MAX_BLOB_SIZE, reader, &mut |done| {
        events(Event::Progress {
            digest: digest.clone(),
            done,
        })
    })?;
    events(Event::BlobDone {
        digest,
        skipped: false,
    });
    Ok(())
}

/// Pushes the image `source` names in the store as `target` (the same reference unless
/// retagging). Every platform of an index that is in the store is pushed.
pub fn push(
    store: &Store,
    options: RegistryOptions,
    source: &Reference,
    target: &Reference,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Digest, TransferError> {
    let registry = Registry::for_reference(target, options)?;
    let _hold = store.hold()?;
    let top = store
        .resolve(source)?
        .ok_or_else(|| TransferError::NotInStore {
            reference: source.to_string(),
        })?;
    let top_bytes = store.read_blob(&top, manifest::MAX_MANIFEST_BYTES)?;
    let parsed = manifest::parse(&top_bytes, None).map_err(|e| TransferError::Manifest {
        reference: source.to_string(),
        digest: top.clone(),
        source: e,
    })?;
    let manifests: Vec<(Digest, Vec<u8>, manifest::Parsed)> = match &parsed {
        Parsed::Image(_) => Vec::new(),
        Parsed::Index(_) => {
            let mut out = Vec::new();
            for child in parsed.children() {
                let d =
                    manifest::descriptor_digest(child).map_err(|e| TransferError::Manifest {
                        reference: source.to_string(),
                        digest: top.clone(),
                        source: e,
                    })?;
                if !store.has_blob(&d) {
                    continue; // a platform that was never pulled
                }
                let bytes = store.read_blob(&d, manifest::MAX_MANIFEST_BYTES)?;
                let p = manifest::parse(&bytes, None).map_err(|e| TransferError::Manifest {
                    reference: source.to_string(),
                    digest: d.clone(),
                    source: e,
                })?;
                out.push((d, bytes, p));
            }
            out
        }
    };
    let images: Vec<&manifest::Parsed> = match &parsed {
        Parsed::Image(_) => vec![&parsed],
        Parsed::Index(_) => manifests.iter().map(|m| &m.2).collect(),
    };
    for image in images {
        for desc in image.children() {
            let digest =
                manifest::descriptor_digest(desc).map_err(|e| TransferError::Manifest {
                    reference: source.to_string(),
                    digest: top.clone(),
                    source: e,
                })?;
            if !store.has_blob(&digest) {
                return Err(TransferError::Incomplete {
                    reference: source.to_string(),
                    digest: Box::new(digest),
                });
            }
            let size = store.blob_size(&digest)?;
            events(Event::Blob {
                digest: digest.clone(),
                size,
                kind: "layer",
            });
            let mut file = store.open_blob(&digest)?;
            let outcome =
                registry.push_blob(&target.repository, &digest, size, &mut file, &mut |done| {
                    events(Event::Progress {
                        digest: digest.clone(),
                        done,
                    })
                })?;
            events(Event::BlobDone {
                digest,
                skipped: matches!(outcome, crate::image::registry::BlobPush::Existed),
            });
        }
    }
    for (digest, bytes, p) in &manifests {
        registry.push_manifest(&target.with_digest(digest.clone()), bytes, &p.media_type())?;
    }
    let pushed = registry.push_manifest(target, &top_bytes, &parsed.media_type())?;
    Ok(pushed)
}
