//! Group commit for log appends: the fsync that makes appended entries durable, taken off
//! `append`'s path and shared by every append that queued while the previous one ran.
//!
//! Owns the queue of flush callbacks and the task that empties it. Does not own writing the
//! entries (`log_store::append` commits them, deferred, before it queues its callback) nor
//! any other durable write (votes, truncations and purges commit durably themselves).
//!
//! ```text
//! append ─► deferred commit (readable) ─► queue callback ─► return
//!                                             │
//!   flush task: take redb's write lock ─► take the queue ─► durable commit (fsync)
//!               ─► io_completed(Ok) for each taken callback, in order ─► again, or stop
//! ```
//!
//! # Why this is durable
//!
//! A redb commit with `Durability::Immediate` makes every commit before it durable as well,
//! deferred ones included. A callback is queued only after its entries' deferred commit has
//! returned, and the task takes the queue only after it holds redb's write lock, which it
//! cannot get while any commit is under way. So every callback taken was queued after its
//! entries were committed, and the durable commit that follows covers them; a callback is
//! called only after that commit returned. A power cut before then loses entries whose
//! callback was never called, which openraft treats as never flushed (see
//! `RaftLogStorage::append`: readable on return, durable on callback).
//!
//! Callbacks are called in the order their appends ran. openraft keeps the highest
//! flushed IO as a watermark, and only in-order completion keeps a lower one from standing
//! for entries not yet synced.
//!
//! # Why a task and not a wait
//!
//! With `append` waiting for its own fsync, the leader sent AppendEntries only after its
//! sync returned, so leader sync, follower sync and apply ran one after the other. Now the
//! leader replicates while its sync runs, and whatever openraft appends during one sync
//! shares the next (group commit). The task runs on tokio's blocking pool and stops when
//! the queue is empty, so an idle store holds no thread and no handle on the database.

use std::io;
use std::mem;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;

use openraft::storage::IOFlushed;
use redb::Database;

use super::db;
use super::error::StoreError;
use super::types::TypeConfig;

/// The queue of appends waiting for a durable commit. One per database.
#[derive(Debug, Default)]
pub(crate) struct LogFlusher {
    state: Mutex<FlushState>,
}

#[derive(Default)]
struct FlushState {
    waiting: Vec<IOFlushed<TypeConfig>>,
    /// Whether a flush task is running (it empties `waiting` before it stops).
    running: bool,
}

impl std::fmt::Debug for FlushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushState")
            .field("waiting", &self.waiting.len())
            .field("running", &self.running)
            .finish()
    }
}

impl LogFlusher {
    /// Calls `callback` once a durable commit has followed. Call it only after the commit
    /// of the entries it stands for has returned.
    pub(crate) fn after_next_sync(
        self: &Arc<Self>,
        db: &Arc<Database>,
        callback: IOFlushed<TypeConfig>,
    ) {
        let start = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.waiting.push(callback);
            !mem::replace(&mut state.running, true)
        };
        if start {
            let flusher = Arc::clone(self);
            let db = Arc::clone(db);
            // Detached: the task reports through the callbacks, and stops by itself.
            drop(tokio::task::spawn_blocking(move || flusher.run(&db)));
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
        let idle = !self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running;
        // `running` is cleared only with the queue empty, and only appends (which the core
        // runs one at a time) queue: idle stays idle until this returns.
        if idle {
            callback.io_completed(Ok(()));
        } else {
            self.after_next_sync(db, callback);
        }
    }

    /// Commits durably and calls back, until nothing waits.
    fn run(&self, db: &Database) {
        loop {
            // The write lock first, then the queue: see the module doc.
            let txn = db::begin_durable(db);
            let batch = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                mem::take(&mut state.waiting)
            };
            // An empty transaction: its commit writes the header and syncs, which is all
            // that the deferred commits before it need.
            let result = txn.and_then(|txn| txn.commit().map_err(StoreError::Commit));
            complete(batch, &result);
        }
    }
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
