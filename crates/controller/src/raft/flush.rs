//! Group commit for log appends: appended entries wait in memory, and one task writes
//! everything queued in one durable redb commit, shared by every append that arrived
//! while the previous commit ran.
//!
//! Owns the entries appended but not yet on disk, the queue of flush callbacks, and the
//! task that empties both. Does not own reading the log (`log_store` merges these entries
//! with the table) nor any other durable write (votes, truncations and purges commit
//! durably themselves, and drop what they remove from here too).
//!
//! ```text
//! append ─► entries + callback into the queue ─► return (readable from memory)
//!                                   │
//!   flush task: take redb's write lock ─► copy the queue ─► write the entries, durable
//!               commit (fsync) ─► drop them from memory ─► io_completed(Ok) for each
//!               callback, in order ─► again, or stop
//! ```
//!
//! # Why this is durable and readable
//!
//! An append puts its entries and its callback into the queue under one lock, so the task
//! that takes a callback also takes its entries, and calls the callback only after the
//! commit that wrote them returned. A power cut before then loses entries whose callback
//! was never called, which openraft treats as never flushed (see `RaftLogStorage::append`:
//! readable on return, durable on callback).
//!
//! Entries leave memory only after their commit, and a reader copies the entries in memory
//! before it opens its read transaction: whatever is not in the copy was committed before
//! the transaction began, so a reader never misses an entry (it may see one in both places,
//! and keeps one). Truncations and purges take redb's write lock before they touch the
//! entries here, as the task does before it copies them, so none of them runs while a
//! commit of the task is being made.
//!
//! Callbacks are called in the order their appends ran. openraft keeps the highest
//! flushed IO as a watermark, and only in-order completion keeps a lower one from standing
//! for entries not yet synced.
//!
//! # Why memory, and a task
//!
//! openraft runs `append` (and `save_committed`) on its core task. An append that committed
//! to redb itself waited for redb's one write lock, held for the length of an fsync by the
//! previous flush or by an apply, and the core could do nothing else meanwhile: no
//! replication, no new client writes. Now an append touches no disk and no lock but the
//! queue's; the leader replicates while its sync runs, and whatever openraft appends during
//! one sync shares the next commit. The task runs on tokio's blocking pool and stops when
//! the queue is empty, so an idle store holds no thread and no handle on the database.

use std::collections::BTreeMap;
use std::io;
use std::mem;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::PoisonError;

use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use redb::Database;

use super::codec;
use super::db;
use super::db::LOG;
use super::error::StoreError;
use super::types::Entry;
use super::types::LogId;
use super::types::TypeConfig;

/// The entries appended but not yet durable, and the callbacks waiting for them. One per
/// database.
#[derive(Debug, Default)]
pub(crate) struct LogFlusher {
    state: Mutex<FlushState>,
}

#[derive(Default)]
struct FlushState {
    /// Appended entries not yet in the log table, by index, each with the number of the
    /// append that brought it.
    entries: BTreeMap<u64, (u64, Entry)>,
    /// Appends so far.
    appends: u64,
    waiting: Vec<IOFlushed<TypeConfig>>,
    /// Whether a flush task is running (it empties `waiting` before it stops).
    running: bool,
}

impl std::fmt::Debug for FlushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushState")
            .field("entries", &self.entries.len())
            .field("waiting", &self.waiting.len())
            .field("running", &self.running)
            .finish()
    }
}

impl LogFlusher {
    fn lock(&self) -> MutexGuard<'_, FlushState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `entries` readable from memory and calls `callback` once a durable commit has
    /// written them.
    pub(crate) fn append(
        self: &Arc<Self>,
        db: &Arc<Database>,
        entries: Vec<Entry>,
        callback: IOFlushed<TypeConfig>,
    ) {
        let start = {
            let mut state = self.lock();
            state.appends += 1;
            let append = state.appends;
            for entry in entries {
                state.entries.insert(entry.index(), (append, entry));
            }
            state.waiting.push(callback);
            !mem::replace(&mut state.running, true)
        };
        if start {
            let flusher = Arc::clone(self);
            let db = Arc::clone(db);
            // Detached: the task reports through the callbacks, and stops by itself.
            drop(tokio::task::spawn_blocking(move || flusher.run(db)));
        }
    }

    /// Calls `callback` once every callback queued before it has been called: for an append
    /// that wrote nothing, so that its completion never stands for an earlier append's
    /// entries before they are synced. With nothing queued it is called at once, and an
    /// append with nothing to write touches no disk.
    pub(crate) fn after_queued(
        self: &Arc<Self>,
        db: &Arc<Database>,
        callback: IOFlushed<TypeConfig>,
    ) {
        let idle = !self.lock().running;
        // `running` is cleared only with the queue empty, and only appends (which the core
        // runs one at a time) queue: idle stays idle until this returns.
        if idle {
            callback.io_completed(Ok(()));
        } else {
            self.append(db, Vec::new(), callback);
        }
    }

    /// Copies of the entries in memory within `(start, end)`. Call before opening the read
    /// transaction the rest of the range comes from (see the module doc).
    pub(crate) fn read(&self, start: Bound<u64>, end: Bound<u64>) -> Vec<Entry> {
        self.lock()
            .entries
            .range((start, end))
            .map(|(_, (_, entry))| entry.clone())
            .collect()
    }

    /// The last entry in memory, which is the last of the log when there is one.
    pub(crate) fn last(&self) -> Option<LogId> {
        self.lock()
            .entries
            .last_key_value()
            .map(|(_, (_, entry))| entry.log_id())
    }

    /// Drops the entries in memory from `first` on. Call holding redb's write lock (inside
    /// the truncation's write transaction).
    pub(crate) fn truncate_from(&self, first: u64) {
        drop(self.lock().entries.split_off(&first));
    }

    /// Drops the entries in memory up to `last`, inclusive. Call holding redb's write lock.
    pub(crate) fn purge_up_to(&self, last: u64) {
        let mut state = self.lock();
        match last.checked_add(1) {
            Some(first_kept) => state.entries = state.entries.split_off(&first_kept),
            None => state.entries.clear(),
        }
    }

    /// Writes and commits durably, and calls back, until nothing waits. Lets go of the
    /// database before the last callbacks run, so that whoever waits for them can close
    /// it.
    fn run(&self, db: Arc<Database>) {
        loop {
            // The write lock first, then the queue: see the module doc. Only this task
            // empties `waiting`, and it was not empty when the task started or looped.
            let txn = db::begin_durable(&db);
            let (batch, entries) = {
                let mut state = self.lock();
                let entries: Vec<(u64, Entry)> = state.entries.values().cloned().collect();
                (mem::take(&mut state.waiting), entries)
            };
            // Nothing in memory means every entry appended so far is in a durable commit
            // (entries leave memory only after theirs, and truncations commit durably):
            // the callbacks taken (appends of nothing, or of entries truncated since) need
            // no sync of their own.
            let result = match txn {
                Ok(txn) if entries.is_empty() => txn.abort().map_err(StoreError::Abort),
                txn => txn.and_then(|txn| write_entries(txn, &entries)),
            };
            let mut state = self.lock();
            if result.is_ok() {
                for (append, entry) in &entries {
                    // An entry appended again at the same index since the copy stays.
                    if state
                        .entries
                        .get(&entry.index())
                        .is_some_and(|(kept, _)| kept == append)
                    {
                        state.entries.remove(&entry.index());
                    }
                }
            }
            if state.waiting.is_empty() {
                // Done. The callbacks run under the lock, so a task started by the next
                // append cannot call its own before these.
                state.running = false;
                drop(db);
                complete(batch, &result);
                return;
            }
            drop(state);
            complete(batch, &result);
        }
    }
}

/// Writes `entries` into the log table and commits `txn`.
fn write_entries(txn: redb::WriteTransaction, entries: &[(u64, Entry)]) -> Result<(), StoreError> {
    {
        let mut log = txn.open_table(LOG).map_err(db::open_table(db::LOG_NAME))?;
        for (_, entry) in entries {
            let bytes = codec::encode(entry).map_err(|source| StoreError::Encode {
                table: db::LOG_NAME,
                source,
            })?;
            log.insert(entry.index(), bytes.as_slice())
                .map_err(db::access(db::LOG_NAME))?;
        }
    }
    txn.commit().map_err(StoreError::Commit)
}

fn complete(batch: Vec<IOFlushed<TypeConfig>>, result: &Result<(), StoreError>) {
    for callback in batch {
        // `io::Error` is not `Clone`: each callback gets its own, with the same text.
        let result = match result {
            Ok(()) => Ok(()),
            Err(err) => Err(io::Error::other(format!(
                "durable commit of appended entries: {err}"
            ))),
        };
        callback.io_completed(result);
    }
}
