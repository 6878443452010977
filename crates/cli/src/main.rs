//! `moor`: one binary for every part of moor. This file only parses the command line and
//! hands each command to the library that does the work.
//!
//! Step 1 has the container runtime (`moor runtime …`, runc-compatible); the daemons
//! and the cluster client come with later steps.

mod log;
mod runtime;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// moor: containers and a small orchestrator for edge devices.
#[derive(Debug, Parser)]
#[command(name = "moor", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The OCI container runtime (command-line compatible with runc for its verbs).
    Runtime(runtime::RuntimeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Runtime(args) => runtime::main(args),
    }
}
