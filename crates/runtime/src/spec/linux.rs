//! The rest of `linux` (oci-spec): namespaces, device nodes, masked and read-only paths,
//! root propagation.
//!
//! `resources` and `sysctl` have their own files; the fields moor does not implement are
//! refused before this runs (see `unsupported`).

use std::collections::BTreeSet;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxNamespace, LinuxNamespaceType};

use super::error::{FieldError, Problem, index, join, quoted};
use super::mounts::propagation;
use super::paths::{absolute_host_path, container_path, container_path_str};
use crate::config::{DeviceNode, DeviceNodeKind, NamespaceConfig, NamespaceKind, Propagation};

/// Converts `linux.namespaces`: known kinds, each at most once, paths absolute.
pub(crate) fn namespaces(list: &[LinuxNamespace]) -> Result<Vec<NamespaceConfig>, FieldError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, ns) in list.iter().enumerate() {
        let at = index("linux.namespaces", i);
        let kind = match ns.typ() {
            LinuxNamespaceType::Pid => NamespaceKind::Pid,
            LinuxNamespaceType::Network => NamespaceKind::Network,
            LinuxNamespaceType::Mount => NamespaceKind::Mount,
            LinuxNamespaceType::Ipc => NamespaceKind::Ipc,
            LinuxNamespaceType::Uts => NamespaceKind::Uts,
            LinuxNamespaceType::Cgroup => NamespaceKind::Cgroup,
            // Refused earlier with a clearer message; kept here so this function is
            // complete on its own.
            LinuxNamespaceType::User | LinuxNamespaceType::Time => {
                return Err(FieldError::new(
                    join(&at, "type"),
                    Problem::ValueNotSupported {
                        what: format!("the {} namespace", ns.typ()),
                    },
                ));
            }
        };
        if !seen.insert(kind) {
            return Err(FieldError::new(
                join(&at, "type"),
                Problem::Duplicate {
                    what: format!("namespace {}", kind.spec_name()),
                },
            ));
        }
        let path = match ns.path() {
            Some(path) => Some(absolute_host_path(&join(&at, "path"), path)?),
            None => None,
        };
        out.push(NamespaceConfig { kind, path });
    }
    Ok(out)
}

/// Converts `linux.devices`: nodes under `/dev`, each path at most once.
pub(crate) fn devices(list: &[LinuxDevice]) -> Result<Vec<DeviceNode>, FieldError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, device) in list.iter().enumerate() {
        let at = index("linux.devices", i);
        let node = device_node(device, &at)?;
        if !seen.insert(node.path.clone()) {
            return Err(FieldError::new(
                join(&at, "path"),
                Problem::Duplicate {
                    what: format!("device {}", node.path.display()),
                },
            ));
        }
        out.push(node);
    }
    Ok(out)
}

fn device_node(device: &LinuxDevice, at: &str) -> Result<DeviceNode, FieldError> {
    let path_field = join(at, "path");
    let path = container_path(&path_field, device.path())?;
    if !path.starts_with("/dev") || path.as_os_str().len() <= "/dev/".len() {
        return Err(FieldError::invalid(
            path_field,
            "a path under /dev",
            quoted(&device.path().to_string_lossy()),
        ));
    }
    let kind = match device.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceNodeKind::Char,
        LinuxDeviceType::B => DeviceNodeKind::Block,
        LinuxDeviceType::P => DeviceNodeKind::Fifo,
        LinuxDeviceType::A => {
            return Err(FieldError::invalid(
                join(at, "type"),
                "a device node type: c, b, u or p",
                quoted("a"),
            ));
        }
    };
    let (major, minor) = if kind == DeviceNodeKind::Fifo {
        (0, 0)
    } else {
        (
            device_number(device.major(), &join(at, "major"))?,
            device_number(device.minor(), &join(at, "minor"))?,
        )
    };
    let file_mode = device.file_mode().unwrap_or(0o666);
    if file_mode > 0o7777 {
        return Err(FieldError::invalid(
            join(at, "fileMode"),
            "permission bits up to 07777 (4095)",
            file_mode,
        ));
    }
    Ok(DeviceNode {
        path,
        kind,
        major,
        minor,
        file_mode,
        uid: device.uid().unwrap_or(0),
        gid: device.gid().unwrap_or(0),
    })
}

fn device_number(number: i64, field: &str) -> Result<u32, FieldError> {
    u32::try_from(number)
        .map_err(|_| FieldError::invalid(field, "a device number from 0 to 4294967295", number))
}

/// Converts `maskedPaths` or `readonlyPaths` (`name`).
pub(crate) fn container_paths(
    list: &[String],
    name: &str,
) -> Result<Vec<std::path::PathBuf>, FieldError> {
    let base = join("linux", name);
    list.iter()
        .enumerate()
        .map(|(i, path)| container_path_str(&index(&base, i), path))
        .collect()
}

/// Converts `rootfsPropagation`; the root is always changed recursively.
pub(crate) fn rootfs_propagation(value: Option<&str>) -> Result<Option<Propagation>, FieldError> {
    match value {
        None | Some("") => Ok(None),
        Some(name) => propagation(name).map(|(p, _)| Some(p)).ok_or_else(|| {
            FieldError::invalid(
                "linux.rootfsPropagation",
                "one of private, rprivate, slave, rslave, shared, rshared, unbindable, \
                 runbindable",
                quoted(name),
            )
        }),
    }
}
