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

impl Cgroup {
    /// Opens every member group's `cgroup.procs` for writing (close-on-exec, so nothing
    /// leaks into the container's program).
    pub fn join_handle(&self) -> Result<CgroupJoin> {
        let mut procs = Vec::with_capacity(self.members().len());
        for member in self.members() {
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
