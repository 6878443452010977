//! Long-running processes a test starts (a controller, an agent): killed when dropped,
//! with their stdout and stderr in a log file the test reads for assertions and failure
//! messages; and free ports on 127.0.0.1 for them to listen on.
//!
//! A log file is appended to, so one that several runs of the same daemon share (a
//! restart) keeps every run's output; [`Daemon::output`] is what this run wrote.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::wait;

/// A port on 127.0.0.1 that nothing listens on (UDP: the controllers speak QUIC). The
/// socket that found it is closed again, so another process may take it in between;
/// each test uses its own ports, and a collision fails loudly at bind.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a free port");
    socket.local_addr().expect("local addr").port()
}

/// `127.0.0.1:PORT` on a [`free_udp_port`].
pub fn free_local_addr() -> String {
    format!("127.0.0.1:{}", free_udp_port())
}

/// A child process with stdin closed and its output in a log file; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    log: PathBuf,
    /// Where this run's output starts in the log.
    start: u64,
}

impl Daemon {
    /// Spawns `cmd` with stdin closed and stdout and stderr appended to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Daemon {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let start = file.metadata().map(|m| m.len()).unwrap_or(0);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Daemon {
            child,
            log: log.to_path_buf(),
            start,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The whole log file, this run's output and any earlier run's.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log from where this run started: what it has written so far (and anything a
    /// later run on the same log wrote after it).
    pub fn output(&self) -> String {
        let Ok(mut file) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.start)).is_ok() {
            let _ = file.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// How it ended, if it has.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, as a power cut would, and reaps it; how it ended. Harmless on a process
    /// that has already been reaped.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("reap the process")
    }

    /// SIGTERM, and waits (up to `deadline`, which only bounds a failure) until it exits;
    /// how it ended.
    pub fn terminate(&mut self, what: &str, deadline: Duration) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        if self.is_running() {
            // SAFETY: kill(2) on our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        wait::wait_for(&format!("{what} to exit after SIGTERM"), deadline, || {
            self.child.try_wait().expect("try_wait")
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(mut daemon: Daemon) -> Daemon {
        let status = wait::wait_for("the process to exit", Duration::from_secs(10), || {
            daemon.try_wait()
        });
        assert!(status.success());
        daemon
    }

    #[test]
    fn a_restart_appends_and_output_is_this_runs_alone() {
        let dir = crate::scratch::Scratch::new("daemon-log");
        let log = dir.dir().join("echo.log");
        let first = finished(Daemon::spawn(
            Command::new("sh").args(["-c", "echo one"]),
            &log,
        ));
        let second = finished(Daemon::spawn(
            Command::new("sh").args(["-c", "echo two >&2"]),
            &log,
        ));
        assert_eq!(first.output(), "one\ntwo\n", "read after the second run");
        assert_eq!(second.output(), "two\n");
        assert_eq!(second.log(), "one\ntwo\n");
    }

    #[test]
    fn kill_and_terminate_end_a_running_process() {
        let dir = crate::scratch::Scratch::new("daemon-kill");
        let log = dir.dir().join("sleep.log");
        let mut killed = Daemon::spawn(Command::new("sleep").arg("600"), &log);
        assert!(killed.is_running());
        assert!(!killed.kill().success());
        assert!(!killed.is_running());
        let mut terminated = Daemon::spawn(Command::new("sleep").arg("600"), &log);
        let status = terminated.terminate("sleep", Duration::from_secs(10));
        assert!(!status.success());
    }
}
