//! Reads of the state machine for the controller itself, not through Raft.
//!
//! Owns point reads and listings, each from one redb read transaction, so a listing and the
//! revision it reports belong together. Does not own linearizability: a caller that needs
//! it asks Raft first (read index or lease) and reads here afterwards.
//!
//! ```text
//! api ─► StateReader::list(kind, ns) ─► read txn ─► (objects, revision)
//! ```

use std::sync::Arc;

use redb::Database;
use redb::ReadableDatabase;

use super::apply::StoredObject;
use super::db;
use super::db::OBJECTS;
use super::db::SM_META;
use super::error::StoreError;
use super::types::ObjectKey;

/// The objects of one kind (and namespace), as of `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The cluster revision the listing was read at.
    pub revision: u64,
    /// The objects in key order.
    pub objects: Vec<(ObjectKey, StoredObject)>,
}

/// A read handle on the state machine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StateReader {
    pub(super) db: Arc<Database>,
}

impl StateReader {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// One object with its revisions, if it exists.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::Begin)?;
        let table = txn
            .open_table(OBJECTS)
            .map_err(db::open_table(db::OBJECTS_NAME))?;
        db::read_object(&table, key)
    }

    /// Every object of `kind`, in one namespace or in all, with the revision of the read.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Result<Listing, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::Begin)?;
        let meta = txn
            .open_table(SM_META)
            .map_err(db::open_table(db::SM_META_NAME))?;
        let revision = db::read_meta(&meta, &db::REVISION)?.unwrap_or(0);
        let table = txn
            .open_table(OBJECTS)
            .map_err(db::open_table(db::OBJECTS_NAME))?;
        // Keys sort by kind, then namespace, then name, and "" sorts first: the listing is the
        // run of keys starting at (kind, namespace or "", "").
        let start = (kind, namespace.unwrap_or(""), "");
        let mut objects = Vec::new();
        for item in table.range(start..).map_err(db::access(db::OBJECTS_NAME))? {
            let (key, value) = item.map_err(db::access(db::OBJECTS_NAME))?;
            let (found_kind, found_namespace, name) = key.value();
            if found_kind != kind || namespace.is_some_and(|ns| ns != found_namespace) {
                break;
            }
            let key = ObjectKey::new(found_kind, found_namespace, name);
            let object = db::decode_object(&key, value.value())?;
            objects.push((key, object));
        }
        Ok(Listing { revision, objects })
    }

    /// The current cluster revision: the number of accepted writes so far.
    pub fn revision(&self) -> Result<u64, StoreError> {
        Ok(db::read_meta_now(&self.db, &db::REVISION)?.unwrap_or(0))
    }
}
