//! The Raft log and vote, in redb.
//!
//! Owns the `raft_log` and `raft_log_meta` tables: entries, the vote, the committed log id and
//! the last purged log id. Does not own the state machine (see `state_machine`), nor the
//! durable commit that completes an append (`flush`).
//!
//! ```text
//! save_vote / truncate_after / purge ─► one durable redb commit each ─► return
//! append ─► entries and callback to the flusher (memory) ─► return
//!                 └─► flusher: write, durable commit ─► io_completed
//! save_committed ─► memory ─► written by the next apply, in its transaction
//! reads ─► entries in memory + the log table
//! ```
//!
//! What openraft requires, and how: the vote, truncations and purges are durable when they
//! return. Appended entries are readable when `append` returns (from the flusher's memory
//! until their commit, then from the table) and durable when the callback runs (the
//! flusher calls it only after the commit that wrote them; see `flush`). `append` and
//! `save_committed` run on openraft's core task, so neither waits for redb's write lock:
//! the committed id is kept in a [`CommittedSlot`] and written by the state machine's next
//! apply (openraft applies right after it saves), deferred like the apply, as openraft
//! allows (losing it only delays re-applying entries after a restart). Writes that would
//! change nothing (the same vote, a truncation or purge with nothing to remove) write
//! nothing.

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;

use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use redb::Database;
use redb::ReadableDatabase;
use redb::ReadableTable;

use super::codec;
use super::db;
use super::db::LOG;
use super::db::LOG_META;
use super::error::StoreError;
use super::flush::LogFlusher;
use super::types::Entry;
use super::types::LogId;
use super::types::TypeConfig;
use super::types::Vote;

/// The committed log id openraft saved last, until an apply writes it. One per database.
#[derive(Debug, Default)]
pub(crate) struct CommittedSlot {
    saved: Mutex<Option<Option<LogId>>>,
}

impl CommittedSlot {
    fn save(&self, committed: Option<LogId>) {
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(committed);
    }

    /// What was saved since the store opened, if anything: `Some(None)` is a saved "none".
    pub(crate) fn saved(&self) -> Option<Option<LogId>> {
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The Raft log storage. Cheap to clone: clones share one database, and a clone is also the
/// log reader handed to replication tasks.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<Database>,
    flusher: Arc<LogFlusher>,
    committed: Arc<CommittedSlot>,
}

impl LogStore {
    pub(crate) fn new(
        db: Arc<Database>,
        flusher: Arc<LogFlusher>,
        committed: Arc<CommittedSlot>,
    ) -> Self {
        Self {
            db,
            flusher,
            committed,
        }
    }

    fn read_entries(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry>, StoreError> {
        if range_is_empty(start, end) {
            return Ok(Vec::new());
        }
        // Memory first, then the table: see `flush` for why nothing falls in between.
        let in_memory = self.flusher.read(start, end);
        let txn = self.db.begin_read().map_err(StoreError::Begin)?;
        let table = txn.open_table(LOG).map_err(db::open_table(db::LOG_NAME))?;
        let mut entries: Vec<Entry> = Vec::new();
        for item in table
            .range::<u64>((start, end))
            .map_err(db::access(db::LOG_NAME))?
        {
            let (key, value) = item.map_err(db::access(db::LOG_NAME))?;
            let index = key.value();
            if let Some(previous) = entries.last().map(|e| e.index())
                && previous + 1 != index
            {
                return Err(StoreError::LogHole {
                    previous,
                    found: index,
                });
            }
            entries.push(decode_entry(index, value.value())?);
        }
        for entry in in_memory {
            let index = entry.index();
            match entries.last().map(|e| e.index()) {
                // Committed since the copy was taken: the table's copy is the same entry.
                Some(previous) if index <= previous => continue,
                Some(previous) if previous + 1 != index => {
                    return Err(StoreError::LogHole {
                        previous,
                        found: index,
                    });
                }
                _ => entries.push(entry),
            }
        }
        Ok(entries)
    }

    fn log_state(&self) -> Result<LogState<TypeConfig>, StoreError> {
        let last_in_memory = self.flusher.last();
        let txn = self.db.begin_read().map_err(StoreError::Begin)?;
        let meta = txn
            .open_table(LOG_META)
            .map_err(db::open_table(db::LOG_META_NAME))?;
        let last_purged_log_id = db::read_meta(&meta, &db::LAST_PURGED)?;
        let log = txn.open_table(LOG).map_err(db::open_table(db::LOG_NAME))?;
        let last = match log.last().map_err(db::access(db::LOG_NAME))? {
            Some((key, value)) => Some(decode_entry(key.value(), value.value())?.log_id()),
            None => None,
        };
        Ok(LogState {
            last_log_id: last_in_memory.or(last).or(last_purged_log_id),
            last_purged_log_id,
        })
    }
}

fn decode_entry(index: u64, bytes: &[u8]) -> Result<Entry, StoreError> {
    let entry: Entry = codec::decode(bytes).map_err(|source| StoreError::Corrupted {
        table: db::LOG_NAME,
        key: index.to_string(),
        source,
    })?;
    if entry.index() != index {
        return Err(StoreError::LogIndexMismatch {
            index,
            found: entry.index(),
        });
    }
    Ok(entry)
}

fn range_is_empty(start: Bound<u64>, end: Bound<u64>) -> bool {
    let first = match start {
        Bound::Included(i) => i,
        Bound::Excluded(i) => match i.checked_add(1) {
            Some(i) => i,
            None => return true,
        },
        Bound::Unbounded => 0,
    };
    match end {
        Bound::Included(i) => first > i,
        Bound::Excluded(i) => first >= i,
        Bound::Unbounded => false,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.read_entries(range.start_bound().cloned(), range.end_bound().cloned())?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(db::read_meta_now(&self.db, &db::VOTE)?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        Ok(self.log_state()?)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let vote = *vote;
        db::blocking(&self.db, move |db| {
            let txn = db::begin_durable(db)?;
            {
                let mut meta = txn
                    .open_table(LOG_META)
                    .map_err(db::open_table(db::LOG_META_NAME))?;
                if db::read_meta(&meta, &db::VOTE)?.as_ref() == Some(&vote) {
                    return Ok(());
                }
                db::write_meta(&mut meta, &db::VOTE, &vote)?;
            }
            txn.commit().map_err(StoreError::Commit)
        })
        .await?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.committed.save(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        match self.committed.saved() {
            Some(committed) => Ok(committed),
            None => Ok(db::read_meta_now(&self.db, &db::COMMITTED)?),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            self.flusher.after_queued(&self.db, callback);
        } else {
            self.flusher.append(&self.db, entries, callback);
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let first_removed = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        let flusher = Arc::clone(&self.flusher);
        db::blocking(&self.db, move |db| {
            let txn = db::begin_durable(db)?;
            // Holding the write lock, as the flusher does when it copies: see `flush`.
            flusher.truncate_from(first_removed);
            {
                let mut log = txn.open_table(LOG).map_err(db::open_table(db::LOG_NAME))?;
                let last = log
                    .last()
                    .map_err(db::access(db::LOG_NAME))?
                    .map(|(k, _)| k.value());
                if last.is_none_or(|last| last < first_removed) {
                    return Ok(());
                }
                log.retain_in(first_removed.., |_, _| false)
                    .map_err(db::access(db::LOG_NAME))?;
            }
            txn.commit().map_err(StoreError::Commit)
        })
        .await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let flusher = Arc::clone(&self.flusher);
        db::blocking(&self.db, move |db| {
            let txn = db::begin_durable(db)?;
            flusher.purge_up_to(log_id.index);
            {
                let mut meta = txn
                    .open_table(LOG_META)
                    .map_err(db::open_table(db::LOG_META_NAME))?;
                if db::read_meta(&meta, &db::LAST_PURGED)?.is_some_and(|purged| purged >= log_id) {
                    return Ok(());
                }
                // In the same transaction as the deletion: a restart that found the entries gone
                // but `last_purged` older would see a hole at the start of the log.
                db::write_meta(&mut meta, &db::LAST_PURGED, &log_id)?;
                let mut log = txn.open_table(LOG).map_err(db::open_table(db::LOG_NAME))?;
                log.retain_in(..=log_id.index, |_, _| false)
                    .map_err(db::access(db::LOG_NAME))?;
            }
            txn.commit().map_err(StoreError::Commit)
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ranges_are_recognised() {
        assert!(range_is_empty(Bound::Included(5), Bound::Excluded(5)));
        assert!(range_is_empty(Bound::Included(6), Bound::Included(5)));
        assert!(range_is_empty(Bound::Excluded(u64::MAX), Bound::Unbounded));
        assert!(!range_is_empty(Bound::Included(5), Bound::Included(5)));
        assert!(!range_is_empty(Bound::Unbounded, Bound::Unbounded));
    }
}
