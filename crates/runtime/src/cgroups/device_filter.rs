//! How a layout attaches device filters: into the kernel, or into a recorder.
//!
//! Owns [`DeviceFilter`], the one kernel side effect of cgroup set-up that a directory
//! of plain files cannot fake. Real layouts ([`super::CgroupLayout::detect`]) load and
//! attach BPF programs; fake layouts record the program they would have attached, so
//! tests without root can run it through the interpreter. It does not generate the
//! program ([`super::device_program`]) or talk to `bpf(2)` ([`super::bpf`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::device_program::{BpfInsn, device_program};
use super::error::Result;
use crate::config::DeviceRule;

/// A device filter a fake layout recorded instead of attaching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedDeviceFilter {
    /// The cgroup directory it would have been attached to.
    pub dir: PathBuf,
    /// The program, as it would have been loaded.
    pub program: Vec<BpfInsn>,
}

/// Where device filters go.
#[derive(Debug, Clone)]
pub(crate) enum DeviceFilter {
    /// `bpf(BPF_PROG_LOAD)` and `bpf(BPF_PROG_ATTACH)`.
    Kernel,
    /// Shared between clones of a fake layout, so a test sees what its groups attached.
    Recorder(Arc<Mutex<Vec<RecordedDeviceFilter>>>),
}

impl DeviceFilter {
    pub(crate) fn recorder() -> Self {
        DeviceFilter::Recorder(Arc::new(Mutex::new(Vec::new())))
    }

    /// Attaches a filter built from `rules` to the cgroup directory `dir`.
    pub(crate) fn attach(&self, dir: &Path, rules: &[DeviceRule]) -> Result<()> {
        let program = device_program(rules);
        match self {
            DeviceFilter::Kernel => super::bpf::attach_device_program(dir, &program),
            DeviceFilter::Recorder(log) => {
                log.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(RecordedDeviceFilter {
                        dir: dir.to_path_buf(),
                        program,
                    });
                Ok(())
            }
        }
    }

    pub(crate) fn recorded(&self) -> Vec<RecordedDeviceFilter> {
        match self {
            DeviceFilter::Kernel => Vec::new(),
            DeviceFilter::Recorder(log) => log
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        }
    }
}
