//! The system calls unpacking uses, each relative to a directory descriptor and none
//! following a symlink in its last component.
//!
//! Where Linux has no such variant for a symlink or a device node (`chmod`, extended
//! attributes), the call goes through `/proc/self/fd/<dir>/<name>` with the `l`-variant
//! (the magic link resolves to exactly that directory, the last component is not
//! followed) or through an `O_PATH|O_NOFOLLOW` descriptor whose type was checked first.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative return of open/openat is a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// A name as the kernel takes it.
pub(super) fn c(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Opens the directory `name` in `dir`; a symlink gives `ELOOP`/`ENOTDIR`.
pub(super) fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and C string; O_NOFOLLOW refuses a symlink.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

/// Opens `path` (absolute) as a directory, not following a symlink at its end.
pub(super) fn open_dir_path(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let p = c(path.as_os_str().as_bytes())?;
    // SAFETY: valid C string.
    owned(unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

pub(super) fn mkdir(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor and C string; mkdirat never follows the last component.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
}

/// `fstatat(AT_SYMLINK_NOFOLLOW)`.
pub(super) fn lstat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid buffer for fstatat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and buffer.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

pub(super) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and buffer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub(super) fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub(super) fn unlink(dir: BorrowedFd<'_>, name: &CStr, directory: bool) -> io::Result<()> {
    let flags = if directory { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid descriptor and C string; unlinkat removes the entry itself.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// Creates a new regular file with permission bits `mode` (less the umask), never
/// opening an existing file or a symlink's target.
pub(super) fn create_file(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<File> {
    // SAFETY: valid descriptor and C string; O_EXCL with O_CREAT fails on any existing
    // entry, symlinks included.
    let fd = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            (mode & 0o777) as libc::c_uint,
        )
    })?;
    Ok(File::from(fd))
}

pub(super) fn symlink(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings and descriptor.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })
}

/// `linkat` without `AT_SYMLINK_FOLLOW`: links the entry itself.
pub(super) fn link(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    dir: BorrowedFd<'_>,
    name: &CStr,
) -> io::Result<()> {
    // SAFETY: valid descriptors and C strings.
    check(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            0,
        )
    })
}

pub(super) fn mknod(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode: u32,
    dev: libc::dev_t,
) -> io::Result<()> {
    // SAFETY: valid descriptor and C string; mknodat never follows the last component.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, dev) })
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)`: a symlink's own owner.
pub(super) fn lchown(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

fn timespecs(mtime: (i64, u32)) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: mtime.0 as libc::time_t,
        tv_nsec: libc::c_long::from(mtime.1 as i32),
    };
    [t, t]
}

/// `utimensat(AT_SYMLINK_NOFOLLOW)`: access and modification time set to `mtime`.
pub(super) fn lutimes(dir: BorrowedFd<'_>, name: &CStr, mtime: (i64, u32)) -> io::Result<()> {
    let times = timespecs(mtime);
    // SAFETY: valid descriptor, C string and two timespecs.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub(super) fn futimes(fd: BorrowedFd<'_>, mtime: (i64, u32)) -> io::Result<()> {
    let times = timespecs(mtime);
    // SAFETY: valid descriptor and two timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })
}

pub(super) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })
}

pub(super) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
}

pub(super) fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: valid descriptor, C string and value buffer of the given length.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// `/proc/self/fd/<dir>/<name>`: `dir` exactly, whatever path led to it.
fn proc_path(dir: RawFd, name: &CStr) -> io::Result<CString> {
    let mut path = format!("/proc/self/fd/{dir}/").into_bytes();
    path.extend_from_slice(name.to_bytes());
    c(&path)
}

/// `lsetxattr` of `name` in `dir`: on a symlink, the link's own attribute.
pub(super) fn lsetxattr(
    dir: BorrowedFd<'_>,
    name: &CStr,
    xname: &CStr,
    value: &[u8],
) -> io::Result<()> {
    let path = proc_path(dir.as_raw_fd(), name)?;
    // SAFETY: valid C strings and value buffer of the given length.
    check(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            xname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// `chmod` of `name` in `dir`, refused for a symlink: the entry is opened `O_PATH` without
/// following, its type checked, and the mode set through its descriptor's magic link.
pub(super) fn chmod_nofollow(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor and C string; O_PATH|O_NOFOLLOW opens a symlink itself.
    let fd = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    use std::os::fd::AsFd;
    if fstat(fd.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let path = c(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    // SAFETY: valid C string; it names the inode `fd` holds, which is not a symlink.
    check(unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) })
}

pub(super) fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::syncfs(fd.as_raw_fd()) })
}
