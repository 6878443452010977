//! Resource limits as cgroup v2 files, and delegating controllers down the tree.
//!
//! Owns the conversions from the OCI values (cpu shares to `cpu.weight`, memory+swap to
//! `memory.swap.max`, quota and period to `cpu.max`), the pure list of writes
//! ([`writes`]), and [`enable_controllers`] (`cgroup.subtree_control` of a parent). It
//! does not make directories or attach device filters ([`super::Cgroup`]).

use std::path::Path;

use crate::config::Resources;

use super::error::{CgroupError, Result};
use super::files::{self, FileWrite};
use super::resources::{cpus, mems};

const SWAP_MAX: &str = "memory.swap.max";
/// The period the kernel uses when none is given (cgroup-v2.rst).
const DEFAULT_PERIOD: u64 = 100_000;

/// `cpu.weight` for v1 `cpu.shares`, with runc's conversion (2..262144 onto 1..10000).
pub fn cpu_weight(shares: u64) -> u64 {
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// `cpu.max` for a quota and period: `QUOTA PERIOD`, or `max PERIOD` without a quota.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    if quota.is_none() && period.is_none() {
        return None;
    }
    let period = period.unwrap_or(DEFAULT_PERIOD);
    Some(match quota.filter(|q| *q > 0) {
        Some(q) => format!("{q} {period}"),
        None => format!("max {period}"),
    })
}

/// `max` for -1, the number otherwise.
fn limit_text(value: i64) -> String {
    if value < 0 {
        "max".into()
    } else {
        value.to_string()
    }
}

/// `memory.swap.max` for the OCI memory+swap total: swap alone is `total - limit`.
/// `None` when nothing is to be written. Values were checked by
/// [`super::resources::check`].
pub fn swap_max(swap: Option<i64>, limit: Option<i64>) -> Option<String> {
    match (swap, limit) {
        // An unlimited memory limit with swap unsaid means swap unlimited too.
        (None, Some(-1)) => Some("max".into()),
        (None, _) => None,
        (Some(-1), _) => Some("max".into()),
        (Some(total), Some(limit)) if limit > 0 => Some((total - limit).max(0).to_string()),
        (Some(_), _) => None,
    }
}

/// The v2 writes for `resources` in group `dir`. `swap_present` says whether
/// `memory.swap.max` exists (it does not without swap accounting).
pub fn writes(dir: &Path, resources: &Resources, swap_present: bool) -> Result<Vec<FileWrite>> {
    let mut out = Vec::new();
    let memory = &resources.memory;
    if let Some(limit) = memory.limit {
        out.push(FileWrite::new("memory.max", limit_text(limit)));
    }
    match swap_max(memory.swap, memory.limit) {
        Some(value) if swap_present => out.push(FileWrite::new(SWAP_MAX, value)),
        Some(value) if value != "max" => {
            return Err(CgroupError::SwapUnsupported {
                path: dir.join(SWAP_MAX),
            });
        }
        // Asking for unlimited swap where swap is not accounted asks for nothing.
        Some(_) | None => {}
    }
    if let Some(reservation) = memory.reservation {
        out.push(FileWrite::new("memory.low", limit_text(reservation)));
    }
    let cpu = &resources.cpu;
    if let Some(shares) = cpu.shares {
        out.push(FileWrite::new("cpu.weight", cpu_weight(shares).to_string()));
    }
    if let Some(value) = cpu_max(cpu.quota, cpu.period) {
        out.push(FileWrite::new("cpu.max", value));
    }
    if let Some(list) = cpus(cpu) {
        out.push(FileWrite::new("cpuset.cpus", list));
    }
    if let Some(list) = mems(cpu) {
        out.push(FileWrite::new("cpuset.mems", list));
    }
    if let Some(limit) = resources.pids_limit {
        out.push(FileWrite::new("pids.max", limit_text(limit)));
    }
    Ok(out)
}

/// Applies [`writes`] to the group `dir`.
pub fn apply(dir: &Path, resources: &Resources) -> Result<()> {
    let writes = writes(dir, resources, files::exists(dir, SWAP_MAX))?;
    files::write_all(dir, &writes)
}

/// Makes `controllers` available to the children of `parent`: each must be listed in
/// its `cgroup.controllers`; those not yet in its `cgroup.subtree_control` are enabled
/// with one write (`+cpu +memory`).
pub fn enable_controllers(parent: &Path, controllers: &[&'static str]) -> Result<()> {
    if controllers.is_empty() {
        return Ok(());
    }
    let available = files::read(parent, "cgroup.controllers")?;
    let enabled = files::read(parent, "cgroup.subtree_control")?;
    let mut missing = Vec::new();
    for &controller in controllers {
        if !available.split_whitespace().any(|c| c == controller) {
            return Err(CgroupError::ControllerNotDelegated {
                controller,
                path: parent.to_path_buf(),
            });
        }
        if !enabled.split_whitespace().any(|c| c == controller) {
            missing.push(format!("+{controller}"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    files::write(parent, "cgroup.subtree_control", &missing.join(" "))
}

#[cfg(test)]
mod tests;
