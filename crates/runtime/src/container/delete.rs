//! `delete [--force]`: kills what is left of a container, removes its cgroups and its
//! state. Deleting an id that does not exist is an error, except with `--force`.
//!
//! A container whose `state.json` cannot be read is an error for every verb but
//! `delete --force`, which must always be able to get rid of it: it kills what it can
//! still find (see [`delete_corrupt`]) and removes the directory.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cgroups::{self, Cgroup, CgroupLayout};
use crate::error::RuntimeError;
use crate::identity::Liveness;
use crate::state::{ContainerDir, StateError, StateStore};

use super::{Status, locked_status};

/// How long a killed init may take to die before delete gives up.
const KILL_DEADLINE: Duration = Duration::from_secs(10);

pub fn delete(store: &StateStore, id: &str, force: bool) -> Result<(), RuntimeError> {
    let dir = match store.open(id) {
        Ok(dir) => dir,
        Err(StateError::NotFound { .. }) if force => {
            store.remove_unfinished(id)?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let (stored, status) = match locked_status(&dir) {
        Ok(found) => found,
        Err(RuntimeError::State(StateError::Corrupt { .. })) if force => {
            return delete_corrupt(dir);
        }
        Err(e) => return Err(e),
    };
    if !status.can_delete(force) {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status,
            verb: "delete (use --force)",
        });
    }
    let layout = CgroupLayout::detect()?;
    // A group removed behind the runtime's back (by hand, or by the delete of another
    // container given the same cgroupsPath) must not make the container undeletable.
    let cgroup = match Cgroup::open(&layout, &stored.cgroup_path) {
        Ok(cgroup) => Some(cgroup),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    if status != Status::Stopped
        && let Some(pidfd) = stored
            .init
            .open()
            .map_err(RuntimeError::io(id, "open the init process"))?
    {
        let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        if status == Status::Paused
            && let Some(cgroup) = &cgroup
        {
            cgroup.thaw()?;
        }
        let deadline = Instant::now() + KILL_DEADLINE;
        while stored.init.liveness() == Liveness::Alive {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RuntimeError::Timeout {
                    id: id.to_string(),
                    what: "the init process to die",
                });
            }
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            let ms = left.as_millis().min(u16::MAX as u128) as u16;
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
    }
    if let Some(cgroup) = cgroup {
        // Without a PID namespace the init's death leaves its descendants running.
        cgroup.kill_all(nix::sys::signal::Signal::SIGKILL)?;
        cgroup.destroy()?;
    }
    dir.remove()?;
    Ok(())
}

/// `delete --force` of a container whose state file is unreadable: the init's identity
/// and the cgroup path are lost with it, so it kills, best effort, a created init still
/// waiting on the exec fifo (found by the fifo it holds open) and whatever is in the
/// cgroup named by the `config.json` copied at create, then removes the directory.
fn delete_corrupt(dir: ContainerDir) -> Result<(), RuntimeError> {
    kill_fifo_holders(&dir.fifo_path());
    if let Some(cgroup) = saved_cgroup(&dir) {
        let _ = cgroup.kill_all(nix::sys::signal::Signal::SIGKILL);
        let _ = cgroup.destroy();
    }
    dir.remove()?;
    Ok(())
}

/// The container's cgroup as `linux.cgroupsPath` of the saved configuration names it.
fn saved_cgroup(dir: &ContainerDir) -> Option<Cgroup> {
    let bytes = crate::spec::read_bounded(&dir.config_path()).ok()?;
    let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let given = config
        .pointer("/linux/cgroupsPath")
        .and_then(serde_json::Value::as_str)
        .map(Path::new);
    let layout = CgroupLayout::detect().ok()?;
    let own = cgroups::OwnCgroups::detect(&layout).ok()?;
    let path = cgroups::cgroup_path(given, dir.id(), &own).ok()?;
    Cgroup::open(&layout, &path).ok()
}

/// SIGKILLs every process holding `fifo` open: before `start`, the only one is the
/// container's init (which has not joined its cgroup yet).
fn kill_fifo_holders(fifo: &Path) {
    let Ok(target) = std::fs::metadata(fifo) else {
        return;
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::metadata(fd.path())
                .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        });
        if holds {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
