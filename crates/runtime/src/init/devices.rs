//! Device nodes and the standard links in the container's `/dev`.
//!
//! Every container gets `null`, `zero`, `full`, `random`, `urandom` and `tty` (as the OCI
//! runtime spec requires), the `fd`/`stdin`/`stdout`/`stderr` links, `ptmx` pointing at
//! its own devpts instance, and the devices its configuration lists. The nodes are made
//! with `mknodat` under a descriptor of `/dev` resolved inside the root, so an image's
//! symlinks cannot put them anywhere else; the device cgroup rules decide what may be
//! opened. [`default_rules`] are the cgroup rules that go with the default nodes.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::config::{DeviceAccess, DeviceNode, DeviceNodeKind, DeviceRule, DeviceRuleKind};

use super::SetupError;
use super::resolve::{Create, open_in_root};

/// (name, major, minor) of the devices every container has.
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// (link, target) of the standard links.
const DEFAULT_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Device cgroup rules allowing the default devices, `/dev/console`, `/dev/ptmx` and the
/// container's pseudo-terminals, then the configured device nodes. They go after the
/// configuration's own rules, so the last match makes them usable even under a
/// configuration that starts by denying everything (as `runc spec` does).
pub fn default_rules(nodes: &[DeviceNode]) -> Vec<DeviceRule> {
    let allow = |kind, major, minor| DeviceRule {
        allow: true,
        kind,
        major: Some(major),
        minor,
        access: DeviceAccess::ALL,
    };
    let mut rules: Vec<DeviceRule> = DEFAULT_DEVICES
        .iter()
        .map(|&(_, major, minor)| allow(DeviceRuleKind::Char, major, Some(minor)))
        .collect();
    rules.push(allow(DeviceRuleKind::Char, 5, Some(1))); // /dev/console
    rules.push(allow(DeviceRuleKind::Char, 5, Some(2))); // /dev/ptmx
    rules.push(allow(DeviceRuleKind::Char, 136, None)); // /dev/pts/*
    for node in nodes {
        let kind = match node.kind {
            DeviceNodeKind::Char => DeviceRuleKind::Char,
            DeviceNodeKind::Block => DeviceRuleKind::Block,
            DeviceNodeKind::Fifo => continue,
        };
        rules.push(allow(kind, node.major, Some(node.minor)));
    }
    rules
}

fn cname(name: &Path) -> io::Result<CString> {
    CString::new(name.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Makes one node at `path` (inside the container), replacing whatever the image had
/// there (a regular file, a symlink).
fn make_node(root: BorrowedFd<'_>, node: &DeviceNode) -> io::Result<()> {
    let parent_path = node.path.parent().unwrap_or(Path::new("/dev"));
    let name = node
        .path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "device path has no name"))?;
    let parent = open_in_root(root, parent_path, Create::Dir)?;
    let name = cname(Path::new(name))?;
    let kind = match node.kind {
        DeviceNodeKind::Char => libc::S_IFCHR,
        DeviceNodeKind::Block => libc::S_IFBLK,
        DeviceNodeKind::Fifo => libc::S_IFIFO,
    };
    let dev = libc::makedev(node.major, node.minor);
    for attempt in 0..2 {
        // SAFETY: valid directory descriptor and C string.
        let ret = unsafe {
            libc::mknodat(
                parent.as_raw_fd(),
                name.as_ptr(),
                kind | (node.file_mode & 0o7777),
                dev,
            )
        };
        if ret == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) && attempt == 0 {
            // SAFETY: valid directory descriptor and C string; unlinkat does not follow
            // a symlink in the final component.
            unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), 0) };
            continue;
        }
        return Err(e);
    }
    // The umask applied to mknod; set the mode exactly, and the owner. Neither call
    // follows a symlink (the node was just made, and the flag says so).
    // SAFETY: valid descriptor and C string.
    unsafe {
        if libc::fchmodat(
            parent.as_raw_fd(),
            name.as_ptr(),
            node.file_mode & 0o7777,
            0,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::fchownat(
            parent.as_raw_fd(),
            name.as_ptr(),
            node.uid,
            node.gid,
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn make_link(dev: BorrowedFd<'_>, link: &str, target: &str) -> io::Result<()> {
    let link = cname(Path::new(link))?;
    let target = cname(Path::new(target))?;
    // SAFETY: valid descriptor and C strings.
    if unsafe { libc::symlinkat(target.as_ptr(), dev.as_raw_fd(), link.as_ptr()) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}

/// Creates the default devices and links, then the configured nodes.
pub fn create_devices(root: BorrowedFd<'_>, nodes: &[DeviceNode]) -> Result<(), SetupError> {
    let dev_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SetupError::Device { path, source }
    };
    for &(name, major, minor) in &DEFAULT_DEVICES {
        // A configured node of the same path wins.
        let path = Path::new("/dev").join(name);
        if nodes.iter().any(|n| n.path == path) {
            continue;
        }
        let node = DeviceNode {
            path: path.clone(),
            kind: DeviceNodeKind::Char,
            major,
            minor,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
        };
        make_node(root, &node).map_err(dev_err(&path))?;
    }
    let dev =
        open_in_root(root, Path::new("/dev"), Create::Dir).map_err(dev_err(Path::new("/dev")))?;
    for &(link, target) in &DEFAULT_LINKS {
        let path = Path::new("/dev").join(link);
        if nodes.iter().any(|n| n.path == path) {
            continue;
        }
        make_link(dev.as_fd(), link, target).map_err(dev_err(&path))?;
    }
    for node in nodes {
        make_node(root, node).map_err(dev_err(&node.path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_allow_the_default_devices_and_configured_nodes() {
        let nodes = vec![DeviceNode {
            path: "/dev/fuse".into(),
            kind: DeviceNodeKind::Char,
            major: 10,
            minor: 229,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
        }];
        let rules = default_rules(&nodes);
        assert!(rules.iter().all(|r| r.allow));
        let has = |major, minor| {
            rules
                .iter()
                .any(|r| r.major == Some(major) && (r.minor == Some(minor) || r.minor.is_none()))
        };
        assert!(has(1, 3) && has(1, 9) && has(5, 0) && has(5, 2) && has(136, 7) && has(10, 229));
        assert!(!has(8, 0), "block devices are not allowed by default");
    }
}
