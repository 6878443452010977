use super::*;

const HYBRID: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

const V1_COMOUNTED: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,freezer
33 25 0:30 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,devices
34 25 0:31 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,cpuset,clone_children
35 25 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,pids
";

const UNIFIED: &str = "\
24 18 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

#[test]
fn hybrid_host_is_detected_with_separate_cpu_and_cpuacct() {
    let layout = CgroupLayout::from_mountinfo(HYBRID).expect("parses");
    assert_eq!(layout.mode(), CgroupMode::Hybrid);
    let unified = layout.unified().expect("unified tree");
    assert_eq!(unified.mount_point, Path::new("/sys/fs/cgroup/unified"));
    let cpu = layout.hierarchy("cpu").expect("cpu");
    let cpuacct = layout.hierarchy("cpuacct").expect("cpuacct");
    assert_ne!(cpu, cpuacct);
    assert_eq!(cpu.mount_name(), "cpu");
    assert_eq!(
        layout
            .hierarchy("name=systemd")
            .map(|h| h.mount_point.clone()),
        Some(PathBuf::from("/sys/fs/cgroup/systemd"))
    );
    assert!(layout.hierarchy("blkio").is_none());
    assert_eq!(layout.v1_hierarchies().len(), 8);
}

#[test]
fn v1_host_keys_comounted_controllers_to_one_hierarchy() {
    let layout = CgroupLayout::from_mountinfo(V1_COMOUNTED).expect("parses");
    assert_eq!(layout.mode(), CgroupMode::V1);
    assert!(layout.unified().is_none());
    let cpu = layout.hierarchy("cpu").expect("cpu");
    assert_eq!(cpu, layout.hierarchy("cpuacct").expect("cpuacct"));
    assert_eq!(cpu.mount_name(), "cpu,cpuacct");
    assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
    // Options that are not controllers are left out.
    let systemd = layout.hierarchy("name=systemd").expect("systemd");
    assert_eq!(systemd.controllers, vec!["name=systemd"]);
    let cpuset = layout.hierarchy("cpuset").expect("cpuset");
    assert_eq!(cpuset.controllers, vec!["cpuset"]);
}

#[test]
fn unified_host_has_one_tree_and_no_v1() {
    let layout = CgroupLayout::from_mountinfo(UNIFIED).expect("parses");
    assert_eq!(layout.mode(), CgroupMode::Unified);
    assert_eq!(
        layout.unified().map(|h| h.mount_point.clone()),
        Some(PathBuf::from("/sys/fs/cgroup"))
    );
    assert!(layout.hierarchy("memory").is_none());
    assert!(layout.v1_hierarchies().is_empty());
}

#[test]
fn unified_host_with_only_a_named_v1_hierarchy_is_unified() {
    let text = format!("{UNIFIED}50 27 0:40 / /run/compat rw - cgroup cgroup rw,name=systemd\n");
    let layout = CgroupLayout::from_mountinfo(&text).expect("parses");
    assert_eq!(layout.mode(), CgroupMode::Unified);
}

#[test]
fn first_mount_of_a_hierarchy_wins() {
    let text = format!(
        "{HYBRID}90 31 0:32 /sub /mnt/again rw - cgroup cgroup rw,memory\n\
         91 31 0:38 / /mnt/unified2 rw - cgroup2 cgroup2 rw\n"
    );
    let layout = CgroupLayout::from_mountinfo(&text).expect("parses");
    assert_eq!(
        layout.hierarchy("memory").map(|h| h.mount_point.clone()),
        Some(PathBuf::from("/sys/fs/cgroup/memory"))
    );
    assert_eq!(
        layout.unified().map(|h| h.mount_point.clone()),
        Some(PathBuf::from("/sys/fs/cgroup/unified"))
    );
}

#[test]
fn escaped_mount_points_and_bound_subtrees_are_decoded() {
    let text = "40 31 0:37 /docker/abc /sys/fs/cgroup/my\\040memory rw - cgroup cgroup rw,memory\n";
    let layout = CgroupLayout::from_mountinfo(text).expect("parses");
    let memory = layout.hierarchy("memory").expect("memory");
    assert_eq!(memory.mount_point, Path::new("/sys/fs/cgroup/my memory"));
    assert_eq!(memory.mount_root, Path::new("/docker/abc"));
    assert_eq!(
        memory.group_dir(Path::new("/moor/x")),
        Path::new("/sys/fs/cgroup/my memory/moor/x")
    );
}

#[test]
fn no_cgroup_mounts_is_an_error() {
    let text = "22 28 0:21 / /sys rw - sysfs sysfs rw\n";
    assert!(matches!(
        CgroupLayout::from_mountinfo(text),
        Err(CgroupError::NoCgroupMounts)
    ));
    assert!(matches!(
        CgroupLayout::from_mountinfo(""),
        Err(CgroupError::NoCgroupMounts)
    ));
}

#[test]
fn garbled_lines_are_ignored() {
    let garbage = [
        "",
        "   ",
        "nonsense",
        "1 2 3",
        "- - - - - - -",
        "41 31 0:38 / /x rw - cgroup2",
        "41 31 0:38 / /x rw -",
        "\u{0}\u{1}\u{2} - cgroup2 cgroup2 rw",
        "41 31 0:38 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,nsdelegate",
        "41 31 0:38 / /y rw - cgroup cgroup",
        "ä ö ü - cgroup",
    ];
    let text = format!("{}\n{HYBRID}", garbage.join("\n"));
    let layout = CgroupLayout::from_mountinfo(&text).expect("garbage around real lines");
    assert_eq!(layout.mode(), CgroupMode::Hybrid);
    assert_eq!(
        layout.unified().map(|h| h.mount_point.clone()),
        Some(PathBuf::from("/sys/fs/cgroup/unified"))
    );
}

#[test]
fn cgroup_lines_with_bad_paths_are_errors_naming_the_line() {
    let bad = [
        "41 31 0:38 / relative rw - cgroup2 cgroup2 rw",
        "41 31 0:38 / /a\\9zz rw - cgroup2 cgroup2 rw",
        "41 31 0:38 / /a\\777 rw - cgroup cgroup rw,memory",
        "41 31 0:38 / /a\\000 rw - cgroup cgroup rw,memory",
        "41 31 0:38 / /a\\04 rw - cgroup cgroup rw,memory",
        "41 31 0:38 root /a rw - cgroup cgroup rw,memory",
    ];
    for line in bad {
        let text = format!("22 28 0:21 / /sys rw - sysfs sysfs rw\n{line}\n");
        match CgroupLayout::from_mountinfo(&text) {
            Err(CgroupError::MountTableLine { line: 2, .. }) => {}
            other => panic!("{line:?}: expected an error on line 2, got {other:?}"),
        }
    }
}

#[test]
fn hostile_input_never_panics() {
    // Every prefix of a real table, and every line cut at every byte.
    let text = format!("{HYBRID}{V1_COMOUNTED}");
    for end in (0..text.len()).filter(|i| text.is_char_boundary(*i)) {
        let _ = CgroupLayout::from_mountinfo(&text[..end]);
    }
    for line in text.lines() {
        for cut in 0..line.len() {
            let _ = CgroupLayout::from_mountinfo(&line[cut..]);
            let _ = CgroupLayout::from_mountinfo(&line.replacen(' ', "", cut.min(3)));
        }
    }
}

#[test]
fn fake_layouts_point_into_the_given_root() {
    let root = Path::new("/tmp/fake");
    let v1 = CgroupLayout::fake_v1(root, &["cpu,cpuacct", "memory"]);
    assert_eq!(v1.mode(), CgroupMode::V1);
    assert_eq!(
        v1.hierarchy("cpuacct").map(|h| h.mount_point.clone()),
        Some(root.join("cpu,cpuacct"))
    );
    let hybrid = CgroupLayout::fake_hybrid(root, &["memory"]);
    assert_eq!(hybrid.mode(), CgroupMode::Hybrid);
    assert_eq!(
        hybrid.unified().map(|h| h.mount_point.clone()),
        Some(root.join("unified"))
    );
    let unified = CgroupLayout::fake_unified(root);
    assert_eq!(unified.mode(), CgroupMode::Unified);
    assert!(unified.hierarchy("memory").is_none());
}

#[test]
fn without_unified_turns_a_hybrid_host_into_v1() {
    let layout = CgroupLayout::from_mountinfo(HYBRID).expect("parses");
    let v1 = layout.without_unified().expect("has v1 hierarchies");
    assert_eq!(v1.mode(), CgroupMode::V1);
    assert!(v1.unified().is_none());
    assert!(v1.hierarchy("freezer").is_some());
    let unified = CgroupLayout::from_mountinfo(UNIFIED).expect("parses");
    assert!(unified.without_unified().is_none());
}
