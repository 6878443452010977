//! The controller group over real QUIC on 127.0.0.1 (port 0) with certificates from a real
//! cluster CA, every controller in this one process: forming a group, forwarded writes,
//! failover, restart, snapshots for a lagging learner, removal, and refused peers.
//!
//! Nothing here sleeps to decide: every wait is on a condition with a deadline.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;

use controller::raft::message::Forward;
use controller::raft::message::RaftReply;
use controller::raft::message::encode_message;
use controller::raft::{
    LogId, NodeConfig, NodeId, NodeInfo, ObjectKey, RaftMessage, RaftNode, RaftOptions,
    RemoteError, Request, Response, SnapshotLimits, SnapshotMeta, StorageOptions, StoredMembership,
    Vote,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wire::frame::codes;
use wire::identity::{ClusterCa, Role};
use wire::{
    Client, ClientError, ClientOptions, FrameError, Limits, Target, TlsClock, TransportOptions,
};

const DAY: Duration = Duration::from_secs(86400);
const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `check` until it holds or the deadline passes.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pod(name: &str) -> ObjectKey {
    ObjectKey::new("Pod", "default", name)
}

fn put(name: &str, value: &str) -> Request {
    Request::Put {
        key: pod(name),
        value: value.as_bytes().to_vec(),
        expected: None,
    }
}

fn name_of(id: NodeId) -> String {
    format!("c{id}")
}

/// One controller: its Raft node, its wire server, its data directory.
struct Controller {
    id: NodeId,
    info: NodeInfo,
    dir: PathBuf,
    node: RaftNode,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl Controller {
    async fn start(ca: &ClusterCa, id: NodeId, dir: PathBuf, addr: SocketAddr) -> Self {
        Self::start_with(ca, id, dir, addr, RaftOptions::default(), Limits::default()).await
    }

    async fn start_with(
        ca: &ClusterCa,
        id: NodeId,
        dir: PathBuf,
        addr: SocketAddr,
        raft: RaftOptions,
        limits: Limits,
    ) -> Self {
        let cert = ca
            .issue(Role::Controller, &name_of(id), SystemTime::now(), DAY)
            .unwrap();
        let server_tls =
            wire::tls::server_config(ca.cert(), &cert, false, TlsClock::system()).unwrap();
        let endpoint = bind(addr, server_tls).await;
        let addr = endpoint.local_addr().unwrap();
        let client_tls =
            wire::tls::client_config(ca.cert(), Some(&cert), TlsClock::system()).unwrap();
        let dialer = wire::client_endpoint(
            "127.0.0.1:0".parse().unwrap(),
            client_tls,
            &TransportOptions::default(),
        )
        .unwrap();
        let config = NodeConfig {
            id,
            data_dir: dir.clone(),
            storage: StorageOptions::default(),
            raft,
        };
        let client = ClientOptions {
            limits,
            ..ClientOptions::default()
        };
        let node = RaftNode::start(config, dialer, client).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(wire::serve(
            endpoint,
            Arc::new(node.service()),
            wire::ServeOptions {
                limits,
                ..wire::ServeOptions::default()
            },
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            id,
            info: NodeInfo {
                name: name_of(id),
                address: addr.to_string(),
            },
            dir,
            node,
            stop,
            server,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.info.address.parse().unwrap()
    }

    /// Stops the node and its server; returns its data directory and address.
    async fn stop(self) -> (PathBuf, SocketAddr) {
        let addr = self.addr();
        self.node.shutdown().await.unwrap();
        // The database is closed once shutdown returns: the directory opens again at once.
        drop(controller::raft::Storage::open(&self.dir, &StorageOptions::default()).unwrap());
        let _ = self.stop.send(());
        // The node and its database are closed by now. `wire::serve` then lets its QUIC
        // connections drain, for at most `wire::server::DRAIN_LIMIT` (without that bound a
        // controller restarted on its own port once waited out the whole 30 s idle
        // timeout); the guard below only keeps a regression from stalling the suite.
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(3), &mut server)
            .await
            .is_err()
        {
            eprintln!("server {} still draining after 3 s, aborting", self.id);
            server.abort();
        }
        (self.dir, addr)
    }

    fn sees(&self, name: &str, value: &str) -> bool {
        self.node
            .reader()
            .get(&pod(name))
            .unwrap()
            .is_some_and(|object| object.value == value.as_bytes())
    }
}

/// Binds a server endpoint, retrying while a just-closed endpoint still holds the port.
async fn bind(addr: SocketAddr, tls: rustls::ServerConfig) -> quinn::Endpoint {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match wire::server_endpoint(addr, tls.clone(), &TransportOptions::default()) {
            Ok(endpoint) => return endpoint,
            Err(err) if Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("cannot bind {addr}: {err}"),
        }
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Group {
    ca: ClusterCa,
    _root: tempfile::TempDir,
    root: PathBuf,
    members: BTreeMap<NodeId, Controller>,
    limits: Limits,
}

impl Group {
    fn new() -> Self {
        let ca = ClusterCa::create(SystemTime::now(), DAY).unwrap();
        let root = tempfile::tempdir().unwrap();
        Self {
            ca,
            root: root.path().to_path_buf(),
            _root: root,
            members: BTreeMap::new(),
            limits: Limits::default(),
        }
    }

    fn dir(&self, id: NodeId) -> PathBuf {
        self.root.join(format!("c{id}"))
    }

    /// Starts controller 1 with `--init`, then joins `2..=size` as learners and promotes them.
    async fn form(size: u64, raft: RaftOptions) -> Self {
        Self::form_limited(size, raft, Limits::default()).await
    }

    /// As `form`, with `limits` on every stream between controllers.
    async fn form_limited(size: u64, raft: RaftOptions, limits: Limits) -> Self {
        let mut group = Self::new();
        group.limits = limits;
        let first =
            Controller::start_with(&group.ca, 1, group.dir(1), any_port(), raft.clone(), limits)
                .await;
        first.node.initialize(first.info.clone()).await.unwrap();
        wait_until("controller 1 leads", || first.node.is_leader()).await;
        group.members.insert(1, first);
        for id in 2..=size {
            group.join_with(id, raft.clone()).await;
        }
        group
    }

    /// Starts controller `id` and asks the group (through controller 1) to add it.
    async fn join_with(&mut self, id: NodeId, raft: RaftOptions) {
        let joiner =
            Controller::start_with(&self.ca, id, self.dir(id), any_port(), raft, self.limits).await;
        let via = self.members.values().next().unwrap();
        via.node.add_member(id, joiner.info.clone()).await.unwrap();
        self.members.insert(id, joiner);
    }

    fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .members
            .values()
            .filter(|c| c.node.is_leader())
            .map(|c| c.id)
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    fn all_see(&self, name: &str, value: &str) -> bool {
        self.members.values().all(|c| c.sees(name, value))
    }

    async fn stop_all(self) {
        for (_, member) in self.members {
            member.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_form_a_group_and_followers_forward_writes() {
    let group = Group::form(3, RaftOptions::default()).await;
    wait_until("every member sees three voters", || {
        group
            .members
            .values()
            .all(|c| c.node.members().iter().filter(|m| m.voter).count() == 3)
    })
    .await;
    let leader = group.leader().unwrap();
    let members = group.members[&leader].node.members();
    assert_eq!(
        members
            .iter()
            .filter(|m| m.leader)
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        vec![leader]
    );

    // A write on every controller: the leader applies, the followers forward.
    let mut revisions = Vec::new();
    for (id, member) in &group.members {
        let response = member
            .node
            .write(put(&format!("from-{id}"), "v"))
            .await
            .unwrap();
        revisions.push(response.revision());
        assert!(matches!(response, Response::Written { .. }));
    }
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");

    // A conditional write's conflict comes back through forwarding as an answer.
    let follower = group.members.values().find(|c| c.id != leader).unwrap();
    let conflict = follower
        .node
        .write(Request::Put {
            key: pod("from-1"),
            value: b"w".to_vec(),
            expected: Some(0),
        })
        .await
        .unwrap();
    assert!(
        matches!(conflict, Response::Conflict { .. }),
        "{conflict:?}"
    );

    // After a read barrier a follower's local reader holds every earlier write.
    follower.node.write(put("fresh", "yes")).await.unwrap();
    for member in group.members.values() {
        member.node.read_barrier().await.unwrap();
        assert!(member.sees("fresh", "yes"), "controller {}", member.id);
    }
    wait_until("every reader sees every write", || {
        (1..=3).all(|id| group.all_see(&format!("from-{id}"), "v"))
    })
    .await;
    group.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_elects_a_new_leader_and_a_restarted_node_catches_up() {
    let mut group = Group::form(3, RaftOptions::default()).await;
    let old = group.leader().unwrap();
    group.members[&old]
        .node
        .write(put("before", "1"))
        .await
        .unwrap();
    wait_until("before replicated", || group.all_see("before", "1")).await;

    let stopped_at = Instant::now();
    let (dir, addr) = group.members.remove(&old).unwrap().stop().await;
    wait_until("a new leader", || {
        group.leader().is_some_and(|id| id != old)
    })
    .await;
    let elected = stopped_at.elapsed();
    let survivor = group.members.values().next().unwrap();
    survivor.node.write(put("after", "2")).await.unwrap();
    let writable = stopped_at.elapsed();
    println!(
        "failover: new leader after {} ms, first write done after {} ms",
        elected.as_millis(),
        writable.as_millis()
    );

    // More writes while the old leader is down; it comes back from its directory on the
    // same address and catches up.
    for i in 0..20 {
        survivor
            .node
            .write(put(&format!("while-down-{i}"), "x"))
            .await
            .unwrap();
    }
    let back = Controller::start(&group.ca, old, dir, addr).await;
    back.node.wait_for_recovery(DEADLINE).await.unwrap();
    group.members.insert(old, back);
    wait_until("the restarted node catches up", || {
        group.all_see("after", "2") && group.all_see("while-down-19", "x")
    })
    .await;
    // It takes writes again, forwarded or as leader.
    group.members[&old]
        .node
        .write(put("back", "3"))
        .await
        .unwrap();
    wait_until("back replicated", || group.all_see("back", "3")).await;
    group.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joining_after_a_purge_gets_a_snapshot() {
    let raft = RaftOptions {
        snapshot_every: 20,
        keep_after_snapshot: 5,
        replication_lag_threshold: 30,
        ..RaftOptions::default()
    };
    let mut group = Group::form(1, raft.clone()).await;
    let first = &group.members[&1];
    for i in 0..60 {
        first
            .node
            .write(put(&format!("early-{i}"), "e"))
            .await
            .unwrap();
    }
    wait_until("the leader snapshots and purges", || {
        let status = first.node.status();
        status.snapshot >= Some(40) && status.purged.is_some()
    })
    .await;
    let purged = first.node.status().purged;

    group.join_with(2, raft).await;
    let learner = &group.members[&2];
    wait_until("the newcomer installed a snapshot and caught up", || {
        learner.node.status().snapshot.is_some() && learner.sees("early-59", "e")
    })
    .await;
    let status = learner.node.status();
    assert!(
        status.snapshot > Some(0) && status.snapshot >= purged,
        "{status:?}, leader purged {purged:?}"
    );
    assert!(learner.dir.join("snapshot.bin").exists());
    assert!(learner.sees("early-0", "e"));
    // And it is a voter that replicates new writes.
    learner.node.write(put("late", "l")).await.unwrap();
    wait_until("late replicated", || group.all_see("late", "l")).await;
    group.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_larger_than_a_frame_reach_a_newcomer_in_parts() {
    let limits = Limits {
        max_frame: 64 * 1024,
        ..Limits::default()
    };
    let mut group = Group::form_limited(1, RaftOptions::default(), limits).await;
    let value = "v".repeat(16 * 1024);
    for i in 0..30 {
        group.members[&1]
            .node
            .write(put(&format!("big-{i}"), &value))
            .await
            .unwrap();
    }
    // About 480 KiB of log, sent in batches that each fit in 64 KiB frames.
    group.join_with(2, RaftOptions::default()).await;
    let newcomer = &group.members[&2];
    assert_eq!(newcomer.node.status().snapshot, None);
    wait_until("the newcomer has every entry", || {
        (0..30).all(|i| newcomer.sees(&format!("big-{i}"), &value))
    })
    .await;
    group.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_leaves_the_group_and_writes_continue() {
    let mut group = Group::form(3, RaftOptions::default()).await;
    let leader = group.leader().unwrap();
    let gone = *group.members.keys().find(|id| **id != leader).unwrap();
    let keeper = *group
        .members
        .keys()
        .find(|id| **id != leader && **id != gone)
        .unwrap();
    // Asked on a follower: the removal is forwarded to the leader.
    group.members[&keeper]
        .node
        .remove_member(gone)
        .await
        .unwrap();
    wait_until("the leader lists two members", || {
        let members = group.members[&leader].node.members();
        members.len() == 2 && members.iter().all(|m| m.id != gone)
    })
    .await;
    group.members.remove(&gone).unwrap().stop().await;
    group.members[&keeper]
        .node
        .write(put("two", "2"))
        .await
        .unwrap();
    wait_until("both remaining see it", || group.all_see("two", "2")).await;
    group.stop_all().await;
}

fn client_for(group: &Group, role: Role, name: &str, to: &Controller) -> Client {
    let cert = group.ca.issue(role, name, SystemTime::now(), DAY).unwrap();
    let tls = wire::tls::client_config(group.ca.cert(), Some(&cert), TlsClock::system()).unwrap();
    let endpoint = wire::client_endpoint(any_port(), tls, &TransportOptions::default()).unwrap();
    let target = Target {
        addr: to.addr(),
        name: Some(to.info.name.clone()),
    };
    Client::new(endpoint, vec![target], ClientOptions::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_controllers_may_send_raft_messages_and_garbage_is_refused() {
    let group = Group::form(1, RaftOptions::default()).await;
    let node = &group.members[&1];
    let message = encode_message(&RaftMessage::Forward(Forward::Write(put("evil", "x")))).unwrap();

    // An agent certificate gets a refusal and changes nothing.
    let agent = client_for(&group, Role::Agent, "node-a", node);
    let reply = agent.call_bytes(&message).await.unwrap();
    let reply: RaftReply = wire::frame::decode(&reply).unwrap();
    match reply {
        RaftReply::Failed(err @ RemoteError::Forbidden { .. }) => assert!(!err.is_retryable()),
        other => panic!("agent was not refused: {other:?}"),
    }
    assert!(!node.sees("evil", "x"));

    // Garbage from a controller: that stream is reset as malformed, nothing else happens.
    let peer = client_for(&group, Role::Controller, "c9", node);
    for garbage in [
        vec![0xff, 0xff, 0xff, 0xff, 0x01],
        vec![0xff],
        b"hello".to_vec(),
    ] {
        match peer.call_bytes(&garbage).await {
            Err(ClientError::Frame(FrameError::Reset { code })) => {
                assert_eq!(code, codes::MALFORMED)
            }
            other => panic!("garbage was not refused: {other:?}"),
        }
    }
    // The same connection and the node still work.
    let reply = peer.call_bytes(&message).await.unwrap();
    assert!(matches!(
        wire::frame::decode::<RaftReply>(&reply).unwrap(),
        RaftReply::Forwarded(_)
    ));
    wait_until("the controller's write applied", || node.sees("evil", "x")).await;
    node.node.write(put("still", "ok")).await.unwrap();
    group.stop_all().await;
}

type LeaderId = <controller::raft::TypeConfig as openraft::RaftTypeConfig>::LeaderId;

/// Sends a snapshot header and `data` the way a leader would, and returns the refusal.
async fn offer_snapshot(
    peer: &Client,
    vote_term: u64,
    snapshot_term: u64,
    size: u64,
    data: &[u8],
    finish: bool,
) -> RemoteError {
    let meta = SnapshotMeta {
        last_log_id: Some(LogId::new(
            LeaderId {
                term: snapshot_term,
                node_id: 9,
            },
            1000,
        )),
        last_membership: StoredMembership::default(),
    };
    let header = encode_message(&RaftMessage::InstallSnapshot {
        vote: Vote::new(vote_term, 9),
        meta,
        size,
    })
    .unwrap();
    let mut stream = peer.open(&header).await.unwrap();
    for chunk in data.chunks(256) {
        // The receiver may stop reading early; its answer below is what counts.
        if stream.send_frame(chunk).await.is_err() {
            break;
        }
    }
    if finish {
        let _ = stream.finish();
    }
    let reply = stream.recv_frame().await.unwrap().unwrap();
    match wire::frame::decode::<RaftReply>(&reply).unwrap() {
        RaftReply::Failed(err) => err,
        other => panic!("snapshot accepted: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_past_their_limits_or_inconsistent_are_refused_without_harm() {
    let raft = RaftOptions {
        snapshot: SnapshotLimits {
            max_size: 1024,
            timeout: Duration::from_millis(500),
            chunk_size: 256,
        },
        ..RaftOptions::default()
    };
    let group = Group::form(1, raft).await;
    let node = &group.members[&1];
    node.node.write(put("kept", "k")).await.unwrap();
    let peer = client_for(&group, Role::Controller, "c9", node);

    let err = offer_snapshot(&peer, 1, 1, 1 << 20, &[], true).await;
    assert_eq!(
        err,
        RemoteError::SnapshotTooLarge {
            size: 1 << 20,
            limit: 1024
        }
    );
    assert!(!err.is_retryable());
    let err = offer_snapshot(&peer, 1, 1, 100, &[0; 200], true).await;
    assert_eq!(
        err,
        RemoteError::SnapshotTooLarge {
            size: 200,
            limit: 100
        }
    );
    let err = offer_snapshot(&peer, 1, 1, 100, &[0; 10], true).await;
    assert_eq!(
        err,
        RemoteError::SnapshotIncomplete {
            expected: 100,
            received: 10
        }
    );
    assert!(err.is_retryable());
    let err = offer_snapshot(&peer, 1, 1, 100, &[0; 10], false).await;
    assert!(
        matches!(err, RemoteError::SnapshotTimeout { .. }),
        "{err:?}"
    );
    // openraft would panic on these two; the service refuses them first.
    let err = offer_snapshot(&peer, 1, 5, 16, &[0; 16], true).await;
    assert!(
        matches!(err, RemoteError::SnapshotInconsistent { .. }),
        "{err:?}"
    );
    let err = offer_snapshot(&peer, 1, 1, 16, &[0xff; 16], true).await;
    assert!(
        matches!(err, RemoteError::SnapshotCorrupted { .. }),
        "{err:?}"
    );

    // The node kept its state and still takes writes.
    assert!(node.sees("kept", "k"));
    node.node.write(put("after", "a")).await.unwrap();
    assert!(node.sees("after", "a"));
    group.stop_all().await;
}
