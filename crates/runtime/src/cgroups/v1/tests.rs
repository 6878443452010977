use super::*;
use crate::cgroups::test_support::{fake_files, read_trim};
use crate::config::{DeviceAccess, MemoryResources};

const MIB: i64 = 1 << 20;
const UNLIMITED: u64 = 9_223_372_036_854_771_712;

fn mem(limit: Option<i64>, reservation: Option<i64>, swap: Option<i64>) -> MemoryResources {
    MemoryResources {
        limit,
        reservation,
        swap,
    }
}

fn files_of(writes: &[FileWrite]) -> Vec<(&str, &str)> {
    writes.iter().map(|w| (w.file, w.value.as_str())).collect()
}

#[test]
fn memory_and_swap_are_ordered_so_neither_write_fails() {
    let w = memory_writes(
        Path::new("/g"),
        &mem(Some(64 * MIB), None, Some(128 * MIB)),
        UNLIMITED,
        true,
    )
    .expect("valid");
    // The current limit is higher than the new memsw: the limit must go down first.
    assert_eq!(
        files_of(&w),
        vec![(MEMORY_LIMIT, "67108864"), (MEMSW_LIMIT, "134217728")]
    );
    let w = memory_writes(
        Path::new("/g"),
        &mem(Some(64 * MIB), None, Some(128 * MIB)),
        32 << 20,
        true,
    )
    .expect("valid");
    // The current limit is below the new memsw: memsw can grow first.
    assert_eq!(
        files_of(&w),
        vec![(MEMSW_LIMIT, "134217728"), (MEMORY_LIMIT, "67108864")]
    );
}

#[test]
fn unlimited_swap_goes_first() {
    let w = memory_writes(
        Path::new("/g"),
        &mem(Some(64 * MIB), None, Some(-1)),
        1,
        true,
    )
    .expect("valid");
    assert_eq!(
        files_of(&w),
        vec![(MEMSW_LIMIT, "-1"), (MEMORY_LIMIT, "67108864")]
    );
}

#[test]
fn unlimited_memory_without_swap_also_lifts_memsw() {
    let w = memory_writes(Path::new("/g"), &mem(Some(-1), None, None), 1, true).expect("valid");
    assert_eq!(
        files_of(&w),
        vec![(MEMSW_LIMIT, "-1"), (MEMORY_LIMIT, "-1")]
    );
    let w = memory_writes(Path::new("/g"), &mem(Some(-1), None, None), 1, false).expect("valid");
    assert_eq!(files_of(&w), vec![(MEMORY_LIMIT, "-1")]);
}

#[test]
fn reservation_is_the_soft_limit() {
    let w =
        memory_writes(Path::new("/g"), &mem(None, Some(16 * MIB), None), 1, true).expect("valid");
    assert_eq!(
        files_of(&w),
        vec![("memory.soft_limit_in_bytes", "16777216")]
    );
}

#[test]
fn swap_without_swap_accounting_is_a_clear_error() {
    let err = memory_writes(
        Path::new("/g"),
        &mem(Some(MIB), None, Some(2 * MIB)),
        1,
        false,
    )
    .expect_err("refused");
    match err {
        CgroupError::SwapUnsupported { path } => {
            assert_eq!(path, Path::new("/g").join(MEMSW_LIMIT))
        }
        other => panic!("{other:?}"),
    }
    // Unlimited swap where swap is not accounted asks for nothing.
    let w =
        memory_writes(Path::new("/g"), &mem(Some(MIB), None, Some(-1)), 1, false).expect("valid");
    assert_eq!(files_of(&w), vec![(MEMORY_LIMIT, "1048576")]);
}

#[test]
fn pids_max_uses_max_for_unlimited() {
    assert_eq!(pids_max(-1), "max");
    assert_eq!(pids_max(0), "0");
    assert_eq!(pids_max(100), "100");
}

fn rule(
    allow: bool,
    kind: DeviceRuleKind,
    major: Option<u32>,
    minor: Option<u32>,
    access: &str,
) -> DeviceRule {
    DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: DeviceAccess::parse(access).unwrap_or_default(),
    }
}

use DeviceRuleKind::{All, Block, Char};

#[test]
fn device_rules_start_with_deny_all_and_keep_their_order() {
    let w = device_writes(&[
        rule(true, Char, Some(1), Some(3), "rwm"),
        rule(true, Char, None, None, "m"),
        rule(true, Block, Some(8), None, "r"),
    ])
    .expect("expressible");
    assert_eq!(
        files_of(&w),
        vec![
            ("devices.deny", "a"),
            ("devices.allow", "c 1:3 rwm"),
            ("devices.allow", "c *:* m"),
            ("devices.allow", "b 8:* r"),
        ]
    );
}

#[test]
fn no_rules_deny_everything() {
    assert_eq!(
        files_of(&device_writes(&[]).expect("expressible")),
        vec![("devices.deny", "a")]
    );
}

#[test]
fn all_devices_all_access_is_written_as_a() {
    let w = device_writes(&[
        rule(true, All, None, None, "rwm"),
        rule(false, Char, Some(1), Some(5), "rwm"),
    ])
    .expect("expressible");
    assert_eq!(
        files_of(&w),
        vec![
            ("devices.deny", "a"),
            ("devices.allow", "a"),
            ("devices.deny", "c 1:5 rwm"),
        ]
    );
}

#[test]
fn type_a_with_numbers_or_partial_access_is_split_into_c_and_b() {
    let w = device_writes(&[rule(true, All, None, None, "m")]).expect("expressible");
    assert_eq!(
        files_of(&w),
        vec![
            ("devices.deny", "a"),
            ("devices.allow", "c *:* m"),
            ("devices.allow", "b *:* m"),
        ]
    );
}

#[test]
fn wide_deny_takes_back_narrower_allows_one_by_one() {
    let w = device_writes(&[
        rule(true, Char, Some(1), Some(3), "rw"),
        rule(true, Char, Some(1), Some(5), "r"),
        rule(false, Char, None, None, "w"),
    ])
    .expect("expressible");
    assert_eq!(
        files_of(&w),
        vec![
            ("devices.deny", "a"),
            ("devices.allow", "c 1:3 rw"),
            ("devices.allow", "c 1:5 r"),
            ("devices.deny", "c 1:3 w"),
            ("devices.deny", "c *:* w"),
        ]
    );
}

#[test]
fn narrow_deny_inside_a_wider_allow_is_refused() {
    let err = device_writes(&[
        rule(true, Char, None, None, "rwm"),
        rule(false, Char, Some(1), Some(5), "rwm"),
    ])
    .expect_err("v1 cannot express this");
    assert!(err.contains("wider rule"));
    // The same after allowing everything is fine: it adds an exception.
    assert!(
        device_writes(&[
            rule(true, All, None, None, "rwm"),
            rule(false, Char, Some(1), Some(5), "rwm"),
        ])
        .is_ok()
    );
    // Disjoint access bits do not overlap.
    assert!(
        device_writes(&[
            rule(true, Char, None, None, "m"),
            rule(false, Char, Some(1), Some(5), "rw"),
        ])
        .is_ok()
    );
}

#[test]
fn rules_with_no_access_are_skipped() {
    let w = device_writes(&[rule(true, Char, Some(1), Some(3), "")]).expect("expressible");
    assert_eq!(files_of(&w), vec![("devices.deny", "a")]);
}

fn v1_group(dir: &Path) {
    fake_files(
        dir,
        &[
            ("cpu.shares", "1024"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.cfs_period_us", "100000"),
            ("cpuset.cpus", ""),
            ("cpuset.mems", ""),
            (MEMORY_LIMIT, "9223372036854771712"),
            ("memory.soft_limit_in_bytes", "9223372036854771712"),
            (MEMSW_LIMIT, "9223372036854771712"),
            ("pids.max", "max"),
            ("devices.allow", ""),
            ("devices.deny", ""),
        ],
    );
}

#[test]
fn apply_writes_every_v1_file_into_a_fake_group() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    v1_group(dir);
    let mut r = Resources::default();
    r.cpu.shares = Some(512);
    r.cpu.quota = Some(50_000);
    r.cpu.period = Some(200_000);
    r.cpu.cpus = Some("0-1".into());
    r.cpu.mems = Some("0".into());
    r.memory = mem(Some(64 * MIB), Some(32 * MIB), Some(96 * MIB));
    r.pids_limit = Some(42);
    r.devices = vec![rule(true, Char, Some(1), Some(3), "rwm")];
    for controller in ["cpu", "cpuset", "memory", "pids", "devices", "freezer"] {
        apply(controller, dir, &r).expect(controller);
    }
    assert_eq!(read_trim(dir.join("cpu.shares")), "512");
    assert_eq!(read_trim(dir.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read_trim(dir.join("cpu.cfs_period_us")), "200000");
    assert_eq!(read_trim(dir.join("cpuset.cpus")), "0-1");
    assert_eq!(read_trim(dir.join("cpuset.mems")), "0");
    assert_eq!(read_trim(dir.join(MEMORY_LIMIT)), "67108864");
    assert_eq!(
        read_trim(dir.join("memory.soft_limit_in_bytes")),
        "33554432"
    );
    assert_eq!(read_trim(dir.join(MEMSW_LIMIT)), "100663296");
    assert_eq!(read_trim(dir.join("pids.max")), "42");
    // A fake file keeps only the last write; the sequence is checked above.
    assert_eq!(read_trim(dir.join("devices.deny")), "a");
    assert_eq!(read_trim(dir.join("devices.allow")), "c 1:3 rwm");
}

#[test]
fn apply_of_unlimited_values() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    v1_group(dir);
    let mut r = Resources::default();
    r.cpu.quota = Some(-1);
    r.memory = mem(Some(-1), Some(-1), None);
    r.pids_limit = Some(-1);
    for controller in ["cpu", "memory", "pids"] {
        apply(controller, dir, &r).expect(controller);
    }
    assert_eq!(read_trim(dir.join("cpu.cfs_quota_us")), "-1");
    assert_eq!(read_trim(dir.join(MEMORY_LIMIT)), "-1");
    assert_eq!(read_trim(dir.join(MEMSW_LIMIT)), "-1");
    assert_eq!(read_trim(dir.join("memory.soft_limit_in_bytes")), "-1");
    assert_eq!(read_trim(dir.join("pids.max")), "max");
}

#[test]
fn missing_interface_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = Resources {
        pids_limit: Some(5),
        ..Resources::default()
    };
    match apply("pids", tmp.path(), &r) {
        Err(CgroupError::Write { path, value, .. }) => {
            assert_eq!(path, tmp.path().join("pids.max"));
            assert_eq!(value, "5");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cpuset_levels_copy_the_parent_values_only_when_empty() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let parent = tmp.path();
    fake_files(parent, &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")]);
    let child = parent.join("moor");
    fake_files(&child, &[("cpuset.cpus", ""), ("cpuset.mems", "\n")]);
    prepare_cpuset_level(parent, &child).expect("copies");
    assert_eq!(read_trim(child.join("cpuset.cpus")), "0-3");
    assert_eq!(read_trim(child.join("cpuset.mems")), "0");
    let grandchild = child.join("c1");
    fake_files(&grandchild, &[("cpuset.cpus", "2"), ("cpuset.mems", "")]);
    prepare_cpuset_level(&child, &grandchild).expect("copies");
    assert_eq!(read_trim(grandchild.join("cpuset.cpus")), "2");
    assert_eq!(read_trim(grandchild.join("cpuset.mems")), "0");
}
