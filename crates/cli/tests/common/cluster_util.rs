//! What the cluster suites share: a test's [`Site`] (its scratch directory and the `HOME`
//! its `moor` commands run with), running `moor` client commands against it, starting
//! `moor controller` processes ([`Controller`], killed when dropped) and writing client
//! configs that list only some controllers, so a command is answered by those.
//!
//! Everything runs on 127.0.0.1 in the test's own network namespace; the suites that need
//! faults between hosts build on this in `group_util.rs`. The generic parts (a process
//! killed on drop with a log file, free ports) are in the harness: `tests::daemon`.

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::daemon::{Daemon, free_local_addr};
use tests::moor::{Ran, finish};
use tests::scratch::Scratch;
use tests::wait;

/// The binary under test.
pub const MOOR: &str = env!("CARGO_BIN_EXE_moor");

/// How long a controller may take to answer after it starts. Only bounds a failure.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Where moor takes credentials, a data directory, a join token or a passphrase from the
/// environment: a test names each of them itself, never through the environment it was
/// started in.
const MOOR_ENV: [&str; 4] = [
    "MOOR_CONFIG",
    "MOOR_JOIN_TOKEN",
    "MOOR_BACKUP_PASSPHRASE",
    "MOOR_DATA_DIR",
];

/// Sets `HOME` to `home` on `cmd` and removes moor's variables ([`MOOR_ENV`]).
pub fn isolate<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    cmd.env("HOME", home);
    for var in MOOR_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` to completion with `stdin` on its standard input (closed when `None`).
///
/// The bytes are written from a thread and a failed write is ignored: a command that
/// refuses its input early stops reading, and a large input must not block the test
/// while the command's output waits in its pipes.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, what: &str) -> Ran {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let writer = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            Some(std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let ran = finish(child, what);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    ran
}

/// `ran`'s stdout; panics showing `what`, how it ended, its output and `context` (a
/// controller's log, say) unless it succeeded.
pub fn stdout_of_success(what: &str, ran: Ran, context: &str) -> String {
    assert!(
        ran.status.success(),
        "{what}: {}\n{}\n{}\n{context}",
        ran.status,
        ran.stdout,
        ran.stderr
    );
    ran.stdout
}

/// Writes to `path` the admin config `admin` with its controller list replaced by
/// `controllers`, in that order.
pub fn save_config(admin: &Path, controllers: &[(&str, SocketAddr)], path: &Path) {
    let mut config = wire::ClientConfig::load(admin)
        .unwrap_or_else(|e| panic!("load the admin config {}: {e}", admin.display()));
    config.controllers = controllers
        .iter()
        .map(|&(name, address)| wire::ControllerEntry {
            name: name.to_string(),
            address,
        })
        .collect();
    config.save(path).expect("save a client config");
}

/// A test's scratch directory and the `HOME` (`<scratch>/home`) of its `moor` commands,
/// where `--init` leaves the admin config.
pub struct Site {
    pub scratch: Scratch,
    pub home: PathBuf,
}

impl Site {
    pub fn new(test: &str) -> Site {
        let scratch = Scratch::new(test);
        let home = scratch.dir().join("home");
        std::fs::create_dir_all(&home).expect("mkdir home");
        Site { scratch, home }
    }

    pub fn dir(&self) -> &Path {
        self.scratch.dir()
    }

    /// `~/.moor/config`, the admin config `--init` writes.
    pub fn admin_config(&self) -> PathBuf {
        self.home.join(".moor/config")
    }

    /// `moor ARGS` with this site's `HOME` and none of moor's variables, ready to spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(MOOR);
        cmd.args(args);
        isolate(&mut cmd, &self.home);
        cmd
    }

    /// `moor ARGS` as the admin (HOME's `~/.moor/config`), run to completion.
    pub fn moor(&self, args: &[&str]) -> Ran {
        self.moor_with(args, None)
    }

    /// Like [`Site::moor`], with `stdin` on its standard input.
    pub fn moor_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Ran {
        run(
            &mut self.command(args),
            stdin,
            &format!("moor {}", args.join(" ")),
        )
    }

    /// Like [`Site::moor`], for a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_beside(args, "")
    }

    /// Like [`Site::ok`], showing `context` (a controller's log, say) if it fails.
    pub fn ok_beside(&self, args: &[&str], context: &str) -> String {
        stdout_of_success(
            &format!("moor {}", args.join(" ")),
            self.moor(args),
            context,
        )
    }

    /// `moor --data-dir DATA controller EXTRA…`, ready to spawn.
    pub fn controller_command(&self, data: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.command(&["--data-dir"]);
        cmd.arg(data).arg("controller").args(extra);
        cmd
    }

    /// Starts `moor --data-dir <scratch>/NAME controller FIRST… --name NAME --listen ADDR`
    /// (`FIRST`: `--init`, or `--join TOKEN --server ADDR`; `ADDR`: `listen`, or a free
    /// port on 127.0.0.1), its output in `<scratch>/NAME.log`.
    pub fn controller(&self, name: &str, listen: Option<&str>, first: &[&str]) -> Controller {
        let listen = listen.map_or_else(free_local_addr, str::to_string);
        let mut c = Controller {
            name: name.to_string(),
            data: self.dir().join(name),
            log: self.dir().join(format!("{name}.log")),
            listen,
            process: None,
            running: false,
        };
        let mut args = first.to_vec();
        let listen = c.listen.clone();
        args.extend(["--name", name, "--listen", &listen]);
        c.start(self, &args);
        c
    }

    /// Starts ctl-1 with `--init` and `extra` (see [`Site::controller`]) and waits until
    /// it answers the admin.
    pub fn init_controller(&self, extra: &[&str]) -> Controller {
        let mut first = vec!["--init"];
        first.extend_from_slice(extra);
        let c = self.controller("ctl-1", None, &first);
        self.wait_answering();
        c
    }

    /// Waits until a read as the admin goes through (a controller is serving).
    pub fn wait_answering(&self) {
        wait::wait_until("the controller to answer", START_DEADLINE, || {
            self.moor(&["get", "ns"]).status.success()
        });
    }

    /// A client config listing only `c`, as `<scratch>/FILE`: a command with it is
    /// answered by `c`.
    pub fn config_for(&self, c: &Controller, file: &str) -> PathBuf {
        let path = self.dir().join(file);
        save_config(&self.admin_config(), &[(&c.name, c.address())], &path);
        path
    }
}

/// A `moor controller` process and its files; killed when dropped.
pub struct Controller {
    pub name: String,
    pub listen: String,
    pub data: PathBuf,
    log: PathBuf,
    process: Option<Daemon>,
    running: bool,
}

impl Controller {
    /// Starts it (again: a restart needs no flags) from its data directory with `extra`;
    /// its output is appended to the same log.
    pub fn start(&mut self, site: &Site, extra: &[&str]) {
        assert!(!self.running, "{} is already running", self.name);
        let mut cmd = site.controller_command(&self.data, extra);
        self.process = Some(Daemon::spawn(&mut cmd, &self.log));
        self.running = true;
    }

    /// SIGKILL, and reaps it; harmless when it is not running.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.as_mut().filter(|_| self.running) {
            process.kill();
        }
        self.running = false;
    }

    /// Whether the test started it and has not killed it since.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Whether its process is still there (not killed by the test, not exited).
    pub fn is_alive(&mut self) -> bool {
        self.running && self.process.as_mut().is_some_and(Daemon::is_running)
    }

    pub fn id(&self) -> u32 {
        self.process.as_ref().expect("a started controller").id()
    }

    /// Its address, parsed.
    pub fn address(&self) -> SocketAddr {
        self.listen.parse().expect("a controller address")
    }

    /// Everything it printed, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What it printed since it was last started.
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .map(Daemon::output)
            .unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}
