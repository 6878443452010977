//! The controller group's Raft: storage in one redb file, the network over `wire`, and the
//! node that ties them together.
//!
//! Owns everything openraft-specific, so that an openraft upgrade touches this module only:
//! the type configuration, the log store (`RaftLogStorage`), the state machine
//! (`RaftStateMachine`), snapshots, reads of the state for the API, timings (`config`), the
//! messages between controllers (`message`), sending them (`network`), answering them
//! (`service`), and the node's lifecycle, membership changes and forwarding to the leader
//! (`node`). Does not own the wire server or certificates: the controller daemon serves
//! [`RaftService`] from its `wire::Handler` for calls that [`is_raft_call`] recognises.
//!
//! ```text
//!   RaftNode ── write / add_member / remove_member / read_barrier ─► leader (forwarded)
//!      │  openraft::Raft ──► Network ─► Peers (one wire::Client per controller) ─► QUIC
//!      │        ▲                                     RaftService ◄─ wire::Handler ◄┘
//!      │        └──────────────────────────────────────────┘
//!             openraft
//!        ┌───────┴────────┐
//!    LogStore        StateMachine ──► SnapshotBuilder ──► <dir>/snapshot.bin
//!        │                │                         StateReader (API reads)
//!        └──── Arc<redb::Database>: <dir>/raft.redb ────┘
//!      raft_log, raft_log_meta        objects, sm_meta
//! ```
//!
//! # One file, not two
//!
//! Log and state machine share one redb file. redb has one writer per file, so appends and
//! applies take turns; in exchange the file has a single order of commits, and that is what
//! lets applies skip their fsync. Log writes (`save_vote`, `truncate_after`, `purge`)
//! and `install_snapshot` commit with `Durability::Immediate`: one fsync each, before they
//! return. `append` hands its entries to the flusher (`flush`) and returns: they are read
//! from memory until one durable commit writes everything appended meanwhile, and their
//! flush callback follows that commit, so the leader replicates while its own fsync runs
//! and openraft's core never waits for redb's lock. `save_committed` keeps the id in memory
//! for the next apply to write. By default ([`ApplyDurability::Deferred`]) applies commit
//! with `Durability::None`: redb keeps them in memory and the next durable commit — usually
//! the flush of the next append, which pays for an fsync anyway — writes them out, or the
//! database's close does. After a power cut the state machine is therefore at some earlier
//! log position, never a mixture, never ahead of the durable log and never behind a durable
//! purge; openraft re-applies up to the recovered `committed` on start, and the rest comes
//! back with the group's next commit (a new leader commits a blank entry at once). Until
//! then a restarted node serves older reads: the node wiring should use
//! `Raft::wait_for_recovery` or linearizable reads. `tests/power_cut.rs` checks all of this
//! at every possible cut. [`ApplyDurability::Immediate`] makes applies durable on return,
//! for one more fsync per applied batch.
//!
//! Two files could not defer anything: with no order between their commits, an apply made
//! durable by nothing could be older or newer than the log after a cut, so both files
//! would fsync every client write, in exchange for applies running beside appends.
//!
//! # Disk writes
//!
//! One `append` is at most one durable commit (the entries, the changed B-tree pages up to
//! the roots, the header, and one fsync), shared with every append queued meanwhile.
//! Measured here (`tests/durability.rs`, a 2-core VM, each append waiting for its flush):
//! about 20 KiB written and 0.3–2 ms for a one-entry append, 27 KiB for a ten-entry batch
//! (openraft hands `append` a batch, and a batch is one commit). A whole client write
//! (append, save committed, apply) is one fsync and about 45 KiB with deferred applies,
//! against two fsyncs and 50 KiB with immediate ones. Nothing is written when nothing
//! changes: re-saving the same vote or committed id, an empty append or apply, a
//! truncation or purge with nothing to remove return without a commit, and opening an
//! existing store adds no commit (redb itself rewrites its header on open, and writes its
//! allocator state on close).
//!
//! # Records
//!
//! Every value is a version byte followed by postcard (`codec`); each table, and each key of
//! the meta tables (`db::MetaKey`), holds exactly one type. A record that does not decode is
//! a `StoreError::Corrupted` naming the table and key, never a panic.

mod apply;
mod backup;
mod codec;
pub mod config;
mod db;
mod error;
mod flush;
mod log_store;
pub mod message;
pub mod network;
pub mod node;
mod reader;
pub mod service;
mod snapshot;
mod state_machine;
mod types;

#[cfg(test)]
pub(crate) mod tests;

use std::path::Path;
use std::sync::Arc;

pub use apply::StoredObject;
pub use backup::ExportHead;
pub use backup::SeedError;
pub use backup::SeedState;
pub use backup::seed;
pub use codec::CodecError;
pub use config::Profile;
pub use config::RaftOptions;
pub use config::SnapshotLimits;
pub use error::StoreError;
pub use log_store::LogStore;
pub use message::RaftMessage;
pub use message::RemoteError;
pub use message::is_raft_call;
pub use network::CallError;
pub use network::Peers;
pub use node::Member;
pub use node::NodeConfig;
pub use node::NodeError;
pub use node::RaftNode;
pub use node::RaftStatus;
pub use reader::Listing;
pub use reader::StateReader;
pub use service::HeartbeatSink;
pub use service::RaftService;
pub use snapshot::Snapshot;
pub use snapshot::SnapshotBuilder;
pub use state_machine::StateMachine;
pub use types::Applied;
pub use types::Change;
pub use types::Entry;
pub use types::LogId;
pub use types::NodeId;
pub use types::NodeInfo;
pub use types::ObjectKey;
pub use types::Request;
pub use types::Response;
pub use types::SnapshotMeta;
pub use types::StoredMembership;
pub use types::TypeConfig;
pub use types::Vote;
pub use types::WriteOp;

/// The database file inside the storage directory.
pub const DATABASE_FILE: &str = "raft.redb";

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// redb's page cache, in bytes. redb's default is up to 1 GiB; a controller's state is
    /// small and the kernel's page cache holds the file anyway, so the default here is 8 MiB
    /// (32 MiB left members at 100+ MB of RSS after 30,000 writes on a 20 MB file).
    pub cache_size: usize,
    /// When applied entries reach the disk.
    pub apply_durability: ApplyDurability,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            cache_size: 8 * 1024 * 1024,
            apply_durability: ApplyDurability::Deferred,
        }
    }
}

/// When the state machine's commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyDurability {
    /// With the next durable commit of the file (usually the next append) or on close; no
    /// fsync of its own. After a power cut the state machine may be at an earlier log
    /// position, which openraft re-applies from the log. The default.
    Deferred,
    /// Before `apply` returns: one more fsync per batch of applied entries, and the state
    /// machine never goes back after a power cut.
    Immediate,
}

/// The opened storage: one database shared by the log store, the state machine and readers.
#[derive(Debug, Clone)]
pub struct Storage {
    db: Arc<redb::Database>,
    /// Shared by every log store handle: one queue, so callbacks complete in append order.
    flusher: Arc<flush::LogFlusher>,
    /// Shared by the log store (which saves it) and the state machine (which writes it).
    committed: Arc<log_store::CommittedSlot>,
    snapshot_files: Arc<snapshot::SnapshotFiles>,
    apply_durability: ApplyDurability,
    feed: tokio::sync::broadcast::Sender<Applied>,
}

/// How many applied entries the change feed holds for a slow receiver before it lags.
const FEED_CAPACITY: usize = 4096;

impl Storage {
    /// Opens (or creates) `dir/raft.redb`; the current snapshot lives next to it. redb locks
    /// the file: only one process opens a store.
    pub fn open(dir: &Path, options: &StorageOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let db = redb::Database::builder()
            .set_cache_size(options.cache_size)
            .create(dir.join(DATABASE_FILE))
            .map_err(StoreError::Open)?;
        Self::from_database(db, dir, options)
    }

    /// Opens a store on any redb backend; the snapshot file goes to `snapshot_dir`. For tests
    /// that need to control the disk (see the power-cut test).
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        snapshot_dir: &Path,
        options: &StorageOptions,
    ) -> Result<Self, StoreError> {
        let db = redb::Database::builder()
            .set_cache_size(options.cache_size)
            .create_with_backend(backend)
            .map_err(StoreError::Open)?;
        Self::from_database(db, snapshot_dir, options)
    }

    fn from_database(
        db: redb::Database,
        dir: &Path,
        options: &StorageOptions,
    ) -> Result<Self, StoreError> {
        db::ensure_tables(&db)?;
        Ok(Self {
            db: Arc::new(db),
            flusher: Arc::new(flush::LogFlusher::default()),
            committed: Arc::new(log_store::CommittedSlot::default()),
            snapshot_files: Arc::new(snapshot::SnapshotFiles::new(dir.to_path_buf())),
            apply_durability: options.apply_durability,
            feed: tokio::sync::broadcast::channel(FEED_CAPACITY).0,
        })
    }

    /// The Raft log store to hand to openraft.
    pub fn log_store(&self) -> LogStore {
        LogStore::new(
            Arc::clone(&self.db),
            Arc::clone(&self.flusher),
            Arc::clone(&self.committed),
        )
    }

    /// The state machine to hand to openraft.
    pub fn state_machine(&self) -> StateMachine {
        StateMachine::new(
            Arc::clone(&self.db),
            Arc::clone(&self.snapshot_files),
            self.apply_durability,
            self.feed.clone(),
            Arc::clone(&self.committed),
        )
    }

    /// The feed of what the state machine applies, in revision order, each sent after its
    /// transaction commits (so a read that follows sees it). Nothing is kept for a feed
    /// nobody subscribes to; a receiver that falls more than a few thousand entries behind
    /// sees `Lagged`.
    pub fn changes(&self) -> tokio::sync::broadcast::Sender<Applied> {
        self.feed.clone()
    }

    /// A read handle for the API.
    pub fn reader(&self) -> StateReader {
        StateReader::new(Arc::clone(&self.db))
    }

    /// Whether this is the last handle on the database (log store, state machine and readers
    /// all dropped): dropping it then closes the file before the drop returns.
    pub(crate) fn is_sole_handle(&self) -> bool {
        Arc::strong_count(&self.db) == 1
    }

    #[cfg(test)]
    pub(crate) fn database(&self) -> &redb::Database {
        &self.db
    }
}
