//! `moor controller`: runs a member of the controller group in the foreground (as a
//! systemd service would). `--init` first makes a new cluster in `--data-dir`, `--join`
//! joins a running one with a token from `moor token create --role controller`; later
//! starts need only `--data-dir`. The work is in `controller::daemon` and
//! `controller::joiner`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `moor controller`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ControllerArgs {
    #[command(subcommand)]
    verb: Option<Verb>,
    /// Make a new cluster here: its CA, this controller's identity, and an admin
    /// credential file (DATA_DIR/admin.conf, and ~/.moor/config if absent).
    #[arg(long, conflicts_with = "join")]
    init: bool,
    /// Join a running cluster with this token (`moor token create --role controller`).
    #[arg(
        long,
        value_name = "TOKEN",
        requires = "server",
        env = "MOOR_JOIN_TOKEN"
    )]
    join: Option<String>,
    /// A controller of the cluster to join through (IP:port), with --join.
    #[arg(long, requires = "join")]
    server: Option<SocketAddr>,
    /// This controller's name, in its certificate (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Where to listen (UDP, QUIC), with --init or --join.
    #[arg(long, default_value = "0.0.0.0:7443")]
    listen: SocketAddr,
    /// Where the others reach this controller, if not --listen (with --init or --join).
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// Raft timings: lan (fails over in under 2 s) or slow-disk (SD cards, busy disks).
    #[arg(long, default_value = "lan")]
    profile: String,
    /// How often agents are told to send heartbeats (e.g. 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    heartbeat_interval: std::time::Duration,
    /// How long a node may stay silent before its Ready condition becomes Unknown
    /// (at least two heartbeat intervals).
    #[arg(long, value_name = "DURATION", default_value = "40s", value_parser = humantime::parse_duration)]
    node_grace: std::time::Duration,
    /// The key Secrets are encrypted with at rest (default DATA_DIR/pki/secrets.key):
    /// keep it apart from the state files, e.g. on another partition.
    #[arg(long, value_name = "PATH")]
    secrets_key: Option<std::path::PathBuf>,
}

/// Questions to the group, asked like any client command (with `--config`).
#[derive(Debug, Subcommand)]
enum Verb {
    /// List the members of the controller group; the leader is marked with `*`.
    Ls,
    /// Take a controller out of the group (its box keeps its data; stop it there).
    Remove {
        /// The controller's name, as `ls` shows it.
        name: String,
    },
}

/// Runs the controller until SIGINT or SIGTERM, or answers a `Verb`.
pub fn main(args: ControllerArgs, data_dir: &Path, config: Option<&Path>) -> ExitCode {
    match args.verb {
        Some(Verb::Ls) => return list(config),
        Some(Verb::Remove { name }) => return remove(config, name),
        None => {}
    }
    let first_start = args.init || args.join.is_some();
    if !first_start && (args.name.is_some() || args.advertise.is_some()) {
        eprintln!(
            "moor: --name and --advertise are for --init or --join; later starts read them from the data directory"
        );
        return ExitCode::from(2);
    }
    let liveness = controller::liveness::LivenessOptions {
        interval: args.heartbeat_interval,
        grace: args.node_grace,
    };
    if let Err(e) = liveness.validate() {
        eprintln!("moor: --heartbeat-interval/--node-grace: {e}");
        return ExitCode::from(2);
    }
    let name = match args.name {
        Some(n) => n,
        None => match host_name() {
            Some(n) => n,
            None => {
                eprintln!("moor: the host name is not a usable node name: give --name");
                return ExitCode::from(2);
            }
        },
    };
    let options = controller::daemon::Options {
        data_dir: data_dir.to_path_buf(),
        init: args.init.then(|| controller::daemon::InitArgs {
            name: name.clone(),
            listen: args.listen,
            advertise: args.advertise,
            user_config: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".moor/config")),
        }),
        join: match (args.join, args.server) {
            (Some(token), Some(server)) => Some(controller::joiner::JoinOptions {
                data_dir: data_dir.to_path_buf(),
                token,
                server,
                name,
                listen: args.listen,
                advertise: args.advertise,
                secrets_key: args
                    .secrets_key
                    .clone()
                    .unwrap_or_else(|| controller::bootstrap::secrets_key(data_dir)),
            }),
            _ => None,
        },
        profile: args.profile,
        liveness,
        secrets_key: args.secrets_key,
    };
    crate::log::init_daemon_log();
    limit_malloc_arenas();
    match controller::daemon::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moor: controller: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Tunes glibc's malloc for a long-running controller, unless the environment already
/// does (`MALLOC_ARENA_MAX`, `GLIBC_TUNABLES`). Must run before the runtime starts its
/// threads.
///
/// - Two arenas: glibc gives each thread that contends for the heap an arena of its own
///   (up to 8 per core) and keeps what each has grown to; the runtime's workers and
///   blocking threads (redb commits, snapshots) spread a controller's heap over six of
///   them. Two arenas took a member from 97 to 73 MiB after 30,000 writes (controller
///   benchmark, bench/README.md).
/// - A fixed 128 KiB mmap threshold and a 1 MiB trim threshold: a snapshot build frees
///   buffers of several MB; glibc then raises its mmap threshold (up to 32 MB), so later
///   snapshot buffers come from the heap and stay there once freed. With these, one
///   member under 64 writers measured 85 instead of 97 MB at about 50,000 objects and
///   161–175 instead of 244–260 MB at about 160,000 (`GLIBC_TUNABLES` runs of the same
///   build, same load).
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && std::env::var_os("GLIBC_TUNABLES").is_none()
    {
        // SAFETY: mallopt changes tuning parameters of glibc's allocator under glibc's own
        // lock; it touches no memory of ours.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
        }
    }
}

/// `moor controller ls`.
fn list(config: Option<&Path>) -> ExitCode {
    use proto::api::{Request, Response};
    crate::cluster::finish((|| {
        let session = crate::cluster::Session::open(config)?;
        let response = session.call(&Request::ListControllers)?;
        let Response::Controllers(mut members) = response else {
            return Err(crate::cluster::unexpected(&response));
        };
        members.sort_by_key(|m| m.id);
        let rows: Vec<[String; 5]> = members
            .into_iter()
            .map(|m| {
                [
                    m.id.to_string(),
                    if m.leader {
                        format!("{} *", m.name)
                    } else {
                        m.name
                    },
                    m.address,
                    if m.voter { "voter" } else { "learner" }.to_string(),
                    if m.leader { "leader" } else { "" }.to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            crate::table::render(&["ID", "NAME", "ADDRESS", "MEMBER", "STATE"], &rows)
        );
        Ok(())
    })())
}

/// `moor controller remove NAME`.
fn remove(config: Option<&Path>, name: String) -> ExitCode {
    use proto::api::{Request, Response};
    crate::cluster::finish((|| {
        let session = crate::cluster::Session::open(config)?;
        match session.call(&Request::RemoveController { name })? {
            Response::ControllerRemoved { id, name } => {
                println!("controller {name} (id {id}) removed");
                Ok(())
            }
            other => Err(crate::cluster::unexpected(&other)),
        }
    })())
}

/// The host name, lowercased, if it is a valid node name.
pub(crate) fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().split('.').next()?.to_ascii_lowercase();
    wire::identity::validate_name(&name).ok().map(|()| name)
}
