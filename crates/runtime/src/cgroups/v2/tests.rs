use super::*;
use crate::cgroups::test_support::{fake_files, read_trim};

const MIB: i64 = 1 << 20;

#[test]
fn cpu_weight_follows_runc_conversion() {
    assert_eq!(cpu_weight(2), 1);
    assert_eq!(cpu_weight(1024), 39);
    assert_eq!(cpu_weight(262_144), 10_000);
}

#[test]
fn cpu_max_text() {
    assert_eq!(cpu_max(None, None), None);
    assert_eq!(cpu_max(Some(50_000), None).as_deref(), Some("50000 100000"));
    assert_eq!(
        cpu_max(Some(20_000), Some(50_000)).as_deref(),
        Some("20000 50000")
    );
    assert_eq!(cpu_max(Some(-1), None).as_deref(), Some("max 100000"));
    assert_eq!(cpu_max(None, Some(25_000)).as_deref(), Some("max 25000"));
}

#[test]
fn swap_max_is_total_minus_limit() {
    assert_eq!(
        swap_max(Some(96 * MIB), Some(64 * MIB)).as_deref(),
        Some("33554432")
    );
    assert_eq!(
        swap_max(Some(64 * MIB), Some(64 * MIB)).as_deref(),
        Some("0")
    );
    assert_eq!(swap_max(Some(-1), Some(64 * MIB)).as_deref(), Some("max"));
    assert_eq!(swap_max(None, Some(-1)).as_deref(), Some("max"));
    assert_eq!(swap_max(None, Some(64 * MIB)), None);
    assert_eq!(swap_max(None, None), None);
}

fn v2_group(dir: &Path, with_swap: bool) {
    let mut files = vec![
        ("memory.max", "max"),
        ("memory.low", "0"),
        ("cpu.weight", "100"),
        ("cpu.max", "max 100000"),
        ("cpuset.cpus", ""),
        ("cpuset.mems", ""),
        ("pids.max", "max"),
    ];
    if with_swap {
        files.push(("memory.swap.max", "max"));
    }
    fake_files(dir, &files);
}

#[test]
fn apply_writes_every_v2_file_into_a_fake_group() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    v2_group(dir, true);
    let mut r = Resources::default();
    r.cpu.shares = Some(1024);
    r.cpu.quota = Some(50_000);
    r.cpu.period = Some(100_000);
    r.cpu.cpus = Some("0".into());
    r.cpu.mems = Some("0".into());
    r.memory.limit = Some(64 * MIB);
    r.memory.reservation = Some(32 * MIB);
    r.memory.swap = Some(96 * MIB);
    r.pids_limit = Some(10);
    apply(dir, &r).expect("applies");
    assert_eq!(read_trim(dir.join("memory.max")), "67108864");
    assert_eq!(read_trim(dir.join("memory.low")), "33554432");
    assert_eq!(read_trim(dir.join("memory.swap.max")), "33554432");
    assert_eq!(read_trim(dir.join("cpu.weight")), "39");
    assert_eq!(read_trim(dir.join("cpu.max")), "50000 100000");
    assert_eq!(read_trim(dir.join("cpuset.cpus")), "0");
    assert_eq!(read_trim(dir.join("cpuset.mems")), "0");
    assert_eq!(read_trim(dir.join("pids.max")), "10");
}

#[test]
fn unlimited_values_are_written_as_max() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    v2_group(dir, true);
    let mut r = Resources::default();
    r.memory.limit = Some(-1);
    r.memory.reservation = Some(-1);
    r.cpu.quota = Some(-1);
    r.pids_limit = Some(-1);
    fake_files(dir, &[("memory.swap.max", "0"), ("pids.max", "7")]);
    apply(dir, &r).expect("applies");
    assert_eq!(read_trim(dir.join("memory.max")), "max");
    assert_eq!(read_trim(dir.join("memory.low")), "max");
    assert_eq!(read_trim(dir.join("memory.swap.max")), "max");
    assert_eq!(read_trim(dir.join("cpu.max")), "max 100000");
    assert_eq!(read_trim(dir.join("pids.max")), "max");
}

#[test]
fn nothing_asked_writes_nothing() {
    assert_eq!(
        writes(Path::new("/g"), &Resources::default(), true).expect("valid"),
        vec![]
    );
}

#[test]
fn swap_limit_without_swap_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    v2_group(dir, false);
    let mut r = Resources::default();
    r.memory.limit = Some(64 * MIB);
    r.memory.swap = Some(96 * MIB);
    match apply(dir, &r) {
        Err(CgroupError::SwapUnsupported { path }) => assert_eq!(path, dir.join("memory.swap.max")),
        other => panic!("{other:?}"),
    }
    // Unlimited swap without swap accounting is nothing to do.
    r.memory.swap = Some(-1);
    apply(dir, &r).expect("applies");
    assert_eq!(read_trim(dir.join("memory.max")), "67108864");
}

#[test]
fn enabling_controllers_writes_only_the_missing_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    fake_files(
        dir,
        &[
            ("cgroup.controllers", "cpuset cpu io memory pids\n"),
            ("cgroup.subtree_control", "cpu\n"),
        ],
    );
    enable_controllers(dir, &["cpu", "memory", "pids"]).expect("enables");
    assert_eq!(
        read_trim(dir.join("cgroup.subtree_control")),
        "+memory +pids"
    );
}

#[test]
fn enabling_nothing_reads_nothing() {
    enable_controllers(Path::new("/nonexistent"), &[]).expect("no-op");
}

#[test]
fn enabling_an_unavailable_controller_names_it_and_the_group() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    fake_files(
        dir,
        &[
            ("cgroup.controllers", "cpu pids\n"),
            ("cgroup.subtree_control", ""),
        ],
    );
    match enable_controllers(dir, &["pids", "memory"]) {
        Err(CgroupError::ControllerNotDelegated { controller, path }) => {
            assert_eq!(controller, "memory");
            assert_eq!(path, dir);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read_trim(dir.join("cgroup.subtree_control")), "");
}
