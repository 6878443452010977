//! What a container sees at its own `/sys/fs/cgroup`: its groups, bound in.
//!
//! Owns [`CgroupBind`] and [`Cgroup::container_mounts`], a pure function of the
//! members. It does not mount anything (the runtime's mount code binds each entry,
//! read-only or not as the configuration says, over a tmpfs at `/sys/fs/cgroup` on v1 and
//! hybrid hosts) and shows nothing of hierarchies the container has no group in.
//!
//! ```text
//!   v1       <mount name>/ per member (memory/, cpu,cpuacct/ plus the aliases cpu and
//!            cpuacct as symbolic links, as hosts have them)
//!   hybrid   the same, plus unified/
//!   unified  the group itself at /sys/fs/cgroup
//! ```

use std::path::PathBuf;

use super::group::Cgroup;
use super::layout::CgroupMode;

/// One bind mount of a container's group into its `/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupBind {
    /// The host directory of the group.
    pub source: PathBuf,
    /// Where it goes, relative to `/sys/fs/cgroup` inside the container; empty for
    /// `/sys/fs/cgroup` itself.
    pub destination: PathBuf,
    /// Names to create next to `destination` as symbolic links to it, for co-mounted
    /// controllers (`cpu` and `cpuacct` for `cpu,cpuacct`).
    pub aliases: Vec<String>,
}

impl Cgroup {
    /// The binds that show the container its own groups, in member order.
    pub fn container_mounts(&self) -> Vec<CgroupBind> {
        self.members()
            .iter()
            .map(|member| {
                if member.unified {
                    let destination = match self.mode() {
                        CgroupMode::Unified => PathBuf::new(),
                        CgroupMode::V1 | CgroupMode::Hybrid => {
                            PathBuf::from(member.hierarchy.mount_name())
                        }
                    };
                    return CgroupBind {
                        source: member.dir.clone(),
                        destination,
                        aliases: Vec::new(),
                    };
                }
                let name = member.hierarchy.mount_name();
                let aliases = if member.hierarchy.controllers.len() > 1 {
                    member
                        .hierarchy
                        .controllers
                        .iter()
                        .filter(|c| **c != name && !c.starts_with("name="))
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                };
                CgroupBind {
                    source: member.dir.clone(),
                    destination: PathBuf::from(name),
                    aliases,
                }
            })
            .collect()
    }
}
