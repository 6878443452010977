//! The cgroup module against this machine's kernel, as root.
//!
//! Each test makes its groups under a unique `/moor-test-<pid>-<n>-<name>` and removes
//! them when it ends, passing or not ([`GroupGuard`]). A test whose prerequisite is
//! missing (root, a hierarchy, a cgroup2 tree) says `skipped: needs ...`, or fails under
//! `MOOR_TEST_STRICT=1`. The v1 tests use the host's v1 hierarchies with the cgroup2 tree
//! left out ([`CgroupLayout::without_unified`]); the unified tests use the host's cgroup2
//! tree alone, parsed from the same mount table, so both paths run on a hybrid host.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::test_support::{
    ChildGuard, GroupGuard, is_root, read_trim, require, unique_path, wait_until,
};
use super::*;
use crate::config::{DeviceAccess, DeviceRule, DeviceRuleKind, Resources};

const WAIT: Duration = Duration::from_secs(10);
const MIB: i64 = 1 << 20;

/// The host's layout, if it can be read.
fn host() -> Option<CgroupLayout> {
    CgroupLayout::detect().ok()
}

/// The host's v1 hierarchies alone, when every one of `controllers` is mounted.
fn v1_host(controllers: &[&str]) -> Option<CgroupLayout> {
    let layout = host()?.without_unified()?;
    controllers
        .iter()
        .all(|c| layout.hierarchy(c).is_some_and(|h| h.mount_point.is_dir()))
        .then_some(layout)
}

/// The host's cgroup2 tree alone, as a unified host would have it.
fn unified_host() -> Option<CgroupLayout> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let only_v2: String = text
        .lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    let layout = CgroupLayout::from_mountinfo(&only_v2).ok()?;
    (layout.mode() == CgroupMode::Unified).then_some(layout)
}

fn sleeper() -> ChildGuard {
    ChildGuard(
        Command::new("sleep")
            .arg("100")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep"),
    )
}

fn proc_state(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .map(|s| s.trim().chars().next().unwrap_or('?').to_string())
        .unwrap_or_default()
}

fn proc_cgroup(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup")
}

fn char_rule(allow: bool, major: Option<u32>, minor: Option<u32>) -> DeviceRule {
    DeviceRule {
        allow,
        kind: DeviceRuleKind::Char,
        major,
        minor,
        access: DeviceAccess::ALL,
    }
}

fn all_devices(allow: bool) -> DeviceRule {
    DeviceRule {
        allow,
        kind: DeviceRuleKind::All,
        major: None,
        minor: None,
        access: DeviceAccess::ALL,
    }
}

/// Runs a shell inside `group` that opens /dev/null and /dev/zero, and returns what it
/// printed. The shell waits on stdin until it is in the group.
fn device_probe(group: &Cgroup) -> (String, String) {
    let mut shell = ChildGuard(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(
                "read x; cat /dev/null && echo null-ok; \
                 head -c1 /dev/zero >/dev/null && echo zero-ok; exit 0",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh"),
    );
    group.add_process(shell.pid()).expect("move the shell in");
    let mut stdin = shell.0.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("release the shell");
    drop(stdin);
    let mut out = String::new();
    let mut err = String::new();
    shell
        .0
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    shell
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    shell.0.wait().expect("wait for the shell");
    (out, err)
}

#[test]
fn host_layout_and_own_cgroup_are_read_from_proc() {
    let layout = host();
    require!(
        layout.is_some(),
        "a readable /proc/self/mountinfo with cgroup mounts"
    );
    let layout = layout.expect("checked");
    for h in layout.v1_hierarchies() {
        assert!(h.mount_point.is_dir(), "{}", h.mount_point.display());
    }
    if let Some(u) = layout.unified() {
        assert!(u.mount_point.join("cgroup.procs").exists());
    }
    let own = OwnCgroups::detect(&layout).expect("own cgroup");
    assert!(own.base().is_absolute());
    let path = cgroup_path(Some(Path::new("x/y")), "id", &own).expect("resolves");
    assert!(path.starts_with(own.base()));
}

#[test]
fn v1_limits_are_reported_back_by_the_kernel() {
    require!(is_root(), "root");
    let layout = v1_host(&["cpu", "cpuset", "memory", "pids", "freezer", "devices"]);
    require!(
        layout.is_some(),
        "v1 cpu, cpuset, memory, pids, freezer and devices hierarchies"
    );
    let layout = layout.expect("checked");
    let memory_root = layout
        .hierarchy("memory")
        .expect("checked")
        .mount_point
        .clone();
    require!(
        memory_root.join("memory.memsw.limit_in_bytes").exists(),
        "v1 swap accounting (memory.memsw.limit_in_bytes)"
    );
    let path = unique_path("v1-limits");
    let _guard = GroupGuard::new(&layout, &path);
    let mut r = Resources::default();
    r.cpu.shares = Some(512);
    r.cpu.quota = Some(50_000);
    r.cpu.period = Some(100_000);
    r.cpu.cpus = Some("0".into());
    r.cpu.mems = Some("0".into());
    r.memory.limit = Some(64 * MIB);
    r.memory.reservation = Some(32 * MIB);
    r.memory.swap = Some(128 * MIB);
    r.pids_limit = Some(50);
    r.devices = vec![
        char_rule(true, Some(1), Some(3)),
        DeviceRule {
            access: DeviceAccess::parse("r").expect("valid"),
            ..char_rule(true, Some(1), Some(5))
        },
    ];
    let group = Cgroup::create(&layout, &path, &r).expect("create");
    let dir = |c: &str| layout.hierarchy(c).expect("mounted").group_dir(&path);
    assert_eq!(read_trim(dir("cpu").join("cpu.shares")), "512");
    assert_eq!(read_trim(dir("cpu").join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read_trim(dir("cpu").join("cpu.cfs_period_us")), "100000");
    assert_eq!(read_trim(dir("cpuset").join("cpuset.cpus")), "0");
    assert_eq!(read_trim(dir("cpuset").join("cpuset.mems")), "0");
    assert_eq!(
        read_trim(dir("memory").join("memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(
        read_trim(dir("memory").join("memory.soft_limit_in_bytes")),
        "33554432"
    );
    assert_eq!(
        read_trim(dir("memory").join("memory.memsw.limit_in_bytes")),
        "134217728"
    );
    assert_eq!(read_trim(dir("pids").join("pids.max")), "50");
    let list = read_trim(dir("devices").join("devices.list"));
    let mut lines: Vec<&str> = list.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, vec!["c 1:3 rwm", "c 1:5 r"]);
    assert!(dir("freezer").is_dir());

    group.destroy().expect("destroy");
    for c in ["cpu", "cpuset", "memory", "pids", "freezer", "devices"] {
        assert!(!dir(c).exists(), "{c} group left behind");
    }
    group.destroy().expect("destroy again");
}

#[test]
fn v1_group_holds_freezes_and_signals_a_process() {
    require!(is_root(), "root");
    let layout = v1_host(&["pids", "freezer", "devices"]);
    require!(layout.is_some(), "v1 pids, freezer and devices hierarchies");
    let layout = layout.expect("checked");
    let path = unique_path("v1-process");
    let _guard = GroupGuard::new(&layout, &path);
    let r = Resources {
        pids_limit: Some(10),
        ..Resources::default()
    };
    let group = Cgroup::create(&layout, &path, &r).expect("create");
    let mut child = sleeper();
    let pid = child.pid();
    group.add_process(pid).expect("add");
    assert_eq!(group.pids().expect("pids"), vec![pid]);
    assert!(group.is_populated().expect("populated"));
    let own = proc_cgroup(pid);
    assert!(
        own.contains(&format!(":freezer:{}", path.display())),
        "{own}"
    );
    assert!(own.contains(&format!(":pids:{}", path.display())), "{own}");

    group.freeze().expect("freeze");
    assert_eq!(group.freezer_state().expect("state"), FreezerState::Frozen);
    wait_until("the frozen sleep to show state D", WAIT, || {
        proc_state(pid) == "D"
    });
    group.thaw().expect("thaw");
    assert_eq!(group.freezer_state().expect("state"), FreezerState::Thawed);
    wait_until("the thawed sleep to leave state D", WAIT, || {
        proc_state(pid) != "D"
    });

    // A paused container stays paused when signalled; the signal lands on resume.
    group.freeze().expect("pause");
    group.kill_all(Signal::SIGTERM).expect("kill");
    assert_eq!(group.freezer_state().expect("state"), FreezerState::Frozen);
    assert!(
        child.0.try_wait().expect("poll").is_none(),
        "died while paused"
    );
    group.thaw().expect("resume");
    let status = child.0.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    wait_until("the group to empty", WAIT, || {
        !group.is_populated().unwrap_or(true)
    });
    group.destroy().expect("destroy");
    assert!(
        Cgroup::open(&layout, &path)
            .expect_err("gone")
            .is_not_found()
    );
}

#[test]
fn v1_devices_allow_only_listed_devices() {
    require!(is_root(), "root");
    let layout = v1_host(&["freezer", "devices"]);
    require!(layout.is_some(), "v1 freezer and devices hierarchies");
    let layout = layout.expect("checked");
    let path = unique_path("v1-devices");
    let _guard = GroupGuard::new(&layout, &path);
    let r = Resources {
        devices: vec![char_rule(true, Some(1), Some(3))],
        ..Resources::default()
    };
    let group = Cgroup::create(&layout, &path, &r).expect("create");
    let (out, err) = device_probe(&group);
    assert!(out.contains("null-ok"), "stdout {out:?} stderr {err:?}");
    assert!(!out.contains("zero-ok"), "stdout {out:?}");
    assert!(err.contains("Operation not permitted"), "stderr {err:?}");
}

#[test]
fn hybrid_makes_v1_groups_only_for_asked_controllers() {
    require!(is_root(), "root");
    let layout =
        host().filter(|l| l.mode() == CgroupMode::Hybrid && l.hierarchy("memory").is_some());
    require!(layout.is_some(), "a hybrid host with a v1 memory hierarchy");
    let layout = layout.expect("checked");
    let path = unique_path("hybrid");
    let _guard = GroupGuard::new(&layout, &path);
    let mut r = Resources::default();
    r.memory.limit = Some(32 * MIB);
    let group = Cgroup::create(&layout, &path, &r).expect("create");
    let memory_dir = layout
        .hierarchy("memory")
        .expect("checked")
        .group_dir(&path);
    let unified_dir = layout.unified().expect("hybrid").group_dir(&path);
    let dirs: Vec<_> = group.members().iter().map(|m| m.dir.clone()).collect();
    assert_eq!(dirs, vec![unified_dir.clone(), memory_dir.clone()]);
    assert_eq!(
        read_trim(memory_dir.join("memory.limit_in_bytes")),
        "33554432"
    );
    for c in ["freezer", "devices", "cpu", "pids"] {
        if let Some(h) = layout.hierarchy(c) {
            assert!(!h.group_dir(&path).exists(), "unasked {c} group made");
        }
    }
    let opened = Cgroup::open(&layout, &path).expect("open");
    assert_eq!(opened.members(), group.members());
    let binds: Vec<_> = group
        .container_mounts()
        .into_iter()
        .map(|b| b.destination.display().to_string())
        .collect();
    assert_eq!(binds, vec!["unified", "memory"]);

    let mut child = sleeper();
    group.add_process(child.pid()).expect("add");
    assert!(group.is_populated().expect("populated"));
    // Not SIGKILL: the freeze, signal, thaw path on a cgroup2 group.
    group.kill_all(Signal::SIGTERM).expect("kill");
    assert_eq!(child.0.wait().expect("wait").signal(), Some(libc::SIGTERM));
    wait_until("the group to empty", WAIT, || {
        !group.is_populated().unwrap_or(true)
    });
    assert_eq!(group.freezer_state().expect("state"), FreezerState::Thawed);
    group.destroy().expect("destroy");
    assert!(!memory_dir.exists() && !unified_dir.exists());
}

#[test]
fn unified_group_holds_freezes_and_kills_a_process() {
    require!(is_root(), "root");
    let layout = unified_host();
    require!(layout.is_some(), "a cgroup2 tree");
    let layout = layout.expect("checked");
    let path = unique_path("v2-process");
    let _guard = GroupGuard::new(&layout, &path);
    let group = Cgroup::create(&layout, &path, &Resources::default()).expect("create");
    let dir = layout.unified().expect("unified").group_dir(&path);
    require!(
        dir.join("cgroup.freeze").exists(),
        "cgroup.freeze (Linux 5.2)"
    );
    let mut child = sleeper();
    let pid = child.pid();
    group.add_process(pid).expect("add");
    assert_eq!(group.pids().expect("pids"), vec![pid]);
    assert!(group.is_populated().expect("populated"));
    assert!(proc_cgroup(pid).contains(&format!("0::{}", path.display())));

    group.freeze().expect("freeze");
    assert_eq!(group.freezer_state().expect("state"), FreezerState::Frozen);
    assert!(read_trim(dir.join("cgroup.events")).contains("frozen 1"));
    group.thaw().expect("thaw");
    assert_eq!(group.freezer_state().expect("state"), FreezerState::Thawed);
    assert!(read_trim(dir.join("cgroup.events")).contains("frozen 0"));

    require!(dir.join("cgroup.kill").exists(), "cgroup.kill (Linux 5.14)");
    group.kill_all(Signal::SIGKILL).expect("kill");
    assert_eq!(child.0.wait().expect("wait").signal(), Some(libc::SIGKILL));
    wait_until("the group to empty", WAIT, || {
        !group.is_populated().unwrap_or(true)
    });
    assert!(group.pids().expect("pids").is_empty());
    group.destroy().expect("destroy");
    assert!(!dir.exists());
}

#[test]
fn unified_tree_without_controllers_refuses_limits_and_leaves_nothing() {
    require!(is_root(), "root");
    let layout = unified_host();
    require!(layout.is_some(), "a cgroup2 tree");
    let layout = layout.expect("checked");
    let root = layout.unified().expect("unified").mount_point.clone();
    let controllers = read_trim(root.join("cgroup.controllers"));
    require!(
        !controllers.split_whitespace().any(|c| c == "pids"),
        "a cgroup2 tree without the pids controller"
    );
    let path = unique_path("v2-refused");
    let _guard = GroupGuard::new(&layout, &path);
    let r = Resources {
        pids_limit: Some(5),
        ..Resources::default()
    };
    match Cgroup::create(&layout, &path, &r) {
        Err(CgroupError::ControllerNotDelegated {
            controller,
            path: at,
        }) => {
            assert_eq!(controller, "pids");
            assert_eq!(at, root);
        }
        other => panic!("expected a refusal naming pids, got {other:?}"),
    }
    assert!(!layout.unified().expect("unified").group_dir(&path).exists());
}

#[test]
fn destroy_removes_child_groups_and_is_idempotent() {
    require!(is_root(), "root");
    let layout = unified_host();
    require!(layout.is_some(), "a cgroup2 tree");
    let layout = layout.expect("checked");
    let path = unique_path("v2-destroy");
    let _guard = GroupGuard::new(&layout, &path);
    let group = Cgroup::create(&layout, &path, &Resources::default()).expect("create");
    let dir = layout.unified().expect("unified").group_dir(&path);
    std::fs::create_dir_all(dir.join("a/b")).expect("child groups");
    std::fs::create_dir(dir.join("c")).expect("child group");
    let mut child = sleeper();
    std::fs::write(dir.join("a/b/cgroup.procs"), child.pid().to_string()).expect("move");
    assert_eq!(group.pids().expect("pids"), vec![child.pid()]);
    child.0.kill().expect("kill");
    child.0.wait().expect("wait");
    group.destroy().expect("destroy");
    assert!(!dir.exists());
    group.destroy().expect("destroy again");
}

#[test]
fn bpf_filter_on_a_hybrid_host_allows_listed_devices_only() {
    require!(is_root(), "root");
    let layout = host().filter(|l| l.mode() == CgroupMode::Hybrid);
    require!(layout.is_some(), "a hybrid host");
    let layout = layout.expect("checked");
    let path = unique_path("hybrid-bpf");
    let _guard = GroupGuard::new(&layout, &path);
    let r = Resources {
        devices: vec![char_rule(true, Some(1), Some(3))],
        ..Resources::default()
    };
    let group = Cgroup::create(&layout, &path, &r).expect("create");
    let (out, err) = device_probe(&group);
    assert!(out.contains("null-ok"), "stdout {out:?} stderr {err:?}");
    assert!(!out.contains("zero-ok"), "stdout {out:?}");
    assert!(err.contains("Operation not permitted"), "stderr {err:?}");
}

#[test]
fn bpf_filter_on_a_unified_host_lets_the_last_matching_rule_decide() {
    require!(is_root(), "root");
    let layout = unified_host();
    require!(layout.is_some(), "a cgroup2 tree");
    let layout = layout.expect("checked");

    let path = unique_path("v2-bpf-deny-last");
    let _guard = GroupGuard::new(&layout, &path);
    let mut r = Resources {
        devices: vec![all_devices(true), char_rule(false, Some(1), Some(5))],
        ..Resources::default()
    };
    let group = Cgroup::create(&layout, &path, &r).expect("create");
    let (out, err) = device_probe(&group);
    assert!(out.contains("null-ok"), "stdout {out:?} stderr {err:?}");
    assert!(!out.contains("zero-ok"), "stdout {out:?}");

    let path = unique_path("v2-bpf-allow-last");
    let _guard2 = GroupGuard::new(&layout, &path);
    r.devices = vec![char_rule(false, Some(1), Some(5)), all_devices(true)];
    let group = Cgroup::create(&layout, &path, &r).expect("create");
    let (out, err) = device_probe(&group);
    assert!(
        out.contains("null-ok") && out.contains("zero-ok"),
        "stdout {out:?} stderr {err:?}"
    );

    let path = unique_path("v2-bpf-none");
    let _guard3 = GroupGuard::new(&layout, &path);
    let group = Cgroup::create(&layout, &path, &Resources::default()).expect("create");
    let (out, err) = device_probe(&group);
    assert!(
        !out.contains("null-ok") && !out.contains("zero-ok"),
        "stdout {out:?}"
    );
    assert!(err.contains("Operation not permitted"), "stderr {err:?}");
}

#[test]
fn verifier_accepts_programs_for_every_rule_shape() {
    require!(is_root(), "root");
    let shapes: Vec<Vec<DeviceRule>> = vec![
        vec![],
        vec![all_devices(true)],
        vec![all_devices(false)],
        vec![char_rule(true, None, None), char_rule(false, Some(1), None)],
        vec![
            char_rule(true, Some(u32::MAX), Some(0x8000_0000)),
            DeviceRule {
                kind: DeviceRuleKind::Block,
                access: DeviceAccess::parse("rm").expect("valid"),
                ..char_rule(false, Some(8), None)
            },
        ],
        (0..200)
            .map(|i| char_rule(i % 3 != 0, Some(i), Some(i * 7)))
            .collect(),
    ];
    for rules in shapes {
        let program = device_program(&rules);
        if let Err((err, log)) = bpf::load_device_program(&program) {
            panic!("{} rules refused: {err}\nverifier log:\n{log}", rules.len());
        }
    }
}

#[test]
fn join_self_in_the_child_moves_it_before_exec() {
    require!(is_root(), "root");
    let layout =
        host().filter(|l| l.mode() == CgroupMode::Hybrid && l.hierarchy("memory").is_some());
    require!(layout.is_some(), "a hybrid host with a v1 memory hierarchy");
    let layout = layout.expect("checked");
    let path = unique_path("join");
    let _guard = GroupGuard::new(&layout, &path);
    let mut r = Resources::default();
    r.memory.limit = Some(32 * MIB);
    let group = Cgroup::create(&layout, &path, &r).expect("create");
    let slot = Mutex::new(Some(group.join_handle().expect("open procs")));
    let mut command = Command::new("sleep");
    command.arg("100");
    // SAFETY: the hook runs in the forked child before exec; it only writes to fds that
    // were opened before the fork and closes them, as the runtime's child will.
    unsafe {
        command.pre_exec(move || {
            let join = slot.lock().ok().and_then(|mut s| s.take());
            match join {
                Some(join) => join
                    .join_self()
                    .map_err(|e| std::io::Error::other(e.to_string())),
                None => Err(std::io::Error::other("join handle already taken")),
            }
        });
    }
    let child = ChildGuard(command.spawn().expect("spawn with join"));
    let own = proc_cgroup(child.pid());
    assert!(own.contains(&format!("0::{}", path.display())), "{own}");
    assert!(
        own.contains(&format!(":memory:{}", path.display())),
        "{own}"
    );
    assert_eq!(group.pids().expect("pids"), vec![child.pid()]);
}
