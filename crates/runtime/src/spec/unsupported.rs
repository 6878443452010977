//! The parts of the runtime specification moor knows about but does not implement yet.
//!
//! The specification tells runtimes to ignore properties they do not know, but a property
//! it defines is a promise the runtime has to keep: a container asking for a seccomp
//! filter must not quietly run without one. So every such property is listed in
//! [`NOT_IMPLEMENTED`] and refused when it carries a value. An absent or empty one
//! (`null`, `false`, `0`, `""`, `[]`, `{}`, an object of empty members) asks for nothing
//! and is removed from the tree instead, so the typed pass does not hold it to a shape
//! moor never reads.
//!
//! Implementing a feature means deleting its row from the table below: each row also
//! generates the test that checks it is refused, so the tests follow.

use serde_json::Value;

use super::error::{FieldError, Problem};

/// One thing moor refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A property, by its path from the document root: dotted names, with `[]` after a
    /// name whose value is an array to look into every element.
    Field {
        path: &'static str,
        zero_is_set: bool,
    },
    /// A namespace type in `linux.namespaces[].type`.
    Namespace(&'static str),
    /// A mount option in `mounts[].options`.
    MountOption(&'static str),
}

const fn field(path: &'static str) -> Refusal {
    Refusal::Field {
        path,
        zero_is_set: false,
    }
}

/// Builds [`NOT_IMPLEMENTED`] and, for tests, one test per row named by its label.
macro_rules! not_implemented {
    ($($(#[$doc:meta])* $test:ident: $refusal:expr,)*) => {
        /// Everything the specification defines that moor does not implement yet.
        pub(crate) const NOT_IMPLEMENTED: &[Refusal] = &[$($refusal,)*];

        #[cfg(test)]
        mod each_refusal {
            #[allow(unused_imports)]
            use super::{Refusal, field};
            $(
                #[test]
                fn $test() {
                    crate::spec::tests::assert_refused($refusal);
                }
            )*
        }
    };
}

not_implemented! {
    hooks_are_refused: field("hooks"),
    solaris_is_refused: field("solaris"),
    windows_is_refused: field("windows"),
    vm_is_refused: field("vm"),
    zos_is_refused: field("zos"),
    apparmor_profile_is_refused: field("process.apparmorProfile"),
    selinux_label_is_refused: field("process.selinuxLabel"),
    io_priority_is_refused: field("process.ioPriority"),
    scheduler_is_refused: field("process.scheduler"),
    exec_cpu_affinity_is_refused: field("process.execCPUAffinity"),
    command_line_is_refused: field("process.commandLine"),
    username_is_refused: field("process.user.username"),
    mount_uid_mappings_are_refused: field("mounts[].uidMappings"),
    mount_gid_mappings_are_refused: field("mounts[].gidMappings"),
    idmap_mount_option_is_refused: Refusal::MountOption("idmap"),
    ridmap_mount_option_is_refused: Refusal::MountOption("ridmap"),
    // Recursive mount attributes (mount_setattr(2)): passed on as filesystem data they
    // would only fail later, with a less helpful error.
    rro_mount_option_is_refused: Refusal::MountOption("rro"),
    rrw_mount_option_is_refused: Refusal::MountOption("rrw"),
    rnosuid_mount_option_is_refused: Refusal::MountOption("rnosuid"),
    rsuid_mount_option_is_refused: Refusal::MountOption("rsuid"),
    rnodev_mount_option_is_refused: Refusal::MountOption("rnodev"),
    rdev_mount_option_is_refused: Refusal::MountOption("rdev"),
    rnoexec_mount_option_is_refused: Refusal::MountOption("rnoexec"),
    rexec_mount_option_is_refused: Refusal::MountOption("rexec"),
    rnodiratime_mount_option_is_refused: Refusal::MountOption("rnodiratime"),
    rdiratime_mount_option_is_refused: Refusal::MountOption("rdiratime"),
    rrelatime_mount_option_is_refused: Refusal::MountOption("rrelatime"),
    rnorelatime_mount_option_is_refused: Refusal::MountOption("rnorelatime"),
    rnoatime_mount_option_is_refused: Refusal::MountOption("rnoatime"),
    ratime_mount_option_is_refused: Refusal::MountOption("ratime"),
    rstrictatime_mount_option_is_refused: Refusal::MountOption("rstrictatime"),
    rnostrictatime_mount_option_is_refused: Refusal::MountOption("rnostrictatime"),
    rnosymfollow_mount_option_is_refused: Refusal::MountOption("rnosymfollow"),
    rsymfollow_mount_option_is_refused: Refusal::MountOption("rsymfollow"),
    user_namespace_is_refused: Refusal::Namespace("user"),
    time_namespace_is_refused: Refusal::Namespace("time"),
    seccomp_is_refused: field("linux.seccomp"),
    uid_mappings_are_refused: field("linux.uidMappings"),
    gid_mappings_are_refused: field("linux.gidMappings"),
    time_offsets_are_refused: field("linux.timeOffsets"),
    personality_is_refused: field("linux.personality"),
    intel_rdt_is_refused: field("linux.intelRdt"),
    memory_policy_is_refused: field("linux.memoryPolicy"),
    net_devices_are_refused: field("linux.netDevices"),
    mount_label_is_refused: field("linux.mountLabel"),
    block_io_is_refused: field("linux.resources.blockIO"),
    hugepage_limits_are_refused: field("linux.resources.hugepageLimits"),
    network_resources_are_refused: field("linux.resources.network"),
    rdma_is_refused: field("linux.resources.rdma"),
    unified_is_refused: field("linux.resources.unified"),
    kernel_memory_is_refused: field("linux.resources.memory.kernel"),
    kernel_tcp_memory_is_refused: field("linux.resources.memory.kernelTCP"),
    // 0 is a real setting (avoid swapping), not an absent one.
    swappiness_is_refused: Refusal::Field {
        path: "linux.resources.memory.swappiness",
        zero_is_set: true,
    },
    disable_oom_killer_is_refused: field("linux.resources.memory.disableOOMKiller"),
    use_hierarchy_is_refused: field("linux.resources.memory.useHierarchy"),
    check_before_update_is_refused: field("linux.resources.memory.checkBeforeUpdate"),
    realtime_runtime_is_refused: field("linux.resources.cpu.realtimeRuntime"),
    realtime_period_is_refused: field("linux.resources.cpu.realtimePeriod"),
    cpu_idle_is_refused: field("linux.resources.cpu.idle"),
    cpu_burst_is_refused: field("linux.resources.cpu.burst"),
}

/// Refuses what [`NOT_IMPLEMENTED`] lists and strips the empty ones. `prefix` is where
/// `root` sits in a config document: `""` for `config.json`, `"process"` for an `exec`
/// process file (whose fields are then reported without the prefix).
pub(crate) fn refuse(root: &mut Value, prefix: &str) -> Result<(), FieldError> {
    for refusal in NOT_IMPLEMENTED {
        match *refusal {
            Refusal::Field { path, zero_is_set } => {
                let Some(relative) = relative_to(path, prefix) else {
                    continue;
                };
                let segments: Vec<&str> = relative.split('.').collect();
                strip_or_refuse(root, &segments, "", zero_is_set)?;
            }
            Refusal::Namespace(kind) if prefix.is_empty() => {
                let namespaces = root
                    .pointer("/linux/namespaces")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for (i, ns) in namespaces.iter().enumerate() {
                    if ns.get("type").and_then(Value::as_str) == Some(kind) {
                        return Err(FieldError::new(
                            format!("linux.namespaces[{i}].type"),
                            Problem::ValueNotSupported {
                                what: format!("the {kind} namespace"),
                            },
                        ));
                    }
                }
            }
            Refusal::MountOption(option) if prefix.is_empty() => {
                let mounts = root
                    .get("mounts")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for (i, mount) in mounts.iter().enumerate() {
                    let options = mount
                        .get("options")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    if let Some(j) = options.iter().position(|o| o.as_str() == Some(option)) {
                        return Err(FieldError::new(
                            format!("mounts[{i}].options[{j}]"),
                            Problem::ValueNotSupported {
                                what: format!("mount option {option}"),
                            },
                        ));
                    }
                }
            }
            Refusal::Namespace(_) | Refusal::MountOption(_) => {}
        }
    }
    Ok(())
}

/// `path` without `prefix.`, or `None` when it lies outside `prefix`.
fn relative_to<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    path.strip_prefix(prefix)?.strip_prefix('.')
}

fn strip_or_refuse(
    node: &mut Value,
    segments: &[&str],
    at: &str,
    zero_is_set: bool,
) -> Result<(), FieldError> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    let (name, each) = match first.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (*first, false),
    };
    let Some(object) = node.as_object_mut() else {
        // Not an object: the typed pass reports the wrong shape.
        return Ok(());
    };
    let here = super::error::join(at, name);
    if rest.is_empty() {
        match object.get(name) {
            Some(value) if is_set(value, zero_is_set) => {
                return Err(FieldError::new(here, Problem::NotSupported));
            }
            Some(_) => {
                object.remove(name);
            }
            None => {}
        }
        return Ok(());
    }
    let Some(child) = object.get_mut(name) else {
        return Ok(());
    };
    if each {
        if let Some(items) = child.as_array_mut() {
            for (i, item) in items.iter_mut().enumerate() {
                let at = super::error::index(&here, i);
                strip_or_refuse(item, rest, &at, zero_is_set)?;
            }
        }
        Ok(())
    } else {
        strip_or_refuse(child, rest, &here, zero_is_set)
    }
}

/// Whether a value asks for something. An object asks for something when one of its
/// members does (`"hooks": {"prestart": []}` does not). Inside an object a 0 always counts
/// as set: there it is usually a limit (`"hcaHandles": 0`), not an absence.
fn is_set(value: &Value, zero_is_set: bool) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => zero_is_set || n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => map.values().any(|member| is_set(member, true)),
    }
}
