//! Keeping the runtime's own binary out of the container's reach (CVE-2019-5736 class).
//!
//! The child that sets a container up runs the runtime's code, so until it executes the
//! user's program its `/proc/self/exe` is the runtime's binary. An image can exploit
//! that at the final `execve`: a program whose first line is `#!/proc/self/exe` makes
//! the kernel run the runtime binary inside the container, which can then hold the file
//! open and rewrite it once it is no longer running — the host's `moor`, replaced.
//!
//! Before entering any container the runtime therefore makes sure that the file its
//! `/proc/self/exe` names cannot be written through that link: either the binary sits
//! on a read-only mount (an appliance's `/usr`, usually), or the runtime re-executes
//! itself from a sealed in-memory copy (`memfd` with write, grow, shrink and seal seals),
//! as runc does. The copy costs one `sendfile` of the binary and one `execve`.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::error::RuntimeError;
use crate::sys;

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
    while copied < len {
        // SAFETY: sendfile between two open descriptors with a null offset (uses and
        // advances the source's file position).
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
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
    Err(fail("execute the sealed copy")(sys::execveat_fd(
        memfd.as_fd(),
        &args,
        &env,
    )))
}
