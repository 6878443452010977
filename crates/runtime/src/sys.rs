//! Thin wrappers over the Linux system calls the runtime needs and libc or nix do not
//! wrap: `clone3`, pidfds, the fd-based mount API (`fsopen`, `fsmount`, `open_tree`,
//! `move_mount`, `mount_setattr`), `openat2` and `close_range`.
//!
//! Each wrapper is one system call with its error turned into `io::Error`; policy lives
//! in the callers. We write these ourselves because each is a handful of lines and the
//! crates that cover them (rustix, pathrs) would add more code than they save here.
//! Kernel floor: 5.12 (`mount_setattr`); everything else is older.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// `fsconfig` commands and flags from `<linux/mount.h>`.
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

pub const OPEN_TREE_CLONE: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
pub const AT_RECURSIVE: libc::c_uint = 0x8000;

/// `struct mount_attr` (version 0).
#[repr(C)]
#[derive(Debug, Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `struct clone_args` (version 2, with `cgroup`).
#[repr(C)]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP`: the child starts in the cgroup2 group given in `cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `CLONE_CLEAR_SIGHAND`: the child starts with every handler reset to default.
pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

fn cstring(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(ret)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What `clone3` returned in each of the two processes.
#[derive(Debug)]
pub enum Forked {
    /// We are the new process.
    Child,
    /// We are the caller; the child has this PID (in our PID namespace) and pidfd.
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// `clone3` with fork semantics (the child continues on a copy of our stack), asking for a
/// pidfd and `SIGCHLD` on exit; with `cgroup` (a cgroup2 directory), the child is born
/// in that group (`CLONE_INTO_CGROUP`), which costs no migration.
///
/// # Safety
/// The calling process must be single-threaded: the child gets a copy of this thread
/// only, so a lock held by another thread (the allocator's, say) would stay locked
/// forever in the child. The runtime's verbs run on the main thread alone.
pub unsafe fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(group) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = group.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size we pass; with no stack given the
    // kernel duplicates the caller as fork(2) does, which the caller vouched is safe.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let pid = check(ret)?;
    if pid == 0 {
        return Ok(Forked::Child);
    }
    // SAFETY: CLONE_PIDFD made the kernel store a fresh descriptor in `pidfd`.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Forked::Parent {
        pid: pid as libc::pid_t,
        pidfd,
    })
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call; a null siginfo means "as kill(2) would".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// `setns(2)` with a pidfd or namespace file and a mask of `CLONE_NEW*` flags.
pub fn setns(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call.
    check(unsafe { libc::setns(fd.as_raw_fd(), flags) } as libc::c_long).map(drop)
}

/// `fsopen(2)`: a filesystem context for a new superblock of `fstype`.
pub fn fsopen(fstype: &str) -> io::Result<OwnedFd> {
    let name = CString::new(fstype)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "fstype has NUL"))?;
    // SAFETY: `name` is a valid C string for the duration of the call.
    owned(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) })
}

/// `fsconfig(FSCONFIG_SET_STRING)`, or `FSCONFIG_SET_FLAG` when `value` is `None`.
pub fn fsconfig_set(fs: BorrowedFd<'_>, key: &str, value: Option<&str>) -> io::Result<()> {
    let key = CString::new(key)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option has NUL"))?;
    let value = value
        .map(CString::new)
        .transpose()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option has NUL"))?;
    let (cmd, ptr) = match &value {
        Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: key and value are valid C strings (or null for a flag) during the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.as_ptr(),
            ptr,
            0,
        )
    })
    .map(drop)
}

/// `fsconfig(FSCONFIG_CMD_CREATE)` then `fsmount(2)`: a detached mount of the new
/// superblock, with the given `MOUNT_ATTR_*` flags.
pub fn fsmount(fs: BorrowedFd<'_>, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: plain system calls with integer arguments.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })?;
    // SAFETY: as above.
    owned(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
}

/// `open_tree(2)`: with `OPEN_TREE_CLONE`, a detached copy of the mount at `path`
/// (relative to `dirfd`; an empty path means `dirfd` itself).
pub fn open_tree(dirfd: RawFd, path: &Path, flags: libc::c_uint) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    let mut flags = flags | libc::O_CLOEXEC as libc::c_uint;
    if path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    // SAFETY: `c` is a valid C string during the call.
    owned(unsafe { libc::syscall(libc::SYS_open_tree, dirfd, c.as_ptr(), flags) })
}

/// `move_mount(2)` of a detached mount onto the object `target` refers to (an `O_PATH`
/// descriptor resolved by the caller, so no path is walked here).
pub fn move_mount(mount: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    let empty: &CStr = c"";
    // SAFETY: both paths are the empty C string and both fds are valid.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// `mount_setattr(2)` on the mount `fd` refers to (and, with `recursive`, those below).
/// `propagation` is one of `MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE`, `MS_UNBINDABLE` or 0.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
) -> io::Result<()> {
    let mut attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let empty: &CStr = c"";
    // SAFETY: `attr` is a valid mount_attr of the size passed; the path is empty.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &mut attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// `openat2(2)`. `resolve` is a mask of `RESOLVE_*` flags.
pub fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    let mut how: libc::open_how = {
        // SAFETY: open_how is plain old data; all-zero is its documented default.
        unsafe { std::mem::zeroed() }
    };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = resolve;
    loop {
        // SAFETY: `c` and `how` are valid for the duration of the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match owned(ret) {
            // openat2 returns EAGAIN when a rename raced the lookup under
            // RESOLVE_IN_ROOT; the lookup is safe to retry.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// `close_range(2)`: close (or with `cloexec`, mark close-on-exec) every fd from `first`.
pub fn close_range_from(first: libc::c_uint, cloexec: bool) -> io::Result<()> {
    let flags = if cloexec {
        libc::CLOSE_RANGE_CLOEXEC
    } else {
        0
    };
    // SAFETY: plain system call; closing descriptors we own no Rust handle to is the
    // point (callers drop their handles first or use `cloexec`).
    check(unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, flags) })
        .map(drop)
}

/// `execveat(2)` of the open file `fd` (`AT_EMPTY_PATH`). Only returns on failure.
pub fn execveat_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let empty: &CStr = c"";
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: argv and envp are null-terminated arrays of valid C strings that outlive
    // the call; on success the call does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}

/// `prctl(2)` with up to two integer arguments.
pub fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<i32> {
    // SAFETY: the options used by the runtime take integer arguments only.
    let ret = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
