//! Bundles for the tests: a busybox root filesystem with the checker in it, and a
//! `config.json` shaped like `runc spec`'s (without a terminal), edited per test.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::checker::checker_path;
use crate::scratch::Scratch;

/// Where the checker sits inside every test root filesystem.
pub const CHECKER: &str = "/bin/moor-checker";

/// A bundle directory being prepared.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub config: Value,
}

/// The default configuration the tests start from: what `runc spec` writes, with no
/// terminal, no ambient capabilities (runc drops them silently for want of inheritable
/// ones; moor refuses such a set), a test-specific cgroup and hostname.
pub fn base_config(cgroups_path: &str) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["true"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "moor-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// Lays out a busybox root filesystem at `rootfs`: busybox and its applet links, the
/// checker, and the few directories and files a container expects.
pub fn make_busybox_rootfs(busybox: &Path, rootfs: &Path) {
    for dir in [
        "bin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "etc",
        "root",
        "home/user",
    ] {
        std::fs::create_dir_all(rootfs.join(dir))
            .unwrap_or_else(|e| panic!("create {}: {e}", rootfs.join(dir).display()));
    }
    // Copies, never links: an attack on the container's files must not reach the host's.
    std::fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    std::fs::copy(checker_path(), rootfs.join(CHECKER.trim_start_matches('/')))
        .expect("copy checker");
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = rootfs.join("bin").join(applet);
        if applet != "busybox" && !link.exists() {
            symlink("busybox", &link).unwrap_or_else(|e| panic!("link {applet}: {e}"));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("passwd");
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
    )
    .expect("group");
}

impl Bundle {
    /// A new busybox bundle in `scratch`'s directory, named `name`.
    pub fn busybox(scratch: &Scratch, busybox: &Path, name: &str) -> Self {
        let dir = scratch.dir().join(name);
        let rootfs = dir.join("rootfs");
        make_busybox_rootfs(busybox, &rootfs);
        let cgroups = format!("/moor-test/{}/{name}", scratch.prefix());
        let bundle = Self {
            dir,
            rootfs,
            config: base_config(&cgroups),
        };
        bundle.save();
        bundle
    }

    /// Sets `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// Sets the value at a JSON pointer (`/linux/resources/memory`), creating objects on
    /// the way.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        let mut node = &mut self.config;
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                match node {
                    Value::Object(map) => {
                        map.insert(part.to_string(), value);
                    }
                    Value::Array(items) => {
                        let idx: usize = part.parse().expect("array index");
                        items[idx] = value;
                    }
                    _ => panic!("{pointer}: {part} is not in an object or array"),
                }
                break;
            }
            if node.get(*part).is_none() {
                node[*part] = json!({});
            }
            node = match node {
                Value::Array(items) => &mut items[part.parse::<usize>().expect("array index")],
                other => &mut other[*part],
            };
        }
        self
    }

    /// Removes the value at a JSON pointer, if any.
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, last) = pointer.rsplit_once('/').expect("pointer has a slash");
        if let Some(Value::Object(map)) = self.config.pointer_mut(parent) {
            map.remove(last);
        }
        self
    }

    /// Appends to the array at a JSON pointer.
    pub fn push(&mut self, pointer: &str, value: Value) -> &mut Self {
        match self.config.pointer_mut(pointer) {
            Some(Value::Array(items)) => items.push(value),
            _ => panic!("{pointer} is not an array"),
        }
        self
    }

    /// Writes `config.json`.
    pub fn save(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("serialize config");
        std::fs::write(self.dir.join("config.json"), text).expect("write config.json");
    }
}
