//! The last steps before the user's program: resource limits, identity, capabilities,
//! `no_new_privs`, the working directory, the descriptors, and `execve`.
//!
//! Order matters. The bounding set is cut while we still hold `CAP_SETPCAP`; `KEEPCAPS`
//! keeps the permitted set across the switch to the container's user; then the five
//! sets are written exactly as configured (inheritable and ambient are empty unless the
//! configuration asks). The working directory is entered and checked to lie inside the
//! root (a leaked host descriptor must not be a way out: CVE-2024-21626), and every
//! descriptor but stdio and the preserved ones is closed on exec.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::{Capabilities, ProcessConfig, Rlimit, UserConfig};
use crate::sys;

use super::SetupError;

/// `PATH` used when the process's environment has none (runc's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

pub fn apply_rlimits(rlimits: &[Rlimit]) -> Result<(), SetupError> {
    for r in rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: setrlimit with a valid resource constant and a live struct.
        if unsafe { libc::setrlimit(r.resource.to_libc(), &lim) } != 0 {
            return Err(SetupError::Rlimit {
                name: r.resource.name(),
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

fn cred_err(step: &'static str) -> impl FnOnce(io::Error) -> SetupError {
    move |source| SetupError::Credentials { step, source }
}

fn last_cap() -> u8 {
    let mut cap = 0u8;
    while cap < 63 && sys::prctl(libc::PR_CAPBSET_READ, u64::from(cap + 1), 0).is_ok() {
        cap += 1;
    }
    cap
}

/// Becomes `user` with exactly the capability sets in `caps`.
pub fn switch_user(user: &UserConfig, caps: &Capabilities) -> Result<(), SetupError> {
    let last = last_cap();
    for cap in 0..=last {
        if caps.bounding & (1u64 << cap) == 0 {
            sys::prctl(libc::PR_CAPBSET_DROP, u64::from(cap), 0)
                .map_err(cred_err("drop bounding capability"))?;
        }
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0).map_err(cred_err("keep capabilities"))?;
    // SAFETY: setgroups with a pointer to a live slice of the given length.
    if unsafe { libc::setgroups(user.additional_gids.len(), user.additional_gids.as_ptr()) } != 0 {
        return Err(cred_err("set supplementary groups")(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: plain system calls on integers.
    unsafe {
        if libc::setresgid(user.gid, user.gid, user.gid) != 0 {
            return Err(cred_err("set group id")(io::Error::last_os_error()));
        }
        if libc::setresuid(user.uid, user.uid, user.uid) != 0 {
            return Err(cred_err("set user id")(io::Error::last_os_error()));
        }
    }
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    for (i, slot) in data.iter_mut().enumerate() {
        let shift = 32 * i;
        slot.effective = (caps.effective >> shift) as u32;
        slot.permitted = (caps.permitted >> shift) as u32;
        slot.inheritable = (caps.inheritable >> shift) as u32;
    }
    // SAFETY: capset with a valid v3 header and two data entries.
    if unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    } != 0
    {
        return Err(SetupError::Capabilities {
            step: "set capability sets",
            source: io::Error::last_os_error(),
        });
    }
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .map_err(|source| SetupError::Capabilities {
        step: "clear ambient capabilities",
        source,
    })?;
    for cap in 0..=last {
        if caps.ambient & (1u64 << cap) != 0 {
            sys::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                u64::from(cap),
            )
            .map_err(|source| SetupError::Capabilities {
                step: "raise ambient capability",
                source,
            })?;
        }
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0).map_err(cred_err("reset keep capabilities"))?;
    if let Some(mask) = user.umask {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    Ok(())
}

/// Enters `cwd` and checks that it is inside the root: `getcwd(2)` prefixes a
/// directory outside the root with "(unreachable)".
pub fn enter_cwd(cwd: &Path) -> Result<(), SetupError> {
    let err = |reason: String| SetupError::Cwd {
        path: cwd.to_path_buf(),
        reason,
    };
    nix::unistd::chdir(cwd).map_err(|e| err(e.desc().to_lowercase()))?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: the raw getcwd system call (not glibc's, which hides "(unreachable)")
    // writes at most `buf.len()` bytes.
    let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return Err(err(io::Error::last_os_error().to_string()));
    }
    if buf.first() != Some(&b'/') {
        return Err(err("it is outside the container's root".into()));
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds the program as `execvp` would: a name with a slash as given, anything else in
/// the `PATH` of the process's environment (runc's rule, so `args[0]` "sh" works).
pub fn find_program(process: &ProcessConfig) -> Result<PathBuf, SetupError> {
    let name = &process.args[0];
    if name.contains('/') {
        let path = PathBuf::from(name);
        if is_executable(&path) {
            return Ok(path);
        }
        return Err(SetupError::Program {
            program: name.clone(),
            reason: "no such executable file",
        });
    }
    let path_var = process
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(SetupError::Program {
        program: name.clone(),
        reason: "executable file not found in $PATH",
    })
}

fn cstrings<'a>(items: impl Iterator<Item = &'a OsStr>) -> Result<Vec<CString>, SetupError> {
    items
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| SetupError::Program {
                program: s.to_string_lossy().into_owned(),
                reason: "argument or environment entry contains a NUL byte",
            })
        })
        .collect()
}

/// Closes every descriptor above stdio and the preserved ones on exec, then runs the
/// program. Returns only on failure.
pub fn exec(program: &Path, process: &ProcessConfig, preserve_fds: u32) -> SetupError {
    let argv = match cstrings(process.args.iter().map(OsStr::new)) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let envp = match cstrings(process.env.iter().map(OsStr::new)) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let path = match CString::new(program.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(_) => {
            return SetupError::Program {
                program: program.display().to_string(),
                reason: "path contains a NUL byte",
            };
        }
    };
    if let Err(source) = sys::close_range_from(3 + preserve_fds, true) {
        return SetupError::Credentials {
            step: "close descriptors",
            source,
        };
    }
    let err = nix::unistd::execve(&path, &argv, &envp)
        .map(|_| ())
        .err()
        .map(io::Error::from)
        .unwrap_or_else(|| io::Error::other("execve returned"));
    SetupError::Exec {
        program: program.to_path_buf(),
        source: err,
    }
}
