//! Rules of a pod spec: containers, ports, environment, probes, volumes and mounts.
//!
//! Owns: the checks shared by Pod and every template. Does not own: per-kind rules
//! such as the restart policy a Deployment requires (`kinds`).

use std::collections::HashSet;

use super::{ValidationError, Violations, names};
use crate::path::FieldPath;
use crate::resources::{Container, IntOrString, PodSpec, Probe, Volume};

const PORTS: (i64, i64) = (1, 65535);

pub(crate) fn pod_spec(violations: &mut Violations, path: &FieldPath, spec: &PodSpec) {
    let containers_path = path.field("containers");
    if spec.containers.is_empty() {
        violations.push(containers_path.clone(), ValidationError::Required);
    }
    let volume_names = volumes(violations, &path.field("volumes"), &spec.volumes);
    let mut container_names = HashSet::new();
    for (index, container) in spec.containers.iter().enumerate() {
        let container_path = containers_path.index(index);
        if !container.name.is_empty() && !container_names.insert(container.name.as_str()) {
            let name = container.name.clone();
            violations.push(
                container_path.field("name"),
                ValidationError::DuplicateName { name },
            );
        }
        self::container(violations, &container_path, container, &volume_names);
    }
    violations.labels(&path.field("nodeSelector"), &spec.node_selector);
    if let Some(node_name) = &spec.node_name {
        violations.name(path.field("nodeName"), node_name, names::dns_subdomain);
    }
    if let Some(seconds) = spec.termination_grace_period_seconds {
        violations.range(
            path.field("terminationGracePeriodSeconds"),
            seconds,
            0,
            i64::from(i32::MAX),
        );
    }
}

fn volumes<'spec>(
    violations: &mut Violations,
    path: &FieldPath,
    volumes: &'spec [Volume],
) -> HashSet<&'spec str> {
    let mut seen = HashSet::new();
    for (index, volume) in volumes.iter().enumerate() {
        let volume_path = path.index(index);
        violations.name(volume_path.field("name"), &volume.name, names::dns_label);
        if !volume.name.is_empty() && !seen.insert(volume.name.as_str()) {
            let name = volume.name.clone();
            violations.push(
                volume_path.field("name"),
                ValidationError::DuplicateName { name },
            );
        }
        let count = volume.source_count();
        if count != 1 {
            let options = "emptyDir, configMap, secret, hostPath, projected, downwardAPI";
            violations.push(
                volume_path.clone(),
                ValidationError::ExactlyOne { options, count },
            );
        }
        if let Some(config_map) = &volume.config_map {
            violations.name(
                volume_path.field("configMap").field("name"),
                &config_map.name,
                names::dns_subdomain,
            );
        }
        if let Some(secret) = &volume.secret {
            let secret_path = volume_path.field("secret").field("secretName");
            violations.name(secret_path, &secret.secret_name, names::dns_subdomain);
        }
        if let Some(host_path) = &volume.host_path
            && !host_path.path.starts_with('/')
        {
            let value = host_path.path.clone();
            violations.push(
                volume_path.field("hostPath").field("path"),
                ValidationError::NotAbsolute { value },
            );
        }
    }
    seen
}

fn container(
    violations: &mut Violations,
    path: &FieldPath,
    container: &Container,
    volume_names: &HashSet<&str>,
) {
    violations.name(path.field("name"), &container.name, names::dns_label);
    if container.image.trim().is_empty() {
        violations.push(path.field("image"), ValidationError::Required);
    }
    let mut port_names = HashSet::new();
    for (index, port) in container.ports.iter().enumerate() {
        let port_path = path.field("ports").index(index);
        violations.range(
            port_path.field("containerPort"),
            i64::from(port.container_port),
            PORTS.0,
            PORTS.1,
        );
        if let Some(name) = &port.name {
            violations.name(port_path.field("name"), name, names::port_name);
            if !port_names.insert(name.as_str()) {
                violations.push(
                    port_path.field("name"),
                    ValidationError::DuplicateName { name: name.clone() },
                );
            }
        }
    }
    for (index, variable) in container.env.iter().enumerate() {
        let variable_path = path.field("env").index(index);
        violations.name(
            variable_path.field("name"),
            &variable.name,
            names::env_var_name,
        );
        if variable.value.is_some() && variable.value_from.is_some() {
            violations.push(variable_path.clone(), ValidationError::ValueAndValueFrom);
        }
        if let Some(source) = &variable.value_from {
            let source_path = variable_path.field("valueFrom");
            let references = [
                ("configMapKeyRef", &source.config_map_key_ref),
                ("secretKeyRef", &source.secret_key_ref),
            ];
            let set = references
                .iter()
                .filter(|(_, reference)| reference.is_some())
                .count()
                + usize::from(source.field_ref.is_some())
                + usize::from(source.resource_field_ref.is_some());
            if set != 1 {
                let options = "configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef";
                violations.push(
                    source_path.clone(),
                    ValidationError::ExactlyOne {
                        options,
                        count: set,
                    },
                );
            }
            for (field, reference) in references {
                if let Some(reference) = reference {
                    let reference_path = source_path.field(field);
                    violations.name(
                        reference_path.field("name"),
                        &reference.name,
                        names::dns_subdomain,
                    );
                    violations.name(
                        reference_path.field("key"),
                        &reference.key,
                        names::config_key,
                    );
                }
            }
        }
    }
    let probes = [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ];
    for (field, probe) in probes {
        if let Some(probe) = probe {
            self::probe(violations, &path.field(field), probe, &port_names);
        }
    }
    for (index, mount) in container.volume_mounts.iter().enumerate() {
        let mount_path = path.field("volumeMounts").index(index);
        if mount.name.is_empty() {
            violations.push(mount_path.field("name"), ValidationError::Required);
        } else if !volume_names.contains(mount.name.as_str()) {
            let name = mount.name.clone();
            violations.push(
                mount_path.field("name"),
                ValidationError::UnknownVolume { name },
            );
        }
        if !mount.mount_path.starts_with('/') {
            let value = mount.mount_path.clone();
            violations.push(
                mount_path.field("mountPath"),
                ValidationError::NotAbsolute { value },
            );
        }
    }
}

fn probe(violations: &mut Violations, path: &FieldPath, probe: &Probe, port_names: &HashSet<&str>) {
    let count = usize::from(probe.http_get.is_some())
        + usize::from(probe.tcp_socket.is_some())
        + usize::from(probe.exec.is_some())
        + usize::from(probe.grpc.is_some());
    if count != 1 {
        violations.push(
            path.clone(),
            ValidationError::ExactlyOne {
                options: "httpGet, tcpSocket, exec, grpc",
                count,
            },
        );
    }
    let ports = [
        (
            "httpGet",
            probe.http_get.as_ref().map(|action| &action.port),
        ),
        (
            "tcpSocket",
            probe.tcp_socket.as_ref().map(|action| &action.port),
        ),
    ];
    for (field, port) in ports {
        let port_path = path.field(field).field("port");
        match port {
            None => {}
            Some(None) => violations.push(port_path, ValidationError::Required),
            Some(Some(port)) => target_port(violations, port_path, port, Some(port_names)),
        }
    }
    if let Some(exec) = &probe.exec
        && exec.command.is_empty()
    {
        violations.push(
            path.field("exec").field("command"),
            ValidationError::Required,
        );
    }
    let bounds = [
        ("initialDelaySeconds", probe.initial_delay_seconds, 0),
        ("periodSeconds", probe.period_seconds, 1),
        ("timeoutSeconds", probe.timeout_seconds, 1),
        ("successThreshold", probe.success_threshold, 1),
        ("failureThreshold", probe.failure_threshold, 1),
    ];
    for (field, value, min) in bounds {
        if let Some(value) = value {
            violations.range(
                path.field(field),
                i64::from(value),
                min,
                i64::from(i32::MAX),
            );
        }
    }
}

/// A port by number (1–65535) or by name (the IANA rule; and, for probes, a name one of
/// the container's ports carries).
pub(crate) fn target_port(
    violations: &mut Violations,
    path: FieldPath,
    port: &IntOrString,
    known_names: Option<&HashSet<&str>>,
) {
    match port {
        IntOrString::Int(number) => violations.range(path, i64::from(*number), PORTS.0, PORTS.1),
        IntOrString::String(name) => {
            violations.name(path.clone(), name, names::port_name);
            if let Some(known_names) = known_names
                && names::port_name(name).is_ok()
                && !known_names.contains(name.as_str())
            {
                violations.push(path, ValidationError::UnknownPort { name: name.clone() });
            }
        }
    }
}
