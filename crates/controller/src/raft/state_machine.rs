//! The Raft state machine: a versioned key-value store of opaque objects, in redb.
//!
//! Owns the `objects` and `sm_meta` tables and applying committed entries to them. Does not
//! own what a write means (`apply::plan_request` decides), nor reads for clients
//! (`reader::StateReader`), nor snapshot files (`snapshot`).
//!
//! ```text
//! committed entries ─► one write txn: plan each request, write objects,
//!                      last_applied, membership, revision, the log's committed id
//!                      ─► deferred commit ─► responses
//! ```
//!
//! Effects, `last_applied` and membership share a transaction, so the state machine is
//! always at exactly one log position. By default ([`ApplyDurability::Deferred`]) that
//! commit is deferred: redb keeps it in memory and writes it with the next durable commit
//! of the file (the next append or vote) or on close. A power cut can therefore take the
//! state machine back to an earlier position, never past the durable log, and openraft
//! re-applies from the log up to `committed` on start (see the module doc of `raft`).

use std::io;
use std::sync::Arc;

use futures_util::StreamExt;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use redb::Database;
use tokio::sync::broadcast;

use super::ApplyDurability;
use super::apply::plan_request;
use super::db;
use super::db::LOG_META;
use super::db::OBJECTS;
use super::db::SM_META;
use super::error::StoreError;
use super::log_store::CommittedSlot;
use super::snapshot;
use super::snapshot::Snapshot;
use super::snapshot::SnapshotBuilder;
use super::snapshot::SnapshotFiles;
use super::types::Applied;
use super::types::Change;
use super::types::Entry;
use super::types::LogId;
use super::types::Request;
use super::types::Response;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use super::types::TypeConfig;

/// The replicated state machine. Cheap to clone; clones share one database.
#[derive(Debug, Clone)]
pub struct StateMachine {
    db: Arc<Database>,
    snapshot_files: Arc<SnapshotFiles>,
    durability: ApplyDurability,
    feed: broadcast::Sender<Applied>,
    /// The log's committed id, written with each apply (see `log_store`).
    committed: Arc<CommittedSlot>,
}

impl StateMachine {
    pub(crate) fn new(
        db: Arc<Database>,
        snapshot_files: Arc<SnapshotFiles>,
        durability: ApplyDurability,
        feed: broadcast::Sender<Applied>,
        committed: Arc<CommittedSlot>,
    ) -> Self {
        Self {
            db,
            snapshot_files,
            durability,
            feed,
            committed,
        }
    }

    /// Applies `entries` in one transaction and returns one response per entry, and what
    /// each accepted write changed.
    fn apply_entries(
        db: &Database,
        durability: ApplyDurability,
        committed: &CommittedSlot,
        entries: Vec<Entry>,
    ) -> Result<(Vec<Response>, Vec<Applied>), StoreError> {
        let txn = match durability {
            ApplyDurability::Deferred => db::begin_deferred(db)?,
            ApplyDurability::Immediate => db::begin_durable(db)?,
        };
        let mut responses = Vec::with_capacity(entries.len());
        let mut applied = Vec::new();
        {
            let mut meta = txn
                .open_table(SM_META)
                .map_err(db::open_table(db::SM_META_NAME))?;
            let mut objects = txn
                .open_table(OBJECTS)
                .map_err(db::open_table(db::OBJECTS_NAME))?;
            let start_revision = db::read_meta(&meta, &db::REVISION)?.unwrap_or(0);
            let mut revision = start_revision;
            let mut last_applied: Option<LogId> = None;
            for entry in entries {
                let log_id = entry.log_id();
                let response = match entry.payload {
                    EntryPayload::Blank => Response::Unchanged { revision },
                    EntryPayload::Membership(membership) => {
                        let stored = StoredMembership::new(Some(log_id), membership);
                        db::write_meta(&mut meta, &db::MEMBERSHIP, &stored)?;
                        Response::Unchanged { revision }
                    }
                    EntryPayload::Normal(request) => {
                        let (response, changes) = apply_request(&mut objects, request, revision)?;
                        revision = response.revision();
                        if !changes.is_empty() {
                            applied.push(Applied::Changes { revision, changes });
                        }
                        response
                    }
                };
                last_applied = Some(log_id);
                responses.push(response);
            }
            if let Some(last_applied) = &last_applied {
                db::write_meta(&mut meta, &db::LAST_APPLIED, last_applied)?;
            }
            if revision != start_revision {
                db::write_meta(&mut meta, &db::REVISION, &revision)?;
            }
        }
        if responses.is_empty() {
            return Ok((responses, applied));
        }
        if let Some(committed) = committed.saved() {
            write_committed(&txn, committed)?;
        }
        txn.commit().map_err(StoreError::Commit)?;
        Ok((responses, applied))
    }

    fn applied_state_now(&self) -> Result<(Option<LogId>, StoredMembership), StoreError> {
        let txn =
            redb::ReadableDatabase::begin_read(self.db.as_ref()).map_err(StoreError::Begin)?;
        let meta = txn
            .open_table(SM_META)
            .map_err(db::open_table(db::SM_META_NAME))?;
        let last_applied = db::read_meta(&meta, &db::LAST_APPLIED)?;
        let membership = db::read_meta(&meta, &db::MEMBERSHIP)?.unwrap_or_default();
        Ok((last_applied, membership))
    }
}

/// Writes the log's committed id, unless it is already stored.
fn write_committed(
    txn: &redb::WriteTransaction,
    committed: Option<LogId>,
) -> Result<(), StoreError> {
    let mut meta = txn
        .open_table(LOG_META)
        .map_err(db::open_table(db::LOG_META_NAME))?;
    if db::read_meta(&meta, &db::COMMITTED)? == committed {
        return Ok(());
    }
    match &committed {
        Some(log_id) => db::write_meta(&mut meta, &db::COMMITTED, log_id),
        None => meta
            .remove(db::COMMITTED.name)
            .map(drop)
            .map_err(db::access(db::LOG_META_NAME)),
    }
}

/// Decides `request` against the current objects and writes its changes, if any; returns
/// each changed key with its old and new object, for the feed.
fn apply_request(
    objects: &mut redb::Table<(&'static str, &'static str, &'static str), &'static [u8]>,
    request: Request,
    revision: u64,
) -> Result<(Response, Vec<Change>), StoreError> {
    let (response, planned) = plan_request(request, revision, |key| db::read_object(objects, key))?;
    let mut changes = Vec::with_capacity(planned.len());
    for (key, object) in planned {
        let old = db::read_object(objects, &key)?;
        changes.push(Change {
            key: key.clone(),
            old,
            new: object.clone(),
        });
        match object {
            Some(object) => db::write_object(objects, &key, &object)?,
            None => {
                objects
                    .remove(db::object_key(&key))
                    .map_err(db::access(db::OBJECTS_NAME))?;
            }
        }
    }
    Ok((response, changes))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok(self.applied_state_now()?)
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures_util::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        // Everything openraft hands over in one call goes into one transaction: one commit
        // per batch of committed entries, not per entry.
        let mut batch = Vec::new();
        let mut responders = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            batch.push(entry);
            responders.push(responder);
        }
        let durability = self.durability;
        let committed = Arc::clone(&self.committed);
        let (responses, applied) = db::blocking(&self.db, move |db| {
            Self::apply_entries(db, durability, &committed, batch)
        })
        .await?;
        // After the commit, so a receiver that reads the store sees what it was told.
        for event in applied {
            let _ = self.feed.send(event);
        }
        for (responder, response) in responders.into_iter().zip(responses) {
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: Arc::clone(&self.db),
            files: Arc::clone(&self.snapshot_files),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let meta = meta.clone();
        let files = Arc::clone(&self.snapshot_files);
        let revision = db::blocking(&self.db, move |db| {
            let image = snapshot::decode_image(&meta, &snapshot)?;
            // The file first: should the node stop between the two steps, openraft finds a
            // snapshot newer than the state machine on start and installs it again.
            files.save(&meta, &snapshot, true)?;
            snapshot::install_image(db, &image)?;
            Ok::<_, StoreError>(image.revision)
        })
        .await?;
        snapshot::release_freed_memory();
        let _ = self.feed.send(Applied::Reset { revision });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let files = Arc::clone(&self.snapshot_files);
        Ok(db::blocking(&self.db, move |_| files.load()).await?)
    }
}
