//! The node agent: one box of the fleet.
//!
//! Owns: the agent's identity (joining with a token, its certificate, renewing it), the
//! link to the controllers (registering the Node, heartbeats, the controller list), and
//! from step 4 on the local copy of desired state, pod workers, probes, logs and exec,
//! pod networking, the service proxy and DNS. Does not own: deciding where pods run (the
//! controller's scheduler), or anything of the controllers' (`agent` and `controller`
//! meet on the wire only).
//!
//! ```text
//! moor agent --join TOKEN --server ADDR ─► identity::join ─► DATA_DIR/agent/agent.conf
//! moor agent ─► identity::load ─► link::run: register Node ─► heartbeat every interval
//!                                  (renew the certificate when a third of it is left)
//! ```

pub mod identity;
pub mod link;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// What `moor agent` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    /// Join first with this token through `server`.
    pub join: Option<(String, SocketAddr)>,
    /// The node's name (with `join`).
    pub name: String,
    /// The address other nodes reach this one at; by default the one the kernel routes to
    /// the controllers from.
    pub node_ip: Option<IpAddr>,
}

/// Why the agent could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("start the event loop: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("signal handling: {0}")]
    Signal(#[source] std::io::Error),
}

/// Runs the agent until SIGINT or SIGTERM.
pub fn run(options: Options) -> Result<(), AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    runtime.block_on(async {
        if let Some((token, server)) = &options.join {
            let joined = identity::join(&options.data_dir, token, *server, &options.name).await?;
            eprintln!(
                "moor: node {} joined the cluster through {server}; credentials in {}",
                options.name,
                joined.display()
            );
        }
        let config = identity::load(&options.data_dir)?;
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signal)?;
        let link = link::Link::new(options.data_dir.clone(), config, options.node_ip);
        tokio::select! {
            result = link.run() => result.map_err(AgentError::from),
            _ = term.recv() => Ok(()),
            _ = int.recv() => Ok(()),
        }
    })
}
