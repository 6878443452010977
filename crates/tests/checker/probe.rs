//! The `probe` command: attacks and probes. Each prints `probe.<kind>=ok` or
//! `probe.<kind>=<ERRNO>` (plus, for some, a few more `probe.<kind>.*` lines) and
//! exits 0 whatever the outcome; exit 2 means bad usage.

use crate::{emit, flush, link, raw, report, show, sys, usage};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::str::FromStr;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

pub fn run(args: &[String]) -> i32 {
    let Some((kind, rest)) = args.split_first() else {
        return usage("probe needs a kind");
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (kind.as_str(), rest.as_slice()) {
        ("open", [path, mode]) => open(path, mode),
        ("write", [path, text]) => outcome("write", &fs::write(path, text)),
        ("mknod", [path, kind, major, minor]) => mknod(path, kind, major, minor),
        ("mkdir", [path]) => outcome("mkdir", &fs::create_dir(path)),
        ("chdir", [path]) => chdir(path),
        ("stat", [path]) => stat(path),
        ("readlink", [path]) => readlink(path),
        ("exe-write", [pid]) => exe_write(pid),
        ("exe-hold-and-write", [pid, limit]) => with(limit, |limit| exe_hold_and_write(pid, limit)),
        ("ptrace", [pid]) => with(pid, |pid| outcome("ptrace", &sys::ptrace_attach(pid))),
        ("kill", [pid, signal]) => kill(pid, signal),
        ("alloc", [mib]) => with(mib, alloc),
        ("fork", [n]) => with(n, fork),
        ("sleep", [seconds]) => with(seconds, |Seconds(s)| {
            std::thread::sleep(s);
            outcome("sleep", &Ok(()))
        }),
        ("exit", [code]) => with(code, |code: i32| {
            flush();
            std::process::exit(code)
        }),
        ("signal-wait", []) => signal_wait(),
        ("cat", [path]) => match fs::read(path) {
            Ok(bytes) => {
                raw(&bytes);
                0
            }
            failed => outcome("cat", &failed),
        },
        ("echo", text) => {
            raw(format!("{}\n", text.join(" ")).as_bytes());
            0
        }
        ("spin", []) => {
            emit("probe.spin", "ready");
            flush();
            loop {
                std::hint::spin_loop();
            }
        }
        ("ls-proc", []) => ls_proc(),
        ("ls", [path]) => ls(path),
        ("rdev", [path]) => rdev(path),
        ("exe-hunt", [stop]) => crate::exe_hunt::run(stop),
        _ => usage(&format!("unknown probe or wrong arguments: {args:?}")),
    }
}

/// Parses a numeric argument and hands it on, or reports bad usage.
fn with<T: FromStr>(arg: &str, probe: impl FnOnce(T) -> i32) -> i32 {
    match arg.parse() {
        Ok(value) => probe(value),
        Err(_) => usage(&format!("not a number: {arg:?}")),
    }
}

/// A non-negative, finite number of seconds, fractions allowed.
struct Seconds(Duration);

impl FromStr for Seconds {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let seconds: f64 = s.parse().map_err(drop)?;
        Duration::try_from_secs_f64(seconds)
            .map(Seconds)
            .map_err(drop)
    }
}

fn outcome<T>(kind: &str, result: &io::Result<T>) -> i32 {
    let value = result
        .as_ref()
        .map_or_else(sys::error_name, |_| "ok".to_string());
    emit(format!("probe.{kind}"), value);
    0
}

fn open(path: &str, mode: &str) -> i32 {
    let mut options = OpenOptions::new();
    match mode {
        "r" => options.read(true),
        "w" => options.write(true),
        "rw" => options.read(true).write(true),
        _ => return usage(&format!("open mode must be r, w or rw, not {mode:?}")),
    };
    let result = options.open(path).and_then(|mut file| {
        if mode == "r" {
            let _ = file.read(&mut [0u8; 1])?;
        }
        Ok(())
    });
    outcome("open", &result)
}

fn mknod(path: &str, kind: &str, major: &str, minor: &str) -> i32 {
    let mode = match kind {
        "c" => 0o020_600,
        "b" => 0o060_600,
        _ => return usage(&format!("mknod type must be c or b, not {kind:?}")),
    };
    match (major.parse(), minor.parse()) {
        (Ok(major), Ok(minor)) => outcome("mknod", &sys::make_node(path, mode, major, minor)),
        _ => usage(&format!("mknod needs numbers, not {major:?} {minor:?}")),
    }
}

fn chdir(path: &str) -> i32 {
    let result = std::env::set_current_dir(path);
    outcome("chdir", &result);
    if result.is_ok() {
        emit("probe.chdir.cwd", show(report::cwd()));
    }
    0
}

fn stat(path: &str) -> i32 {
    let meta = fs::metadata(path);
    outcome("stat", &meta);
    if let Ok(meta) = meta {
        emit("probe.stat.mode", format!("{:o}", meta.mode()));
        emit("probe.stat.uid", meta.uid().to_string());
        emit("probe.stat.gid", meta.gid().to_string());
        emit("probe.stat.ino", meta.ino().to_string());
    }
    0
}

fn readlink(path: &str) -> i32 {
    let target = link(path);
    outcome("readlink", &target);
    if let Ok(target) = target {
        emit("probe.readlink.target", target);
    }
    0
}

/// Opening a running binary for writing fails with ETXTBSY, which says nothing about
/// whether the container could get at the host binary; so a read-only open is tried
/// too, since that is the handle the CVE-2019-5736 attack starts from.
fn exe_write(pid: &str) -> i32 {
    let path = format!("/proc/{pid}/exe");
    let result = OpenOptions::new().write(true).open(&path);
    outcome("exe-write", &result);
    if matches!(&result, Err(e) if e.raw_os_error() == Some(sys::ETXTBSY)) {
        outcome("exe-read", &File::open(&path));
    }
    0
}

/// Holds an O_PATH handle on the binary and keeps reopening it for writing until the
/// binary is no longer busy (it was exec'ed away from) or time runs out. The pauses
/// only pace the attack; nothing here decides a test by time.
fn exe_hold_and_write(pid: &str, Seconds(limit): Seconds) -> i32 {
    let held = OpenOptions::new()
        .read(true)
        .custom_flags(sys::O_PATH)
        .open(format!("/proc/{pid}/exe"));
    outcome("exe-hold", &held);
    let Ok(held) = held else { return 0 };
    let reopen = format!("/proc/self/fd/{}", held.as_raw_fd());
    let deadline = Instant::now().checked_add(limit);
    loop {
        let options = OpenOptions::new().write(true).truncate(true).open(&reopen);
        let result = options.and_then(|mut file| file.write_all(b"PWNED"));
        if result.is_ok() || deadline.is_some_and(|d| Instant::now() >= d) {
            return outcome("exe-hold-and-write", &result);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill(pid: &str, signal: &str) -> i32 {
    let Some(signal) = sys::signal_number(signal) else {
        return usage(&format!("unknown signal {signal:?}"));
    };
    with(pid, |pid| outcome("kill", &sys::send_signal(pid, signal)))
}

/// Touches every page so the memory is really charged; past the limit the kernel's
/// OOM killer ends the process and nothing is printed.
fn alloc(mib: usize) -> i32 {
    let mut memory: Vec<u8> = Vec::new();
    let Some(bytes) = mib.checked_mul(MIB) else {
        return usage("alloc size overflows");
    };
    let reserved = memory.try_reserve_exact(bytes);
    let reserved = reserved.map_err(|_| io::Error::from_raw_os_error(sys::ENOMEM));
    if reserved.is_ok() {
        memory.resize(bytes, 1);
        std::hint::black_box(&memory);
    }
    outcome("alloc", &reserved)
}

/// Forks up to `n` sleeping children, reports how many it got, then kills and reaps them.
fn fork(n: usize) -> i32 {
    flush();
    let mut children = Vec::new();
    let mut failure = None;
    while children.len() < n {
        match sys::fork_sleeper() {
            Ok(pid) => children.push(pid),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    emit("probe.fork", children.len().to_string());
    if let Some(e) = failure {
        emit("probe.fork.error", sys::error_name(&e));
    }
    for &pid in &children {
        let _ = sys::send_signal(pid, sys::SIGKILL);
        sys::reap(pid);
    }
    0
}

/// Prints `probe.signal-wait=ready` once the signals are blocked, so a test can send
/// one as soon as it reads that line, then `probe.signal=SIGTERM` (or INT, HUP).
fn signal_wait() -> i32 {
    let ready = || {
        emit("probe.signal-wait", "ready");
        flush();
    };
    match sys::wait_for(&[15, 2, 1], ready) {
        Ok(sig) => emit("probe.signal", sys::signal_name(sig)),
        Err(e) => emit("probe.signal", sys::error_name(&e)),
    }
    0
}

fn ls_proc() -> i32 {
    let entries = match fs::read_dir("/proc") {
        Ok(entries) => entries,
        failed => return outcome("ls-proc", &failed),
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in &pids {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm"));
        emit(
            format!("proc.{pid}.comm"),
            show(comm.map(|c| c.trim_end().to_string())),
        );
        emit(
            format!("proc.{pid}.exe"),
            show(link(format!("/proc/{pid}/exe"))),
        );
    }
    emit("probe.ls-proc", pids.len().to_string());
    0
}

/// The names in a directory, sorted: `probe.ls=COUNT` and `probe.ls.names=a,b`.
fn ls(path: &str) -> i32 {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        failed => return outcome("ls", &failed),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort_unstable();
    emit("probe.ls", names.len().to_string());
    emit("probe.ls.names", names.join(","));
    0
}

/// The device number of a node (following symlinks), keyed by its path so that several
/// chain: `probe.rdev.PATH=MAJOR:MINOR` (`0:0` for anything but a device).
fn rdev(path: &str) -> i32 {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        failed => return outcome(&format!("rdev.{path}"), &failed),
    };
    let dev = meta.rdev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    emit(format!("probe.rdev.{path}"), format!("{major}:{minor}"));
    0
}
