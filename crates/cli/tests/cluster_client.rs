//! The client against real controller processes: `moor get --watch` prints the list and
//! then every change, resumes across a controller restart (listing again when the history
//! is gone) and across the death of the controller it watched, and ends quietly on SIGINT
//! or a closed stdout or stdin; `moor describe` shows objects (never a secret's value);
//! a credential file naming one controller learns the other two from the membership, so
//! commands and watches go on after that one dies.

#[path = "common/cluster_util.rs"]
mod cluster_util;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_util::Site;
use tests::daemon::free_udp_port;
use tests::moor::finish;
use tests::wait;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/fixtures");
const DEADLINE: Duration = Duration::from_secs(60);

/// What these tests add to a [`Site`]: applying manifests, and watches.
trait ClientCommands {
    fn apply(&self, config: Option<&Path>, yaml: &str);
    fn watch(&self, args: &[&str], stdin: Stdio) -> Watcher;
}

impl ClientCommands for Site {
    fn apply(&self, config: Option<&Path>, yaml: &str) {
        let mut args = Vec::new();
        let config = config.map(|c| c.display().to_string());
        if let Some(c) = &config {
            args.extend(["--config", c.as_str()]);
        }
        args.extend(["apply", "-f", "-"]);
        let ran = self.moor_with(&args, Some(yaml.as_bytes()));
        assert!(
            ran.status.success(),
            "apply: {}\n{}",
            ran.stdout,
            ran.stderr
        );
    }

    /// Starts `moor ARGS` (a watch) reading its stdout line by line.
    fn watch(&self, args: &[&str], stdin: Stdio) -> Watcher {
        let err = self.dir().join(format!("watch-{}.err", free_udp_port()));
        let mut child = self
            .command(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn moor get --watch");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Watcher {
            child,
            lines,
            err,
            reader: Some(reader),
        }
    }
}

/// A running `moor get --watch`, killed when dropped.
struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    err: PathBuf,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits until a line holds every one of `words`.
    fn wait_line(&self, words: &[&str]) {
        wait::wait_until(&format!("a watch line with {words:?}"), DEADLINE, || {
            self.count(words) > 0
        });
    }

    fn count(&self, words: &[&str]) -> usize {
        self.lines()
            .iter()
            .filter(|l| words.iter().all(|w| l.split_whitespace().any(|c| c == *w)))
            .count()
    }

    fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the process to end; its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        let status = wait::wait_for("the watch to end", DEADLINE, || {
            self.child.try_wait().expect("try_wait")
        });
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status.code()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cm(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: '{value}'}}\n")
}

/// The value after `label` on the first line starting with it.
fn field<'a>(page: &'a str, label: &str) -> &'a str {
    page.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{label:?} missing:\n{page}"))
}

#[test]
fn watch_prints_changes_resumes_after_a_restart_and_stops_quietly() {
    let lab = Site::new("client-watch");
    let mut ctl = lab.init_controller(&[]);
    lab.apply(None, &cm("first", "1"));

    let mut w = lab.watch(
        &["get", "cm", "--watch", "--output-watch-events"],
        Stdio::null(),
    );
    w.wait_line(&["EVENT", "NAME", "DATA", "AGE"]);
    w.wait_line(&["ADDED", "first"]);
    lab.apply(None, &cm("second", "1"));
    w.wait_line(&["ADDED", "second"]);
    lab.apply(None, &cm("second", "2"));
    w.wait_line(&["MODIFIED", "second"]);
    assert!(lab.ok(&["delete", "cm", "first"]).contains("deleted"));
    w.wait_line(&["DELETED", "first"]);
    // Another kind moves the revision on without this watch seeing it.
    lab.apply(
        None,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
    );

    // A restart: the new process's history begins after the watch's last revision, so
    // the watch lists again (every object shows up once more) and goes on.
    ctl.kill();
    ctl.start(&lab, &[]);
    wait::wait_until("the relisted rows", DEADLINE, || {
        w.count(&["ADDED", "second"]) == 2
    });
    lab.apply(None, &cm("third", "1"));
    w.wait_line(&["ADDED", "third"]);
    let lines = w.lines();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("EVENT")).count(),
        1,
        "one header:\n{lines:#?}"
    );
    assert_eq!(w.count(&["ADDED", "first"]), 1, "{lines:#?}");
    assert_eq!(w.count(&["MODIFIED", "second"]), 1, "{lines:#?}");
    assert_eq!(w.count(&["ADDED", "third"]), 1, "{lines:#?}");
    assert!(
        w.stderr().contains("watch interrupted"),
        "the restart is reported: {}",
        w.stderr()
    );

    w.signal(libc::SIGINT);
    assert_eq!(w.exit_code(), Some(0), "stderr: {}", w.stderr());

    // JSON lines, and a watch of one object by name.
    let mut one = lab.watch(&["get", "cm", "third", "-w", "-o", "json"], Stdio::null());
    wait::wait_until("the first JSON line", DEADLINE, || !one.lines().is_empty());
    lab.apply(None, &cm("second", "3"));
    lab.apply(None, &cm("third", "2"));
    wait::wait_until("the second JSON line", DEADLINE, || one.lines().len() == 2);
    for line in one.lines() {
        let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(value["metadata"]["name"], "third", "{line}");
    }
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&one.lines()[1]).expect("json")["data"]["v"],
        "2"
    );
    one.signal(libc::SIGTERM);
    assert_eq!(one.exit_code(), Some(0), "stderr: {}", one.stderr());

    // A closed stdin pipe (an ssh session ending) ends a watch quietly.
    let mut fed = lab.watch(&["get", "ns", "-w"], Stdio::piped());
    fed.wait_line(&["default", "Active"]);
    let stdin: Option<ChildStdin> = fed.child.stdin.take();
    drop(stdin);
    assert_eq!(fed.exit_code(), Some(0), "stderr: {}", fed.stderr());

    // Refusals end the watch with their exit code.
    let gone = lab.moor(&["get", "cm", "nosuch", "--watch"]);
    assert_eq!(gone.code(), Some(1), "{}", gone.stderr);
    assert!(gone.stderr.contains("not found"), "{}", gone.stderr);
    let bad = lab.moor(&["get", "cm", "-w", "-l", "a in (("]);
    assert_eq!(bad.code(), Some(1), "{}", bad.stderr);
}

#[test]
fn a_watch_ends_when_its_output_is_closed() {
    let lab = Site::new("client-watch-pipe");
    let _ctl = lab.init_controller(&[]);
    // `moor get ns -w | head -1`: head exits after one line, and the watch after it.
    let mut child = lab
        .command(&["get", "ns", "-w", "-o", "name"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read a line");
    assert_eq!(first, "namespace/default\n");
    // The reader is gone now (dropped with the BufReader).
    let ran = finish(child, "moor get ns -w after its reader left");
    assert_eq!(ran.code(), Some(0), "{}", ran.stderr);
    assert!(ran.stderr.is_empty(), "{}", ran.stderr);
}

#[test]
fn a_watch_the_certificate_may_not_make_exits_with_one() {
    let lab = Site::new("client-watch-refused");
    let ctl = lab.init_controller(&[]);
    // An agent may list the config maps its pods use, but not watch config maps.
    let ca = wire::ClusterCa::load(&ctl.data.join("pki")).expect("the cluster CA");
    let now = std::time::SystemTime::now();
    let node = ca
        .issue(wire::Role::Agent, "edge-01", now, Duration::from_secs(3600))
        .expect("an agent certificate");
    let mut config = wire::ClientConfig::load(&lab.admin_config()).expect("admin config");
    config.identity = node.identity().expect("identity");
    config.node = node;
    let path = lab.dir().join("agent.conf");
    config.save(&path).expect("save");
    let ran = lab.moor(&["--config", &path.display().to_string(), "get", "cm", "-w"]);
    assert_eq!(ran.code(), Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("may not watch"), "{}", ran.stderr);
}

#[test]
fn describe_shows_objects_for_people_and_never_a_secret_value() {
    let lab = Site::new("client-describe");
    let _ctl = lab.init_controller(&[]);
    let app = Path::new(FIXTURES).join("full-app.yaml");
    lab.ok(&["apply", "-f", &app.display().to_string()]);

    let page = lab.ok(&["describe", "deployment", "web", "-n", "shop"]);
    assert_eq!(field(&page, "Name:"), "web");
    assert_eq!(field(&page, "Namespace:"), "shop");
    assert!(
        field(&page, "Replicas:").starts_with("2 desired |"),
        "{page}"
    );
    assert_eq!(field(&page, "StrategyType:"), "RollingUpdate");
    assert_eq!(field(&page, "    Image:"), "registry.example.com/web:1.2.3");
    assert!(page.contains("\nPod Template:\n"), "{page}");
    // The values of a run of fields start in one column.
    let column = |label: &str| {
        let line = page
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_default();
        line.len() - line[label.len()..].trim_start().len()
    };
    assert_eq!(column("Name:"), column("RollingUpdateStrategy:"), "{page}");
    let uid = field(&page, "UID:");
    let yaml = lab.ok(&["get", "deploy", "web", "-n", "shop", "-o", "yaml"]);
    assert!(yaml.contains(&format!("uid: {uid}")), "{yaml}");

    let secret = lab.ok(&["describe", "secret", "web-tls", "-n", "shop"]);
    assert!(secret.contains("tls.key:"), "{secret}");
    assert!(secret.contains("3 bytes"), "{secret}");
    for value in ["a2V5", "Y2VydA", "cert"] {
        assert!(!secret.contains(value), "{value} shown:\n{secret}");
    }

    // Without a name: every match, one page each.
    let all = lab.ok(&["describe", "cm", "-n", "shop"]);
    assert_eq!(
        all.matches("\nName:").count() + usize::from(all.starts_with("Name:")),
        1
    );
    assert!(all.contains("nginx.conf:\n----\n"), "{all}");
    let none = lab.moor(&["describe", "pods", "-l", "app=none"]);
    assert_eq!(none.code(), Some(0), "{}", none.stderr);
    assert!(
        none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );

    // Not found and unknown kinds: the same as get.
    let missing = lab.moor(&["describe", "deploy", "nosuch"]);
    let get = lab.moor(&["get", "deploy", "nosuch"]);
    assert_eq!(missing.code(), Some(1), "{}", missing.stderr);
    assert_eq!(missing.stderr, get.stderr);
    let unknown = lab.moor(&["describe", "gadgets"]);
    assert_eq!(unknown.code(), Some(1), "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("unknown kind"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn the_controller_list_follows_the_membership_and_commands_fail_over() {
    let lab = Site::new("client-members");
    let mut ctl1 = lab.init_controller(&[]);
    let token = lab
        .ok(&["token", "create", "--role", "controller", "--uses", "2"])
        .trim()
        .to_string();
    let ctl2 = lab.controller("ctl-2", None, &["--join", &token, "--server", &ctl1.listen]);
    let ctl3 = lab.controller("ctl-3", None, &["--join", &token, "--server", &ctl1.listen]);
    for c in [&ctl2, &ctl3] {
        let pending = c.data.join("controller/join.json");
        let only = lab.config_for(c, &format!("{}-probe.conf", c.name));
        wait::wait_until(&format!("{} to be a member", c.name), DEADLINE, || {
            !pending.exists()
                && lab
                    .moor(&["--config", &only.display().to_string(), "get", "ns"])
                    .status
                    .success()
        });
    }
    wait::wait_until("three voters", DEADLINE, || {
        lab.ok(&["controller", "ls"])
            .lines()
            .filter(|l| l.contains(" voter"))
            .count()
            == 3
    });

    // A file naming only ctl-1 learns the other two from one command.
    let conf = lab.config_for(&ctl1, "one.conf");
    let conf_arg = conf.display().to_string();
    lab.ok(&["--config", &conf_arg, "get", "ns"]);
    let learnt = wire::ClientConfig::load(&conf).expect("load");
    let mut names: Vec<&str> = learnt.controllers.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ctl-1", "ctl-2", "ctl-3"]);
    assert_eq!(
        learnt.controllers[0].name, "ctl-1",
        "the file's order first"
    );
    let meta = std::fs::metadata(&conf).expect("stat");
    assert_eq!(meta.mode() & 0o777, 0o600);
    // Nothing new: nothing written.
    lab.ok(&["--config", &conf_arg, "get", "ns"]);
    assert_eq!(std::fs::metadata(&conf).expect("stat").ino(), meta.ino());

    // A watch started from another file naming only ctl-1 follows the group too.
    let watch_conf = lab.config_for(&ctl1, "watch.conf");
    let watch_arg = watch_conf.display().to_string();
    let w = lab.watch(
        &[
            "--config",
            &watch_arg,
            "get",
            "cm",
            "-w",
            "--output-watch-events",
        ],
        Stdio::null(),
    );
    // (Listed or watched, depending on who is first, it shows up once as ADDED.)
    lab.apply(Some(&conf), &cm("before", "1"));
    w.wait_line(&["ADDED", "before"]);

    // ctl-1 dies. Commands go to the others; the watch resumes there.
    ctl1.kill();
    wait::wait_until("a command without ctl-1", DEADLINE, || {
        lab.moor(&["--config", &conf_arg, "get", "ns"])
            .status
            .success()
    });
    lab.apply(Some(&conf), &cm("after", "1"));
    w.wait_line(&["ADDED", "after"]);
    let lines = w.lines();
    assert_eq!(w.count(&["ADDED", "after"]), 1, "{lines:#?}");
    assert_eq!(w.count(&["ADDED", "before"]), 1, "{lines:#?}");
    assert!(w.stderr().contains("watch interrupted"), "{}", w.stderr());
    let listed = lab.ok(&["--config", &conf_arg, "get", "cm", "-o", "name"]);
    assert!(listed.contains("configmap/after"), "{listed}");
}
