//! Keeping the runtime's own binary out of the container's reach (CVE-2019-5736 class).
//!
//! The child that sets a container up runs the runtime's code, so until it executes the
//! user's program its `/proc/self/exe` is the runtime's binary. An image can exploit
//! that at the final `execve`: a program whose first line is `#!/proc/self/exe` makes
//! the kernel run the runtime binary inside the container, which can then hold the file
//! open and rewrite it once it is no longer running — the host's `moor`, replaced.
//!
//! Before entering any container the runtime therefore makes sure that the file its
//! `/proc/self/exe` names cannot be written through that link:
//!
//! 1. the binary already sits on a read-only mount (an appliance's `/usr`, usually): it
//!    is used as it is (through the clone described below);
//! 2. otherwise the runtime re-executes itself from a copy under [`EXE_CACHE`] that is
//!    bind-mounted read-only onto itself (made once per binary, keyed by the binary's
//!    device, inode, modification time and size): one `execve` per verb;
//! 3. if that copy cannot be made, from a sealed in-memory copy (`memfd` with write,
//!    grow, shrink and seal seals), as runc does: a copy of the whole binary and an
//!    `execve` per verb, about 3 ms here, which is why it is only the fallback.
//!
//! Read-only is not enough for the promise that the runtime is never executed inside a
//! container: `#!/proc/self/exe` would still run the (read-only) binary there. So the
//! runtime executes the binary of 1 or 2 through a detached clone of its mount
//! (`open_tree(OPEN_TREE_CLONE)`, a mount of its own that no namespace shows), and the
//! new image makes that mount `noexec` as it starts, before any container exists; the
//! sealed memfd of 3 gets mode 000 instead. The running image is unaffected (its pages
//! are mapped already), but the kernel refuses any later `execve` of `/proc/self/exe`,
//! including the one an image's script asks for. The descriptor of the clone crosses
//! the `execve` under [`HANDOFF_VAR`].

use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::FsFlags;

use crate::error::RuntimeError;
use crate::sys;

/// Where read-only copies of the binary are kept (tmpfs on a normal host).
pub const EXE_CACHE: &str = "/run/moor/exe";

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

fn fail(step: &'static str) -> impl FnOnce(io::Error) -> RuntimeError {
    move |source| RuntimeError::SelfExe { step, source }
}

/// Whether an open copy of our binary cannot be turned into a writable one.
fn is_protected(exe: &File) -> io::Result<bool> {
    // SAFETY: fcntl(F_GET_SEALS) on an open descriptor; EINVAL for non-memfd files.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & SEALS == SEALS {
        return Ok(true);
    }
    let fs = nix::sys::statvfs::fstatvfs(exe).map_err(io::Error::from)?;
    Ok(fs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Returns if the running binary is protected and can no longer be executed through
/// `/proc/self/exe`; otherwise replaces the process with the same command run from a
/// protected copy (and only returns on failure).
pub fn ensure_protected() -> Result<(), RuntimeError> {
    let exe = File::open("/proc/self/exe").map_err(fail("open /proc/self/exe"))?;
    if let Some(handoff) = std::env::var_os(HANDOFF_VAR) {
        // SAFETY: the runtime is single-threaded (see `container::launch`), so nothing
        // reads the environment concurrently.
        unsafe { std::env::remove_var(HANDOFF_VAR) };
        return forbid_exec_of_clone(&exe, &handoff);
    }
    if is_sealed_memfd(&exe) {
        return forbid_exec_of_memfd(&exe);
    }
    let (args, env) = command_line()?;
    let source = if is_protected(&exe).map_err(fail("inspect /proc/self/exe"))? {
        Some(PathBuf::from("/proc/self/exe"))
    } else {
        read_only_copy(&exe, Path::new(EXE_CACHE)).ok()
    };
    if let Some(source) = source {
        // Returns only if the clone cannot be made or executed; the memfd is the
        // fallback.
        let _ = exec_detached_clone(&source, &args, &env);
    }
    exec_sealed_memfd(&exe, &args, &env)
}

/// Names the descriptor of the detached mount the previous image executed this one
/// from; set only across that one `execve`.
pub const HANDOFF_VAR: &str = "MOOR_SELF_EXE_MOUNT";

fn is_sealed_memfd(exe: &File) -> bool {
    // SAFETY: fcntl(F_GET_SEALS) on an open descriptor; EINVAL for non-memfd files.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Executes `source` (a binary on a read-only mount) through a read-only clone of its
/// mount, passing the clone's descriptor on under [`HANDOFF_VAR`]. Returns only on
/// failure.
fn exec_detached_clone(source: &Path, args: &[CString], env: &[CString]) -> io::Error {
    let tree = match sys::open_tree(libc::AT_FDCWD, source, sys::OPEN_TREE_CLONE) {
        Ok(tree) => tree,
        Err(e) => return e,
    };
    let attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID;
    if let Err(e) = sys::mount_setattr(tree.as_fd(), false, attrs, 0, 0) {
        return e;
    }
    // SAFETY: F_SETFD on our own descriptor: it must survive the execve.
    if unsafe { libc::fcntl(tree.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
        return io::Error::last_os_error();
    }
    let prefix = format!("{HANDOFF_VAR}=");
    let mut env: Vec<CString> = env
        .iter()
        .filter(|kv| !kv.as_bytes().starts_with(prefix.as_bytes()))
        .cloned()
        .collect();
    match CString::new(format!("{prefix}{}", tree.as_raw_fd())) {
        Ok(kv) => env.push(kv),
        Err(_) => return io::Error::from(io::ErrorKind::InvalidInput),
    }
    sys::execveat_fd(tree.as_fd(), args, &env)
}

/// In the image started by [`exec_detached_clone`]: makes the clone it runs from
/// `noexec` and lets go of it, so that the kernel refuses to execute this binary again
/// through `/proc/self/exe`. The running image keeps its mapped pages.
fn forbid_exec_of_clone(exe: &File, handoff: &std::ffi::OsStr) -> Result<(), RuntimeError> {
    let invalid =
        || fail("take over the detached mount")(io::Error::from(io::ErrorKind::InvalidInput));
    let fd: libc::c_int = handoff
        .to_str()
        .and_then(|v| v.parse().ok())
        .filter(|fd| *fd > 2)
        .ok_or_else(invalid)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a stat into the buffer or fails (EBADF for a closed number).
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(fail("take over the detached mount")(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fstat succeeded, so the buffer is initialised.
    let st = unsafe { st.assume_init() };
    let meta = exe.metadata().map_err(fail("stat /proc/self/exe"))?;
    if st.st_dev != meta.dev() || st.st_ino != meta.ino() {
        return Err(invalid());
    }
    // SAFETY: the previous image opened this descriptor for us and passed it across the
    // execve; it is the clone we run from (checked above) and nothing else owns it.
    let tree = unsafe { OwnedFd::from_raw_fd(fd) };
    let attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC;
    sys::mount_setattr(tree.as_fd(), false, attrs, 0, 0)
        .map_err(fail("make the detached mount noexec"))?;
    drop(tree);
    let flags = nix::sys::statvfs::fstatvfs(exe)
        .map_err(|e| fail("inspect /proc/self/exe")(io::Error::from(e)))?
        .flags();
    if !flags.contains(FsFlags::ST_RDONLY | FsFlags::ST_NOEXEC) {
        return Err(fail("check the detached mount")(io::Error::other(
            "the binary is not on a read-only, noexec mount",
        )));
    }
    Ok(())
}

/// The sealed memfd's counterpart of [`forbid_exec_of_clone`]: mode 000 leaves no
/// execute bit, which even `CAP_DAC_OVERRIDE` needs.
fn forbid_exec_of_memfd(exe: &File) -> Result<(), RuntimeError> {
    // SAFETY: fchmod on an open descriptor of our own binary (a memfd we own).
    if unsafe { libc::fchmod(exe.as_raw_fd(), 0) } != 0 {
        return Err(fail("make the sealed copy non-executable")(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn command_line() -> Result<(Vec<CString>, Vec<CString>), RuntimeError> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a: OsString| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| fail("pass arguments")(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()
        .map_err(|_| fail("pass environment")(io::Error::from(io::ErrorKind::InvalidInput)))?;
    Ok((args, env))
}

/// The read-only copy of `exe` under `cache`, made if missing.
pub fn read_only_copy(exe: &File, cache: &Path) -> io::Result<PathBuf> {
    let meta = exe.metadata()?;
    let name = format!(
        "moor-{:x}-{:x}-{}.{}-{}",
        meta.dev(),
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.len()
    );
    let path = cache.join(name);
    if let Ok(existing) = File::open(&path)
        && existing.metadata()?.len() == meta.len()
        && is_protected(&existing)?
    {
        return Ok(path);
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache)?;
    if !path.exists() {
        let tmp = cache.join(format!(".copy-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let copied = (|| {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o500)
                .custom_flags(libc::O_CLOEXEC)
                .open(&tmp)?;
            let mut src = exe.try_clone()?;
            io::copy(&mut src, &mut out)?;
            drop(out);
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            // A concurrent first run may have won (the name is a mount point by now).
            match File::open(&path) {
                Ok(existing) if is_protected(&existing)? => return Ok(path),
                _ => return Err(e),
            }
        }
    }
    mount(
        Some(&path),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    mount(
        None::<&str>,
        &path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )?;
    let check = File::open(&path)?;
    if check.metadata()?.len() != meta.len() || !is_protected(&check)? {
        return Err(io::Error::other("copy is not on a read-only mount"));
    }
    prune(cache, &path);
    Ok(path)
}

/// How many copies to keep: the current binary's and a few before it (an upgrade in
/// progress, a second installed version).
const KEEP_COPIES: usize = 4;

/// Detaches and removes all but the newest [`KEEP_COPIES`] copies. A process still
/// running an old copy keeps it: a detached mount lives until its last user is gone.
fn prune(cache: &Path, current: &Path) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    let entries: Vec<fs::DirEntry> = entries.flatten().collect();
    for stale in entries
        .iter()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".copy-"))
    {
        // A temporary of a run that died mid-copy; a live one is at most seconds old.
        let old = stale
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 60);
        if old {
            let _ = fs::remove_file(stale.path());
        }
    }
    let mut copies: Vec<(i64, PathBuf)> = entries
        .iter()
        .filter(|e| e.file_name().to_string_lossy().starts_with("moor-"))
        .filter_map(|e| {
            let ctime = e.metadata().ok()?.ctime();
            Some((ctime, e.path()))
        })
        .filter(|(_, p)| p != current)
        .collect();
    copies.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, old) in copies.into_iter().skip(KEEP_COPIES - 1) {
        // Two first runs at once may have stacked two binds on one copy.
        for _ in 0..8 {
            if nix::mount::umount2(&old, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
        let _ = fs::remove_file(&old);
    }
}

fn exec_sealed_memfd(exe: &File, args: &[CString], env: &[CString]) -> Result<(), RuntimeError> {
    let len = exe.metadata().map_err(fail("stat /proc/self/exe"))?.len();
    // SAFETY: memfd_create with a valid C string name and flags.
    let raw = unsafe {
        libc::memfd_create(
            c"moor".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_EXEC,
        )
    };
    let memfd = if raw < 0 {
        // Kernels before 6.3 do not know MFD_EXEC (and their memfds are executable).
        // SAFETY: as above, without MFD_EXEC.
        let raw = unsafe {
            libc::memfd_create(
                c"moor".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if raw < 0 {
            return Err(fail("create the sealed copy")(io::Error::last_os_error()));
        }
        raw
    } else {
        raw
    };
    // SAFETY: memfd_create returned a new descriptor we own.
    let memfd = unsafe { OwnedFd::from_raw_fd(memfd) };
    let mut copied: u64 = 0;
    let mut offset: libc::off_t = 0;
    while copied < len {
        // SAFETY: sendfile between two open descriptors, reading from `offset` (which it
        // advances) and leaving the source's own position alone.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                &mut offset,
                (len - copied) as usize,
            )
        };
        if n < 0 {
            return Err(fail("copy the binary")(io::Error::last_os_error()));
        }
        if n == 0 {
            break;
        }
        copied += n as u64;
    }
    // SAFETY: fcntl(F_ADD_SEALS) on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(fail("seal the copy")(io::Error::last_os_error()));
    }
    Err(fail("execute the sealed copy")(sys::execveat_fd(
        memfd.as_fd(),
        args,
        env,
    )))
}
