//! Reopening, and what reaches the disk: a durable append costs one commit, and writes that
//! change nothing cost nothing.

use std::sync::Arc;
use std::time::Instant;

use openraft::RaftSnapshotBuilder;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::type_config::TypeConfigExt;

use super::disk::CountingBackend;
use super::disk::DiskCounters;
use super::*;
use crate::raft::ApplyDurability;
use crate::raft::Storage;
use crate::raft::StorageOptions;
use crate::raft::TypeConfig;

fn open_counted(dir: &std::path::Path) -> (Storage, Arc<DiskCounters>) {
    open_counted_with(dir, ApplyDurability::Deferred)
}

fn open_counted_with(
    dir: &std::path::Path,
    apply_durability: ApplyDurability,
) -> (Storage, Arc<DiskCounters>) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(crate::raft::DATABASE_FILE))
        .unwrap();
    let counters = Arc::new(DiskCounters::default());
    let backend = CountingBackend {
        inner: redb::backends::FileBackend::new(file).unwrap(),
        counters: Arc::clone(&counters),
    };
    let options = StorageOptions {
        apply_durability,
        ..StorageOptions::default()
    };
    let storage = Storage::open_with_backend(backend, dir, &options).unwrap();
    (storage, counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = {
        let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
        let mut log = storage.log_store();
        let mut sm = storage.state_machine();
        log.save_vote(&vote(2)).await.unwrap();
        let entries: Vec<_> = (1..=6).map(|i| put_entry(2, i)).collect();
        append(&mut log, entries.clone()).await.unwrap();
        log.save_committed(Some(log_id(2, 5))).await.unwrap();
        apply(&mut sm, entries[..5].to_vec()).await.unwrap();
        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        log.purge(log_id(2, 2)).await.unwrap();
        snapshot
    };

    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    let mut log = storage.log_store();
    let mut sm = storage.state_machine();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote(2)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 5)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 6)));
    let entries = log.try_get_log_entries(3..=6).await.unwrap();
    assert_eq!(
        entries,
        (3..=6).map(|i| put_entry(2, i)).collect::<Vec<_>>()
    );
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(2, 5)));
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
    assert_eq!(current.snapshot, snapshot.snapshot);
    let listing = storage.reader().list("Pod", None).unwrap();
    assert_eq!(listing.revision, 5);
    assert_eq!(listing.objects.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_change_nothing_touch_no_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, counters) = open_counted(dir.path());
    let mut log = storage.log_store();
    let mut sm = storage.state_machine();
    log.save_vote(&vote(1)).await.unwrap();
    append(&mut log, (1..=4).map(|i| put_entry(1, i)).collect())
        .await
        .unwrap();
    log.save_committed(Some(log_id(1, 4))).await.unwrap();
    log.purge(log_id(1, 1)).await.unwrap();

    let before = counters.snapshot();
    log.save_vote(&vote(1)).await.unwrap();
    append(&mut log, vec![]).await.unwrap();
    log.save_committed(Some(log_id(1, 4))).await.unwrap();
    log.truncate_after(Some(log_id(1, 4))).await.unwrap();
    log.purge(log_id(1, 1)).await.unwrap();
    apply(&mut sm, vec![]).await.unwrap();
    assert_eq!(
        counters.snapshot(),
        before,
        "an unchanged store wrote to disk"
    );

    // An apply is a deferred commit: it reaches the disk with the next durable commit.
    apply(&mut sm, (1..=4).map(|i| put_entry(1, i)).collect())
        .await
        .unwrap();
    assert_eq!(counters.snapshot().1, before.1, "an apply synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_durable_append_is_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, counters) = open_counted(dir.path());
    let mut log = storage.log_store();
    let mut sm = storage.state_machine();
    const APPENDS: u64 = 50;

    let (bytes_before, syncs_before) = counters.snapshot();
    let started = Instant::now();
    for index in 1..=APPENDS {
        append(&mut log, vec![put_entry(1, index)]).await.unwrap();
    }
    let single = started.elapsed();
    let (bytes_after, syncs_after) = counters.snapshot();
    let syncs_per_append = (syncs_after - syncs_before) as f64 / APPENDS as f64;
    assert!(
        syncs_after - syncs_before >= APPENDS,
        "an append returned without a sync"
    );

    // The same writes applied, then appended in batches of ten: the applies ride on the
    // appends' commits.
    apply(&mut sm, (1..=APPENDS).map(|i| put_entry(1, i)).collect())
        .await
        .unwrap();
    let (batch_bytes_before, batch_syncs_before) = counters.snapshot();
    let started = Instant::now();
    for batch in 0..APPENDS / 10 {
        let first = APPENDS + 1 + batch * 10;
        append(
            &mut log,
            (first..first + 10).map(|i| put_entry(1, i)).collect(),
        )
        .await
        .unwrap();
    }
    let batched = started.elapsed();
    let (batch_bytes_after, batch_syncs_after) = counters.snapshot();

    println!(
        "durable append, 1 entry: {:.2} ms, {} bytes written, {:.1} syncs each; \
         10 entries: {:.2} ms, {} bytes, {:.1} syncs per batch",
        single.as_secs_f64() * 1e3 / APPENDS as f64,
        (bytes_after - bytes_before) / APPENDS,
        syncs_per_append,
        batched.as_secs_f64() * 1e3 / (APPENDS / 10) as f64,
        (batch_bytes_after - batch_bytes_before) / (APPENDS / 10),
        (batch_syncs_after - batch_syncs_before) as f64 / (APPENDS / 10) as f64,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_an_existing_store_adds_no_commit() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_counted(dir.path()));
    let (storage, counters) = open_counted(dir.path());
    let opened = counters.snapshot();
    drop(storage);
    println!(
        "reopen: {opened:?} (bytes, syncs) at open, {:?} after close",
        counters.snapshot()
    );
    // redb rewrites its header (a few hundred bytes, one sync) to mark the file open; a
    // commit, such as creating the tables again, would write whole 4 KiB pages.
    assert!(
        opened.0 < 4096 && opened.1 <= 1,
        "reopening committed something: {opened:?}"
    );
}

/// One client write as the leader's storage sees it: append one entry, save committed,
/// apply it. Prints the cost under both apply durabilities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_write_cost_under_both_apply_durabilities() {
    const WRITES: u64 = 50;
    for durability in [ApplyDurability::Deferred, ApplyDurability::Immediate] {
        let dir = tempfile::tempdir().unwrap();
        let (storage, counters) = open_counted_with(dir.path(), durability);
        let mut log = storage.log_store();
        let mut sm = storage.state_machine();
        let before = counters.snapshot();
        let started = Instant::now();
        for index in 1..=WRITES {
            append(&mut log, vec![put_entry(1, index)]).await.unwrap();
            log.save_committed(Some(log_id(1, index))).await.unwrap();
            apply(&mut sm, vec![put_entry(1, index)]).await.unwrap();
        }
        let elapsed = started.elapsed();
        let after = counters.snapshot();
        println!(
            "client write ({durability:?} applies): {:.2} ms, {} bytes written, {:.1} syncs each",
            elapsed.as_secs_f64() * 1e3 / WRITES as f64,
            (after.0 - before.0) / WRITES,
            (after.1 - before.1) as f64 / WRITES as f64,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_readable_before_their_commit_and_truncation_reaches_them() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    let mut log = storage.log_store();
    append(&mut log, vec![put_entry(1, 1)]).await.unwrap();

    // Another writer holds redb's lock: the appends below cannot reach the table yet.
    let held = storage.db.begin_write().unwrap();
    let (tx, mut flushed) = TypeConfig::oneshot();
    let entries: Vec<_> = (2..=4).map(|i| put_entry(1, i)).collect();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        log.append(entries.clone(), IOFlushed::signal(tx)),
    )
    .await
    .expect("append waited for redb's write lock")
    .unwrap();
    let read = log.try_get_log_entries(1..5).await.unwrap();
    assert_eq!(read.len(), 4);
    assert_eq!(read[1..], entries[..]);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 4)));
    assert!(flushed.try_recv().is_err(), "flushed before any commit");
    drop(held);
    flushed.await.unwrap().unwrap();

    // Entries from a deposed leader, truncated before they were written, stay gone.
    let held = storage.db.begin_write().unwrap();
    let (tx, flushed) = TypeConfig::oneshot();
    log.append(
        vec![put_entry(1, 5), put_entry(1, 6)],
        IOFlushed::signal(tx),
    )
    .await
    .unwrap();
    let truncate = {
        let mut log = log.clone();
        tokio::spawn(async move { log.truncate_after(Some(log_id(1, 4))).await })
    };
    drop(held);
    truncate.await.unwrap().unwrap();
    flushed.await.unwrap().unwrap();
    append(&mut log, vec![put_entry(2, 5)]).await.unwrap();
    let read = log.try_get_log_entries(1..10).await.unwrap();
    assert_eq!(read.last().map(|e| e.log_id()), Some(log_id(2, 5)));
    assert_eq!(read.len(), 5);
    drop(log);
    drop(storage);
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    let read = storage
        .log_store()
        .try_get_log_entries(1..10)
        .await
        .unwrap();
    assert_eq!(read.last().map(|e| e.log_id()), Some(log_id(2, 5)));
    assert_eq!(read.len(), 5);
}
