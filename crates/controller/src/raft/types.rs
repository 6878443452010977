//! The Raft type configuration and the application's requests and responses.
//!
//! Owns: what travels through the log (`Request`), what an apply answers (`Response`), the
//! identity of a controller (`NodeId`, `NodeInfo`) and the key of a stored object. Does not
//! own: what the stored bytes mean — resource types live in `proto`, and the state machine
//! keeps their encoded form opaque.
//!
//! ```text
//! client ─ Request ─► leader log ─► commit ─► apply ─► Response { revision | conflict }
//! ```

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

/// A controller's id in the Raft group.
pub type NodeId = u64;

/// What the group knows about a controller: enough to reach it and to name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The name in the controller's certificate.
    pub name: String,
    /// Where it listens, as `host:port`.
    pub address: String,
}

openraft::declare_raft_types!(
    /// The controller's Raft configuration.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = NodeInfo,
);

/// The id of one entry in the Raft log.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A Raft log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// The vote a node has cast or holds.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// The membership as of some log id.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// The metadata of a snapshot.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;

/// The key of a stored object. Ordered by kind, then namespace, then name, which is also the
/// order of a listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// The resource kind, such as `Pod`.
    pub kind: String,
    /// The namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    /// The object's name, unique within kind and namespace.
    pub name: String,
}

impl ObjectKey {
    /// A key from its three parts.
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// One write inside a [`Request::Batch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Create or replace an object.
    Put {
        key: ObjectKey,
        value: Vec<u8>,
        /// The `mod_revision` the object must have; `Some(0)` means it must not exist; `None`
        /// writes unconditionally.
        expected: Option<u64>,
    },
    /// Remove an object, which must exist.
    Delete {
        key: ObjectKey,
        /// The `mod_revision` the object must have; `None` deletes unconditionally.
        expected: Option<u64>,
    },
}

impl WriteOp {
    /// The key this write touches.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => key,
        }
    }

    /// The revision the caller expects the object to have, if any.
    pub fn expected(&self) -> Option<u64> {
        match self {
            Self::Put { expected, .. } | Self::Delete { expected, .. } => *expected,
        }
    }
}

/// A write to the replicated state, as it travels through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// One `Put`; see [`WriteOp::Put`].
    Put {
        key: ObjectKey,
        value: Vec<u8>,
        expected: Option<u64>,
    },
    /// One `Delete`; see [`WriteOp::Delete`].
    Delete {
        key: ObjectKey,
        expected: Option<u64>,
    },
    /// Several writes applied all together or not at all, under one new revision. Later
    /// writes see the effects of earlier ones.
    Batch(Vec<WriteOp>),
}

impl Request {
    /// The writes of this request, in order.
    pub fn into_ops(self) -> Vec<WriteOp> {
        match self {
            Self::Put {
                key,
                value,
                expected,
            } => vec![WriteOp::Put {
                key,
                value,
                expected,
            }],
            Self::Delete { key, expected } => vec![WriteOp::Delete { key, expected }],
            Self::Batch(ops) => ops,
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Put {
                key,
                value,
                expected,
            } => {
                write!(
                    f,
                    "put {key} ({} bytes, expected {expected:?})",
                    value.len()
                )
            }
            Self::Delete { key, expected } => write!(f, "delete {key} (expected {expected:?})"),
            Self::Batch(ops) => write!(f, "batch of {} writes", ops.len()),
        }
    }
}

/// What applying one log entry did. A rejected write is an answer, not a storage error: the
/// state is unchanged and `revision` is the cluster revision it was checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The writes were applied; every object they touched now has `mod_revision == revision`.
    Written { revision: u64 },
    /// The object's revision was not the expected one; nothing was written.
    Conflict {
        /// Which write of the request failed (0 for a single write).
        op_index: usize,
        key: ObjectKey,
        expected: u64,
        /// The object's `mod_revision`, 0 if it does not exist.
        current: u64,
        revision: u64,
    },
    /// A delete named an object that does not exist; nothing was written.
    NotFound {
        op_index: usize,
        key: ObjectKey,
        revision: u64,
    },
    /// The entry carried no writes (a blank or membership entry, or an empty batch).
    Unchanged { revision: u64 },
}

impl Response {
    /// The cluster revision after this entry.
    pub fn revision(&self) -> u64 {
        match self {
            Self::Written { revision }
            | Self::Conflict { revision, .. }
            | Self::NotFound { revision, .. }
            | Self::Unchanged { revision } => *revision,
        }
    }
}

/// What one applied log entry changed, as the state machine reports it on its feed
/// (see [`Storage::changes`](super::Storage::changes)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A write: every key it touched, all at `revision`.
    Changes { revision: u64, changes: Vec<Change> },
    /// The state was replaced wholesale (a snapshot was installed): history before
    /// `revision` no longer describes the state, and every watch must re-list.
    Reset { revision: u64 },
}

impl Applied {
    /// The cluster revision after this entry.
    pub fn revision(&self) -> u64 {
        match self {
            Applied::Changes { revision, .. } | Applied::Reset { revision } => *revision,
        }
    }
}

/// One key's change inside an [`Applied::Changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: ObjectKey,
    /// The object before the write; `None` if it was created.
    pub old: Option<super::StoredObject>,
    /// The object after the write; `None` if it was deleted.
    pub new: Option<super::StoredObject>,
}
