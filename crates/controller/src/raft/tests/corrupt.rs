//! Hostile records: a corrupted value in any table is a clear storage error, never a panic.

use std::io;

use openraft::RaftSnapshotBuilder;
use openraft::entry::RaftEntry;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;

use super::*;
use crate::raft::Storage;
use crate::raft::StorageOptions;
use crate::raft::StoreError;
use crate::raft::codec::CodecError;
use crate::raft::db;

fn open(dir: &std::path::Path) -> Storage {
    Storage::open(dir, &StorageOptions::default()).unwrap()
}

fn overwrite_log(storage: &Storage, index: u64, bytes: &[u8]) {
    let txn = storage.database().begin_write().unwrap();
    txn.open_table(db::LOG)
        .unwrap()
        .insert(index, bytes)
        .unwrap();
    txn.commit().unwrap();
}

fn overwrite_meta(
    storage: &Storage,
    table: redb::TableDefinition<&str, &[u8]>,
    key: &str,
    bytes: &[u8],
) {
    let txn = storage.database().begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, bytes).unwrap();
    txn.commit().unwrap();
}

fn assert_invalid_data(err: &io::Error, table: &str) {
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains(table), "{err}");
}

#[tokio::test]
async fn garbage_log_entry_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let mut log = storage.log_store();
    append(&mut log, (1..=3).map(|i| put_entry(1, i)).collect())
        .await
        .unwrap();

    overwrite_log(&storage, 2, &[0xff, 0x13, 0x37]);
    let err = log.try_get_log_entries(1..=3).await.unwrap_err();
    assert_invalid_data(&err, "raft_log");
    assert_eq!(
        err.to_string(),
        "corrupted record in table raft_log at key 2"
    );

    // The right version byte in front of bytes of another type.
    let mut wrong_type = vec![crate::raft::codec::FORMAT_VERSION];
    wrong_type.extend_from_slice(&[200, 200, 200, 200]);
    overwrite_log(&storage, 3, &wrong_type);
    let err = log.get_log_state().await.unwrap_err();
    assert_invalid_data(&err, "raft_log");
}

#[tokio::test]
async fn wrong_version_byte_in_meta_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let mut log = storage.log_store();
    log.save_vote(&vote(3)).await.unwrap();

    let mut bytes = crate::raft::codec::encode(&vote(3)).unwrap();
    bytes[0] = 0x7f;
    overwrite_meta(&storage, db::LOG_META, "vote", &bytes);
    let err = log.read_vote().await.unwrap_err();
    assert_invalid_data(&err, "raft_log_meta");

    overwrite_meta(&storage, db::SM_META, "revision", &[]);
    match storage.reader().revision() {
        Err(StoreError::Corrupted {
            table: "sm_meta",
            key,
            source: CodecError::Empty,
        }) => assert_eq!(key, "revision"),
        other => panic!("expected a corrupted revision, got {other:?}"),
    }
    let err = storage.state_machine().applied_state().await;
    assert!(err.is_ok(), "applied state does not read the revision");
    overwrite_meta(&storage, db::SM_META, "last_applied", b"\x01garbage");
    let err = storage.state_machine().applied_state().await.unwrap_err();
    assert_invalid_data(&err, "sm_meta");
}

#[tokio::test]
async fn garbage_object_fails_reads_and_applies_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let mut sm = storage.state_machine();
    apply(&mut sm, vec![put_entry(1, 1)]).await.unwrap();

    let key = pod(1);
    let txn = storage.database().begin_write().unwrap();
    txn.open_table(db::OBJECTS)
        .unwrap()
        .insert(
            (key.kind.as_str(), key.namespace.as_str(), key.name.as_str()),
            &[1u8, 0xff][..],
        )
        .unwrap();
    txn.commit().unwrap();

    let err = storage.reader().get(&key).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupted {
                table: "objects",
                ..
            }
        ),
        "{err}"
    );
    assert!(storage.reader().list("Pod", None).is_err());
    // Rewriting the object has to read it first: an error, and nothing applied.
    let rewrite = crate::raft::Entry::new_normal(
        log_id(1, 2),
        crate::raft::Request::Put {
            key: key.clone(),
            value: vec![],
            expected: None,
        },
    );
    let err = apply(&mut sm, vec![rewrite]).await.unwrap_err();
    assert_invalid_data(&err, "objects");
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1)));
    // A snapshot build meets it too: the record's own error, and no snapshot file.
    let err = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap_err();
    assert_invalid_data(&err, "objects");
    assert!(!dir.path().join("snapshot.bin").exists());
}

#[tokio::test]
async fn garbage_snapshot_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let mut sm = storage.state_machine();

    let meta = crate::raft::SnapshotMeta {
        last_log_id: Some(log_id(1, 5)),
        last_membership: Default::default(),
    };
    let err = sm.install_snapshot(&meta, vec![1, 2, 3]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(
        sm.get_current_snapshot().await.unwrap().is_none(),
        "nothing installed"
    );

    std::fs::write(dir.path().join("snapshot.bin"), b"\x01\xff\xff").unwrap();
    let err = sm.get_current_snapshot().await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
}
