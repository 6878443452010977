//! The agent's link to the controllers: its Node registered, heartbeats at the interval
//! the controllers ask for, the controller list kept current, the certificate renewed
//! when a third of its lifetime is left.
//!
//! Owns: the Node object's agent-written fields (addresses, capacity, the agent's own
//! `Ready`), the heartbeat loop, the credential file's updates. Does not own: marking a
//! silent node (the leader does, see `controller::liveness`).
//!
//! ```text
//! connect ─► ListControllers (save if changed) ─► renew? ─► apply Node
//!   loop: Heartbeat ─► Ack{interval} │ NotFound: apply Node again
//!                                    │ unreachable: try the next controller, back off
//!                                    │ revoked/forbidden: stop (the node was removed)
//! ```
//!
//! An idle agent writes nothing and logs a line only when the link changes state.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use proto::Object;
use proto::api::{ErrorCode, Request, Response};
use proto::resources::{Node, NodeAddress, NodeCondition};
use tracing::{info, warn};
use wire::{Client, ClientConfig, ClientError, ClientOptions, ControllerEntry, TransportOptions};

use crate::identity::{self, IdentityError};

/// Until the controllers say otherwise.
const FIRST_INTERVAL: Duration = Duration::from_secs(10);
/// How often the certificate's age is looked at.
const RENEWAL_CHECK: Duration = Duration::from_secs(6 * 3600);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One agent's link; see the module docs.
#[derive(Debug)]
pub struct Link {
    data_dir: PathBuf,
    config: ClientConfig,
    node_ip: Option<IpAddr>,
}

/// Why a call failed, as the loop acts on it.
enum Failed {
    /// Try again later (no controller answered, no leader).
    Later(String),
    /// The node is not registered (any more).
    NotRegistered,
    /// The cluster refuses this agent: revoked certificate, removed node.
    Refused(String),
}

impl Link {
    pub fn new(data_dir: PathBuf, config: ClientConfig, node_ip: Option<IpAddr>) -> Link {
        Link {
            data_dir,
            config,
            node_ip,
        }
    }

    fn name(&self) -> &str {
        &self.config.identity.name
    }

    /// Runs until the cluster refuses this agent (an error) or the task is dropped.
    pub async fn run(mut self) -> Result<(), IdentityError> {
        let mut client = self.config.client(
            ClientOptions::default(),
            &TransportOptions::LONG_LIVED_CLIENT,
        )?;
        let mut registered = false;
        let mut interval = FIRST_INTERVAL;
        let mut backoff = Duration::from_millis(500);
        let mut healthy: Option<bool> = None;
        let mut next_renewal_check = tokio::time::Instant::now();
        loop {
            let step = async {
                if tokio::time::Instant::now() >= next_renewal_check {
                    self.refresh_controllers(&client).await?;
                    if let Some(renewed) = self.renew_if_due(&client).await? {
                        client.close().await;
                        client = renewed;
                    }
                    next_renewal_check = tokio::time::Instant::now() + RENEWAL_CHECK;
                }
                if !registered {
                    self.register(&client).await?;
                    registered = true;
                }
                self.heartbeat(&client).await
            };
            match step.await {
                Ok(asked) => {
                    if healthy != Some(true) {
                        info!(node = self.name(), "connected to the controllers");
                    }
                    healthy = Some(true);
                    interval = asked;
                    backoff = Duration::from_millis(500);
                    tokio::time::sleep(interval).await;
                }
                Err(Failed::NotRegistered) => registered = false,
                Err(Failed::Later(why)) => {
                    if healthy != Some(false) {
                        warn!(node = self.name(), reason = %why, "controllers unreachable; trying again");
                    }
                    healthy = Some(false);
                    tokio::time::sleep(backoff.min(interval)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(Failed::Refused(why)) => {
                    client.close().await;
                    return Err(IdentityError::Refused {
                        server: self
                            .config
                            .controllers
                            .first()
                            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.address),
                        message: format!("{why} (was this node removed? join it again)"),
                    });
                }
            }
        }
    }

    async fn call(&self, client: &Client, request: &Request) -> Result<Response, Failed> {
        match client.call::<Request, Response>(request).await {
            Ok(Response::Error(e)) if e.code == ErrorCode::NotFound => Err(Failed::NotRegistered),
            Ok(Response::Error(e)) if e.is_retryable() => Err(Failed::Later(e.message)),
            Ok(Response::Error(e)) => Err(Failed::Refused(e.message)),
            Ok(response) => Ok(response),
            Err(e) if e.is_retryable() => Err(Failed::Later(e.to_string())),
            Err(e) => Err(refused(e)),
        }
    }

    async fn heartbeat(&self, client: &Client) -> Result<Duration, Failed> {
        let request = Request::Heartbeat {
            node: self.name().to_owned(),
        };
        match self.call(client, &request).await? {
            Response::HeartbeatAck { interval_secs } => {
                Ok(Duration::from_secs(u64::from(interval_secs.clamp(1, 3600))))
            }
            _ => Err(Failed::Later("an unexpected answer to a heartbeat".into())),
        }
    }

    /// Applies this node's Node object: its addresses, capacity and `Ready`.
    async fn register(&self, client: &Client) -> Result<(), Failed> {
        let node = self.node_object();
        let request = Request::Apply {
            objects: vec![Object::Node(node)],
            dry_run: false,
        };
        match self.call(client, &request).await? {
            Response::Applied { .. } => {
                info!(node = self.name(), "node registered");
                Ok(())
            }
            _ => Err(Failed::Later(
                "an unexpected answer to the registration".into(),
            )),
        }
    }

    fn node_object(&self) -> Node {
        let mut node = Node::default();
        node.metadata.name = self.name().to_owned();
        let mut addresses = Vec::new();
        if let Some(ip) = self.node_ip.or_else(|| self.route_source()) {
            addresses.push(NodeAddress {
                kind: "InternalIP".into(),
                address: ip.to_string(),
            });
        }
        if let Some(host) = host_name() {
            addresses.push(NodeAddress {
                kind: "Hostname".into(),
                address: host,
            });
        }
        node.status.addresses = addresses;
        let capacity = capacity();
        node.status.allocatable = capacity.clone();
        node.status.capacity = capacity;
        node.status.conditions = vec![NodeCondition {
            kind: "Ready".into(),
            status: "True".into(),
            reason: Some("AgentReady".into()),
            message: Some("the agent started".into()),
            last_transition_time: Some(
                humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            ),
        }];
        node
    }

    /// The source address the kernel would use towards the first controller.
    fn route_source(&self) -> Option<IpAddr> {
        let to = self.config.controllers.first()?.address;
        let socket = UdpSocket::bind(wire::unspecified_like(to)).ok()?;
        socket.connect(to).ok()?;
        Some(socket.local_addr().ok()?.ip())
    }

    /// Takes the group's membership as the controller list, saved when it changed.
    async fn refresh_controllers(&mut self, client: &Client) -> Result<(), Failed> {
        let Response::Controllers(members) = self.call(client, &Request::ListControllers).await?
        else {
            return Err(Failed::Later(
                "an unexpected answer to the member list".into(),
            ));
        };
        let mut fresh: Vec<ControllerEntry> = members
            .iter()
            .filter(|m| m.voter)
            .filter_map(|m| {
                Some(ControllerEntry {
                    name: m.name.clone(),
                    address: m.address.parse().ok()?,
                })
            })
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        fresh.sort_by(|a, b| a.name.cmp(&b.name));
        let mut known = self.config.controllers.clone();
        known.sort_by(|a, b| a.name.cmp(&b.name));
        if fresh != known {
            self.config.controllers = fresh;
            identity::save(&self.data_dir, &self.config)
                .map_err(|e| Failed::Later(format!("saving the controller list: {e}")))?;
            client.set_targets(self.config.targets()).await;
            info!(
                node = self.name(),
                controllers = self.config.controllers.len(),
                "controller list updated"
            );
        }
        Ok(())
    }

    /// Renews the certificate if less than a third of its lifetime is left: a new key,
    /// the controllers sign it, the credential file is replaced, and a new client uses it.
    async fn renew_if_due(&mut self, client: &Client) -> Result<Option<Client>, Failed> {
        let Some(leaf) = self.config.node.chain.first() else {
            return Ok(None);
        };
        let validity = wire::validity::validity(leaf.as_ref())
            .map_err(|e| Failed::Refused(format!("this agent's certificate: {e}")))?;
        if !validity.due_for_renewal(wire::TlsClock::system().now()) {
            return Ok(None);
        }
        let key = wire::join::NewKey::generate().map_err(|e| Failed::Later(e.to_string()))?;
        let request = Request::RenewCertificate {
            public_key: key.public_key().to_vec(),
        };
        let Response::Certificate { chain } = self.call(client, &request).await? else {
            return Err(Failed::Later("an unexpected answer to a renewal".into()));
        };
        let node = key.into_node_cert(&chain);
        let identity = node
            .identity()
            .map_err(|e| Failed::Later(format!("the renewed certificate: {e}")))?;
        if identity.role != self.config.identity.role || identity.name != self.config.identity.name
        {
            return Err(Failed::Later(format!(
                "the renewed certificate names {} {}",
                identity.role, identity.name
            )));
        }
        let mut renewed = self.config.clone();
        renewed.node = node;
        renewed.identity = identity;
        identity::save(&self.data_dir, &renewed)
            .map_err(|e| Failed::Later(format!("saving the renewed certificate: {e}")))?;
        let new_client = renewed
            .client(
                ClientOptions::default(),
                &TransportOptions::LONG_LIVED_CLIENT,
            )
            .map_err(|e| Failed::Later(e.to_string()))?;
        self.config = renewed;
        info!(node = self.name(), "certificate renewed");
        Ok(Some(new_client))
    }
}

fn refused(e: ClientError) -> Failed {
    Failed::Refused(e.to_string())
}

/// CPU count, memory and a pod limit, as Kubernetes nodes report them.
fn capacity() -> std::collections::BTreeMap<String, String> {
    let mut capacity = std::collections::BTreeMap::new();
    if let Ok(cpus) = std::thread::available_parallelism() {
        capacity.insert("cpu".into(), cpus.get().to_string());
    }
    if let Some(kib) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
    {
        capacity.insert("memory".into(), format!("{kib}Ki"));
    }
    capacity.insert("pods".into(), "110".into());
    capacity
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}
