//! Every kind survives the compact binary encoding (postcard) and rendering back to
//! YAML and JSON, and the rendering carries no empty noise.

use std::collections::BTreeMap;

use super::*;
use crate::manifest::parse;
use crate::render::{to_json, to_yaml, to_yaml_stream};

const FIXTURES: [(&str, &[u8]); 6] = [
    (
        "full-app.yaml",
        include_bytes!("../../fixtures/full-app.yaml"),
    ),
    (
        "workloads.yaml",
        include_bytes!("../../fixtures/workloads.yaml"),
    ),
    ("probes.yaml", include_bytes!("../../fixtures/probes.yaml")),
    ("config.yaml", include_bytes!("../../fixtures/config.yaml")),
    (
        "my-service.yaml",
        include_bytes!("../../fixtures/my-service.yaml"),
    ),
    (
        "nginx-deployment.yaml",
        include_bytes!("../../fixtures/nginx-deployment.yaml"),
    ),
];

fn fixture_objects() -> Vec<Object> {
    FIXTURES
        .iter()
        .flat_map(|(name, bytes)| {
            let manifest = parse(name, bytes).unwrap_or_else(|errors| panic!("{errors}"));
            manifest.objects.into_iter().map(|parsed| parsed.object)
        })
        .collect()
}

/// The controller's view: metadata filled and statuses written.
fn stored(mut object: Object) -> Object {
    let metadata = object.metadata_mut();
    metadata.uid = Some("0b7f6c2e-5d43-4a8e-9f1c-3e2d1a0b9c8d".into());
    metadata.resource_version = Some("42".into());
    metadata.generation = Some(3);
    metadata.creation_timestamp = Some("2026-11-22T01:02:03Z".into());
    match &mut object {
        Object::Pod(pod) => {
            pod.status = PodStatus {
                phase: Some(PodPhase::Running),
                pod_ip: Some("10.42.1.7".into()),
                host_ip: Some("192.0.2.10".into()),
                ..PodStatus::default()
            };
        }
        Object::Deployment(deployment) => {
            deployment.status = DeploymentStatus {
                observed_generation: Some(3),
                replicas: Some(2),
                ready_replicas: Some(1),
                ..DeploymentStatus::default()
            };
        }
        Object::Node(node) => {
            node.status = NodeStatus {
                conditions: vec![NodeCondition {
                    kind: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }],
                addresses: vec![NodeAddress {
                    kind: "InternalIP".into(),
                    address: "192.0.2.10".into(),
                }],
                capacity: BTreeMap::from([
                    ("cpu".into(), "4".into()),
                    ("memory".into(), "8Gi".into()),
                ]),
                allocatable: BTreeMap::new(),
            };
        }
        Object::Job(job) => {
            job.status = JobStatus {
                succeeded: Some(1),
                ..JobStatus::default()
            }
        }
        _ => {}
    }
    object
}

#[test]
fn every_kind_is_covered_by_the_fixtures() {
    let mut kinds: Vec<_> = fixture_objects().iter().map(Object::kind).collect();
    kinds.sort();
    kinds.dedup();
    let mut all = Kind::ALL.to_vec();
    all.sort();
    assert_eq!(kinds, all);
}

#[test]
fn every_kind_round_trips_through_postcard() {
    for object in fixture_objects().into_iter().map(stored) {
        let bytes = postcard::to_allocvec(&object)
            .unwrap_or_else(|error| panic!("{}: {error}", object.kind()));
        let decoded: Object = postcard::from_bytes(&bytes)
            .unwrap_or_else(|error| panic!("{}: {error}", object.kind()));
        assert_eq!(decoded, object);
    }
}

#[test]
fn every_kind_round_trips_through_yaml_and_json() {
    for object in fixture_objects().into_iter().map(stored) {
        let kind = object.kind();
        for (format, text) in [("yaml", to_yaml(&object)), ("json", to_json(&object))] {
            let text = text.unwrap_or_else(|error| panic!("{kind}: {error}"));
            let manifest = parse(format, text.as_bytes())
                .unwrap_or_else(|errors| panic!("{kind} {format}:\n{errors}\n{text}"));
            let mut expected = object.clone();
            // A manifest's status is the controller's to write: parsing drops it.
            match &mut expected {
                Object::Pod(pod) => pod.status = PodStatus::default(),
                Object::Deployment(deployment) => deployment.status = DeploymentStatus::default(),
                Object::Node(node) => node.status = NodeStatus::default(),
                Object::Job(job) => job.status = JobStatus::default(),
                _ => {}
            }
            assert_eq!(
                manifest.objects[0].object, expected,
                "{kind} via {format}:\n{text}"
            );
        }
    }
}

#[test]
fn rendering_has_no_empty_noise() {
    let objects = fixture_objects();
    let nginx = objects.last().unwrap_or_else(|| panic!("no objects"));
    let expected = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
";
    assert_eq!(to_yaml(nginx).ok().as_deref(), Some(expected));
    let stream = to_yaml_stream(&objects).unwrap_or_else(|error| panic!("{error}"));
    assert!(
        !stream.contains("null") && !stream.contains("[]"),
        "{stream}"
    );
    assert!(
        stream.contains("emptyDir: {}"),
        "an emptyDir keeps its meaning"
    );
    assert_eq!(stream.matches("{}").count(), 1, "{stream}");
}

#[test]
fn status_renders_for_get() {
    let objects = fixture_objects();
    let Some(node) = objects.iter().find(|object| object.kind() == Kind::Node) else {
        panic!("no node")
    };
    let text = to_yaml(&stored(node.clone())).unwrap_or_else(|error| panic!("{error}"));
    assert!(
        text.contains("status:\n  conditions:\n  - type: Ready\n    status: 'True'\n"),
        "{text}"
    );
    assert!(text.contains("  resourceVersion: '42'\n"), "{text}");
}

#[test]
fn secret_bytes_are_base64_in_yaml_and_raw_in_postcard() {
    let secret = Secret {
        data: BTreeMap::from([("key".into(), Bytes(b"\x00\xffsecret".to_vec()))]),
        ..Secret::default()
    };
    let text = to_yaml(&Object::Secret(secret.clone())).unwrap_or_else(|error| panic!("{error}"));
    assert!(text.contains("key: AP9zZWNyZXQ="), "{text}");
    let bytes = postcard::to_allocvec(&secret).unwrap_or_else(|error| panic!("{error}"));
    assert!(bytes.windows(6).any(|window| window == b"secret"));
    assert_eq!(format!("{:?}", secret.data["key"]), "Bytes(8 bytes)");
}

#[test]
fn kinds_are_found_by_type_meta_and_by_command_line_name() {
    for kind in Kind::ALL {
        assert_eq!(
            Kind::from_type_meta(kind.api_version(), kind.name()),
            Some(kind)
        );
        assert_eq!(Kind::from_resource_name(kind.name()), Some(kind));
    }
    assert_eq!(Kind::from_type_meta("v1", "Deployment"), None);
    assert_eq!(Kind::from_resource_name("deploy"), Some(Kind::Deployment));
    assert_eq!(Kind::from_resource_name("SVC"), Some(Kind::Service));
    assert_eq!(Kind::from_resource_name("gadgets"), None);
}
