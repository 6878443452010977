//! `exec`: another process in a running container.
//!
//! The runtime enters the container's PID namespace for its children only
//! (`setns(pidfd, CLONE_NEWPID)` affects what it forks next, not itself), clones a child
//! that is already not dumpable, and the child enters the other namespaces through the
//! init's pidfd in one call, then follows the same last steps as an init: terminal,
//! cwd check, cgroup, limits, user, capabilities, execve. The process description comes
//! from `--process FILE` or from the container's own `process` with the command line's
//! overrides, as runc does.

use std::os::fd::AsFd;
use std::path::PathBuf;

use crate::cgroups::{Cgroup, CgroupLayout};
use crate::config::{NamespaceKind, ProcessConfig};
use crate::error::RuntimeError;
use crate::init::sync;
use crate::init::{InitContext, InitMode};
use crate::state::StateStore;
use crate::sys;

use super::foreground;
use super::handshake;
use super::launch::{check_preserved, console_for, write_pid_file};
use super::{Status, locked_status};

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub id: String,
    /// A `process.json` (OCI `process` object); when set, the overrides below must be
    /// empty.
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `UID[:GID]`.
    pub user: Option<(u32, Option<u32>)>,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    pub caps_add: Vec<String>,
    pub no_new_privs: bool,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: u32,
}

fn build_process(opts: &ExecOptions, base: ProcessConfig) -> Result<ProcessConfig, RuntimeError> {
    if let Some(path) = &opts.process_file {
        let bytes = crate::spec::read_bounded(path)?;
        return Ok(crate::spec::parse_process(&bytes, path)?);
    }
    let mut p = base;
    p.args = opts.args.clone();
    if p.args.is_empty() {
        return Err(RuntimeError::Setup {
            id: opts.id.clone(),
            message: "exec needs a command (or --process)".into(),
        });
    }
    for kv in &opts.env {
        let key = kv.split('=').next().unwrap_or_default();
        p.env.retain(|e| e.split('=').next() != Some(key));
        p.env.push(kv.clone());
    }
    if let Some(cwd) = &opts.cwd {
        p.cwd = cwd.clone();
    }
    if let Some((uid, gid)) = opts.user {
        p.user.uid = uid;
        if let Some(gid) = gid {
            p.user.gid = gid;
        }
    }
    if !opts.additional_gids.is_empty() {
        p.user.additional_gids = opts.additional_gids.clone();
    }
    p.terminal = opts.tty;
    for name in &opts.caps_add {
        let n = crate::config::capability_number(name).ok_or_else(|| RuntimeError::Setup {
            id: opts.id.clone(),
            message: format!("--cap {name}: unknown capability"),
        })?;
        let bit = 1u64 << n;
        let c = &mut p.capabilities;
        c.bounding |= bit;
        c.effective |= bit;
        c.permitted |= bit;
    }
    if opts.no_new_privs {
        p.no_new_privileges = true;
    }
    Ok(p)
}

/// Runs the process; the result is its exit code in the foreground, 0 detached.
pub fn exec(store: &StateStore, opts: &ExecOptions) -> Result<i32, RuntimeError> {
    let id = opts.id.as_str();
    check_preserved(opts.preserve_fds)?;
    let dir = store.open(id)?;
    let (stored, status) = locked_status(&dir)?;
    if !status.can_exec() {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status,
            verb: "exec in",
        });
    }
    let bytes = crate::spec::read_bounded(&dir.config_path())?;
    let config = crate::spec::parse_config(&bytes, &stored.bundle, &dir.config_path())?;
    let process = build_process(opts, config.process.clone())?;
    let layout = CgroupLayout::detect()?;
    let cgroup = Cgroup::open(&layout, &stored.cgroup_path)?;
    let crate::cgroups::CgroupEntry { birth, join } = cgroup.entry()?;
    let Some(pidfd) = stored
        .init
        .open()
        .map_err(RuntimeError::io(id, "open the init process"))?
    else {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: Status::Stopped,
            verb: "exec in",
        });
    };
    // The lock is for reading a consistent state; the process may outlive this call.
    drop(dir);

    let foreground = !opts.detach;
    let (console, proxy_end) =
        console_for(process.terminal, opts.console_socket.as_deref(), foreground)?;
    let mut flags = 0;
    for kind in &stored.namespaces {
        if *kind != NamespaceKind::Pid {
            flags |= kind.clone_flag();
        }
    }
    if stored.namespaces.contains(&NamespaceKind::Pid) {
        sys::setns(pidfd.as_fd(), libc::CLONE_NEWPID)
            .map_err(RuntimeError::io(id, "enter the PID namespace"))?;
    }
    let (parent_sock, child_sock) =
        sync::pair().map_err(RuntimeError::io(id, "make sync socket"))?;
    let forwarding = if foreground {
        Some(foreground::block_signals().map_err(RuntimeError::io(id, "block signals"))?)
    } else {
        None
    };
    sys::prctl(libc::PR_SET_DUMPABLE, 0, 0)
        .map_err(RuntimeError::io(id, "make the runtime undumpable"))?;
    let ctx = InitContext {
        mode: InitMode::Exec {
            target: pidfd,
            flags,
        },
        config: &config,
        process: &process,
        join: Vec::new(),
        cgroup: Some(join),
        cgroup_views: Vec::new(),
        sync: child_sock,
        console,
        preserve_fds: opts.preserve_fds,
        no_pivot: false,
    };
    let (pid, child) = handshake::spawn(
        id,
        sys::CLONE_CLEAR_SIGHAND,
        birth.as_ref().map(|fd| fd.as_fd()),
        ctx,
    )?;
    handshake::await_ready(id, &parent_sock, &child)?;
    if let Some(path) = &opts.pid_file {
        write_pid_file(path, pid)?;
    }
    let proxy = handshake::receive_proxy(id, proxy_end)?;
    handshake::await_exec(id, &parent_sock, &child)?;
    if opts.detach {
        return Ok(0);
    }
    foreground::wait(&child, forwarding, proxy)
        .map_err(RuntimeError::io(id, "wait for the process"))
}
