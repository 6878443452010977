//! Per-kind rules: replicas, selectors against templates, restart policies, service
//! ports, data keys and sizes.
//!
//! Owns: what differs between kinds. Does not own: the pod spec's rules (`pod`).

use std::collections::HashSet;

use super::pod::{pod_spec, target_port};
use super::{MAX_DATA_BYTES, NODE_PORTS, ValidationError, Violations, annotations, names};
use crate::path::FieldPath;
use crate::resources::{
    ConfigMap, DaemonSet, Deployment, Job, Kind, PodTemplateSpec, Protocol, RestartPolicy, Secret,
    Service, ServiceType,
};
use crate::selector::LabelSelector;

pub(crate) fn deployment(violations: &mut Violations, deployment: &Deployment) {
    let spec = &deployment.spec;
    if let Some(replicas) = spec.replicas {
        violations.range(
            FieldPath::fields("spec.replicas"),
            i64::from(replicas),
            0,
            i64::from(i32::MAX),
        );
    }
    selector_and_template(violations, &spec.selector, &spec.template);
    restart_policy(violations, &spec.template, Kind::Deployment);
}

pub(crate) fn daemon_set(violations: &mut Violations, daemon_set: &DaemonSet) {
    let spec = &daemon_set.spec;
    selector_and_template(violations, &spec.selector, &spec.template);
    restart_policy(violations, &spec.template, Kind::DaemonSet);
}

pub(crate) fn job(violations: &mut Violations, job: &Job) {
    let spec = &job.spec;
    let counts = [
        ("completions", spec.completions),
        ("parallelism", spec.parallelism),
        ("backoffLimit", spec.backoff_limit),
    ];
    for (field, value) in counts {
        if let Some(value) = value {
            violations.range(
                FieldPath::fields("spec").field(field),
                i64::from(value),
                0,
                i64::from(i32::MAX),
            );
        }
    }
    template(violations, &spec.template);
    // Kubernetes requires a Job's pods to say whether to retry in place or not.
    if !matches!(
        spec.template.spec.restart_policy,
        Some(RestartPolicy::OnFailure | RestartPolicy::Never)
    ) {
        violations.push(
            FieldPath::fields("spec.template.spec.restartPolicy"),
            ValidationError::RestartPolicy {
                allowed: "OnFailure or Never",
                kind: Kind::Job,
            },
        );
    }
}

fn template(violations: &mut Violations, template: &PodTemplateSpec) {
    let path = FieldPath::fields("spec.template");
    violations.labels(
        &path.field("metadata").field("labels"),
        &template.metadata.labels,
    );
    annotations(
        violations,
        &path.field("metadata").field("annotations"),
        &template.metadata.annotations,
    );
    pod_spec(violations, &path.field("spec"), &template.spec);
}

fn selector_and_template(
    violations: &mut Violations,
    selector: &LabelSelector,
    template: &PodTemplateSpec,
) {
    let path = FieldPath::fields("spec.selector");
    self::template(violations, template);
    if selector.is_empty() {
        violations.push(path, ValidationError::Empty);
        return;
    }
    match selector.to_selector() {
        Err(error) => violations.push(path, ValidationError::Selector(error)),
        Ok(compiled) if !compiled.matches(&template.metadata.labels) => {
            violations.push(
                FieldPath::fields("spec.template.metadata.labels"),
                ValidationError::SelectorMismatch,
            );
        }
        Ok(_) => {}
    }
}

fn restart_policy(violations: &mut Violations, template: &PodTemplateSpec, kind: Kind) {
    if !matches!(
        template.spec.restart_policy,
        None | Some(RestartPolicy::Always)
    ) {
        violations.push(
            FieldPath::fields("spec.template.spec.restartPolicy"),
            ValidationError::RestartPolicy {
                allowed: "Always",
                kind,
            },
        );
    }
}

pub(crate) fn service(violations: &mut Violations, service: &Service) {
    let spec = &service.spec;
    let path = FieldPath::fields("spec");
    let ports_path = path.field("ports");
    if spec.ports.is_empty() && spec.cluster_ip.as_deref() != Some("None") {
        violations.push(ports_path.clone(), ValidationError::Required);
    }
    let node_port_allowed = spec.kind == Some(ServiceType::NodePort);
    let mut names_seen = HashSet::new();
    let mut ports_seen = HashSet::new();
    for (index, port) in spec.ports.iter().enumerate() {
        let port_path = ports_path.index(index);
        match &port.name {
            Some(name) => {
                violations.name(port_path.field("name"), name, names::dns_label);
                if !names_seen.insert(name.as_str()) {
                    violations.push(
                        port_path.field("name"),
                        ValidationError::DuplicateName { name: name.clone() },
                    );
                }
            }
            None if spec.ports.len() > 1 => {
                violations.push(port_path.field("name"), ValidationError::PortNameRequired)
            }
            None => {}
        }
        violations.range(port_path.field("port"), i64::from(port.port), 1, 65535);
        let protocol = match port.protocol.unwrap_or(Protocol::Tcp) {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        };
        if !ports_seen.insert((port.port, protocol)) {
            violations.push(
                port_path.field("port"),
                ValidationError::DuplicatePort {
                    port: port.port,
                    protocol,
                },
            );
        }
        if let Some(target) = &port.target_port {
            target_port(violations, port_path.field("targetPort"), target, None);
        }
        if let Some(node_port) = port.node_port {
            if node_port_allowed {
                let (min, max) = (i64::from(*NODE_PORTS.start()), i64::from(*NODE_PORTS.end()));
                violations.range(port_path.field("nodePort"), i64::from(node_port), min, max);
            } else {
                violations.push(
                    port_path.field("nodePort"),
                    ValidationError::NodePortNeedsType,
                );
            }
        }
    }
    violations.labels(&path.field("selector"), &spec.selector);
    if let Some(address) = &spec.cluster_ip
        && address != "None"
        && !address.is_empty()
        && address.parse::<std::net::IpAddr>().is_err()
    {
        violations.push(
            path.field("clusterIP"),
            ValidationError::InvalidAddress {
                value: address.clone(),
            },
        );
    }
}

pub(crate) fn config_map(violations: &mut Violations, config_map: &ConfigMap) {
    let mut size = 0;
    for (key, value) in &config_map.data {
        violations.name(FieldPath::fields("data").key(key), key, names::config_key);
        size += key.len() + value.len();
    }
    for (key, value) in &config_map.binary_data {
        let path = FieldPath::fields("binaryData").key(key);
        violations.name(path.clone(), key, names::config_key);
        if config_map.data.contains_key(key) {
            violations.push(path, ValidationError::KeyInBoth { key: key.clone() });
        }
        size += key.len() + value.0.len();
    }
    if size > MAX_DATA_BYTES {
        violations.push(
            FieldPath::fields("data"),
            ValidationError::TooLarge {
                size,
                max: MAX_DATA_BYTES,
            },
        );
    }
}

pub(crate) fn secret(violations: &mut Violations, secret: &Secret) {
    let mut size = 0;
    for (key, value) in &secret.data {
        violations.name(FieldPath::fields("data").key(key), key, names::config_key);
        size += key.len() + value.0.len();
    }
    if size > MAX_DATA_BYTES {
        violations.push(
            FieldPath::fields("data"),
            ValidationError::TooLarge {
                size,
                max: MAX_DATA_BYTES,
            },
        );
    }
}
