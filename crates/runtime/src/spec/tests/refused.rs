//! Hostile and wrong input: every case must fail with an error naming the field.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use super::{Bundle, minimal, refusal, set_path, tmpfs_mount};
use crate::spec::{MAX_CONFIG_SIZE, SpecError, load_bundle, parse_config, parse_process};

/// `name`: `minimal()` changed by `edit` is refused with an error containing each of
/// `expected`.
macro_rules! refused {
    ($($name:ident: $edit:expr => [$($expected:expr),+ $(,)?];)*) => {$(
        #[test]
        fn $name() {
            let mut config = minimal();
            let edit: fn(&mut Value) = $edit;
            edit(&mut config);
            let err = refusal(&config);
            $(assert!(err.contains($expected), "expected {:?} in: {err}", $expected);)+
        }
    )*};
}

fn set(config: &mut Value, path: &str, value: Value) {
    set_path(config, path, value);
}

refused! {
    unknown_namespace_type_is_refused: |c| {
        c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "foo"}));
    } => ["linux.namespaces[5].type", "\"foo\"", "one of ipc, uts, network, pid, mount, cgroup"];

    duplicate_namespace_is_refused: |c| {
        c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "uts"}));
    } => ["linux.namespaces[5].type", "duplicate namespace uts"];

    relative_namespace_path_is_refused: |c| {
        c["linux"]["namespaces"][1]["path"] = json!("proc/1/ns/net");
    } => ["linux.namespaces[1].path", "absolute"];

    missing_mount_namespace_is_refused: |c| {
        c["linux"]["namespaces"].as_array_mut().unwrap().remove(4);
    } => ["linux.namespaces", "mount namespace is required"];

    sysctl_with_dotdot_is_refused: |c| set(c, "linux.sysctl", json!({"net..x": "1"}))
        => ["linux.sysctl[\"net..x\"]", ".."];

    slashed_sysctl_with_dotdot_is_refused: |c| set(c, "linux.sysctl", json!({"net/../x": "1"}))
        => ["linux.sysctl[\"net/../x\"]"];

    sysctl_with_leading_dot_is_refused: |c| set(c, "linux.sysctl", json!({".net.x": "1"}))
        => ["linux.sysctl[\".net.x\"]"];

    non_namespaced_sysctl_is_refused: |c| set(c, "linux.sysctl", json!({"kernel.pid_max": "9"}))
        => ["linux.sysctl[\"kernel.pid_max\"]", "sysctl kernel.pid_max is not namespaced"];

    sysctl_value_with_newline_is_refused: |c| {
        set(c, "linux.sysctl", json!({"net.ipv4.ip_forward": "1\nkernel.x=1"}));
    } => ["linux.sysctl[\"net.ipv4.ip_forward\"]", "newline"];

    net_sysctl_without_new_network_namespace_is_refused: |c| {
        c["linux"]["namespaces"][1]["path"] = json!("/proc/1/ns/net");
        set(c, "linux.sysctl", json!({"net.core.somaxconn": "1024"}));
    } => ["linux.sysctl[\"net.core.somaxconn\"]", "requires a new network namespace"];

    ipc_sysctl_without_ipc_namespace_is_refused: |c| {
        c["linux"]["namespaces"].as_array_mut().unwrap().remove(2);
        set(c, "linux.sysctl", json!({"kernel.shmmax": "1024"}));
    } => ["linux.sysctl[\"kernel.shmmax\"]", "requires a new ipc namespace"];

    negative_rlimit_is_refused: |c| {
        set(c, "process.rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 10}]));
    } => ["process.rlimits[0].soft", "non-negative integer", "found -1"];

    rlimit_soft_above_hard_is_refused: |c| {
        set(c, "process.rlimits", json!([
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}
        ]));
    } => ["process.rlimits[1]", "soft limit 2048 is above the hard limit 1024"];

    unknown_rlimit_is_refused: |c| {
        set(c, "process.rlimits", json!([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]));
    } => ["process.rlimits[0].type", "unknown rlimit type \"RLIMIT_FOO\""];

    duplicate_rlimit_is_refused: |c| {
        set(c, "process.rlimits", json!([
            {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
            {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}
        ]));
    } => ["process.rlimits[1].type", "duplicate rlimit RLIMIT_NOFILE"];

    unknown_capability_is_refused: |c| {
        set(c, "process.capabilities", json!({"bounding": ["CAP_KILL", "CAP_FOO"]}));
    } => ["process.capabilities.bounding[1]", "unknown capability \"CAP_FOO\""];

    hostname_with_slash_is_refused: |c| set(c, "hostname", json!("a/b"))
        => ["hostname", "without '/'", "\"a/b\""];

    hostname_too_long_is_refused: |c| set(c, "hostname", json!("h".repeat(65)))
        => ["hostname", "at most 64 bytes"];

    dotdot_hostname_is_refused: |c| set(c, "hostname", json!(".."))
        => ["hostname", "not . or .."];

    hostname_without_new_uts_namespace_is_refused: |c| {
        c["linux"]["namespaces"].as_array_mut().unwrap().remove(3);
        set(c, "hostname", json!("box"));
    } => ["hostname", "requires a new uts namespace"];

    domainname_with_nul_is_refused: |c| set(c, "domainname", json!("a\u{0}b"))
        => ["domainname", "NUL"];

    relative_mount_destination_is_refused: |c| {
        let mut mount = tmpfs_mount();
        mount["destination"] = json!("tmp");
        set(c, "mounts", json!([mount]));
    } => ["mounts[0].destination", "absolute", "\"tmp\""];

    mount_destination_with_dotdot_is_refused: |c| {
        let mut mount = tmpfs_mount();
        mount["destination"] = json!("/tmp/../../etc");
        set(c, "mounts", json!([tmpfs_mount(), mount]));
    } => ["mounts[1].destination", "`..`"];

    mount_without_type_is_refused: |c| set(c, "mounts", json!([{"destination": "/x"}]))
        => ["mounts[0].type", "filesystem type"];

    mount_type_with_odd_characters_is_refused: |c| {
        set(c, "mounts", json!([{"destination": "/x", "type": "Tmp fs"}]));
    } => ["mounts[0].type", "\"Tmp fs\""];

    bind_mount_without_source_is_refused: |c| {
        set(c, "mounts", json!([{"destination": "/x", "type": "bind", "options": ["rbind"]}]));
    } => ["mounts[0].source", "missing"];

    remount_option_is_refused: |c| {
        let mut mount = tmpfs_mount();
        mount["options"] = json!(["ro", "remount"]);
        set(c, "mounts", json!([mount]));
    } => ["mounts[0].options[1]", "remount"];

    oversized_mount_data_is_refused: |c| {
        let mut mount = tmpfs_mount();
        let options: Vec<String> = (0..300).map(|i| format!("opt{i}=xxxxxxxxxx")).collect();
        mount["options"] = json!(options);
        set(c, "mounts", json!([mount]));
    } => ["mounts[0].options", "4096 bytes"];

    oci_version_2_is_refused: |c| set(c, "ociVersion", json!("2.0.0"))
        => ["ociVersion", "1.x.y", "\"2.0.0\""];

    missing_oci_version_is_refused: |c| { c.as_object_mut().unwrap().remove("ociVersion"); }
        => ["ociVersion"];

    missing_process_is_refused: |c| { c.as_object_mut().unwrap().remove("process"); }
        => ["process: missing"];

    empty_args_is_refused: |c| set(c, "process.args", json!([]))
        => ["process.args: missing"];

    empty_program_is_refused: |c| set(c, "process.args", json!([""]))
        => ["process.args[0]"];

    relative_cwd_is_refused: |c| set(c, "process.cwd", json!("home"))
        => ["process.cwd", "absolute"];

    env_without_equals_is_refused: |c| set(c, "process.env", json!(["A=1", "B"]))
        => ["process.env[1]", "KEY=value"];

    env_with_nul_is_refused: |c| set(c, "process.env", json!(["A=1\u{0}"]))
        => ["process.env[0]", "NUL"];

    out_of_range_oom_score_adj_is_refused: |c| set(c, "process.oomScoreAdj", json!(1001))
        => ["process.oomScoreAdj", "-1000 to 1000"];

    oversized_console_is_refused: |c| {
        set(c, "process.consoleSize", json!({"height": 70000, "width": 80}));
    } => ["process.consoleSize.height", "65535"];

    wide_umask_is_refused: |c| set(c, "process.user.umask", json!(4095))
        => ["process.user.umask"];

    missing_root_is_refused: |c| { c.as_object_mut().unwrap().remove("root"); }
        => ["root: missing"];

    empty_root_path_is_refused: |c| set(c, "root.path", json!(""))
        => ["root.path: missing"];

    missing_rootfs_is_refused: |c| set(c, "root.path", json!("nothere"))
        => ["root.path", "does not exist", "nothere"];

    memory_swap_below_limit_is_refused: |c| {
        set(c, "linux.resources.memory", json!({"limit": 1048576, "swap": 4096}));
    } => ["linux.resources.memory.swap", "below the memory limit 1048576"];

    memory_limit_below_minus_one_is_refused: |c| {
        set(c, "linux.resources.memory", json!({"limit": -2}));
    } => ["linux.resources.memory.limit", "found -2"];

    cpu_shares_out_of_range_is_refused: |c| set(c, "linux.resources.cpu", json!({"shares": 1}))
        => ["linux.resources.cpu.shares", "2 to 262144"];

    zero_cpu_quota_is_refused: |c| set(c, "linux.resources.cpu", json!({"quota": 0}))
        => ["linux.resources.cpu.quota"];

    short_cpu_period_is_refused: |c| set(c, "linux.resources.cpu", json!({"period": 999}))
        => ["linux.resources.cpu.period", "1000 to 1000000"];

    malformed_cpuset_is_refused: |c| set(c, "linux.resources.cpu", json!({"cpus": "0-3,x"}))
        => ["linux.resources.cpu.cpus", "\"0-3,x\""];

    negative_pids_limit_is_refused: |c| set(c, "linux.resources.pids", json!({"limit": -5}))
        => ["linux.resources.pids.limit", "found -5"];

    device_rule_with_bad_access_is_refused: |c| {
        set(c, "linux.resources.devices", json!([{"allow": true, "access": "rwx"}]));
    } => ["linux.resources.devices[0].access", "\"rwx\""];

    device_rule_with_negative_major_is_refused: |c| {
        set(c, "linux.resources.devices", json!([{"allow": true, "type": "c", "major": -2}]));
    } => ["linux.resources.devices[0].major", "found -2"];

    device_outside_dev_is_refused: |c| {
        set(c, "linux.devices", json!([{"path": "/etc/fuse", "type": "c", "major": 10, "minor": 229}]));
    } => ["linux.devices[0].path", "under /dev", "/etc/fuse"];

    device_with_dotdot_is_refused: |c| {
        set(c, "linux.devices", json!([{"path": "/dev/../etc/x", "type": "c", "major": 1, "minor": 3}]));
    } => ["linux.devices[0].path", "`..`"];

    device_with_wide_mode_is_refused: |c| {
        set(c, "linux.devices", json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 8630}
        ]));
    } => ["linux.devices[0].fileMode", "07777"];

    device_with_huge_major_is_refused: |c| {
        set(c, "linux.devices", json!([
            {"path": "/dev/x", "type": "b", "major": 4294967296_i64, "minor": 0}
        ]));
    } => ["linux.devices[0].major"];

    duplicate_device_is_refused: |c| {
        let fuse = json!({"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229});
        set(c, "linux.devices", json!([fuse.clone(), fuse]));
    } => ["linux.devices[1].path", "duplicate device /dev/fuse"];

    relative_masked_path_is_refused: |c| set(c, "linux.maskedPaths", json!(["/proc/kcore", "proc/x"]))
        => ["linux.maskedPaths[1]", "absolute"];

    readonly_path_with_dotdot_is_refused: |c| set(c, "linux.readonlyPaths", json!(["/proc/../x"]))
        => ["linux.readonlyPaths[0]", "`..`"];

    unknown_rootfs_propagation_is_refused: |c| set(c, "linux.rootfsPropagation", json!("sideways"))
        => ["linux.rootfsPropagation", "\"sideways\""];

    cgroups_path_with_nul_is_refused: |c| set(c, "linux.cgroupsPath", json!("/a\u{0}b"))
        => ["linux.cgroupsPath", "NUL"];

    wrong_type_is_refused_with_field_and_position: |c| set(c, "process.user.uid", json!("root"))
        => ["process.user.uid", "expected u32", "at line"];
}

#[test]
fn deeply_nested_json_is_refused_without_overflow() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let text = format!("{}{}", open.repeat(10_000), close.repeat(10_000));
        let err =
            parse_config(text.as_bytes(), Path::new("/b"), Path::new("config.json")).unwrap_err();
        assert!(matches!(err, SpecError::Syntax { .. }), "{err}");
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{err}"
        );
    }
}

#[test]
fn invalid_utf8_is_refused_with_line_and_column() {
    for bytes in [&b"{\"ociVersion\": \"1.0.\xff\"}"[..], &b"\n\xfe{}"[..]] {
        let err = parse_config(bytes, Path::new("/b"), Path::new("config.json")).unwrap_err();
        let SpecError::Syntax { line, column, .. } = &err else {
            panic!("{err}");
        };
        assert!(*line >= 1 && *column >= 1, "{err}");
        assert!(
            err.to_string().starts_with("config.json: invalid json: "),
            "{err}"
        );
        assert!(err.to_string().contains(" at line "), "{err}");
    }
}

#[test]
fn non_object_documents_are_refused() {
    for text in ["[]", "\"x\"", "null", "1", ""] {
        let err = parse_config(text.as_bytes(), Path::new("/b"), Path::new("config.json"));
        assert!(err.is_err(), "{text}");
    }
}

#[test]
fn config_over_the_size_limit_is_refused_before_reading() {
    let bundle = Bundle::new();
    let path = bundle.path().join("config.json");
    let mut text = serde_json::to_string(&minimal()).unwrap();
    text.push_str(&" ".repeat(5 * 1024 * 1024));
    fs::write(&path, text).unwrap();
    let err = load_bundle(bundle.path()).unwrap_err();
    let SpecError::TooLarge { size, limit, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        *size > MAX_CONFIG_SIZE && *limit == MAX_CONFIG_SIZE,
        "{err}"
    );
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn config_that_is_a_directory_is_refused() {
    let bundle = Bundle::new();
    fs::create_dir(bundle.path().join("config.json")).unwrap();
    let err = load_bundle(bundle.path()).unwrap_err();
    assert!(matches!(err, SpecError::NotRegularFile { .. }), "{err}");
}

#[test]
fn config_that_is_a_fifo_is_refused_without_blocking() {
    let bundle = Bundle::new();
    let path = bundle.path().join("config.json");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = load_bundle(bundle.path()).unwrap_err();
    assert!(matches!(err, SpecError::NotRegularFile { .. }), "{err}");
}

#[test]
fn unimplemented_field_with_content_inside_is_refused() {
    let mut config = minimal();
    config["hooks"] = json!({"prestart": [], "poststart": [{"path": "/bin/true"}]});
    assert!(refusal(&config).contains("hooks: not supported"));
    let mut config = minimal();
    config["linux"]["resources"] = json!({"rdma": {"mlx5_0": {"hcaHandles": 0}}});
    assert!(refusal(&config).contains("linux.resources.rdma: not supported"));
}

#[test]
fn missing_config_is_refused_naming_the_file() {
    let bundle = Bundle::new();
    let err = load_bundle(bundle.path()).unwrap_err();
    assert!(matches!(err, SpecError::Read { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn rootfs_that_is_a_file_is_refused() {
    let bundle = Bundle::new();
    fs::write(bundle.path().join("file"), "").unwrap();
    let mut config = minimal();
    config["root"]["path"] = json!("file");
    let err = bundle.parse(&config).unwrap_err();
    assert!(err.to_string().contains("is not a directory"), "{err}");
    assert_eq!(err.field(), Some("root.path"));
}

#[test]
fn process_file_errors_name_fields_relative_to_the_process() {
    let cases = [
        (
            json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": []}),
            "args",
        ),
        (
            json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"],
                   "rlimits": [{"type": "RLIMIT_NOFILE", "soft": -3, "hard": 1}]}),
            "rlimits[0].soft",
        ),
        (
            json!({"cwd": "/", "user": {"uid": "x", "gid": 0}, "args": ["sh"]}),
            "user.uid",
        ),
        (json!({"user": {"uid": 0, "gid": 0}, "args": ["sh"]}), ""),
    ];
    for (process, field) in cases {
        let bytes = serde_json::to_vec(&process).unwrap();
        let err = parse_process(&bytes, Path::new("process.json")).unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        assert!(err.to_string().starts_with("process.json: "), "{err}");
    }
}
