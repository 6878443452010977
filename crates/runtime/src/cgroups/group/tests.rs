//! `Cgroup` against fake cgroup roots: directories made, files written, filters
//! recorded. The kernel's side is in `tests_real`.

use super::*;
use crate::cgroups::CgroupBind;
use crate::cgroups::FreezerState;
use crate::cgroups::device_program::interp::{Request, run};
use crate::cgroups::device_program::{ACC_READ, DEV_CHAR};
use crate::cgroups::test_support::{fake_files, read_trim};
use crate::config::{DeviceAccess, DeviceRule, DeviceRuleKind};

const LEAF: &str = "/moor/c1";

fn v2_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("cgroup.procs", ""),
        ("cgroup.events", "populated 0\nfrozen 0\n"),
        ("cgroup.freeze", "0"),
        ("memory.max", "max"),
        ("memory.swap.max", "max"),
        ("pids.max", "max"),
    ]
}

/// A unified root where `memory` and `pids` can be delegated down to `/moor/c1`.
fn fake_unified_root(root: &Path) {
    let top = [
        ("cgroup.controllers", "cpuset cpu io memory pids"),
        ("cgroup.subtree_control", ""),
    ];
    fake_files(root, &top);
    fake_files(&root.join("moor"), &top);
    fake_files(&root.join("moor/c1"), &v2_files());
}

fn memory_and_pids() -> Resources {
    let mut r = Resources::default();
    r.memory.limit = Some(1 << 26);
    r.pids_limit = Some(64);
    r
}

fn null_only() -> Vec<DeviceRule> {
    vec![DeviceRule {
        allow: true,
        kind: DeviceRuleKind::Char,
        major: Some(1),
        minor: Some(3),
        access: DeviceAccess::ALL,
    }]
}

#[test]
fn unified_create_delegates_controllers_down_and_writes_limits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fake_unified_root(root);
    let layout = CgroupLayout::fake_unified(root);
    let mut r = memory_and_pids();
    r.devices = null_only();
    let group = Cgroup::create(&layout, Path::new(LEAF), &r).expect("creates");
    assert_eq!(
        read_trim(root.join("cgroup.subtree_control")),
        "+memory +pids"
    );
    assert_eq!(
        read_trim(root.join("moor/cgroup.subtree_control")),
        "+memory +pids"
    );
    assert_eq!(read_trim(root.join("moor/c1/memory.max")), "67108864");
    assert_eq!(read_trim(root.join("moor/c1/pids.max")), "64");
    assert_eq!(group.members().len(), 1);
    assert_eq!(group.mode(), CgroupMode::Unified);

    let filters = layout.recorded_device_filters();
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0].dir, root.join("moor/c1"));
    let req = |minor| Request {
        kind: DEV_CHAR,
        major: 1,
        minor,
        access: ACC_READ,
    };
    assert_eq!(run(&filters[0].program, req(3)), Ok(true));
    assert_eq!(run(&filters[0].program, req(5)), Ok(false));
}

#[test]
fn unified_create_without_limits_enables_nothing_but_still_filters_devices() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let layout = CgroupLayout::fake_unified(root);
    let group = Cgroup::create(&layout, Path::new(LEAF), &Resources::default()).expect("creates");
    assert!(root.join("moor/c1").is_dir());
    assert!(!root.join("cgroup.subtree_control").exists());
    let filters = layout.recorded_device_filters();
    assert_eq!(filters.len(), 1);
    let any = Request {
        kind: DEV_CHAR,
        major: 1,
        minor: 3,
        access: ACC_READ,
    };
    assert_eq!(run(&filters[0].program, any), Ok(false), "default deny");
    group.destroy().expect("removes");
}

#[test]
fn unified_create_names_a_controller_the_parent_lacks_and_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fake_files(
        root,
        &[
            ("cgroup.controllers", "cpu pids"),
            ("cgroup.subtree_control", ""),
        ],
    );
    let layout = CgroupLayout::fake_unified(root);
    match Cgroup::create(&layout, Path::new(LEAF), &memory_and_pids()) {
        Err(CgroupError::ControllerNotDelegated { controller, path }) => {
            assert_eq!(controller, "memory");
            assert_eq!(path, root);
        }
        other => panic!("{other:?}"),
    }
    assert!(!root.join("moor").exists());
}

/// A v1 root with every hierarchy, `cpu,cpuacct` co-mounted, and the group's files in
/// the hierarchies listed.
fn fake_v1_root(root: &Path, with_groups: &[&str]) -> CgroupLayout {
    let hierarchies = [
        "cpu,cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "pids",
        "name=systemd",
    ];
    for h in hierarchies {
        std::fs::create_dir_all(root.join(h)).expect("mkdir");
    }
    fake_files(
        &root.join("cpuset"),
        &[("cpuset.cpus", "0-3"), ("cpuset.mems", "0")],
    );
    for h in with_groups {
        let dir = root.join(h).join("moor/c1");
        let files: &[(&str, &str)] = match *h {
            "cpu,cpuacct" => &[("cpu.shares", "1024"), ("cgroup.procs", "")],
            "cpuset" => &[
                ("cpuset.cpus", ""),
                ("cpuset.mems", ""),
                ("cgroup.procs", ""),
            ],
            "memory" => &[
                ("memory.limit_in_bytes", "9223372036854771712"),
                ("memory.memsw.limit_in_bytes", "9223372036854771712"),
                ("cgroup.procs", ""),
            ],
            "devices" => &[
                ("devices.allow", ""),
                ("devices.deny", ""),
                ("cgroup.procs", ""),
            ],
            "freezer" => &[("freezer.state", "THAWED"), ("cgroup.procs", "")],
            _ => &[("pids.max", "max"), ("cgroup.procs", "")],
        };
        fake_files(&dir, files);
        if *h == "cpuset" {
            fake_files(
                &root.join("cpuset/moor"),
                &[("cpuset.cpus", ""), ("cpuset.mems", "")],
            );
        }
    }
    CgroupLayout::fake_v1(root, &hierarchies)
}

#[test]
fn v1_create_makes_freezer_devices_and_only_the_asked_controllers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let layout = fake_v1_root(root, &["cpu,cpuacct", "memory", "devices", "freezer"]);
    let mut r = Resources::default();
    r.cpu.shares = Some(256);
    r.memory.limit = Some(1 << 26);
    r.devices = null_only();
    let group = Cgroup::create(&layout, Path::new(LEAF), &r).expect("creates");
    let names: Vec<String> = group
        .members()
        .iter()
        .map(|m| m.hierarchy.mount_name())
        .collect();
    assert_eq!(names, vec!["freezer", "devices", "cpu,cpuacct", "memory"]);
    assert!(!root.join("pids/moor").exists());
    assert!(!root.join("cpuset/moor").exists());
    assert_eq!(
        read_trim(root.join("cpu,cpuacct/moor/c1/cpu.shares")),
        "256"
    );
    assert_eq!(
        read_trim(root.join("memory/moor/c1/memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(
        read_trim(root.join("devices/moor/c1/devices.allow")),
        "c 1:3 rwm"
    );
    assert!(
        layout.recorded_device_filters().is_empty(),
        "v1 uses devices.*"
    );
}

#[test]
fn v1_create_copies_cpuset_values_into_new_levels() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let layout = fake_v1_root(root, &["cpuset", "devices", "freezer"]);
    let mut r = Resources::default();
    r.cpu.cpus = Some("1".into());
    Cgroup::create(&layout, Path::new(LEAF), &r).expect("creates");
    assert_eq!(read_trim(root.join("cpuset/moor/cpuset.cpus")), "0-3");
    assert_eq!(read_trim(root.join("cpuset/moor/cpuset.mems")), "0");
    assert_eq!(read_trim(root.join("cpuset/moor/c1/cpuset.cpus")), "1");
    assert_eq!(read_trim(root.join("cpuset/moor/c1/cpuset.mems")), "0");
}

#[test]
fn missing_v1_controller_is_named_before_anything_is_made() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let layout = CgroupLayout::fake_v1(root, &["memory", "devices", "freezer"]);
    let r = Resources {
        pids_limit: Some(5),
        ..Resources::default()
    };
    match Cgroup::create(&layout, Path::new(LEAF), &r) {
        Err(CgroupError::ControllerUnavailable { controller, mode }) => {
            assert_eq!((controller, mode), ("pids", "v1"));
        }
        other => panic!("{other:?}"),
    }
    let layout = CgroupLayout::fake_v1(root, &["memory", "devices"]);
    match Cgroup::create(&layout, Path::new(LEAF), &Resources::default()) {
        Err(CgroupError::ControllerUnavailable { controller, .. }) => {
            assert_eq!(controller, "freezer");
        }
        other => panic!("{other:?}"),
    }
    assert!(std::fs::read_dir(root).expect("readable").next().is_none());
}

#[test]
fn invalid_values_are_refused_before_anything_is_made() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = CgroupLayout::fake_unified(tmp.path());
    let mut r = Resources::default();
    r.memory.limit = Some(-7);
    assert!(matches!(
        Cgroup::create(&layout, Path::new(LEAF), &r),
        Err(CgroupError::InvalidResource {
            field: "memory.limit",
            ..
        })
    ));
    assert!(!tmp.path().join("moor").exists());
}

#[test]
fn hybrid_create_uses_the_unified_group_plus_asked_v1_groups() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let hierarchies = ["cpu,cpuacct", "memory", "devices", "freezer", "pids"];
    std::fs::create_dir_all(root.join("unified")).expect("mkdir");
    fake_files(
        &root.join("memory/moor/c1"),
        &[
            ("memory.limit_in_bytes", "0"),
            ("memory.memsw.limit_in_bytes", "0"),
        ],
    );
    let layout = CgroupLayout::fake_hybrid(root, &hierarchies);
    let mut r = Resources::default();
    r.memory.limit = Some(1 << 26);
    r.devices = null_only();
    let group = Cgroup::create(&layout, Path::new(LEAF), &r).expect("creates");
    let dirs: Vec<PathBuf> = group.members().iter().map(|m| m.dir.clone()).collect();
    assert_eq!(
        dirs,
        vec![root.join("unified/moor/c1"), root.join("memory/moor/c1")]
    );
    assert!(!root.join("freezer/moor").exists());
    assert!(!root.join("devices/moor").exists());
    assert_eq!(
        read_trim(root.join("memory/moor/c1/memory.limit_in_bytes")),
        "67108864"
    );
    let filters = layout.recorded_device_filters();
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0].dir, root.join("unified/moor/c1"));

    assert_eq!(
        group.container_mounts(),
        vec![
            CgroupBind {
                source: root.join("unified/moor/c1"),
                destination: PathBuf::from("unified"),
                aliases: vec![],
            },
            CgroupBind {
                source: root.join("memory/moor/c1"),
                destination: PathBuf::from("memory"),
                aliases: vec![],
            },
        ]
    );
}

#[test]
fn container_mounts_on_v1_alias_comounted_controllers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let layout = fake_v1_root(root, &["cpu,cpuacct", "devices", "freezer"]);
    let mut r = Resources::default();
    r.cpu.shares = Some(100);
    let group = Cgroup::create(&layout, Path::new(LEAF), &r).expect("creates");
    let binds = group.container_mounts();
    let summary: Vec<(String, Vec<String>)> = binds
        .iter()
        .map(|b| (b.destination.display().to_string(), b.aliases.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("freezer".into(), vec![]),
            ("devices".into(), vec![]),
            ("cpu,cpuacct".into(), vec!["cpu".into(), "cpuacct".into()]),
        ]
    );
    assert_eq!(binds[2].source, root.join("cpu,cpuacct/moor/c1"));
}

#[test]
fn container_mounts_on_unified_put_the_group_at_the_top() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = CgroupLayout::fake_unified(tmp.path());
    let group = Cgroup::create(&layout, Path::new(LEAF), &Resources::default()).expect("creates");
    assert_eq!(
        group.container_mounts(),
        vec![CgroupBind {
            source: tmp.path().join("moor/c1"),
            destination: PathBuf::new(),
            aliases: vec![],
        }]
    );
}

#[test]
fn open_finds_existing_groups_or_says_not_found() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let layout = fake_v1_root(root, &["memory", "freezer"]);
    let group = Cgroup::open(&layout, Path::new(LEAF)).expect("opens");
    let names: Vec<String> = group
        .members()
        .iter()
        .map(|m| m.hierarchy.mount_name())
        .collect();
    assert_eq!(names, vec!["memory", "freezer"]);
    let err = Cgroup::open(&layout, Path::new("/moor/none")).expect_err("missing");
    assert!(err.is_not_found());
}

#[test]
fn processes_are_listed_across_child_groups() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fake_unified_root(root);
    fake_files(&root.join("moor/c1/sub"), &[("cgroup.procs", "14\n12\n")]);
    fake_files(
        &root.join("moor/c1"),
        &[
            ("cgroup.procs", "12\n13\n"),
            ("cgroup.events", "populated 1\nfrozen 0\n"),
        ],
    );
    let group = Cgroup::open(&CgroupLayout::fake_unified(root), Path::new(LEAF)).expect("opens");
    assert_eq!(group.pids().expect("lists"), vec![12, 13, 14]);
    assert!(group.is_populated().expect("reads"));
}

#[test]
fn garbage_in_cgroup_procs_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fake_unified_root(root);
    fake_files(&root.join("moor/c1"), &[("cgroup.procs", "12\nabc\n")]);
    let group = Cgroup::open(&CgroupLayout::fake_unified(root), Path::new(LEAF)).expect("opens");
    assert!(matches!(
        group.pids(),
        Err(CgroupError::UnexpectedContent { .. })
    ));
}

#[test]
fn add_process_and_join_write_every_member() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let layout = fake_v1_root(root, &["memory", "freezer", "devices"]);
    let group = Cgroup::open(&layout, Path::new(LEAF)).expect("opens");
    group.add_process(4242).expect("adds");
    for h in ["memory", "freezer", "devices"] {
        assert_eq!(read_trim(root.join(h).join("moor/c1/cgroup.procs")), "4242");
    }
    let join = group.join_handle().expect("opens procs");
    assert_eq!(join.len(), 3);
    // Regular files are not truncated by the join: empty them first.
    for h in ["memory", "freezer", "devices"] {
        std::fs::write(root.join(h).join("moor/c1/cgroup.procs"), "").expect("reset");
    }
    join.join_self().expect("writes");
    for h in ["memory", "freezer", "devices"] {
        assert_eq!(read_trim(root.join(h).join("moor/c1/cgroup.procs")), "0");
    }
}

#[test]
fn freezer_files_are_written_and_read_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fake_unified_root(root);
    let dir = root.join("moor/c1");
    let group = Cgroup::open(&CgroupLayout::fake_unified(root), Path::new(LEAF)).expect("opens");
    assert_eq!(group.freezer_state().expect("reads"), FreezerState::Thawed);
    fake_files(&dir, &[("cgroup.events", "populated 1\nfrozen 1\n")]);
    group.freeze().expect("freezes");
    assert_eq!(read_trim(dir.join("cgroup.freeze")), "1");
    assert_eq!(group.freezer_state().expect("reads"), FreezerState::Frozen);
    fake_files(&dir, &[("cgroup.events", "populated 1\nfrozen 0\n")]);
    assert_eq!(
        group.freezer_state().expect("reads"),
        FreezerState::Freezing
    );
    group.thaw().expect("thaws");
    assert_eq!(group.freezer_state().expect("reads"), FreezerState::Thawed);

    let layout = fake_v1_root(root, &["freezer"]);
    let v1 = Cgroup::open(&layout, Path::new(LEAF)).expect("opens");
    // A regular file reads back what was written: FROZEN at once.
    v1.freeze().expect("freezes");
    assert_eq!(v1.freezer_state().expect("reads"), FreezerState::Frozen);
    v1.thaw().expect("thaws");
    assert_eq!(v1.freezer_state().expect("reads"), FreezerState::Thawed);
}

#[test]
fn kill_all_uses_cgroup_kill_for_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fake_unified_root(root);
    fake_files(&root.join("moor/c1"), &[("cgroup.kill", "")]);
    let group = Cgroup::open(&CgroupLayout::fake_unified(root), Path::new(LEAF)).expect("opens");
    group.kill_all(Signal::SIGKILL).expect("kills");
    assert_eq!(read_trim(root.join("moor/c1/cgroup.kill")), "1");
}

#[test]
fn destroy_removes_child_groups_first_and_is_idempotent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let layout = CgroupLayout::fake_unified(root);
    let group = Cgroup::create(&layout, Path::new(LEAF), &Resources::default()).expect("creates");
    std::fs::create_dir_all(root.join("moor/c1/a/b")).expect("child groups");
    std::fs::create_dir_all(root.join("moor/c1/c")).expect("child groups");
    group.destroy().expect("removes");
    assert!(!root.join("moor/c1").exists());
    assert!(root.join("moor").is_dir(), "parents stay");
    group.destroy().expect("again");
}

#[test]
fn freezing_without_a_freezer_group_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let layout = fake_v1_root(root, &["memory"]);
    let group = Cgroup::open(&layout, Path::new(LEAF)).expect("opens");
    assert!(matches!(
        group.freeze(),
        Err(CgroupError::MissingMember {
            controller: "freezer",
            ..
        })
    ));
}

#[test]
fn entry_is_by_birth_only_into_a_group_without_memory_accounting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fake_unified_root(root);
    let layout = CgroupLayout::fake_unified(root);
    let group = Cgroup::create(&layout, Path::new(LEAF), &Resources::default()).expect("creates");
    // The group's own cgroup.controllers says what accounts it.
    fake_files(&root.join("moor/c1"), &[("cgroup.controllers", "pids")]);
    let entry = group.entry().expect("entry");
    assert!(
        entry.birth.is_some(),
        "no memory accounting: born in the group"
    );
    assert!(entry.join.is_empty(), "nothing left to join late");
    fake_files(
        &root.join("moor/c1"),
        &[("cgroup.controllers", "memory pids")],
    );
    let entry = group.entry().expect("entry");
    assert!(
        entry.birth.is_none(),
        "memory accounted: the set-up must not be charged"
    );
    assert_eq!(entry.join.len(), 1);
}
