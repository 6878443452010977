//! The container side: what the process cloned by the runtime does before it becomes
//! the user's program.
//!
//! The runtime never executes itself inside a container. It clones a child (not
//! dumpable, so nothing in the container can open its memory or `/proc/PID/exe`), and
//! the child, still running the runtime's code, sets the container up and then executes
//! only the user's program:
//!
//! ```text
//!   enter joined namespaces (by path, or the target container's for exec)
//!   hostname, root filesystem, devices, terminal, masks, sysctls, pivot_root
//!   find the program                                  --R--> parent (set-up done)
//!   wait: S from parent (run: start; create: recorded), then (create) the exec fifo
//!   join memory-accounting groups  <- only now, so nothing of the runtime is charged
//!                                     (born in the cgroup2 group when it accounts none)
//!   rlimits, user, capabilities, no_new_privs, cwd check, close descriptors, execve
//! ```
//!
//! A failure before `R` is sent to the parent as `E<message>`; after it, to the parent if
//! it still listens (run, exec), else to the container's stderr.

pub mod console;
pub mod devices;
pub mod mounts;
pub mod process;
pub mod resolve;
pub mod rootfs;
pub mod sync;

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cgroups::CgroupJoin;
use crate::config::{ContainerConfig, NamespaceKind, ProcessConfig};
use crate::sys;

use self::mounts::CgroupView;
use self::sync::Message;

/// Errors of container set-up, raised in the cloned child and reported as text.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("join {kind} namespace: {source}")]
    Namespace {
        kind: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("set {what}: {source}")]
    Uts {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("root filesystem: {step}: {source}")]
    Rootfs {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("mount {destination}: {step}: {source}")]
    Mount {
        step: &'static str,
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bind mount source {source_path} for {destination}: {source}")]
    BindSource {
        source_path: PathBuf,
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create device {path}: {source}")]
    Device {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("terminal: {step}: {source}")]
    Terminal {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("write sysctl {name}: {source}")]
    Sysctl {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("set oom_score_adj: {source}")]
    OomScoreAdj {
        #[source]
        source: io::Error,
    },
    #[error("join cgroup: {0}")]
    Cgroup(String),
    #[error("set rlimit {name}: {source}")]
    Rlimit {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{step}: {source}")]
    Credentials {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("capabilities: {step}: {source}")]
    Capabilities {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("working directory {path}: {reason}")]
    Cwd { path: PathBuf, reason: String },
    #[error("exec {program:?}: {reason}")]
    Program {
        program: String,
        reason: &'static str,
    },
    #[error("exec {program}: {source}")]
    Exec {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("wait for start: {source}")]
    Wait {
        #[source]
        source: io::Error,
    },
}

/// How the child was started, and so how it waits for the go-ahead.
#[derive(Debug)]
pub enum InitMode {
    /// `create`: hold at the exec fifo (an `O_PATH` descriptor) until `start`.
    Create { fifo: OwnedFd },
    /// `run`: wait for `S` from the parent.
    Run,
    /// `exec`: go straight on; `target` is the container's init (pidfd) and the
    /// namespaces to enter through it.
    Exec { target: OwnedFd, flags: libc::c_int },
}

/// Everything the child needs, prepared by the parent before the clone.
#[derive(Debug)]
pub struct InitContext<'a> {
    pub mode: InitMode,
    pub config: &'a ContainerConfig,
    pub process: &'a ProcessConfig,
    /// Namespaces joined by path (create and run), already open.
    pub join: Vec<(NamespaceKind, OwnedFd)>,
    pub cgroup: Option<CgroupJoin>,
    pub cgroup_views: Vec<CgroupView>,
    /// The child's end of the sync socket pair.
    pub sync: OwnedFd,
    /// Where to send the terminal's controlling side (a connected Unix socket).
    pub console: Option<OwnedFd>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
}

/// Runs in the cloned child. Never returns: the process becomes the user's program or
/// exits after reporting why it could not.
pub fn child_main(mut ctx: InitContext<'_>) -> ! {
    let ready_sent = std::cell::Cell::new(false);
    let err = match run(&mut ctx, &ready_sent) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let text = err.to_string();
    let reported = sync::send(ctx.sync.as_fd(), &Message::Error(text.clone())).is_ok();
    if !reported || (ready_sent.get() && matches!(ctx.mode, InitMode::Create { .. })) {
        let _ = writeln!(io::stderr(), "moor: container process: {text}");
    }
    // SAFETY: _exit ends this process without running the parent's atexit handlers
    // or flushing its copied stdio buffers.
    unsafe {
        libc::_exit(
            if matches!(err, SetupError::Exec { .. } | SetupError::Program { .. }) {
                127
            } else {
                1
            },
        )
    }
}

fn run(
    ctx: &mut InitContext<'_>,
    ready_sent: &std::cell::Cell<bool>,
) -> Result<std::convert::Infallible, SetupError> {
    // The parent blocks signals it forwards; the user's program must not inherit that.
    let empty = nix::sys::signal::SigSet::empty();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    );
    // Die with the parent while setting up, so an interrupted create leaves nothing.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0);
    // A session of its own, as runc gives every container process: left in the caller's,
    // a program without a terminal could open the caller's terminal through /dev/tty.
    // With a terminal, `console::make_controlling` starts the session instead.
    if !ctx.process.terminal {
        nix::unistd::setsid().map_err(|e| SetupError::Credentials {
            step: "start a new session",
            source: e.into(),
        })?;
    }

    close_inherited(ctx).map_err(|source| SetupError::Credentials {
        step: "close inherited descriptors",
        source,
    })?;
    let mut pty = None;
    let mut proc_fd = None;
    if let InitMode::Exec { target, flags } = &ctx.mode {
        sys::setns(target.as_fd(), *flags).map_err(|source| SetupError::Namespace {
            kind: "container's",
            source,
        })?;
        if ctx.process.terminal {
            let root = sys::openat2(libc::AT_FDCWD, Path::new("/"), libc::O_PATH, 0, 0).map_err(
                |source| SetupError::Terminal {
                    step: "open /",
                    source,
                },
            )?;
            pty = Some(rootfs::container_pty(root.as_fd(), false)?);
        }
    } else {
        join_namespaces(ctx)?;
        let config = ctx.config;
        let new_uts = config
            .namespace(NamespaceKind::Uts)
            .is_some_and(|ns| ns.path.is_none());
        let new_net = config
            .namespace(NamespaceKind::Network)
            .is_some_and(|ns| ns.path.is_none());
        if new_net {
            loopback_up().map_err(|source| SetupError::Namespace {
                kind: "network (bring up lo)",
                source,
            })?;
        }
        if new_uts {
            if let Some(name) = &config.hostname {
                nix::unistd::sethostname(name).map_err(|e| SetupError::Uts {
                    what: "hostname",
                    source: e.into(),
                })?;
            }
            if let Some(name) = &config.domainname {
                set_domainname(name)?;
            }
        }
        let needs_proc = matches!(ctx.mode, InitMode::Create { .. })
            || !config.sysctl.is_empty()
            || ctx.process.oom_score_adj.is_some();
        if needs_proc {
            proc_fd = Some(private_proc()?);
        }
        let (root, console) = rootfs::prepare(config, &ctx.cgroup_views)?;
        pty = console;
        if let Some(proc_fd) = &proc_fd {
            write_sysctls(proc_fd, config)?;
        }
        rootfs::pivot(root, ctx.no_pivot, config)?;
    }
    if let Some(adj) = ctx.process.oom_score_adj {
        if proc_fd.is_none() {
            proc_fd = Some(private_proc()?);
        }
        if let Some(proc_fd) = &proc_fd {
            write_proc(proc_fd, "self/oom_score_adj", &adj.to_string())
                .map_err(|source| SetupError::OomScoreAdj { source })?;
        }
    }
    if let Some(pty) = &pty {
        if let Some((rows, cols)) = ctx.process.console_size {
            console::set_size(pty.master.as_fd(), rows, cols).map_err(|source| {
                SetupError::Terminal {
                    step: "set size",
                    source,
                }
            })?;
        }
        if let Some(socket) = &ctx.console {
            console::send_fd(
                socket.as_fd(),
                pty.master.as_fd(),
                &format!("/dev/pts/{}", pty.number),
            )
            .map_err(|source| SetupError::Terminal {
                step: "send to console socket",
                source,
            })?;
        }
    }
    let pty = pty.map(|p| p.slave);
    ctx.console = None;

    process::enter_cwd(&ctx.process.cwd)?;
    let program = process::find_program(ctx.process)?;

    if matches!(ctx.mode, InitMode::Create { .. }) {
        // A finished create must outlive the create command, which exits as soon as it
        // has read `R` and recorded the container: cleared only after `R`, the death
        // signal could kill the container first. An interrupted create still leaves
        // nothing: until the parent says `S` (recorded), its exit ends the wait below.
        let _ = sys::prctl(libc::PR_SET_PDEATHSIG, 0, 0);
    }
    sync::send(ctx.sync.as_fd(), &Message::Ready).map_err(|source| SetupError::Wait { source })?;
    ready_sent.set(true);
    if !matches!(ctx.mode, InitMode::Exec { .. }) {
        match sync::recv(ctx.sync.as_fd()) {
            Ok(Message::Start) => {}
            Ok(other) => {
                return Err(SetupError::Wait {
                    source: io::Error::other(format!("parent sent {other:?} instead of start")),
                });
            }
            Err(source) => return Err(SetupError::Wait { source }),
        }
    }
    if let InitMode::Create { fifo } = &ctx.mode {
        let proc_fd = proc_fd.take().ok_or_else(|| SetupError::Wait {
            source: io::Error::other("no proc instance"),
        })?;
        wait_fifo(&proc_fd, fifo)?;
    }
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, 0, 0);
    drop(proc_fd);

    if let Some(join) = ctx.cgroup.take() {
        join.join_self()
            .map_err(|e| SetupError::Cgroup(e.to_string()))?;
    }
    // A cgroup namespace is rooted at the group its creator is in, and a process inside
    // one cannot be moved out of it: so it is entered only now, after joining.
    enter_cgroup_namespace(ctx)?;
    process::apply_rlimits(&ctx.process.rlimits)?;
    if let Some(slave) = pty {
        console::make_controlling(slave).map_err(|source| SetupError::Terminal {
            step: "make controlling terminal",
            source,
        })?;
    }
    process::switch_user(&ctx.process.user, &ctx.process.capabilities)?;
    if ctx.process.no_new_privileges {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(|source| SetupError::Credentials {
            step: "set no_new_privs",
            source,
        })?;
    }
    // The directory was checked as root; enter it again as the user, as runc does, so a
    // directory the user may not enter is refused now rather than at the first access.
    process::enter_cwd(&ctx.process.cwd)?;
    Err(process::exec(&program, ctx.process, ctx.preserve_fds))
}

/// Closes every descriptor the child inherited from the runtime except stdio, the
/// preserved ones and those in `ctx`: a host directory left open (the state directory,
/// a cgroup directory) is a way out of the container (CVE-2024-21626), and a lock
/// inherited on the state directory would block the next verb.
fn close_inherited(ctx: &InitContext<'_>) -> io::Result<()> {
    let mut keep: Vec<i32> = vec![ctx.sync.as_raw_fd()];
    if let Some(c) = &ctx.console {
        keep.push(c.as_raw_fd());
    }
    match &ctx.mode {
        InitMode::Create { fifo } => keep.push(fifo.as_raw_fd()),
        InitMode::Exec { target, .. } => keep.push(target.as_raw_fd()),
        InitMode::Run => {}
    }
    keep.extend(ctx.join.iter().map(|(_, fd)| fd.as_raw_fd()));
    if let Some(j) = &ctx.cgroup {
        keep.extend(j.raw_fds());
    }
    keep.sort_unstable();
    let first = 3 + ctx.preserve_fds as i32;
    let mut from = first;
    for fd in keep.into_iter().filter(|fd| *fd >= first) {
        if fd > from {
            // SAFETY: closing a range of descriptors none of our Rust handles own (the
            // ones in `ctx` are skipped).
            let ret =
                unsafe { libc::syscall(libc::SYS_close_range, from as u32, (fd - 1) as u32, 0) };
            if ret < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        from = fd + 1;
    }
    sys::close_range_from(from as u32, false)
}

fn enter_cgroup_namespace(ctx: &InitContext<'_>) -> Result<(), SetupError> {
    if matches!(ctx.mode, InitMode::Exec { .. }) {
        return Ok(()); // entered with the others, through the init's pidfd
    }
    let Some(ns) = ctx.config.namespace(NamespaceKind::Cgroup) else {
        return Ok(());
    };
    let result = match ctx.join.iter().find(|(k, _)| *k == NamespaceKind::Cgroup) {
        Some((_, fd)) => sys::setns(fd.as_fd(), libc::CLONE_NEWCGROUP),
        None if ns.path.is_none() => {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP).map_err(io::Error::from)
        }
        None => Ok(()),
    };
    result.map_err(|source| SetupError::Namespace {
        kind: "cgroup",
        source,
    })
}

fn join_namespaces(ctx: &InitContext<'_>) -> Result<(), SetupError> {
    // Mount last: entering it changes our root, which the other paths were opened under
    // anyway (the fds are already open).
    let mut order: Vec<&(NamespaceKind, OwnedFd)> = ctx.join.iter().collect();
    order.sort_by_key(|(kind, _)| *kind == NamespaceKind::Mount);
    for (kind, fd) in order {
        if matches!(*kind, NamespaceKind::Pid | NamespaceKind::Cgroup) {
            continue; // pid: by the parent before the clone; cgroup: after joining it
        }
        sys::setns(fd.as_fd(), kind.clone_flag()).map_err(|source| SetupError::Namespace {
            kind: kind.spec_name(),
            source,
        })?;
    }
    Ok(())
}

/// Brings up `lo` in a new network namespace, as runc does: a container's own
/// 127.0.0.1 works even with no other interface. One ioctl; no netlink needed.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned and nothing else owns it.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the flags union member of a live
    // ifreq naming "lo".
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn set_domainname(name: &str) -> Result<(), SetupError> {
    // SAFETY: pointer and length of a live byte slice.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if ret != 0 {
        return Err(SetupError::Uts {
            what: "domainname",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// A procfs instance of our own, detached from every tree: sysctls and the exec fifo go
/// through it rather than through the container's `/proc`, which the image could have
/// arranged to be something else (CVE-2025-52881 class).
fn private_proc() -> Result<OwnedFd, SetupError> {
    let err = |source| SetupError::Rootfs {
        step: "make a private proc instance",
        source,
    };
    let fs = sys::fsopen("proc").map_err(err)?;
    sys::fsmount(
        fs.as_fd(),
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
    )
    .map_err(err)
}

fn write_proc(proc_fd: &OwnedFd, path: &str, value: &str) -> io::Result<()> {
    let fd = sys::openat2(
        proc_fd.as_raw_fd(),
        Path::new(path),
        libc::O_WRONLY | libc::O_TRUNC,
        0,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_XDEV | libc::RESOLVE_NO_MAGICLINKS,
    )?;
    let mut file = std::fs::File::from(fd);
    file.write_all(value.as_bytes())
}

fn write_sysctls(proc_fd: &OwnedFd, config: &ContainerConfig) -> Result<(), SetupError> {
    for (name, value) in &config.sysctl {
        let path = format!("sys/{}", sysctl_path(name));
        write_proc(proc_fd, &path, value).map_err(|source| SetupError::Sysctl {
            name: name.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The path under `/proc/sys` of a sysctl name, by sysctl(8)'s rule: when the first
/// separator is `/`, the name is a path already; otherwise dots separate and a slash
/// stands for a dot inside a component (`net.ipv4.conf.eth0/100.forwarding`).
fn sysctl_path(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name.to_string(),
        _ => name
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
    }
}

/// Blocks until `start` opens the fifo for reading, then tells it we are going.
fn wait_fifo(proc_fd: &OwnedFd, fifo: &OwnedFd) -> Result<(), SetupError> {
    let path = format!("self/fd/{}", fifo.as_raw_fd());
    let c = std::ffi::CString::new(path).map_err(|_| SetupError::Wait {
        source: io::Error::other("fifo path"),
    })?;
    // SAFETY: openat on our own procfs descriptor with a valid C string; this follows
    // the /proc/self/fd magic link on purpose (reopening our own O_PATH descriptor).
    let fd = unsafe {
        libc::openat(
            proc_fd.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(SetupError::Wait {
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: fd was just returned by openat.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    file.write_all(b"0")
        .map_err(|source| SetupError::Wait { source })
}

#[cfg(test)]
mod tests {
    use super::sysctl_path;

    #[test]
    fn sysctl_names_map_to_paths_as_sysctl8_does() {
        assert_eq!(sysctl_path("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0/100.forwarding"),
            "net/ipv4/conf/eth0.100/forwarding"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding"),
            "net/ipv4/conf/eth0.100/forwarding"
        );
        assert_eq!(sysctl_path("kernel.shmmax"), "kernel/shmmax");
    }
}
