//! Node liveness: the agents' heartbeats, kept in the leader's memory, and each Node's
//! `Ready` condition, written through Raft only when it changes.
//!
//! Owns: the heartbeat call (`Request::Heartbeat`, an agent for its own node only), the
//! table of last heartbeats, the grace period, and the condition writes. Does not own:
//! getting a heartbeat to the leader (`RaftNode::heartbeat` forwards it), or the Node
//! object's other fields (the agent registers its node by apply).
//!
//! ```text
//! agent ── Heartbeat{node} ──► any controller ──forward──► leader: seen[node] = now
//!                                                      └─ stored Ready ≠ True? write True
//! leader, every tick: Ready = True and now − seen[node] > grace? write Unknown
//! ```
//!
//! A heartbeat costs no disk: only the transitions (an agent comes back, an agent falls
//! silent) are Raft writes. A controller that becomes leader has no table, so it counts
//! every node as seen at the moment it took over: each node gets a fresh grace period
//! instead of being marked lost for the old leader's silence. A follower keeps nothing.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use proto::Object;
use proto::api::{ApiError, ErrorCode, ObjectKey, Response};
use proto::resources::{Kind, Node, NodeCondition};
use tracing::{debug, info};
use wire::Role;

use crate::api::{Caller, Cluster, ClusterError, codec};
use crate::raft;

/// The condition this module keeps.
pub const READY: &str = "Ready";
/// Reason of `Ready = True` set by a heartbeat.
pub const REASON_HEARTBEAT: &str = "AgentHeartbeat";
/// Reason of `Ready = Unknown` set when heartbeats stop (Kubernetes' word for it).
pub const REASON_UNKNOWN: &str = "NodeStatusUnknown";

/// How often agents report and how long a silent node stays `Ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessOptions {
    /// The heartbeat interval agents are told to keep.
    pub interval: Duration,
    /// Silence after which a node's `Ready` becomes `Unknown`.
    pub grace: Duration,
}

impl Default for LivenessOptions {
    /// Kubernetes' defaults: status every 10 s, lost after 40 s.
    fn default() -> Self {
        LivenessOptions {
            interval: Duration::from_secs(10),
            grace: Duration::from_secs(40),
        }
    }
}

impl LivenessOptions {
    /// Checks that a grace period spans at least two heartbeats.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("the heartbeat interval must be above zero".into());
        }
        if self.grace < self.interval * 2 {
            return Err(format!(
                "the node grace period ({:?}) must be at least two heartbeat intervals ({:?})",
                self.grace, self.interval
            ));
        }
        Ok(())
    }

    /// How often the leader looks for silent nodes.
    pub fn tick(&self) -> Duration {
        (self.grace / 4).max(Duration::from_millis(100))
    }
}

/// What liveness needs beyond the store: who leads, and a way to the leader.
pub trait Leadership: Send + Sync + 'static {
    /// Whether this controller leads now.
    fn is_leader(&self) -> bool;

    /// Hands a heartbeat to the leader (this controller's own [`Liveness::record`] if it
    /// leads).
    fn heartbeat(&self, node: &str) -> impl Future<Output = Result<(), ClusterError>> + Send;
}

#[derive(Debug, Default)]
struct Table {
    /// Last heartbeat per node, while this controller leads.
    seen: HashMap<String, Instant>,
    /// When this controller took over, or `None` while it follows.
    leading_since: Option<Instant>,
    /// Nodes with a condition write in flight.
    writing: HashSet<String>,
}

/// Heartbeats and the `Ready` condition; see the module docs.
#[derive(Debug)]
pub struct Liveness<C> {
    cluster: Arc<C>,
    options: LivenessOptions,
    table: Mutex<Table>,
}

impl<C: Cluster + Leadership> Liveness<C> {
    pub fn new(cluster: Arc<C>, options: LivenessOptions) -> Arc<Self> {
        Arc::new(Liveness {
            cluster,
            options,
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers `Request::Heartbeat` from `caller` on any controller.
    pub async fn handle(&self, caller: &Caller, node: &str) -> Response {
        match self.heartbeat(caller, node).await {
            Ok(()) => Response::HeartbeatAck {
                interval_secs: self.options.interval.as_secs().max(1) as u32,
            },
            Err(e) => Response::Error(e),
        }
    }

    async fn heartbeat(&self, caller: &Caller, node: &str) -> Result<(), ApiError> {
        if caller.role != Role::Agent || caller.name != node {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "{caller} may not send heartbeats for node {:.64}: only that node's agent may",
                    node
                ),
            ));
        }
        // This controller's copy may lag the registration by a moment; the agent tries
        // again at its next heartbeat.
        if self.stored(node).map_err(internal)?.is_none() {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("node {node} is not registered: apply its Node object first"),
            ));
        }
        self.cluster.heartbeat(node).await.map_err(|e| {
            let code = if e.is_retryable() {
                ErrorCode::Unavailable
            } else {
                ErrorCode::Internal
            };
            ApiError::new(code, format!("heartbeat of node {node}: {e}"))
        })
    }

    /// A heartbeat reached this controller as leader (the Raft service's sink).
    pub fn record(self: &Arc<Self>, node: &str) {
        self.record_at(node, Instant::now());
    }

    fn record_at(self: &Arc<Self>, node: &str, now: Instant) {
        {
            let mut table = self.table();
            if table.leading_since.is_none() {
                table.leading_since = Some(now);
            }
            table.seen.insert(node.to_owned(), now);
        }
        match self.stored(node) {
            Ok(Some((_, stored))) if ready_status(&stored) != Some("True") => {
                self.spawn_write(node, true);
            }
            Ok(_) => {}
            Err(e) => debug!(node, error = %e, "reading a node for its heartbeat"),
        }
    }

    /// One look for silent nodes, at `now`. Writes nothing unless a condition changes.
    pub fn check_at(self: &Arc<Self>, now: Instant) {
        if !self.cluster.is_leader() {
            let mut table = self.table();
            table.seen.clear();
            table.leading_since = None;
            return;
        }
        let since = *self.table().leading_since.get_or_insert(now);
        let listing = match self.cluster.reader().list(Kind::Node.name(), Some("")) {
            Ok(listing) => listing,
            Err(e) => {
                debug!(error = %e, "listing nodes for liveness");
                return;
            }
        };
        for (key, stored) in &listing.objects {
            let Ok(Object::Node(node)) = codec::decode(key, stored) else {
                continue;
            };
            if ready_status(&node) != Some("True") {
                continue;
            }
            let last = self
                .table()
                .seen
                .get(&key.name)
                .copied()
                .unwrap_or(since)
                .max(since);
            if now.saturating_duration_since(last) > self.options.grace {
                self.spawn_write(&key.name, false);
            }
        }
    }

    /// Runs [`check_at`](Self::check_at) every tick until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.options.tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check_at(Instant::now());
        }
    }

    fn spawn_write(self: &Arc<Self>, node: &str, ready: bool) {
        if !self.table().writing.insert(node.to_owned()) {
            return;
        }
        let this = Arc::clone(self);
        let node = node.to_owned();
        tokio::spawn(async move {
            if let Err(e) = this.write_ready(&node, ready).await {
                debug!(node, error = %e, "writing a node's Ready condition");
            }
            this.table().writing.remove(&node);
        });
    }

    /// Sets `Ready` to True or Unknown if it is not already, guarded by the object's
    /// revision (a concurrent write wins; the next tick or heartbeat looks again).
    async fn write_ready(&self, name: &str, ready: bool) -> Result<(), String> {
        let Some((revision, mut node)) = self.stored(name).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let (status, reason, message) = if ready {
            ("True", REASON_HEARTBEAT, "the agent is sending heartbeats")
        } else {
            (
                "Unknown",
                REASON_UNKNOWN,
                "the agent stopped sending heartbeats",
            )
        };
        if ready_status(&node) == Some(status) {
            return Ok(());
        }
        let condition = NodeCondition {
            kind: READY.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(
                humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            ),
        };
        let conditions = &mut node.status.conditions;
        match conditions.iter_mut().find(|c| c.kind == READY) {
            Some(existing) => *existing = condition,
            None => conditions.push(condition),
        }
        let key = node_key(name);
        let value = codec::encode(&Object::Node(node)).map_err(|e| e.to_string())?;
        let answer = self
            .cluster
            .write(raft::Request::Put {
                key,
                value,
                expected: Some(revision),
            })
            .await
            .map_err(|e| e.to_string())?;
        if let raft::Response::Written { .. } = answer {
            info!(node = name, ready = status, "node condition changed");
        }
        Ok(())
    }

    /// The node's stored object and its revision, from this controller's copy.
    fn stored(&self, name: &str) -> Result<Option<(u64, Node)>, String> {
        let key = node_key(name);
        let Some(stored) = self.cluster.reader().get(&key).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        match codec::decode(&key, &stored).map_err(|e| e.to_string())? {
            Object::Node(node) => Ok(Some((stored.mod_revision, node))),
            _ => Err(format!("stored object {key} is not a Node")),
        }
    }
}

fn node_key(name: &str) -> raft::ObjectKey {
    codec::store_key(&ObjectKey {
        kind: Kind::Node,
        namespace: None,
        name: name.to_owned(),
    })
}

/// The status of the node's `Ready` condition, if it has one.
pub fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .conditions
        .iter()
        .find(|c| c.kind == READY)
        .map(|c| c.status.as_str())
}

fn internal(message: String) -> ApiError {
    ApiError::new(ErrorCode::Internal, message)
}

#[cfg(test)]
mod tests;
