//! The content store: verified blobs, references, unpacked layers, leases and GC, as
//! files only, so the `moor` command and a running agent can use one store at once.
//!
//! Owns everything under `<data dir>/images/`; does not fetch (the registry client
//! streams into [`Store::ingest`]) and does not parse layer tars (`image::unpack` does).
//!
//! ```text
//! images/
//!   store.lock                   shared by every user of content, exclusive for GC
//!   blobs/sha256/<hex>           verified content (digest and size), 0444
//!   layers/sha256/<chain-hex>/   one unpacked layer: an overlay lower directory
//!   layers/sha256/<chain-hex>.json   written last (a layer without it is incomplete)
//!   refs.json                    name:tag -> manifest digest (replaced whole under locks/refs.lock)
//!   leases/<holder>              layers a container is using (GC keeps them)
//!   locks/<key>.lock             one per blob or layer being made: two pulls share the work
//!   state/<name>                 small records of the store's users (the preload record)
//!   tmp/<key>.<unique>           partial downloads and unpacks; removed at open
//! ```
//!
//! Concurrency rules:
//!
//! - Every operation that reads or adds content takes `store.lock` shared for its
//!   duration; [`Store::gc`] takes it exclusive. A caller whose sequence of operations
//!   must see the same content (a pull: ingest every blob, then tag; a container start:
//!   `ensure_layers`, then `lease`) holds a [`StoreGuard`] from [`Store::hold`] across
//!   it. Never call `gc` while holding a guard: it would wait for itself.
//! - A running container holds a lease on the chain ids of its layers; GC keeps leased
//!   layers even when no reference reaches them any more.
//! - Whatever is being made is made in `tmp/<key>.<unique>` by the holder of
//!   `locks/<key>.lock`, then renamed into place. Clean-up removes a `tmp/` entry only
//!   when it can take that entry's lock, so it never removes work in progress. A blob
//!   and a layer with the same hex (an uncompressed base layer: blob digest = diff id =
//!   chain id) share a lock; no code path holds one while waiting for the other.
//! - Nothing but a rename puts a file into `blobs/`, so a blob that exists is complete.
//!
//! Locks are `flock`s on a file opened for each operation, so threads of one process
//! exclude each other as processes do.

mod blobs;
mod gc;
mod image;
mod layers;
mod lock;
mod refs;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::digest::Digest;
use super::manifest::ManifestError;
use super::reference::Reference;
use super::unpack::UnpackError;

pub use gc::GcReport;
pub use image::{ImageSummary, LayerRef, StoredImage};
pub use layers::LayerEvent;
use lock::{Lock, Mode};
pub use refs::StateFile;

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest} is not in the store")]
    BlobMissing { digest: Digest },
    #[error("layer {chain_id} is not unpacked in the store")]
    LayerMissing { chain_id: Digest },
    #[error("reading blob {digest} from its source: {source}")]
    Source {
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest}: the source sent more than the {expected} bytes announced")]
    TooLong { digest: Digest, expected: u64 },
    #[error("blob {digest}: the source ended after {actual} of {expected} bytes")]
    Short {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest}: more than the {max} bytes allowed")]
    TooLarge { digest: String, max: u64 },
    #[error("blob {expected}: the content's digest is {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest}: the descriptor says {expected} bytes, the store has {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("manifest {digest}: {source}")]
    Manifest {
        digest: Digest,
        #[source]
        source: ManifestError,
    },
    #[error("config {digest}: {source}")]
    Config {
        digest: Digest,
        #[source]
        source: ManifestError,
    },
    #[error("manifest {digest}: indexes nest more than {max} levels or point at themselves")]
    IndexDepth { digest: Digest, max: usize },
    #[error("manifest {digest}: config type {media_type:?} is not a container image")]
    NotAnImage { digest: Digest, media_type: String },
    #[error("image {digest} is for {found}, not {wanted}")]
    PlatformMismatch {
        digest: Digest,
        found: String,
        wanted: String,
    },
    #[error("layer {digest}: unsupported media type {media_type:?}")]
    LayerMediaType { digest: Digest, media_type: String },
    #[error("unpacking layer {chain_id} (blob {blob}): {source}")]
    Unpack {
        chain_id: Digest,
        blob: Digest,
        #[source]
        source: Box<UnpackError>,
    },
    #[error("reference {reference} names digest {named}, not {manifest}")]
    TagDigestMismatch {
        reference: String,
        named: Digest,
        manifest: Digest,
    },
    #[error("reference {reference} is not in the store")]
    RefNotFound { reference: Reference },
    #[error("{path} is larger than the {max} bytes allowed")]
    FileTooLarge { path: PathBuf, max: u64 },
    #[error("{path} is corrupt: {source}")]
    CorruptJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} is corrupt: entry {entry:?} is not an image reference")]
    CorruptRef { path: PathBuf, entry: String },
    #[error(
        "invalid {what} {name:?}: use 1 to 200 letters, digits, '_', '+', '-' or '.', not starting with '.'"
    )]
    InvalidName { what: &'static str, name: String },
}

pub(crate) fn io_err<'a>(
    step: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// The store under `<data dir>/images`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Holds `store.lock` shared: GC waits until every guard is dropped.
#[derive(Debug)]
pub struct StoreGuard {
    _lock: Lock,
}

impl Store {
    /// Opens (making it if needed) the store under `data_dir/images` and removes what
    /// interrupted operations left: `tmp/` entries and lock files nobody holds.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let root = data_dir.join("images");
        for (dir, mode) in [
            ("", 0o755),
            ("blobs/sha256", 0o755),
            ("layers", 0o700),
            ("layers/sha256", 0o700),
            ("leases", 0o700),
            ("locks", 0o700),
            ("tmp", 0o700),
        ] {
            let path = root.join(dir);
            DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(&path)
                .map_err(io_err("make directory", &path))?;
        }
        // Unpacked layers keep their setuid files and device nodes (they belong to the
        // containers); nobody but root may reach them on the host, as with containerd's
        // and Docker's snapshot directories. Also for a store made before this rule.
        let layers = root.join("layers");
        let mode = fs::symlink_metadata(&layers)
            .map_err(io_err("inspect", &layers))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(&layers, fs::Permissions::from_mode(0o700))
                .map_err(io_err("restrict", &layers))?;
        }
        let store = Store { root };
        let lock = store.root.join("store.lock");
        drop(Lock::acquire(&lock, Mode::Shared).map_err(io_err("lock", &lock))?);
        store.clean_up()?;
        Ok(store)
    }

    /// `<data dir>/images`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Holds the store's content in place (GC waits) until the guard is dropped.
    pub fn hold(&self) -> Result<StoreGuard, StoreError> {
        Ok(StoreGuard {
            _lock: self.store_lock(Mode::Shared)?,
        })
    }

    fn store_lock(&self, mode: Mode) -> Result<Lock, StoreError> {
        let path = self.root.join("store.lock");
        Lock::acquire(&path, mode).map_err(io_err("lock", &path))
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.root.join("locks").join(format!("{key}.lock"))
    }

    /// Waits for the exclusive lock of `key`.
    fn lock_key(&self, key: &str) -> Result<Lock, StoreError> {
        let path = self.lock_path(key);
        Lock::acquire(&path, Mode::Exclusive).map_err(io_err("lock", &path))
    }

    fn try_lock_key(&self, key: &str) -> Result<Option<Lock>, StoreError> {
        let path = self.lock_path(key);
        Lock::try_acquire(&path, Mode::Exclusive).map_err(io_err("lock", &path))
    }

    /// A new, unique path under `tmp/` for the holder of `key`'s lock.
    fn tmp_path(&self, key: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{key}.{}-{n}", std::process::id()))
    }

    /// Creates a new file under `tmp/` for the holder of `key`'s lock.
    fn create_tmp_file(&self, key: &str, mode: u32) -> Result<(PathBuf, File), StoreError> {
        loop {
            let path = self.tmp_path(key);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
            {
                Ok(f) => return Ok((path, f)),
                // A file left by an earlier process with the same pid: take the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &path)(e)),
            }
        }
    }

    /// Writes `dest` atomically: a file under `tmp/`, fsynced, renamed, the directory
    /// fsynced. The caller holds `key`'s lock.
    fn write_atomic(&self, key: &str, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let (tmp, mut file) = self.create_tmp_file(key, 0o644)?;
        let result = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_err("write", &tmp))
            .and_then(|()| fs::rename(&tmp, dest).map_err(io_err("rename into place", dest)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        sync_parent(dest)
    }

    /// Removes `tmp/` entries and lock files that nobody holds a lock on.
    fn clean_up(&self) -> Result<(), StoreError> {
        let tmp = self.root.join("tmp");
        for (name, path) in list_dir(&tmp)? {
            let key = name.rsplit_once('.').map_or(name.as_str(), |(k, _)| k);
            if key.is_empty() || key.contains('/') {
                remove_any(&path)?;
                continue;
            }
            if let Some(lock) = self.try_lock_key(key)? {
                tracing::info!(path = %path.display(), "removing what an interrupted operation left");
                remove_any(&path)?;
                lock.remove();
            }
        }
        for (name, path) in list_dir(&self.root.join("locks"))? {
            if !name.ends_with(".lock") {
                continue;
            }
            if let Some(lock) =
                Lock::try_acquire(&path, Mode::Exclusive).map_err(io_err("lock", &path))?
            {
                lock.remove();
            }
        }
        Ok(())
    }
}

/// Names a lease holder or state file may have: safe as a file name and a lock key.
fn validate_name(what: &'static str, name: &str) -> Result<(), StoreError> {
    if crate::state::is_plain_file_name(name, 200) {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            what,
            name: name.chars().take(200).collect(),
        })
    }
}

/// The entries of a directory, sorted by name; a missing directory is empty.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io_err("list", dir))?;
        // Names the store writes are ASCII; anything else is removed by whoever lists.
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push((name, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// fsyncs the directory holding `path`, so a rename into it survives a power cut.
fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Removes a file or a whole tree. Unpacked layers may hold directories without write
/// permission, so a tree is first made writable (never following symlinks).
fn remove_any(path: &Path) -> Result<(), StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", path)(e)),
    };
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
            _ => Ok(()),
        };
    }
    make_writable(path)?;
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn make_writable(dir: &Path) -> Result<(), StoreError> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = fs::symlink_metadata(&d).map_err(io_err("inspect", &d))?;
        if meta.permissions().mode() & 0o700 != 0o700 {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700))
                .map_err(io_err("make writable", &d))?;
        }
        for entry in fs::read_dir(&d).map_err(io_err("list", &d))? {
            let entry = entry.map_err(io_err("list", &d))?;
            if entry.file_type().map_err(io_err("inspect", &d))?.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Sum of the sizes of the regular files below `path` (for GC's report).
fn tree_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_file() {
            total += meta.len();
        } else if meta.is_dir()
            && let Ok(rd) = fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
    total
}
