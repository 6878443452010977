//! The two `bpf(2)` commands the runtime needs: load a device program, attach it to a
//! cgroup directory.
//!
//! Owns the raw syscall and its argument layouts. It does not generate programs
//! ([`super::device_program`]) or choose where to attach them ([`super::Cgroup`]).
//!
//! A thin wrapper over `libc::syscall` on purpose: the aya or libbpf crates would bring
//! an ELF loader, BTF handling and much more code into a binary whose size and memory we
//! promise to keep small, for two commands with fixed, tiny argument structures.

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::device_program::BpfInsn;
use super::error::{CgroupError, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

const LICENSE: &[u8] = b"Apache-2.0\0";
const PROGRAM_NAME: &[u8] = b"moor_devices";
/// Enough for the verifier's account of any program the generator makes.
const LOG_SIZE: usize = 256 * 1024;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `expected_attach_type`. The
/// kernel zero-fills what a shorter structure leaves out.
#[repr(C)]
#[derive(Debug, Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Debug, Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Loads `prog` as a device program and attaches it to the cgroup directory `dir`
/// with `BPF_F_ALLOW_MULTI`, so filters set by parents (systemd's, say) still apply.
/// The program's fd is closed on return: the attachment holds the program.
pub(crate) fn attach_device_program(dir: &Path, prog: &[BpfInsn]) -> Result<()> {
    let program = load_device_program(prog).map_err(|(source, log)| CgroupError::BpfLoad {
        path: dir.to_path_buf(),
        log,
        source,
    })?;
    let group = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|source| CgroupError::OpenGroupDir {
            path: dir.to_path_buf(),
            source,
        })?;
    let mut attr = ProgAttachAttr {
        target_fd: fd_u32(group.as_raw_fd()),
        attach_bpf_fd: fd_u32(program.as_raw_fd()),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is a live, initialised `ProgAttachAttr` laid out as the kernel's
    // attach arguments, and the size passed is its own; both fds stay open until return.
    let rc = unsafe { bpf(BPF_PROG_ATTACH, (&raw mut attr).cast(), size_of_val(&attr)) };
    if rc < 0 {
        return Err(CgroupError::BpfAttach {
            path: dir.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Loads a program; on failure, loads it again with the verifier log on so the error
/// can say why (the happy path allocates no log buffer).
pub(crate) fn load_device_program(prog: &[BpfInsn]) -> Result<OwnedFd, (io::Error, String)> {
    match load(prog, None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut log = vec![0u8; LOG_SIZE];
            match load(prog, Some(&mut log)) {
                // A load that works the second time round is still a load.
                Ok(fd) => Ok(fd),
                Err(_) => {
                    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]).trim_end().to_owned();
                    Err((first, text))
                }
            }
        }
    }
}

fn load(prog: &[BpfInsn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let insn_cnt =
        u32::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: prog.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    attr.prog_name[..PROGRAM_NAME.len()].copy_from_slice(PROGRAM_NAME);
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    // SAFETY: `attr` is a live, initialised `ProgLoadAttr` of the size passed. The
    // pointers inside it (instructions, license, log buffer) point into borrows that
    // outlive this call, with the lengths given beside them.
    let fd = unsafe { bpf(BPF_PROG_LOAD, (&raw mut attr).cast(), size_of_val(&attr)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// # Safety
/// `attr` must point to `size` readable and writable bytes laid out as the part of
/// `union bpf_attr` that `cmd` reads, with every pointer in it valid for the call.
unsafe fn bpf(cmd: libc::c_long, attr: *mut c_void, size: usize) -> libc::c_long {
    // SAFETY: the caller upholds the contract above; the kernel reads at most `size`
    // bytes of `attr`.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr, size) }
}

fn fd_u32(fd: i32) -> u32 {
    // Open fds are never negative.
    u32::try_from(fd).unwrap_or(u32::MAX)
}
