//! A whole [`Spec`] to [`ContainerConfig`]: the top-level fields, and the order the
//! sections are checked in.
//!
//! ```text
//! ociVersion ─ root ─ process ─ namespaces ─ hostname/domainname ─ mounts
//!            ─ devices ─ resources ─ sysctl ─ masked/read-only paths ─ propagation
//!            ─ cgroupsPath ─ annotations
//! ```
//!
//! Namespaces come before the fields that depend on them: a hostname needs a new uts
//! namespace, `net.*` sysctls a new network namespace.

use std::io;
use std::path::Path;

use oci_spec::runtime::{Linux, Spec};

use super::error::{FieldError, Problem, quoted};
use super::paths::{host_path, no_nul};
use super::{linux, mounts, process, resources, sysctl};
use crate::config::{ContainerConfig, NamespaceKind};

/// The longest hostname or domain name the kernel takes (`__NEW_UTS_LEN`).
const MAX_UTS_NAME: usize = 64;

/// Converts a parsed configuration; `bundle` is absolute.
pub(crate) fn config(spec: &Spec, bundle: &Path) -> Result<ContainerConfig, FieldError> {
    check_version(spec.version())?;

    let root_spec = spec.root().as_ref().ok_or_else(|| {
        FieldError::new(
            "root",
            Problem::Missing {
                expected: "an object with the rootfs path",
            },
        )
    })?;
    if root_spec.path().as_os_str().is_empty() {
        return Err(FieldError::new(
            "root.path",
            Problem::Missing {
                expected: "the rootfs directory",
            },
        ));
    }
    let root = host_path("root.path", root_spec.path(), bundle)?;
    check_rootfs(&root)?;

    let process_spec = spec.process().as_ref().ok_or_else(|| {
        FieldError::new(
            "process",
            Problem::Missing {
                expected: "the process to run",
            },
        )
    })?;
    let process = process::convert(process_spec, "process")?;

    let linux_spec = spec.linux().as_ref();
    let namespaces = linux::namespaces(list(linux_spec, Linux::namespaces))?;
    if !namespaces.iter().any(|ns| ns.kind == NamespaceKind::Mount) {
        return Err(FieldError::new(
            "linux.namespaces",
            Problem::Required {
                what: "a mount namespace",
            },
        ));
    }
    let new_namespaces: Vec<NamespaceKind> = namespaces
        .iter()
        .filter(|ns| ns.path.is_none())
        .map(|ns| ns.kind)
        .collect();
    let has_new_uts = new_namespaces.contains(&NamespaceKind::Uts);
    let hostname = uts_name("hostname", spec.hostname().as_deref(), has_new_uts)?;
    let domainname = uts_name("domainname", spec.domainname().as_deref(), has_new_uts)?;

    let cgroups_path = match linux_spec.and_then(|l| l.cgroups_path().as_ref()) {
        Some(path) if !path.as_os_str().is_empty() => {
            no_nul("linux.cgroupsPath", &path.to_string_lossy())?;
            Some(path.clone())
        }
        _ => None,
    };

    Ok(ContainerConfig {
        bundle: bundle.to_path_buf(),
        root,
        root_readonly: root_spec.readonly().unwrap_or(false),
        process,
        hostname,
        domainname,
        mounts: mounts::convert(spec.mounts().as_deref().unwrap_or_default(), bundle)?,
        namespaces,
        devices: linux::devices(list(linux_spec, Linux::devices))?,
        cgroups_path,
        resources: resources::convert(linux_spec.and_then(|l| l.resources().as_ref()))?,
        sysctl: sysctl::convert(
            linux_spec.and_then(|l| l.sysctl().as_ref()),
            &new_namespaces,
        )?,
        masked_paths: linux::container_paths(list(linux_spec, Linux::masked_paths), "maskedPaths")?,
        readonly_paths: linux::container_paths(
            list(linux_spec, Linux::readonly_paths),
            "readonlyPaths",
        )?,
        rootfs_propagation: linux::rootfs_propagation(
            linux_spec.and_then(|l| l.rootfs_propagation().as_deref()),
        )?,
        annotations: spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// A list in `linux`, empty when it or `linux` is absent.
fn list<T>(linux: Option<&Linux>, get: fn(&Linux) -> &Option<Vec<T>>) -> &[T] {
    linux.and_then(|l| get(l).as_deref()).unwrap_or_default()
}

/// Accepts any `1.x.y` (with an optional pre-release or build suffix, as in `1.0.2-dev`).
fn check_version(version: &str) -> Result<(), FieldError> {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() == 3 && parts.iter().all(numeric) && parts.first() == Some(&"1") {
        return Ok(());
    }
    Err(FieldError::invalid(
        "ociVersion",
        "a 1.x.y runtime specification version",
        quoted(version),
    ))
}

fn check_rootfs(root: &Path) -> Result<(), FieldError> {
    let problem = match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => Problem::RootfsNotDirectory {
            path: root.to_path_buf(),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Problem::RootfsMissing {
            path: root.to_path_buf(),
        },
        Err(source) => Problem::RootfsUnreadable {
            path: root.to_path_buf(),
            source,
        },
    };
    Err(FieldError::new("root.path", problem))
}

/// A hostname or domain name; empty means unset, as in runc.
fn uts_name(
    field: &'static str,
    value: Option<&str>,
    has_new_uts: bool,
) -> Result<Option<String>, FieldError> {
    let Some(name) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if name.len() > MAX_UTS_NAME || name.contains(['/', '\0']) || name == "." || name == ".." {
        return Err(FieldError::invalid(
            field,
            format!("a name of at most {MAX_UTS_NAME} bytes without '/' or NUL, not . or .."),
            quoted(name),
        ));
    }
    if !has_new_uts {
        return Err(FieldError::new(
            field,
            Problem::NeedsNamespace {
                what: format!("setting the {field}"),
                namespace: "uts",
            },
        ));
    }
    Ok(Some(name.to_string()))
}
