//! The moor side: `wire::Client` built as `moor`'s CLI builds it (credential file, rustls
//! with the ring provider, a QUIC client endpoint with the default transport options),
//! writes as `Request::Apply` of one ConfigMap.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use proto::Object;
use proto::api::{Consistency, ObjectKey, Request, Response};
use proto::resources::{ConfigMap, Kind};

/// How to reach the controller group.
#[derive(Debug, Clone, Args)]
pub struct Connect {
    /// The admin credential file (`DATA_DIR/admin.conf` of `moor controller --init`).
    #[arg(long)]
    config: PathBuf,
    /// A controller to dial, `NAME=IP:PORT`, in the order to try them (repeatable);
    /// default: the controllers the credential file lists.
    #[arg(long = "member", value_parser = crate::name_and_address)]
    members: Vec<(String, String)>,
}

impl Connect {
    /// The names of the members given with `--member`, in order.
    pub fn member_names(&self) -> Vec<String> {
        self.members.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The same, with only member `name`.
    pub fn only(&self, name: &str) -> Connect {
        Connect {
            config: self.config.clone(),
            members: self
                .members
                .iter()
                .filter(|(n, _)| n == name)
                .cloned()
                .collect(),
        }
    }
}

/// A connected client.
pub struct Store {
    client: wire::Client,
}

impl Store {
    /// A client with `call_timeout` per call; connects on the first call.
    pub fn open(connect: &Connect, call_timeout: Duration) -> anyhow::Result<Store> {
        let config = wire::ClientConfig::load(&connect.config)?;
        let targets = if connect.members.is_empty() {
            config.targets()
        } else {
            connect
                .members
                .iter()
                .map(|(name, addr)| {
                    let addr: SocketAddr = addr
                        .parse()
                        .map_err(|e| anyhow!("--member {name}={addr}: {e}"))?;
                    Ok(wire::Target {
                        addr,
                        name: Some(name.clone()),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        };
        let bind = match targets.first().map(|t| t.addr) {
            Some(SocketAddr::V6(_)) => "[::]:0",
            _ => "0.0.0.0:0",
        };
        let tls =
            wire::tls::client_config(&config.ca, Some(&config.node), wire::TlsClock::system())
                .context("client TLS settings")?;
        let endpoint = wire::client_endpoint(
            bind.parse().map_err(|e| anyhow!("{bind}: {e}"))?,
            tls,
            &wire::TransportOptions::default(),
        )
        .context("open the client's QUIC endpoint")?;
        let options = wire::ClientOptions {
            call_timeout,
            ..wire::ClientOptions::default()
        };
        Ok(Store {
            client: wire::Client::new(endpoint, targets, options),
        })
    }

    /// Creates ConfigMap `key` in `default` holding `v: value`; returns once committed.
    pub async fn put(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let mut map = ConfigMap::default();
        map.metadata.name = key.to_string();
        map.metadata.namespace = Some("default".to_string());
        map.data = BTreeMap::from([("v".to_string(), value.to_string())]);
        let request = Request::Apply {
            objects: vec![Object::ConfigMap(map)],
            dry_run: false,
        };
        match self.client.call::<Request, Response>(&request).await? {
            Response::Applied { .. } => Ok(()),
            Response::Error(e) => bail!("refused: {e}"),
            _ => bail!("unexpected answer to an apply"),
        }
    }

    /// Reads ConfigMap `key` in `default`, linearizable or from the answering copy.
    pub async fn get(&self, key: &str, local: bool) -> anyhow::Result<()> {
        let request = Request::Get {
            key: ObjectKey {
                kind: Kind::ConfigMap,
                namespace: Some("default".to_string()),
                name: key.to_string(),
            },
            consistency: if local {
                Consistency::Stale
            } else {
                Consistency::Linearizable
            },
        };
        match self.client.call::<Request, Response>(&request).await? {
            Response::Object { .. } => Ok(()),
            Response::Error(e) => bail!("refused: {e}"),
            _ => bail!("unexpected answer to a get"),
        }
    }

    /// The name of the controller that the answering one believes leads.
    pub async fn leader(&self) -> anyhow::Result<String> {
        match self
            .client
            .call::<Request, Response>(&Request::ListControllers)
            .await?
        {
            Response::Controllers(members) => members
                .into_iter()
                .find(|m| m.leader)
                .map(|m| m.name)
                .ok_or_else(|| anyhow!("no leader known")),
            Response::Error(e) => bail!("refused: {e}"),
            _ => bail!("unexpected answer to ListControllers"),
        }
    }
}
