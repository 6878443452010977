//! Helpers for the cgroup tests: prerequisites, unique group names, clean-up guards,
//! waiting on conditions and fake cgroup roots.
//!
//! A test that needs something this host lacks uses `require!`: with
//! `MOOR_TEST_STRICT=1` it fails, naming what is missing; otherwise it prints
//! `skipped: needs <what>` and the test returns. Never silently green.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Cgroup, CgroupLayout};

/// True when the prerequisite holds. When it does not: panics under
/// `MOOR_TEST_STRICT=1`, otherwise prints `skipped: needs <what>` and returns false.
pub(crate) fn prerequisite(ok: bool, what: &str) -> bool {
    ::tests::prereq::require(what, ok)
}

/// Returns from the test when a prerequisite is missing (see [`prerequisite`]).
macro_rules! require {
    ($ok:expr, $what:expr) => {
        if !$crate::cgroups::test_support::prerequisite($ok, $what) {
            return;
        }
    };
}
pub(crate) use require;

pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `/moor-test-<pid>-<n>-<name>`: unique per test run and per call.
pub(crate) fn unique_path(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!("/moor-test-{}-{n}-{name}", std::process::id()))
}

/// Waits until `cond` holds, panicking with `what` if it does not within `timeout`.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(1);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(50));
    }
}

/// Removes a test's groups when it ends, passing or not: kills what is left in them,
/// then removes them.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    layout: CgroupLayout,
    path: PathBuf,
}

impl GroupGuard {
    pub(crate) fn new(layout: &CgroupLayout, path: &Path) -> Self {
        GroupGuard {
            layout: layout.clone(),
            path: path.to_path_buf(),
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let Ok(group) = Cgroup::open(&self.layout, &self.path) else {
            return;
        };
        if let Ok(pids) = group.pids()
            && !pids.is_empty()
        {
            let _ = group.thaw();
            let _ = group.kill_all(Signal::SIGKILL);
        }
        if let Err(e) = group.destroy() {
            eprintln!("cleaning up {}: {e}", self.path.display());
        }
    }
}

/// Kills and reaps a child process when the test ends.
#[derive(Debug)]
pub(crate) struct ChildGuard(pub Child);

impl ChildGuard {
    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pids fit in i32")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Makes `dir` (and parents) and the files in it with the given contents.
pub(crate) fn fake_files(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("make fake cgroup dir");
    for (name, content) in files {
        std::fs::write(dir.join(name), content).expect("write fake cgroup file");
    }
}

/// Reads a fake or real interface file, trimmed.
pub(crate) fn read_trim(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_owned()
}
