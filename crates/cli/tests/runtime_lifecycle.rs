//! `moor runtime` through a container's whole life, as a user of runc drives it: run in
//! the foreground and detached, create/start, pause/resume, kill, delete, exec, terminals
//! over a console socket, signal forwarding, preserved descriptors, list, the log file,
//! spec, --no-pivot and separate roots. Every test checks from the host (state, /proc,
//! cgroup files) and, where it matters, from inside with the checker.

#[path = "common/lifecycle_util.rs"]
mod lifecycle_util;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;

use lifecycle_util::{DEADLINE, Env, Lines, dir};
use serde_json::{Value, json};
use tests::checker::Report;
use tests::moor::{finish, run_to_files};
use tests::{console, host, wait};

fn report(stdout: &str) -> Report {
    Report::parse(stdout).unwrap_or_else(|e| panic!("checker output: {e}\n{stdout}"))
}

/// Waits until the file at `path` exists and holds a complete checker report (written
/// to a temporary name and renamed by the container).
fn wait_report(path: &std::path::Path) -> Report {
    wait::wait_until(&format!("the report {}", path.display()), DEADLINE, || {
        path.exists()
    });
    report(&std::fs::read_to_string(path).expect("read report"))
}

#[test]
fn foreground_run_returns_the_exit_code_and_leaves_nothing() {
    let Some(env) = Env::new("fg-run") else {
        return;
    };
    let cases: [(&str, &[&str], i32); 3] = [
        ("zero", &["true"], 0),
        (
            "three",
            &["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
            3,
        ),
        // Without a PID namespace, so that the shell is not an init immune to its own
        // SIGKILL.
        ("killed", &["sh", "-c", "kill -9 $$"], 128 + 9),
    ];
    for (name, args, code) in cases {
        let mut bundle = env.bundle(name, args);
        if name == "killed" {
            bundle.set(
                "/linux/namespaces",
                json!([{"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
            );
            bundle.save();
        }
        let id = env.scratch.name(name);
        let ran = env.moor.run(&["run", "--bundle", dir(&bundle), &id]);
        assert_eq!(ran.code(), Some(code), "{name}: {ran:?}");
        if name == "three" {
            assert_eq!(ran.stdout, "to-stdout\n");
            assert_eq!(ran.stderr, "to-stderr\n");
        }
        env.assert_gone(&id, name);
    }
}

#[test]
fn detached_run_reports_the_host_pid_and_kill_stops_it() {
    let Some(env) = Env::new("detached") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.scratch.name("c");
    env.run_detached(&bundle, &id);
    let state = env.moor.state(&id);
    assert_eq!(state["status"], "running");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["bundle"], dir(&bundle));
    let pid = env.pid(&id);
    assert!(host::alive(pid), "init {pid} is not running");
    // The host PID of a process that is PID 1 in a namespace of its own.
    assert_eq!(host::ns_pids(pid).and_then(|p| p.last().copied()), Some(1));
    assert_eq!(
        host::ns_pids(pid).and_then(|p| p.first().copied()),
        Some(pid)
    );
    assert!(host::cgroup_pids(&env.group("c")).contains(&pid));

    // sleep, as PID 1 without a handler, ignores TERM; KILL cannot be ignored.
    env.moor.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    assert_eq!(env.moor.state(&id)["pid"], 0);
    assert!(!host::alive(pid));
    env.moor.ok(&["delete", &id]);
    env.assert_gone(&id, "c");
}

#[test]
fn create_holds_the_program_until_start() {
    let Some(env) = Env::new("create-start") else {
        return;
    };
    let script = "echo started > /out/marker; exec sleep 1000";
    let (bundle, out) = env.bundle_with_out("c", &["sh", "-c", script]);
    let id = env.scratch.name("c");
    env.create(&bundle, &id);
    assert_eq!(env.moor.status(&id), "created");
    let pid = env.pid(&id);
    assert!(host::alive(pid), "a created container's init must exist");
    assert_eq!(host::ns_pids(pid).and_then(|p| p.last().copied()), Some(1));
    let marker = out.join("marker");
    assert!(!marker.exists(), "the program ran before start");
    assert!(env.listed().contains(&id));

    env.moor.ok(&["start", &id]);
    wait::wait_until("the program to write its marker", DEADLINE, || {
        std::fs::read_to_string(&marker).is_ok_and(|m| m == "started\n")
    });
    assert_eq!(env.moor.status(&id), "running");
    assert_eq!(env.pid(&id), pid, "start keeps the init's PID");

    env.moor.ok(&["kill", &id, "SIGKILL"]);
    env.wait_status(&id, "stopped");
    env.moor.ok(&["delete", &id]);
    env.assert_gone(&id, "c");
}

#[test]
fn pid_file_holds_the_init_pid_for_absolute_and_relative_paths() {
    let Some(env) = Env::new("pid-file") else {
        return;
    };
    let bundle = env.bundle("abs", &["true"]);
    let id = env.scratch.name("abs");
    let abs = env.path("abs.pid");
    env.detached(
        &[
            "create",
            "--bundle",
            dir(&bundle),
            "--pid-file",
            abs.to_str().expect("utf-8"),
            &id,
        ],
        "abs",
    );
    let written = std::fs::read_to_string(&abs).expect("absolute pid file");
    assert_eq!(written.trim().parse::<i32>().ok(), Some(env.pid(&id)));

    let bundle = env.bundle("rel", &["true"]);
    let id = env.scratch.name("rel");
    let mut cmd = env.moor.command(&[
        "create",
        "--bundle",
        dir(&bundle),
        "--pid-file",
        "rel.pid",
        &id,
    ]);
    cmd.current_dir(env.scratch.dir());
    let ran = run_to_files(cmd, &env.path("rel-log"));
    assert!(
        ran.status.success(),
        "create with a relative pid file: {ran:?}"
    );
    let written = std::fs::read_to_string(env.path("rel.pid")).expect("relative pid file");
    assert_eq!(written.trim().parse::<i32>().ok(), Some(env.pid(&id)));
}

#[test]
fn pause_freezes_every_process_until_resume() {
    let Some(env) = Env::new("pause") else { return };
    let script = "while :; do echo x >> /out/count; done";
    let (bundle, out) = env.bundle_with_out("c", &["sh", "-c", script]);
    let id = env.scratch.name("c");
    let count = out.join("count");
    let size = || std::fs::metadata(&count).map(|m| m.len()).unwrap_or(0);
    env.run_detached(&bundle, &id);
    wait::wait_until("the counter to start", DEADLINE, || size() > 0);
    let group = env.group("c");
    assert_eq!(host::cgroup_frozen(&group), Some(false));

    env.moor.ok(&["pause", &id]);
    assert_eq!(env.moor.status(&id), "paused");
    wait::wait_until("the kernel to freeze the group", DEADLINE, || {
        host::cgroup_frozen(&group) == Some(true)
    });
    // Frozen means not a single write more; a few looks, each a moor command apart.
    let frozen_at = size();
    for _ in 0..3 {
        assert_eq!(env.moor.status(&id), "paused");
        assert_eq!(size(), frozen_at, "the counter moved while paused");
    }

    env.moor.ok(&["resume", &id]);
    assert_eq!(env.moor.status(&id), "running");
    wait::wait_until("the kernel to thaw the group", DEADLINE, || {
        host::cgroup_frozen(&group) == Some(false)
    });
    wait::wait_until("the counter to move again", DEADLINE, || size() > frozen_at);
    env.moor.ok(&["delete", "--force", &id]);
    env.assert_gone(&id, "c");
}

#[test]
fn kill_delivers_signals_by_name_and_number() {
    let Some(env) = Env::new("kill-signals") else {
        return;
    };
    for (name, signal, expected) in [
        ("term", "TERM", "SIGTERM"),
        ("hup", "1", "SIGHUP"),
        ("int", "SIGINT", "SIGINT"),
    ] {
        let bundle = env.bundle(name, &["moor-checker", "probe", "signal-wait"]);
        let id = env.scratch.name(name);
        env.run_detached(&bundle, &id);
        let log = env.path(&format!("{id}-log.out"));
        let read = || std::fs::read_to_string(&log).unwrap_or_default();
        wait::wait_until("the checker to be ready", DEADLINE, || {
            read().contains("probe.signal-wait=ready")
        });
        env.moor.ok(&["kill", &id, signal]);
        env.wait_status(&id, "stopped");
        assert!(
            read().contains(&format!("probe.signal={expected}\n")),
            "kill {signal}: {}",
            read()
        );
        env.moor.ok(&["delete", &id]);
    }

    // SIGUSR1 (by name, then by number) to a shell that traps it.
    let script = "trap 'echo usr1 >> /out/got' USR1; echo ready > /out/ready; \
                  while :; do sleep 0.05; done";
    let (bundle, out) = env.bundle_with_out("usr1", &["sh", "-c", script]);
    let id = env.scratch.name("usr1");
    env.run_detached(&bundle, &id);
    wait::wait_until("the trap to be set", DEADLINE, || {
        out.join("ready").exists()
    });
    let got = || std::fs::read_to_string(out.join("got")).unwrap_or_default();
    env.moor.ok(&["kill", &id, "SIGUSR1"]);
    wait::wait_until("the first SIGUSR1", DEADLINE, || got() == "usr1\n");
    env.moor.ok(&["kill", &id, &libc::SIGUSR1.to_string()]);
    wait::wait_until("the second SIGUSR1", DEADLINE, || got() == "usr1\nusr1\n");
    assert_eq!(
        env.moor.status(&id),
        "running",
        "a trapped signal is not fatal"
    );
    env.moor.ok(&["delete", "--force", &id]);
    env.assert_gone(&id, "usr1");
}

#[test]
fn kill_all_without_a_pid_namespace_reaches_every_process() {
    let Some(env) = Env::new("kill-all") else {
        return;
    };
    let script = "sleep 1000 & sleep 1001 & echo started > /out/ready; wait";
    let (mut bundle, out) = env.bundle_with_out("c", &["sh", "-c", script]);
    bundle.set(
        "/linux/namespaces",
        json!([{"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
    );
    bundle.save();
    let id = env.scratch.name("c");
    env.run_detached(&bundle, &id);
    let group = env.group("c");
    wait::wait_until("the shell and its two sleeps", DEADLINE, || {
        out.join("ready").exists() && host::cgroup_pids(&group).len() == 3
    });
    let pids = host::cgroup_pids(&group);
    let init = env.pid(&id);
    assert!(pids.contains(&init), "{pids:?} lacks the init {init}");

    env.moor.ok(&["kill", "--all", &id, "KILL"]);
    wait::wait_until("every process to die", DEADLINE, || {
        pids.iter().all(|p| !host::alive(*p))
    });
    env.wait_status(&id, "stopped");
    assert!(host::cgroup_pids(&group).is_empty());

    let again = env.moor.fails(&["kill", &id, "KILL"]);
    assert!(
        again.stderr.contains("is stopped: cannot kill it"),
        "kill of a stopped container: {}",
        again.stderr
    );
    env.moor.ok(&["delete", &id]);
    env.assert_gone(&id, "c");
}

#[test]
fn delete_refuses_a_running_container_unless_forced() {
    let Some(env) = Env::new("delete-running") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.scratch.name("c");
    env.run_detached(&bundle, &id);
    let pid = env.pid(&id);

    let refused = env.moor.fails(&["delete", &id]);
    assert!(
        refused.stderr.contains("is running: cannot delete"),
        "{}",
        refused.stderr
    );
    assert_eq!(env.moor.status(&id), "running");
    assert_eq!(env.pid(&id), pid);
    assert!(host::alive(pid));
    assert!(env.moor.root().join(&id).join("state.json").exists());

    env.moor.ok(&["delete", "--force", &id]);
    assert!(!host::alive(pid), "delete --force left the init running");
    env.assert_gone(&id, "c");
}

#[test]
fn delete_removes_a_created_container_and_its_waiting_init() {
    let Some(env) = Env::new("delete-created") else {
        return;
    };
    let (bundle, out) = env.bundle_with_out("c", &["sh", "-c", "echo ran > /out/marker"]);
    let id = env.scratch.name("c");
    env.create(&bundle, &id);
    let pid = env.pid(&id);
    env.moor.ok(&["delete", &id]);
    wait::wait_until("the held init to die", DEADLINE, || !host::alive(pid));
    assert!(!out.join("marker").exists(), "the program ran");
    env.assert_gone(&id, "c");
}

#[test]
fn delete_of_a_missing_id_fails_unless_forced() {
    let Some(env) = Env::new("delete-missing") else {
        return;
    };
    let id = env.scratch.name("nothing");
    let ran = env.moor.fails(&["delete", &id]);
    assert!(ran.stderr.contains("does not exist"), "{}", ran.stderr);
    env.moor.ok(&["delete", "--force", &id]);
}

/// A running container whose init wrote its own checker report to `/out/init.report`.
fn reporting_container(env: &Env, name: &str) -> (String, Report) {
    let script = "moor-checker report > /out/r.tmp && mv /out/r.tmp /out/init.report; \
                  exec sleep 1000";
    let (bundle, out) = env.bundle_with_out(name, &["sh", "-c", script]);
    let id = env.scratch.name(name);
    env.run_detached(&bundle, &id);
    let init = wait_report(&out.join("init.report"));
    (id, init)
}

#[test]
fn exec_joins_the_init_namespaces_and_cgroup() {
    let Some(env) = Env::new("exec-ns") else {
        return;
    };
    let (id, init) = reporting_container(&env, "c");
    let exec = report(&env.moor.ok(&["exec", &id, "moor-checker", "report"]).stdout);
    for key in [
        "ns.pid", "ns.mnt", "ns.net", "ns.uts", "ns.ipc", "cgroup", "hostname",
    ] {
        assert_eq!(
            exec.get(key),
            init.get(key),
            "{key} differs from the init's"
        );
    }
    let host_pid_ns = std::fs::read_link("/proc/self/ns/pid").expect("own pid ns");
    assert_ne!(
        exec.namespace("pid"),
        host_pid_ns.to_str(),
        "exec stayed in the host's PID namespace"
    );
    let group = env.group("c");
    assert!(
        exec.get("cgroup").is_some_and(|c| c.contains(&group)),
        "exec'd process is not in {group}: {:?}",
        exec.get("cgroup")
    );
    assert_ne!(exec.number::<i32>("pid").ok(), Some(1));
    env.moor.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_applies_env_cwd_user_and_returns_the_exit_code() {
    let Some(env) = Env::new("exec-opts") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.scratch.name("c");
    env.run_detached(&bundle, &id);

    let args = [
        "exec",
        "--env",
        "FOO=bar",
        "--env",
        "TERM=dumb",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &id,
        "moor-checker",
        "report",
    ];
    let r = report(&env.moor.ok(&args).stdout);
    assert_eq!(r.env("FOO"), Some("bar"));
    assert_eq!(
        r.env("TERM"),
        Some("dumb"),
        "--env replaces the config's TERM"
    );
    assert!(r.env("PATH").is_some(), "the config's environment is kept");
    assert_eq!(r.get("cwd"), Some("/tmp"));
    assert_eq!((r.uid(), r.gid()), (Ok(1000), Ok(1000)));

    let ran = env.moor.run(&["exec", &id, "sh", "-c", "exit 42"]);
    assert_eq!(ran.code(), Some(42), "{ran:?}");
    let ran = env
        .moor
        .run(&["exec", &id, "moor-checker", "probe", "exit", "0"]);
    assert_eq!(ran.code(), Some(0), "{ran:?}");
    env.moor.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_runs_an_oci_process_file() {
    let Some(env) = Env::new("exec-process") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.scratch.name("c");
    env.run_detached(&bundle, &id);

    let file = env.path("process.json");
    let process = json!({
        "args": ["moor-checker", "report"],
        "env": ["PATH=/bin", "FROM_FILE=yes"],
        "cwd": "/home/user",
        "user": {"uid": 1000, "gid": 1000}
    });
    std::fs::write(&file, process.to_string()).expect("write process.json");
    let path = file.to_str().expect("utf-8");
    let r = report(&env.moor.ok(&["exec", "--process", path, &id]).stdout);
    assert_eq!(r.env("FROM_FILE"), Some("yes"));
    assert_eq!(r.get("cwd"), Some("/home/user"));
    assert_eq!(r.uid(), Ok(1000));

    let exit = json!({"args": ["sh", "-c", "exit 5"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
    std::fs::write(&file, exit.to_string()).expect("write process.json");
    let ran = env.moor.run(&["exec", "--process", path, &id]);
    assert_eq!(ran.code(), Some(5), "{ran:?}");
    env.moor.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_detach_writes_the_pid_file_of_a_process_in_the_container() {
    let Some(env) = Env::new("exec-detach") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.scratch.name("c");
    env.run_detached(&bundle, &id);
    let pid_file = env.path("exec.pid");
    env.detached(
        &[
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().expect("utf-8"),
            &id,
            "sleep",
            "999",
        ],
        "exec",
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("exec pid file")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        host::alive(pid),
        "the detached process {pid} is not running"
    );
    let ns = host::ns_pids(pid).unwrap_or_default();
    assert_eq!(ns.len(), 2, "not in the container's PID namespace: {ns:?}");
    assert_ne!(ns[1], 1);
    assert!(host::cgroup_pids(&env.group("c")).contains(&pid));
    env.moor.ok(&["delete", "--force", &id]);
    wait::wait_until("the exec'd process to die", DEADLINE, || !host::alive(pid));
}

#[test]
fn exec_into_a_paused_or_stopped_container_is_refused() {
    let Some(env) = Env::new("exec-refused") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.scratch.name("c");
    env.run_detached(&bundle, &id);
    env.moor.ok(&["pause", &id]);
    let ran = env.moor.fails(&["exec", &id, "true"]);
    assert!(
        ran.stderr.contains("is paused: cannot exec in it"),
        "{}",
        ran.stderr
    );
    env.moor.ok(&["resume", &id]);
    env.moor.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    let ran = env.moor.fails(&["exec", &id, "true"]);
    assert!(
        ran.stderr.contains("is stopped: cannot exec in it"),
        "{}",
        ran.stderr
    );
    env.moor.ok(&["delete", &id]);
}

#[test]
fn exec_with_a_terminal_hands_it_to_the_console_socket() {
    let Some(env) = Env::new("exec-tty") else {
        return;
    };
    let bundle = env.bundle("c", &["sleep", "1000"]);
    let id = env.scratch.name("c");
    env.run_detached(&bundle, &id);
    let socket = env.path("console.sock");
    let listener = UnixListener::bind(&socket).expect("bind the console socket");
    let sock = socket.to_str().expect("utf-8");
    let child = env
        .moor
        .command(&["exec", "--tty", "--console-socket", sock, &id, "sh"])
        .spawn()
        .expect("spawn moor exec");
    let terminal = console::receive_terminal(&listener, DEADLINE).expect("the terminal");
    assert!(terminal.name.starts_with("/dev/pts/"), "{}", terminal.name);
    terminal
        .write("moor-checker report; exit 7\n")
        .expect("type into the terminal");
    let output = terminal.read_until("tty.stdout=yes", DEADLINE);
    let ran = finish(child, "moor exec --tty");
    assert_eq!(ran.code(), Some(7), "{ran:?}");
    for line in ["tty.stdin=yes", "tty.stdout=yes", "tty.stderr=yes"] {
        assert!(output.contains(line), "{line} not in {output:?}");
    }
    assert!(output.contains(&format!("tty.name={}", terminal.name)));
    env.moor.ok(&["delete", "--force", &id]);
}

#[test]
fn create_with_a_terminal_sends_it_to_the_console_socket() {
    let Some(env) = Env::new("create-tty") else {
        return;
    };
    let mut bundle = env.bundle("c", &["sh"]);
    bundle.set("/process/terminal", json!(true));
    bundle.save();
    let id = env.scratch.name("c");
    let socket = env.path("console.sock");
    let listener = UnixListener::bind(&socket).expect("bind the console socket");
    let sock = socket.to_str().expect("utf-8");
    // The connection waits in the listen backlog until the test accepts it.
    env.detached(
        &[
            "create",
            "--bundle",
            dir(&bundle),
            "--console-socket",
            sock,
            &id,
        ],
        "create",
    );
    let terminal = console::receive_terminal(&listener, DEADLINE).expect("the terminal");
    assert_eq!(env.moor.status(&id), "created");
    env.moor.ok(&["start", &id]);
    terminal.write("moor-checker report\n").expect("type");
    let output = terminal.read_until("tty.stdout=yes", DEADLINE);
    assert!(output.contains("tty.stdin=yes"), "{output:?}");
    assert!(output.contains("hostname=moor-test"), "{output:?}");
    terminal.write("exit 0\n").expect("type");
    env.wait_status(&id, "stopped");
    env.moor.ok(&["delete", &id]);
    env.assert_gone(&id, "c");
}

#[test]
fn foreground_run_with_a_terminal_uses_the_console_socket_and_returns_the_code() {
    let Some(env) = Env::new("run-tty") else {
        return;
    };
    let mut bundle = env.bundle("c", &["sh"]);
    bundle.set("/process/terminal", json!(true));
    bundle.save();
    let id = env.scratch.name("c");
    let socket = env.path("console.sock");
    let listener = UnixListener::bind(&socket).expect("bind the console socket");
    let sock = socket.to_str().expect("utf-8");
    let child = env
        .moor
        .command(&[
            "run",
            "--bundle",
            dir(&bundle),
            "--console-socket",
            sock,
            &id,
        ])
        .spawn()
        .expect("spawn moor run");
    let terminal = console::receive_terminal(&listener, DEADLINE).expect("the terminal");
    terminal
        .write("moor-checker report; exit 3\n")
        .expect("type into the terminal");
    let output = terminal.read_until("tty.stdout=yes", DEADLINE);
    let ran = finish(child, "moor run with a terminal");
    assert_eq!(ran.code(), Some(3), "{ran:?}");
    assert!(output.contains("tty.stdin=yes"), "{output:?}");
    assert!(output.contains("pid=1"), "{output:?}");
    env.assert_gone(&id, "c");
}

#[test]
fn create_with_a_terminal_but_no_console_socket_fails_and_leaves_nothing() {
    let Some(env) = Env::new("tty-no-socket") else {
        return;
    };
    let mut bundle = env.bundle("c", &["sh"]);
    bundle.set("/process/terminal", json!(true));
    bundle.save();
    let id = env.scratch.name("c");
    let ran = env.moor.fails(&["create", "--bundle", dir(&bundle), &id]);
    assert!(ran.stderr.contains("--console-socket"), "{}", ran.stderr);
    assert!(!env.moor.root().join(&id).exists());
    assert!(host::cgroup_dirs(&env.group("c")).is_empty());
    assert!(env.listed().is_empty());
}

#[test]
fn foreground_run_forwards_sigterm_to_the_container() {
    let Some(env) = Env::new("forward") else {
        return;
    };
    let bundle = env.bundle("c", &["moor-checker", "probe", "signal-wait"]);
    let id = env.scratch.name("c");
    let mut child = env
        .moor
        .command(&["run", "--bundle", dir(&bundle), &id])
        .spawn()
        .expect("spawn moor run");
    let mut lines = Lines::new(child.stdout.take().expect("stdout"));
    lines.expect("probe.signal-wait=ready", DEADLINE);
    // SAFETY: kill(2) of our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    lines.expect("probe.signal=SIGTERM", DEADLINE);
    let ran = finish(child, "moor run");
    assert_eq!(ran.code(), Some(0), "{ran:?}");
    env.assert_gone(&id, "c");
}

/// A pipe whose ends close on exec; (read, write).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-int array it is given.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just made and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// `moor run` of `bundle` with the write end of a pipe as its descriptor 3; returns the
/// run and what came through the pipe.
fn run_with_fd3(
    env: &Env,
    bundle: &tests::bundle::Bundle,
    id: &str,
    flags: &[&str],
) -> (String, String) {
    let (read, write) = pipe();
    let mut args = vec!["run", "--bundle", dir(bundle)];
    args.extend_from_slice(flags);
    args.push(id);
    let mut cmd = env.moor.command(&args);
    let raw = write.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls dup2 and
    // fcntl, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if ok < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn moor run");
    drop(cmd);
    drop(write);
    let ran = finish(child, "moor run with fd 3");
    assert!(ran.status.success(), "{ran:?}");
    let mut through = String::new();
    std::fs::File::from(read)
        .read_to_string(&mut through)
        .expect("read the pipe");
    (ran.stdout, through)
}

#[test]
fn preserve_fds_passes_descriptor_three_and_only_with_the_flag() {
    let Some(env) = Env::new("preserve-fds") else {
        return;
    };
    let script = "echo through-fd3 >&3; exec moor-checker report";
    let bundle = env.bundle("with", &["sh", "-c", script]);
    let (stdout, through) = run_with_fd3(
        &env,
        &bundle,
        &env.scratch.name("with"),
        &["--preserve-fds", "1"],
    );
    assert_eq!(through, "through-fd3\n");
    let fds = report(&stdout).fds().expect("fds");
    assert_eq!(fds, vec![0, 1, 2, 3]);

    let bundle = env.bundle("without", &["moor-checker", "report"]);
    let (stdout, through) = run_with_fd3(&env, &bundle, &env.scratch.name("without"), &[]);
    assert_eq!(through, "");
    let fds = report(&stdout).fds().expect("fds");
    assert_eq!(fds, vec![0, 1, 2], "descriptor 3 leaked into the container");
}

#[test]
fn list_prints_an_aligned_table_json_and_ids() {
    let Some(env) = Env::new("list") else { return };
    let ids: Vec<String> = ["a", "bbbbbbbbbbbb"]
        .into_iter()
        .map(|name| {
            let bundle = env.bundle(name, &["true"]);
            let id = env.scratch.name(name);
            env.create(&bundle, &id);
            id
        })
        .collect();
    let table = env.moor.ok(&["list"]).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header = lines[0];
    for column in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        assert!(header.contains(column), "{header}");
    }
    let at = |text: &str, word: &str| text.find(word).expect("column");
    for (line, id) in lines[1..].iter().zip(&ids) {
        assert!(line.starts_with(id.as_str()), "{line}");
        let pid = env.pid(id).to_string();
        assert_eq!(
            line.find(&format!(" {pid} ")).map(|p| p + 1),
            Some(at(header, "PID"))
        );
        assert_eq!(at(line, "created"), at(header, "STATUS"), "{table}");
        assert_eq!(at(line, "/"), at(header, "BUNDLE"), "{table}");
    }

    let json: Value = serde_json::from_str(&env.moor.ok(&["list", "--format", "json"]).stdout)
        .expect("list --format json");
    let listed: Vec<&str> = json
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        json.as_array()
            .is_some_and(|a| a.iter().all(|c| c["status"] == "created"))
    );
    assert_eq!(env.listed(), ids);
}

#[test]
fn log_file_gets_a_json_error_line_for_a_failed_create() {
    let Some(env) = Env::new("log") else { return };
    let bundle = env.bundle("c", &["nope"]);
    let id = env.scratch.name("c");
    let log = env.path("moor.log");
    let log_arg = log.to_str().expect("utf-8");
    let ran = env.moor.fails(&[
        "--log",
        log_arg,
        "--log-format",
        "json",
        "create",
        "--bundle",
        dir(&bundle),
        &id,
    ]);
    assert!(
        ran.stderr.contains("executable file not found"),
        "{}",
        ran.stderr
    );
    let text = std::fs::read_to_string(&log).expect("the log file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["level"], "error");
    let msg = lines[0]["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("exec \"nope\": executable file not found in $PATH"),
        "{msg}"
    );
    assert!(lines[0]["time"].is_string());
    assert!(!env.moor.root().join(&id).exists());
}

#[test]
fn spec_writes_a_config_that_run_accepts_and_never_overwrites() {
    let Some(env) = Env::new("spec") else { return };
    let bundle = env.path("spec-bundle");
    tests::bundle::make_busybox_rootfs(&env.busybox, &bundle.join("rootfs"));
    let bundle_arg = bundle.to_str().expect("utf-8");
    env.moor.ok(&["spec", "--bundle", bundle_arg]);
    let path = bundle.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config.json"))
            .expect("spec writes JSON");
    assert_eq!(config["process"]["terminal"], true, "runc's default");
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["moor-checker", "report"]);
    config["linux"]["cgroupsPath"] = json!(env.group("spec"));
    let edited = serde_json::to_string_pretty(&config).expect("json");
    std::fs::write(&path, &edited).expect("write config.json");

    let id = env.scratch.name("spec");
    let ran = env.moor.ok(&["run", "--bundle", bundle_arg, &id]);
    let r = report(&ran.stdout);
    assert_eq!(r.get("hostname"), config["hostname"].as_str());
    assert_eq!(r.uid(), Ok(0));
    env.assert_gone(&id, "spec");

    let again = env.moor.fails(&["spec", "--bundle", bundle_arg]);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&path).expect("config.json"), edited);
}

#[test]
fn no_pivot_runs_with_the_rootfs_as_root() {
    let Some(env) = Env::new("no-pivot") else {
        return;
    };
    let bundle = env.bundle("c", &["moor-checker", "report"]);
    let id = env.scratch.name("c");
    let ran = env
        .moor
        .ok(&["run", "--no-pivot", "--bundle", dir(&bundle), &id]);
    let r = report(&ran.stdout);
    let rootfs = std::fs::metadata(&bundle.rootfs).expect("stat rootfs");
    assert_eq!(r.number::<u64>("root.ino"), Ok(rootfs.ino()));
    assert_eq!(r.get("hostname"), Some("moor-test"));
    assert!(r.mount("/proc").is_some_and(|m| m.fstype == "proc"));
    env.assert_gone(&id, "c");
}

#[test]
fn a_second_root_keeps_containers_apart() {
    let Some(env) = Env::new("roots-a") else {
        return;
    };
    let Some(other) = Env::new("roots-b") else {
        return;
    };
    let id = env.scratch.name("same");
    let first = env.bundle("c", &["true"]);
    env.create(&first, &id);
    let pid = env.pid(&id);

    assert!(
        other.listed().is_empty(),
        "the other root lists our container"
    );
    let ran = other.moor.fails(&["state", &id]);
    assert!(ran.stderr.contains("does not exist"), "{}", ran.stderr);
    let ran = other.moor.fails(&["delete", &id]);
    assert!(ran.stderr.contains("does not exist"), "{}", ran.stderr);

    // The same id is free in the other root.
    let second = other.bundle("c", &["true"]);
    other.create(&second, &id);
    assert_eq!(other.listed(), vec![id.clone()]);
    assert_ne!(other.pid(&id), pid);
    other.moor.ok(&["delete", &id]);
    assert!(other.listed().is_empty());

    assert_eq!(env.moor.status(&id), "created");
    assert_eq!(env.pid(&id), pid);
    assert!(host::alive(pid));
}

#[test]
fn foreground_run_with_a_terminal_and_no_console_socket_relays_it() {
    let Some(env) = Env::new("fg-tty-relay") else {
        return;
    };
    // The program reads a line from its terminal and reports what its stdio is: the
    // runtime itself holds the terminal's other side and copies moor's stdin into it
    // and the terminal's output to moor's stdout.
    let mut bundle = env.bundle(
        "relay",
        &[
            "sh",
            "-c",
            "read line; echo got=$line; /bin/moor-checker report; exit 4",
        ],
    );
    bundle.set("/process/terminal", json!(true));
    bundle.save();
    let id = env.scratch.name("relay");
    let mut child = env
        .moor
        .command(&["run", "--bundle", dir(&bundle), &id])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn moor run");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"hello\n").expect("write to moor's stdin");
    }
    let ran = tests::moor::finish(child, "moor run (terminal relay)");
    assert_eq!(ran.code(), Some(4), "{ran:?}");
    // The terminal turns "\n" into "\r\n" on its way out.
    let out = ran.stdout.replace("\r\n", "\n");
    assert!(out.contains("got=hello"), "{out}");
    let report = Report::parse(
        &out.lines()
            .filter(|l| l.contains('='))
            .filter(|l| !l.starts_with("got=") && !l.starts_with("hello"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .expect("report");
    assert_eq!(report.get("tty.stdin"), Some("yes"));
    assert_eq!(report.get("tty.stdout"), Some("yes"));
    env.assert_gone(&id, "relay");
}
