//! One controller's Raft node: start, membership, writes, reads, stop.
//!
//! Owns the lifecycle of the openraft node over the redb storage and the wire network,
//! sending leader-only operations to the leader wherever the caller is (a follower forwards
//! them and returns the leader's answer), linearizable read barriers, and releasing the
//! database on shutdown. Does not own the wire server (the controller daemon serves
//! [`RaftNode::service`] from its handler) or the certificates.
//!
//! ```text
//! write(req) ─► local RaftService::run ─┬─ leader: client_write ─► Response
//!                                       └─ NotLeader{leader} ─► Peers::call(leader, Forward)
//!                                              └─ NotLeader again / unreachable: wait for a
//!                                                 leader (local metrics), try again until the
//!                                                 write deadline
//! read_barrier() ─► ReadIndex at the leader ─► wait until applied here ─► reader() is fresh
//! ```
//!
//! # Wiring it into the controller daemon
//!
//! ```text
//! endpoint = wire::server_endpoint(listen, tls)           (address goes into NodeInfo)
//! node = RaftNode::start(config, wire::client_endpoint(..), options)
//! serve(endpoint, handler, ..): handler.call(peer, frame) =
//!     is_raft_call(frame) ? node.service().handle(peer, frame, stream) : api(...)
//! --init: node.initialize(me)      --join: the leader's add_member(id, info) (any controller
//! forwards it)      restart: node.wait_for_recovery(..) before serving reads
//! ```
//!
//! A forwarded write that went out and got no answer may have been executed: it is not sent
//! again, and the error says so ([`NodeError::is_retryable`] is false for it). Membership
//! changes and read indexes are safe to repeat and are retried until their deadline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::error::Fatal;
use openraft::error::InitializeError;
use openraft::error::RaftError;
use openraft::metrics::WaitError;
use tokio::time::Instant;

use super::Storage;
use super::StorageOptions;
use super::config::ConfigError;
use super::config::RaftOptions;
use super::error::StoreError;
use super::message::Forward;
use super::message::Forwarded;
use super::message::RaftMessage;
use super::message::RaftReply;
use super::message::RemoteError;
use super::network::CallError;
use super::network::Network;
use super::network::Peers;
use super::reader::StateReader;
use super::service::RaftHandle;
use super::service::RaftService;
use super::types::NodeId;
use super::types::NodeInfo;
use super::types::Request;
use super::types::Response;
use super::types::TypeConfig;

/// How long `shutdown` waits for openraft's tasks to let go of the database.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a controller needs to run its Raft node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This controller's id in the group; never reused for another controller.
    pub id: NodeId,
    /// Where `raft.redb` and the snapshot live.
    pub data_dir: PathBuf,
    pub storage: StorageOptions,
    pub raft: RaftOptions,
}

/// Errors of the Raft node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot open the raft storage in {dir}")]
    Storage {
        dir: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the raft node")]
    Start(#[source] Fatal<TypeConfig>),
    #[error("cannot initialize the group")]
    Initialize(#[source] RaftError<TypeConfig, InitializeError<TypeConfig>>),
    #[error("no leader known after {after:?}")]
    NoLeader { after: Duration },
    #[error("the leader did not finish the {op} within {after:?}")]
    Timeout { op: &'static str, after: Duration },
    #[error("forwarding the {op} to the leader {leader} failed")]
    Forward {
        op: &'static str,
        leader: NodeId,
        #[source]
        source: CallError,
    },
    #[error("the {op} failed")]
    Remote {
        op: &'static str,
        #[source]
        source: RemoteError,
    },
    #[error("the state machine did not catch up")]
    Wait(#[source] WaitError),
    #[error("the raft node stopped")]
    Stopped,
    #[error("the database is still open {after:?} after shutdown (a reader still holds it)")]
    StillOpen { after: Duration },
}

impl NodeError {
    /// Whether the same operation may succeed later (possibly on another controller).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NoLeader { .. } | Self::Wait(_) => true,
            // Only reported when nothing sent may have been executed (an ambiguous forwarded
            // write is a `Forward` error): trying again is safe.
            Self::Timeout { .. } => true,
            Self::Forward { source, .. } => source.is_retryable() && source.surely_not_executed(),
            Self::Remote { source, .. } => source.is_retryable(),
            Self::Storage { .. }
            | Self::Config(_)
            | Self::Start(_)
            | Self::Initialize(_)
            | Self::Stopped
            | Self::StillOpen { .. } => false,
        }
    }
}

/// A controller in the group, as `members` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub info: NodeInfo,
    /// A voter counts for quorums; a learner only receives the log.
    pub voter: bool,
    /// This node believes `id` is the leader.
    pub leader: bool,
}

/// Where this node's log and state machine stand, for status output and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    pub term: u64,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    /// The last log index this node holds.
    pub last_log_index: Option<u64>,
    /// The last log index applied to the state machine.
    pub last_applied: Option<u64>,
    /// The last log index in this node's snapshot.
    pub snapshot: Option<u64>,
    /// The last log index removed from the log.
    pub purged: Option<u64>,
}

/// One controller's Raft node.
#[derive(Debug)]
pub struct RaftNode {
    id: NodeId,
    raft: RaftHandle,
    service: RaftService,
    peers: Arc<Peers>,
    storage: Storage,
    options: RaftOptions,
}

impl RaftNode {
    /// Opens the storage in `config.data_dir` and starts the node. Peers are dialled from
    /// `endpoint` (a `wire::client_endpoint` with this controller's certificate) using
    /// `client` options. A new node waits for [`initialize`](Self::initialize) or for the
    /// leader to add it; a restarted one rejoins by itself.
    ///
    /// openraft's own calls carry short deadlines, but a forwarded write sent on a connection
    /// to a leader that died without closing it waits for an answer until the write deadline
    /// (and then reports that it may have been executed). Give `endpoint` a short idle
    /// timeout (e.g. 2 s, keep-alive 500 ms) so such connections are found dead quickly.
    pub async fn start(
        config: NodeConfig,
        endpoint: quinn::Endpoint,
        client: wire::ClientOptions,
    ) -> Result<Self, NodeError> {
        let storage = Storage::open(&config.data_dir, &config.storage).map_err(|source| {
            NodeError::Storage {
                dir: config.data_dir.clone(),
                source,
            }
        })?;
        let openraft_config = config.raft.openraft_config()?;
        let peers = Arc::new(Peers::new(endpoint, client));
        let network = Network::new(Arc::clone(&peers), config.raft.snapshot.chunk_size);
        let raft = openraft::Raft::new(
            config.id,
            openraft_config,
            network,
            storage.log_store(),
            storage.state_machine(),
        )
        .await
        .map_err(NodeError::Start)?;
        let service = RaftService::new(raft.clone(), config.raft.snapshot);
        Ok(Self {
            id: config.id,
            raft,
            service,
            peers,
            storage,
            options: config.raft,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Makes this node a group of one (`moor controller --init`). Once only, on a new store.
    pub async fn initialize(&self, me: NodeInfo) -> Result<(), NodeError> {
        self.raft
            .initialize(BTreeMap::from([(self.id, me)]))
            .await
            .map_err(NodeError::Initialize)
    }

    /// What the controller's wire handler calls for a Raft call from a peer.
    pub fn service(&self) -> RaftService {
        self.service.clone()
    }

    /// A handle for stale reads of the local state machine (no Raft round trip). Drop it
    /// before [`shutdown`](Self::shutdown), which waits for the database to close.
    pub fn reader(&self) -> StateReader {
        self.storage.reader()
    }

    /// The feed of changes this node's state machine applies (see [`Storage::changes`](super::Storage::changes)).
    pub fn changes(&self) -> tokio::sync::broadcast::Sender<super::types::Applied> {
        self.storage.changes()
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// Whether this node leads now.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// Where this node's log and state machine stand.
    pub fn status(&self) -> RaftStatus {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let index = |id: Option<super::types::LogId>| id.map(|id| id.index);
        RaftStatus {
            term: metrics.current_term,
            leader: metrics.current_leader,
            is_leader: metrics.state == ServerState::Leader,
            last_log_index: metrics.last_log_index,
            last_applied: index(metrics.last_applied),
            snapshot: index(metrics.snapshot),
            purged: index(metrics.purged),
        }
    }

    /// The group as this node knows it, in id order.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, info)| Member {
                id: *id,
                info: info.clone(),
                voter: voters.contains(id),
                leader: metrics.current_leader == Some(*id),
            })
            .collect()
    }

    /// Applies `request` through the leader and returns the state machine's answer.
    pub async fn write(&self, request: Request) -> Result<Response, NodeError> {
        let timeout = self.options.write_timeout;
        match self
            .leader_op(Forward::Write(request), timeout, "write")
            .await?
        {
            Forwarded::Written(response) => Ok(response),
            _ => Err(self.unexpected("write")),
        }
    }

    /// The leader answered an operation with the answer to another.
    fn unexpected(&self, op: &'static str) -> NodeError {
        let leader = self.leader().unwrap_or(self.id);
        NodeError::Forward {
            op,
            leader,
            source: CallError::UnexpectedReply {
                id: leader,
                sent: op,
            },
        }
    }

    /// Hands an agent's heartbeat for `node` to the leader's sink (see
    /// [`RaftService::set_heartbeat_sink`]), forwarding it if another node leads.
    pub async fn heartbeat(&self, node: &str) -> Result<(), NodeError> {
        let timeout = self.options.write_timeout;
        let op = Forward::Heartbeat {
            node: node.to_owned(),
        };
        match self.leader_op(op, timeout, "heartbeat").await? {
            Forwarded::HeartbeatSeen => Ok(()),
            _ => Err(self.unexpected("heartbeat")),
        }
    }

    /// Adds a controller: first as a learner that copies the log, then as a voter.
    pub async fn add_member(&self, id: NodeId, info: NodeInfo) -> Result<(), NodeError> {
        let timeout = self.options.membership_timeout;
        self.leader_op(
            Forward::AddMember { id, info },
            timeout,
            "membership change",
        )
        .await
        .map(drop)
    }

    /// Removes a controller from the group.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), NodeError> {
        let timeout = self.options.membership_timeout;
        self.leader_op(Forward::RemoveMember { id }, timeout, "membership change")
            .await
            .map(drop)
    }

    /// Returns once every write committed before the call is applied here: reads from
    /// [`reader`](Self::reader) after it are linearizable.
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        let timeout = self.options.write_timeout;
        let started = Instant::now();
        let index = match self.leader_op(Forward::ReadIndex, timeout, "read").await? {
            Forwarded::ReadIndex(index) => index,
            _ => return Err(self.unexpected("read")),
        };
        let remaining = timeout.saturating_sub(started.elapsed());
        self.raft
            .wait(Some(remaining))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(drop)
            .map_err(NodeError::Wait)
    }

    /// After a restart, waits until the state machine holds at least what it held before
    /// (see the storage docs: applies are not durable on their own).
    pub async fn wait_for_recovery(&self, timeout: Duration) -> Result<(), NodeError> {
        self.raft
            .wait_for_recovery(Some(timeout))
            .await
            .map(drop)
            .map_err(NodeError::Wait)
    }

    /// Runs `op` on the leader, wherever it is, until `timeout`.
    async fn leader_op(
        &self,
        op: Forward,
        timeout: Duration,
        name: &'static str,
    ) -> Result<Forwarded, NodeError> {
        let deadline = Instant::now() + timeout;
        let repeatable = !matches!(op, Forward::Write(_));
        let mut target: Option<(NodeId, NodeInfo)> = None;
        // Redirections followed since the last wait: two nodes with stale views may point at
        // each other until an election settles.
        let mut hops = 0;
        loop {
            let outcome = match &target {
                Some((id, info)) if *id != self.id => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let message = RaftMessage::Forward(op.clone());
                    match self.peers.call(*id, info, &message, remaining).await {
                        Ok(RaftReply::Forwarded(done)) => Ok(done),
                        Ok(_) => Err(CallError::UnexpectedReply {
                            id: *id,
                            sent: name,
                        }),
                        Err(err) => Err(err),
                    }
                }
                _ => self
                    .service
                    .run(op.clone())
                    .await
                    .map_err(|source| CallError::Remote {
                        id: self.id,
                        source,
                    }),
            };
            let failed_leader = target.as_ref().map(|(id, _)| *id);
            match outcome {
                Ok(Forwarded::NotLeader { leader: Some(next) })
                    if failed_leader != Some(next.0) && hops < 3 =>
                {
                    hops += 1;
                    target = Some(next);
                    continue;
                }
                Ok(Forwarded::NotLeader { .. }) => {}
                Ok(done) => return Ok(done),
                Err(CallError::Remote {
                    id,
                    source: RemoteError::Stopped,
                }) if id == self.id => return Err(NodeError::Stopped),
                Err(CallError::Remote { source, .. }) if !source.is_retryable() => {
                    return Err(NodeError::Remote { op: name, source });
                }
                Err(source) if !(source.surely_not_executed() || repeatable) => {
                    return Err(NodeError::Forward {
                        op: name,
                        leader: failed_leader.unwrap_or(self.id),
                        source,
                    });
                }
                Err(source) if Instant::now() >= deadline => {
                    return Err(NodeError::Forward {
                        op: name,
                        leader: failed_leader.unwrap_or(self.id),
                        source,
                    });
                }
                Err(_) => {}
            }
            // No progress this round: the leader is unknown, changing, or unreachable. Wait a
            // heartbeat for news, then start again from what this node knows.
            target = None;
            hops = 0;
            if Instant::now() + self.options.heartbeat >= deadline {
                return Err(match self.leader() {
                    None => NodeError::NoLeader { after: timeout },
                    Some(_) => NodeError::Timeout {
                        op: name,
                        after: timeout,
                    },
                });
            }
            tokio::time::sleep(self.options.heartbeat).await;
        }
    }

    /// Stops the node, closes peer connections and waits until the database file is closed,
    /// so that the same directory can be opened again.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let Self {
            raft,
            service,
            peers,
            storage,
            ..
        } = self;
        let stopped = raft.shutdown().await;
        peers.close().await;
        drop((raft, service));
        // openraft's state machine and log tasks drop their handles a moment after `shutdown`
        // returns. Wait until ours is the last one, then drop it here: redb closes the file
        // inside that drop, so it is closed when this returns (a drop on another thread could
        // still be under way after the last handle count hit zero).
        let deadline = Instant::now() + RELEASE_TIMEOUT;
        while !storage.is_sole_handle() {
            if Instant::now() >= deadline {
                return Err(NodeError::StillOpen {
                    after: RELEASE_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Closing writes redb's allocator state: blocking file IO, off the async workers.
        if tokio::task::spawn_blocking(move || drop(storage))
            .await
            .is_err()
        {
            return Err(NodeError::Stopped);
        }
        stopped.map_err(|_| NodeError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_that_surely_did_nothing_are_retryable_forwards() {
        let ambiguous = NodeError::Forward {
            op: "write",
            leader: 2,
            source: CallError::Timeout {
                id: 2,
                after: Duration::from_secs(1),
                sent: true,
            },
        };
        assert!(!ambiguous.is_retryable());
        let unsent = NodeError::Forward {
            op: "write",
            leader: 2,
            source: CallError::Timeout {
                id: 2,
                after: Duration::from_secs(1),
                sent: false,
            },
        };
        assert!(unsent.is_retryable());
        let no_quorum = NodeError::Remote {
            op: "read",
            source: RemoteError::NoQuorum,
        };
        assert!(no_quorum.is_retryable());
        assert!(
            NodeError::NoLeader {
                after: Duration::from_secs(1)
            }
            .is_retryable()
        );
        assert!(!NodeError::Stopped.is_retryable());
    }
}
