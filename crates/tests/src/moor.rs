//! Running the real `moor` binary, as a user would, with a per-test runtime root; and
//! cleaning up every container and cgroup a test made, even when it fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::scratch::Scratch;

/// How long any one moor command may take before the test fails.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// The `moor` binary and a runtime root private to one test.
#[derive(Debug)]
pub struct Moor {
    bin: PathBuf,
    root: PathBuf,
    prefix: String,
}

/// What a finished command printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

fn describe(args: &[&str], out: &Ran) -> String {
    format!(
        "moor {}\n  status: {}\n  stdout: {}\n  stderr: {}",
        args.join(" "),
        out.status,
        out.stdout.trim_end(),
        out.stderr.trim_end()
    )
}

/// Waits for `child` with a deadline, killing it if it overruns.
pub fn finish(mut child: Child, what: &str) -> Ran {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let end = Instant::now() + COMMAND_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}: still running after {COMMAND_DEADLINE:?}");
            }
            Err(e) => panic!("{what}: wait: {e}"),
        }
    };
    Ran {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

impl Moor {
    /// `bin` is the binary under test (`env!("CARGO_BIN_EXE_moor")`).
    pub fn new(bin: &Path, scratch: &Scratch) -> Self {
        Self {
            bin: bin.to_path_buf(),
            root: scratch.dir().join("runtime-root"),
            prefix: scratch.prefix().to_string(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// `moor runtime --root ROOT ARGS…`, ready to spawn, stdin closed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("runtime")
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs a verb to completion.
    pub fn run(&self, args: &[&str]) -> Ran {
        let child = self
            .command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        finish(child, &format!("moor {}", args.join(" ")))
    }

    /// Runs a verb that must succeed.
    pub fn ok(&self, args: &[&str]) -> Ran {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "expected success:\n{}",
            describe(args, &out)
        );
        out
    }

    /// Runs a verb that must fail (exit non-zero, not by a signal); returns its output.
    pub fn fails(&self, args: &[&str]) -> Ran {
        let out = self.run(args);
        assert!(
            out.code().is_some_and(|c| c != 0),
            "expected a clean failure:\n{}",
            describe(args, &out)
        );
        out
    }

    /// `state ID`, parsed.
    pub fn state(&self, id: &str) -> Value {
        let out = self.ok(&["state", id]);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state JSON: {e}: {}", out.stdout))
    }

    /// The status field of `state ID`.
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Moor {
    /// Runs a verb that leaves a container behind (`run --detach`, `create`). The
    /// container inherits the command's stdout and stderr, which as pipes would stay open
    /// as long as it runs; so they go to the files `<stem>.out` and `<stem>.err`, and the
    /// returned [`Ran`] holds what they contain when the command has exited. Whatever the
    /// container writes later is in the same files.
    pub fn run_detached(&self, args: &[&str], stem: &Path) -> Ran {
        let (out, err) = (stem.with_extension("out"), stem.with_extension("err"));
        let file = |path: &Path| {
            std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
        };
        let child = self
            .command(args)
            .stdout(file(&out))
            .stderr(file(&err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        let mut ran = finish(child, &format!("moor {}", args.join(" ")));
        ran.stdout = std::fs::read_to_string(&out).unwrap_or_default();
        ran.stderr = std::fs::read_to_string(&err).unwrap_or_default();
        ran
    }
}

/// Like [`Moor::run_detached`], for a command the test has adjusted first (its working
/// directory, say): stdout and stderr go to `<stem>.out` and `<stem>.err`, and the
/// returned [`Ran`] holds what they contain when the command has exited.
pub fn run_to_files(mut cmd: Command, stem: &Path) -> Ran {
    let (out, err) = (stem.with_extension("out"), stem.with_extension("err"));
    let file = |path: &Path| {
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
    };
    let what = format!("{cmd:?}");
    let child = cmd
        .stdout(file(&out))
        .stderr(file(&err))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut ran = finish(child, &what);
    ran.stdout = std::fs::read_to_string(&out).unwrap_or_default();
    ran.stderr = std::fs::read_to_string(&err).unwrap_or_default();
    ran
}

impl Drop for Moor {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                let _ = self.command(&["delete", "--force", &id]).output();
            }
        }
        remove_test_cgroups(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Removes `moor-test/<prefix>` from every cgroup hierarchy, killing what is left in it.
pub fn remove_test_cgroups(prefix: &str) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if !matches!(fields.get(sep + 1), Some(&"cgroup") | Some(&"cgroup2")) {
            continue;
        }
        let Some(mountpoint) = fields.get(4) else {
            continue;
        };
        let dir = Path::new(mountpoint).join("moor-test").join(prefix);
        if dir.exists() {
            remove_cgroup_tree(&dir);
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) with a PID read from the test's own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    let end = Instant::now() + Duration::from_secs(5);
    while std::fs::remove_dir(dir).is_err() && Instant::now() < end && dir.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes the group at `group` (`/moor/<id>`, say) from every cgroup hierarchy, killing
/// what is left in it: for tests whose containers get groups outside `moor-test/<prefix>`.
pub fn remove_cgroup_everywhere(group: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let relative = group.strip_prefix("/").unwrap_or(group);
    if relative.as_os_str().is_empty() {
        return; // never a hierarchy's root
    }
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if !matches!(fields.get(sep + 1), Some(&"cgroup") | Some(&"cgroup2")) {
            continue;
        }
        let Some(mountpoint) = fields.get(4) else {
            continue;
        };
        let dir = Path::new(mountpoint).join(relative);
        if dir.exists() {
            remove_cgroup_tree(&dir);
        }
    }
}
