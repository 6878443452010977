//! The store's side of backups: reading the whole state machine in one read transaction,
//! and seeding a new store with a backed-up state as a fresh single-voter group.
//!
//! Owns: which tables and keys make up "the state" (every record of `objects`, the
//! revision, the applied log id and membership of `sm_meta`) and how a seeded store looks
//! to openraft on its first start. Does not own: the backup file, its encryption or the
//! archive layout (`crate::backup`), nor certificates.
//!
//! ```text
//! export: read txn ─► ExportHead (revision, applied index, members, count) ─► each record
//! seed:   objects + revision ─► state machine at log id (0, id, 0), membership {id}
//!         log: vote (0, id) committed, purged = committed = that log id
//!         snapshot.bin of the same image, for the controllers that join later
//! ```
//!
//! A seeded store is what `initialize` followed by a snapshot and a purge would have
//! left: openraft finds an initialised single-voter group whose log starts after index 0,
//! elects this node, and sends the snapshot to every controller that joins (their log
//! cannot be replayed from the start).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::Path;

use openraft::Membership;
use openraft::vote::RaftLeaderIdExt;
use redb::ReadableDatabase;
use redb::ReadableTable;
use redb::ReadableTableMetadata;

use super::Storage;
use super::StorageOptions;
use super::apply::StoredObject;
use super::codec;
use super::db;
use super::error::StoreError;
use super::reader::StateReader;
use super::snapshot::SnapshotImage;
use super::types::LogId;
use super::types::NodeId;
use super::types::NodeInfo;
use super::types::ObjectKey;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use super::types::TypeConfig;
use super::types::Vote;

type LeaderId = <TypeConfig as openraft::RaftTypeConfig>::LeaderId;

/// What an export reports before its records, all from the same read transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportHead {
    /// The cluster revision.
    pub revision: u64,
    /// The log index the state machine had applied (0 for an empty store).
    pub applied_index: u64,
    /// The group's members (voters and learners) as of that index.
    pub members: Vec<(NodeId, NodeInfo)>,
    /// How many records follow.
    pub records: u64,
}

impl StateReader {
    /// Reads the whole state in one read transaction: `head` first, then every record in
    /// key order. Either callback may stop the export with `Break` (the receiver went
    /// away); the result then says `Break`. Blocking: call it off the async workers.
    pub fn export(
        &self,
        head: impl FnOnce(ExportHead) -> ControlFlow<()>,
        mut record: impl FnMut(ObjectKey, StoredObject) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::Begin)?;
        let meta = txn
            .open_table(db::SM_META)
            .map_err(db::open_table(db::SM_META_NAME))?;
        let revision = db::read_meta(&meta, &db::REVISION)?.unwrap_or(0);
        let applied_index = db::read_meta(&meta, &db::LAST_APPLIED)?.map_or(0, |id| id.index);
        let membership = db::read_meta(&meta, &db::MEMBERSHIP)?.unwrap_or_default();
        let members = membership
            .membership()
            .nodes()
            .map(|(id, info)| (*id, info.clone()))
            .collect();
        let table = txn
            .open_table(db::OBJECTS)
            .map_err(db::open_table(db::OBJECTS_NAME))?;
        let records = table.len().map_err(db::access(db::OBJECTS_NAME))?;
        if head(ExportHead {
            revision,
            applied_index,
            members,
            records,
        })
        .is_break()
        {
            return Ok(ControlFlow::Break(()));
        }
        for item in table.iter().map_err(db::access(db::OBJECTS_NAME))? {
            let (key, value) = item.map_err(db::access(db::OBJECTS_NAME))?;
            let (kind, namespace, name) = key.value();
            let key = ObjectKey::new(kind, namespace, name);
            let object = db::decode_object(&key, value.value())?;
            if record(key, object).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// Why a new store could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the membership of the new group: {0}")]
    Membership(String),
    #[error("{path} exists: a new store is made only where there is none")]
    Exists { path: std::path::PathBuf },
}

/// The state a new store starts from.
#[derive(Debug, Clone)]
pub struct SeedState {
    /// Every record, with its revisions as they were.
    pub objects: Vec<(ObjectKey, StoredObject)>,
    /// The cluster revision; the next write gets the one after it.
    pub revision: u64,
    /// The Raft id of the one voter.
    pub id: NodeId,
    /// Its name and address.
    pub info: NodeInfo,
}

/// Makes a new store in `dir` (which must hold none) holding `state` as a group of one
/// voter, `state.id`, ready for its first start: no `initialize` call is needed, nor
/// possible. The database is closed when this returns.
pub fn seed(dir: &Path, state: SeedState) -> Result<(), SeedError> {
    let path = dir.join(super::DATABASE_FILE);
    if path.exists() {
        return Err(SeedError::Exists { path });
    }
    let storage = Storage::open(dir, &StorageOptions::default())?;
    // The first log id a group has, as `initialize` makes it; here it is only ever in
    // the snapshot, never in the log.
    let log_id = LogId::new(LeaderId::new_committed(0, state.id), 0);
    let membership = Membership::new(
        vec![BTreeSet::from([state.id])],
        BTreeMap::from([(state.id, state.info)]),
    )
    .map_err(|e| SeedError::Membership(e.to_string()))?;
    let image = SnapshotImage {
        last_applied: Some(log_id),
        membership: StoredMembership::new(Some(log_id), membership),
        revision: state.revision,
        objects: state.objects,
    };
    super::snapshot::install_image(&storage.db, &image)?;
    let txn = db::begin_durable(&storage.db)?;
    {
        let mut meta = txn
            .open_table(db::LOG_META)
            .map_err(db::open_table(db::LOG_META_NAME))?;
        db::write_meta(&mut meta, &db::VOTE, &Vote::new_committed(0, state.id))?;
        db::write_meta(&mut meta, &db::COMMITTED, &log_id)?;
        db::write_meta(&mut meta, &db::LAST_PURGED, &log_id)?;
    }
    txn.commit().map_err(StoreError::Commit)?;
    let meta = SnapshotMeta {
        last_log_id: image.last_applied,
        last_membership: image.membership.clone(),
    };
    let data = codec::encode(&image).map_err(StoreError::SnapshotEncode)?;
    storage.snapshot_files.save(&meta, &data, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: &[u8], create: u64, modified: u64) -> StoredObject {
        StoredObject {
            value: value.to_vec(),
            create_revision: create,
            mod_revision: modified,
        }
    }

    #[test]
    fn a_seeded_store_exports_what_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let objects = vec![
            (
                ObjectKey::new("ConfigMap", "default", "a"),
                object(b"a", 3, 9),
            ),
            (ObjectKey::new("moor.Token", "", "0a"), object(b"t", 5, 5)),
        ];
        let info = NodeInfo {
            name: "ctl-9".into(),
            address: "127.0.0.1:7443".into(),
        };
        seed(
            dir.path(),
            SeedState {
                objects: objects.clone(),
                revision: 12,
                id: 4,
                info: info.clone(),
            },
        )
        .unwrap();
        let again = seed(
            dir.path(),
            SeedState {
                objects: Vec::new(),
                revision: 1,
                id: 4,
                info: info.clone(),
            },
        );
        assert!(matches!(again, Err(SeedError::Exists { .. })), "{again:?}");
        let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
        let mut heads = Vec::new();
        let mut seen = Vec::new();
        let flow = storage
            .reader()
            .export(
                |head| {
                    heads.push(head);
                    ControlFlow::Continue(())
                },
                |key, object| {
                    seen.push((key, object));
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        assert!(flow.is_continue());
        assert_eq!(
            heads,
            vec![ExportHead {
                revision: 12,
                applied_index: 0,
                members: vec![(4, info)],
                records: 2,
            }]
        );
        assert_eq!(seen, objects);
        let snapshot = storage.snapshot_files.load().unwrap().unwrap();
        assert_eq!(snapshot.meta.last_log_id.map(|id| id.index), Some(0));
        // A receiver that goes away stops the export.
        let flow = storage
            .reader()
            .export(|_| ControlFlow::Continue(()), |_, _| ControlFlow::Break(()))
            .unwrap();
        assert!(flow.is_break());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_seeded_store_elects_itself_and_continues_the_revision() {
        use std::sync::Arc;
        use std::time::Duration;

        let dir = tempfile::tempdir().unwrap();
        let kept = ObjectKey::new("ConfigMap", "default", "kept");
        seed(
            dir.path(),
            SeedState {
                objects: vec![(kept.clone(), object(b"old", 3, 9))],
                revision: 12,
                id: 7,
                info: NodeInfo {
                    name: "ctl-7".into(),
                    address: "127.0.0.1:7000".into(),
                },
            },
        )
        .unwrap();
        let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
        let config = openraft::Config {
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            ..Default::default()
        };
        let raft = openraft::Raft::new(
            7,
            Arc::new(config.validate().unwrap()),
            crate::raft::tests::single_node::NoPeers,
            storage.log_store(),
            storage.state_machine(),
        )
        .await
        .unwrap();
        raft.wait(Some(Duration::from_secs(10)))
            .current_leader(7, "the seeded voter leads")
            .await
            .unwrap();
        let written = raft
            .client_write(crate::raft::Request::Put {
                key: ObjectKey::new("ConfigMap", "default", "new"),
                value: b"new".to_vec(),
                expected: Some(0),
            })
            .await
            .unwrap();
        assert_eq!(
            written.data,
            crate::raft::Response::Written { revision: 13 }
        );
        assert_eq!(
            storage.reader().get(&kept).unwrap(),
            Some(object(b"old", 3, 9))
        );
        raft.shutdown().await.unwrap();
    }
}
