//! One interface over cgroup v1, hybrid and unified (v2) hosts.
//!
//! Owns finding the host's hierarchies, deciding where a container's groups go, making
//! them and applying its resource limits and device rules, putting processes in,
//! pausing, signalling and listing them, and removing the groups. It does not own when
//! any of that happens (the container verbs do), nor mounting the groups into the
//! container (it only says what to bind, [`Cgroup::container_mounts`]).
//!
//! ```text
//!   CgroupLayout::detect()            /proc/self/mountinfo -> mode + hierarchies
//!   OwnCgroups::detect(&layout)       /proc/self/cgroup -> base of relative paths
//!   cgroup_path(cfg, id, &own)        -> /moor/<id> | /abs | <own>/rel
//!   Cgroup::create(&layout, path, &resources)
//!       mkdir (+ cpuset copy-down on v1, + subtree_control on unified)
//!       limits (v1 files | v2 files), device rules (v1 devices.* | BPF program)
//!   cgroup.join_handle()  ... child, after pivot_root: join.join_self()
//!   freeze / thaw / freezer_state / pids / is_populated / kill_all
//!   Cgroup::open(&layout, path) ... destroy()
//! ```
//!
//! Public surface:
//!
//! - [`CgroupMode`] `{ V1, Hybrid, Unified }`, [`CgroupLayout`]: `detect()`,
//!   `from_mountinfo(&str)`, `fake_unified(&Path)`, `fake_v1(&Path, &[&str])`,
//!   `fake_hybrid(&Path, &[&str])`, `without_unified()`, `mode()`, `unified()`,
//!   `hierarchy(controller)`, `v1_hierarchies()`, `recorded_device_filters()`;
//!   [`Hierarchy`].
//! - [`OwnCgroups`]: `detect(&layout)`, `from_proc_cgroup(&str, &layout)`, `at(base)`;
//!   [`cgroup_path`]`(Option<&Path>, &str, &OwnCgroups) -> Result<PathBuf>`.
//! - [`Cgroup`]: `create`, `open`, `path`, `mode`, `members`, `join_handle`,
//!   `add_process`, `freeze`, `thaw`, `freezer_state`, `pids`, `is_populated`,
//!   `kill_all`, `destroy`, `container_mounts`; [`CgroupJoin::join_self`];
//!   [`FreezerState`], [`CgroupBind`], [`Member`].
//! - [`device_program`] (rules to BPF instructions, pure) and [`BpfInsn`].
//! - [`CgroupError`], with one variant per failing step.
//!
//! Every decision that does not need the kernel is a pure function with its own tests
//! (mountinfo and `/proc/self/cgroup` parsing, path resolution, v1 and v2 values and
//! write order, the device program, container binds). Limits are written into a fake
//! cgroup root (a temporary directory with the interface files made in advance) by
//! the same code that writes real ones; the one thing files cannot fake, attaching a
//! BPF program, goes through the layout's device filter, which records on fake layouts.
//! `tests_real` checks it all again as root against this machine's kernel.
//!
//! Device rules: on v1 hosts they are written to `devices.deny`/`devices.allow` (deny
//! everything, then each rule); on hybrid and unified hosts a BPF program generated from
//! them is attached to the cgroup2 group. Either way the default is deny.

mod bpf;
mod device_filter;
mod device_program;
mod error;
mod files;
mod freezer;
mod group;
mod join;
mod layout;
mod mounts;
mod path;
mod resources;
mod v1;
mod v2;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_real;

pub use device_filter::RecordedDeviceFilter;
pub use device_program::{BpfInsn, device_program};
pub use error::{CgroupError, Result};
pub use freezer::FreezerState;
pub use group::{Cgroup, Member};
pub use join::{CgroupEntry, CgroupJoin};
pub use layout::{CgroupLayout, CgroupMode, Hierarchy};
pub use mounts::CgroupBind;
pub use path::{DEFAULT_PARENT, OwnCgroups, cgroup_path};
