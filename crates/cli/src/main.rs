//! `moor`: one binary for every part of moor. This file only parses the command line and
//! hands each command to the library that does the work.
//!
//! There are the container runtime (`moor runtime …`, runc-compatible), the image store
//! (`moor image …`), the controller (`moor controller`) and the cluster client
//! (`moor apply|get|describe|delete`, `moor token`, `moor node`) and the node agent
//! (`moor agent`).

mod backup;
mod cluster;
mod controller;
mod image;
mod log;
mod node;
mod runtime;
mod table;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// moor: containers and a small orchestrator for edge devices.
#[derive(Debug, Parser)]
#[command(name = "moor", version, about, propagate_version = true)]
struct Cli {
    /// Where moor keeps its state (images, and later the agent's and controller's).
    #[arg(
        long,
        global = true,
        env = "MOOR_DATA_DIR",
        default_value = "/var/lib/moor"
    )]
    data_dir: PathBuf,
    /// Registry mirrors, credentials and TLS (K3s's registries.yaml format).
    #[arg(long, global = true, env = "MOOR_REGISTRIES")]
    registries: Option<PathBuf>,
    /// The client credential file: controllers, cluster CA, your certificate and key
    /// (default ~/.moor/config).
    #[arg(long, global = true, env = "MOOR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The OCI container runtime (command-line compatible with runc for its verbs).
    Runtime(Box<runtime::RuntimeArgs>),
    /// Images: pull, push, import, save, build, list, remove.
    Image(image::ImageArgs),
    /// Create or update the objects of manifests (files, directories or stdin).
    Apply(cluster::ApplyArgs),
    /// List objects, or show one, as a table, YAML or JSON; --watch follows changes.
    Get(cluster::GetArgs),
    /// Show objects in detail, for people (kubectl's describe; secret values never shown).
    Describe(cluster::DescribeArgs),
    /// Delete objects by kind and name, or those a manifest describes.
    Delete(cluster::DeleteArgs),
    /// Run a member of the controller group (--init makes a new cluster, --join joins one).
    Controller(controller::ControllerArgs),
    /// Join tokens: create, ls, rm (admin).
    Token(token::TokenArgs),
    /// Secrets made from files: create, ls, rm (values are never printed).
    Secret(cluster::SecretArgs),
    /// Config maps made from files and literals.
    Configmap(cluster::ConfigMapArgs),
    /// Nodes: ls, rm (rm revokes the node's certificates).
    Node(node::NodeArgs),
    /// Run the node agent (--join joins a cluster first).
    Agent(node::AgentArgs),
    /// Encrypted backups of the whole cluster: save (admin), restore into a new cluster.
    Backup(backup::BackupArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Runtime(args) => runtime::main(*args),
        Command::Apply(args) => cluster::apply(args, cli.config.as_deref()),
        Command::Get(args) => cluster::get(args, cli.config.as_deref()),
        Command::Describe(args) => cluster::describe(args, cli.config.as_deref()),
        Command::Delete(args) => cluster::delete(args, cli.config.as_deref()),
        Command::Secret(args) => cluster::secret(args, cli.config.as_deref()),
        Command::Configmap(args) => cluster::configmap(args, cli.config.as_deref()),
        Command::Controller(args) => controller::main(args, &cli.data_dir, cli.config.as_deref()),
        Command::Token(args) => token::main(args, cli.config.as_deref()),
        Command::Node(args) => node::main(args, cli.config.as_deref()),
        Command::Agent(args) => node::agent(args, &cli.data_dir),
        Command::Backup(args) => backup::main(args, &cli.data_dir, cli.config.as_deref()),
        Command::Image(args) => match image::main(args, &cli.data_dir, cli.registries.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // Not `{e:#}`: the library's messages already carry their causes.
                eprintln!("moor: {}", runtime::describe(&e));
                ExitCode::FAILURE
            }
        },
    }
}
