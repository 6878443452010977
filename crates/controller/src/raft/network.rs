//! The sending side of Raft between controllers: openraft's network over `wire`.
//!
//! Owns one `wire::Client` per peer controller ([`Peers`]), dialled at the address in the
//! peer's [`NodeInfo`] and checked against the controller name in it; openraft's network
//! factory ([`Network`]) and per-peer network ([`PeerLink`]); sending append-entries, votes,
//! pre-votes, whole snapshots and forwarded leader operations; mapping failures to openraft's
//! errors. Does not own answering calls ([`service`](super::service)) or deciding what to
//! forward ([`node`](super::node)).
//!
//! ```text
//! openraft ─► PeerLink::append_entries ─► Peers::call(id) ─► wire::Client (one per peer)
//!                                          open_bi, [tag] RaftMessage, finish, RaftReply
//! full_snapshot: header frame, then the bytes in `chunk_size` frames, finish, reply
//! connect failure, timeout, lost connection, peer stopped ─► Unreachable (openraft backs off)
//! ```
//!
//! Each call has the deadline openraft gives it (`RPCOption::hard_ttl`: the heartbeat interval
//! for append-entries, the snapshot timeout for snapshots), which also bounds connecting, so a
//! dead peer costs one short timeout per attempt and openraft's backoff spaces the attempts.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use tokio::time::Instant;
use tokio::time::timeout_at;
use wire::Client;
use wire::ClientError;
use wire::ClientOptions;
use wire::FrameError;
use wire::Target;

use super::message::RaftMessage;
use super::message::RaftReply;
use super::message::RemoteError;
use super::message::encode_message;
use super::snapshot::Snapshot;
use super::types::LogId;
use super::types::NodeId;
use super::types::NodeInfo;
use super::types::TypeConfig;
use super::types::Vote;

/// A failed call to a peer controller.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("controller {id} has an address that is not ip:port: {address:?}")]
    BadAddress {
        id: NodeId,
        address: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("cannot encode the call to controller {id}")]
    Encode {
        id: NodeId,
        #[source]
        source: FrameError,
    },
    #[error("cannot reach controller {id}")]
    Connect {
        id: NodeId,
        #[source]
        source: ClientError,
    },
    #[error("controller {id} did not answer within {after:?}")]
    Timeout {
        id: NodeId,
        after: Duration,
        /// Whether the request had gone out: then it may have been executed.
        sent: bool,
    },
    #[error("call to controller {id} failed")]
    Stream {
        id: NodeId,
        #[source]
        source: FrameError,
    },
    #[error("controller {id} closed the call without an answer")]
    NoReply { id: NodeId },
    #[error("controller {id} failed the call")]
    Remote {
        id: NodeId,
        #[source]
        source: RemoteError,
    },
    #[error("controller {id} answered a {sent} call with something else")]
    UnexpectedReply { id: NodeId, sent: &'static str },
}

impl CallError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::BadAddress { .. } | Self::Encode { .. } | Self::UnexpectedReply { .. } => false,
            Self::Connect { source, .. } => source.is_retryable(),
            Self::Timeout { .. } | Self::NoReply { .. } => true,
            Self::Stream { source, .. } => source.is_retryable(),
            Self::Remote { source, .. } => source.is_retryable(),
        }
    }

    /// Whether the request certainly did not reach the peer's Raft node, so that even a
    /// write may be sent again.
    pub fn surely_not_executed(&self) -> bool {
        match self {
            Self::BadAddress { .. } | Self::Encode { .. } | Self::Connect { .. } => true,
            Self::Timeout { sent, .. } => !sent,
            Self::Remote { source, .. } => matches!(source, RemoteError::Forbidden { .. }),
            Self::Stream { .. } | Self::NoReply { .. } | Self::UnexpectedReply { .. } => false,
        }
    }

    /// Whether the peer looks down or cut off, rather than answering badly.
    fn is_unreachable(&self) -> bool {
        match self {
            Self::BadAddress { .. } | Self::Connect { .. } | Self::Timeout { .. } => true,
            Self::Stream { source, .. } => matches!(source, FrameError::Connection(_)),
            Self::Remote { source, .. } => matches!(source, RemoteError::Stopped),
            Self::Encode { .. } | Self::NoReply { .. } | Self::UnexpectedReply { .. } => false,
        }
    }

    fn into_rpc(self) -> RPCError<TypeConfig> {
        if self.is_unreachable() {
            RPCError::Unreachable(Unreachable::new(&self))
        } else {
            RPCError::Network(NetworkError::new(&self))
        }
    }

    fn into_streaming(self) -> StreamingError<TypeConfig> {
        if self.is_unreachable() {
            StreamingError::Unreachable(Unreachable::new(&self))
        } else {
            StreamingError::Network(NetworkError::new(&self))
        }
    }
}

struct PeerClient {
    info: NodeInfo,
    client: Arc<Client>,
}

/// One client per peer controller, shared by replication, heartbeats, snapshots and
/// forwarding: QUIC carries each call on a stream of its own, so none waits behind another.
pub struct Peers {
    endpoint: quinn::Endpoint,
    options: ClientOptions,
    clients: Mutex<HashMap<NodeId, PeerClient>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<NodeId> = self.lock().keys().copied().collect();
        f.debug_struct("Peers").field("clients", &ids).finish()
    }
}

impl Peers {
    /// Peers dialled from `endpoint` (a `wire::client_endpoint` holding this controller's
    /// certificate). `options.limits` applies to every stream; the per-call deadline comes from
    /// each call.
    pub fn new(endpoint: quinn::Endpoint, options: ClientOptions) -> Self {
        Self {
            endpoint,
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, PeerClient>> {
        // The map is only ever replaced entry by entry: a panic elsewhere leaves it usable.
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The client of `id`, made anew if the peer's address or name changed.
    fn client(&self, id: NodeId, info: &NodeInfo) -> Result<Arc<Client>, CallError> {
        let mut clients = self.lock();
        if let Some(peer) = clients.get(&id)
            && peer.info == *info
        {
            return Ok(Arc::clone(&peer.client));
        }
        // Addresses are parsed, never resolved: a static binary cannot use NSS, and a
        // controller is identified by the name in its certificate anyway.
        let addr: SocketAddr = info
            .address
            .parse()
            .map_err(|source| CallError::BadAddress {
                id,
                address: info.address.clone(),
                source,
            })?;
        let target = Target {
            addr,
            name: Some(info.name.clone()),
        };
        let client = Arc::new(Client::new(
            self.endpoint.clone(),
            vec![target],
            self.options,
        ));
        clients.insert(
            id,
            PeerClient {
                info: info.clone(),
                client: Arc::clone(&client),
            },
        );
        Ok(client)
    }

    /// Closes every peer connection (on shutdown).
    pub async fn close(&self) {
        let clients: Vec<Arc<Client>> = self.lock().drain().map(|(_, peer)| peer.client).collect();
        for client in clients {
            client.close().await;
        }
    }

    /// Sends `message` to `id` and returns its reply, within `ttl`.
    pub async fn call(
        &self,
        id: NodeId,
        info: &NodeInfo,
        message: &RaftMessage,
        ttl: Duration,
    ) -> Result<RaftReply, CallError> {
        let frame = encode_message(message).map_err(|source| CallError::Encode { id, source })?;
        self.call_frame(id, info, &frame, &[], 0, ttl).await
    }

    /// Sends an encoded request `frame`, then `data` in frames of `chunk_size` bytes, then
    /// waits for the reply.
    async fn call_frame(
        &self,
        id: NodeId,
        info: &NodeInfo,
        frame: &[u8],
        data: &[u8],
        chunk_size: usize,
        ttl: Duration,
    ) -> Result<RaftReply, CallError> {
        let client = self.client(id, info)?;
        let deadline = Instant::now() + ttl;
        let timeout = |sent| CallError::Timeout {
            id,
            after: ttl,
            sent,
        };
        let mut stream = timeout_at(deadline, client.open(frame))
            .await
            .map_err(|_| timeout(false))?
            .map_err(|source| CallError::Connect { id, source })?;
        timeout_at(deadline, async {
            let mut sent = Ok(());
            for chunk in data.chunks(chunk_size.max(1)) {
                sent = stream.send_frame(chunk).await;
                if sent.is_err() {
                    break;
                }
            }
            if sent.is_ok() {
                sent = stream.finish();
            }
            // A receiver that refuses the data (too large) stops reading but still answers:
            // prefer its answer to our failed write.
            let reply = stream.recv_frame().await;
            let reply = match (reply, sent) {
                (Ok(Some(reply)), _) => reply,
                (Ok(None), Ok(())) => return Err(CallError::NoReply { id }),
                (Ok(None) | Err(_), Err(source)) | (Err(source), Ok(())) => {
                    return Err(CallError::Stream { id, source });
                }
            };
            wire::frame::decode::<RaftReply>(&reply)
                .map_err(|source| CallError::Stream { id, source })
        })
        .await
        .map_err(|_| timeout(true))?
        .and_then(|reply| match reply {
            RaftReply::Failed(source) => Err(CallError::Remote { id, source }),
            reply => Ok(reply),
        })
    }
}

/// Encodes an append-entries call within `max_frame` bytes, sending only the first half of the
/// entries, then the first quarter, and so on, if the whole batch does not fit (openraft sends
/// up to `max_payload_entries` at once, whatever their size). Returns the frame and, if the
/// entries were cut, the log id of the last one sent. A single entry larger than the frame
/// limit is an encoding error: the receiver could never read it.
fn fit_entries(
    mut rpc: AppendEntriesRequest<TypeConfig>,
    max_frame: usize,
) -> Result<(Vec<u8>, Option<LogId>), FrameError> {
    let mut cut = false;
    loop {
        let frame = encode_message(&RaftMessage::AppendEntries(rpc.clone()))?;
        if frame.len() <= max_frame {
            let sent_up_to = cut
                .then(|| rpc.entries.last().map(|entry| entry.log_id))
                .flatten();
            return Ok((frame, sent_up_to));
        }
        if rpc.entries.len() <= 1 {
            return Err(FrameError::TooLarge {
                len: frame.len(),
                max: max_frame,
            });
        }
        let keep = rpc.entries.len() / 2;
        rpc.entries.truncate(keep);
        cut = true;
    }
}

/// openraft's network factory: hands out a [`PeerLink`] per peer, all sharing [`Peers`].
#[derive(Debug, Clone)]
pub struct Network {
    peers: Arc<Peers>,
    chunk_size: usize,
}

impl Network {
    /// A factory over `peers`; snapshots go out in frames of `chunk_size` bytes.
    pub fn new(peers: Arc<Peers>, chunk_size: usize) -> Self {
        Self { peers, chunk_size }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerLink {
        PeerLink {
            id: target,
            info: node.clone(),
            peers: Arc::clone(&self.peers),
            chunk_size: self.chunk_size,
        }
    }
}

/// openraft's view of one peer.
#[derive(Debug)]
pub struct PeerLink {
    id: NodeId,
    info: NodeInfo,
    peers: Arc<Peers>,
    chunk_size: usize,
}

impl PeerLink {
    async fn vote_call(
        &self,
        message: RaftMessage,
        option: RPCOption,
        sent: &'static str,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .peers
            .call(self.id, &self.info, &message, option.hard_ttl())
            .await
        {
            Ok(RaftReply::Vote(response)) => Ok(response),
            Ok(_) => Err(CallError::UnexpectedReply { id: self.id, sent }.into_rpc()),
            Err(err) => Err(err.into_rpc()),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerLink {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let (frame, sent_up_to) =
            fit_entries(rpc, self.peers.options.limits.max_frame).map_err(|source| {
                CallError::Encode {
                    id: self.id,
                    source,
                }
                .into_rpc()
            })?;
        match self
            .peers
            .call_frame(self.id, &self.info, &frame, &[], 0, option.hard_ttl())
            .await
        {
            // Only a prefix went out: the follower holds the entries up to its last one.
            Ok(RaftReply::AppendEntries(AppendEntriesResponse::Success))
                if sent_up_to.is_some() =>
            {
                Ok(AppendEntriesResponse::PartialSuccess(sent_up_to))
            }
            Ok(RaftReply::AppendEntries(response)) => Ok(response),
            Ok(_) => Err(CallError::UnexpectedReply {
                id: self.id,
                sent: "append-entries",
            }
            .into_rpc()),
            Err(err) => Err(err.into_rpc()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_call(RaftMessage::Vote(rpc), option, "vote").await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_call(RaftMessage::PreVote(rpc), option, "pre-vote")
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let message = RaftMessage::InstallSnapshot {
            vote,
            meta: snapshot.meta,
            size: snapshot.snapshot.len() as u64,
        };
        let frame = match encode_message(&message) {
            Ok(frame) => frame,
            Err(source) => {
                return Err(CallError::Encode {
                    id: self.id,
                    source,
                }
                .into_streaming());
            }
        };
        let send = self.peers.call_frame(
            self.id,
            &self.info,
            &frame,
            &snapshot.snapshot,
            // A chunk never exceeds the frame limit, whatever the profile says.
            self.chunk_size.min(self.peers.options.limits.max_frame),
            option.hard_ttl(),
        );
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            reply = send => match reply {
                Ok(RaftReply::InstallSnapshot(response)) => Ok(response),
                Ok(_) => Err(CallError::UnexpectedReply { id: self.id, sent: "snapshot" }
                    .into_streaming()),
                Err(err) => Err(err.into_streaming()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(address: &str) -> NodeInfo {
        NodeInfo {
            name: "c2".into(),
            address: address.into(),
        }
    }

    fn peers() -> Arc<Peers> {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        Arc::new(Peers::new(endpoint, ClientOptions::default()))
    }

    #[test]
    fn outages_are_unreachable_and_bad_answers_are_network_errors() {
        let id = 2;
        let unreachable = [
            CallError::Timeout {
                id,
                after: Duration::from_millis(150),
                sent: true,
            },
            CallError::Remote {
                id,
                source: RemoteError::Stopped,
            },
            CallError::Connect {
                id,
                source: ClientError::NoTargets,
            },
        ];
        for err in unreachable {
            assert!(
                matches!(err.into_rpc(), RPCError::Unreachable(_)),
                "should back off"
            );
        }
        let network = [
            CallError::NoReply { id },
            CallError::UnexpectedReply { id, sent: "vote" },
            CallError::Stream {
                id,
                source: FrameError::Truncated,
            },
        ];
        for err in network {
            assert!(matches!(err.into_rpc(), RPCError::Network(_)));
        }
    }

    #[test]
    fn only_unsent_calls_are_surely_not_executed() {
        let id = 2;
        let timeout = |sent| CallError::Timeout {
            id,
            after: Duration::from_secs(1),
            sent,
        };
        assert!(timeout(false).surely_not_executed());
        assert!(!timeout(true).surely_not_executed());
        assert!(timeout(true).is_retryable());
        assert!(!CallError::NoReply { id }.surely_not_executed());
        let forbidden = CallError::Remote {
            id,
            source: RemoteError::Forbidden {
                role: "agent".into(),
            },
        };
        assert!(forbidden.surely_not_executed());
        assert!(!forbidden.is_retryable());
    }

    #[test]
    fn oversized_batches_are_cut_to_a_prefix_that_fits() {
        use crate::raft::tests::log_id;
        use crate::raft::tests::put_entry;

        let rpc = |count: u64| AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            entries: (1..=count).map(|index| put_entry(1, index)).collect(),
            leader_commit: None,
        };
        let (whole, cut) = fit_entries(rpc(10), 1 << 20).unwrap();
        assert_eq!(cut, None);
        let one = fit_entries(rpc(1), 1 << 20).unwrap().0.len();
        // Room for about three entries: ten become five, then two.
        let (frame, cut) = fit_entries(rpc(10), one * 3).unwrap();
        assert!(frame.len() <= one * 3 && frame.len() < whole.len());
        assert_eq!(cut, Some(log_id(1, 2)));
        let Ok(RaftMessage::AppendEntries(sent)) = super::super::message::decode_message(&frame)
        else {
            panic!("not an append-entries frame");
        };
        assert_eq!(sent.entries.len(), 2);
        assert!(matches!(
            fit_entries(rpc(1), one - 1),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn one_client_per_peer_until_its_address_changes() {
        let peers = peers();
        let first = peers.client(2, &info("127.0.0.1:7001")).unwrap();
        let again = peers.client(2, &info("127.0.0.1:7001")).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let moved = peers.client(2, &info("127.0.0.1:7002")).unwrap();
        assert!(!Arc::ptr_eq(&first, &moved));
        assert!(matches!(
            peers.client(3, &info("controller-3:7000")),
            Err(CallError::BadAddress { id: 3, .. })
        ));
    }

    #[tokio::test]
    async fn a_silent_peer_is_unreachable_within_the_deadline() {
        // A bound UDP socket that never answers: the handshake can only time out.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap().to_string();
        let now = std::time::SystemTime::now();
        let day = Duration::from_secs(86400);
        let ca = wire::ClusterCa::create(now, day).unwrap();
        let cert = ca.issue(wire::Role::Controller, "c1", now, day).unwrap();
        let tls = wire::tls::client_config(ca.cert(), Some(&cert), wire::TlsClock::system());
        let endpoint = wire::client_endpoint(
            "127.0.0.1:0".parse().unwrap(),
            tls.unwrap(),
            &wire::TransportOptions::default(),
        )
        .unwrap();
        let peers = Arc::new(Peers::new(endpoint, ClientOptions::default()));
        let mut network = Network::new(peers, 1024);
        let mut link = network.new_client(2, &info(&address)).await;
        let started = Instant::now();
        let request = VoteRequest::new(Vote::new(1, 1), None);
        let option = RPCOption::new(Duration::from_millis(200));
        let result = RaftNetworkV2::vote(&mut link, request, option).await;
        assert!(
            matches!(result, Err(RPCError::Unreachable(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
