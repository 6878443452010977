//! The redb file: its tables, typed meta keys and the helpers every store uses.
//!
//! Owns the table layout, the one type stored under each key, reading and writing records
//! in open tables, and the two kinds of write transaction (durable, deferred). Does not own
//! opening the file (`Storage` in `mod.rs`) nor what is written when (`log_store`,
//! `state_machine`, `snapshot`).
//!
//! ```text
//! raft.redb
//! ├── raft_log       u64 index            → Entry
//! ├── raft_log_meta  "vote"               → Vote
//! │                  "committed"          → LogId
//! │                  "last_purged"        → LogId
//! ├── objects        (kind, ns, name)     → StoredObject
//! └── sm_meta        "revision"           → u64
//!                    "last_applied"       → LogId
//!                    "membership"         → StoredMembership
//! ```

use std::marker::PhantomData;
use std::sync::Arc;

use redb::Database;
use redb::ReadableDatabase;
use redb::ReadableTable;
use redb::TableDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::apply::StoredObject;
use super::codec;
use super::error::StoreError;
use super::types::LogId;
use super::types::ObjectKey;
use super::types::StoredMembership;
use super::types::Vote;

pub(crate) const LOG_NAME: &str = "raft_log";
pub(crate) const LOG_META_NAME: &str = "raft_log_meta";
pub(crate) const OBJECTS_NAME: &str = "objects";
pub(crate) const SM_META_NAME: &str = "sm_meta";

pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new(LOG_NAME);
pub(crate) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new(LOG_META_NAME);
pub(crate) const OBJECTS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new(OBJECTS_NAME);
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new(SM_META_NAME);

/// A key of a meta table bound to the one type stored under it, so that a value can only be
/// read back as the type it was written as.
pub(crate) struct MetaKey<T> {
    pub(crate) table: TableDefinition<'static, &'static str, &'static [u8]>,
    pub(crate) table_name: &'static str,
    pub(crate) name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> MetaKey<T> {
    const fn new(
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        table_name: &'static str,
        name: &'static str,
    ) -> Self {
        Self {
            table,
            table_name,
            name,
            _type: PhantomData,
        }
    }
}

pub(crate) const VOTE: MetaKey<Vote> = MetaKey::new(LOG_META, LOG_META_NAME, "vote");
pub(crate) const COMMITTED: MetaKey<LogId> = MetaKey::new(LOG_META, LOG_META_NAME, "committed");
pub(crate) const LAST_PURGED: MetaKey<LogId> = MetaKey::new(LOG_META, LOG_META_NAME, "last_purged");
pub(crate) const REVISION: MetaKey<u64> = MetaKey::new(SM_META, SM_META_NAME, "revision");
pub(crate) const LAST_APPLIED: MetaKey<LogId> = MetaKey::new(SM_META, SM_META_NAME, "last_applied");
pub(crate) const MEMBERSHIP: MetaKey<StoredMembership> =
    MetaKey::new(SM_META, SM_META_NAME, "membership");

/// Reads a meta value from an open table.
pub(crate) fn read_meta<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &MetaKey<T>,
) -> Result<Option<T>, StoreError> {
    let Some(guard) = table.get(key.name).map_err(access(key.table_name))? else {
        return Ok(None);
    };
    codec::decode(guard.value())
        .map(Some)
        .map_err(|source| StoreError::Corrupted {
            table: key.table_name,
            key: key.name.to_string(),
            source,
        })
}

/// Writes a meta value into an open table.
pub(crate) fn write_meta<T: Serialize>(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    key: &MetaKey<T>,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = codec::encode(value).map_err(|source| StoreError::Encode {
        table: key.table_name,
        source,
    })?;
    table
        .insert(key.name, bytes.as_slice())
        .map_err(access(key.table_name))?;
    Ok(())
}

/// The `objects` table's key for `key`.
pub(crate) fn object_key(key: &ObjectKey) -> (&str, &str, &str) {
    (key.kind.as_str(), key.namespace.as_str(), key.name.as_str())
}

pub(crate) fn decode_object(key: &ObjectKey, bytes: &[u8]) -> Result<StoredObject, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Corrupted {
        table: OBJECTS_NAME,
        key: key.to_string(),
        source,
    })
}

/// Reads one object from an open `objects` table.
pub(crate) fn read_object(
    table: &impl ReadableTable<(&'static str, &'static str, &'static str), &'static [u8]>,
    key: &ObjectKey,
) -> Result<Option<StoredObject>, StoreError> {
    match table.get(object_key(key)).map_err(access(OBJECTS_NAME))? {
        Some(bytes) => decode_object(key, bytes.value()).map(Some),
        None => Ok(None),
    }
}

/// Writes one object into an open `objects` table.
pub(crate) fn write_object(
    table: &mut redb::Table<(&'static str, &'static str, &'static str), &'static [u8]>,
    key: &ObjectKey,
    object: &StoredObject,
) -> Result<(), StoreError> {
    let bytes = codec::encode(object).map_err(|source| StoreError::Encode {
        table: OBJECTS_NAME,
        source,
    })?;
    table
        .insert(object_key(key), bytes.as_slice())
        .map_err(access(OBJECTS_NAME))?;
    Ok(())
}

/// Reads one meta value in its own read transaction.
pub(crate) fn read_meta_now<T: DeserializeOwned>(
    db: &Database,
    key: &MetaKey<T>,
) -> Result<Option<T>, StoreError> {
    let txn = db.begin_read().map_err(StoreError::Begin)?;
    let table = txn
        .open_table(key.table)
        .map_err(open_table(key.table_name))?;
    read_meta(&table, key)
}

pub(crate) fn access(table: &'static str) -> impl Fn(redb::StorageError) -> StoreError {
    move |source| StoreError::Access { table, source }
}

pub(crate) fn open_table(table: &'static str) -> impl Fn(redb::TableError) -> StoreError {
    move |source| StoreError::Table { table, source }
}

/// Begins a write transaction that is durable (one fsync) when committed.
pub(crate) fn begin_durable(db: &Database) -> Result<redb::WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(StoreError::Begin)?;
    txn.set_durability(redb::Durability::Immediate)
        .map_err(StoreError::Durability)?;
    Ok(txn)
}

/// Begins a write transaction whose commit stays in memory until the next durable commit
/// (or the database's close) writes it out.
pub(crate) fn begin_deferred(db: &Database) -> Result<redb::WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(StoreError::Begin)?;
    txn.set_durability(redb::Durability::None)
        .map_err(StoreError::Durability)?;
    Ok(txn)
}

/// Creates the tables on first open, so that readers never meet a missing table. Writes
/// nothing when they exist.
pub(crate) fn ensure_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(StoreError::Begin)?;
    let missing = txn.open_table(LOG).is_err()
        || txn.open_table(LOG_META).is_err()
        || txn.open_table(OBJECTS).is_err()
        || txn.open_table(SM_META).is_err();
    drop(txn);
    if !missing {
        return Ok(());
    }
    let txn = begin_durable(db)?;
    txn.open_table(LOG).map_err(open_table(LOG_NAME))?;
    txn.open_table(LOG_META)
        .map_err(open_table(LOG_META_NAME))?;
    txn.open_table(OBJECTS).map_err(open_table(OBJECTS_NAME))?;
    txn.open_table(SM_META).map_err(open_table(SM_META_NAME))?;
    txn.commit().map_err(StoreError::Commit)
}

/// Runs blocking redb work (a commit is an fsync) off the async worker threads.
pub(crate) async fn blocking<T, F>(db: &Arc<Database>, work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
{
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || work(&db))
        .await
        .map_err(StoreError::TaskAborted)?
}
