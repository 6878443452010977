//! Blobs: streamed into `tmp/`, hashed and counted as they arrive, refused if their
//! digest or size is wrong, fsynced, then renamed into `blobs/<algorithm>/<hex>`.
//!
//! ```text
//! ingest(digest) ─► store.lock (shared) ─► locks/<hex>.lock ─► present? done
//!                     └─► tmp/<hex>.<unique> ─► hash+count ─► fsync ─► rename ─► fsync dir
//! ```
//!
//! A second ingest of the same digest waits on the lock, then finds the blob present.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Store, StoreError, io_err, sync_parent};
use crate::image::digest::{Algorithm, Digest, Hasher};

const CHUNK: usize = 128 << 10;

impl Store {
    /// Where the blob `d` lives (whether or not it is there).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    /// True when the blob is in the store (and so complete and verified).
    pub fn has_blob(&self, d: &Digest) -> bool {
        fs::symlink_metadata(self.blob_path(d)).is_ok_and(|m| m.is_file())
    }

    /// The size of a blob in the store.
    pub fn blob_size(&self, d: &Digest) -> Result<u64, StoreError> {
        match fs::symlink_metadata(self.blob_path(d)) {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(StoreError::BlobMissing { digest: d.clone() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobMissing { digest: d.clone() })
            }
            Err(e) => Err(io_err("inspect", &self.blob_path(d))(e)),
        }
    }

    /// Opens a blob for reading. The open file stays readable even if GC removes the
    /// blob afterwards; hold a [`super::StoreGuard`] to keep it in the store.
    pub fn open_blob(&self, d: &Digest) -> Result<File, StoreError> {
        let _g = self.hold()?;
        self.open_blob_unlocked(d)
    }

    pub(super) fn open_blob_unlocked(&self, d: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(d);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobMissing { digest: d.clone() },
            _ => io_err("open", &path)(e),
        })
    }

    /// Reads a whole blob of at most `max` bytes, checking its digest again (it is
    /// small, and a flipped bit on disk should not become a wrong manifest).
    pub fn read_blob(&self, d: &Digest, max: u64) -> Result<Vec<u8>, StoreError> {
        let _g = self.hold()?;
        self.read_blob_unlocked(d, max)
    }

    pub(super) fn read_blob_unlocked(&self, d: &Digest, max: u64) -> Result<Vec<u8>, StoreError> {
        let file = self.open_blob_unlocked(d)?;
        let path = self.blob_path(d);
        let mut bytes = Vec::new();
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if bytes.len() as u64 > max {
            return Err(StoreError::TooLarge {
                digest: d.to_string(),
                max,
            });
        }
        let actual = digest_with(d.algorithm(), &bytes);
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                expected: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Streams `input` into the store as the blob `expected`. Refused, leaving nothing
    /// behind, when the content hashes differently, is longer or shorter than `size`,
    /// longer than `max`, or cannot be written (a full disk). `progress` gets the
    /// running byte count. Returns at once when the blob is already present.
    pub fn ingest(
        &self,
        expected: &Digest,
        size: Option<u64>,
        max: u64,
        input: impl Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), StoreError> {
        let _g = self.hold()?;
        if self.has_blob(expected) {
            return Ok(());
        }
        let lock = self.lock_key(expected.hex())?;
        if self.has_blob(expected) {
            lock.remove();
            return Ok(());
        }
        let (tmp, file) = self.create_tmp_file(expected.hex(), 0o600)?;
        let result = copy_hashed(input, file, &tmp, expected.algorithm(), size, max, progress)
            .map_err(|e| e.for_blob(expected))
            .and_then(|(actual, count)| {
                if let Some(s) = size
                    && count < s
                {
                    return Err(StoreError::Short {
                        digest: expected.clone(),
                        expected: s,
                        actual: count,
                    });
                }
                if &actual != expected {
                    return Err(StoreError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                self.commit(&tmp, expected)
            });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        lock.remove();
        result
    }

    /// Adds `bytes` as a blob and returns its SHA-256 digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::sha256(bytes);
        let len = bytes.len() as u64;
        self.ingest(&digest, Some(len), len, bytes, &mut |_| {})?;
        Ok(digest)
    }

    /// Adds content whose digest nobody announced (a file in a `docker save` archive):
    /// streamed to `tmp/`, hashed, then renamed to the SHA-256 it turned out to have.
    pub fn put_reader(&self, input: impl Read, max: u64) -> Result<(Digest, u64), StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let _g = self.hold()?;
        let key = format!(
            "put-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let own = self.lock_key(&key)?;
        let (tmp, file) = self.create_tmp_file(&key, 0o600)?;
        let result = copy_hashed(input, file, &tmp, Algorithm::Sha256, None, max, &mut |_| {})
            .map_err(CopyFail::for_unnamed)
            .and_then(|(digest, count)| {
                let lock = self.lock_key(digest.hex())?;
                let r = if self.has_blob(&digest) {
                    Ok(())
                } else {
                    self.commit(&tmp, &digest)
                };
                lock.remove();
                r.map(|()| (digest, count))
            });
        let _ = fs::remove_file(&tmp);
        own.remove();
        result
    }

    /// Makes a verified, fsynced `tmp` file the blob `d`: read-only, renamed, directory
    /// fsynced. The caller holds `d`'s lock.
    fn commit(&self, tmp: &std::path::Path, d: &Digest) -> Result<(), StoreError> {
        fs::set_permissions(tmp, fs::Permissions::from_mode(0o444))
            .map_err(io_err("set mode of", tmp))?;
        let dest = self.blob_path(d);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(io_err("make directory", dir))?;
        }
        fs::rename(tmp, &dest).map_err(io_err("rename into place", &dest))?;
        sync_parent(&dest)
    }
}

/// Why a copy stopped; the caller knows which blob it was.
enum CopyFail {
    Source(io::Error),
    Long(u64),
    Large(u64),
    Store(StoreError),
}

impl CopyFail {
    fn for_blob(self, d: &Digest) -> StoreError {
        match self {
            CopyFail::Source(source) => StoreError::Source {
                digest: d.to_string(),
                source,
            },
            CopyFail::Long(expected) => StoreError::TooLong {
                digest: d.clone(),
                expected,
            },
            CopyFail::Large(max) => StoreError::TooLarge {
                digest: d.to_string(),
                max,
            },
            CopyFail::Store(e) => e,
        }
    }

    fn for_unnamed(self) -> StoreError {
        const UNNAMED: &str = "(content without an announced digest)";
        match self {
            CopyFail::Source(source) => StoreError::Source {
                digest: UNNAMED.into(),
                source,
            },
            CopyFail::Long(max) | CopyFail::Large(max) => StoreError::TooLarge {
                digest: UNNAMED.into(),
                max,
            },
            CopyFail::Store(e) => e,
        }
    }
}

/// Copies `input` into `file`, hashing and counting, stopping as soon as more than
/// `size` or `max` bytes arrive; fsyncs at the end.
fn copy_hashed(
    mut input: impl Read,
    mut file: File,
    path: &std::path::Path,
    algorithm: Algorithm,
    size: Option<u64>,
    max: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(Digest, u64), CopyFail> {
    let mut hasher = Hasher::new(algorithm);
    let mut count = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyFail::Source(e)),
        };
        count += n as u64;
        if let Some(s) = size
            && count > s
        {
            return Err(CopyFail::Long(s));
        }
        if count > max {
            return Err(CopyFail::Large(max));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| CopyFail::Store(io_err("write", path)(e)))?;
        progress(count);
    }
    file.sync_all()
        .map_err(|e| CopyFail::Store(io_err("sync", path)(e)))?;
    Ok((hasher.finish(), count))
}

/// The digest of `bytes` with `algorithm`.
fn digest_with(algorithm: Algorithm, bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(algorithm);
    h.update(bytes);
    h.finish()
}
