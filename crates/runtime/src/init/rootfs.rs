//! Building the container's root in its new mount namespace, then making it `/`.
//!
//! ```text
//! / made rslave (or as rootfsPropagation says, unbindable as private): nothing here
//!   reaches the host
//! the mount holding root.path made private         (shared only)
//! root.path bound onto itself, opened as `root`   (every later path resolves under it)
//! mounts, in order                                 (mounts::mount_one)
//! /dev nodes and links, if /dev is a fresh tmpfs   (devices)
//! pseudo-terminal, bound on /dev/console           (console)
//! masked paths, read-only paths                    (mounts::mask, mounts::bind_self_with)
//! pivot_root(root, root); detach the old root      (or MS_MOVE + chroot with --no-pivot)
//! the new / given rootfsPropagation, if set
//! / made read-only if root.readonly
//! ```

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::config::{ContainerConfig, MountKind, Propagation};
use crate::sys;

use super::console::{self, Pty};
use super::mounts::{self, CgroupView};
use super::resolve::{Create, open_existing, open_in_root};
use super::{SetupError, devices};

/// The host's null device, cloned to mask files.
const HOST_NULL: &str = "/dev/null";

fn step_err(step: &'static str) -> impl FnOnce(nix::Error) -> SetupError {
    move |e| SetupError::Rootfs {
        step,
        source: io::Error::from(e),
    }
}

fn io_step(step: &'static str) -> impl FnOnce(io::Error) -> SetupError {
    move |source| SetupError::Rootfs { step, source }
}

fn propagation_flag(propagation: Propagation) -> MsFlags {
    match propagation {
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Shared => MsFlags::MS_SHARED,
        Propagation::Unbindable => MsFlags::MS_UNBINDABLE,
    }
}

/// Makes the mount holding `path` private: `path` itself if it is a mount point, else
/// the nearest parent that is (mount(2) answers EINVAL for a path that is not one).
fn make_holder_private(path: &Path) -> Result<(), SetupError> {
    let mut at = path;
    loop {
        let err = match mount(
            None::<&str>,
            at,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match at.parent() {
            Some(parent) if err == nix::Error::EINVAL => at = parent,
            _ => return Err(step_err("make the mount holding the root private")(err)),
        }
    }
}

/// Everything up to (not including) the pivot. Returns the descriptor of the new root
/// and the terminal, if the process asked for one.
pub fn prepare(
    config: &ContainerConfig,
    cgroups: &[CgroupView],
) -> Result<(OwnedFd, Option<Pty>), SetupError> {
    // Unbindable mounts cannot be the source of a bind, and the root, the cgroups and
    // every bind mount are binds: until the pivot the tree is only private, and the new
    // `/` is made unbindable afterwards.
    let before_pivot = match config.rootfs_propagation {
        None => Propagation::Slave,
        Some(Propagation::Unbindable) => Propagation::Private,
        Some(p) => p,
    };
    let propagation = propagation_flag(before_pivot);
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        propagation | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step_err("set propagation of /"))?;
    // pivot_root refuses a new root whose parent mount is shared: make the mount holding
    // the root private first, as runc does. It is this namespace's copy of that mount;
    // the host's is not touched.
    if config.rootfs_propagation == Some(Propagation::Shared) {
        make_holder_private(&config.root)?;
    }
    mount(
        Some(&config.root),
        &config.root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step_err("bind the root filesystem onto itself"))?;
    // pivot_root refuses a new root whose parent mount is shared.
    if config.rootfs_propagation == Some(Propagation::Shared) {
        mount(
            None::<&str>,
            &config.root,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(step_err("make the root private"))?;
    }
    let root = sys::openat2(
        libc::AT_FDCWD,
        &config.root,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .map_err(io_step("open the root filesystem"))?;

    for m in &config.mounts {
        mounts::mount_one(root.as_fd(), &config.bundle, m, cgroups)?;
    }
    let dev_is_fresh = config.mounts.iter().any(|m| {
        m.destination == Path::new("/dev") && matches!(m.kind, MountKind::Filesystem { .. })
    });
    let dev_is_bound = config
        .mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev") && matches!(m.kind, MountKind::Bind { .. }));
    if dev_is_fresh || !dev_is_bound {
        devices::create_devices(root.as_fd(), &config.devices)?;
    }

    let pty = if config.process.terminal {
        Some(container_pty(root.as_fd(), true)?)
    } else {
        None
    };

    for path in &config.masked_paths {
        mounts::mask(root.as_fd(), path, Path::new(HOST_NULL)).map_err(|source| {
            SetupError::Mount {
                step: "mask",
                destination: path.clone(),
                source,
            }
        })?;
    }
    for path in &config.readonly_paths {
        mounts::bind_self_with(root.as_fd(), path, sys::MOUNT_ATTR_RDONLY).map_err(|source| {
            SetupError::Mount {
                step: "make read-only",
                destination: path.clone(),
                source,
            }
        })?;
    }
    Ok((root, pty))
}

/// A pseudo-terminal from the container's `/dev/ptmx` (or `/dev/pts/ptmx`), bound onto
/// `/dev/console` when `console` is set.
pub fn container_pty(
    root: std::os::fd::BorrowedFd<'_>,
    bind_console: bool,
) -> Result<Pty, SetupError> {
    let term_err = |step: &'static str| move |source| SetupError::Terminal { step, source };
    let ptmx = open_existing(root, Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY)
        .or_else(|_| {
            open_existing(
                root,
                Path::new("/dev/pts/ptmx"),
                libc::O_RDWR | libc::O_NOCTTY,
            )
        })
        .map_err(term_err("open /dev/ptmx"))?;
    let pty = console::open_pty(ptmx).map_err(term_err("make a pseudo-terminal"))?;
    if bind_console {
        let target = open_in_root(root, Path::new("/dev/console"), Create::File)
            .map_err(term_err("create /dev/console"))?;
        let tree = sys::open_tree(pty.slave.as_raw_fd(), Path::new(""), sys::OPEN_TREE_CLONE)
            .map_err(term_err("clone the terminal"))?;
        sys::move_mount(tree.as_fd(), target.as_fd()).map_err(term_err("bind /dev/console"))?;
    }
    Ok(pty)
}

/// Makes `root` the process's `/` and lets go of the old root.
pub fn pivot(root: OwnedFd, no_pivot: bool, config: &ContainerConfig) -> Result<(), SetupError> {
    let old_root = sys::openat2(
        libc::AT_FDCWD,
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .map_err(io_step("open the old root"))?;
    nix::unistd::fchdir(&root).map_err(step_err("enter the root filesystem"))?;
    if no_pivot {
        // For roots that cannot be pivoted (an initramfs): move the root over / and
        // chroot into it. The old root stays reachable to a process that can escape a
        // chroot, which is why this is only on request.
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(step_err("move the root filesystem onto /"))?;
        nix::unistd::chroot(".").map_err(step_err("chroot"))?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one; it is then
        // made a slave (so unmounting it cannot reach the host) and detached.
        nix::unistd::pivot_root(".", ".").map_err(step_err("pivot_root"))?;
        // The old root now sits on top of the new one; step onto it to detach it.
        nix::unistd::fchdir(&old_root).map_err(step_err("enter the old root"))?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(step_err("make the old root a slave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(step_err("detach the old root"))?;
    }
    nix::unistd::chdir("/").map_err(step_err("enter /"))?;
    drop(old_root);
    drop(root);
    // The pivot needed the root private (shared) and binds needed it bindable
    // (unbindable): give the container's `/` the propagation asked for only now.
    if let Some(p) = config.rootfs_propagation {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            propagation_flag(p) | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(step_err("set propagation of the new /"))?;
    }
    if config.root_readonly {
        let slash = sys::openat2(libc::AT_FDCWD, Path::new("/"), libc::O_PATH, 0, 0)
            .map_err(io_step("open /"))?;
        sys::mount_setattr(slash.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(io_step("make / read-only"))?;
    }
    Ok(())
}
