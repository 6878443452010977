//! Which cgroup hierarchies this host has, and where they are mounted.
//!
//! Owns [`CgroupLayout`] and [`CgroupMode`]: reading `/proc/self/mountinfo` (the pure
//! parser [`CgroupLayout::from_mountinfo`] plus the thin [`CgroupLayout::detect`]),
//! and the fake layouts tests build over a temporary directory. It does not create,
//! open or change any group; [`super::Cgroup`] does that from a layout.
//!
//! A v1 hierarchy is keyed by the controllers bound to it: `cpu` and `cpuacct` find the
//! same [`Hierarchy`] when they are co-mounted as `cpu,cpuacct`, and named hierarchies
//! appear as `name=systemd`. The first mount of a hierarchy wins; later binds of the
//! same hierarchy (or of a subtree of it) are ignored.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::device_filter::DeviceFilter;
use super::error::{CgroupError, Result};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Super-block options of a v1 cgroup mount that are not controllers.
const NON_CONTROLLER_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "clone_children",
    "xattr",
    "cpuset_v2_mode",
    "nsdelegate",
    "favordynmods",
    "memory_localevents",
    "memory_recursiveprot",
    "memory_hugetlb_accounting",
    "pids_localevents",
    "none",
    "all",
];

/// How the host's cgroups are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Only v1 hierarchies (a cgroup2 tree, if mounted, is not used).
    V1,
    /// v1 hierarchies hold the resource controllers; a cgroup2 tree without controllers
    /// (usually `/sys/fs/cgroup/unified`) holds membership, freezing and device filters.
    Hybrid,
    /// One cgroup2 tree with every controller.
    Unified,
}

impl CgroupMode {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::Unified => "unified",
        }
    }
}

/// One mounted cgroup hierarchy (v1) or the cgroup2 tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where the hierarchy is mounted.
    pub mount_point: PathBuf,
    /// Which directory of the hierarchy the mount shows: `/` unless it is a bind of a
    /// subtree (a container without a cgroup namespace sees `/docker/<id>` here).
    pub mount_root: PathBuf,
    /// Controllers bound to a v1 hierarchy (`cpu`, `cpuacct`, `name=systemd`); empty for
    /// the cgroup2 tree.
    pub controllers: Vec<String>,
}

impl Hierarchy {
    /// The last component of the mount point (`cpu,cpuacct`, `memory`, `unified`): the
    /// name a container sees under its own `/sys/fs/cgroup`.
    pub fn mount_name(&self) -> String {
        self.mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// True when `controller` is bound to this hierarchy.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// The directory of the group at `path` (absolute within the hierarchy).
    pub fn group_dir(&self, path: &Path) -> PathBuf {
        self.mount_point
            .join(path.strip_prefix("/").unwrap_or(path))
    }
}

/// The cgroup hierarchies of this host, and how device filters are attached on it.
#[derive(Debug, Clone)]
pub struct CgroupLayout {
    mode: CgroupMode,
    v1: Vec<Hierarchy>,
    unified: Option<Hierarchy>,
    device_filter: DeviceFilter,
}

impl CgroupLayout {
    /// Reads `/proc/self/mountinfo`.
    pub fn detect() -> Result<Self> {
        let bytes = std::fs::read(MOUNTINFO).map_err(|source| CgroupError::ReadMountTable {
            path: PathBuf::from(MOUNTINFO),
            source,
        })?;
        // Mount points are ASCII in practice; a line with other bytes only matters if it
        // is a cgroup mount, and then the path errors out where it is used.
        Self::from_mountinfo(&String::from_utf8_lossy(&bytes))
    }

    /// Parses the text of a `mountinfo` file. Lines that are not cgroup mounts, or too
    /// garbled to be one, are ignored; a cgroup line with a bad path is an error.
    pub fn from_mountinfo(text: &str) -> Result<Self> {
        let mut v1: Vec<Hierarchy> = Vec::new();
        let mut unified: Option<Hierarchy> = None;
        for (index, line) in text.lines().enumerate() {
            match parse_line(index + 1, line)? {
                Parsed::Ignore => {}
                Parsed::Unified(h) => {
                    if unified.is_none() {
                        unified = Some(h);
                    }
                }
                Parsed::V1(h) => {
                    if !v1
                        .iter()
                        .any(|seen| h.controllers.iter().any(|c| seen.has(c)))
                    {
                        v1.push(h);
                    }
                }
            }
        }
        let has_v1_controllers = v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        let mode = match (&unified, has_v1_controllers) {
            (Some(_), true) => CgroupMode::Hybrid,
            (Some(_), false) => CgroupMode::Unified,
            (None, _) if !v1.is_empty() => CgroupMode::V1,
            (None, _) => return Err(CgroupError::NoCgroupMounts),
        };
        Ok(CgroupLayout {
            mode,
            v1,
            unified,
            device_filter: DeviceFilter::Kernel,
        })
    }

    /// A unified layout whose cgroup2 tree is the directory `root`, with device filters
    /// recorded instead of loaded (see [`CgroupLayout::recorded_device_filters`]).
    pub fn fake_unified(root: &Path) -> Self {
        CgroupLayout {
            mode: CgroupMode::Unified,
            v1: Vec::new(),
            unified: Some(fake_hierarchy(root.to_path_buf(), Vec::new())),
            device_filter: DeviceFilter::recorder(),
        }
    }

    /// A v1 layout with one hierarchy per entry of `hierarchies` (`"memory"`,
    /// `"cpu,cpuacct"`, `"name=systemd"`), each mounted at `root/<entry>`.
    pub fn fake_v1(root: &Path, hierarchies: &[&str]) -> Self {
        CgroupLayout {
            mode: CgroupMode::V1,
            v1: fake_v1_hierarchies(root, hierarchies),
            unified: None,
            device_filter: DeviceFilter::recorder(),
        }
    }

    /// A hybrid layout: the v1 hierarchies of [`CgroupLayout::fake_v1`] plus a cgroup2
    /// tree at `root/unified`.
    pub fn fake_hybrid(root: &Path, hierarchies: &[&str]) -> Self {
        CgroupLayout {
            mode: CgroupMode::Hybrid,
            v1: fake_v1_hierarchies(root, hierarchies),
            unified: Some(fake_hierarchy(root.join("unified"), Vec::new())),
            device_filter: DeviceFilter::recorder(),
        }
    }

    /// The same host seen as pure v1: the cgroup2 tree is left unused. `None` when there
    /// is no v1 hierarchy to use.
    pub fn without_unified(&self) -> Option<Self> {
        if self.v1.is_empty() {
            return None;
        }
        Some(CgroupLayout {
            mode: CgroupMode::V1,
            v1: self.v1.clone(),
            unified: None,
            device_filter: self.device_filter.clone(),
        })
    }

    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    /// The cgroup2 tree, in hybrid and unified modes.
    pub fn unified(&self) -> Option<&Hierarchy> {
        match self.mode {
            CgroupMode::V1 => None,
            CgroupMode::Hybrid | CgroupMode::Unified => self.unified.as_ref(),
        }
    }

    /// The v1 hierarchy `controller` is bound to (`memory`, `cpuacct`, `name=systemd`),
    /// in v1 and hybrid modes.
    pub fn hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        match self.mode {
            CgroupMode::Unified => None,
            CgroupMode::V1 | CgroupMode::Hybrid => self.v1.iter().find(|h| h.has(controller)),
        }
    }

    /// Every v1 hierarchy, in mount order (empty in unified mode).
    pub fn v1_hierarchies(&self) -> &[Hierarchy] {
        match self.mode {
            CgroupMode::Unified => &[],
            CgroupMode::V1 | CgroupMode::Hybrid => &self.v1,
        }
    }

    /// How device filters are attached on this layout.
    pub(crate) fn device_filter(&self) -> &DeviceFilter {
        &self.device_filter
    }

    /// The device filters attached so far on a fake layout (directory and program);
    /// always empty on a real one.
    pub fn recorded_device_filters(&self) -> Vec<super::RecordedDeviceFilter> {
        self.device_filter.recorded()
    }
}

fn fake_hierarchy(mount_point: PathBuf, controllers: Vec<String>) -> Hierarchy {
    Hierarchy {
        mount_point,
        mount_root: PathBuf::from("/"),
        controllers,
    }
}

fn fake_v1_hierarchies(root: &Path, hierarchies: &[&str]) -> Vec<Hierarchy> {
    hierarchies
        .iter()
        .map(|entry| {
            fake_hierarchy(
                root.join(entry),
                entry.split(',').map(str::to_owned).collect(),
            )
        })
        .collect()
}

enum Parsed {
    Ignore,
    V1(Hierarchy),
    Unified(Hierarchy),
}

/// One line: `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
/// SUPER_OPTIONS`.
fn parse_line(line_no: usize, line: &str) -> Result<Parsed> {
    let fields: Vec<&str> = line.split(' ').collect();
    // The separator comes after at least six fields; an optional field is never "-".
    let Some(sep) = fields.iter().skip(6).position(|f| *f == "-").map(|p| p + 6) else {
        if !line.trim().is_empty() {
            tracing::debug!(line = line_no, "mountinfo line without separator ignored");
        }
        return Ok(Parsed::Ignore);
    };
    // FSTYPE SOURCE SUPER_OPTIONS: a line cut short is not one to trust.
    let (Some(fstype), Some(super_options)) = (fields.get(sep + 1), fields.get(sep + 3)) else {
        return Ok(Parsed::Ignore);
    };
    let is_v2 = match *fstype {
        "cgroup2" => true,
        "cgroup" => false,
        _ => return Ok(Parsed::Ignore),
    };
    let bad = |reason: String| CgroupError::MountTableLine {
        line: line_no,
        reason,
    };
    let mount_root = decode_path(fields[3]).map_err(|r| bad(format!("root: {r}")))?;
    let mount_point = decode_path(fields[4]).map_err(|r| bad(format!("mount point: {r}")))?;
    if !mount_root.is_absolute() || !mount_point.is_absolute() {
        return Err(bad("root and mount point must be absolute paths".into()));
    }
    if is_v2 {
        return Ok(Parsed::Unified(Hierarchy {
            mount_point,
            mount_root,
            controllers: Vec::new(),
        }));
    }
    let controllers: Vec<String> = super_options
        .split(',')
        .filter(|opt| {
            !opt.is_empty()
                && !NON_CONTROLLER_OPTIONS.contains(opt)
                && (opt.starts_with("name=") || !opt.contains('='))
        })
        .map(str::to_owned)
        .collect();
    if controllers.is_empty() {
        tracing::debug!(line = line_no, "cgroup mount without controllers ignored");
        return Ok(Parsed::Ignore);
    }
    Ok(Parsed::V1(Hierarchy {
        mount_point,
        mount_root,
        controllers,
    }))
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\134` for a backslash).
fn decode_path(field: &str) -> std::result::Result<PathBuf, String> {
    if field.is_empty() {
        return Err("empty".into());
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
                .ok_or_else(|| format!("bad escape in {field:?}"))?;
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            let byte = u8::try_from(value).map_err(|_| format!("bad escape in {field:?}"))?;
            if byte == 0 {
                return Err(format!("NUL in {field:?}"));
            }
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(PathBuf::from(OsString::from_vec(out)))
}

#[cfg(test)]
mod tests;
