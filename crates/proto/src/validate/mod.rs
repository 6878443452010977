//! Rules on values: names per kind, namespaces, labels, ports, replicas, selectors that
//! match their template, unique container names, data keys and sizes.
//!
//! Owns: [`validate`], which the manifest parser runs on every object and the controller
//! can run again on every write (it needs no source text: violations carry a
//! [`FieldPath`], which the parser turns into a line). Does not own: shapes and field
//! classes (`manifest::schema`).

mod kinds;
pub mod names;
mod pod;

use std::collections::BTreeMap;

pub use names::NameError;

use crate::path::FieldPath;
use crate::resources::{Kind, Object, ObjectMeta};
use crate::selector::SelectorError;

/// The range of node ports, as Kubernetes' default.
pub const NODE_PORTS: std::ops::RangeInclusive<i32> = 30000..=32767;

/// Most bytes of data in one ConfigMap or Secret (as Kubernetes).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Most bytes of all annotations of one object (as Kubernetes).
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// Why a value breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("required")]
    Required,
    #[error("invalid name `{value}`: {reason}")]
    InvalidName { value: String, reason: NameError },
    #[error("a {kind} is cluster-scoped and takes no namespace")]
    NamespaceNotAllowed { kind: Kind },
    #[error("must be between {min} and {max}, found {value}")]
    OutOfRange { value: i64, min: i64, max: i64 },
    #[error("duplicate name `{name}`")]
    DuplicateName { name: String },
    #[error("duplicate port {port}/{protocol}")]
    DuplicatePort { port: i32, protocol: &'static str },
    #[error("invalid selector: {0}")]
    Selector(SelectorError),
    #[error("must not be empty")]
    Empty,
    #[error("selector does not match the template's labels")]
    SelectorMismatch,
    #[error("exactly one of {options} must be set, found {count}")]
    ExactlyOne { options: &'static str, count: usize },
    #[error("no container port named `{name}`")]
    UnknownPort { name: String },
    #[error("no volume named `{name}` in the pod")]
    UnknownVolume { name: String },
    #[error("must be an absolute path, found `{value}`")]
    NotAbsolute { value: String },
    #[error("must be {allowed} for a {kind}")]
    RestartPolicy { allowed: &'static str, kind: Kind },
    #[error("allowed only when the service type is NodePort")]
    NodePortNeedsType,
    #[error("must be an IP address or None, found `{value}`")]
    InvalidAddress { value: String },
    #[error("required when a service has more than one port")]
    PortNameRequired,
    #[error("key `{key}` is in both data and binaryData")]
    KeyInBoth { key: String },
    #[error("{size} bytes in total, more than {max}")]
    TooLarge { size: usize, max: usize },
    #[error("value and valueFrom are mutually exclusive")]
    ValueAndValueFrom,
}

/// One broken rule and the field that breaks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The offending field.
    pub path: FieldPath,
    /// The rule it breaks.
    pub reason: ValidationError,
}

/// Collects violations as a check goes.
#[derive(Debug, Default)]
pub(crate) struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub(crate) fn push(&mut self, path: FieldPath, reason: ValidationError) {
        self.0.push(FieldViolation { path, reason });
    }

    /// Records a name-rule failure for `value` at `path`.
    pub(crate) fn name(
        &mut self,
        path: FieldPath,
        value: &str,
        rule: fn(&str) -> Result<(), NameError>,
    ) {
        if let Err(reason) = rule(value) {
            let reason = if value.is_empty() {
                ValidationError::Required
            } else {
                ValidationError::InvalidName {
                    value: shortened(value),
                    reason,
                }
            };
            self.push(path, reason);
        }
    }

    /// Records a range failure.
    pub(crate) fn range(&mut self, path: FieldPath, value: i64, min: i64, max: i64) {
        if !(min..=max).contains(&value) {
            self.push(path, ValidationError::OutOfRange { value, min, max });
        }
    }

    /// Records every label key and value that breaks its rule.
    pub(crate) fn labels(&mut self, path: &FieldPath, labels: &BTreeMap<String, String>) {
        for (key, value) in labels {
            self.name(path.key(key), key, names::label_key);
            if let Err(reason) = names::label_value(value) {
                let value = shortened(value);
                self.push(
                    path.key(key),
                    ValidationError::InvalidName { value, reason },
                );
            }
        }
    }
}

/// The value as shown in a message: long ones are cut, so a hostile 1 MB label does not
/// become a 1 MB error line.
fn shortened(value: &str) -> String {
    const SHOWN: usize = 64;
    if value.chars().count() <= SHOWN {
        value.to_owned()
    } else {
        let head: String = value.chars().take(SHOWN).collect();
        format!("{head}...")
    }
}

/// Every rule `object` breaks; empty when it is valid.
pub fn validate(object: &Object) -> Vec<FieldViolation> {
    let mut violations = Violations::default();
    metadata(&mut violations, object.kind(), object.metadata());
    match object {
        Object::Namespace(_) | Object::Node(_) => {}
        Object::Pod(pod) => pod::pod_spec(&mut violations, &FieldPath::fields("spec"), &pod.spec),
        Object::Deployment(deployment) => kinds::deployment(&mut violations, deployment),
        Object::DaemonSet(daemon_set) => kinds::daemon_set(&mut violations, daemon_set),
        Object::Job(job) => kinds::job(&mut violations, job),
        Object::Service(service) => kinds::service(&mut violations, service),
        Object::ConfigMap(config_map) => kinds::config_map(&mut violations, config_map),
        Object::Secret(secret) => kinds::secret(&mut violations, secret),
    }
    violations.0
}

fn metadata(violations: &mut Violations, kind: Kind, metadata: &ObjectMeta) {
    let path = FieldPath::fields("metadata");
    // As Kubernetes: Namespaces are DNS labels, Services RFC 1035 labels (they become DNS
    // names and environment variables), everything else DNS subdomains.
    let name_rule = match kind {
        Kind::Namespace => names::dns_label,
        Kind::Service => names::dns_1035_label,
        _ => names::dns_subdomain,
    };
    violations.name(path.field("name"), &metadata.name, name_rule);
    match (&metadata.namespace, kind.is_namespaced()) {
        (Some(namespace), true) => {
            violations.name(path.field("namespace"), namespace, names::dns_label)
        }
        (Some(_), false) => violations.push(
            path.field("namespace"),
            ValidationError::NamespaceNotAllowed { kind },
        ),
        (None, _) => {}
    }
    violations.labels(&path.field("labels"), &metadata.labels);
    annotations(
        violations,
        &path.field("annotations"),
        &metadata.annotations,
    );
}

pub(crate) fn annotations(
    violations: &mut Violations,
    path: &FieldPath,
    annotations: &BTreeMap<String, String>,
) {
    let mut size = 0;
    for (key, value) in annotations {
        violations.name(path.key(key), key, names::label_key);
        size += key.len() + value.len();
    }
    if size > MAX_ANNOTATION_BYTES {
        violations.push(
            path.clone(),
            ValidationError::TooLarge {
                size,
                max: MAX_ANNOTATION_BYTES,
            },
        );
    }
}
