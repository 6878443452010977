//! Preloading: an appliance image ships archives in a directory, and every boot
//! imports the ones not imported yet.
//!
//! What was imported is recorded in the store (`state/preload.json`: path → size,
//! mtime, file digest), so an unchanged file is skipped without being read, and a file
//! touched but unchanged is skipped after one read to hash it. A file that fails is
//! reported and not recorded (it is tried again next time); the others go on. Hidden
//! files are ignored; a directory is imported as an OCI layout.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ArchiveError, Imported, import, io_err, store_err};
use crate::image::digest::{Algorithm, Digest, HashingReader};
use crate::image::platform::Platform;
use crate::image::store::Store;

const RECORD: &str = "preload.json";
const MAX_RECORD_BYTES: u64 = 4 << 20;

/// What [`import_preload_dir`] did with each file.
#[derive(Debug, Default)]
pub struct PreloadReport {
    pub imported: Vec<(PathBuf, Vec<Imported>)>,
    /// Imported before and unchanged since.
    pub skipped: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, ArchiveError)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    files: BTreeMap<String, FileRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileRecord {
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    /// The file's SHA-256 (`None` for a layout directory).
    digest: Option<Digest>,
    images: Vec<Digest>,
}

/// Imports every archive in `dir` not imported before (see the module docs). Holds
/// the preload record's lock throughout, so two preloads do not import twice.
pub fn import_preload_dir(
    store: &Store,
    dir: &Path,
    platform: &Platform,
) -> Result<PreloadReport, ArchiveError> {
    let state = store.state_file(RECORD).map_err(store_err(dir))?;
    let mut record: Record = match state.read(MAX_RECORD_BYTES).map_err(store_err(dir))? {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "preload record is corrupt: importing everything again");
            Record::default()
        }),
        None => Record::default(),
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            names.push(entry.path());
        }
    }
    names.sort();

    let mut report = PreloadReport::default();
    for path in names {
        match preload_one(store, &path, platform, &mut record) {
            Ok(Some(images)) => report.imported.push((path, images)),
            Ok(None) => report.skipped.push(path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "preloading an image archive");
                report.failed.push((path, e));
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(&record).map_err(|source| ArchiveError::Json {
        path: store.root().join("state").join(RECORD),
        file: RECORD.into(),
        source,
    })?;
    state.write(&bytes).map_err(store_err(dir))?;
    Ok(report)
}

/// Imports one file unless the record says it is done; `None` when skipped.
fn preload_one(
    store: &Store,
    path: &Path,
    platform: &Platform,
    record: &mut Record,
) -> Result<Option<Vec<Imported>>, ArchiveError> {
    let meta = fs::metadata(path).map_err(io_err("inspect", path))?;
    // A layout directory's mtime does not change when its index does.
    let stamp = if meta.is_dir() {
        fs::metadata(path.join("index.json")).map_err(io_err("inspect", path))?
    } else {
        meta.clone()
    };
    let key = path.to_string_lossy().into_owned();
    let known = record.files.get(&key).cloned();
    let same_stamp = |r: &FileRecord| {
        r.size == stamp.len() && r.mtime == stamp.mtime() && r.mtime_nsec == stamp.mtime_nsec()
    };
    if known.as_ref().is_some_and(same_stamp) {
        return Ok(None);
    }
    let digest = if meta.is_file() {
        Some(file_digest(path)?)
    } else {
        None
    };
    let mut entry = FileRecord {
        size: stamp.len(),
        mtime: stamp.mtime(),
        mtime_nsec: stamp.mtime_nsec(),
        digest: digest.clone(),
        images: Vec::new(),
    };
    if let Some(k) = known
        && digest.is_some()
        && k.digest == digest
    {
        entry.images = k.images;
        record.files.insert(key, entry);
        return Ok(None);
    }
    let images = import(store, path, platform)?;
    entry.images = images.iter().map(|i| i.digest.clone()).collect();
    record.files.insert(key, entry);
    Ok(Some(images))
}

fn file_digest(path: &Path) -> Result<Digest, ArchiveError> {
    let file = fs::File::open(path).map_err(io_err("open", path))?;
    let mut reader = HashingReader::new(file, Algorithm::Sha256);
    io::copy(&mut reader, &mut io::sink()).map_err(io_err("read", path))?;
    Ok(reader.finish().0)
}
