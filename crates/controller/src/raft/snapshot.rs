//! Whole snapshots of the state machine: their bytes, their file, and installing one.
//!
//! Owns the snapshot image (every object, the revision, the last applied log id and the
//! membership, read in one redb read transaction) and the current snapshot file. Does not own
//! transfer: the network layer sends the bytes whole and enforces its own size limit.
//!
//! ```text
//! build:   read txn ─► objects encoded one by one ─► image bytes ─► snapshot.bin.tmp
//!          ─fsync─► rename ─fsync dir
//! install: snapshot.bin (as above) ─► one durable write txn replacing all state
//! ```
//!
//! The current snapshot is kept on disk rather than rebuilt on demand: a follower's state
//! moves on after it installs a snapshot, but `get_current_snapshot` must still return the
//! snapshot as it was (same metadata, same bytes). One file, replaced atomically, so at most
//! twice its size is on disk for a moment. openraft builds snapshots in a task of their own,
//! beside installs: `SnapshotFiles` makes writers take turns and keeps a late build from
//! replacing a newer snapshot.

use std::cell::RefCell;
use std::fs;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use openraft::RaftSnapshotBuilder;
use redb::Database;
use redb::ReadableDatabase;
use redb::ReadableTable;
use redb::ReadableTableMetadata;
use serde::Deserialize;
use serde::Serialize;

use super::apply::StoredObject;
use super::codec;
use super::db;
use super::db::OBJECTS;
use super::db::SM_META;
use super::error::StoreError;
use super::types::LogId;
use super::types::ObjectKey;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use super::types::TypeConfig;

const SNAPSHOT_FILE: &str = "snapshot.bin";
const SNAPSHOT_TMP_FILE: &str = "snapshot.bin.tmp";

/// Everything the state machine holds, at one point of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotImage {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
    pub(crate) revision: u64,
    pub(crate) objects: Vec<(ObjectKey, StoredObject)>,
}

/// The snapshot file: metadata next to the image bytes, so the metadata is read without
/// decoding every object.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// A snapshot as openraft moves it: metadata plus the encoded image.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;

/// Encodes the whole state, as of one read transaction, into the bytes of a
/// [`SnapshotImage`] and returns them with the image's metadata. Objects go from the
/// table into the encoding one at a time: the decoded state (many small allocations, the
/// largest copy of all) is never held whole.
pub(crate) fn encode_image(db: &Database) -> Result<(SnapshotMeta, Vec<u8>), StoreError> {
    let txn = db.begin_read().map_err(StoreError::Begin)?;
    let meta = txn
        .open_table(SM_META)
        .map_err(db::open_table(db::SM_META_NAME))?;
    let last_applied = db::read_meta(&meta, &db::LAST_APPLIED)?;
    let membership = db::read_meta(&meta, &db::MEMBERSHIP)?.unwrap_or_default();
    let revision = db::read_meta(&meta, &db::REVISION)?.unwrap_or(0);
    let table = txn
        .open_table(OBJECTS)
        .map_err(db::open_table(db::OBJECTS_NAME))?;
    let objects = TableObjects {
        table: &table,
        failed: RefCell::new(None),
    };
    let image = StreamedImage {
        last_applied,
        membership: &membership,
        revision,
        objects: &objects,
    };
    let encoded = codec::encode(&image);
    if let Some(err) = objects.failed.into_inner() {
        return Err(err);
    }
    let data = encoded.map_err(StoreError::SnapshotEncode)?;
    let meta = SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
    };
    Ok((meta, data))
}

/// A [`SnapshotImage`] whose objects are read from the table while it is encoded: the
/// fields and their order are the image's, so the bytes are the same.
#[derive(Serialize)]
struct StreamedImage<'a, 't> {
    last_applied: Option<LogId>,
    membership: &'a StoredMembership,
    revision: u64,
    objects: &'a TableObjects<'t>,
}

/// The `objects` table as a sequence of `(ObjectKey, StoredObject)`, decoded one by one.
/// A record that fails to read or decode ends the encoding; its error is kept in `failed`.
struct TableObjects<'t> {
    table: &'t redb::ReadOnlyTable<(&'static str, &'static str, &'static str), &'static [u8]>,
    failed: RefCell<Option<StoreError>>,
}

impl Serialize for TableObjects<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        use serde::ser::SerializeSeq as _;
        let fail = |err: StoreError| {
            let text = err.to_string();
            *self.failed.borrow_mut() = Some(err);
            S::Error::custom(text)
        };
        let len = self
            .table
            .len()
            .map_err(db::access(db::OBJECTS_NAME))
            .map_err(fail)?;
        let len = usize::try_from(len)
            .map_err(|_| S::Error::custom("more objects than this machine can count"))?;
        let mut seq = serializer.serialize_seq(Some(len))?;
        let items = self
            .table
            .iter()
            .map_err(db::access(db::OBJECTS_NAME))
            .map_err(fail)?;
        for item in items {
            let (key, value) = item.map_err(db::access(db::OBJECTS_NAME)).map_err(fail)?;
            let (kind, namespace, name) = key.value();
            let key = ObjectKey::new(kind, namespace, name);
            let object = db::decode_object(&key, value.value()).map_err(fail)?;
            seq.serialize_element(&(key, object))?;
        }
        seq.end()
    }
}

/// Reads the whole state, decoded, in one read transaction: what [`encode_image`] streams.
#[cfg(test)]
pub(crate) fn read_image(db: &Database) -> Result<SnapshotImage, StoreError> {
    let txn = db.begin_read().map_err(StoreError::Begin)?;
    let meta = txn
        .open_table(SM_META)
        .map_err(db::open_table(db::SM_META_NAME))?;
    let last_applied = db::read_meta(&meta, &db::LAST_APPLIED)?;
    let membership = db::read_meta(&meta, &db::MEMBERSHIP)?.unwrap_or_default();
    let revision = db::read_meta(&meta, &db::REVISION)?.unwrap_or(0);
    let table = txn
        .open_table(OBJECTS)
        .map_err(db::open_table(db::OBJECTS_NAME))?;
    let mut objects = Vec::new();
    for item in table.iter().map_err(db::access(db::OBJECTS_NAME))? {
        let (key, value) = item.map_err(db::access(db::OBJECTS_NAME))?;
        let (kind, namespace, name) = key.value();
        let key = ObjectKey::new(kind, namespace, name);
        let object = db::decode_object(&key, value.value())?;
        objects.push((key, object));
    }
    Ok(SnapshotImage {
        last_applied,
        membership,
        revision,
        objects,
    })
}

/// Replaces all state machine content with `image` in one durable transaction.
pub(crate) fn install_image(db: &Database, image: &SnapshotImage) -> Result<(), StoreError> {
    let txn = db::begin_durable(db)?;
    {
        let mut objects = txn
            .open_table(OBJECTS)
            .map_err(db::open_table(db::OBJECTS_NAME))?;
        objects
            .retain(|_, _| false)
            .map_err(db::access(db::OBJECTS_NAME))?;
        for (key, object) in &image.objects {
            db::write_object(&mut objects, key, object)?;
        }
        let mut meta = txn
            .open_table(SM_META)
            .map_err(db::open_table(db::SM_META_NAME))?;
        meta.retain(|_, _| false)
            .map_err(db::access(db::SM_META_NAME))?;
        if let Some(last_applied) = &image.last_applied {
            db::write_meta(&mut meta, &db::LAST_APPLIED, last_applied)?;
        }
        db::write_meta(&mut meta, &db::MEMBERSHIP, &image.membership)?;
        db::write_meta(&mut meta, &db::REVISION, &image.revision)?;
    }
    txn.commit().map_err(StoreError::Commit)
}

/// Decodes snapshot bytes and checks they are what `meta` says they are.
pub(crate) fn decode_image(meta: &SnapshotMeta, data: &[u8]) -> Result<SnapshotImage, StoreError> {
    let image: SnapshotImage =
        codec::decode(data).map_err(|source| StoreError::SnapshotCorrupted {
            what: "image",
            source,
        })?;
    if image.last_applied != meta.last_log_id {
        return Err(StoreError::SnapshotMismatch {
            data: image.last_applied.map(|id| id.index),
            meta: meta.last_log_id.map(|id| id.index),
        });
    }
    Ok(image)
}

/// What [`SnapshotFiles::save`] writes: the same layout as [`SnapshotFile`], without
/// copying the data.
#[derive(Serialize)]
struct SnapshotFileRef<'a> {
    meta: &'a SnapshotMeta,
    data: &'a [u8],
}

/// The current snapshot file of one store. openraft builds snapshots in a task of their own,
/// beside installs, so writers take turns here, and a build that finishes late never
/// replaces a newer snapshot with its older one.
#[derive(Debug)]
pub(crate) struct SnapshotFiles {
    dir: PathBuf,
    /// The `last_log_id` of the file on disk, once known: `Some(None)` for no snapshot, or
    /// one of the empty state.
    on_disk: Mutex<Option<Option<LogId>>>,
}

impl SnapshotFiles {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            on_disk: Mutex::new(None),
        }
    }

    /// Makes `meta` and `data` the current snapshot, atomically: temporary file, fsync,
    /// rename, fsync of the directory. Unless `replace_newer`, keeps a newer file instead.
    pub(crate) fn save(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        replace_newer: bool,
    ) -> Result<(), StoreError> {
        // A panic while holding the lock leaves at worst a stale `on_disk`, which the next
        // save reads again from disk.
        let mut on_disk = self.on_disk.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        });
        let current = match *on_disk {
            Some(current) => current,
            None => self.load()?.and_then(|snapshot| snapshot.meta.last_log_id),
        };
        if !replace_newer && current > meta.last_log_id {
            *on_disk = Some(current);
            return Ok(());
        }
        let tmp = self.dir.join(SNAPSHOT_TMP_FILE);
        let path = self.dir.join(SNAPSHOT_FILE);
        let failed = |step: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::SnapshotFile { step, path, source }
        };
        *on_disk = None;
        let out = fs::File::create(&tmp).map_err(failed("create", &tmp))?;
        // Encoded straight into the file: no second in-memory copy of the image.
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
        // Metadata and bytes always encode: a failure here is the file's.
        codec::encode_to(&SnapshotFileRef { meta, data }, &mut out)
            .map_err(std::io::Error::other)
            .map_err(failed("write", &tmp))?;
        let out = out
            .into_inner()
            .map_err(|err| err.into_error())
            .map_err(failed("write", &tmp))?;
        out.sync_all().map_err(failed("sync", &tmp))?;
        drop(out);
        fs::rename(&tmp, &path).map_err(failed("rename into place the", &path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(failed("sync the directory of the", &path))?;
        *on_disk = Some(meta.last_log_id);
        Ok(())
    }

    /// Reads the current snapshot, if there is one.
    pub(crate) fn load(&self) -> Result<Option<Snapshot>, StoreError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::SnapshotFile {
                    step: "read",
                    path,
                    source,
                });
            }
        };
        let file: SnapshotFile =
            codec::decode(&bytes).map_err(|source| StoreError::SnapshotCorrupted {
                what: "file",
                source,
            })?;
        Ok(Some(Snapshot {
            meta: file.meta,
            snapshot: file.data,
        }))
    }
}

/// Hands the heap memory freed by a dropped state image back to the kernel. An image is
/// one small allocation per object, and glibc keeps freed small chunks in its heap for
/// reuse: measured on one member under 64 writers, at about 263,000 objects it held
/// 294 MB, 84 MB after a trim. Called after each build and install (one per
/// `snapshot_every` entries applied), it costs a walk of the free lists.
pub(crate) fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim works on glibc's own free lists under glibc's locks; it touches no
    // memory that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Builds a snapshot of the state as of the moment `build_snapshot` starts.
#[derive(Debug)]
pub struct SnapshotBuilder {
    pub(crate) db: Arc<Database>,
    pub(crate) files: Arc<SnapshotFiles>,
}

impl SnapshotBuilder {
    fn build(db: &Database, files: &SnapshotFiles) -> Result<Snapshot, StoreError> {
        // One encoded copy of the state: the file is written from it, and openraft keeps it.
        let (meta, data) = encode_image(db)?;
        release_freed_memory();
        files.save(&meta, &data, false)?;
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, std::io::Error> {
        let files = Arc::clone(&self.files);
        Ok(db::blocking(&self.db, move |db| Self::build(db, &files)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::tests::log_id;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(log_id(1, index)),
            last_membership: StoredMembership::default(),
        }
    }

    fn on_disk(files: &SnapshotFiles) -> Vec<u8> {
        files.load().unwrap().unwrap().snapshot
    }

    #[tokio::test]
    async fn a_streamed_image_is_the_encoded_image_and_round_trips() {
        use crate::raft::tests::{apply, put_entry};
        let dir = tempfile::tempdir().unwrap();
        let storage =
            crate::raft::Storage::open(dir.path(), &crate::raft::StorageOptions::default())
                .unwrap();
        let db = storage.database();
        let (meta, empty) = encode_image(db).unwrap();
        assert_eq!(meta.last_log_id, None);
        assert_eq!(empty, codec::encode(&read_image(db).unwrap()).unwrap());

        let mut sm = storage.state_machine();
        apply(&mut sm, (1..=300).map(|i| put_entry(1, i)).collect())
            .await
            .unwrap();
        let (meta, data) = encode_image(db).unwrap();
        let image = read_image(db).unwrap();
        assert_eq!(image.objects.len(), 300);
        assert_eq!(meta.last_log_id, Some(log_id(1, 300)));
        assert_eq!(data, codec::encode(&image).unwrap());
        assert_eq!(decode_image(&meta, &data).unwrap(), image);
    }

    #[test]
    fn an_older_build_never_replaces_a_newer_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::new(dir.path().to_path_buf());
        assert!(files.load().unwrap().is_none());
        files.save(&meta(5), b"five", false).unwrap();
        files.save(&meta(3), b"three", false).unwrap();
        assert_eq!(on_disk(&files), b"five");

        // An install replaces whatever is there.
        files.save(&meta(3), b"three", true).unwrap();
        assert_eq!(on_disk(&files), b"three");

        // A second handle, with nothing cached, looks at the file.
        let again = SnapshotFiles::new(dir.path().to_path_buf());
        again.save(&meta(2), b"two", false).unwrap();
        assert_eq!(on_disk(&again), b"three");
        assert!(!dir.path().join(SNAPSHOT_TMP_FILE).exists());
    }
}
