//! moor's native container runtime: an OCI bundle in, a running container out.
//!
//! Owns namespaces, cgroups (v1, hybrid and unified), the overlay of mounts that makes a
//! root filesystem, devices, capabilities, rlimits, `pivot_root`, and the state of each
//! container under the runtime root (a tmpfs: nothing here outlives a reboot). It knows
//! nothing of pods, networks or the cluster.
//!
//! Layout:
//!
//! ```text
//! config     the validated configuration every other module reads
//! spec       config.json (oci-spec) -> config, refusing what is not implemented
//! cgroups    one interface over cgroup v1, hybrid and unified hosts
//! container  the verbs: create, start, state, kill, delete, exec, pause, resume, list
//! image      the image store: blobs, references, registries, archives, layers
//! init       the cloned child's side: namespaces, mounts, devices, credentials, execve
//! state      container state under the runtime root (tmpfs)
//! identity   a process known by PID, start time and boot id, signalled by pidfd
//! selfexe    keeping the runtime's own binary out of a container's reach
//! sys        thin wrappers of system calls libc and nix lack
//! ```
//!
//! The verbs run on one thread: the runtime clones its container processes with fork
//! semantics, which is only sound in a single-threaded process.

pub mod cgroups;
pub mod config;
pub mod container;
pub mod error;
pub mod identity;
pub mod image;
pub mod init;
pub mod selfexe;
pub mod spec;
pub mod state;
pub mod sys;

pub use error::RuntimeError;
