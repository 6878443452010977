//! What the controller-group suites share: three `moor controller` processes, each in
//! its own network namespace of a [`Lab`], and a fourth host whose `moor` commands are
//! the clients; forming the group (`--init`, a token, two `--join`s), killing, stopping
//! and restarting members, finding the leader, a writer that streams numbered ConfigMaps
//! and remembers which were acknowledged, and reading them back from each member.
//!
//! ```text
//!   client (10.77.0.4): moor apply | get [--stale] | controller ls  (--config picks who)
//!        │
//!   ─────┴──────────── lab switch (cuts: nft on the bridge) ──────────────────
//!        │                        │                        │
//!   ctl-1 10.77.0.1:7443     ctl-2 10.77.0.2:7443     ctl-3 10.77.0.3:7443
//!   (--init)                 (--join via ctl-1)       (--join via ctl-1)
//! ```
//!
//! Every member has a client config listing only it (`Member::config`), so a command is
//! answered by that member; [`Group::config_for`] makes one listing any subset.
//!
//! Running `moor` itself (its environment, stdin, configs listing some controllers) is
//! `cluster_util.rs`'s, shared with the single-host suites.

#![allow(dead_code)] // each test binary uses a different part

#[path = "cluster_util.rs"]
mod cluster_util;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cluster_util::{MOOR, isolate, save_config, stdout_of_success};
use serde_json::Value;
use tests::daemon::Daemon;
use tests::moor::Ran;
use tests::net::{Lab, LabHost};
use tests::scratch::Scratch;
use tests::wait;

/// How long the group may take to reach a state a test waits for (an election, a member
/// catching up). Only bounds a failure.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The port every controller listens on, each on its own host's address.
pub const PORT: u16 = 7443;

/// One controller: its host, files and (while it runs) process, killed when dropped.
pub struct Member {
    pub name: String,
    pub host: LabHost,
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// A client config that lists only this controller.
    pub config: PathBuf,
    log: PathBuf,
    env: Vec<(String, OsString)>,
    process: Option<Daemon>,
    starts: u32,
}

impl Member {
    fn spawn(&mut self, home: &Path, extra: &[&str]) {
        assert!(self.process.is_none(), "{} is already running", self.name);
        self.starts += 1;
        {
            use std::io::Write;
            let mut log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("open the controller log");
            let _ = writeln!(log, "--- start {} ---", self.starts);
        }
        let mut cmd = self.host.command(MOOR);
        cmd.arg("--data-dir")
            .arg(&self.data)
            .arg("controller")
            .args(extra);
        isolate(&mut cmd, home).envs(self.env.iter().map(|(k, v)| (k, v)));
        self.process = Some(Daemon::spawn(&mut cmd, &self.log));
    }

    /// Whether the test started it and has not killed or stopped it since.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// SIGKILL, as a power cut would (the disk keeps what was fsynced).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM, and waits until the process has exited; returns how it ended.
    pub fn stop(&mut self) -> ExitStatus {
        let mut process = self.process.take().expect("stop a running controller");
        process.terminate(&self.name, DEADLINE)
    }

    /// Everything it printed, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `moor` client commands in the client host (cheap to clone into a thread).
#[derive(Debug, Clone)]
pub struct Client {
    host: LabHost,
    home: PathBuf,
}

/// A ConfigMap as one member returned it: what the checks compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// `data.n`.
    pub value: String,
    pub resource_version: String,
    pub uid: String,
}

/// One row of `moor controller ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub voter: bool,
    pub leader: bool,
}

impl Client {
    /// `moor --config CONFIG ARGS`, with `stdin` on its standard input.
    pub fn run(&self, config: &Path, args: &[&str], stdin: Option<&str>) -> Ran {
        let mut cmd = self.host.command(MOOR);
        cmd.arg("--config").arg(config).args(args);
        isolate(&mut cmd, &self.home);
        cluster_util::run(
            &mut cmd,
            stdin.map(str::as_bytes),
            &format!("moor --config {} {}", config.display(), args.join(" ")),
        )
    }

    /// Like [`Client::run`], for a command that must succeed; returns its stdout.
    pub fn ok(&self, config: &Path, args: &[&str]) -> String {
        let what = format!("moor --config {} {}", config.display(), args.join(" "));
        stdout_of_success(&what, self.run(config, args, None), "")
    }

    /// Applies the ConfigMap `name` holding `data.n = value`.
    pub fn write(&self, config: &Path, name: &str, value: &str) -> Ran {
        let manifest = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{n: \"{value}\"}}\n"
        );
        self.run(config, &["apply", "-f", "-"], Some(&manifest))
    }

    /// Writes until one attempt is acknowledged (the same object each time, so a retry of
    /// a write that did happen only answers "unchanged").
    pub fn write_eventually(&self, config: &Path, name: &str, value: &str) {
        let mut last = None;
        let done = wait::holds_within(DEADLINE, || {
            let ran = self.write(config, name, value);
            let ok = ran.status.success();
            last = Some(ran);
            ok
        });
        assert!(
            done,
            "writing {name} through {}: {last:?}",
            config.display()
        );
    }

    /// The ConfigMaps of `default` by name, as the member(s) of `config` answer (`--stale`:
    /// the answering member's own copy); `None` if the command failed.
    pub fn configmaps(&self, config: &Path, stale: bool) -> Option<BTreeMap<String, Stored>> {
        let mut args = vec!["get", "cm", "-o", "json"];
        if stale {
            args.push("--stale");
        }
        let ran = self.run(config, &args, None);
        if !ran.status.success() {
            return None;
        }
        Some(parse_configmaps(&ran.stdout))
    }

    /// `moor controller ls` as the member(s) of `config` see the group; `None` if the
    /// command failed.
    pub fn view(&self, config: &Path) -> Option<Vec<Row>> {
        let ran = self.run(config, &["controller", "ls"], None);
        if !ran.status.success() {
            return None;
        }
        Some(parse_controller_ls(&ran.stdout))
    }
}

/// `moor get cm -o json`: one object, a `List`, or nothing.
pub fn parse_configmaps(json: &str) -> BTreeMap<String, Stored> {
    if json.trim().is_empty() {
        return BTreeMap::new();
    }
    let value: Value = serde_json::from_str(json).expect("get -o json prints JSON");
    let items = match value["kind"].as_str() {
        Some("List") => value["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![value],
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    items
        .iter()
        .map(|item| {
            let meta = &item["metadata"];
            (
                text(&meta["name"]),
                Stored {
                    value: text(&item["data"]["n"]),
                    resource_version: text(&meta["resourceVersion"]),
                    uid: text(&meta["uid"]),
                },
            )
        })
        .collect()
}

/// `ID NAME ADDRESS MEMBER STATE` rows; the leader's name carries ` *`.
pub fn parse_controller_ls(table: &str) -> Vec<Row> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(Row {
                name: fields.get(1)?.to_string(),
                voter: fields.contains(&"voter"),
                leader: fields.last() == Some(&"leader"),
            })
        })
        .collect()
}

/// The name of the leader in a view, if it names exactly one.
pub fn leader_in(rows: &[Row]) -> Option<String> {
    let mut leaders = rows.iter().filter(|r| r.leader);
    let first = leaders.next()?;
    leaders.next().is_none().then(|| first.name.clone())
}

/// Three controllers on three lab hosts, and a client host. Fields drop in order: the
/// processes first, then the namespaces, then the files.
pub struct Group {
    pub members: Vec<Member>,
    pub client: Client,
    pub lab: Lab,
    /// A client config listing all three members, ctl-1 first.
    pub all: PathBuf,
    home: PathBuf,
    pub scratch: Scratch,
}

impl Group {
    /// Makes the lab, `--init`s ctl-1 and joins ctl-2 and ctl-3 through it, and waits
    /// until all three are voters that agree on a leader. `env(name)` adds to a member's
    /// environment (every start of it). `None` (after saying why) when this machine
    /// cannot make a lab.
    pub fn form(test: &str, env: impl Fn(&str) -> Vec<(String, OsString)>) -> Option<Group> {
        let mut lab = Lab::new(test)?;
        let scratch = Scratch::new(test);
        let home = scratch.dir().join("home");
        std::fs::create_dir_all(&home).expect("mkdir home");
        let hosts: Vec<LabHost> = (1..=3).map(|i| lab.add_host(&format!("ctl-{i}"))).collect();
        let client = Client {
            host: lab.add_host("client"),
            home: home.clone(),
        };
        let members = hosts
            .into_iter()
            .map(|host| Member {
                name: host.name.clone(),
                listen: SocketAddr::new(host.addr.into(), PORT),
                data: scratch.dir().join(&host.name),
                config: scratch.dir().join(format!("{}.conf", host.name)),
                log: scratch.dir().join(format!("{}.log", host.name)),
                env: env(&host.name),
                process: None,
                starts: 0,
                host,
            })
            .collect();
        let mut group = Group {
            members,
            client,
            lab,
            all: scratch.dir().join("all.conf"),
            home,
            scratch,
        };

        let listen = group.members[0].listen.to_string();
        group.members[0].spawn(
            &group.home,
            &["--init", "--name", "ctl-1", "--listen", &listen],
        );
        let admin = group.home.join(".moor/config");
        wait::wait_until("ctl-1 to write the admin config", DEADLINE, || {
            wire::ClientConfig::load(&admin).is_ok()
        });
        for i in 0..3 {
            let path = group.members[i].config.clone();
            group.save_config(&[i], &path);
        }
        let all = group.all.clone();
        group.save_config(&[0, 1, 2], &all);
        group.wait_serving(0);

        let token = group
            .client
            .ok(
                &group.members[0].config,
                &["token", "create", "--role", "controller", "--uses", "2"],
            )
            .trim()
            .to_string();
        let server = group.members[0].listen.to_string();
        for i in 1..3 {
            let name = group.members[i].name.clone();
            let listen = group.members[i].listen.to_string();
            let home = group.home.clone();
            group.members[i].spawn(
                &home,
                &[
                    "--join", &token, "--server", &server, "--name", &name, "--listen", &listen,
                ],
            );
            group.wait_serving(i);
        }
        wait::wait_until("three voters", DEADLINE, || {
            group.members.iter().all(|m| {
                group
                    .client
                    .view(&m.config)
                    .is_some_and(|rows| rows.iter().filter(|r| r.voter).count() == 3)
            })
        });
        group.leader();
        Some(group)
    }

    /// Writes a client config listing the members `which`, in that order, to `path`.
    fn save_config(&self, which: &[usize], path: &Path) {
        let controllers: Vec<(&str, SocketAddr)> = which
            .iter()
            .map(|&i| (self.members[i].name.as_str(), self.members[i].listen))
            .collect();
        save_config(&self.home.join(".moor/config"), &controllers, path);
    }

    /// A client config listing the members `which`, in that order.
    pub fn config_for(&self, which: &[usize]) -> PathBuf {
        let names: Vec<&str> = which
            .iter()
            .map(|&i| self.members[i].name.as_str())
            .collect();
        let path = self.scratch.dir().join(format!("{}.conf", names.join("+")));
        self.save_config(which, &path);
        path
    }

    /// Configs listing all three members, each starting with a different one: a stream
    /// of commands spread over them does not always try a dead member first.
    pub fn rotations(&self) -> Vec<PathBuf> {
        vec![
            self.config_for(&[0, 1, 2]),
            self.config_for(&[1, 2, 0]),
            self.config_for(&[2, 0, 1]),
        ]
    }

    /// The index of the member called `name`.
    pub fn index(&self, name: &str) -> usize {
        self.members
            .iter()
            .position(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member {name}"))
    }

    /// Waits until member `i` answers (linearizable) reads and, if it joined, the group has
    /// admitted it (its pending join record is gone).
    pub fn wait_serving(&self, i: usize) {
        let m = &self.members[i];
        let pending = m.data.join("controller/join.json");
        wait::wait_until(
            &format!("{} to answer as a member", m.name),
            DEADLINE,
            || {
                !pending.exists()
                    && self
                        .client
                        .run(&m.config, &["get", "ns"], None)
                        .status
                        .success()
            },
        );
    }

    /// The leader that every running member names, once they agree (after an election).
    pub fn leader(&self) -> usize {
        wait::wait_for(
            "the running controllers to agree on a running leader",
            DEADLINE,
            || self.agreed_leader(&self.running()),
        )
    }

    /// The leader the members `which` all name, if they do and it is running.
    pub fn agreed_leader(&self, which: &[usize]) -> Option<usize> {
        let mut leader: Option<String> = None;
        for &i in which {
            let name = leader_in(&self.client.view(&self.members[i].config)?)?;
            if *leader.get_or_insert_with(|| name.clone()) != name {
                return None;
            }
        }
        let i = self.index(&leader?);
        self.members[i].is_running().then_some(i)
    }

    /// The indexes of the members that run.
    pub fn running(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].is_running())
            .collect()
    }

    /// Starts member `i` again from its data directory (a restart needs no flags).
    pub fn start(&mut self, i: usize) {
        let home = self.home.clone();
        self.members[i].spawn(&home, &[]);
    }

    /// Waits until a restarted member `i` follows the leader the others agree on and
    /// answers linearizable reads.
    pub fn wait_back(&self, i: usize) {
        let others: Vec<usize> = self.running().into_iter().filter(|&o| o != i).collect();
        let m = &self.members[i];
        wait::wait_until(
            &format!("{} to follow the leader again", m.name),
            DEADLINE,
            || {
                let Some(leader) = self.agreed_leader(&others) else {
                    return false;
                };
                self.client
                    .view(&m.config)
                    .and_then(|rows| leader_in(&rows))
                    .is_some_and(|name| name == self.members[leader].name)
                    && self
                        .client
                        .run(&m.config, &["get", "ns"], None)
                        .status
                        .success()
            },
        );
    }

    /// The ConfigMaps as the group holds them, read linearizably through any member.
    pub fn committed(&self) -> BTreeMap<String, Stored> {
        wait::wait_for("a linearizable read", DEADLINE, || {
            self.client.configmaps(&self.all, false)
        })
    }

    /// Waits until every running member's own copy (`--stale`) equals `expected`;
    /// panics showing the difference if one never does.
    pub fn wait_converged(&self, expected: &BTreeMap<String, Stored>) {
        for i in self.running() {
            let m = &self.members[i];
            let mut last = None;
            let same = wait::holds_within(DEADLINE, || {
                last = self.client.configmaps(&m.config, true);
                last.as_ref() == Some(expected)
            });
            assert!(
                same,
                "{}'s copy never matched the committed state:\n{}\nits log:\n{}",
                m.name,
                describe_difference(expected, last.as_ref()),
                tail(&m.log(), 40)
            );
        }
    }

    /// The last lines of every member's log, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("== {} ==\n{}", m.name, tail(&m.log(), 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// What differs between the expected ConfigMaps and a member's copy.
pub fn describe_difference(
    expected: &BTreeMap<String, Stored>,
    got: Option<&BTreeMap<String, Stored>>,
) -> String {
    let Some(got) = got else {
        return "the read failed".into();
    };
    let mut lines = Vec::new();
    for (name, want) in expected {
        match got.get(name) {
            None => lines.push(format!("missing {name}")),
            Some(have) if have != want => lines.push(format!("{name}: {have:?}, want {want:?}")),
            Some(_) => {}
        }
    }
    for name in got.keys().filter(|n| !expected.contains_key(*n)) {
        lines.push(format!("extra {name}"));
    }
    let shown = lines.len().min(20);
    let more = lines.len() - shown;
    lines.truncate(shown);
    if more > 0 {
        lines.push(format!("… and {more} more"));
    }
    lines.join("\n")
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One write of the [`Writer`]: which object, when, and whether it was acknowledged.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub n: u32,
    pub name: String,
    pub started: Instant,
    pub ended: Instant,
    /// Exit 0: the group committed it. Anything else: it may or may not have been.
    pub acked: bool,
    pub code: Option<i32>,
    pub stderr: String,
}

/// A thread that applies ConfigMaps `<prefix>-00001`, `-00002`, … (holding their number),
/// one after the other, through the configs it was given in turn, until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Attempt>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(client: Client, configs: Vec<PathBuf>, prefix: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, log, prefix) = (Arc::clone(&stop), Arc::clone(&log), prefix.to_string());
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let name = format!("{prefix}-{n:05}");
                    let config = &configs[n as usize % configs.len()];
                    let started = Instant::now();
                    let ran = client.write(config, &name, &n.to_string());
                    let attempt = Attempt {
                        n,
                        name,
                        started,
                        ended: Instant::now(),
                        acked: ran.status.success(),
                        code: ran.code(),
                        stderr: ran.stderr,
                    };
                    lock(&log).push(attempt);
                    // Room for the controllers on a small machine; still a steady stream.
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Writer {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// The attempts so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        lock(&self.log).clone()
    }

    /// Waits for an acknowledged write that started at or after `since`; returns when it
    /// was acknowledged.
    pub fn wait_acked_after(&self, since: Instant, what: &str) -> Instant {
        wait::wait_for(what, DEADLINE, || {
            lock(&self.log)
                .iter()
                .find(|a| a.acked && a.started >= since)
                .map(|a| a.ended)
        })
    }

    /// Stops the thread after its current write; returns every attempt.
    pub fn stop(mut self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
        self.attempts()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a writer's attempts came to, against the state the group holds.
#[derive(Debug, Default)]
pub struct Tally {
    pub acked: usize,
    /// Failed or timed out: the outcome is unknown to the client.
    pub unknown: usize,
    /// Of the unknown ones, those the group did apply.
    pub unknown_applied: usize,
}

/// Checks that every acknowledged write is in `held` with its value, and that `held`
/// has no object of `prefix` nobody tried to write.
pub fn check_writes(attempts: &[Attempt], prefix: &str, held: &BTreeMap<String, Stored>) -> Tally {
    let mut tally = Tally::default();
    let mut lost = Vec::new();
    for a in attempts {
        let stored = held.get(&a.name);
        if a.acked {
            tally.acked += 1;
            if stored.map(|s| s.value.as_str()) != Some(a.n.to_string().as_str()) {
                lost.push(format!("{} (acknowledged, now {stored:?})", a.name));
            }
        } else {
            tally.unknown += 1;
            if let Some(s) = stored {
                assert_eq!(s.value, a.n.to_string(), "{} has a wrong value", a.name);
                tally.unknown_applied += 1;
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged writes are lost or wrong: {}",
        lost.len(),
        lost.join(", ")
    );
    let tried: std::collections::BTreeSet<&str> =
        attempts.iter().map(|a| a.name.as_str()).collect();
    let strays: Vec<&String> = held
        .keys()
        .filter(|k| k.starts_with(&format!("{prefix}-")) && !tried.contains(k.as_str()))
        .collect();
    assert!(strays.is_empty(), "objects nobody wrote: {strays:?}");
    tally
}

/// Durations as `1.42 s`, for summaries.
pub fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
