//! The validated container configuration every other module works from.
//!
//! `config.json` is read with oci-spec and checked by [`crate::spec`], which turns it into
//! these plain types: every path is known to be absolute and clean, every option parsed,
//! every number in range. Nothing past this point has to wonder whether a field is there,
//! and nothing past this point sees a field moor does not implement (those are refused
//! while loading, never ignored).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything needed to create one container, from its bundle's `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The bundle directory the configuration was read from (absolute).
    pub bundle: PathBuf,
    /// The root filesystem (absolute; a relative `root.path` is resolved against the bundle).
    pub root: PathBuf,
    /// Remount the root read-only after the mounts are in place.
    pub root_readonly: bool,
    /// The container's first process.
    pub process: ProcessConfig,
    /// Set in the new UTS namespace (validated: no `/`, no NUL, at most 64 bytes).
    pub hostname: Option<String>,
    /// Set in the new UTS namespace.
    pub domainname: Option<String>,
    /// In the order given: later mounts may land inside earlier ones.
    pub mounts: Vec<MountConfig>,
    /// At most one entry per kind.
    pub namespaces: Vec<NamespaceConfig>,
    /// Device nodes to create under `/dev` (beyond the defaults every container gets).
    pub devices: Vec<DeviceNode>,
    /// `linux.cgroupsPath` as given; `None` means the runtime picks one from the id.
    pub cgroups_path: Option<PathBuf>,
    /// Resource limits for the container's cgroup.
    pub resources: Resources,
    /// Kernel parameters written under `/proc/sys` in the container's namespaces.
    pub sysctl: BTreeMap<String, String>,
    /// Paths made unreadable (a bind of `/dev/null` for files, an empty read-only tmpfs for
    /// directories). Absolute, inside the container.
    pub masked_paths: Vec<PathBuf>,
    /// Paths remounted read-only. Absolute, inside the container.
    pub readonly_paths: Vec<PathBuf>,
    /// Propagation of the container's root mount; `None` means `rprivate`.
    pub rootfs_propagation: Option<Propagation>,
    /// Opaque key/value pairs, reported back by `state`.
    pub annotations: BTreeMap<String, String>,
}

impl ContainerConfig {
    /// The namespace entry of a kind, if the configuration has one.
    pub fn namespace(&self, kind: NamespaceKind) -> Option<&NamespaceConfig> {
        self.namespaces.iter().find(|ns| ns.kind == kind)
    }
}

/// A process to run in the container: the first one, or one added by `exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    /// Never empty: `args[0]` is the program.
    pub args: Vec<String>,
    /// `KEY=value` strings, passed through as given.
    pub env: Vec<String>,
    /// Absolute path inside the container.
    pub cwd: PathBuf,
    pub user: UserConfig,
    /// Give the process a new pseudo-terminal as its stdio.
    pub terminal: bool,
    /// Initial size of that terminal, as (rows, columns).
    pub console_size: Option<(u16, u16)>,
    pub rlimits: Vec<Rlimit>,
    pub capabilities: Capabilities,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
}

/// Who the process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserConfig {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// `None` leaves the umask inherited from the runtime (0022 in practice).
    pub umask: Option<u32>,
}

/// One resource limit, as `setrlimit(2)` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The `RLIMIT_*` constant.
    pub resource: RlimitResource,
    pub soft: u64,
    pub hard: u64,
}

/// The resources `setrlimit(2)` knows, by the name the OCI spec gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RlimitResource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

impl RlimitResource {
    /// Parses `RLIMIT_NOFILE` and friends.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RLIMIT_AS" => Self::As,
            "RLIMIT_CORE" => Self::Core,
            "RLIMIT_CPU" => Self::Cpu,
            "RLIMIT_DATA" => Self::Data,
            "RLIMIT_FSIZE" => Self::Fsize,
            "RLIMIT_LOCKS" => Self::Locks,
            "RLIMIT_MEMLOCK" => Self::Memlock,
            "RLIMIT_MSGQUEUE" => Self::Msgqueue,
            "RLIMIT_NICE" => Self::Nice,
            "RLIMIT_NOFILE" => Self::Nofile,
            "RLIMIT_NPROC" => Self::Nproc,
            "RLIMIT_RSS" => Self::Rss,
            "RLIMIT_RTPRIO" => Self::Rtprio,
            "RLIMIT_RTTIME" => Self::Rttime,
            "RLIMIT_SIGPENDING" => Self::Sigpending,
            "RLIMIT_STACK" => Self::Stack,
            _ => return None,
        })
    }

    /// The name the OCI spec uses, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::As => "RLIMIT_AS",
            Self::Core => "RLIMIT_CORE",
            Self::Cpu => "RLIMIT_CPU",
            Self::Data => "RLIMIT_DATA",
            Self::Fsize => "RLIMIT_FSIZE",
            Self::Locks => "RLIMIT_LOCKS",
            Self::Memlock => "RLIMIT_MEMLOCK",
            Self::Msgqueue => "RLIMIT_MSGQUEUE",
            Self::Nice => "RLIMIT_NICE",
            Self::Nofile => "RLIMIT_NOFILE",
            Self::Nproc => "RLIMIT_NPROC",
            Self::Rss => "RLIMIT_RSS",
            Self::Rtprio => "RLIMIT_RTPRIO",
            Self::Rttime => "RLIMIT_RTTIME",
            Self::Sigpending => "RLIMIT_SIGPENDING",
            Self::Stack => "RLIMIT_STACK",
        }
    }

    /// The constant `setrlimit(2)` takes.
    pub fn to_libc(self) -> libc::__rlimit_resource_t {
        match self {
            Self::As => libc::RLIMIT_AS,
            Self::Core => libc::RLIMIT_CORE,
            Self::Cpu => libc::RLIMIT_CPU,
            Self::Data => libc::RLIMIT_DATA,
            Self::Fsize => libc::RLIMIT_FSIZE,
            Self::Locks => libc::RLIMIT_LOCKS,
            Self::Memlock => libc::RLIMIT_MEMLOCK,
            Self::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Self::Nice => libc::RLIMIT_NICE,
            Self::Nofile => libc::RLIMIT_NOFILE,
            Self::Nproc => libc::RLIMIT_NPROC,
            Self::Rss => libc::RLIMIT_RSS,
            Self::Rtprio => libc::RLIMIT_RTPRIO,
            Self::Rttime => libc::RLIMIT_RTTIME,
            Self::Sigpending => libc::RLIMIT_SIGPENDING,
            Self::Stack => libc::RLIMIT_STACK,
        }
    }
}

/// The five capability sets, as bit masks indexed by capability number
/// (`1 << CAP_CHOWN` and so on). Absent sets in the spec are empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub bounding: u64,
    pub effective: u64,
    pub inheritable: u64,
    pub permitted: u64,
    pub ambient: u64,
}

/// Parses `CAP_NET_ADMIN` (or `net_admin`) into its capability number.
pub fn capability_number(name: &str) -> Option<u8> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    let cap: caps::Capability = full.parse().ok()?;
    Some(cap.index())
}

/// The name of a capability number, for messages and reports.
pub fn capability_name(number: u8) -> String {
    caps::all()
        .into_iter()
        .find(|c| c.index() == number)
        .map(|c| c.to_string())
        .unwrap_or_else(|| format!("CAP_{number}"))
}

/// The kinds of namespace this runtime creates or joins.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    Pid,
    Network,
    Mount,
    Ipc,
    Uts,
    Cgroup,
}

impl NamespaceKind {
    /// Every kind, in the order the runtime joins them.
    pub const ALL: [NamespaceKind; 6] = [
        NamespaceKind::Ipc,
        NamespaceKind::Uts,
        NamespaceKind::Network,
        NamespaceKind::Pid,
        NamespaceKind::Mount,
        NamespaceKind::Cgroup,
    ];

    /// The `CLONE_NEW*` flag of this kind.
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            Self::Pid => libc::CLONE_NEWPID,
            Self::Network => libc::CLONE_NEWNET,
            Self::Mount => libc::CLONE_NEWNS,
            Self::Ipc => libc::CLONE_NEWIPC,
            Self::Uts => libc::CLONE_NEWUTS,
            Self::Cgroup => libc::CLONE_NEWCGROUP,
        }
    }

    /// The file under `/proc/PID/ns/` for this kind.
    pub fn proc_name(self) -> &'static str {
        match self {
            Self::Pid => "pid",
            Self::Network => "net",
            Self::Mount => "mnt",
            Self::Ipc => "ipc",
            Self::Uts => "uts",
            Self::Cgroup => "cgroup",
        }
    }

    /// The name the OCI spec uses.
    pub fn spec_name(self) -> &'static str {
        match self {
            Self::Pid => "pid",
            Self::Network => "network",
            Self::Mount => "mount",
            Self::Ipc => "ipc",
            Self::Uts => "uts",
            Self::Cgroup => "cgroup",
        }
    }
}

/// A namespace the container gets: a new one, or an existing one joined by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    pub kind: NamespaceKind,
    /// `Some(path)` joins the namespace at that path (`/proc/PID/ns/net`, a bind-mounted
    /// namespace file); `None` creates a new one.
    pub path: Option<PathBuf>,
}

/// Mount propagation, as in `mount(8)`'s `--make-*` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Shared,
    Slave,
    Private,
    Unbindable,
}

/// One entry of `mounts`, with its options parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountConfig {
    /// Absolute and clean, inside the container.
    pub destination: PathBuf,
    pub kind: MountKind,
    /// `MS_*` flags to set (`MS_RDONLY`, `MS_NOSUID`, `MS_NODEV`, `MS_NOEXEC`, atime flags…).
    pub flags: u64,
    /// Propagation changes applied after mounting, in order, and whether each is recursive.
    pub propagation: Vec<(Propagation, bool)>,
    /// Filesystem-specific options passed through as data (`mode=755`, `size=64k`, …).
    pub data: Vec<String>,
}

/// What a mount attaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A bind of a host path (absolute; a relative source is resolved against the bundle).
    Bind { source: PathBuf, recursive: bool },
    /// A new filesystem instance: `proc`, `sysfs`, `tmpfs`, `devpts`, `mqueue`, and the
    /// others the kernel knows. `source` is the device string shown in mountinfo.
    Filesystem { fstype: String, source: String },
    /// The container's own cgroups, read-only or not per the flags (type `cgroup` or
    /// `cgroup2` in the spec; the runtime decides how to show them on this host).
    Cgroup,
}

/// Resource limits applied to the container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu: CpuResources,
    pub memory: MemoryResources,
    /// Maximum number of tasks; `None` leaves it unlimited.
    pub pids_limit: Option<i64>,
    /// Device access rules, in order; the last rule that matches decides.
    pub devices: Vec<DeviceRule>,
}

impl Resources {
    /// True when nothing here asks for a limit (device rules aside).
    pub fn has_cpu(&self) -> bool {
        self.cpu != CpuResources::default()
    }
    pub fn has_cpuset(&self) -> bool {
        self.cpu.cpus.is_some() || self.cpu.mems.is_some()
    }
    pub fn has_memory(&self) -> bool {
        self.memory != MemoryResources::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuResources {
    /// Relative weight (v1 `cpu.shares`, 2–262144; converted to `cpu.weight` on v2).
    pub shares: Option<u64>,
    /// Microseconds per period; `-1` or `None` means no limit.
    pub quota: Option<i64>,
    /// Microseconds.
    pub period: Option<u64>,
    /// A cpuset list such as `0-1,3`.
    pub cpus: Option<String>,
    /// A memory-node list such as `0`.
    pub mems: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryResources {
    /// Bytes; `-1` means unlimited.
    pub limit: Option<i64>,
    /// Bytes (soft limit); `-1` means unlimited.
    pub reservation: Option<i64>,
    /// Memory plus swap, in bytes, as the OCI spec defines it; `-1` means unlimited.
    pub swap: Option<i64>,
}

/// One device cgroup rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceRuleKind,
    /// `None` matches every major number.
    pub major: Option<u32>,
    /// `None` matches every minor number.
    pub minor: Option<u32>,
    pub access: DeviceAccess,
}

/// The device types a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRuleKind {
    All,
    Char,
    Block,
}

/// Read, write and mknod permission bits of a device rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceAccess {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl DeviceAccess {
    pub const ALL: DeviceAccess = DeviceAccess {
        read: true,
        write: true,
        mknod: true,
    };

    /// Parses `rwm` and any subset of it; `None` for other letters, repeats or empty.
    pub fn parse(text: &str) -> Option<Self> {
        let mut access = DeviceAccess::default();
        if text.is_empty() {
            return None;
        }
        for ch in text.chars() {
            let slot = match ch {
                'r' => &mut access.read,
                'w' => &mut access.write,
                'm' => &mut access.mknod,
                _ => return None,
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        Some(access)
    }

    /// The letters, as the v1 devices controller takes them.
    pub fn letters(self) -> String {
        let mut s = String::new();
        if self.read {
            s.push('r');
        }
        if self.write {
            s.push('w');
        }
        if self.mknod {
            s.push('m');
        }
        s
    }
}

/// A device node created in the container's `/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Absolute, under `/dev`.
    pub path: PathBuf,
    pub kind: DeviceNodeKind,
    pub major: u32,
    pub minor: u32,
    /// Permission bits; 0666 when the spec gives none.
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Node types `mknod(2)` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceNodeKind {
    Char,
    Block,
    Fifo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_access_parses_subsets_and_refuses_junk() {
        assert_eq!(DeviceAccess::parse("rwm"), Some(DeviceAccess::ALL));
        assert_eq!(
            DeviceAccess::parse("mr").map(|a| a.letters()),
            Some("rm".into())
        );
        assert_eq!(DeviceAccess::parse(""), None);
        assert_eq!(DeviceAccess::parse("rr"), None);
        assert_eq!(DeviceAccess::parse("x"), None);
    }

    #[test]
    fn capability_names_parse_with_or_without_prefix() {
        assert_eq!(capability_number("CAP_CHOWN"), Some(0));
        assert_eq!(capability_number("net_admin"), Some(12));
        assert_eq!(capability_number("CAP_NOPE"), None);
        assert_eq!(capability_name(21), "CAP_SYS_ADMIN");
    }
}
