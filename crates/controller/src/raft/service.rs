//! The receiving side of Raft between controllers, and the leader's own operations.
//!
//! Owns answering a [`RaftMessage`] from a peer: refusing peers whose certificate is not a
//! controller's, handing append-entries and votes to openraft, receiving a whole snapshot
//! under a size limit and a timeout, and running forwarded operations (writes, membership
//! changes, read indexes) when this node leads. Does not own sending ([`network`]) or
//! following the leader around ([`node`]).
//!
//! [`network`]: super::network
//! [`node`]: super::node
//!
//! ```text
//! wire::Handler::call(peer, frame) ─► is_raft_call? ─► RaftService::handle
//!    peer.role != Controller ─► Failed(Forbidden)
//!    bad bytes ─► Err(FrameError::Decode): the stream is reset, nothing else happens
//!    AppendEntries / Vote / PreVote ─► openraft ─► reply
//!    InstallSnapshot{size} ─► size ≤ limit? ─► read frames (timeout) ─► checks ─► install
//!    Forward(op) ─► leader? run it : NotLeader{leader}
//! ```
//!
//! openraft panics on a snapshot that no correct leader could send (one beyond the sender's
//! leadership, or one contradicting what this node has committed), and a snapshot whose bytes
//! do not decode would stop the node with a storage error. Controllers are trusted members,
//! but a peer's input must never take the process down, so all three are checked here first
//! (the second against this node's latest metrics).

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use openraft::ChangeMembers;
use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::error::ClientWriteError;
use openraft::error::ForwardToLeader;
use openraft::error::LinearizableReadError;
use openraft::error::RaftError;
use tokio::time::Instant;
use wire::FrameError;
use wire::FramedStream;
use wire::Peer;
use wire::Role;

use super::config::SnapshotLimits;
use super::message::Forward;
use super::message::Forwarded;
use super::message::RaftMessage;
use super::message::RaftReply;
use super::message::RemoteError;
use super::message::decode_message;
use super::snapshot;
use super::snapshot::Snapshot;
use super::state_machine::StateMachine;
use super::types::NodeId;
use super::types::NodeInfo;
use super::types::SnapshotMeta;
use super::types::TypeConfig;
use super::types::Vote;

/// The openraft node the controller runs.
pub type RaftHandle = openraft::Raft<TypeConfig, StateMachine>;

/// Where the leader hands the agents' heartbeats (see `crate::liveness`).
pub type HeartbeatSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Answers Raft calls from peer controllers; also what the local node calls when it leads.
#[derive(Clone)]
pub struct RaftService {
    raft: RaftHandle,
    limits: SnapshotLimits,
    /// Set once by the daemon; until then heartbeats are refused as unavailable.
    heartbeats: Arc<OnceLock<HeartbeatSink>>,
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService")
            .field("id", self.raft.node_id())
            .field("limits", &self.limits)
            .finish()
    }
}

impl RaftService {
    pub(crate) fn new(raft: RaftHandle, limits: SnapshotLimits) -> Self {
        Self {
            raft,
            limits,
            heartbeats: Arc::new(OnceLock::new()),
        }
    }

    /// Where heartbeats go while this node leads. Only the first call takes effect.
    pub fn set_heartbeat_sink(&self, sink: HeartbeatSink) {
        let _ = self.heartbeats.set(sink);
    }

    /// Answers one Raft call: `request` is the stream's first frame (see
    /// [`is_raft_call`](super::message::is_raft_call)). An `Err` means the request was
    /// malformed or the stream failed; the wire server then resets the stream.
    pub async fn handle(
        &self,
        peer: &Peer,
        request: &[u8],
        stream: &mut FramedStream,
    ) -> Result<(), FrameError> {
        if peer.role != Role::Controller {
            let refused = RemoteError::Forbidden {
                role: peer.role.to_string(),
            };
            return stream.send(&RaftReply::Failed(refused)).await;
        }
        let reply = match decode_message(request)? {
            RaftMessage::AppendEntries(rpc) => match self.raft.append_entries(rpc).await {
                Ok(response) => RaftReply::AppendEntries(response),
                Err(_) => RaftReply::Failed(RemoteError::Stopped),
            },
            RaftMessage::Vote(rpc) => match self.raft.vote(rpc).await {
                Ok(response) => RaftReply::Vote(response),
                Err(_) => RaftReply::Failed(RemoteError::Stopped),
            },
            RaftMessage::PreVote(rpc) => match self.raft.pre_vote(rpc).await {
                Ok(response) => RaftReply::Vote(response),
                Err(_) => RaftReply::Failed(RemoteError::Stopped),
            },
            RaftMessage::InstallSnapshot { vote, meta, size } => {
                match self.receive_snapshot(vote, meta, size, stream).await {
                    Ok(reply) => reply,
                    Err(err) => RaftReply::Failed(err),
                }
            }
            RaftMessage::Forward(op) => match self.run(op).await {
                Ok(done) => RaftReply::Forwarded(done),
                Err(err) => RaftReply::Failed(err),
            },
        };
        stream.send(&reply).await
    }

    async fn receive_snapshot(
        &self,
        vote: Vote,
        meta: SnapshotMeta,
        size: u64,
        stream: &mut FramedStream,
    ) -> Result<RaftReply, RemoteError> {
        let limit = self.limits.max_size;
        if size > limit {
            return Err(RemoteError::SnapshotTooLarge { size, limit });
        }
        let deadline = Instant::now() + self.limits.timeout;
        let millis = u64::try_from(self.limits.timeout.as_millis()).unwrap_or(u64::MAX);
        // `size` is at most the limit; start smaller in case the sender lies about it.
        let mut data = Vec::with_capacity(usize::try_from(size.min(1 << 24)).unwrap_or(0));
        loop {
            let frame = tokio::time::timeout_at(deadline, stream.recv_frame())
                .await
                .map_err(|_| RemoteError::SnapshotTimeout { millis })?;
            let received = data.len() as u64;
            match frame {
                Ok(Some(chunk)) => {
                    let total = received + chunk.len() as u64;
                    if total > size {
                        return Err(RemoteError::SnapshotTooLarge {
                            size: total,
                            limit: size,
                        });
                    }
                    data.extend_from_slice(&chunk);
                }
                Ok(None) if received == size => break,
                Ok(None) | Err(_) => {
                    return Err(RemoteError::SnapshotIncomplete {
                        expected: size,
                        received,
                    });
                }
            }
        }
        self.check_snapshot(&vote, &meta)?;
        // The state machine would stop the whole node on bytes it cannot decode: decode
        // them here first, and refuse the snapshot instead.
        if let Err(err) = snapshot::decode_image(&meta, &data) {
            return Err(RemoteError::SnapshotCorrupted {
                reason: err.to_string(),
            });
        }
        let snapshot = Snapshot {
            meta,
            snapshot: data,
        };
        match self.raft.install_full_snapshot(vote, snapshot).await {
            Ok(response) => Ok(RaftReply::InstallSnapshot(response)),
            Err(_) => Err(RemoteError::Stopped),
        }
    }

    /// Refuses a snapshot openraft would panic on (see the module docs).
    fn check_snapshot(&self, vote: &Vote, meta: &SnapshotMeta) -> Result<(), RemoteError> {
        let Some(last) = &meta.last_log_id else {
            return Ok(());
        };
        let inconsistent = || RemoteError::SnapshotInconsistent {
            snapshot: last.to_string(),
            vote: vote.to_string(),
        };
        if last.leader_id > vote.leader_id {
            return Err(inconsistent());
        }
        let committed = self.raft.metrics().borrow_watched().local_committed;
        if let Some(committed) = committed
            && *last > committed
            && last.index <= committed.index
        {
            return Err(inconsistent());
        }
        Ok(())
    }

    /// Runs `op` if this node leads; otherwise answers with the leader it knows of.
    pub(crate) async fn run(&self, op: Forward) -> Result<Forwarded, RemoteError> {
        match op {
            Forward::Write(request) => match self.raft.client_write(request).await {
                Ok(written) => Ok(Forwarded::Written(written.data)),
                Err(err) => write_failure(err, |reason, retryable| RemoteError::WriteRejected {
                    reason,
                    retryable,
                }),
            },
            Forward::Heartbeat { node } => self.heartbeat(&node),
            Forward::AddMember { id, info } => self.add_member(id, info).await,
            Forward::RemoveMember { id } => self.remove_member(id).await,
            Forward::ReadIndex => match self.raft.get_read_log_id(ReadPolicy::ReadIndex).await {
                Ok((read, _applied)) => Ok(Forwarded::ReadIndex(read.index())),
                Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward))) => {
                    Ok(not_leader(forward))
                }
                Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) => {
                    Err(RemoteError::NoQuorum)
                }
                Err(RaftError::Fatal(_)) => Err(RemoteError::Stopped),
            },
        }
    }

    /// Hands a heartbeat to the sink if this node leads; otherwise names the leader.
    fn heartbeat(&self, node: &str) -> Result<Forwarded, RemoteError> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.state != openraft::ServerState::Leader {
            let leader = metrics.current_leader.and_then(|id| {
                let info = metrics.membership_config.membership().get_node(&id)?;
                Some((id, info.clone()))
            });
            return Ok(Forwarded::NotLeader { leader });
        }
        let Some(sink) = self.heartbeats.get() else {
            return Err(RemoteError::Stopped);
        };
        sink(node);
        Ok(Forwarded::HeartbeatSeen)
    }

    async fn add_member(&self, id: NodeId, info: NodeInfo) -> Result<Forwarded, RemoteError> {
        let membership = |reason, retryable| RemoteError::Membership { reason, retryable };
        // Blocking: returns once the learner has caught up with the leader's log, so that
        // promoting it does not stall commits while it copies the log.
        if let Err(err) = self.raft.add_learner(id, info, true).await {
            return write_failure(err, membership);
        }
        let voters = BTreeSet::from([id]);
        match self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(voters), false)
            .await
        {
            Ok(_) => Ok(Forwarded::MembershipChanged),
            Err(err) => write_failure(err, membership),
        }
    }

    async fn remove_member(&self, id: NodeId) -> Result<Forwarded, RemoteError> {
        let membership = |reason, retryable| RemoteError::Membership { reason, retryable };
        let current = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        let ids = BTreeSet::from([id]);
        let change = if current.membership().voter_ids().any(|voter| voter == id) {
            // Without `retain` the removed voter leaves the group instead of staying a learner.
            ChangeMembers::RemoveVoters(ids)
        } else if current.get_node(&id).is_some() {
            ChangeMembers::RemoveNodes(ids)
        } else {
            return Ok(Forwarded::MembershipChanged);
        };
        match self.raft.change_membership(change, false).await {
            Ok(_) => Ok(Forwarded::MembershipChanged),
            Err(err) => write_failure(err, membership),
        }
    }
}

fn not_leader(forward: ForwardToLeader<TypeConfig>) -> Forwarded {
    Forwarded::NotLeader {
        leader: forward.leader_id.zip(forward.leader_node),
    }
}

/// Turns a failed write or membership change into `NotLeader` or a remote error.
fn write_failure(
    err: RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
    make: impl FnOnce(String, bool) -> RemoteError,
) -> Result<Forwarded, RemoteError> {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => Ok(not_leader(forward)),
        // The entry may still commit under another leader: not safe to repeat blindly.
        RaftError::APIError(err @ ClientWriteError::LogEntryDiscarded(_)) => {
            Err(make(err.to_string(), false))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(err)) => {
            let retryable = matches!(err, openraft::error::ChangeMembershipError::InProgress(_));
            Err(make(err.to_string(), retryable))
        }
        RaftError::APIError(err @ ClientWriteError::PreconditionFailed(_)) => {
            Err(make(err.to_string(), false))
        }
        RaftError::Fatal(_) => Err(RemoteError::Stopped),
    }
}

impl wire::Handler for RaftService {
    async fn call(
        &self,
        peer: Peer,
        request: Bytes,
        stream: &mut FramedStream,
    ) -> Result<(), FrameError> {
        self.handle(&peer, &request, stream).await
    }
}
