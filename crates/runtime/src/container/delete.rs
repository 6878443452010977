//! `delete [--force]`: kills what is left of a container, removes its cgroups and its
//! state. Deleting an id that does not exist is an error, except with `--force`.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cgroups::{Cgroup, CgroupLayout};
use crate::error::RuntimeError;
use crate::identity::Liveness;
use crate::state::{StateError, StateStore};

use super::{Status, locked_status};

/// How long a killed init may take to die before delete gives up.
const KILL_DEADLINE: Duration = Duration::from_secs(10);

pub fn delete(store: &StateStore, id: &str, force: bool) -> Result<(), RuntimeError> {
    let dir = match store.open(id) {
        Ok(dir) => dir,
        Err(StateError::NotFound { .. }) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let (stored, status) = locked_status(&dir)?;
    if !status.can_delete(force) {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status,
            verb: "delete (use --force)",
        });
    }
    let layout = CgroupLayout::detect()?;
    let cgroup = Cgroup::open(&layout, &stored.cgroup_path)?;
    if status != Status::Stopped
        && let Some(pidfd) = stored
            .init
            .open()
            .map_err(RuntimeError::io(id, "open the init process"))?
    {
        let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        if status == Status::Paused {
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
    // Without a PID namespace the init's death leaves its descendants running.
    cgroup.kill_all(nix::sys::signal::Signal::SIGKILL)?;
    cgroup.destroy()?;
    dir.remove()?;
    Ok(())
}
