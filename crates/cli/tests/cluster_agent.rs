//! A node agent as a real process beside a controller: it joins with an agent token,
//! registers its Node and heartbeats; the node goes NotReady when the agent is killed
//! and Ready when it comes back; heartbeats write nothing; the agent's certificate reads
//! what its node may read and no more; `moor node rm` revokes it, and the running agent
//! stops with a clear error.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tests::moor::{Ran, finish};
use tests::scratch::Scratch;
use tests::wait;

const DEADLINE: Duration = Duration::from_secs(30);

/// A process killed when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

struct Site {
    scratch: Scratch,
    home: PathBuf,
    listen: String,
}

impl Site {
    fn new(test: &str) -> Site {
        let scratch = Scratch::new(test);
        let home = scratch.dir().join("home");
        std::fs::create_dir_all(&home).expect("mkdir home");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a free port");
        let listen = socket.local_addr().expect("local addr").to_string();
        Site {
            scratch,
            home,
            listen,
        }
    }

    fn spawn(&self, what: &str, args: &[&str]) -> Daemon {
        let log = self.scratch.dir().join(format!("{what}.log"));
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_moor"))
            .args(args)
            .env("HOME", &self.home)
            .env_remove("MOOR_CONFIG")
            .env_remove("MOOR_JOIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("spawn moor");
        Daemon { child, log }
    }

    fn controller(&self) -> Daemon {
        let data = self.scratch.dir().join("controller");
        let data = data.to_str().expect("utf-8 path");
        let listen = self.listen.clone();
        self.spawn(
            "controller",
            &[
                "--data-dir",
                data,
                "controller",
                "--init",
                "--name",
                "ctl-1",
                "--listen",
                &listen,
                "--heartbeat-interval",
                "1s",
                "--node-grace",
                "3s",
            ],
        )
    }

    fn agent_dir(&self, name: &str) -> PathBuf {
        self.scratch.dir().join(format!("agent-{name}"))
    }

    fn agent(&self, name: &str, join: Option<&str>) -> Daemon {
        let data = self.agent_dir(name);
        let mut args = vec![
            "--data-dir".to_string(),
            data.display().to_string(),
            "agent".into(),
        ];
        if let Some(token) = join {
            args.extend([
                "--join".into(),
                token.into(),
                "--server".into(),
                self.listen.clone(),
                "--name".into(),
                name.into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn(&format!("agent-{name}"), &args)
    }

    fn agent_config(&self, name: &str) -> String {
        self.agent_dir(name)
            .join("agent/agent.conf")
            .display()
            .to_string()
    }

    fn moor(&self, args: &[&str], stdin: Option<&str>) -> Ran {
        let mut child = Command::new(env!("CARGO_BIN_EXE_moor"))
            .args(args)
            .env("HOME", &self.home)
            .env_remove("MOOR_CONFIG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn moor");
        if let Some(text) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        finish(child, &format!("moor {}", args.join(" ")))
    }

    fn ok(&self, args: &[&str]) -> String {
        let ran = self.moor(args, None);
        assert!(
            ran.status.success(),
            "moor {}: {}\n{}",
            args.join(" "),
            ran.stdout,
            ran.stderr
        );
        ran.stdout
    }

    /// The STATUS column of `moor node ls` for `name`, if listed.
    fn node_status(&self, name: &str) -> Option<String> {
        let out = self.moor(&["node", "ls"], None);
        out.stdout
            .lines()
            .skip(1)
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    }
}

fn write_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/PID/io")
}

fn resource_version(yaml: &str) -> String {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("resourceVersion: "))
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
        .expect("a resourceVersion")
}

const WORKLOADS: &str = "\
apiVersion: v1
kind: Secret
metadata: {name: edge-1-key}
stringData: {key: one}
---
apiVersion: v1
kind: Secret
metadata: {name: edge-2-key}
stringData: {key: two}
---
apiVersion: v1
kind: Pod
metadata: {name: on-1}
spec:
  nodeName: edge-1
  containers:
  - name: app
    image: busybox
    env:
    - name: KEY
      valueFrom: {secretKeyRef: {name: edge-1-key, key: key}}
---
apiVersion: v1
kind: Pod
metadata: {name: on-2}
spec:
  nodeName: edge-2
  containers:
  - name: app
    image: busybox
    env:
    - name: KEY
      valueFrom: {secretKeyRef: {name: edge-2-key, key: key}}
";

#[test]
fn an_agent_joins_heartbeats_reads_its_own_and_is_revoked_by_node_rm() {
    let site = Site::new("cluster-agent");
    let controller = site.controller();
    wait::wait_until("the controller to answer", DEADLINE, || {
        site.moor(&["get", "ns"], None).status.success()
    });
    let token = site
        .ok(&["token", "create", "--role", "agent", "--uses", "2"])
        .trim()
        .to_string();
    let mut agent = site.agent("edge-1", Some(&token));
    wait::wait_until("edge-1 to be Ready", DEADLINE, || {
        site.node_status("edge-1").as_deref() == Some("Ready")
    });
    let conf = site.agent_config("edge-1");
    let mode = std::fs::metadata(&conf).expect("agent.conf");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    let wide = site.ok(&["node", "ls"]);
    assert!(
        wide.contains("INTERNAL-IP") && wide.contains("127.0.0.1"),
        "{wide}"
    );

    // Heartbeats keep it Ready and write nothing: over a window longer than the grace
    // period, the Node's version stays and the controller's disk writes do not move.
    let before = resource_version(&site.ok(&["get", "node", "edge-1", "-o", "yaml"]));
    let written = write_bytes(controller.child.id());
    std::thread::sleep(Duration::from_secs(5));
    let after = site.ok(&["get", "node", "edge-1", "-o", "yaml"]);
    assert_eq!(
        resource_version(&after),
        before,
        "heartbeats changed the node"
    );
    assert!(
        after.contains("status: 'True'")
            || after.contains("status: \"True\"")
            || after.contains("status: True"),
        "{after}"
    );
    assert_eq!(
        write_bytes(controller.child.id()),
        written,
        "heartbeats wrote to disk"
    );

    // What its node may read: its pod and that pod's secret, not another node's.
    let applied = site.moor(&["apply", "-f", "-"], Some(WORKLOADS));
    assert!(applied.status.success(), "{}", applied.stderr);
    let pods = site.ok(&["--config", &conf, "get", "pods", "-o", "name"]);
    assert_eq!(pods.trim(), "pod/on-1", "{pods}");
    site.ok(&["--config", &conf, "get", "secret", "edge-1-key"]);
    let other = site.moor(&["--config", &conf, "get", "secret", "edge-2-key"], None);
    assert_eq!(other.code(), Some(1), "{}\n{}", other.stdout, other.stderr);
    assert!(
        other.stderr.contains("agent edge-1") && other.stderr.contains("edge-2-key"),
        "{}",
        other.stderr
    );
    let write = site.moor(&["--config", &conf, "apply", "-f", "-"], Some(WORKLOADS));
    assert_eq!(
        write.code(),
        Some(1),
        "an agent wrote pods: {}",
        write.stdout
    );

    // Killed: NotReady (Unknown) after the grace period; back: Ready again.
    agent.child.kill().expect("kill the agent");
    agent.child.wait().expect("reap the agent");
    wait::wait_until("edge-1 to be NotReady", DEADLINE, || {
        site.node_status("edge-1").as_deref() == Some("NotReady")
    });
    let lost = site.ok(&["get", "node", "edge-1", "-o", "yaml"]);
    assert!(lost.contains("NodeStatusUnknown"), "{lost}");
    agent = site.agent("edge-1", None);
    wait::wait_until("edge-1 to be Ready again", DEADLINE, || {
        site.node_status("edge-1").as_deref() == Some("Ready")
    });

    // Removed: its certificate is refused, the running agent stops and says why.
    let removed = site.ok(&["node", "rm", "edge-1"]);
    assert!(removed.contains("node edge-1 removed"), "{removed}");
    let status = wait::wait_for("the agent to stop", DEADLINE, || {
        agent.child.try_wait().expect("try_wait")
    });
    assert!(!status.success(), "the removed agent exited 0");
    assert!(agent.log().contains("removed"), "{}", agent.log());
    let refused = site.moor(&["--config", &conf, "get", "ns"], None);
    assert!(
        !refused.status.success(),
        "a revoked certificate was served"
    );
    assert!(refused.stderr.contains("revoked"), "{}", refused.stderr);
    assert_eq!(site.node_status("edge-1"), None);
    let again = site.moor(&["node", "rm", "edge-1"], None);
    assert_eq!(again.code(), Some(1), "{}", again.stderr);
    assert!(again.stderr.contains("not found"), "{}", again.stderr);

    // The name is free for a new join, with a new certificate.
    std::fs::remove_dir_all(site.agent_dir("edge-1")).expect("wipe the agent's data");
    let _back = site.agent("edge-1", Some(&token));
    wait::wait_until("edge-1 to be Ready after joining again", DEADLINE, || {
        site.node_status("edge-1").as_deref() == Some("Ready")
    });
    drop(controller);
}

#[test]
fn bad_agent_starts_are_clear_errors() {
    let site = Site::new("cluster-agent-bad");
    let _controller = site.controller();
    wait::wait_until("the controller to answer", DEADLINE, || {
        site.moor(&["get", "ns"], None).status.success()
    });
    // Not joined yet.
    let data = site.agent_dir("nobody");
    let ran = site.moor(
        &["--data-dir", data.to_str().expect("utf-8"), "agent"],
        None,
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("join first"), "{}", ran.stderr);
    // A controller token does not admit an agent.
    let token = site
        .ok(&["token", "create", "--role", "controller"])
        .trim()
        .to_string();
    let listen = site.listen.clone();
    let ran = site.moor(
        &[
            "--data-dir",
            data.to_str().expect("utf-8"),
            "agent",
            "--join",
            &token,
            "--server",
            &listen,
            "--name",
            "edge-9",
        ],
        None,
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("admits role controller"),
        "{}",
        ran.stderr
    );
    assert!(!Path::new(&site.agent_config("nobody")).exists());
}
