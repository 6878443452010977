//! `linux.sysctl`: which kernel parameters a container may set, and in which namespace.
//!
//! Most of `/proc/sys` belongs to the whole machine; writing it from a container changes
//! the host. Only parameters that live in a namespace the container owns are accepted, as
//! runc accepts them: the SysV IPC and POSIX message-queue ones with a new ipc namespace,
//! `net.*` with a new network namespace, `kernel.hostname` and `kernel.domainname` with a
//! new uts namespace.
//!
//! Names use `.` or `/` as the separator, as sysctl(8) does: when the first separator is
//! `/`, dots are part of a component (`net/ipv4/conf/eth0.100/forwarding`). Names are
//! stored as given; the writer applies the same rule to find the file.

use std::collections::BTreeMap;
use std::collections::HashMap;

use super::error::{FieldError, Problem, key, quoted};
use crate::config::NamespaceKind;

/// The IPC parameters the ipc namespace owns (besides everything under `fs.mqueue`).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Checks every entry against the namespaces the container gets new (`new_namespaces`).
pub(crate) fn convert(
    sysctl: Option<&HashMap<String, String>>,
    new_namespaces: &[NamespaceKind],
) -> Result<BTreeMap<String, String>, FieldError> {
    // Sorted, so that of several bad entries the same one is reported every time.
    let sorted: BTreeMap<&String, &String> = sysctl.into_iter().flatten().collect();
    let mut out = BTreeMap::new();
    for (name, value) in sorted {
        let field = key("linux.sysctl", name);
        let dotted = dotted_name(name).ok_or_else(|| {
            FieldError::invalid(
                &field,
                "a sysctl name of '.'- or '/'-separated words (letters, digits, '_', '-') \
                 without empty, '.' or '..' parts",
                quoted(name),
            )
        })?;
        if value.contains('\0') || value.contains('\n') {
            return Err(FieldError::invalid(
                &field,
                "a value without NUL or newline",
                quoted(value),
            ));
        }
        let namespace = owning_namespace(&dotted).ok_or_else(|| {
            FieldError::new(&field, Problem::NotNamespaced { name: name.clone() })
        })?;
        if !new_namespaces.contains(&namespace) {
            return Err(FieldError::new(
                &field,
                Problem::NeedsNamespace {
                    what: format!("sysctl {name}"),
                    namespace: namespace.spec_name(),
                },
            ));
        }
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

/// The name in dotted form (a `/` stands for a dot inside a component), or `None` when
/// the name is malformed.
fn dotted_name(name: &str) -> Option<String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_-./".contains(&b);
    if name.is_empty() || !name.bytes().all(allowed) {
        return None;
    }
    let slashed = name.find(['.', '/']).and_then(|i| name.get(i..=i)) == Some("/");
    let separator = if slashed { '/' } else { '.' };
    for part in name.split(separator) {
        if part.is_empty() || part == "." || part == ".." || part.starts_with('.') {
            return None;
        }
    }
    Some(if slashed {
        name.chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect()
    } else {
        name.to_string()
    })
}

fn owning_namespace(dotted: &str) -> Option<NamespaceKind> {
    if IPC_SYSCTLS.contains(&dotted) || dotted.starts_with("fs.mqueue.") {
        Some(NamespaceKind::Ipc)
    } else if dotted.starts_with("net.") {
        Some(NamespaceKind::Network)
    } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
        Some(NamespaceKind::Uts)
    } else {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names_are_checked_and_converted() {
        assert_eq!(
            dotted_name("net.ipv4.ip_forward").as_deref(),
            Some("net.ipv4.ip_forward")
        );
        assert_eq!(
            dotted_name("net/ipv4/conf/eth0.100/forwarding").as_deref(),
            Some("net.ipv4.conf.eth0/100.forwarding")
        );
        for bad in [
            "", "net..x", ".net.x", "/net/x", "net.x.", "net/../x", "net/./x", "net x", "net.x=1",
        ] {
            assert_eq!(dotted_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_namespaced_sysctls_are_placed() {
        assert_eq!(owning_namespace("kernel.shmmax"), Some(NamespaceKind::Ipc));
        assert_eq!(
            owning_namespace("fs.mqueue.msg_max"),
            Some(NamespaceKind::Ipc)
        );
        assert_eq!(
            owning_namespace("net.core.somaxconn"),
            Some(NamespaceKind::Network)
        );
        assert_eq!(
            owning_namespace("kernel.domainname"),
            Some(NamespaceKind::Uts)
        );
        assert_eq!(owning_namespace("kernel.pid_max"), None);
        assert_eq!(owning_namespace("vm.swappiness"), None);
        assert_eq!(owning_namespace("fs.mqueue"), None);
    }
}
