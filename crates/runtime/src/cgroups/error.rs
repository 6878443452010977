//! The one error type of the cgroups module.
//!
//! Owns [`CgroupError`]: every variant names the step that failed and carries the path
//! (or line, controller, field) involved. It does not own retry policy: the few waits
//! that retry (freezing, removing a busy group) do so inside the module and report a
//! timeout variant when their deadline passes.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while finding, creating, changing or removing a
/// container's cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("reading mount table {path}")]
    ReadMountTable { path: PathBuf, source: io::Error },

    #[error("mount table line {line}: {reason}")]
    MountTableLine { line: usize, reason: String },

    #[error("no cgroup or cgroup2 filesystem is mounted")]
    NoCgroupMounts,

    #[error("reading own cgroups from {path}")]
    ReadOwnCgroups { path: PathBuf, source: io::Error },

    #[error("own cgroup list line {line}: {reason}")]
    OwnCgroupsLine { line: usize, reason: String },

    #[error("own cgroup for the {hierarchy} hierarchy is not listed in /proc/self/cgroup")]
    OwnCgroupMissing { hierarchy: String },

    #[error("own cgroup {path} lies outside the part of the hierarchy mounted here ({mount_root})")]
    OwnCgroupOutsideMount { path: PathBuf, mount_root: PathBuf },

    #[error("cgroup path {path:?}: {reason}")]
    InvalidPath { path: PathBuf, reason: &'static str },

    #[error("container id {id:?} cannot name a cgroup: {reason}")]
    InvalidId { id: String, reason: &'static str },

    #[error(
        "cgroup path {path:?} is in the systemd slice:prefix:name form, which is not supported yet"
    )]
    SystemdPathUnsupported { path: PathBuf },

    #[error("controller {controller} is not available on this host (no {mode} hierarchy has it)")]
    ControllerUnavailable {
        controller: &'static str,
        mode: &'static str,
    },

    #[error("controller {controller} is not available in {path} (missing from cgroup.controllers)")]
    ControllerNotDelegated {
        controller: &'static str,
        path: PathBuf,
    },

    #[error("resource {field} = {value}: {reason}")]
    InvalidResource {
        field: &'static str,
        value: String,
        reason: &'static str,
    },

    #[error("a swap limit was asked for but {path} does not exist (swap accounting is off)")]
    SwapUnsupported { path: PathBuf },

    #[error("creating cgroup directory {path}")]
    CreateDir { path: PathBuf, source: io::Error },

    #[error("writing {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },

    #[error("reading {path}")]
    Read { path: PathBuf, source: io::Error },

    #[error("unexpected content in {path}: {content:?}")]
    UnexpectedContent { path: PathBuf, content: String },

    #[error("listing child groups of {path}")]
    ListChildren { path: PathBuf, source: io::Error },

    #[error("cgroup {path} does not exist in any hierarchy")]
    NotFound { path: PathBuf },

    #[error("cgroup {path} has no {controller} group")]
    MissingMember {
        controller: &'static str,
        path: PathBuf,
    },

    #[error("opening {path} to join the cgroup later")]
    OpenProcs { path: PathBuf, source: io::Error },

    #[error("joining cgroup through {path}")]
    Join { path: PathBuf, source: nix::Error },

    #[error("waiting for {path} to change")]
    Poll { path: PathBuf, source: nix::Error },

    #[error("freezing {path} timed out in state {state}")]
    FreezeTimedOut { path: PathBuf, state: String },

    #[error("thawing {path} timed out in state {state}")]
    ThawTimedOut { path: PathBuf, state: String },

    #[error("sending signal {signal} to process {pid} of cgroup {path}")]
    Signal {
        path: PathBuf,
        pid: i32,
        signal: nix::sys::signal::Signal,
        source: nix::Error,
    },

    #[error("removing cgroup directory {path}")]
    RemoveDir { path: PathBuf, source: io::Error },

    #[error("removing cgroup directory {path} timed out: processes are still in it")]
    RemoveBusy { path: PathBuf },

    #[error("device rules for {path}: {reason}")]
    DeviceRule { path: PathBuf, reason: &'static str },

    #[error("loading the device filter for {path} (verifier log: {log:?})")]
    BpfLoad {
        path: PathBuf,
        log: String,
        source: io::Error,
    },

    #[error("opening cgroup directory {path} to attach the device filter")]
    OpenGroupDir { path: PathBuf, source: io::Error },

    #[error("attaching the device filter to {path}")]
    BpfAttach { path: PathBuf, source: io::Error },
}

impl CgroupError {
    /// True when the group asked for does not exist at all (for `delete` after a failed
    /// `create`, which has nothing to remove).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CgroupError::NotFound { .. })
    }
}

/// The module's result type.
pub type Result<T, E = CgroupError> = std::result::Result<T, E>;
