//! The etcd side: the v3 gRPC API through `etcd-client` (tonic over HTTP/2, rustls with the
//! ring provider, mutual TLS as moor's transport has), writes as `Put`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};

/// How to reach the cluster.
#[derive(Debug, Clone, Args)]
pub struct Connect {
    /// A member to dial, `NAME=https://IP:PORT`, (repeatable); the client balances over
    /// them and drops those that fail.
    #[arg(long = "endpoint", value_parser = crate::name_and_address, required = true)]
    endpoints: Vec<(String, String)>,
    /// The CA that signed the members' certificates (PEM).
    #[arg(long)]
    cacert: PathBuf,
    /// The client certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// The client key (PEM).
    #[arg(long)]
    key: PathBuf,
}

impl Connect {
    /// The names of the members given with `--endpoint`, in order.
    pub fn member_names(&self) -> Vec<String> {
        self.endpoints.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The same, with only member `name`.
    pub fn only(&self, name: &str) -> Connect {
        Connect {
            endpoints: self
                .endpoints
                .iter()
                .filter(|(n, _)| n == name)
                .cloned()
                .collect(),
            ..self.clone()
        }
    }
}

/// A connected client.
pub struct Store {
    client: Client,
}

impl Store {
    /// A client with `call_timeout` per request and a 1 s connect timeout (as moor's).
    pub async fn open(connect: &Connect, call_timeout: Duration) -> anyhow::Result<Store> {
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(crate::read_pem(&connect.cacert)?))
            .identity(Identity::from_pem(
                crate::read_pem(&connect.cert)?,
                crate::read_pem(&connect.key)?,
            ));
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_timeout(call_timeout)
            .with_connect_timeout(Duration::from_secs(1));
        let urls: Vec<&str> = connect.endpoints.iter().map(|(_, u)| u.as_str()).collect();
        let client = Client::connect(urls, Some(options))
            .await
            .context("connect to etcd")?;
        Ok(Store { client })
    }

    /// Puts `key` = `value`; returns once committed.
    pub async fn put(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let mut kv = self.client.kv_client();
        kv.put(key, value, None).await?;
        Ok(())
    }

    /// Reads `key`, linearizable (ReadIndex) or serializable (the member's own copy).
    pub async fn get(&self, key: &str, local: bool) -> anyhow::Result<()> {
        let mut kv = self.client.kv_client();
        let options = local.then(|| GetOptions::new().with_serializable());
        let resp = kv.get(key, options).await?;
        if resp.kvs().is_empty() {
            return Err(anyhow!("{key}: not found"));
        }
        Ok(())
    }

    /// The name of the member that the answering one believes leads.
    pub async fn leader(&self) -> anyhow::Result<String> {
        let mut client = self.client.clone();
        let status = client.status().await.context("status")?;
        let leader = status.leader();
        if leader == 0 {
            return Err(anyhow!("no leader known"));
        }
        let members = client.member_list().await.context("member list")?;
        members
            .members()
            .iter()
            .find(|m| m.id() == leader)
            .map(|m| m.name().to_string())
            .ok_or_else(|| anyhow!("leader {leader:x} is not in the member list"))
    }
}
