//! An OCI bundle's `config.json` (runtime-spec 1.x) to the validated [`ContainerConfig`].
//!
//! Owns reading the file (size-bounded), parsing it with oci-spec, refusing what moor does
//! not implement, and checking every field it does: paths, mount options, namespaces,
//! limits, sysctls. It does not touch the kernel; the one look at the filesystem is that
//! the rootfs exists and is a directory.
//!
//! ```text
//! load_bundle(dir) ─ read dir/config.json (≤ 4 MiB) ─┐
//!                                                     ▼
//! parse_config(bytes) ─ json::parse_value ─ unsupported::refuse ─ names::check_*
//!                     ─ json::typed::<Spec> ─ convert::config ─▶ ContainerConfig
//!                                                 ├ process   (shared with parse_process)
//!                                                 ├ mounts
//!                                                 ├ linux     (namespaces, devices, paths)
//!                                                 ├ resources
//!                                                 └ sysctl
//! ```
//!
//! Properties the specification does not define are ignored, as it requires. Properties
//! it defines but moor does not implement are refused when they ask for anything; the list
//! is `unsupported::NOT_IMPLEMENTED`. Errors name the file and the JSON path of the field.

mod convert;
mod default;
mod error;
mod json;
mod linux;
mod mounts;
mod names;
mod paths;
mod process;
mod resources;
mod sysctl;
mod unsupported;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use crate::config::{ContainerConfig, ProcessConfig};

pub use default::default_spec_json;
pub use error::{Problem, SpecError};
pub use process::process_from_oci;

/// The largest `config.json` (or process file) moor reads. Real ones are a few KiB.
pub const MAX_CONFIG_SIZE: u64 = 4 * 1024 * 1024;

/// Reads and checks `<bundle>/config.json`. `bundle` is made absolute first (symlinks
/// are kept), and the file may be a symlink, as runc allows.
pub fn load_bundle(bundle: &Path) -> Result<ContainerConfig, SpecError> {
    let bundle = absolute(bundle)?;
    let path = bundle.join("config.json");
    let bytes = read_bounded(&path)?;
    parse_config(&bytes, &bundle, &path)
}

/// Checks a `config.json` already read. `bundle` resolves relative paths (it is made
/// absolute first); `origin` names the file in errors.
pub fn parse_config(
    bytes: &[u8],
    bundle: &Path,
    origin: &Path,
) -> Result<ContainerConfig, SpecError> {
    let mut value = json::parse_value(bytes, origin)?;
    unsupported::refuse(&mut value, "").map_err(|e| e.in_file(origin))?;
    if let Some(process) = value.get("process") {
        names::check_process(process, "process").map_err(|e| e.in_file(origin))?;
    }
    names::check_namespaces(&value).map_err(|e| e.in_file(origin))?;
    let spec: Spec = json::typed(&value, bytes, origin)?;
    convert::config(&spec, &absolute(bundle)?).map_err(|e| e.in_file(origin))
}

/// Checks an OCI `process` object on its own, as `exec --process` reads it. Field paths
/// in errors are relative to the object (`user.uid`, not `process.user.uid`).
pub fn parse_process(bytes: &[u8], origin: &Path) -> Result<ProcessConfig, SpecError> {
    let mut value = json::parse_value(bytes, origin)?;
    unsupported::refuse(&mut value, "process").map_err(|e| e.in_file(origin))?;
    names::check_process(&value, "").map_err(|e| e.in_file(origin))?;
    let process: Process = json::typed(&value, bytes, origin)?;
    process::convert(&process, "").map_err(|e| e.in_file(origin))
}

/// Reads a regular file of at most [`MAX_CONFIG_SIZE`] bytes, checking the size before
/// reading and bounding the read in case the file grows meanwhile.
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, SpecError> {
    let read_error = |source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Non-blocking, so that a FIFO in place of the file is refused instead of waiting for
    // a writer; reads from a regular file are not affected.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(SpecError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    let too_large = |size| SpecError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: MAX_CONFIG_SIZE,
    };
    if meta.len() > MAX_CONFIG_SIZE {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or_default());
    file.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > MAX_CONFIG_SIZE {
        return Err(too_large(read));
    }
    Ok(bytes)
}

fn absolute(bundle: &Path) -> Result<std::path::PathBuf, SpecError> {
    std::path::absolute(bundle).map_err(|source| SpecError::Bundle {
        path: bundle.to_path_buf(),
        source,
    })
}
