//! The runtime verbs, runc-compatible for those moor has.
//!
//! ```text
//!            create            start                 (init exits)
//!   (none) ─────────► Created ───────► Running ◄──────────────► Stopped ──delete──► (none)
//!                        │              pause │ ▲ resume            ▲
//!                        │                    ▼ │                   │
//!                        │                   Paused ── kill -9 ─────┘
//!                        └──────────── delete (kills it) ──────────────────────────► (none)
//! ```
//!
//! The status is derived, never stored (see [`crate::state`]); each verb checks it with a
//! `can_*` guard and refuses with the status it found.

mod delete;
mod exec;
mod foreground;
mod freeze;
mod handshake;
mod launch;
mod signal;
mod start;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cgroups::{Cgroup, CgroupLayout, FreezerState};
use crate::error::RuntimeError;
use crate::identity::Liveness;
use crate::state::{ContainerDir, StateStore, StoredState};

pub use delete::delete;
pub use exec::{ExecOptions, exec};
pub use freeze::{pause, resume};
pub use launch::{CreateOptions, Launch, create, run};
pub use signal::{kill, parse_signal};
pub use start::start;

/// The OCI runtime-spec version moor reports.
pub const OCI_VERSION: &str = "1.2.0";

/// A container's status, as the OCI runtime spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

impl Status {
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    pub fn can_kill(self) -> bool {
        self != Status::Stopped
    }
    pub fn can_pause(self) -> bool {
        self == Status::Running
    }
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }
    pub fn can_exec(self) -> bool {
        matches!(self, Status::Created | Status::Running)
    }
    /// Without `--force`: a stopped container, or a created one (whose init has not run
    /// the user's program yet), as runc allows.
    pub fn can_delete(self, force: bool) -> bool {
        force || matches!(self, Status::Stopped | Status::Created)
    }
}

/// The state a verb reports, shaped like runc's `state` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    /// The init process's PID on the host; 0 once stopped.
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Derives the status: init gone (or a zombie) means stopped; the fifo still there
/// means created; a frozen cgroup means paused.
pub(crate) fn status_of(dir_path: &Path, state: &StoredState) -> Status {
    match state.init.liveness() {
        Liveness::Gone | Liveness::Zombie => return Status::Stopped,
        Liveness::Alive => {}
    }
    if dir_path.join("exec.fifo").exists() {
        return Status::Created;
    }
    let frozen = CgroupLayout::detect()
        .and_then(|layout| Cgroup::open(&layout, &state.cgroup_path))
        .and_then(|cg| cg.freezer_state())
        .map(|s| s != FreezerState::Thawed)
        .unwrap_or(false);
    if frozen {
        Status::Paused
    } else {
        Status::Running
    }
}

fn report(dir_path: &Path, state: StoredState) -> ContainerState {
    let status = status_of(dir_path, &state);
    ContainerState {
        oci_version: OCI_VERSION.to_string(),
        pid: if status == Status::Stopped {
            0
        } else {
            state.init.pid
        },
        id: state.id,
        status,
        bundle: state.bundle,
        rootfs: state.rootfs,
        created: state.created,
        owner: state.owner,
        annotations: state.annotations,
    }
}

/// `state ID`. Reads without taking the container's lock (the state file is replaced
/// atomically), so it answers even while another verb works on the container.
pub fn state(store: &StateStore, id: &str) -> Result<ContainerState, RuntimeError> {
    crate::state::validate_id(id)?;
    let dir = store.root().join(id);
    let stored = crate::state::peek(&dir, id)?;
    Ok(report(&dir, stored))
}

/// `list`: every container with a state file, by id.
pub fn list(store: &StateStore) -> Result<Vec<ContainerState>, RuntimeError> {
    let mut out = Vec::new();
    for id in store.list()? {
        let dir = store.root().join(&id);
        // A container deleted while we list is simply not listed.
        if let Ok(stored) = crate::state::peek(&dir, &id) {
            out.push(report(&dir, stored));
        }
    }
    Ok(out)
}

/// The status of a locked container, and its stored state.
pub(crate) fn locked_status(dir: &ContainerDir) -> Result<(StoredState, Status), RuntimeError> {
    let stored = dir.read_state()?;
    let status = status_of(dir.path(), &stored);
    Ok((stored, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_follow_the_lifecycle() {
        assert!(Status::Created.can_start());
        assert!(!Status::Running.can_start());
        assert!(!Status::Stopped.can_kill());
        assert!(Status::Paused.can_kill());
        assert!(Status::Running.can_pause() && !Status::Paused.can_pause());
        assert!(Status::Paused.can_resume() && !Status::Running.can_resume());
        assert!(!Status::Paused.can_exec() && !Status::Stopped.can_exec());
        assert!(!Status::Running.can_delete(false) && Status::Running.can_delete(true));
        assert!(Status::Stopped.can_delete(false) && Status::Created.can_delete(false));
    }

    #[test]
    fn state_json_is_shaped_like_runc() {
        let s = ContainerState {
            oci_version: OCI_VERSION.into(),
            id: "a".into(),
            pid: 7,
            status: Status::Running,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            owner: "root".into(),
            annotations: BTreeMap::new(),
        };
        let v: serde_json::Value = serde_json::to_value(&s).expect("json");
        assert_eq!(v["ociVersion"], OCI_VERSION);
        assert_eq!(v["status"], "running");
        assert_eq!(v["pid"], 7);
        assert!(v.get("annotations").is_none());
    }
}
