//! The few C library calls std has no wrapper for, each behind a safe function, plus
//! errno and signal names. Numbers are the Linux generic ones, shared by x86_64,
//! aarch64, arm and riscv64.

use std::ffi::{CString, c_char, c_int, c_long, c_uint, c_void};
use std::io;

pub const ENOENT: i32 = 2;
pub const ENOMEM: i32 = 12;
pub const EINVAL: i32 = 22;
pub const ETXTBSY: i32 = 26;
pub const SIGKILL: c_int = 9;
pub const O_PATH: i32 = 0o10_000_000;

#[cfg(target_arch = "x86_64")]
const SYS_GETCWD: c_long = 79;
#[cfg(target_arch = "arm")]
const SYS_GETCWD: c_long = 183;
#[cfg(not(any(target_arch = "x86_64", target_arch = "arm")))]
const SYS_GETCWD: c_long = 17;

const PTRACE_ATTACH: c_int = 16;
const PTRACE_DETACH: c_int = 17;
const WALL: c_int = 0x4000_0000;
const SIG_BLOCK: c_int = 0;

/// glibc's `struct utsname` (with `_GNU_SOURCE`): six 65-byte fields.
#[repr(C)]
struct Utsname {
    fields: [[u8; 65]; 6],
}

/// glibc's `sigset_t`: 1024 bits, filled in directly.
#[repr(C)]
struct SigSet([u64; 16]);

unsafe extern "C" {
    fn getresuid(r: *mut c_uint, e: *mut c_uint, s: *mut c_uint) -> c_int;
    fn getresgid(r: *mut c_uint, e: *mut c_uint, s: *mut c_uint) -> c_int;
    fn prctl(option: c_int, ...) -> c_int;
    fn uname(buf: *mut Utsname) -> c_int;
    fn isatty(fd: c_int) -> c_int;
    fn syscall(number: c_long, ...) -> c_long;
    fn mknod(path: *const c_char, mode: c_uint, dev: u64) -> c_int;
    fn ptrace(request: c_int, ...) -> c_long;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn fork() -> c_int;
    fn pause() -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwait(set: *const SigSet, sig: *mut c_int) -> c_int;
}

fn check(ret: c_long) -> io::Result<c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

type GetIds = unsafe extern "C" fn(*mut c_uint, *mut c_uint, *mut c_uint) -> c_int;

fn ids(get: GetIds) -> io::Result<[u32; 3]> {
    let mut ids = [0; 3];
    let [r, e, s] = &mut ids;
    // SAFETY: `get` is getresuid or getresgid; the three pointers are distinct, live,
    // writable u32s.
    check(unsafe { get(r, e, s) }.into())?;
    Ok(ids)
}

/// Real, effective and saved user ids.
pub fn resuid() -> io::Result<[u32; 3]> {
    ids(getresuid)
}

/// Real, effective and saved group ids.
pub fn resgid() -> io::Result<[u32; 3]> {
    ids(getresgid)
}

/// A `prctl` query that takes no further arguments and answers in its return value.
pub fn prctl_get(option: c_int) -> io::Result<c_int> {
    // SAFETY: the PR_GET_* options used here read no pointer arguments; the zeros
    // fill the unused slots.
    let ret = unsafe { prctl(option, 0 as c_long, 0 as c_long, 0 as c_long, 0 as c_long) };
    check(ret.into()).map(|v| v as c_int)
}

/// (nodename, domainname) from uname(2).
pub fn names() -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Utsname {
        fields: [[0; 65]; 6],
    };
    // SAFETY: buf is a live, writable struct of the layout glibc expects.
    check(unsafe { uname(&mut buf) }.into())?;
    let field = |f: &[u8; 65]| f.split(|&b| b == 0).next().unwrap_or_default().to_vec();
    Ok((field(&buf.fields[1]), field(&buf.fields[5])))
}

pub fn is_tty(fd: c_int) -> bool {
    // SAFETY: isatty only inspects the descriptor; a closed one gives 0.
    unsafe { isatty(fd) == 1 }
}

/// The raw getcwd syscall: unlike glibc's wrapper it reports a directory outside the
/// root as a path starting with "(unreachable)" instead of failing with ENOENT.
pub fn getcwd_raw() -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4097];
    // SAFETY: buf is writable for buf.len() bytes and the kernel writes no more.
    check(unsafe { syscall(SYS_GETCWD, buf.as_mut_ptr() as *mut c_void, buf.len()) })?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf.truncate(end);
    Ok(buf)
}

pub fn make_node(path: &str, mode: u32, major: u64, minor: u64) -> io::Result<()> {
    let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(EINVAL))?;
    let dev = ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff);
    // SAFETY: path is a NUL-terminated string that outlives the call.
    check(unsafe { mknod(path.as_ptr(), mode, dev) }.into()).map(drop)
}

/// PTRACE_ATTACH, then wait for the attach stop and detach again.
pub fn ptrace_attach(pid: i32) -> io::Result<()> {
    let null = std::ptr::null_mut::<c_void>();
    // SAFETY: PTRACE_ATTACH reads no memory through its address and data arguments.
    check(unsafe { ptrace(PTRACE_ATTACH, pid, null, null) })?;
    let mut status = 0;
    // SAFETY: status is a live, writable int; the tracee may be waited on by us.
    unsafe { waitpid(pid, &mut status, WALL) };
    // SAFETY: PTRACE_DETACH with a zero signal reads no memory.
    unsafe { ptrace(PTRACE_DETACH, pid, null, null) };
    Ok(())
}

pub fn send_signal(pid: i32, sig: c_int) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    check(unsafe { kill(pid, sig) }.into()).map(drop)
}

/// Reap a child, ignoring its status.
pub fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: status is a live, writable int.
    unsafe { waitpid(pid, &mut status, 0) };
}

/// Fork a child that does nothing but wait to be killed; returns its pid.
pub fn fork_sleeper() -> io::Result<i32> {
    // SAFETY: the child only calls pause, which is async-signal-safe, and never returns
    // into Rust code that could touch state copied mid-update.
    let pid = check(unsafe { fork() }.into())? as i32;
    if pid == 0 {
        loop {
            // SAFETY: pause takes no arguments; the parent ends the child with SIGKILL.
            unsafe { pause() };
        }
    }
    Ok(pid)
}

/// Block `signals` (numbers 1 to 64) and wait for one of them; returns its number.
pub fn wait_for(signals: &[c_int], ready: impl FnOnce()) -> io::Result<c_int> {
    let mut set = SigSet([0; 16]);
    for &sig in signals {
        // glibc keeps signal n at bit n-1.
        set.0[(sig as usize - 1) / 64] |= 1 << ((sig as usize - 1) % 64);
    }
    // SAFETY: set is initialised above; a null old set is allowed.
    check(unsafe { sigprocmask(SIG_BLOCK, &set, std::ptr::null_mut()) }.into())?;
    ready();
    let mut sig = 0;
    // SAFETY: set is initialised and sig is a live, writable int.
    let ret = unsafe { sigwait(&set, &mut sig) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(sig)
}

/// Signal names by number, from 1 (HUP).
const SIGNALS: &str =
    "HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP";

/// "TERM", "SIGTERM" or "15" to 15.
pub fn signal_number(name: &str) -> Option<c_int> {
    let bare = name.strip_prefix("SIG").unwrap_or(name);
    let by_name = SIGNALS.split_whitespace().position(|n| n == bare);
    by_name
        .map(|i| i as c_int + 1)
        .or_else(|| name.parse().ok())
}

pub fn signal_name(sig: c_int) -> String {
    let index = usize::try_from(sig).ok().and_then(|s| s.checked_sub(1));
    match index.and_then(|i| SIGNALS.split_whitespace().nth(i)) {
        Some(name) => format!("SIG{name}"),
        None => format!("SIG{sig}"),
    }
}

/// Errno names by number, from 1 (EPERM).
const ERRNOS: &str = "EPERM ENOENT ESRCH EINTR EIO ENXIO E2BIG ENOEXEC EBADF ECHILD EAGAIN ENOMEM \
                      EACCES EFAULT ENOTBLK EBUSY EEXIST EXDEV ENODEV ENOTDIR EISDIR EINVAL ENFILE \
                      EMFILE ENOTTY ETXTBSY EFBIG ENOSPC ESPIPE EROFS EMLINK EPIPE EDOM ERANGE \
                      EDEADLK ENAMETOOLONG ENOLCK ENOSYS ENOTEMPTY ELOOP";

pub fn errno_name(errno: i32) -> String {
    let index = usize::try_from(errno).ok().and_then(|e| e.checked_sub(1));
    let named = match errno {
        61 => Some("ENODATA"),
        95 => Some("EOPNOTSUPP"),
        116 => Some("ESTALE"),
        122 => Some("EDQUOT"),
        _ => index.and_then(|i| ERRNOS.split_whitespace().nth(i)),
    };
    named.map_or_else(|| format!("E{errno}"), str::to_string)
}

/// The errno name of an OS error, or the message of any other error.
pub fn error_name(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(n) => errno_name(n),
        None => err.to_string(),
    }
}
