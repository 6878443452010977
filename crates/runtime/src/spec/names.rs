//! Checks on the untyped tree for values oci-spec would reject with a terse message.
//!
//! Capability names, rlimit types, namespace types and rlimit numbers are enumerations or
//! unsigned integers in oci-spec's types, so a wrong one fails deserialization with
//! "unknown variant" or "invalid value: integer `-1`, expected u64". Checking them first
//! here gives an error that names the field and the list moor accepts. Anything else of
//! the wrong shape is left to the typed pass.

use serde_json::Value;

use super::error::{FieldError, Problem, index, join, quoted};
use crate::config::{NamespaceKind, RlimitResource, capability_number};

const CAPABILITY_SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// Checks `process` (the value of `process` in a config, or a whole process file).
pub(crate) fn check_process(process: &Value, prefix: &str) -> Result<(), FieldError> {
    if let Some(caps) = process.get("capabilities") {
        for set in CAPABILITY_SETS {
            let Some(names) = caps.get(set).and_then(Value::as_array) else {
                continue;
            };
            let base = join(prefix, &format!("capabilities.{set}"));
            for (i, name) in names.iter().enumerate() {
                let Some(name) = name.as_str() else { continue };
                if capability_number(name).is_none() {
                    return Err(FieldError::new(
                        index(&base, i),
                        Problem::Unknown {
                            kind: "capability",
                            name: name.to_string(),
                        },
                    ));
                }
            }
        }
    }
    if let Some(rlimits) = process.get("rlimits").and_then(Value::as_array) {
        let base = join(prefix, "rlimits");
        for (i, rlimit) in rlimits.iter().enumerate() {
            let at = index(&base, i);
            if let Some(kind) = rlimit.get("type").and_then(Value::as_str)
                && RlimitResource::from_name(kind).is_none()
            {
                return Err(FieldError::new(
                    join(&at, "type"),
                    Problem::Unknown {
                        kind: "rlimit type",
                        name: kind.to_string(),
                    },
                ));
            }
            for bound in ["soft", "hard"] {
                let Some(number) = rlimit.get(bound).filter(|v| v.is_number()) else {
                    continue;
                };
                if number.as_u64().is_none() {
                    return Err(FieldError::invalid(
                        join(&at, bound),
                        "a non-negative integer (18446744073709551615 for unlimited)",
                        number,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks `linux.namespaces[].type` in a config document.
pub(crate) fn check_namespaces(root: &Value) -> Result<(), FieldError> {
    let Some(namespaces) = root.pointer("/linux/namespaces").and_then(Value::as_array) else {
        return Ok(());
    };
    for (i, ns) in namespaces.iter().enumerate() {
        let Some(kind) = ns.get("type").and_then(Value::as_str) else {
            continue;
        };
        if !NamespaceKind::ALL.iter().any(|k| k.spec_name() == kind) {
            let known: Vec<&str> = NamespaceKind::ALL.iter().map(|k| k.spec_name()).collect();
            return Err(FieldError::invalid(
                format!("linux.namespaces[{i}].type"),
                format!("a namespace type, one of {}", known.join(", ")),
                quoted(kind),
            ));
        }
    }
    Ok(())
}
