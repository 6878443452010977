//! A node agent as a real process beside a controller: it joins with an agent token,
//! registers its Node and heartbeats; the node goes NotReady when the agent is killed
//! and Ready when it comes back; heartbeats write nothing; the agent's certificate reads
//! what its node may read and no more; `moor node rm` revokes it, and the running agent
//! stops with a clear error.

#[path = "common/cluster_util.rs"]
mod cluster_util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_util::{Controller, Site};
use tests::daemon::{Daemon, free_local_addr};
use tests::moor::Ran;
use tests::wait;

const DEADLINE: Duration = Duration::from_secs(30);

/// A site with one controller (at `listen`) and the agents that join it.
struct Edge {
    site: Site,
    listen: String,
}

impl Edge {
    fn new(test: &str) -> Edge {
        Edge {
            site: Site::new(test),
            listen: free_local_addr(),
        }
    }

    /// ctl-1, with a short heartbeat interval and grace period, once it answers.
    fn controller(&self) -> Controller {
        let c = self.site.controller(
            "ctl-1",
            Some(&self.listen),
            &["--init", "--heartbeat-interval", "1s", "--node-grace", "3s"],
        );
        self.site.wait_answering();
        c
    }

    fn agent_dir(&self, name: &str) -> PathBuf {
        self.site.dir().join(format!("agent-{name}"))
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
        let log = self.site.dir().join(format!("agent-{name}.log"));
        Daemon::spawn(&mut self.site.command(&args), &log)
    }

    fn agent_config(&self, name: &str) -> String {
        self.agent_dir(name)
            .join("agent/agent.conf")
            .display()
            .to_string()
    }

    fn moor(&self, args: &[&str], stdin: Option<&str>) -> Ran {
        self.site.moor_with(args, stdin.map(str::as_bytes))
    }

    fn ok(&self, args: &[&str]) -> String {
        self.site.ok(args)
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
    let site = Edge::new("cluster-agent");
    let controller = site.controller();
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
    let written = write_bytes(controller.id());
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
        write_bytes(controller.id()),
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
    agent.kill();
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
    let status = wait::wait_for("the agent to stop", DEADLINE, || agent.try_wait());
    assert!(!status.success(), "the removed agent exited 0");
    assert!(agent.output().contains("removed"), "{}", agent.output());
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
    let site = Edge::new("cluster-agent-bad");
    let _controller = site.controller();
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
