use super::*;

fn hybrid() -> CgroupLayout {
    CgroupLayout::from_mountinfo(
        "32 31 0:29 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n\
         33 31 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
         41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
    )
    .expect("parses")
}

fn v1(with_systemd: bool) -> CgroupLayout {
    let mut text = String::from(
        "32 31 0:29 /outer /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n\
         34 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
    );
    if with_systemd {
        text.push_str("33 31 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n");
    }
    CgroupLayout::from_mountinfo(&text).expect("parses")
}

fn unified() -> CgroupLayout {
    CgroupLayout::from_mountinfo("27 24 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
        .expect("parses")
}

const PROC_HYBRID: &str = "\
9:name=systemd:/system.slice/moor.service
8:pids:/
5:devices:/
4:memory:/process_api/55b400b9
6:freezer:/outer/inner
1:cpu,cpuacct:/
0::/system.slice/moor.service
";

#[test]
fn unified_and_hybrid_resolve_against_the_cgroup2_entry() {
    for layout in [hybrid(), unified()] {
        let own = OwnCgroups::from_proc_cgroup(PROC_HYBRID, &layout).expect("parses");
        assert_eq!(own.base(), Path::new("/system.slice/moor.service"));
    }
}

#[test]
fn v1_prefers_name_systemd_then_freezer() {
    let own = OwnCgroups::from_proc_cgroup(PROC_HYBRID, &v1(true)).expect("parses");
    assert_eq!(own.base(), Path::new("/system.slice/moor.service"));
    let text = "6:freezer:/outer/inner\n4:memory:/x\n";
    // The freezer mount shows /outer, so /outer/inner is /inner below the mount point.
    let own = OwnCgroups::from_proc_cgroup(text, &v1(false)).expect("parses");
    assert_eq!(own.base(), Path::new("/inner"));
}

#[test]
fn own_cgroup_outside_the_mounted_subtree_is_an_error() {
    let text = "6:freezer:/elsewhere\n";
    assert!(matches!(
        OwnCgroups::from_proc_cgroup(text, &v1(false)),
        Err(CgroupError::OwnCgroupOutsideMount { .. })
    ));
}

#[test]
fn missing_entries_and_garbled_lines_are_errors() {
    assert!(matches!(
        OwnCgroups::from_proc_cgroup("4:memory:/x\n", &unified()),
        Err(CgroupError::OwnCgroupMissing { .. })
    ));
    assert!(matches!(
        OwnCgroups::from_proc_cgroup("4:memory:/x\n", &v1(false)),
        Err(CgroupError::OwnCgroupMissing { .. })
    ));
    for bad in ["garbage", "x::/", "0::relative", "0:", "-1::/"] {
        match OwnCgroups::from_proc_cgroup(&format!("0::/\n{bad}\n"), &unified()) {
            Err(CgroupError::OwnCgroupsLine { line: 2, .. }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn paths_with_colons_keep_them() {
    let own = OwnCgroups::from_proc_cgroup("0::/a:b:c\n", &unified()).expect("parses");
    assert_eq!(own.base(), Path::new("/a:b:c"));
}

#[test]
fn absent_path_is_moor_slash_id() {
    let own = OwnCgroups::at("/system.slice/x");
    assert_eq!(
        cgroup_path(None, "web-1", &own).expect("valid"),
        Path::new("/moor/web-1")
    );
}

#[test]
fn bad_ids_are_refused() {
    let own = OwnCgroups::at("/");
    for id in ["", ".", "..", "a/b", "a\0b"] {
        assert!(
            matches!(
                cgroup_path(None, id, &own),
                Err(CgroupError::InvalidId { .. })
            ),
            "{id:?}"
        );
    }
}

#[test]
fn absolute_path_is_from_the_hierarchy_root() {
    let own = OwnCgroups::at("/system.slice/x");
    let p = cgroup_path(Some(Path::new("/pods/./a/")), "id", &own).expect("valid");
    assert_eq!(p, Path::new("/pods/a"));
}

#[test]
fn relative_path_is_below_the_own_cgroup() {
    let own = OwnCgroups::at("/system.slice/x");
    let p = cgroup_path(Some(Path::new("pods/a")), "id", &own).expect("valid");
    assert_eq!(p, Path::new("/system.slice/x/pods/a"));
    let own = OwnCgroups::at("/");
    let p = cgroup_path(Some(Path::new("./a")), "id", &own).expect("valid");
    assert_eq!(p, Path::new("/a"));
}

#[test]
fn dotdot_empty_nul_and_root_are_refused() {
    let own = OwnCgroups::at("/");
    for bad in ["", "/a/../b", "../a", "a/..", "a\0b", "/", "/./", "."] {
        assert!(
            matches!(
                cgroup_path(Some(Path::new(bad)), "id", &own),
                Err(CgroupError::InvalidPath { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn systemd_slice_form_is_refused_clearly() {
    let own = OwnCgroups::at("/");
    let err =
        cgroup_path(Some(Path::new("system.slice:moor:abc")), "id", &own).expect_err("refused");
    assert!(matches!(err, CgroupError::SystemdPathUnsupported { .. }));
    assert!(err.to_string().contains("not supported yet"));
    // An absolute path with colons is an ordinary path.
    let p = cgroup_path(Some(Path::new("/a:b:c")), "id", &own).expect("valid");
    assert_eq!(p, Path::new("/a:b:c"));
}

#[test]
fn group_paths_handed_to_cgroup_are_checked() {
    assert!(check_group_path(Path::new("/moor/x")).is_ok());
    for bad in ["moor/x", "/", "/moor/../x", "/.."] {
        assert!(check_group_path(Path::new(bad)).is_err(), "{bad:?}");
    }
}
