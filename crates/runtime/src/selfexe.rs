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
//! 1. the binary already sits on a read-only mount (an appliance's `/usr`, usually), or
//!    is a sealed memfd: nothing to do;
//! 2. otherwise the runtime re-executes itself from a copy under [`EXE_CACHE`] that is
//!    bind-mounted read-only onto itself (made once per binary, keyed by the binary's
//!    device, inode, modification time and size): one `execve` per verb;
//! 3. if that copy cannot be made, from a sealed in-memory copy (`memfd` with write,
//!    grow, shrink and seal seals), as runc does: a copy of the whole binary and an
//!    `execve` per verb, about 3 ms here, which is why it is only the fallback.

use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

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

/// Returns if the running binary is already protected; otherwise replaces the process
/// with the same command run from a sealed copy (and only returns on failure).
pub fn ensure_protected() -> Result<(), RuntimeError> {
    let exe = File::open("/proc/self/exe").map_err(fail("open /proc/self/exe"))?;
    if is_protected(&exe).map_err(fail("inspect /proc/self/exe"))? {
        return Ok(());
    }
    let (args, env) = command_line()?;
    if let Ok(copy) = read_only_copy(&exe, Path::new(EXE_CACHE)) {
        let path = CString::new(copy.as_os_str().as_bytes())
            .map_err(|_| fail("name the copy")(io::Error::from(io::ErrorKind::InvalidInput)))?;
        // Returns only if the copy cannot be executed; the memfd is the fallback.
        let _ = nix::unistd::execve(&path, &args, &env);
    }
    exec_sealed_memfd(&exe, &args, &env)
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
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o500)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        let mut src = exe.try_clone()?;
        io::copy(&mut src, &mut out)?;
        drop(out);
        fs::rename(&tmp, &path)?;
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
    Ok(path)
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
