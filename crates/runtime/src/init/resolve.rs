//! Resolving a container path to a descriptor without ever leaving the container's root.
//!
//! Every mount target, device node, masked path and console the runtime touches inside
//! a root filesystem is found with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! from a descriptor of the root: a symlink in the image (`/dev -> /host/dev`,
//! `/proc -> ../../..`) resolves as if the root were `/`, and `/proc/self/...` magic
//! links are refused. The result is an `O_PATH` descriptor that the mount calls use
//! directly, so nothing is resolved twice and a symlink swapped in between (the
//! CVE-2021-30465 race) changes nothing.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::sys;

const RESOLVE_FLAGS: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

/// What to create at the end of the path when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Nothing,
    Dir,
    File,
}

/// The path relative to the root, from an absolute container path. `..` components are
/// kept (openat2 clamps them at the root), `.` and repeated slashes dropped.
fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Path::new(n).to_path_buf()),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

/// Opens `path` (absolute, as seen inside the container) under `root` as an `O_PATH`
/// descriptor, creating what is missing as asked. Intermediate directories are created
/// 0755; a created file is empty and 0644.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, create: Create) -> io::Result<OwnedFd> {
    let rel = relative(path);
    let target = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel.as_path()
    };
    match sys::openat2(root.as_raw_fd(), target, libc::O_PATH, 0, RESOLVE_FLAGS) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create != Create::Nothing => {}
        other => return other,
    }
    let components: Vec<&OsStr> = rel.iter().collect();
    let mut prefix = PathBuf::new();
    for (i, name) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let here = prefix.join(name);
        match sys::openat2(root.as_raw_fd(), &here, libc::O_PATH, 0, RESOLVE_FLAGS) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent_path = if prefix.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    prefix.as_path()
                };
                let parent = sys::openat2(
                    root.as_raw_fd(),
                    parent_path,
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                    RESOLVE_FLAGS,
                )?;
                make_entry(parent.as_raw_fd(), name, last && create == Create::File)?;
            }
            Err(e) => return Err(e),
        }
        prefix = here;
    }
    sys::openat2(root.as_raw_fd(), target, libc::O_PATH, 0, RESOLVE_FLAGS)
}

/// Creates one directory entry `name` in the directory `parent`. An entry that appeared
/// meanwhile (or is a dangling symlink) is left for the final resolution to judge.
fn make_entry(parent: libc::c_int, name: &OsStr, file: bool) -> io::Result<()> {
    let c = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid C string; `parent` is an open directory descriptor; neither
    // call follows a symlink in the final component (O_EXCL / mkdirat semantics).
    let ret = unsafe {
        if file {
            let fd = libc::openat(
                parent,
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644 as libc::c_uint,
            );
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        } else {
            libc::mkdirat(parent, c.as_ptr(), 0o755)
        }
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}

/// Opens an existing `path` under `root` with `flags` (no creation), for the few files
/// the runtime reads or writes rather than mounts on (the pseudo-terminal multiplexer).
pub fn open_existing(root: BorrowedFd<'_>, path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let rel = relative(path);
    sys::openat2(root.as_raw_fd(), &rel, flags, 0, RESOLVE_FLAGS)
}

/// `fstat` of a descriptor (works on `O_PATH` ones).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &Path) -> OwnedFd {
        sys::openat2(libc::AT_FDCWD, dir, libc::O_PATH | libc::O_DIRECTORY, 0, 0)
            .expect("open root")
    }

    fn ino(fd: &OwnedFd) -> u64 {
        fstat(fd.as_fd()).expect("fstat").st_ino
    }

    #[test]
    fn symlink_out_of_the_root_resolves_inside_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        // An image that points /dev at the host's /etc and /x at ../../..
        symlink("/etc", root.join("dev")).expect("symlink");
        symlink("../../..", root.join("x")).expect("symlink");
        let rfd = root_fd(&root);
        let dev = open_in_root(rfd.as_fd(), Path::new("/dev"), Create::Nothing).expect("dev");
        assert_eq!(
            ino(&dev),
            std::fs::metadata(root.join("etc")).expect("stat").ino()
        );
        let x = open_in_root(rfd.as_fd(), Path::new("/x"), Create::Nothing).expect("x");
        assert_eq!(ino(&x), std::fs::metadata(&root).expect("stat").ino());
    }

    #[test]
    fn missing_targets_are_created_inside_the_root_through_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        symlink(&outside, root.join("evil")).expect("symlink");
        symlink("/nowhere", root.join("dangling")).expect("symlink");
        let rfd = root_fd(&root);
        // A symlink that dangles inside the root is an error, never a path outside it.
        assert!(open_in_root(rfd.as_fd(), Path::new("/evil/a/b"), Create::Dir).is_err());
        assert!(open_in_root(rfd.as_fd(), Path::new("/dangling/x"), Create::Dir).is_err());
        // Once the link's target exists inside the root, creation goes there.
        let inside = root.join(outside.strip_prefix("/").expect("abs"));
        std::fs::create_dir_all(&inside).expect("mkdir inside");
        open_in_root(rfd.as_fd(), Path::new("/evil/a/b"), Create::Dir).expect("create dirs");
        open_in_root(rfd.as_fd(), Path::new("/evil/f"), Create::File).expect("create file");
        assert!(inside.join("a/b").is_dir());
        assert!(inside.join("f").is_file());
        assert!(std::fs::read_dir(&outside).expect("read").next().is_none());
        assert!(!Path::new("/nowhere").exists());
    }

    #[test]
    fn magic_links_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).expect("mkdir");
        symlink("/proc/self/root", root.join("host")).expect("symlink");
        let rfd = root_fd(&root);
        // /proc does not exist under this root, so the link dangles inside it.
        assert!(open_in_root(rfd.as_fd(), Path::new("/host/etc"), Create::Nothing).is_err());
    }

    use std::os::unix::fs::MetadataExt;
}
