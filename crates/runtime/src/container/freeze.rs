//! `pause` and `resume`: freezing and thawing every process of the container through its
//! cgroup (the v1 freezer, or `cgroup.freeze` on the unified hierarchy).

use crate::cgroups::{Cgroup, CgroupLayout};
use crate::error::RuntimeError;
use crate::state::StateStore;

use super::locked_status;

pub fn pause(store: &StateStore, id: &str) -> Result<(), RuntimeError> {
    let dir = store.open(id)?;
    let (stored, status) = locked_status(&dir)?;
    if !status.can_pause() {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status,
            verb: "pause",
        });
    }
    let cgroup = CgroupLayout::detect().and_then(|l| Cgroup::open(&l, &stored.cgroup_path))?;
    cgroup.freeze()?;
    Ok(())
}

pub fn resume(store: &StateStore, id: &str) -> Result<(), RuntimeError> {
    let dir = store.open(id)?;
    let (stored, status) = locked_status(&dir)?;
    if !status.can_resume() {
        return Err(RuntimeError::WrongState {
            id: id.to_string(),
            status,
            verb: "resume",
        });
    }
    let cgroup = CgroupLayout::detect().and_then(|l| Cgroup::open(&l, &stored.cgroup_path))?;
    cgroup.thaw()?;
    Ok(())
}
