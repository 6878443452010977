//! A container's cgroup: the groups it is a member of across hierarchies.
//!
//! Owns [`Cgroup`]: making the groups and applying limits ([`Cgroup::create`]), finding
//! them again from the stored path ([`Cgroup::open`]), putting processes in, listing
//! and signalling them, and removing the groups. Freezing lives in [`super::freezer`],
//! the join done by the container's child in [`super::join`], and what the container
//! sees of its groups in [`super::mounts`].
//!
//! Which groups a container gets, per host mode:
//!
//! ```text
//!   unified  one group; controllers the limits need are enabled in every ancestor's
//!            cgroup.subtree_control on the way down; device filter: BPF
//!   hybrid   the cgroup2 group (membership, kill, freeze, populated events, BPF device
//!            filter) + a v1 group only for each controller the limits ask for
//!   v1       freezer (pause, reliable kill, process list) + devices (default deny) +
//!            a group for each controller the limits ask for
//! ```
//!
//! Fewer groups is deliberate: every group is a mkdir, several writes and, at start, one
//! more `cgroup.procs` write in the container's child, and container start time is
//! something moor promises to keep at half of runc's. A container without a memory
//! limit is not moved out of the memory group it would inherit, and so on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::Resources;

use super::error::{CgroupError, Result};
use super::files;
use super::freezer::FreezerState;
use super::layout::{CgroupLayout, CgroupMode, Hierarchy};
use super::path::check_group_path;
use super::resources::{self, Controllers};
use super::{v1, v2};

/// The v1 controllers a container may have groups in, in the order they are made.
const MANAGED_V1: &[&str] = &["freezer", "devices", "cpu", "cpuset", "memory", "pids"];
/// How long [`Cgroup::destroy`] waits for the last processes to leave.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(5);

/// One directory of a container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The group's directory.
    pub dir: PathBuf,
    /// The hierarchy it is in.
    pub hierarchy: Hierarchy,
    /// True for the cgroup2 group, false for a v1 one.
    pub unified: bool,
}

/// A container's cgroup on this host.
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: PathBuf,
    mode: CgroupMode,
    members: Vec<Member>,
}

impl Cgroup {
    /// Makes the container's groups at `path` (absolute within each hierarchy; parents
    /// are made as needed) and applies `resources`. Values, and on v1 and hybrid hosts
    /// the hierarchies, are checked before any directory is made; on unified hosts a
    /// controller missing from an ancestor's `cgroup.controllers` is found on the way
    /// down. If a step fails, the groups made here are removed again.
    pub fn create(layout: &CgroupLayout, path: &Path, resources: &Resources) -> Result<Cgroup> {
        check_group_path(path)?;
        resources::check(resources)?;
        let needed = Controllers::needed_by(resources);
        let mode = layout.mode();
        let mut plan: Vec<(Hierarchy, bool)> = Vec::new();
        if let Some(unified) = layout.unified() {
            plan.push((unified.clone(), true));
        }
        if mode != CgroupMode::Unified {
            let mut wanted: Vec<&'static str> = Vec::new();
            if mode == CgroupMode::V1 {
                wanted.extend(["freezer", "devices"]);
            }
            wanted.extend(needed.names());
            for controller in wanted {
                let hierarchy =
                    layout
                        .hierarchy(controller)
                        .ok_or(CgroupError::ControllerUnavailable {
                            controller,
                            mode: mode.name(),
                        })?;
                if !plan.iter().any(|(h, _)| h == hierarchy) {
                    plan.push((hierarchy.clone(), false));
                }
            }
        }
        let mut group = Cgroup {
            path: path.to_path_buf(),
            mode,
            members: Vec::new(),
        };
        let mut made_here = Vec::new();
        let outcome = group.make_and_apply(layout, plan, needed, resources, &mut made_here);
        if let Err(e) = outcome {
            for dir in made_here.iter().rev() {
                if let Err(err) = std::fs::remove_dir(dir) {
                    tracing::warn!(dir = %dir.display(), %err, "could not remove a group after a failed create");
                }
            }
            return Err(e);
        }
        Ok(group)
    }

    fn make_and_apply(
        &mut self,
        layout: &CgroupLayout,
        plan: Vec<(Hierarchy, bool)>,
        needed: Controllers,
        resources: &Resources,
        made_here: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let unified_controllers = if self.mode == CgroupMode::Unified {
            needed.names()
        } else {
            Vec::new()
        };
        for (hierarchy, unified) in plan {
            let dir = hierarchy.group_dir(&self.path);
            let is_cpuset = hierarchy.has("cpuset");
            let created = files::make_dirs(&hierarchy.mount_point, &self.path, |parent, level| {
                if unified {
                    v2::enable_controllers(parent, &unified_controllers)
                } else if is_cpuset {
                    v1::prepare_cpuset_level(parent, level)
                } else {
                    Ok(())
                }
            })?;
            if created {
                made_here.push(dir.clone());
            }
            self.members.push(Member {
                dir,
                hierarchy,
                unified,
            });
        }
        for member in &self.members {
            if member.unified {
                if self.mode == CgroupMode::Unified {
                    v2::apply(&member.dir, resources)?;
                }
                layout
                    .device_filter()
                    .attach(&member.dir, &resources.devices)?;
            } else {
                for controller in &member.hierarchy.controllers {
                    let asked = match controller.as_str() {
                        "devices" | "freezer" => self.mode == CgroupMode::V1,
                        name => needed.names().contains(&name),
                    };
                    if asked {
                        v1::apply(controller, &member.dir, resources)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Finds the groups of an existing container at `path`: every hierarchy where the
    /// directory exists. [`CgroupError::NotFound`] when there is none.
    pub fn open(layout: &CgroupLayout, path: &Path) -> Result<Cgroup> {
        check_group_path(path)?;
        let mut members = Vec::new();
        if let Some(unified) = layout.unified() {
            let dir = unified.group_dir(path);
            if dir.is_dir() {
                members.push(Member {
                    dir,
                    hierarchy: unified.clone(),
                    unified: true,
                });
            }
        }
        for hierarchy in layout.v1_hierarchies() {
            if !MANAGED_V1.iter().any(|c| hierarchy.has(c)) {
                continue;
            }
            let dir = hierarchy.group_dir(path);
            if dir.is_dir() {
                members.push(Member {
                    dir,
                    hierarchy: hierarchy.clone(),
                    unified: false,
                });
            }
        }
        if members.is_empty() {
            return Err(CgroupError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Ok(Cgroup {
            path: path.to_path_buf(),
            mode: layout.mode(),
            members,
        })
    }

    /// The group path, the same in every hierarchy.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    /// The directories this container is a member of.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The cgroup2 member, in unified and hybrid modes.
    pub(crate) fn unified_member(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.unified)
    }

    /// The v1 member holding `controller`.
    pub(crate) fn v1_member(&self, controller: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| !m.unified && m.hierarchy.has(controller))
    }

    /// The group whose `cgroup.procs` tree lists every process of the container: the
    /// cgroup2 one, or on v1 hosts the freezer one.
    pub(crate) fn process_dir(&self) -> Result<&Path> {
        let member = match self.mode {
            CgroupMode::V1 => self.v1_member("freezer"),
            CgroupMode::Hybrid | CgroupMode::Unified => self.unified_member(),
        };
        member
            .map(|m| m.dir.as_path())
            .ok_or_else(|| CgroupError::MissingMember {
                controller: match self.mode {
                    CgroupMode::V1 => "freezer",
                    CgroupMode::Hybrid | CgroupMode::Unified => "cgroup2",
                },
                path: self.path.clone(),
            })
    }

    /// Moves process `pid` (all its threads) into every member group.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        let text = pid.to_string();
        for member in &self.members {
            files::write(&member.dir, "cgroup.procs", &text)?;
        }
        Ok(())
    }

    /// Every process in the container's groups, child groups included, sorted.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let root = self.process_dir()?;
        let mut pids = Vec::new();
        for dir in files::tree(root)? {
            match files::read_procs(&dir) {
                Ok(found) => pids.extend(found),
                // A child group removed while we walk had no processes left.
                Err(CgroupError::Read { ref source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && dir != root => {}
                Err(e) => return Err(e),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// True while any process is in the container's groups (`populated` of
    /// `cgroup.events` where there is a cgroup2 group).
    pub fn is_populated(&self) -> Result<bool> {
        match self.unified_member() {
            Some(member) => {
                let value = files::read_key(&member.dir, "cgroup.events", "populated")?;
                Ok(value.as_deref() == Some("1"))
            }
            None => Ok(!self.pids()?.is_empty()),
        }
    }

    /// Sends `signal` to every process of the container. `SIGKILL` on a cgroup2 group
    /// with `cgroup.kill` (Linux 5.14) is one write the kernel carries out atomically;
    /// otherwise the group is frozen so nothing forks past the list, each process is
    /// signalled, and the group is thawed. A container that was paused stays paused,
    /// except for `SIGKILL`: frozen processes only die once thawed.
    pub fn kill_all(&self, signal: Signal) -> Result<()> {
        if signal == Signal::SIGKILL
            && let Some(member) = self.unified_member()
            && files::exists(&member.dir, "cgroup.kill")
        {
            return files::write(&member.dir, "cgroup.kill", "1");
        }
        let was_paused = matches!(self.freezer_state(), Ok(FreezerState::Frozen));
        let frozen = match self.freeze() {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(path = %self.path.display(), %err, "signalling without freezing first");
                false
            }
        };
        let pids = self.pids();
        let mut signalled = Ok(());
        for &pid in pids.as_deref().unwrap_or_default() {
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(source) => {
                    if signalled.is_ok() {
                        signalled = Err(CgroupError::Signal {
                            path: self.path.clone(),
                            pid,
                            signal,
                            source,
                        });
                    }
                }
            }
        }
        // Thaw even when listing or signalling failed: never leave a group frozen here.
        let thawed = if frozen && (!was_paused || signal == Signal::SIGKILL) {
            self.thaw()
        } else {
            Ok(())
        };
        pids?;
        signalled?;
        thawed
    }

    /// Removes every member group, child groups the container made first. Waits a
    /// bounded time for processes that are still leaving (`EBUSY`). Groups already gone
    /// are fine, so this can be called again after a failure; the parents (`/moor`) stay.
    pub fn destroy(&self) -> Result<()> {
        let deadline = Instant::now() + DESTROY_TIMEOUT;
        for member in &self.members {
            remove_tree(&member.dir, deadline)?;
        }
        Ok(())
    }
}

/// Removes `dir` and its child groups, deepest first.
fn remove_tree(dir: &Path, deadline: Instant) -> Result<()> {
    let mut backoff = Duration::from_millis(1);
    loop {
        for child in files::child_dirs(dir)? {
            remove_tree(&child, deadline)?;
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if Instant::now() >= deadline {
                    return Err(CgroupError::RemoveBusy {
                        path: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(CgroupError::RemoveDir {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
