//! `moor node ls|rm` (admin) and `moor agent` (the node agent, in the foreground as a
//! systemd service runs it). The work is in the `agent` crate and the controllers.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use proto::api::{Consistency, Request, Response};
use proto::resources::Kind;

use crate::cluster::{Session, finish, unexpected};

/// `moor node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    verb: NodeVerb,
}

#[derive(Debug, Subcommand)]
enum NodeVerb {
    /// List the nodes: status (Ready, NotReady), age, address.
    Ls,
    /// Remove a node: its Node object goes and its certificates are revoked, so its agent
    /// can no longer connect (join it again with a new token to bring it back).
    Rm {
        /// The node's name, as `ls` shows it.
        name: String,
    },
}

/// Answers `moor node …`.
pub fn main(args: NodeArgs, config: Option<&Path>) -> ExitCode {
    finish((|| {
        let session = Session::open(config)?;
        match args.verb {
            NodeVerb::Ls => {
                let request = Request::List {
                    kind: Kind::Node,
                    namespace: None,
                    selector: None,
                    consistency: Consistency::Linearizable,
                };
                let response = session.call(&request)?;
                let Response::List { objects, .. } = response else {
                    return Err(unexpected(&response));
                };
                if objects.is_empty() {
                    eprintln!("No nodes have joined.");
                    return Ok(());
                }
                print!(
                    "{}",
                    crate::cluster::print::table(
                        Kind::Node,
                        &objects,
                        false,
                        true,
                        std::time::SystemTime::now()
                    )
                );
                Ok(())
            }
            NodeVerb::Rm { name } => match session.call(&Request::RemoveNode { name })? {
                Response::NodeRemoved { name, revoked } => {
                    println!("node {name} removed; {revoked} certificate(s) revoked");
                    Ok(())
                }
                other => Err(unexpected(&other)),
            },
        }
    })())
}

/// `moor agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Join a cluster with this token (`moor token create --role agent`); later starts
    /// need only --data-dir.
    #[arg(
        long,
        value_name = "TOKEN",
        requires = "server",
        env = "MOOR_JOIN_TOKEN"
    )]
    join: Option<String>,
    /// A controller to join through (IP:port), with --join.
    #[arg(long, requires = "join")]
    server: Option<SocketAddr>,
    /// This node's name, in its certificate (default: the host name), with --join.
    #[arg(long)]
    name: Option<String>,
    /// The address other nodes reach this one at (default: the source address of the
    /// route to the controllers).
    #[arg(long)]
    node_ip: Option<IpAddr>,
}

/// Runs the agent until SIGINT or SIGTERM, or until the cluster refuses it.
pub fn agent(args: AgentArgs, data_dir: &Path) -> ExitCode {
    if args.join.is_none() && args.name.is_some() {
        eprintln!("moor: --name is for --join; later starts read it from the data directory");
        return ExitCode::from(2);
    }
    let name = match args.name.or_else(crate::controller::host_name) {
        Some(n) => n,
        None => {
            eprintln!("moor: the host name is not a usable node name: give --name");
            return ExitCode::from(2);
        }
    };
    let options = agent::Options {
        data_dir: data_dir.to_path_buf(),
        join: args.join.zip(args.server),
        name,
        node_ip: args.node_ip,
    };
    crate::log::init_daemon_log();
    match agent::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moor: agent: {e}");
            ExitCode::FAILURE
        }
    }
}
