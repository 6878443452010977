//! Liveness over a real single-node Raft group: the test plays leader or follower and
//! moves time by passing instants, so nothing here sleeps to decide a result.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use proto::Object;
use proto::api::{ErrorCode, Request, Response};
use proto::resources::Node;
use tokio::sync::broadcast;

use super::*;
use crate::api::tests::{RaftCluster, admin, agent, service};
use crate::api::{ApiService, Applied};
use crate::raft::StateReader;

/// The single-node group, with leadership the test decides and heartbeats handed
/// straight to the liveness under test.
struct Group {
    raft: Arc<RaftCluster>,
    leader: AtomicBool,
    sink: OnceLock<Arc<Liveness<Group>>>,
}

impl Cluster for Group {
    async fn write(&self, request: raft::Request) -> Result<raft::Response, ClusterError> {
        self.raft.write(request).await
    }
    async fn read_barrier(&self) -> Result<(), ClusterError> {
        self.raft.read_barrier().await
    }
    fn reader(&self) -> StateReader {
        self.raft.reader()
    }
    fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.raft.subscribe()
    }
}

impl Leadership for Group {
    fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }
    async fn heartbeat(&self, node: &str) -> Result<(), ClusterError> {
        if !self.is_leader() {
            return Err(ClusterError::NoQuorum);
        }
        if let Some(liveness) = self.sink.get() {
            liveness.record(node);
        }
        Ok(())
    }
}

const OPTIONS: LivenessOptions = LivenessOptions {
    interval: Duration::from_secs(10),
    grace: Duration::from_secs(40),
};

struct Setup {
    group: Arc<Group>,
    liveness: Arc<Liveness<Group>>,
    api: ApiService<RaftCluster>,
}

async fn setup() -> Setup {
    let (raft, api) = service().await;
    let group = Arc::new(Group {
        raft,
        leader: AtomicBool::new(true),
        sink: OnceLock::new(),
    });
    let liveness = Liveness::new(Arc::clone(&group), OPTIONS);
    assert!(group.sink.set(Arc::clone(&liveness)).is_ok());
    Setup {
        group,
        liveness,
        api,
    }
}

async fn register(api: &ApiService<RaftCluster>, name: &str) {
    let mut node = Node::default();
    node.metadata.name = name.into();
    let answer = api
        .handle(
            &agent(name),
            Request::Apply {
                objects: vec![Object::Node(node)],
                dry_run: false,
            },
        )
        .await;
    assert!(matches!(answer, Response::Applied { .. }), "{answer:?}");
}

fn node(setup: &Setup, name: &str) -> (u64, Node) {
    setup.liveness.stored(name).unwrap().expect("node stored")
}

/// Waits for the condition write a call spawned (writes are asynchronous).
async fn ready_becomes(setup: &Setup, name: &str, status: &str) -> (u64, Node) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (rev, n) = node(setup, name);
        if ready_status(&n) == Some(status) && setup.liveness.table().writing.is_empty() {
            return (rev, n);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Ready of {name} never became {status}: {:?}",
            n.status.conditions
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_heartbeat_makes_a_node_ready_once_and_later_ones_write_nothing() {
    let s = setup().await;
    register(&s.api, "edge-1").await;
    let answer = s.liveness.handle(&agent("edge-1"), "edge-1").await;
    assert_eq!(answer, Response::HeartbeatAck { interval_secs: 10 });
    let (revision, n) = ready_becomes(&s, "edge-1", "True").await;
    let ready = &n.status.conditions[0];
    assert_eq!(ready.reason.as_deref(), Some(REASON_HEARTBEAT));
    assert!(ready.last_transition_time.is_some());
    for _ in 0..20 {
        s.liveness.handle(&agent("edge-1"), "edge-1").await;
    }
    s.liveness.check_at(Instant::now());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        node(&s, "edge-1").0,
        revision,
        "heartbeats wrote to the store"
    );
}

#[tokio::test]
async fn a_silent_node_becomes_unknown_after_the_grace_period_and_comes_back() {
    let s = setup().await;
    register(&s.api, "edge-1").await;
    let start = Instant::now();
    s.liveness.record_at("edge-1", start);
    ready_becomes(&s, "edge-1", "True").await;
    s.liveness
        .check_at(start + OPTIONS.grace - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ready_status(&node(&s, "edge-1").1), Some("True"));
    s.liveness
        .check_at(start + OPTIONS.grace + Duration::from_secs(1));
    let (_, n) = ready_becomes(&s, "edge-1", "Unknown").await;
    assert_eq!(
        n.status.conditions[0].reason.as_deref(),
        Some(REASON_UNKNOWN)
    );
    s.liveness.record_at("edge-1", start + OPTIONS.grace * 2);
    ready_becomes(&s, "edge-1", "True").await;
}

#[tokio::test]
async fn a_new_leader_gives_every_node_a_fresh_grace_period() {
    let s = setup().await;
    register(&s.api, "edge-1").await;
    let start = Instant::now();
    s.liveness.record_at("edge-1", start);
    ready_becomes(&s, "edge-1", "True").await;
    // Leadership lost: the table goes. Taken again much later: the node is counted as
    // seen at the take-over, not at its last heartbeat to the old term.
    s.group.leader.store(false, Ordering::SeqCst);
    s.liveness.check_at(start + Duration::from_secs(5));
    assert!(s.liveness.table().seen.is_empty());
    s.group.leader.store(true, Ordering::SeqCst);
    let taken_over = start + Duration::from_secs(600);
    s.liveness.check_at(taken_over);
    s.liveness
        .check_at(taken_over + OPTIONS.grace - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ready_status(&node(&s, "edge-1").1), Some("True"));
    s.liveness
        .check_at(taken_over + OPTIONS.grace + Duration::from_secs(1));
    ready_becomes(&s, "edge-1", "Unknown").await;
}

#[tokio::test]
async fn a_follower_marks_nothing() {
    let s = setup().await;
    register(&s.api, "edge-1").await;
    let start = Instant::now();
    s.liveness.record_at("edge-1", start);
    let (revision, _) = ready_becomes(&s, "edge-1", "True").await;
    s.group.leader.store(false, Ordering::SeqCst);
    s.liveness.check_at(start + OPTIONS.grace * 10);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(node(&s, "edge-1").0, revision);
}

#[tokio::test]
async fn only_a_nodes_own_agent_may_send_its_heartbeats() {
    let s = setup().await;
    register(&s.api, "edge-1").await;
    for caller in [agent("edge-2"), admin()] {
        let Response::Error(e) = s.liveness.handle(&caller, "edge-1").await else {
            panic!("{caller} sent a heartbeat for edge-1");
        };
        assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
        assert!(e.message.contains("edge-1"), "{e}");
    }
    let Response::Error(e) = s.liveness.handle(&agent("edge-9"), "edge-9").await else {
        panic!("an unregistered node's heartbeat was taken");
    };
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");
    assert!(e.message.contains("apply its Node"), "{e}");
    // Not the leader and no way to it: retryable.
    s.group.leader.store(false, Ordering::SeqCst);
    let Response::Error(e) = s.liveness.handle(&agent("edge-1"), "edge-1").await else {
        panic!("a heartbeat was taken with no leader");
    };
    assert!(e.is_retryable(), "{e}");
}

#[tokio::test]
async fn a_concurrent_change_of_the_node_is_kept() {
    let s = setup().await;
    register(&s.api, "edge-1").await;
    let start = Instant::now();
    s.liveness.record_at("edge-1", start);
    ready_becomes(&s, "edge-1", "True").await;
    // The agent adds a label; the Unknown write that follows keeps it.
    let mut n = node(&s, "edge-1").1;
    n.metadata.labels = [("zone".to_string(), "a".to_string())].into();
    n.metadata.resource_version = None;
    let answer = s
        .api
        .handle(
            &agent("edge-1"),
            Request::Apply {
                objects: vec![Object::Node(n)],
                dry_run: false,
            },
        )
        .await;
    assert!(matches!(answer, Response::Applied { .. }), "{answer:?}");
    s.liveness.check_at(start + OPTIONS.grace * 2);
    let (_, n) = ready_becomes(&s, "edge-1", "Unknown").await;
    assert_eq!(n.metadata.labels.get("zone"), Some(&"a".to_string()));
}

#[test]
fn options_need_a_grace_of_two_intervals() {
    assert!(LivenessOptions::default().validate().is_ok());
    let bad = LivenessOptions {
        interval: Duration::from_secs(10),
        grace: Duration::from_secs(15),
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .contains("two heartbeat intervals")
    );
    let zero = LivenessOptions {
        interval: Duration::ZERO,
        grace: Duration::from_secs(15),
    };
    assert!(zero.validate().is_err());
}
