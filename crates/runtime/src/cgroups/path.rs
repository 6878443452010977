//! Where a container's cgroup goes: `linux.cgroupsPath` to one absolute group path.
//!
//! Owns [`cgroup_path`] and [`OwnCgroups`] (the runtime's own cgroup, parsed from
//! `/proc/self/cgroup` by the pure [`OwnCgroups::from_proc_cgroup`]). It does not touch
//! any cgroup directory.
//!
//! ```text
//!   none            -> /moor/<id>
//!   /a/b (absolute) -> /a/b in every hierarchy
//!   a/b  (relative) -> <own cgroup>/a/b
//! ```
//!
//! One path serves every hierarchy, and that path is all the container's state needs to
//! keep: `delete`, run later from another process in another cgroup, finds the same
//! groups. runc's fs driver instead resolves a relative path against the runtime's own
//! cgroup in each v1 hierarchy separately, and must store one path per controller. Here
//! a relative path is resolved against one own cgroup: the cgroup2 one on unified and
//! hybrid hosts (systemd keeps `name=systemd` in step with it), and on v1 hosts the
//! `name=systemd` one, or the freezer one where systemd is absent.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::error::{CgroupError, Result};
use super::layout::{CgroupLayout, CgroupMode, Hierarchy};

const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

/// The directory under every hierarchy root where containers get their groups by default.
pub const DEFAULT_PARENT: &str = "/moor";

/// The runtime's own cgroup, the base of relative `cgroupsPath` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCgroups {
    base: PathBuf,
}

impl OwnCgroups {
    /// Reads `/proc/self/cgroup`.
    pub fn detect(layout: &CgroupLayout) -> Result<Self> {
        let text = std::fs::read_to_string(PROC_SELF_CGROUP).map_err(|source| {
            CgroupError::ReadOwnCgroups {
                path: PathBuf::from(PROC_SELF_CGROUP),
                source,
            }
        })?;
        Self::from_proc_cgroup(&text, layout)
    }

    /// Parses the text of `/proc/<pid>/cgroup` (`ID:CONTROLLERS:PATH` lines) and picks the
    /// base for relative paths on `layout` (see the module documentation).
    pub fn from_proc_cgroup(text: &str, layout: &CgroupLayout) -> Result<Self> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            entries.push(parse_line(index + 1, line)?);
        }
        let (path, hierarchy): (&Path, Option<&Hierarchy>) = match layout.mode() {
            CgroupMode::Unified | CgroupMode::Hybrid => {
                let entry = entries
                    .iter()
                    .find(|e| e.id == 0 && e.controllers.is_empty())
                    .ok_or_else(|| CgroupError::OwnCgroupMissing {
                        hierarchy: "cgroup2".into(),
                    })?;
                (&entry.path, layout.unified())
            }
            CgroupMode::V1 => {
                let pick = ["name=systemd", "freezer"].into_iter().find_map(|ctl| {
                    entries
                        .iter()
                        .find(|e| e.controllers.iter().any(|c| c == ctl))
                        .map(|e| (e, ctl))
                });
                let (entry, controller) = pick.ok_or_else(|| CgroupError::OwnCgroupMissing {
                    hierarchy: "freezer".into(),
                })?;
                (&entry.path, layout.hierarchy(controller))
            }
        };
        let mount_root = hierarchy.map_or(Path::new("/"), |h| h.mount_root.as_path());
        let base = match path.strip_prefix(mount_root) {
            Ok(rest) => Path::new("/").join(rest),
            Err(_) => {
                return Err(CgroupError::OwnCgroupOutsideMount {
                    path: path.to_path_buf(),
                    mount_root: mount_root.to_path_buf(),
                });
            }
        };
        Ok(OwnCgroups { base })
    }

    /// An own cgroup given directly (tests, or a caller that knows better).
    pub fn at(base: impl Into<PathBuf>) -> Self {
        OwnCgroups { base: base.into() }
    }

    /// The group relative paths are resolved against.
    pub fn base(&self) -> &Path {
        &self.base
    }
}

#[derive(Debug)]
struct ProcEntry {
    id: u32,
    controllers: Vec<String>,
    path: PathBuf,
}

fn parse_line(line_no: usize, line: &str) -> Result<ProcEntry> {
    let bad = |reason: &str| CgroupError::OwnCgroupsLine {
        line: line_no,
        reason: reason.to_owned(),
    };
    // The path may itself contain ':', so split only twice.
    let mut parts = line.splitn(3, ':');
    let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected ID:CONTROLLERS:PATH"));
    };
    let id = id
        .parse()
        .map_err(|_| bad("hierarchy id is not a number"))?;
    if !path.starts_with('/') {
        return Err(bad("path is not absolute"));
    }
    let controllers = controllers
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(ProcEntry {
        id,
        controllers,
        path: PathBuf::from(path),
    })
}

/// The group path for a container: `config_path` (its `linux.cgroupsPath`) made absolute
/// and checked, or `/moor/<id>` when it is absent.
pub fn cgroup_path(config_path: Option<&Path>, id: &str, own: &OwnCgroups) -> Result<PathBuf> {
    let Some(given) = config_path else {
        check_id(id)?;
        return Ok(Path::new(DEFAULT_PARENT).join(id));
    };
    let invalid = |reason| CgroupError::InvalidPath {
        path: given.to_path_buf(),
        reason,
    };
    let bytes = given.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(invalid("empty"));
    }
    if bytes.contains(&0) {
        return Err(invalid("contains NUL"));
    }
    if given.is_relative()
        && !bytes.contains(&b'/')
        && bytes.iter().filter(|b| **b == b':').count() == 2
    {
        return Err(CgroupError::SystemdPathUnsupported {
            path: given.to_path_buf(),
        });
    }
    let mut resolved = if given.is_absolute() {
        PathBuf::from("/")
    } else {
        own.base().to_path_buf()
    };
    for component in given.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(invalid("contains a .. component")),
            Component::Normal(name) => resolved.push(name),
            Component::Prefix(_) => return Err(invalid("has a prefix")),
        }
    }
    check_group_path(&resolved)?;
    Ok(resolved)
}

/// Checks a group path handed to [`super::Cgroup`]: absolute, clean and not a
/// hierarchy's root (removing a container must never aim at the root group).
pub(crate) fn check_group_path(path: &Path) -> Result<()> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_absolute() {
        return Err(invalid("is not absolute"));
    }
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(invalid("contains NUL"));
    }
    let mut names = 0;
    for component in path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(_) => names += 1,
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid("is not a clean path (. or .. components)"));
            }
        }
    }
    if names == 0 {
        return Err(invalid("is the root of the hierarchy"));
    }
    Ok(())
}

fn check_id(id: &str) -> Result<()> {
    let invalid = |reason| CgroupError::InvalidId {
        id: id.to_owned(),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("empty"));
    }
    if id.contains('/') || id.contains('\0') {
        return Err(invalid("contains / or NUL"));
    }
    if id == "." || id == ".." {
        return Err(invalid("is . or .."));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
