//! Well-formed input: what it turns into.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;
use serde_json::json;

use super::{Bundle, minimal, under};
use crate::config::{
    Capabilities, ContainerConfig, CpuResources, DeviceAccess, DeviceNode, DeviceNodeKind,
    DeviceRule, DeviceRuleKind, MemoryResources, MountConfig, MountKind, NamespaceConfig,
    NamespaceKind, ProcessConfig, Propagation, Resources, Rlimit, RlimitResource, UserConfig,
    capability_number,
};
use crate::spec::{default_spec_json, load_bundle, parse_config, parse_process, process_from_oci};

#[allow(clippy::unnecessary_cast)] // `c_ulong` is u32 on 32-bit targets
fn ms(flags: libc::c_ulong) -> u64 {
    flags as u64
}

fn caps(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| 1u64 << capability_number(n).unwrap())
        .fold(0, |a, b| a | b)
}

fn filesystem(
    destination: &str,
    fstype: &str,
    source: &str,
    flags: u64,
    data: &[&str],
) -> MountConfig {
    MountConfig {
        destination: PathBuf::from(destination),
        kind: MountKind::Filesystem {
            fstype: fstype.into(),
            source: source.into(),
        },
        flags,
        propagation: vec![],
        data: data.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn default_spec_parses_into_the_expected_config() {
    let bundle = Bundle::new();
    fs::write(bundle.path().join("config.json"), default_spec_json()).unwrap();
    let config = load_bundle(bundle.path()).unwrap();

    let default_caps = caps(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let secure = ms(libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV);
    let expected = ContainerConfig {
        bundle: bundle.path().to_path_buf(),
        root: under(&bundle, "rootfs"),
        root_readonly: true,
        process: ProcessConfig {
            args: vec!["sh".into()],
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "TERM=xterm".into(),
            ],
            cwd: PathBuf::from("/"),
            user: UserConfig::default(),
            terminal: true,
            console_size: None,
            rlimits: vec![Rlimit {
                resource: RlimitResource::Nofile,
                soft: 1024,
                hard: 1024,
            }],
            capabilities: Capabilities {
                bounding: default_caps,
                effective: default_caps,
                inheritable: 0,
                permitted: default_caps,
                ambient: 0,
            },
            no_new_privileges: true,
            oom_score_adj: None,
        },
        hostname: Some("moor".into()),
        domainname: None,
        mounts: vec![
            filesystem("/proc", "proc", "proc", 0, &[]),
            filesystem(
                "/dev",
                "tmpfs",
                "tmpfs",
                ms(libc::MS_NOSUID | libc::MS_STRICTATIME),
                &["mode=755", "size=65536k"],
            ),
            filesystem(
                "/dev/pts",
                "devpts",
                "devpts",
                ms(libc::MS_NOSUID | libc::MS_NOEXEC),
                &["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            ),
            filesystem(
                "/dev/shm",
                "tmpfs",
                "shm",
                secure,
                &["mode=1777", "size=65536k"],
            ),
            filesystem("/dev/mqueue", "mqueue", "mqueue", secure, &[]),
            filesystem("/sys", "sysfs", "sysfs", secure | ms(libc::MS_RDONLY), &[]),
            MountConfig {
                destination: PathBuf::from("/sys/fs/cgroup"),
                kind: MountKind::Cgroup,
                flags: secure | ms(libc::MS_RELATIME | libc::MS_RDONLY),
                propagation: vec![],
                data: vec![],
            },
        ],
        namespaces: [
            NamespaceKind::Pid,
            NamespaceKind::Network,
            NamespaceKind::Ipc,
            NamespaceKind::Uts,
            NamespaceKind::Mount,
            NamespaceKind::Cgroup,
        ]
        .into_iter()
        .map(|kind| NamespaceConfig { kind, path: None })
        .collect(),
        devices: vec![],
        cgroups_path: None,
        resources: Resources {
            devices: vec![DeviceRule {
                allow: false,
                kind: DeviceRuleKind::All,
                major: None,
                minor: None,
                access: DeviceAccess::ALL,
            }],
            ..Resources::default()
        },
        sysctl: BTreeMap::new(),
        masked_paths: [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
            "/sys/devices/virtual/powercap",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect(),
        readonly_paths: [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect(),
        rootfs_propagation: None,
        annotations: BTreeMap::new(),
    };
    assert_eq!(config, expected);
}

#[test]
fn default_spec_is_pretty_json() {
    let text = default_spec_json();
    assert!(text.starts_with("{\n\t\"ociVersion\": \"1."), "{text}");
    assert!(text.ends_with("}\n"));
}

#[test]
fn relative_paths_resolve_against_the_bundle() {
    let bundle = Bundle::new();
    let mut config = minimal();
    config["mounts"] = json!([
        {"destination": "/data", "type": "bind", "source": "data"},
        {"destination": "/etc/hosts", "type": "none", "source": "/etc/hosts", "options": ["rbind", "ro"]},
        {"destination": "//srv/./www/", "source": "www", "options": ["bind", "rprivate"]}
    ]);
    let parsed = bundle.parse(&config).unwrap();
    assert_eq!(parsed.root, under(&bundle, "rootfs"));
    assert_eq!(parsed.bundle, bundle.path());
    let kinds: Vec<(&Path, &MountKind)> = parsed
        .mounts
        .iter()
        .map(|m| (m.destination.as_path(), &m.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                Path::new("/data"),
                &MountKind::Bind {
                    source: under(&bundle, "data"),
                    recursive: false
                }
            ),
            (
                Path::new("/etc/hosts"),
                &MountKind::Bind {
                    source: PathBuf::from("/etc/hosts"),
                    recursive: true
                }
            ),
            (
                Path::new("/srv/www"),
                &MountKind::Bind {
                    source: under(&bundle, "www"),
                    recursive: false
                }
            ),
        ]
    );
    assert_eq!(parsed.mounts[1].flags, ms(libc::MS_RDONLY));
    assert_eq!(parsed.mounts[2].propagation, [(Propagation::Private, true)]);
}

#[test]
fn absolute_rootfs_outside_the_bundle_is_used_as_given() {
    let bundle = Bundle::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut config = minimal();
    config["root"]["path"] = json!(elsewhere.path());
    let parsed = bundle.parse(&config).unwrap();
    assert_eq!(parsed.root, elsewhere.path());
}

#[test]
fn relative_bundle_is_made_absolute() {
    let rootfs = tempfile::tempdir().unwrap();
    let mut config = minimal();
    config["root"]["path"] = json!(rootfs.path());
    let bytes = serde_json::to_vec(&config).unwrap();
    let parsed = parse_config(&bytes, Path::new("some/bundle"), Path::new("config.json")).unwrap();
    assert!(parsed.bundle.is_absolute(), "{}", parsed.bundle.display());
    assert!(parsed.bundle.ends_with("some/bundle"));
}

#[test]
fn symlinked_config_in_the_bundle_is_followed() {
    let bundle = Bundle::new();
    let real = bundle.path().join("real.json");
    fs::write(&real, serde_json::to_vec(&minimal()).unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, bundle.path().join("config.json")).unwrap();
    let parsed = load_bundle(bundle.path()).unwrap();
    assert_eq!(parsed.process.args, ["sh"]);
}

#[test]
fn unknown_properties_are_ignored() {
    let bundle = Bundle::new();
    let mut config = minimal();
    config["futureFeature"] = json!({"enabled": true});
    config["process"]["futureKnob"] = json!(7);
    config["linux"]["futureList"] = json!([1, 2]);
    config["root"]["futureFlag"] = json!(true);
    assert!(bundle.parse(&config).is_ok());
}

#[test]
fn empty_unimplemented_fields_are_accepted() {
    let bundle = Bundle::new();
    let mut config = minimal();
    config["hooks"] = json!({"prestart": [], "poststop": null});
    config["linux"]["seccomp"] = json!({});
    config["linux"]["personality"] = json!(null);
    config["linux"]["uidMappings"] = json!([]);
    config["linux"]["resources"] =
        json!({"memory": {"swappiness": null, "disableOOMKiller": false}});
    config["process"]["apparmorProfile"] = json!("");
    assert!(bundle.parse(&config).is_ok());
}

#[test]
fn limits_sysctls_and_devices_are_converted() {
    let bundle = Bundle::new();
    let mut config = minimal();
    config["hostname"] = json!("edge-1");
    config["domainname"] = json!("");
    config["annotations"] = json!({"org.example.tier": "edge"});
    config["process"]["consoleSize"] = json!({"height": 24, "width": 80});
    config["process"]["oomScoreAdj"] = json!(-500);
    config["process"]["user"] =
        json!({"uid": 1000, "gid": 100, "additionalGids": [5, 6], "umask": 18});
    config["process"]["capabilities"] = json!({"ambient": ["net_raw"], "bounding": ["CAP_NET_RAW"], "permitted": ["CAP_NET_RAW"], "inheritable": ["CAP_NET_RAW"]});
    config["linux"]["cgroupsPath"] = json!("/moor/edge-1");
    config["linux"]["rootfsPropagation"] = json!("rslave");
    config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": "1",
        "net/ipv4/conf/eth0.100/forwarding": "1",
        "kernel.shmmax": "65536",
        "fs.mqueue.msg_max": "20",
        "kernel.domainname": "example"
    });
    config["linux"]["devices"] = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 432, "uid": 0, "gid": 6},
        {"path": "/dev/pipe", "type": "p"},
        {"path": "/dev/tty9", "type": "u", "major": 4, "minor": 9}
    ]);
    config["linux"]["resources"] = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"},
            {"allow": true, "type": "b", "major": 8, "minor": -1}
        ],
        "memory": {"limit": 268435456, "reservation": 0, "swap": -1},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1,3", "mems": "0"},
        "pids": {"limit": 0}
    });
    let parsed = bundle.parse(&config).unwrap();

    assert_eq!(parsed.hostname.as_deref(), Some("edge-1"));
    assert_eq!(parsed.domainname, None);
    assert_eq!(parsed.annotations["org.example.tier"], "edge");
    assert_eq!(parsed.cgroups_path, Some(PathBuf::from("/moor/edge-1")));
    assert_eq!(parsed.rootfs_propagation, Some(Propagation::Slave));
    assert_eq!(parsed.process.console_size, Some((24, 80)));
    assert_eq!(parsed.process.oom_score_adj, Some(-500));
    assert_eq!(
        parsed.process.user,
        UserConfig {
            uid: 1000,
            gid: 100,
            additional_gids: vec![5, 6],
            umask: Some(0o22),
        }
    );
    let raw = caps(&["CAP_NET_RAW"]);
    assert_eq!(parsed.process.capabilities.ambient, raw);
    assert_eq!(parsed.process.capabilities.bounding, raw);
    assert_eq!(parsed.process.capabilities.effective, 0);
    assert_eq!(parsed.sysctl.len(), 5);
    assert_eq!(parsed.sysctl["net/ipv4/conf/eth0.100/forwarding"], "1");

    let node = |path: &str, kind, major, minor, file_mode, gid| DeviceNode {
        path: PathBuf::from(path),
        kind,
        major,
        minor,
        file_mode,
        uid: 0,
        gid,
    };
    assert_eq!(
        parsed.devices,
        [
            node("/dev/fuse", DeviceNodeKind::Char, 10, 229, 0o666, 0),
            node("/dev/sda", DeviceNodeKind::Block, 8, 0, 0o660, 6),
            node("/dev/pipe", DeviceNodeKind::Fifo, 0, 0, 0o666, 0),
            node("/dev/tty9", DeviceNodeKind::Char, 4, 9, 0o666, 0),
        ]
    );
    let rw = DeviceAccess::parse("rw").unwrap();
    assert_eq!(
        parsed.resources,
        Resources {
            cpu: CpuResources {
                shares: Some(512),
                quota: Some(50000),
                period: Some(100000),
                cpus: Some("0-1,3".into()),
                mems: Some("0".into()),
            },
            memory: MemoryResources {
                limit: Some(268435456),
                reservation: None,
                swap: Some(-1),
            },
            pids_limit: None,
            devices: vec![
                DeviceRule {
                    allow: false,
                    kind: DeviceRuleKind::All,
                    major: None,
                    minor: None,
                    access: DeviceAccess::ALL,
                },
                DeviceRule {
                    allow: true,
                    kind: DeviceRuleKind::Char,
                    major: Some(10),
                    minor: Some(229),
                    access: rw,
                },
                DeviceRule {
                    allow: true,
                    kind: DeviceRuleKind::Block,
                    major: Some(8),
                    minor: None,
                    access: DeviceAccess::ALL,
                },
            ],
        }
    );
}

#[test]
fn joined_namespaces_keep_their_paths() {
    let bundle = Bundle::new();
    let mut config = minimal();
    config["linux"]["namespaces"][4]["path"] = json!("/proc/1/ns/mnt");
    config["mounts"] = json!([{"destination": "/tmp", "type": "tmpfs"}]);
    let parsed = bundle.parse(&config).unwrap();
    let mount = parsed.namespace(NamespaceKind::Mount).unwrap();
    assert_eq!(mount.path.as_deref(), Some(Path::new("/proc/1/ns/mnt")));
    assert_eq!(
        parsed.mounts[0].kind,
        MountKind::Filesystem {
            fstype: "tmpfs".into(),
            source: "tmpfs".into()
        }
    );
}

#[test]
fn any_1_x_version_is_accepted() {
    let bundle = Bundle::new();
    for version in [
        "1.0.0",
        "1.0.2-dev",
        "1.1.0",
        "1.2.1",
        "1.3.0+build.5",
        "1.99.0",
    ] {
        let mut config = minimal();
        config["ociVersion"] = json!(version);
        assert!(bundle.parse(&config).is_ok(), "{version}");
    }
}

#[test]
fn process_file_parses_on_its_own() {
    let process = json!({
        "terminal": false,
        "user": {"uid": 33, "gid": 33},
        "args": ["/bin/ps", "aux"],
        "env": ["A=1"],
        "cwd": "/srv",
        "rlimits": [{"type": "RLIMIT_NPROC", "soft": 10, "hard": 20}],
        "noNewPrivileges": true
    });
    let bytes = serde_json::to_vec(&process).unwrap();
    let parsed = parse_process(&bytes, Path::new("process.json")).unwrap();
    assert_eq!(parsed.args, ["/bin/ps", "aux"]);
    assert_eq!(parsed.user.uid, 33);
    assert_eq!(parsed.cwd, Path::new("/srv"));
    assert!(parsed.no_new_privileges);
    assert_eq!(parsed.rlimits[0].resource, RlimitResource::Nproc);
}

#[test]
fn process_from_oci_errors_carry_no_file() {
    let process: Process = serde_json::from_value(json!({
        "user": {"uid": 0, "gid": 0},
        "args": [],
        "cwd": "/"
    }))
    .unwrap();
    let err = process_from_oci(&process, "process").unwrap_err();
    assert_eq!(err.field(), Some("process.args"));
    assert!(
        err.to_string().starts_with("process.args: missing"),
        "{err}"
    );
}

#[test]
fn every_oci_capability_name_is_known() {
    let names: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    let process: Process = serde_json::from_value(json!({
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "cwd": "/",
        "capabilities": {"bounding": names}
    }))
    .unwrap();
    let parsed = process_from_oci(&process, "").unwrap();
    assert_eq!(
        parsed.capabilities.bounding.count_ones() as usize,
        names.len()
    );
}
