//! Power cuts: nothing acknowledged is lost, and the store reopens consistent.
//!
//! Method: the store runs on a [`PowerCutDisk`], which keeps redb's writes in a page cache
//! apart from what has been synced, and cuts the power after the N-th write, resize or sync
//! (so cuts land inside commits too). A workload of votes, appends, a truncation, committed
//! ids, applies and purges runs until the cut; an operation counts as acknowledged only if it returned
//! while the power was still on. The synced image is then opened as a new store and
//! checked. Every N from 0 to the length of the whole workload is tried.
//!
//! Appends return before their sync (the flush callback reports it), so a second workload
//! queues appends without waiting, as openraft does, and cuts among them.
//!
//! A `kill -9` keeps the page cache, so it would prove nothing about fsync; this does.

use std::collections::BTreeSet;

use openraft::Membership;
use openraft::StorageHelper;
use openraft::entry::RaftEntry;
use openraft::storage::RaftLogReader;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;

use super::disk::PowerCutDisk;
use super::*;
use crate::raft::ApplyDurability;
use crate::raft::Storage;
use crate::raft::StorageOptions;

const ENTRIES: u64 = 24;
/// The index at which the workload appends an entry, truncates it and appends another.
const OVERWRITTEN: u64 = 18;

fn term_of(index: u64) -> u64 {
    1 + index / 8
}

/// What the workload saw acknowledged before the power went.
#[derive(Debug, Default, Clone)]
struct Acked {
    vote_term: u64,
    last_appended: u64,
    last_applied: u64,
    purged: u64,
}

async fn run_workload(storage: &Storage, disk: &PowerCutDisk) -> Acked {
    let mut acked = Acked::default();
    let mut log = storage.log_store();
    let mut sm = storage.state_machine();
    // As `Raft::initialize` does: the first entry, at index 0, is the membership.
    let membership = Membership::new_with_defaults(vec![BTreeSet::from([1])], []);
    let first = Entry::new_membership(log_id(1, 0), membership);
    let _ = log.save_vote(&vote(1)).await;
    let _ = append(&mut log, vec![first.clone()]).await;
    let _ = log.save_committed(Some(log_id(1, 0))).await;
    let _ = apply(&mut sm, vec![first]).await;
    if !disk.powered() {
        return acked;
    }
    acked.vote_term = 1;
    for index in 1..=ENTRIES {
        let term = term_of(index);
        let done = log.save_vote(&vote(term)).await.is_ok();
        if done && disk.powered() {
            acked.vote_term = term;
        }
        if index == OVERWRITTEN {
            // A deposed leader's entry, then the new leader's truncation over it.
            let doomed = Entry::new_blank(log_id(term, index));
            let _ = append(&mut log, vec![doomed]).await;
            let _ = log
                .truncate_after(Some(log_id(term_of(index - 1), index - 1)))
                .await;
        }
        let done = append(&mut log, vec![put_entry(term, index)]).await.is_ok();
        if done && disk.powered() {
            acked.last_appended = index;
        }
        log.save_committed(Some(log_id(term, index))).await.unwrap();
        let done = apply(&mut sm, vec![put_entry(term, index)]).await.is_ok();
        if done && disk.powered() {
            acked.last_applied = index;
        }
        if index % 10 == 0 {
            let upto = index - 5;
            let done = log.purge(log_id(term_of(upto), upto)).await.is_ok();
            if done && disk.powered() {
                acked.purged = upto;
            }
        }
        if !disk.powered() {
            break;
        }
    }
    acked
}

fn options(apply_durability: ApplyDurability) -> StorageOptions {
    StorageOptions {
        apply_durability,
        ..StorageOptions::default()
    }
}

async fn open_fresh(
    snapshot_dir: &std::path::Path,
    durability: ApplyDurability,
) -> (PowerCutDisk, Storage) {
    let disk = PowerCutDisk::with_image(Vec::new());
    let storage =
        Storage::open_with_backend(disk.backend(), snapshot_dir, &options(durability)).unwrap();
    (disk, storage)
}

/// Reopens the surviving image and checks every promise; `cut_after` names the case.
async fn check_survivor(
    image: Vec<u8>,
    acked: &Acked,
    snapshot_dir: &std::path::Path,
    durability: ApplyDurability,
    cut_after: u64,
) {
    let disk = PowerCutDisk::with_image(image);
    let storage = Storage::open_with_backend(disk.backend(), snapshot_dir, &options(durability))
        .unwrap_or_else(|e| panic!("cut after {cut_after} ops: store does not reopen: {e}"));
    let mut log = storage.log_store();
    let mut sm = storage.state_machine();
    let reader = storage.reader();

    // The log: every acknowledged append and purge, no hole, the bytes that were written.
    let state = log.get_log_state().await.unwrap();
    let last = state.last_log_id.map_or(0, |id| id.index);
    let purged = state.last_purged_log_id.map_or(0, |id| id.index);
    assert!(
        last >= acked.last_appended,
        "cut after {cut_after}: append lost ({last} < {acked:?})"
    );
    assert!(
        purged >= acked.purged,
        "cut after {cut_after}: purge lost ({purged} < {acked:?})"
    );
    let entries = log
        .get_log_reader()
        .await
        .try_get_log_entries(purged + 1..=last)
        .await
        .unwrap();
    assert_eq!(
        entries.len() as u64,
        last - purged,
        "cut after {cut_after}: log has a hole"
    );
    for entry in &entries {
        let index = entry.index();
        if index == OVERWRITTEN && acked.last_appended < OVERWRITTEN {
            continue; // Either entry may be there: neither was acknowledged over the other.
        }
        assert_eq!(
            entry,
            &put_entry(term_of(index), index),
            "cut after {cut_after}"
        );
    }

    // The vote.
    let saved = log.get_log_reader().await.read_vote().await.unwrap();
    if acked.vote_term > 0 {
        assert!(
            saved >= Some(vote(acked.vote_term)),
            "cut after {cut_after}: vote lost ({saved:?}, {acked:?})"
        );
    }

    // The state machine: at one log position, never ahead of the durable log, never behind
    // what a durable purge needed, with exactly the writes up to that position.
    let (applied, _) = sm.applied_state().await.unwrap();
    let applied = applied.map_or(0, |id| id.index);
    assert!(
        applied <= last,
        "cut after {cut_after}: state machine ahead of the log"
    );
    assert!(
        applied >= purged,
        "cut after {cut_after}: purged entries never applied"
    );
    if durability == ApplyDurability::Immediate {
        assert!(
            applied >= acked.last_applied,
            "cut after {cut_after}: apply lost ({applied}, {acked:?})"
        );
    }
    let committed = log.read_committed().await.unwrap().map_or(0, |id| id.index);
    assert!(
        applied <= committed && committed <= last,
        "cut after {cut_after}: committed {committed}"
    );
    let listing = reader.list("Pod", Some("default")).unwrap();
    assert_eq!(
        listing.revision, applied,
        "cut after {cut_after}: revision and last applied disagree"
    );
    let mut names: Vec<u64> = listing
        .objects
        .iter()
        .map(|(key, object)| {
            let index = u64::from_le_bytes(object.value.as_slice().try_into().unwrap());
            assert_eq!(key, &pod(index));
            assert_eq!(object.mod_revision, index);
            index
        })
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        (1..=applied).collect::<Vec<_>>(),
        "cut after {cut_after}: partial apply"
    );

    // What openraft does on start: re-apply up to the recovered `committed`.
    StorageHelper::new(&mut log, &mut sm)
        .with_id(1)
        .get_initial_state()
        .await
        .unwrap_or_else(|e| panic!("cut after {cut_after}: openraft cannot start: {e}"));
    let (recovered, _) = sm.applied_state().await.unwrap();
    assert_eq!(recovered.map_or(0, |id| id.index), committed.max(applied));

    // And what the group does at its next commit: apply the durable log. Every acknowledged
    // write is then there again.
    let from = committed.max(applied) + 1;
    let rest = log
        .get_log_reader()
        .await
        .try_get_log_entries(from..=last)
        .await
        .unwrap();
    apply(&mut sm, rest).await.unwrap();
    let revision = reader.revision().unwrap();
    assert!(
        revision >= acked.last_applied,
        "cut after {cut_after}: acknowledged write lost"
    );
}

/// Runs the workload once whole, then once per possible cut point.
async fn cut_everywhere(durability: ApplyDurability) {
    let snapshot_dir = tempfile::tempdir().unwrap();
    let (disk, storage) = open_fresh(snapshot_dir.path(), durability).await;
    let start = disk.ops();
    let acked = run_workload(&storage, &disk).await;
    let total = disk.ops() - start;
    assert_eq!(acked.last_applied, ENTRIES);
    println!(
        "power-cut workload ({durability:?} applies): {total} disk operations, a cut tried after each"
    );
    disk.cut();
    check_survivor(
        disk.synced_image(),
        &acked,
        snapshot_dir.path(),
        durability,
        total,
    )
    .await;
    drop(storage);

    for cut_after in 0..=total {
        // Its own snapshot directory: openraft's start-up builds a snapshot when the log has
        // been purged, and one case's snapshot must not leak into the next.
        let snapshot_dir = tempfile::tempdir().unwrap();
        let (disk, storage) = open_fresh(snapshot_dir.path(), durability).await;
        disk.cut_after(cut_after);
        let acked = run_workload(&storage, &disk).await;
        disk.cut();
        check_survivor(
            disk.synced_image(),
            &acked,
            snapshot_dir.path(),
            durability,
            cut_after,
        )
        .await;
        drop(storage);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_at_any_point_loses_nothing_acknowledged() {
    cut_everywhere(ApplyDurability::Deferred).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_with_immediate_applies_keeps_every_applied_entry() {
    cut_everywhere(ApplyDurability::Immediate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_writes_out_deferred_applies() {
    let snapshot_dir = tempfile::tempdir().unwrap();
    let (disk, storage) = open_fresh(snapshot_dir.path(), ApplyDurability::Deferred).await;
    let acked = run_workload(&storage, &disk).await;
    // The last applies were deferred commits; a normal close must write them out.
    drop(storage);
    let disk = PowerCutDisk::with_image(disk.synced_image());
    let storage = Storage::open_with_backend(
        disk.backend(),
        snapshot_dir.path(),
        &StorageOptions::default(),
    )
    .unwrap();
    let (applied, _) = storage.state_machine().applied_state().await.unwrap();
    assert_eq!(applied.map(|id| id.index), Some(acked.last_applied));
    assert_eq!(storage.reader().revision().unwrap(), ENTRIES);
}

/// Appends one-entry batches from `first` without waiting for any flush, as openraft does
/// while a sync runs, then waits for the callbacks in order; returns the highest index
/// reported flushed while the power was on.
async fn pipelined_appends(
    log: &mut crate::raft::LogStore,
    disk: &PowerCutDisk,
    first: u64,
    count: u64,
) -> u64 {
    let mut pending = Vec::new();
    for index in first..first + count {
        let (tx, rx) = crate::raft::TypeConfig::oneshot();
        let flushed = openraft::storage::IOFlushed::signal(tx);
        if log
            .append(vec![put_entry(1, index)], flushed)
            .await
            .is_err()
        {
            break;
        }
        pending.push((index, rx));
    }
    let mut acked = first - 1;
    for (index, rx) in pending {
        match rx.await {
            Ok(Ok(())) if disk.powered() => acked = index,
            _ => break,
        }
    }
    acked
}

async fn pipelined_workload(storage: &Storage, disk: &PowerCutDisk, count: u64) -> u64 {
    let mut log = storage.log_store();
    if log.save_vote(&vote(1)).await.is_err() || !disk.powered() {
        return 0;
    }
    let half = count / 2;
    let acked = pipelined_appends(&mut log, disk, 1, half).await;
    if acked < half {
        return acked;
    }
    pipelined_appends(&mut log, disk, half + 1, count - half).await
}

/// Appends queued while a sync runs share the next one; a cut anywhere among them loses
/// no entry whose callback had reported it flushed, and leaves no hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_among_pipelined_appends_loses_no_flushed_entry() {
    const COUNT: u64 = 16;
    let snapshot_dir = tempfile::tempdir().unwrap();
    let (disk, storage) = open_fresh(snapshot_dir.path(), ApplyDurability::Deferred).await;
    let start = disk.ops();
    assert_eq!(pipelined_workload(&storage, &disk, COUNT).await, COUNT);
    // Batching depends on timing, so the number of operations varies a little between
    // runs; twice this run's count covers every cut of any run.
    let total = (disk.ops() - start) * 2;
    drop(storage);

    for cut_after in 0..=total {
        let snapshot_dir = tempfile::tempdir().unwrap();
        let (disk, storage) = open_fresh(snapshot_dir.path(), ApplyDurability::Deferred).await;
        disk.cut_after(cut_after);
        let acked = pipelined_workload(&storage, &disk, COUNT).await;
        disk.cut();
        let survivor = PowerCutDisk::with_image(disk.synced_image());
        drop(storage);
        let storage = Storage::open_with_backend(
            survivor.backend(),
            snapshot_dir.path(),
            &options(ApplyDurability::Deferred),
        )
        .unwrap_or_else(|e| panic!("cut after {cut_after} ops: store does not reopen: {e}"));
        let mut log = storage.log_store();
        let last = log
            .get_log_state()
            .await
            .unwrap()
            .last_log_id
            .map_or(0, |id| id.index);
        assert!(
            last >= acked,
            "cut after {cut_after}: flushed append lost ({last} < {acked})"
        );
        let entries = log
            .get_log_reader()
            .await
            .try_get_log_entries(1..=last)
            .await
            .unwrap();
        assert_eq!(entries.len() as u64, last, "cut after {cut_after}: hole");
        for entry in &entries {
            assert_eq!(entry, &put_entry(1, entry.index()), "cut after {cut_after}");
        }
    }
}
