//! `moor controller`: one member of the controller group, in the foreground until SIGINT
//! or SIGTERM.
//!
//! ```text
//! --init? ─► bootstrap::init (CA, identity, admin.conf)
//! --join? ─► joiner::join (key, join call, CA + certificate, member.json, join.json)
//! bootstrap::load ─► one QUIC endpoint on --listen (serves, and dials the other members)
//!   ├─ RaftNode (raft.redb) ─ initialize once, or rejoin by itself
//!   ├─ ApiService over NodeCluster (writes via Raft, reads local, watches from the feed)
//!   ├─ JoinService: tokens, joins (join ALPN), admission of joined controllers
//!   ├─ Liveness: agents' heartbeats (leader's memory), nodes' Ready condition
//!   ├─ join.json present? ─► joiner::admit in the background until the group adds us
//!   └─ wire::serve(Dispatch): first byte RAFT_TAG ─► Raft service; token and admission
//!      calls ─► JoinService; else ─► API; cert-less calls on the join ALPN ─► JoinService
//! ```
//!
//! Owns: putting the pieces together and the order they start and stop in. Does not own
//! any of the pieces. An idle controller writes nothing and logs nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use wire::frame::{FrameError, FramedStream};
use wire::{Handler, Peer, unspecified_like};

use crate::api::{ApiOptions, ApiService, Applied, Caller, Cluster, ClusterError};
use crate::bootstrap::{self, BootstrapError, InitOptions};
use crate::join::{Group, JoinService};
use crate::liveness::{Leadership, Liveness, LivenessOptions};
use crate::raft::{
    NodeConfig, NodeError, NodeId, NodeInfo, Profile, RaftNode, RaftOptions, RaftService, Request,
    Response, StateReader, StorageOptions, is_raft_call,
};

/// What `moor controller` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    /// Make a new cluster first.
    pub init: Option<InitArgs>,
    /// Join a running cluster first.
    pub join: Option<crate::joiner::JoinOptions>,
    /// Raft timings: `lan` or `slow-disk`.
    pub profile: String,
    /// Heartbeat interval and grace period of agents.
    pub liveness: LivenessOptions,
    /// The secrets key file, if not `DATA_DIR/pki/secrets.key` (kept apart from the
    /// state files, see `crate::sealing`).
    pub secrets_key: Option<PathBuf>,
}

/// `--init`'s settings.
#[derive(Debug, Clone)]
pub struct InitArgs {
    pub name: String,
    pub listen: SocketAddr,
    pub advertise: Option<SocketAddr>,
    /// `~/.moor/config`, written if absent.
    pub user_config: Option<PathBuf>,
}

/// Why the controller could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Profile(#[from] crate::raft::config::ConfigError),
    #[error("the raft node: {0}")]
    Node(Box<NodeError>),
    #[error("tls settings: {0}")]
    Tls(#[from] wire::tls::TlsError),
    #[error("listen on {addr}: {source}")]
    Endpoint {
        addr: SocketAddr,
        #[source]
        source: wire::EndpointError,
    },
    #[error("start the event loop: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("signal handling: {0}")]
    Signal(#[source] std::io::Error),
    #[error("the api: {0}")]
    Api(#[source] crate::raft::StoreError),
    #[error(transparent)]
    Join(Box<crate::joiner::JoinerError>),
    #[error("the secrets key: {0}")]
    Secrets(crate::sealing::SealError),
}

/// `--secrets-key`, or its default place in the data directory.
fn secrets_key_path(options: &Options) -> PathBuf {
    options
        .secrets_key
        .clone()
        .unwrap_or_else(|| bootstrap::secrets_key(&options.data_dir))
}

impl From<crate::joiner::JoinerError> for DaemonError {
    fn from(e: crate::joiner::JoinerError) -> Self {
        DaemonError::Join(Box::new(e))
    }
}

impl From<NodeError> for DaemonError {
    fn from(e: NodeError) -> Self {
        DaemonError::Node(Box::new(e))
    }
}

/// Runs the controller until a signal stops it.
pub fn run(options: Options) -> Result<(), DaemonError> {
    let profile: Profile = options.profile.parse()?;
    let fresh = match &options.init {
        Some(init) => {
            let key_path = secrets_key_path(&options);
            let done = bootstrap::init(&InitOptions {
                data_dir: options.data_dir.clone(),
                name: init.name.clone(),
                listen: init.listen,
                advertise: init.advertise,
                user_config: init.user_config.clone(),
                now: std::time::SystemTime::now(),
            })?;
            let key = crate::sealing::SecretsKey::generate().map_err(DaemonError::Secrets)?;
            if let Some(dir) = key_path.parent() {
                bootstrap::create_private_dir(dir)?;
            }
            key.save(&key_path).map_err(DaemonError::Secrets)?;
            eprintln!(
                "moor: initialised a new cluster; controller {} (id {}) at {}; admin credentials in {}{}",
                done.member.name,
                done.member.id,
                done.member.advertise,
                done.admin_config.display(),
                done.user_config
                    .as_ref()
                    .map(|p| format!(" and {}", p.display()))
                    .unwrap_or_default()
            );
            true
        }
        None => false,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    if let Some(join) = &options.join {
        let member = runtime.block_on(crate::joiner::join(join))?;
        eprintln!(
            "moor: joined the cluster through {}; controller {} (id {}) at {}",
            join.server, member.name, member.id, member.advertise
        );
    }
    let identity = bootstrap::load(&options.data_dir)?;
    let key_path = secrets_key_path(&options);
    let secrets = crate::sealing::SecretsKey::load(&key_path).map_err(DaemonError::Secrets)?;
    let secrets_bytes = match secrets {
        Some(key) => {
            let bytes = key.bytes().to_vec();
            crate::sealing::install(key);
            Some(bytes)
        }
        None => {
            tracing::warn!(path = %key_path.display(), "no secrets key: secrets are stored unencrypted");
            None
        }
    };
    runtime.block_on(serve(options, identity, profile, fresh, secrets_bytes))
}

async fn serve(
    options: Options,
    identity: bootstrap::Identity,
    profile: Profile,
    fresh: bool,
    secrets_key: Option<Vec<u8>>,
) -> Result<(), DaemonError> {
    let member = identity.member.clone();
    // Certificates are checked by a clock that never reads earlier than this start, the
    // last start or the build: with the bare system clock, a wall clock stepped back (NTP,
    // a box without an RTC booting at 1970) past the certificates' notBefore fails every
    // handshake as "not valid yet" (crates/cli/tests/cluster_faults.rs steps a leader's
    // clock back two days).
    let clock = wire::TlsClock::at_start(&bootstrap::raft_dir(&options.data_dir).join("last-seen"));
    // Every controller answers joins: it holds the CA key (see `join`).
    // Both directions present the certificate in one slot, so a renewal takes effect at
    // the next handshake (see `renew_certificate`).
    let slot = wire::tls::CertSlot::new(&identity.node)?;
    let server_tls =
        wire::tls::server_config_with(identity.ca.cert(), Arc::clone(&slot), true, clock)?;
    let client_tls = wire::tls::client_config_with(identity.ca.cert(), Arc::clone(&slot), clock)?;
    let renewal = tokio::spawn(renew_certificate(
        bootstrap::pki(&options.data_dir),
        member.name.clone(),
        slot,
        clock,
    ));
    let admission_tls = client_tls.clone();
    // Members dial each other with short idle timeouts, so a peer that died without
    // closing its connection is noticed quickly (see `RaftNode::start`).
    let transport = wire::TransportOptions::default();
    let endpoint =
        wire::server_endpoint(member.listen, server_tls, &transport).map_err(|source| {
            DaemonError::Endpoint {
                addr: member.listen,
                source,
            }
        })?;
    let peer_transport = wire::TransportOptions {
        keep_alive: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(2),
        ..wire::TransportOptions::default()
    };
    let dial = wire::client_endpoint(unspecified_like(member.listen), client_tls, &peer_transport)
        .map_err(|source| DaemonError::Endpoint {
            addr: member.listen,
            source,
        })?;
    let node = RaftNode::start(
        NodeConfig {
            id: member.id,
            data_dir: bootstrap::raft_dir(&options.data_dir),
            storage: StorageOptions::default(),
            raft: RaftOptions::profile(profile),
        },
        dial,
        wire::ClientOptions::default(),
    )
    .await?;
    if fresh {
        node.initialize(NodeInfo {
            name: member.name.clone(),
            address: member.advertise.to_string(),
        })
        .await?;
    }
    let node = Arc::new(node);
    let cluster = Arc::new(NodeCluster {
        feed: node.changes(),
        node: Arc::clone(&node),
    });
    let api =
        ApiService::start(Arc::clone(&cluster), ApiOptions::default()).map_err(DaemonError::Api)?;
    if fresh {
        create_default_namespace(&api).await;
    }
    let ca_files = bootstrap::ca_files(&options.data_dir, identity.ca, secrets_key)?;
    let join = JoinService::new(Arc::clone(&cluster), ca_files, clock);
    let liveness = Liveness::new(Arc::clone(&cluster), options.liveness);
    let sink = Arc::clone(&liveness);
    node.service()
        .set_heartbeat_sink(Arc::new(move |name: &str| sink.record(name)));
    let monitor = tokio::spawn(Arc::clone(&liveness).run());
    let backup = crate::backup::BackupService::new(
        Arc::clone(&cluster),
        bootstrap::pki(&options.data_dir),
        member.name.clone(),
    );
    let handler = Arc::new(Dispatch {
        raft: node.service(),
        api,
        join,
        liveness,
        backup,
    });
    let admission = match crate::joiner::pending(&options.data_dir)? {
        Some(pending) => {
            let endpoint = wire::client_endpoint(
                unspecified_like(member.listen),
                admission_tls,
                &wire::TransportOptions::default(),
            )
            .map_err(|source| DaemonError::Endpoint {
                addr: member.listen,
                source,
            })?;
            let client = wire::Client::new(
                endpoint,
                Vec::new(),
                wire::ClientOptions {
                    call_timeout: Duration::from_secs(70),
                    ..wire::ClientOptions::default()
                },
            );
            Some(tokio::spawn(crate::joiner::admit(
                options.data_dir.clone(),
                member.clone(),
                pending,
                client,
            )))
        }
        None => None,
    };
    let connections = wire::Connections::new();
    let revocations = tokio::spawn(close_revoked(
        node.reader(),
        cluster.subscribe(),
        connections.clone(),
    ));
    let reader = node.reader();
    let serve_options = wire::ServeOptions {
        is_revoked: Some(Arc::new(move |id: &wire::CertIdentity| {
            crate::join::is_revoked(&reader, &id.serial)
        })),
        connections,
        ..wire::ServeOptions::default()
    };
    let shutdown = shutdown_signal()?;
    wire::serve(endpoint, Arc::clone(&handler), serve_options, shutdown).await;
    revocations.abort();
    if let Some(admission) = admission {
        admission.abort();
    }
    monitor.abort();
    renewal.abort();
    drop(handler);
    drop(cluster);
    // If something still holds the node (a call finishing), the process exits anyway and
    // redb recovers on the next open.
    if let Ok(node) = Arc::try_unwrap(node) {
        node.shutdown().await?;
    }
    Ok(())
}

/// A new cluster has the `default` namespace as an object, as Kubernetes does, so
/// `moor get namespaces` lists it. Failing here only means it is missing from that list:
/// namespaced objects in `default` need no Namespace object.
async fn create_default_namespace(api: &ApiService<NodeCluster>) {
    let mut namespace = proto::resources::Namespace::default();
    namespace.metadata.name = crate::api::DEFAULT_NAMESPACE.to_string();
    let admin = Caller {
        role: wire::Role::Admin,
        name: "controller-init".into(),
    };
    let request = proto::api::Request::Apply {
        objects: vec![proto::Object::Namespace(namespace)],
        dry_run: false,
    };
    if let proto::api::Response::Error(e) = api.handle(&admin, request).await {
        tracing::warn!(error = %e, "creating the default namespace");
    }
}

/// How often a controller looks at its certificate's age.
const RENEWAL_CHECK: Duration = Duration::from_secs(12 * 3600);

/// Renews this controller's certificate when a third of its lifetime is left, looking
/// at start and then every [`RENEWAL_CHECK`]. A controller holds the CA key, so it signs
/// its own; the new certificate is saved and presented from the next handshake on.
async fn renew_certificate(
    pki: PathBuf,
    name: String,
    slot: Arc<wire::tls::CertSlot>,
    clock: wire::TlsClock,
) {
    loop {
        match renew_if_due(&pki, &name, &slot, clock.now()) {
            Ok(true) => tracing::info!(name = %name, "certificate renewed"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "renewing this controller's certificate"),
        }
        tokio::time::sleep(RENEWAL_CHECK).await;
    }
}

/// One look at the certificate in `slot`; `Ok(true)` if it was renewed.
pub(crate) fn renew_if_due(
    pki: &std::path::Path,
    name: &str,
    slot: &wire::tls::CertSlot,
    now: std::time::SystemTime,
) -> Result<bool, String> {
    let leaf = slot.leaf().ok_or("no certificate presented")?;
    let validity = wire::validity::validity(leaf.as_ref()).map_err(|e| e.to_string())?;
    if !validity.due_for_renewal(now) {
        return Ok(false);
    }
    let ca = wire::ClusterCa::load(pki).map_err(|e| e.to_string())?;
    let node = ca
        .issue(wire::Role::Controller, name, now, bootstrap::CERT_VALIDITY)
        .map_err(|e| e.to_string())?;
    node.save(pki, "controller").map_err(|e| e.to_string())?;
    slot.replace(&node).map_err(|e| e.to_string())?;
    Ok(true)
}

/// Closes the open connections of certificates as their revocation is applied here (new
/// handshakes are refused by the serve hook).
async fn close_revoked(
    reader: StateReader,
    mut feed: broadcast::Receiver<Applied>,
    connections: wire::Connections,
) {
    loop {
        let revoked = match feed.recv().await {
            Ok(Applied::Changes { changes, .. }) => changes
                .iter()
                .any(|c| c.key.kind == crate::tokens::REVOKED_KIND && c.new.is_some()),
            // Missed changes or a new snapshot: check every open connection.
            Ok(Applied::Reset { .. }) | Err(broadcast::error::RecvError::Lagged(_)) => true,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if revoked {
            let closed =
                connections.close_revoked(|peer| crate::join::is_revoked(&reader, &peer.serial));
            if closed > 0 {
                tracing::info!(closed, "closed connections of revoked certificates");
            }
        }
    }
}

fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Calls from members go to Raft, calls from clients to the API (Raft calls start with a
/// byte no API request starts with); token calls and a joined controller's admission go to
/// the join service, and so do the calls of boxes without a certificate (join ALPN).
struct Dispatch {
    raft: RaftService,
    api: ApiService<NodeCluster>,
    join: JoinService<NodeCluster>,
    liveness: Arc<Liveness<NodeCluster>>,
    backup: crate::backup::BackupService<NodeCluster>,
}

impl Handler for Dispatch {
    async fn call(
        &self,
        peer: Peer,
        request: Bytes,
        stream: &mut FramedStream,
    ) -> Result<(), FrameError> {
        if is_raft_call(&request) {
            return self.raft.handle(&peer, &request, stream).await;
        }
        // Decoded twice for API calls (here and in the API): cheap next to the call.
        match wire::frame::decode::<proto::api::Request>(&request) {
            Ok(proto::api::Request::Backup) => {
                self.backup.handle(&Caller::from(&peer), stream).await
            }
            Ok(call) if JoinService::<NodeCluster>::answers(&call) => {
                let caller = Caller::from(&peer);
                let response = self.join.handle_member(&caller, call).await;
                stream.send(&response).await
            }
            Ok(proto::api::Request::Heartbeat { node }) => {
                let caller = Caller::from(&peer);
                let response = self.liveness.handle(&caller, &node).await;
                stream.send(&response).await
            }
            _ => self.api.call(peer, request, stream).await,
        }
    }

    async fn join(
        &self,
        addr: SocketAddr,
        request: Bytes,
        stream: &mut FramedStream,
    ) -> Result<(), FrameError> {
        let response = self.join.handle_join(addr, &request).await;
        stream.send(&response).await
    }
}

/// The Raft node as the API needs it.
struct NodeCluster {
    node: Arc<RaftNode>,
    feed: broadcast::Sender<Applied>,
}

impl Cluster for NodeCluster {
    async fn write(&self, request: Request) -> Result<Response, ClusterError> {
        self.node.write(request).await.map_err(cluster_error)
    }

    async fn read_barrier(&self) -> Result<(), ClusterError> {
        self.node.read_barrier().await.map_err(cluster_error)
    }

    fn reader(&self) -> StateReader {
        self.node.reader()
    }

    fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.feed.subscribe()
    }
}

impl Leadership for NodeCluster {
    fn is_leader(&self) -> bool {
        self.node.is_leader()
    }

    async fn heartbeat(&self, node: &str) -> Result<(), ClusterError> {
        self.node.heartbeat(node).await.map_err(cluster_error)
    }
}

impl Group for NodeCluster {
    fn members(&self) -> Vec<crate::raft::Member> {
        self.node.members()
    }

    async fn add_member(&self, id: NodeId, info: NodeInfo) -> Result<(), ClusterError> {
        self.node.add_member(id, info).await.map_err(cluster_error)
    }

    async fn remove_member(&self, id: NodeId) -> Result<(), ClusterError> {
        self.node.remove_member(id).await.map_err(cluster_error)
    }
}

fn cluster_error(e: NodeError) -> ClusterError {
    match e {
        NodeError::NoLeader { .. } => ClusterError::NoQuorum,
        NodeError::Timeout { after, .. } => ClusterError::Timeout { after },
        NodeError::Stopped => ClusterError::Stopped,
        NodeError::Storage { source, .. } => ClusterError::Storage(source),
        other if other.is_retryable() => ClusterError::NoQuorum,
        other => {
            // Not retryable and not storage: a forwarded write that may have run, or a
            // refusal by the leader. Reported as a timeout, which the API answers as
            // "may or may not have been applied".
            tracing::debug!(error = %other, "raft write failed");
            ClusterError::Timeout {
                after: Duration::ZERO,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use wire::{ClusterCa, Role};

    use super::renew_if_due;

    #[test]
    fn a_controller_renews_its_certificate_when_a_third_of_its_life_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path();
        let start = SystemTime::now();
        let day = Duration::from_secs(86400);
        let ca = ClusterCa::create(start, day * 3650).unwrap();
        ca.save(pki).unwrap();
        let old = ca
            .issue(Role::Controller, "ctl-1", start, day * 30)
            .unwrap();
        old.save(pki, "controller").unwrap();
        let slot = wire::tls::CertSlot::new(&old).unwrap();
        assert_eq!(
            renew_if_due(pki, "ctl-1", &slot, start + day * 15),
            Ok(false)
        );
        assert_eq!(
            renew_if_due(pki, "ctl-1", &slot, start + day * 21),
            Ok(true)
        );
        let leaf = slot.leaf().unwrap();
        let renewed = wire::validity::validity(leaf.as_ref()).unwrap();
        assert!(renewed.not_after > start + day * 300);
        let saved = wire::NodeCert::load(pki, "controller").unwrap();
        assert_eq!(saved.chain[0], leaf);
        let id = saved.identity().unwrap();
        assert_eq!((id.role, id.name.as_str()), (Role::Controller, "ctl-1"));
        // Fresh now: nothing more to do.
        assert_eq!(
            renew_if_due(pki, "ctl-1", &slot, start + day * 22),
            Ok(false)
        );
    }
}
