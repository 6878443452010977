//! One mount at a time, with the fd-based mount API.
//!
//! A new filesystem is made with `fsopen`/`fsconfig`/`fsmount`, a bind with
//! `open_tree(OPEN_TREE_CLONE)`; its flags are set on the detached mount before it is
//! attached with `move_mount` onto a target descriptor from [`super::resolve`]. No
//! path inside the container is walked by a mount call, so no symlink can redirect one.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::config::{MountConfig, MountKind, Propagation};
use crate::sys;

use super::SetupError;
use super::resolve::{Create, open_in_root};

/// A host directory shown at a path below the container's cgroup mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupView {
    pub host_dir: PathBuf,
    /// Relative to the cgroup mount's destination; empty for the destination itself.
    pub under: PathBuf,
    /// Symbolic links to `under` to make beside it (`cpu` and `cpuacct` for a co-mounted
    /// `cpu,cpuacct`).
    pub aliases: Vec<String>,
}

/// `MS_*` flags that are per-mount attributes, and their `MOUNT_ATTR_*` twins.
const ATTR_FLAGS: [(u64, u64); 7] = [
    (libc::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
    (libc::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
    (libc::MS_NODEV, sys::MOUNT_ATTR_NODEV),
    (libc::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
    (libc::MS_NOATIME, sys::MOUNT_ATTR_NOATIME),
    (libc::MS_STRICTATIME, sys::MOUNT_ATTR_STRICTATIME),
    (libc::MS_NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
];
const MS_NOSYMFOLLOW: u64 = 256;

/// Every attribute a bind remount resets, as `mount -o remount,bind` does.
const ALL_ATTRS: u64 = sys::MOUNT_ATTR_RDONLY
    | sys::MOUNT_ATTR_NOSUID
    | sys::MOUNT_ATTR_NODEV
    | sys::MOUNT_ATTR_NOEXEC
    | sys::MOUNT_ATTR__ATIME
    | sys::MOUNT_ATTR_NODIRATIME
    | sys::MOUNT_ATTR_NOSYMFOLLOW;

/// The `MOUNT_ATTR_*` bits for a set of `MS_*` flags.
pub fn attrs_from_flags(flags: u64) -> u64 {
    let mut attrs = 0;
    for (ms, attr) in ATTR_FLAGS {
        if flags & ms != 0 {
            attrs |= attr;
        }
    }
    if flags & MS_NOSYMFOLLOW != 0 {
        attrs |= sys::MOUNT_ATTR_NOSYMFOLLOW;
    }
    attrs
}

fn propagation_flag(p: Propagation) -> u64 {
    match p {
        Propagation::Shared => libc::MS_SHARED,
        Propagation::Slave => libc::MS_SLAVE,
        Propagation::Private => libc::MS_PRIVATE,
        Propagation::Unbindable => libc::MS_UNBINDABLE,
    }
}

fn mount_err<'a>(
    m: &'a MountConfig,
    step: &'static str,
) -> impl FnOnce(io::Error) -> SetupError + 'a {
    move |source| SetupError::Mount {
        step,
        destination: m.destination.clone(),
        source,
    }
}

/// Performs one entry of `mounts` under `root`.
pub fn mount_one(
    root: BorrowedFd<'_>,
    bundle: &Path,
    m: &MountConfig,
    cgroups: &[CgroupView],
) -> Result<(), SetupError> {
    let attached = match &m.kind {
        MountKind::Bind { source, recursive } => {
            let source = if source.is_absolute() {
                source.clone()
            } else {
                bundle.join(source)
            };
            let is_dir = std::fs::metadata(&source)
                .map_err(|e| SetupError::BindSource {
                    source_path: source.clone(),
                    destination: m.destination.clone(),
                    source: e,
                })?
                .is_dir();
            let target = open_in_root(
                root,
                &m.destination,
                if is_dir { Create::Dir } else { Create::File },
            )
            .map_err(mount_err(m, "resolve destination"))?;
            let mut flags = sys::OPEN_TREE_CLONE;
            if *recursive {
                flags |= sys::AT_RECURSIVE;
            }
            let tree = sys::open_tree(libc::AT_FDCWD, &source, flags)
                .map_err(mount_err(m, "clone bind source"))?;
            let attrs = attrs_from_flags(m.flags);
            if attrs != 0 {
                // As runc's bind remount: the flags given replace the source's.
                sys::mount_setattr(tree.as_fd(), *recursive, attrs, ALL_ATTRS, 0)
                    .map_err(mount_err(m, "set bind mount flags"))?;
            }
            sys::move_mount(tree.as_fd(), target.as_fd()).map_err(mount_err(m, "attach bind"))?;
            tree
        }
        MountKind::Filesystem { fstype, source } => {
            let target = open_in_root(root, &m.destination, Create::Dir)
                .map_err(mount_err(m, "resolve destination"))?;
            let mnt = new_filesystem(fstype, source, &m.data, m.flags)
                .map_err(mount_err(m, "create filesystem"))?;
            sys::move_mount(mnt.as_fd(), target.as_fd()).map_err(mount_err(m, "attach"))?;
            mnt
        }
        MountKind::Cgroup => mount_cgroups(root, m, cgroups)?,
    };
    for (p, recursive) in &m.propagation {
        sys::mount_setattr(attached.as_fd(), *recursive, 0, 0, propagation_flag(*p))
            .map_err(mount_err(m, "set propagation"))?;
    }
    Ok(())
}

/// A detached mount of a new `fstype` superblock.
pub fn new_filesystem(
    fstype: &str,
    source: &str,
    data: &[String],
    flags: u64,
) -> io::Result<OwnedFd> {
    let fs = sys::fsopen(fstype)?;
    if !source.is_empty() {
        sys::fsconfig_set(fs.as_fd(), "source", Some(source))?;
    }
    for option in data {
        match option.split_once('=') {
            Some((key, value)) => sys::fsconfig_set(fs.as_fd(), key, Some(value))?,
            None => sys::fsconfig_set(fs.as_fd(), option, None)?,
        }
    }
    // Superblock flags have no mount attribute; they are options of the filesystem.
    if flags & libc::MS_SYNCHRONOUS != 0 {
        sys::fsconfig_set(fs.as_fd(), "sync", None)?;
    }
    if flags & libc::MS_DIRSYNC != 0 {
        sys::fsconfig_set(fs.as_fd(), "dirsync", None)?;
    }
    sys::fsmount(fs.as_fd(), attrs_from_flags(flags))
}

/// The container's own cgroups at the destination: a tmpfs holding a bind of each of the
/// container's groups (v1 and hybrid), or the group itself (unified).
fn mount_cgroups(
    root: BorrowedFd<'_>,
    m: &MountConfig,
    cgroups: &[CgroupView],
) -> Result<OwnedFd, SetupError> {
    let target = open_in_root(root, &m.destination, Create::Dir)
        .map_err(mount_err(m, "resolve destination"))?;
    let readonly = m.flags & libc::MS_RDONLY != 0;
    let bind_attrs = attrs_from_flags(m.flags)
        | sys::MOUNT_ATTR_NOSUID
        | sys::MOUNT_ATTR_NODEV
        | sys::MOUNT_ATTR_NOEXEC;
    if let [only] = cgroups
        && only.under.as_os_str().is_empty()
    {
        let tree = sys::open_tree(libc::AT_FDCWD, &only.host_dir, sys::OPEN_TREE_CLONE)
            .map_err(mount_err(m, "clone cgroup"))?;
        sys::mount_setattr(tree.as_fd(), false, bind_attrs, ALL_ATTRS, 0)
            .map_err(mount_err(m, "set cgroup flags"))?;
        sys::move_mount(tree.as_fd(), target.as_fd()).map_err(mount_err(m, "attach cgroup"))?;
        return Ok(tree);
    }
    let tmpfs = new_filesystem(
        "tmpfs",
        "cgroup",
        &["mode=755".to_string()],
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )
    .map_err(mount_err(m, "create cgroup tmpfs"))?;
    sys::move_mount(tmpfs.as_fd(), target.as_fd()).map_err(mount_err(m, "attach cgroup tmpfs"))?;
    for view in cgroups {
        let dest = m.destination.join(&view.under);
        let sub =
            open_in_root(root, &dest, Create::Dir).map_err(mount_err(m, "make cgroup dir"))?;
        let tree = sys::open_tree(libc::AT_FDCWD, &view.host_dir, sys::OPEN_TREE_CLONE)
            .map_err(mount_err(m, "clone cgroup"))?;
        sys::mount_setattr(tree.as_fd(), false, bind_attrs, ALL_ATTRS, 0)
            .map_err(mount_err(m, "set cgroup flags"))?;
        sys::move_mount(tree.as_fd(), sub.as_fd()).map_err(mount_err(m, "attach cgroup"))?;
        if !view.aliases.is_empty() {
            let base = open_in_root(root, &m.destination, Create::Nothing)
                .map_err(mount_err(m, "open cgroup tmpfs"))?;
            for alias in &view.aliases {
                symlink_at(base.as_fd(), &view.under, alias)
                    .map_err(mount_err(m, "link cgroup alias"))?;
            }
        }
    }
    if readonly {
        sys::mount_setattr(tmpfs.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(mount_err(m, "make cgroup tmpfs read-only"))?;
    }
    Ok(tmpfs)
}

fn symlink_at(dir: BorrowedFd<'_>, target: &Path, name: &str) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let target = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let name =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid descriptor and C strings.
    if unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}

/// Remounts the mount at `path` (relative to `root`, which must be its own mount) with
/// `set` attributes added, recursively, by binding it onto itself first if it is not a
/// mount point. Missing paths are skipped, as runc does.
pub fn bind_self_with(root: BorrowedFd<'_>, path: &Path, set: u64) -> io::Result<()> {
    let target = match open_in_root(root, path, Create::Nothing) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let tree = sys::open_tree(
        target.as_raw_fd(),
        Path::new(""),
        sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE,
    )?;
    sys::mount_setattr(tree.as_fd(), true, set, 0, 0)?;
    sys::move_mount(tree.as_fd(), target.as_fd())
}

/// Hides `path`: a directory under an empty read-only tmpfs, anything else under a bind
/// of `host_null` (a clone of the host's `/dev/null`, never the image's, which
/// could be a symlink to something that matters: CVE-2025-31133).
pub fn mask(root: BorrowedFd<'_>, path: &Path, host_null: &Path) -> io::Result<()> {
    let target = match open_in_root(root, path, Create::Nothing) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let st = super::resolve::fstat(target.as_fd())?;
    let mnt = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        new_filesystem("tmpfs", "tmpfs", &[], libc::MS_RDONLY)?
    } else {
        let tree = sys::open_tree(libc::AT_FDCWD, host_null, sys::OPEN_TREE_CLONE)?;
        let null = super::resolve::fstat(tree.as_fd())?;
        if null.st_mode & libc::S_IFMT != libc::S_IFCHR || null.st_rdev != libc::makedev(1, 3) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not the null device", host_null.display()),
            ));
        }
        tree
    };
    sys::move_mount(mnt.as_fd(), target.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_mount_attributes() {
        assert_eq!(attrs_from_flags(0), 0);
        assert_eq!(
            attrs_from_flags(libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV),
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV
        );
        assert_eq!(
            attrs_from_flags(libc::MS_NOEXEC | libc::MS_STRICTATIME),
            sys::MOUNT_ATTR_NOEXEC | sys::MOUNT_ATTR_STRICTATIME
        );
        // Flags that are not per-mount attributes do not leak in.
        assert_eq!(
            attrs_from_flags(libc::MS_BIND | libc::MS_REC | libc::MS_SYNCHRONOUS),
            0
        );
    }
}
