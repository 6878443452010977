//! `kill`: a signal to the container's init, or with `--all` to every process in its
//! cgroup. Signals go through a pidfd checked against the recorded start time, so a
//! recycled PID never receives one.

use crate::cgroups::{Cgroup, CgroupLayout};
use crate::error::RuntimeError;
use crate::state::StateStore;

use super::{Status, locked_status};

/// Parses `TERM`, `SIGTERM`, `sigterm` or `15`.
pub fn parse_signal(text: &str) -> Option<libc::c_int> {
    if let Ok(n) = text.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as libc::c_int)
}

pub fn kill(
    store: &StateStore,
    id: &str,
    signal: libc::c_int,
    all: bool,
) -> Result<(), RuntimeError> {
    let dir = store.open(id)?;
    let (stored, status) = locked_status(&dir)?;
    if !status.can_kill() {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status,
            verb: "kill",
        });
    }
    let cgroup = CgroupLayout::detect().and_then(|l| Cgroup::open(&l, &stored.cgroup_path))?;
    if all {
        let sig = nix::sys::signal::Signal::try_from(signal).map_err(|_| RuntimeError::Setup {
            id: id.to_string(),
            message: format!(
                "signal {signal} cannot be sent with --all (real-time signals go to the init only)"
            ),
        })?;
        cgroup.kill_all(sig)?;
    } else if !stored
        .init
        .signal(signal)
        .map_err(RuntimeError::io(id, "signal the init process"))?
    {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status: Status::Stopped,
            verb: "kill",
        });
    }
    // A frozen process cannot act on a fatal signal until it thaws (cgroup v1).
    if status == Status::Paused && signal == libc::SIGKILL {
        cgroup.thaw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_number_and_case() {
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("SIGKILL"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("sigusr1"), Some(libc::SIGUSR1));
        assert_eq!(parse_signal("9"), Some(9));
        for bad in ["0", "65", "-1", "NOPE", "", "SIG"] {
            assert_eq!(parse_signal(bad), None, "{bad}");
        }
    }
}
