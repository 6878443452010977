//! Knowing a process again: PID, start time and boot id, checked through a pidfd.
//!
//! A PID alone is not an identity: after the container's init exits its number can be
//! handed to any other process, and after a reboot every number is reused. The runtime
//! records the PID together with the process's start time (field 22 of
//! `/proc/PID/stat`, in clock ticks since boot) and the kernel's boot id, and signals a
//! process only through a pidfd opened and then re-checked against that record, so a
//! signal can never reach a stranger that took the number.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use serde::{Deserialize, Serialize};

use crate::sys;

/// Where the current boot's id is published.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// A process as the runtime remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: i32,
    /// Clock ticks after boot at which the process started.
    pub start_time: u64,
    /// `/proc/sys/kernel/random/boot_id` when it was recorded.
    pub boot_id: String,
}

/// What became of a remembered process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running (or stopped by a signal, or frozen): it can still be signalled.
    Alive,
    /// Exited but not yet reaped by its parent.
    Zombie,
    /// Gone, or the PID now belongs to someone else, or the box rebooted.
    Gone,
}

/// The fields of `/proc/PID/stat` the runtime reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from its last `)`.
pub fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let close = text.rfind(')')?;
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace();
    // Fields after the name start at field 3 (state); start time is field 22.
    let state = rest.next()?.chars().next()?;
    let start_time = rest.nth(22 - 4)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Reads `/proc/PID/stat`; `None` if the process does not exist (or is unreadable).
pub fn read_proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&text)
}

/// The current boot id.
pub fn boot_id() -> io::Result<String> {
    Ok(fs::read_to_string(BOOT_ID_PATH)?.trim().to_string())
}

impl ProcessIdentity {
    /// Records who `pid` is now.
    pub fn capture(pid: i32) -> io::Result<Self> {
        let stat = read_proc_stat(pid).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("process {pid} not found"))
        })?;
        Ok(Self {
            pid,
            start_time: stat.start_time,
            boot_id: boot_id()?,
        })
    }

    /// Whether the remembered process still exists.
    pub fn liveness(&self) -> Liveness {
        if self.pid <= 0 {
            return Liveness::Gone;
        }
        match boot_id() {
            Ok(id) if id == self.boot_id => {}
            _ => return Liveness::Gone,
        }
        match read_proc_stat(self.pid) {
            Some(stat) if stat.start_time == self.start_time => match stat.state {
                'Z' | 'X' | 'x' => Liveness::Zombie,
                _ => Liveness::Alive,
            },
            _ => Liveness::Gone,
        }
    }

    /// Opens a pidfd for the remembered process, or `None` if it is gone. The start time
    /// is checked after the pidfd is open: the pidfd pins the process, so if the check
    /// passes the descriptor refers to the right one.
    pub fn open(&self) -> io::Result<Option<OwnedFd>> {
        if self.liveness() == Liveness::Gone {
            return Ok(None);
        }
        let fd = match sys::pidfd_open(self.pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e),
        };
        match read_proc_stat(self.pid) {
            Some(stat) if stat.start_time == self.start_time => Ok(Some(fd)),
            _ => Ok(None),
        }
    }

    /// Sends `signal` if the process is still the remembered one. Returns false if it is
    /// gone (including a zombie, which signals cannot reach anyway).
    pub fn signal(&self, signal: libc::c_int) -> io::Result<bool> {
        let Some(fd) = self.open()? else {
            return Ok(false);
        };
        match sys::pidfd_send_signal(fd.as_fd(), signal) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parser_counts_fields_after_the_name() {
        let line = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10";
        let stat = parse_proc_stat(line).expect("parses");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time, 12345);
    }

    #[test]
    fn stat_parser_refuses_truncated_input() {
        assert_eq!(parse_proc_stat("42 (sh) S 1 2"), None);
        assert_eq!(parse_proc_stat("garbage"), None);
        assert_eq!(parse_proc_stat(""), None);
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_gone() {
        let me = ProcessIdentity::capture(std::process::id() as i32).expect("capture");
        assert_eq!(me.liveness(), Liveness::Alive);
        let impostor = ProcessIdentity {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert_eq!(impostor.liveness(), Liveness::Gone);
        assert!(impostor.open().expect("open").is_none());
        let other_boot = ProcessIdentity {
            boot_id: "not-this-boot".into(),
            ..me
        };
        assert_eq!(other_boot.liveness(), Liveness::Gone);
    }
}
