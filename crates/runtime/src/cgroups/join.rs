//! Joining a container's cgroup from inside its child, after the paths are gone.
//!
//! Owns [`CgroupJoin`]: the `cgroup.procs` files of every member group, opened while the
//! runtime can still see `/sys/fs/cgroup`, and written from the container's child after
//! `pivot_root`, just before `execve`. Joining last means none of the runtime's own
//! memory (its heap, the pages touched while setting up) is charged to the container:
//! v1 does not move charges by default and v2 never does.
//!
//! ```text
//!   runtime:  let join = cgroup.join_handle()?;      // opens the fds
//!   child:    ... mounts, pivot_root ...
//!             join.join_self()?;                      // writes "0", closes the fds
//!             unshare(CLONE_NEWCGROUP) if asked       // after joining, so the new
//!             execve(...)                             // namespace is rooted at the group
//! ```
//!
//! It does not create groups ([`super::Cgroup::create`]).

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::error::{CgroupError, Result};
use super::group::Cgroup;

/// Open `cgroup.procs` files of a container's groups, ready for the child to join.
#[derive(Debug)]
pub struct CgroupJoin {
    procs: Vec<(PathBuf, File)>,
}

/// How a container's process enters its groups.
#[derive(Debug)]
pub struct CgroupEntry {
    /// The cgroup2 group to create the process in (`clone3(CLONE_INTO_CGROUP)`), when
    /// that charges nothing of the runtime to the container.
    pub birth: Option<std::os::fd::OwnedFd>,
    /// The groups the process writes itself into just before `execve`.
    pub join: CgroupJoin,
}

impl Cgroup {
    /// Opens every member group's `cgroup.procs` for writing (close-on-exec, so nothing
    /// leaks into the container's program).
    pub fn join_handle(&self) -> Result<CgroupJoin> {
        self.join_members(|_| true)
    }

    /// Splits entry into the groups between birth and a late join.
    ///
    /// A migration (a write to `cgroup.procs`) makes the kernel wait for an RCU grace
    /// period unless another migration just happened: 4-20 ms on a quiet host, more
    /// than the rest of a container start. A process born in its group pays nothing.
    /// Birth in the group would charge the set-up child's memory to it, so the cgroup2
    /// group is a birth group only when it does no memory accounting (no `memory` in
    /// its `cgroup.controllers`: always so on hybrid hosts, and on unified ones unless a
    /// parent enabled memory); v1 groups are always joined late.
    pub fn entry(&self) -> Result<CgroupEntry> {
        let birth_member = self.members().iter().find(|m| {
            m.unified
                && std::fs::read_to_string(m.dir.join("cgroup.controllers"))
                    .is_ok_and(|c| !c.split_whitespace().any(|name| name == "memory"))
        });
        let birth = match birth_member {
            Some(member) => Some(
                File::options()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                    .open(&member.dir)
                    .map_err(|source| CgroupError::OpenProcs {
                        path: member.dir.clone(),
                        source,
                    })?
                    .into(),
            ),
            None => None,
        };
        let late = birth_member.map(|m| m.dir.clone());
        let join = self.join_members(|m| Some(&m.dir) != late.as_ref())?;
        Ok(CgroupEntry { birth, join })
    }

    fn join_members(&self, wanted: impl Fn(&super::Member) -> bool) -> Result<CgroupJoin> {
        let mut procs = Vec::with_capacity(self.members().len());
        for member in self.members().iter().filter(|m| wanted(m)) {
            let path = member.dir.join("cgroup.procs");
            let file = File::options()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
                .map_err(|source| CgroupError::OpenProcs {
                    path: path.clone(),
                    source,
                })?;
            procs.push((path, file));
        }
        Ok(CgroupJoin { procs })
    }
}

impl CgroupJoin {
    /// Moves the calling process into every group (`0` means "the writer") and closes
    /// the files. Only the fds are used: the paths, kept for error messages, may no
    /// longer exist in this mount namespace.
    pub fn join_self(self) -> Result<()> {
        for (path, file) in self.procs {
            let written = nix::unistd::write(&file, b"0").map_err(|source| CgroupError::Join {
                path: path.clone(),
                source,
            })?;
            if written != 1 {
                return Err(CgroupError::Join {
                    path,
                    source: nix::Error::EIO,
                });
            }
        }
        Ok(())
    }

    /// The open descriptors, so the child can keep them while it closes what else it
    /// inherited.
    pub fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.procs.iter().map(|(_, f)| f.as_raw_fd()).collect()
    }

    /// How many groups this handle joins.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}
