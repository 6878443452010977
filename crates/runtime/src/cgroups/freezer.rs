//! Pausing and resuming a container: the v1 freezer and cgroup2's `cgroup.freeze`.
//!
//! Owns [`FreezerState`] and [`Cgroup::freeze`], [`Cgroup::thaw`] and
//! [`Cgroup::freezer_state`]. It does not decide when to pause (the runtime's `pause`
//! and `kill_all` do).
//!
//! ```text
//!   v1:      write FROZEN to freezer.state, read it back until FROZEN
//!            (FREEZING can stick while processes fork: keep rewriting, and now and then
//!            thaw and retry, as runc does)
//!   cgroup2: write 1 to cgroup.freeze, wait for "frozen 1" in cgroup.events
//!            (poll(2) for POLLPRI, which kernfs raises when the file changes)
//! ```
//!
//! Both waits end at a deadline with an error naming the state the group was left in.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::error::{CgroupError, Result};
use super::files;
use super::group::Cgroup;
use super::layout::CgroupMode;

/// How long a freeze or thaw may take before it is reported as stuck.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest single wait on `cgroup.events` before it is read again (a change
/// notification missed for any reason costs at most this).
const POLL_SLICE: Duration = Duration::from_millis(50);

/// Whether a container's processes may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    /// Asked to freeze, not every process has stopped yet.
    Freezing,
    Frozen,
}

enum Freezer<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

impl Cgroup {
    fn freezer(&self) -> Result<Freezer<'_>> {
        match self.mode() {
            CgroupMode::V1 => self
                .v1_member("freezer")
                .map(|m| Freezer::V1(&m.dir))
                .ok_or_else(|| CgroupError::MissingMember {
                    controller: "freezer",
                    path: self.path().to_path_buf(),
                }),
            CgroupMode::Hybrid | CgroupMode::Unified => self
                .unified_member()
                .map(|m| Freezer::V2(&m.dir))
                .ok_or_else(|| CgroupError::MissingMember {
                    controller: "cgroup2",
                    path: self.path().to_path_buf(),
                }),
        }
    }

    /// Stops every process of the container, returning once the kernel says they all
    /// are stopped. On timeout the group is thawed again.
    pub fn freeze(&self) -> Result<()> {
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        match self.freezer()? {
            Freezer::V1(dir) => freeze_v1(dir, deadline),
            Freezer::V2(dir) => {
                files::write(dir, "cgroup.freeze", "1")?;
                wait_for_event(dir, "frozen", "1", deadline).map_err(|e| {
                    let _ = files::write(dir, "cgroup.freeze", "0");
                    match e {
                        Waited::TimedOut(state) => CgroupError::FreezeTimedOut {
                            path: dir.join("cgroup.events"),
                            state,
                        },
                        Waited::Failed(e) => e,
                    }
                })
            }
        }
    }

    /// Lets the container's processes run again.
    pub fn thaw(&self) -> Result<()> {
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        match self.freezer()? {
            Freezer::V1(dir) => {
                let mut backoff = Duration::from_micros(100);
                loop {
                    files::write(dir, "freezer.state", "THAWED")?;
                    let state = files::read(dir, "freezer.state")?;
                    if state.trim() == "THAWED" {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(CgroupError::ThawTimedOut {
                            path: dir.join("freezer.state"),
                            state: state.trim().to_owned(),
                        });
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(10));
                }
            }
            Freezer::V2(dir) => {
                files::write(dir, "cgroup.freeze", "0")?;
                wait_for_event(dir, "frozen", "0", deadline).map_err(|e| match e {
                    Waited::TimedOut(state) => CgroupError::ThawTimedOut {
                        path: dir.join("cgroup.events"),
                        state,
                    },
                    Waited::Failed(e) => e,
                })
            }
        }
    }

    /// What the kernel reports now.
    pub fn freezer_state(&self) -> Result<FreezerState> {
        match self.freezer()? {
            Freezer::V1(dir) => {
                let text = files::read(dir, "freezer.state")?;
                match text.trim() {
                    "THAWED" => Ok(FreezerState::Thawed),
                    "FREEZING" => Ok(FreezerState::Freezing),
                    "FROZEN" => Ok(FreezerState::Frozen),
                    _ => Err(CgroupError::UnexpectedContent {
                        path: dir.join("freezer.state"),
                        content: text,
                    }),
                }
            }
            Freezer::V2(dir) => {
                let asked = files::read(dir, "cgroup.freeze")?;
                if asked.trim() == "0" {
                    return Ok(FreezerState::Thawed);
                }
                let frozen = files::read_key(dir, "cgroup.events", "frozen")?;
                Ok(if frozen.as_deref() == Some("1") {
                    FreezerState::Frozen
                } else {
                    FreezerState::Freezing
                })
            }
        }
    }
}

/// runc's rhythm: rewrite FROZEN and read back, pausing very briefly every 25 tries and
/// thawing for 10 ms every 50, which unsticks a freezer racing with forks. Past the
/// first hundred tries, each one sleeps a little so a stuck group does not burn a CPU
/// until the deadline.
fn freeze_v1(dir: &Path, deadline: Instant) -> Result<()> {
    let mut attempt: u32 = 0;
    loop {
        if attempt % 50 == 49 {
            let _ = files::write(dir, "freezer.state", "THAWED");
            std::thread::sleep(Duration::from_millis(10));
        }
        files::write(dir, "freezer.state", "FROZEN")?;
        if attempt % 25 == 24 {
            std::thread::sleep(Duration::from_micros(10));
        }
        let text = files::read(dir, "freezer.state")?;
        match text.trim() {
            "FROZEN" => return Ok(()),
            "FREEZING" => {}
            _ => {
                return Err(CgroupError::UnexpectedContent {
                    path: dir.join("freezer.state"),
                    content: text,
                });
            }
        }
        if Instant::now() >= deadline {
            let _ = files::write(dir, "freezer.state", "THAWED");
            return Err(CgroupError::FreezeTimedOut {
                path: dir.join("freezer.state"),
                state: text.trim().to_owned(),
            });
        }
        if attempt >= 100 {
            std::thread::sleep(Duration::from_millis(1));
        }
        attempt += 1;
    }
}

enum Waited {
    /// The deadline passed; the value last seen.
    TimedOut(String),
    Failed(CgroupError),
}

/// Waits until `key` reads `want` in `dir/cgroup.events`.
fn wait_for_event(dir: &Path, key: &str, want: &str, deadline: Instant) -> Result<(), Waited> {
    let path = dir.join("cgroup.events");
    let read_failed = |source: std::io::Error| {
        Waited::Failed(CgroupError::Read {
            path: path.clone(),
            source,
        })
    };
    let file = File::open(&path).map_err(read_failed)?;
    let mut buf = [0u8; 512];
    loop {
        let n = nix::sys::uio::pread(&file, &mut buf, 0)
            .map_err(|e| read_failed(std::io::Error::from(e)))?;
        let text = String::from_utf8_lossy(&buf[..n]);
        let value = files::key_in(&text, key);
        if value == Some(want) {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Waited::TimedOut(format!("{key} {}", value.unwrap_or("?"))));
        }
        let slice = (deadline - now).min(POLL_SLICE);
        let millis = u16::try_from(slice.as_millis()).unwrap_or(u16::MAX).max(1);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(source) => {
                return Err(Waited::Failed(CgroupError::Poll {
                    path: path.clone(),
                    source,
                }));
            }
        }
    }
}
