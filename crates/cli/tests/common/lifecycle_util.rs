//! What `runtime_lifecycle` and `runtime_bad_input` share: a test's moor, scratch
//! directory and busybox, bundles whose cgroup is known, and the checks that a
//! container left nothing behind.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::json;
use tests::bundle::Bundle;
use tests::moor::{Moor, Ran};
use tests::scratch::Scratch;
use tests::{host, prereq, wait};

/// How long a container may take to reach a state a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// One test's runtime: `moor` with a private root, and its scratch directory. Fields
/// drop in order, so containers are deleted before the directory holding the root goes.
#[derive(Debug)]
pub struct Env {
    pub moor: Moor,
    pub scratch: Scratch,
    pub busybox: PathBuf,
}

impl Env {
    /// `None` (after saying why) when this host cannot run privileged tests; under
    /// `MOOR_TEST_STRICT=1` that is a failure instead.
    pub fn new(test: &str) -> Option<Env> {
        if !prereq::root() {
            return None;
        }
        let busybox = prereq::busybox()?;
        let scratch = Scratch::new(test);
        let moor = Moor::new(Path::new(env!("CARGO_BIN_EXE_moor")), &scratch);
        Some(Env {
            moor,
            scratch,
            busybox,
        })
    }

    /// A busybox bundle named `name` running `args`; its cgroup is [`Env::group`]`(name)`.
    pub fn bundle(&self, name: &str, args: &[&str]) -> Bundle {
        let mut bundle = Bundle::busybox(&self.scratch, &self.busybox, name);
        bundle.args(args);
        bundle.save();
        bundle
    }

    /// Like [`Env::bundle`], with a host directory bind-mounted read-write at `/out`;
    /// returns the host directory too.
    pub fn bundle_with_out(&self, name: &str, args: &[&str]) -> (Bundle, PathBuf) {
        let mut bundle = self.bundle(name, args);
        let out = self.scratch.dir().join(format!("{name}-out"));
        std::fs::create_dir_all(&out).expect("create the /out directory");
        std::fs::create_dir_all(bundle.rootfs.join("out")).expect("create rootfs/out");
        bundle.push(
            "/mounts",
            json!({"destination": "/out", "type": "bind",
                   "source": out.to_str().expect("utf-8 path"), "options": ["rbind", "rw"]}),
        );
        bundle.save();
        (bundle, out)
    }

    /// The cgroup of the bundle named `name`.
    pub fn group(&self, name: &str) -> String {
        format!("/moor-test/{}/{name}", self.scratch.prefix())
    }

    /// A file path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch.dir().join(name)
    }

    /// `create --bundle B ID`, which must succeed (the container's stdio goes to files).
    pub fn create(&self, bundle: &Bundle, id: &str) -> Ran {
        self.detached(&["create", "--bundle", dir(bundle), id], id)
    }

    /// `run --detach --bundle B ID`, which must succeed.
    pub fn run_detached(&self, bundle: &Bundle, id: &str) -> Ran {
        self.detached(&["run", "--detach", "--bundle", dir(bundle), id], id)
    }

    /// A verb that leaves a process behind and must succeed; its output, and the
    /// container's, goes to `<scratch>/<stem>.out|.err`.
    pub fn detached(&self, args: &[&str], stem: &str) -> Ran {
        let ran = self
            .moor
            .run_detached(args, &self.path(&format!("{stem}-log")));
        assert!(
            ran.status.success(),
            "expected success: moor {}\n  status: {}\n  stderr: {}",
            args.join(" "),
            ran.status,
            ran.stderr.trim_end()
        );
        ran
    }

    /// The init's host PID from `state`.
    pub fn pid(&self, id: &str) -> i32 {
        let state = self.moor.state(id);
        let pid = state["pid"].as_i64().unwrap_or_default();
        if pid <= 0 {
            // A container made by `create` or `run --detach` of this Env writes here.
            let log = std::fs::read_to_string(self.path(&format!("{id}-log.err")));
            panic!("state of {id} has no pid: {state}\n  its stderr: {log:?}");
        }
        pid as i32
    }

    /// Waits until `state` reports `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        wait::wait_until(&format!("{id} to be {status}"), DEADLINE, || {
            self.moor.status(id) == status
        });
    }

    /// The ids `list -q` prints.
    pub fn listed(&self) -> Vec<String> {
        let out = self.moor.ok(&["list", "-q"]);
        out.stdout.lines().map(str::to_string).collect()
    }

    /// Asserts the container `id` (of bundle `bundle`) is gone: `state` says it does not
    /// exist, `list` does not show it, and its state directory and cgroups are removed.
    pub fn assert_gone(&self, id: &str, bundle: &str) {
        let state = self.moor.fails(&["state", id]);
        assert!(
            state.stderr.contains("does not exist"),
            "state of a removed container: {}",
            state.stderr
        );
        assert!(
            !self.listed().contains(&id.to_string()),
            "{id} still listed"
        );
        let dir = self.moor.root().join(id);
        assert!(!dir.exists(), "state directory {} is left", dir.display());
        let groups = host::cgroup_dirs(&self.group(bundle));
        assert!(groups.is_empty(), "cgroups left behind: {groups:?}");
    }
}

/// A bundle's directory as an argument.
pub fn dir(bundle: &Bundle) -> &str {
    bundle.dir.to_str().expect("utf-8 bundle path")
}

/// Asserts a command failed cleanly: a non-zero exit code that is not a panic's (101),
/// no death by signal, no panic message, and stderr naming the problem (`needle`).
pub fn assert_clean_failure(ran: &Ran, needle: &str, what: &str) {
    let code = ran.code();
    assert!(
        code.is_some_and(|c| c != 0 && c != 101),
        "{what}: expected a clean failure, got {} (stderr: {})",
        ran.status,
        ran.stderr.trim_end()
    );
    assert!(
        !ran.stderr.contains("panicked"),
        "{what}: panicked: {}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains(needle),
        "{what}: stderr does not say {needle:?}: {}",
        ran.stderr.trim_end()
    );
}

/// Lines a child process prints, read on a thread so a test can wait for one with a
/// deadline.
#[derive(Debug)]
pub struct Lines {
    rx: Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn new(reader: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line equal to `want`, skipping others; panics after `deadline` or at the
    /// end of the output.
    pub fn expect(&mut self, want: &str, deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let found = line == want;
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line {want:?} within {deadline:?}; got {:?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("output ended without {want:?}; got {:?}", self.seen)
                }
            }
        }
    }
}
