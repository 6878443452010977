//! `moor runtime`: the OCI runtime verbs, with runc's flags, so anything that drives
//! runc (containerd's shim, a script, a test suite) can drive moor.

mod list;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use runtime::container::{self, CreateOptions, ExecOptions};
use runtime::state::{DEFAULT_ROOT, StateStore};

use crate::log::{LogFormat, RuntimeLog};

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Where container state lives (keep it on tmpfs: it must not outlive a reboot).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the --log file.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Args)]
struct LaunchArgs {
    /// The container's id.
    id: String,
    /// The bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write the init process's PID here.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the terminal's controlling side (process.terminal).
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for a root on an initramfs).
    #[arg(long)]
    no_pivot: bool,
    /// Pass descriptors 3 .. 3+N-1 on to the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
}

impl LaunchArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create a container, held until `start`.
    Create(LaunchArgs),
    /// Start a created container's program.
    Start { id: String },
    /// Create and start a container; in the foreground, wait for it and delete it.
    Run {
        #[command(flatten)]
        launch: LaunchArgs,
        /// Return once the program has started.
        #[arg(short, long)]
        detach: bool,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or with --all to all
    /// of its processes.
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        #[arg(short, long)]
        all: bool,
    },
    /// Remove a stopped (or created) container; --force kills a running one first.
    Delete {
        id: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Run another process in a running container.
    Exec(ExecArgs),
    /// List containers.
    #[command(alias = "ps")]
    List {
        #[arg(short, long, value_enum, default_value_t = list::Format::Table)]
        format: list::Format,
        /// Ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Write a default config.json into the bundle directory.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
}

#[derive(Debug, Args)]
struct ExecArgs {
    id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// An OCI process.json describing the process.
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(short, long)]
    tty: bool,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// KEY=VALUE added to (or replacing in) the environment.
    #[arg(short, long)]
    env: Vec<String>,
    /// UID[:GID].
    #[arg(short, long)]
    user: Option<String>,
    /// Supplementary group ids.
    #[arg(short = 'g', long, value_delimiter = ',')]
    additional_gids: Vec<u32>,
    /// Add a capability (CAP_NET_ADMIN, …).
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
}

fn parse_user(text: &str) -> anyhow::Result<(u32, Option<u32>)> {
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let uid = uid
        .parse()
        .with_context(|| format!("--user {text:?}: expected UID[:GID] as numbers"))?;
    let gid = gid
        .map(|g| g.parse())
        .transpose()
        .with_context(|| format!("--user {text:?}: expected UID[:GID] as numbers"))?;
    Ok((uid, gid))
}

impl ExecArgs {
    fn options(&self) -> anyhow::Result<ExecOptions> {
        if self.process.is_some() && !self.command.is_empty() {
            bail!("give either --process or a command, not both");
        }
        if self.process.is_none() && self.command.is_empty() {
            bail!("exec needs a command or --process FILE");
        }
        Ok(ExecOptions {
            id: self.id.clone(),
            process_file: self.process.clone(),
            args: self.command.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            user: self.user.as_deref().map(parse_user).transpose()?,
            additional_gids: self.additional_gids.clone(),
            tty: self.tty,
            caps_add: self.cap.clone(),
            no_new_privs: self.no_new_privs,
            console_socket: self.console_socket.clone(),
            pid_file: self.pid_file.clone(),
            detach: self.detach,
            preserve_fds: self.preserve_fds,
        })
    }
}

/// Runs one verb; errors go to stderr and the --log file, and the exit code is 1
/// (or the container process's own code for a foreground run or exec).
pub fn main(args: RuntimeArgs) -> ExitCode {
    let mut log = match RuntimeLog::open(args.log.as_deref(), args.log_format) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("moor: open log file: {e}");
            return ExitCode::FAILURE;
        }
    };
    match dispatch(args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            log.error(&describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined with `: `. The library's messages already include
/// their source's text, so a cause whose text is already there is not repeated.
pub(crate) fn describe(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn dispatch(args: RuntimeArgs) -> anyhow::Result<i32> {
    let store = StateStore::new(&args.root);
    if matches!(
        args.verb,
        Verb::Create(_) | Verb::Run { .. } | Verb::Exec(_)
    ) {
        // Before any side effect: this may replace the process with a sealed copy of
        // itself, which starts over from the top.
        runtime::selfexe::ensure_protected()?;
    }
    match args.verb {
        Verb::Create(launch) => container::create(&store, &launch.options())?,
        Verb::Start { id } => container::start(&store, &id)?,
        Verb::Run { launch, detach } => {
            return Ok(container::run(&store, &launch.options(), detach)?);
        }
        Verb::State { id } => {
            let state = container::state(&store, &id)?;
            println!("{}", serde_json::to_string_pretty(&state)?);
        }
        Verb::Kill { id, signal, all } => {
            let Some(sig) = container::parse_signal(&signal) else {
                bail!(
                    "unknown signal {signal:?}: expected a name such as TERM or SIGKILL, or a number 1-64"
                );
            };
            container::kill(&store, &id, sig, all)?;
        }
        Verb::Delete { id, force } => container::delete(&store, &id, force)?,
        Verb::Exec(exec) => return Ok(container::exec(&store, &exec.options()?)?),
        Verb::List { format, quiet } => list::print(&container::list(&store)?, format, quiet)?,
        Verb::Pause { id } => container::pause(&store, &id)?,
        Verb::Resume { id } => container::resume(&store, &id)?,
        Verb::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists", path.display());
            }
            std::fs::write(&path, runtime::spec::default_spec_json())
                .with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(runtime::spec::SpecError::Read {
            path: "/b/config.json".into(),
            source: io,
        });
        let text = describe(&e);
        assert_eq!(text.matches("not found").count(), 1, "{text}");
        let wrapped =
            anyhow::Error::new(std::io::Error::other("disk on fire")).context("write state");
        assert_eq!(describe(&wrapped), "write state: disk on fire");
    }

    #[test]
    fn user_flag_takes_uid_and_optional_gid() {
        assert_eq!(parse_user("1000").expect("uid"), (1000, None));
        assert_eq!(parse_user("1000:100").expect("uid:gid"), (1000, Some(100)));
        assert!(parse_user("root").is_err());
        assert!(parse_user("1:x").is_err());
        assert!(parse_user("-1").is_err());
    }
}
