//! `create` and `run`: from a bundle to a container held at the start line, or running.
//!
//! ```text
//! parent (moor runtime)                        child (clone3, new namespaces)
//!   reserve <root>/<id>, copy config.json
//!   cgroup: create, apply resources
//!   open joined namespaces, fifo, sockets
//!   clone3 ──────────────────────────────────► init::child_main
//!   wait for R (or E: clean up, fail)  ◄──R───   set up, find program
//!   state.json, pid file
//!   create: send S, exit ────────────────────►   wait on fifo (start opens it)
//!   run:    send S ──────────────────────────►   join late groups, drop privileges, execve
//!           wait for EOF (exec done) or E
//!           --detach: exit; else forward signals, wait, clean up, exit with its code
//! ```

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::cgroups::{self, Cgroup, CgroupLayout};
use crate::config::{ContainerConfig, NamespaceKind};
use crate::error::RuntimeError;
use crate::identity::ProcessIdentity;
use crate::init::mounts::CgroupView;
use crate::init::sync::{self, Message};
use crate::init::{InitContext, InitMode, devices};
use crate::state::{StateStore, StoredState, write_atomic};
use crate::sys;

use super::foreground;
use super::handshake;

/// Options of `create` and `run` (runc's flags).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
}

/// What to do once the container is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Hold it until `start`.
    Create,
    /// Start it and return.
    RunDetached,
    /// Start it, wait for it, delete it; the result is its exit code.
    RunForeground,
}

/// `create`.
pub fn create(store: &StateStore, opts: &CreateOptions) -> Result<(), RuntimeError> {
    launch(store, opts, Launch::Create).map(drop)
}

/// `run`: the exit code of the container's process in the foreground, 0 detached.
pub fn run(store: &StateStore, opts: &CreateOptions, detach: bool) -> Result<i32, RuntimeError> {
    let how = if detach {
        Launch::RunDetached
    } else {
        Launch::RunForeground
    };
    launch(store, opts, how)
}

/// Checks that `--preserve-fds N` names descriptors that are really open: an fd the
/// caller forgot would otherwise be one of ours by the time the container starts.
pub(crate) fn check_preserved(count: u32) -> Result<(), RuntimeError> {
    for fd in 3..3 + count as i32 {
        // SAFETY: F_GETFD on an arbitrary number only reads its flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(RuntimeError::PreserveFds { count, fd });
        }
    }
    Ok(())
}

/// Connects to the console socket, if the process wants a terminal.
pub(crate) fn console_for(
    terminal: bool,
    socket: Option<&Path>,
    foreground: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>), RuntimeError> {
    match (terminal, socket) {
        (true, Some(path)) => {
            let stream =
                UnixStream::connect(path).map_err(|source| RuntimeError::ConsoleSocket {
                    path: path.to_path_buf(),
                    source,
                })?;
            Ok((Some(OwnedFd::from(stream)), None))
        }
        (true, None) if foreground => {
            let (ours, theirs) =
                UnixStream::pair().map_err(|source| RuntimeError::ConsoleSocket {
                    path: PathBuf::from("(pair)"),
                    source,
                })?;
            Ok((Some(OwnedFd::from(theirs)), Some(OwnedFd::from(ours))))
        }
        (true, None) => Err(RuntimeError::ConsoleSocketRequired),
        (false, Some(_)) => Err(RuntimeError::ConsoleSocketUnused),
        (false, None) => Ok((None, None)),
    }
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<(), RuntimeError> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    write_atomic(&abs, pid.to_string().as_bytes(), 0o644).map_err(|source| RuntimeError::PidFile {
        path: abs.clone(),
        source,
    })
}

fn launch(store: &StateStore, opts: &CreateOptions, how: Launch) -> Result<i32, RuntimeError> {
    let id = opts.id.as_str();
    check_preserved(opts.preserve_fds)?;
    let bundle =
        std::path::absolute(&opts.bundle).map_err(RuntimeError::io(id, "resolve bundle path"))?;
    let config_path = bundle.join("config.json");
    let bytes = crate::spec::read_bounded(&config_path)?;
    let config = crate::spec::parse_config(&bytes, &bundle, &config_path)?;
    if config.namespace(NamespaceKind::Mount).is_none() {
        return Err(RuntimeError::NoMountNamespace);
    }
    let foreground = how == Launch::RunForeground;
    let (console, proxy_end) = console_for(
        config.process.terminal,
        opts.console_socket.as_deref(),
        foreground,
    )?;

    let mut dir = store.reserve(id)?;
    write_atomic(&dir.config_path(), &bytes, 0o600)?;

    let layout = CgroupLayout::detect()?;
    let own = cgroups::OwnCgroups::detect(&layout)?;
    let cgroup_path = cgroups::cgroup_path(config.cgroups_path.as_deref(), id, &own)?;
    let mut resources = config.resources.clone();
    resources
        .devices
        .extend(devices::default_rules(&config.devices));
    let cgroup = Cgroup::create(&layout, &cgroup_path, &resources)?;
    let guard = CgroupGuard(Some(&cgroup));
    let crate::cgroups::CgroupEntry { birth, join } = cgroup.entry()?;
    let views: Vec<CgroupView> = cgroup
        .container_mounts()
        .into_iter()
        .map(|b| CgroupView {
            host_dir: b.source,
            under: b.destination,
            aliases: b.aliases,
        })
        .collect();

    let mut joined = Vec::new();
    for ns in &config.namespaces {
        if let Some(path) = &ns.path {
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map_err(|source| RuntimeError::NamespacePath {
                    kind: ns.kind.spec_name(),
                    path: path.clone(),
                    source,
                })?;
            joined.push((ns.kind, OwnedFd::from(file)));
        }
    }
    if let Some((_, fd)) = joined.iter().find(|(k, _)| *k == NamespaceKind::Pid) {
        // Affects only the children we create from now on, i.e. the container's init.
        sys::setns(fd.as_fd(), libc::CLONE_NEWPID).map_err(|source| {
            RuntimeError::NamespacePath {
                kind: "pid",
                path: config
                    .namespace(NamespaceKind::Pid)
                    .and_then(|n| n.path.clone())
                    .unwrap_or_default(),
                source,
            }
        })?;
    }
    let mode = if how == Launch::Create {
        let fifo = dir.fifo_path();
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| RuntimeError::io(id, "make exec fifo")(e.into()))?;
        let fd = sys::openat2(libc::AT_FDCWD, &fifo, libc::O_PATH, 0, 0)
            .map_err(RuntimeError::io(id, "open exec fifo"))?;
        InitMode::Create { fifo: fd }
    } else {
        InitMode::Run
    };
    let (parent_sock, child_sock) =
        sync::pair().map_err(RuntimeError::io(id, "make sync socket"))?;
    let forwarding = if foreground {
        Some(foreground::block_signals().map_err(RuntimeError::io(id, "block signals"))?)
    } else {
        None
    };
    // Inherited by the child: nothing in the container may attach to it or open its
    // /proc/PID/exe while it still runs our code.
    sys::prctl(libc::PR_SET_DUMPABLE, 0, 0)
        .map_err(RuntimeError::io(id, "make the runtime undumpable"))?;

    let flags = new_namespace_flags(&config) | sys::CLONE_CLEAR_SIGHAND;
    let ctx = InitContext {
        mode,
        config: &config,
        process: &config.process,
        join: joined,
        cgroup: Some(join),
        cgroup_views: views,
        sync: child_sock,
        console,
        preserve_fds: opts.preserve_fds,
        no_pivot: opts.no_pivot,
    };
    let (pid, pidfd) = handshake::spawn(id, flags, birth.as_ref().map(|fd| fd.as_fd()), ctx)?;
    handshake::await_ready(id, &parent_sock, &pidfd)?;

    let init =
        ProcessIdentity::capture(pid).map_err(RuntimeError::io(id, "record the init process"))?;
    let stored = StoredState::new(
        id,
        &bundle,
        &config.root,
        init,
        &cgroup_path,
        config.namespaces.iter().map(|n| n.kind).collect(),
        config.annotations.clone().into_iter().collect(),
    );
    dir.write_state(&stored)?;
    if let Some(path) = &opts.pid_file {
        write_pid_file(path, pid)?;
    }

    let proxy = handshake::receive_proxy(id, proxy_end)?;

    if how == Launch::Create {
        // Recorded: the init may go on to wait at the exec fifo, and outlive us.
        sync::send(parent_sock.as_fd(), &Message::Start)
            .map_err(RuntimeError::io(id, "release the init"))?;
        dir.commit();
        guard.defuse();
        return Ok(0);
    }
    sync::send(parent_sock.as_fd(), &Message::Start).map_err(RuntimeError::io(id, "start"))?;
    handshake::await_exec(id, &parent_sock, &pidfd)?;
    dir.commit();
    guard.defuse();
    if how == Launch::RunDetached {
        return Ok(0);
    }
    let code = foreground::wait(&pidfd, forwarding, proxy)
        .map_err(RuntimeError::io(id, "wait for the container"))?;
    drop(dir);
    super::delete::delete(store, id, true)?;
    Ok(code)
}

/// The clone flags for the namespaces the container gets new.
fn new_namespace_flags(config: &ContainerConfig) -> u64 {
    config
        .namespaces
        .iter()
        // The cgroup namespace is made after the child joins its cgroup (see init).
        .filter(|ns| ns.path.is_none() && ns.kind != NamespaceKind::Cgroup)
        .map(|ns| ns.kind.clone_flag() as u64)
        .fold(0, |a, b| a | b)
}

/// Removes a new container's cgroup unless the create succeeded.
struct CgroupGuard<'a>(Option<&'a Cgroup>);

impl CgroupGuard<'_> {
    fn defuse(mut self) {
        self.0 = None;
    }
}

impl Drop for CgroupGuard<'_> {
    fn drop(&mut self) {
        if let Some(cg) = self.0 {
            let _ = cg.kill_all(nix::sys::signal::Signal::SIGKILL);
            let _ = cg.destroy();
        }
    }
}
