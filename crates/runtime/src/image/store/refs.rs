//! References (`refs.json`: name:tag → manifest digest) and the store users' small
//! state files, each replaced whole by a rename under its lock.
//!
//! Readers read `refs.json` without a lock: a rename replaces it atomically, so they
//! see the old map or the new one. Writers hold `locks/refs.lock` for their
//! read-modify-write. A reference with a tag is kept as `registry/repository:tag`; one
//! with only a digest as `registry/repository@digest` (so a pull by digest is kept
//! from GC too).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::lock::Lock;
use super::{Store, StoreError, io_err, validate_name};
use crate::image::digest::Digest;
use crate::image::reference::Reference;

/// Largest `refs.json` read back (some 100,000 references).
const MAX_REFS_BYTES: u64 = 16 << 20;
const REFS_VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct RefsFile {
    version: u32,
    refs: BTreeMap<String, Digest>,
}

/// The key a reference is kept under.
fn key(r: &Reference) -> String {
    match (&r.tag, &r.digest) {
        (Some(t), _) => format!("{}:{t}", r.name()),
        (None, Some(d)) => format!("{}@{d}", r.name()),
        (None, None) => format!("{}:latest", r.name()),
    }
}

impl Store {
    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    fn read_refs(&self) -> Result<RefsFile, StoreError> {
        let path = self.refs_path();
        let bytes = match read_limited(&path, MAX_REFS_BYTES) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(RefsFile::default()),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes).map_err(|source| StoreError::CorruptJson { path, source })
    }

    fn update_refs<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Digest>) -> T,
    ) -> Result<T, StoreError> {
        let lock = self.lock_key("refs")?;
        let mut file = self.read_refs()?;
        let out = f(&mut file.refs);
        file.version = REFS_VERSION;
        let bytes = serde_json::to_vec_pretty(&file).map_err(|source| StoreError::CorruptJson {
            path: self.refs_path(),
            source,
        })?;
        self.write_atomic("refs", &self.refs_path(), &bytes)?;
        drop(lock);
        Ok(out)
    }

    /// Points `reference` at the manifest (or index) `manifest`, which must be in the
    /// store. A reference that carries a digest must carry this one.
    pub fn tag(&self, reference: &Reference, manifest: &Digest) -> Result<(), StoreError> {
        let _g = self.hold()?;
        if let Some(named) = &reference.digest
            && named != manifest
        {
            return Err(StoreError::TagDigestMismatch {
                reference: reference.to_string(),
                named: named.clone(),
                manifest: manifest.clone(),
            });
        }
        if !self.has_blob(manifest) {
            return Err(StoreError::BlobMissing {
                digest: manifest.clone(),
            });
        }
        self.update_refs(|refs| {
            refs.insert(key(reference), manifest.clone());
        })
    }

    /// The manifest a reference names: its digest if it has one and the store holds
    /// it, else what its tag points at.
    pub fn resolve(&self, reference: &Reference) -> Result<Option<Digest>, StoreError> {
        if let Some(d) = &reference.digest {
            return Ok(self.has_blob(d).then(|| d.clone()));
        }
        Ok(self.read_refs()?.refs.get(&key(reference)).cloned())
    }

    /// Every reference and the manifest it names, sorted by reference.
    pub fn references(&self) -> Result<Vec<(Reference, Digest)>, StoreError> {
        self.read_refs()?
            .refs
            .into_iter()
            .map(|(k, d)| match k.parse::<Reference>() {
                Ok(r) => Ok((r, d)),
                Err(_) => Err(StoreError::CorruptRef {
                    path: self.refs_path(),
                    entry: k.chars().take(300).collect(),
                }),
            })
            .collect()
    }

    /// Removes a reference; false if it was not there. Content goes at the next GC.
    pub fn untag(&self, reference: &Reference) -> Result<bool, StoreError> {
        let _g = self.hold()?;
        let k = key(reference);
        if !self.read_refs()?.refs.contains_key(&k) {
            return Ok(false);
        }
        self.update_refs(|refs| refs.remove(&k).is_some())
    }

    /// Removes an image's reference (an error if there is none); its content is removed
    /// by the next [`Store::gc`] unless another reference or a lease still needs it.
    pub fn remove(&self, reference: &Reference) -> Result<(), StoreError> {
        if self.untag(reference)? {
            Ok(())
        } else {
            Err(StoreError::RefNotFound {
                reference: reference.clone(),
            })
        }
    }

    /// Opens the state file `name` under `state/`, holding its lock until dropped, for
    /// a read-modify-write that other processes do not interleave with.
    pub fn state_file(&self, name: &str) -> Result<StateFile<'_>, StoreError> {
        validate_name("state file name", name)?;
        let key = format!("state-{name}");
        let lock = self.lock_key(&key)?;
        let dir = self.root.join("state");
        fs::create_dir_all(&dir).map_err(io_err("make directory", &dir))?;
        Ok(StateFile {
            store: self,
            path: dir.join(name),
            key,
            _lock: lock,
        })
    }
}

/// A small file of a store user's own, locked while this value lives.
#[derive(Debug)]
pub struct StateFile<'a> {
    store: &'a Store,
    path: PathBuf,
    key: String,
    _lock: Lock,
}

impl StateFile<'_> {
    /// The contents, `None` if the file does not exist yet.
    pub fn read(&self, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        read_limited(&self.path, max)
    }

    /// Replaces the contents atomically.
    pub fn write(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.store.write_atomic(&self.key, &self.path, bytes)
    }
}

/// Reads a whole file of at most `max` bytes; `None` if it does not exist.
pub(super) fn read_limited(
    path: &std::path::Path,
    max: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err("read", path))?;
    if bytes.len() as u64 > max {
        return Err(StoreError::FileTooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(Some(bytes))
}
