//! Tests of the API service over a real single-node openraft group (redb store in a temp
//! dir), and over QUIC.
//!
//! [`RaftCluster`] is the test implementation of [`Cluster`]: writes go through
//! `Raft::client_write`, barriers through `ensure_linearizable`, and the change feed is the
//! state machine's own.

mod quic;
mod service;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::{Config, Raft, ReadPolicy};
use proto::Object;
use proto::api::{ApiError, Request, Response};
use tokio::sync::broadcast;
use wire::Role;

use super::{ApiOptions, ApiService, Applied, Caller, Cluster, ClusterError};
use crate::raft::tests::single_node::NoPeers;
use crate::raft::{NodeInfo, StateMachine, StateReader, Storage, StorageOptions, TypeConfig};

pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// One controller that leads a group of one.
pub(crate) struct RaftCluster {
    raft: Raft<TypeConfig, StateMachine>,
    reader: StateReader,
    feed: broadcast::Sender<Applied>,
    /// When set, writes and barriers fail as if the group had lost its quorum.
    pub(crate) cut_off: AtomicBool,
    _dir: tempfile::TempDir,
}

impl RaftCluster {
    pub(crate) async fn start() -> Arc<RaftCluster> {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
        let config = Config {
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            ..Default::default()
        };
        let config = Arc::new(config.validate().unwrap());
        let raft = Raft::new(
            1,
            config,
            NoPeers,
            storage.log_store(),
            storage.state_machine(),
        )
        .await
        .unwrap();
        let me = NodeInfo {
            name: "controller-1".into(),
            address: "127.0.0.1:7000".into(),
        };
        raft.initialize(BTreeMap::from([(1, me)])).await.unwrap();
        raft.wait(Some(DEADLINE))
            .current_leader(1, "single voter leads")
            .await
            .unwrap();
        Arc::new(RaftCluster {
            raft,
            reader: storage.reader(),
            feed: storage.changes(),
            cut_off: AtomicBool::new(false),
            _dir: dir,
        })
    }

    fn check_reachable(&self) -> Result<(), ClusterError> {
        if self.cut_off.load(Ordering::SeqCst) {
            return Err(ClusterError::NoQuorum);
        }
        Ok(())
    }
}

impl Cluster for RaftCluster {
    async fn write(
        &self,
        request: crate::raft::Request,
    ) -> Result<crate::raft::Response, ClusterError> {
        self.check_reachable()?;
        let written = self
            .raft
            .client_write(request)
            .await
            .map_err(|_| ClusterError::NoQuorum)?;
        Ok(written.data)
    }

    async fn read_barrier(&self) -> Result<(), ClusterError> {
        self.check_reachable()?;
        self.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map_err(|_| ClusterError::NoQuorum)?;
        Ok(())
    }

    fn reader(&self) -> StateReader {
        self.reader.clone()
    }

    fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.feed.subscribe()
    }
}

/// A service over a fresh single-node group.
pub(crate) async fn service_with(
    options: ApiOptions,
) -> (Arc<RaftCluster>, ApiService<RaftCluster>) {
    let cluster = RaftCluster::start().await;
    let service = ApiService::start(Arc::clone(&cluster), options).unwrap();
    (cluster, service)
}

pub(crate) async fn service() -> (Arc<RaftCluster>, ApiService<RaftCluster>) {
    service_with(ApiOptions::default()).await
}

pub(crate) fn admin() -> Caller {
    Caller {
        role: Role::Admin,
        name: "ops".into(),
    }
}

pub(crate) fn agent(name: &str) -> Caller {
    Caller {
        role: Role::Agent,
        name: name.into(),
    }
}

/// Every object of a YAML manifest (documents separated by `---`).
pub(crate) fn objects(yaml: &str) -> Vec<Object> {
    let manifest = proto::parse("test.yaml", yaml.as_bytes()).expect("manifest parses");
    manifest.objects.into_iter().map(|o| o.object).collect()
}

pub(crate) fn object(yaml: &str) -> Object {
    objects(yaml).remove(0)
}

pub(crate) fn config_map(name: &str, namespace: &str, app: &str, value: &str) -> Object {
    object(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{app: {app}}}}}\ndata: {{k: \"{value}\"}}\n"
    ))
}

pub(crate) fn pod_on(name: &str, node: &str) -> Object {
    object(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  \
         volumes: [{{name: tls, secret: {{secretName: {name}-tls}}}}]\n  \
         containers: [{{name: c, image: busybox}}]\n"
    ))
}

/// Applies as admin and returns the response, which must not be an error.
pub(crate) async fn apply<C: Cluster>(service: &ApiService<C>, objects: Vec<Object>) -> Response {
    let response = service
        .handle(
            &admin(),
            Request::Apply {
                objects,
                dry_run: false,
            },
        )
        .await;
    assert!(!matches!(response, Response::Error(_)), "{response:?}");
    response
}

/// Waits until the watch history has taken in `revision` (the feed runs beside writes).
pub(crate) async fn history_reaches<C: Cluster>(service: &ApiService<C>, revision: u64) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while service.history_revision() < revision {
        assert!(
            std::time::Instant::now() < deadline,
            "watch history stuck at {} before {revision}",
            service.history_revision()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The error of a response that must be one.
pub(crate) fn error(response: Response) -> ApiError {
    match response {
        Response::Error(err) => err,
        other => panic!("expected an error, got {other:?}"),
    }
}
