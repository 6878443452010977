//! What the API needs from the controller group: writes through Raft, linearizable reads,
//! local reads, and the feed of applied changes that drives watches.
//!
//! Owns: the [`Cluster`] trait, its error ([`ClusterError`], which says whether a retry may
//! help) and the shape of the change feed ([`Applied`], [`Change`]). Does not own: how a
//! write reaches the leader (the Raft node implements this trait), nor what the stored
//! bytes mean (`codec`).
//!
//! ```text
//! ApiService ──write(Request)──► Cluster ──► Raft log ──► state machine
//!            ──read_barrier()──►         (read index / lease)
//!            ──reader()────────► StateReader (local redb reads)
//!            ◄─subscribe()────── broadcast of Applied, in revision order
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::raft::Request;
use crate::raft::Response;
use crate::raft::StateReader;
use crate::raft::StoreError;
pub use crate::raft::{Applied, Change};

/// The replicated store as the API sees it. The Raft node implements it; the API does not
/// know whether it talks to a leader, a follower that forwards, or a test double.
pub trait Cluster: Send + Sync + 'static {
    /// Commits `request` through Raft (forwarding to the leader if need be) and answers
    /// what the state machine decided once it is applied on this controller, so that a
    /// read from [`Cluster::reader`] right after sees the write.
    fn write(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, ClusterError>> + Send;

    /// Returns once this controller's state machine has applied everything the group had
    /// committed when the call began (read index or leader lease). A read from
    /// [`Cluster::reader`] after it is linearizable.
    fn read_barrier(&self) -> impl Future<Output = Result<(), ClusterError>> + Send;

    /// Reads of this controller's own copy of the state (may lag without a barrier).
    /// Called per request: a clone of a shared handle.
    fn reader(&self) -> StateReader;

    /// Every change this controller's state machine applies from now on, in revision
    /// order, sent after the change is visible through [`Cluster::reader`]. A receiver that
    /// falls behind sees `Lagged` and the API starts its watch history afresh.
    fn subscribe(&self) -> broadcast::Receiver<Applied>;
}

/// Why the cluster could not serve a write or a barrier.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// This controller is not the leader and could not forward the call.
    #[error("not the leader (the leader is {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader { leader: Option<String> },
    /// No leader, or the leader cannot reach a quorum.
    #[error("no quorum: the controller group has no leader")]
    NoQuorum,
    /// The call did not complete in time; a write may or may not have been applied.
    /// Still retryable for this API: every write it makes is declarative (apply again is
    /// Unchanged, a repeated delete is NotFound, a named version is a Conflict), so a
    /// retry converges instead of doing the work twice.
    #[error("no answer from the controller group within {after:?}")]
    Timeout { after: Duration },
    /// The Raft node is shutting down or has stopped.
    #[error("the raft node is stopped")]
    Stopped,
    /// The local store failed: a fault of this controller, not of the call.
    #[error("storage failed: {0}")]
    Storage(#[from] StoreError),
}

impl ClusterError {
    /// Whether the same call may succeed when made again, here or at another controller.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ClusterError::Storage(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_storage_faults_are_not_retryable() {
        assert!(ClusterError::NotLeader { leader: None }.is_retryable());
        assert!(ClusterError::NoQuorum.is_retryable());
        assert!(ClusterError::Stopped.is_retryable());
        assert!(
            ClusterError::Timeout {
                after: Duration::from_secs(1)
            }
            .is_retryable()
        );
        let corrupt = StoreError::Corrupted {
            table: "objects",
            key: "x".into(),
            source: crate::raft::CodecError::Empty,
        };
        assert!(!ClusterError::Storage(corrupt).is_retryable());
    }
}
