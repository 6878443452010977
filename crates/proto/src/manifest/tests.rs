//! Manifest parsing: the Kubernetes documentation's examples, each class of field, every
//! kind of rejection with its location, and hostile input.

use super::*;
use crate::resources::{IntOrString, Object, Protocol, ServiceType};
use crate::yaml::{Limits, YamlError};

fn fixture(name: &str) -> &'static [u8] {
    match name {
        "nginx-deployment.yaml" => include_bytes!("../../fixtures/nginx-deployment.yaml"),
        "my-service.yaml" => include_bytes!("../../fixtures/my-service.yaml"),
        "probes.yaml" => include_bytes!("../../fixtures/probes.yaml"),
        "workloads.yaml" => include_bytes!("../../fixtures/workloads.yaml"),
        "config.yaml" => include_bytes!("../../fixtures/config.yaml"),
        "full-app.yaml" => include_bytes!("../../fixtures/full-app.yaml"),
        "kubectl-dry-run.yaml" => include_bytes!("../../fixtures/kubectl-dry-run.yaml"),
        other => panic!("no fixture {other}"),
    }
}

fn parse_fixture(name: &str) -> Manifest {
    parse(name, fixture(name)).unwrap_or_else(|errors| panic!("{name} failed:\n{errors}"))
}

fn objects(manifest: &Manifest) -> Vec<&Object> {
    manifest
        .objects
        .iter()
        .map(|parsed| &parsed.object)
        .collect()
}

/// The error lines for an input that must fail.
fn error_lines(text: &str) -> Vec<String> {
    match parse("app.yaml", text.as_bytes()) {
        Ok(manifest) => panic!("expected errors, parsed {} objects", manifest.objects.len()),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

fn warning_lines(text: &str) -> Vec<String> {
    match parse("app.yaml", text.as_bytes()) {
        Ok(manifest) => manifest.warnings.iter().map(ToString::to_string).collect(),
        Err(errors) => panic!("expected success:\n{errors}"),
    }
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx
        ports:
        - containerPort: 80
";

/// DEPLOYMENT with `from` replaced by `to` (which must occur once).
fn deployment_with(from: &str, to: &str) -> String {
    assert_eq!(
        DEPLOYMENT.matches(from).count(),
        1,
        "`{from}` must occur once"
    );
    DEPLOYMENT.replace(from, to)
}

#[test]
fn docs_nginx_deployment_parses_unchanged() {
    let manifest = parse_fixture("nginx-deployment.yaml");
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    let [Object::Deployment(deployment)] = objects(&manifest)[..] else {
        panic!("one deployment")
    };
    assert_eq!(deployment.metadata.name, "nginx-deployment");
    assert_eq!(deployment.spec.replicas, Some(3));
    assert_eq!(deployment.spec.selector.match_labels["app"], "nginx");
    let container = &deployment.spec.template.spec.containers[0];
    assert_eq!(
        (container.name.as_str(), container.image.as_str()),
        ("nginx", "nginx:1.14.2")
    );
    assert_eq!(container.ports[0].container_port, 80);
    assert_eq!(manifest.objects[0].location.line, 2);
}

#[test]
fn docs_services_parse_unchanged() {
    let manifest = parse_fixture("my-service.yaml");
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    let services: Vec<_> = objects(&manifest)
        .into_iter()
        .filter_map(|object| match object {
            Object::Service(service) => Some(service),
            _ => None,
        })
        .collect();
    assert_eq!(services.len(), 4);
    assert_eq!(
        services[0].spec.ports[0].target_port,
        Some(IntOrString::Int(9376))
    );
    assert_eq!(services[0].spec.ports[0].protocol, Some(Protocol::Tcp));
    assert_eq!(services[0].spec.selector["app.kubernetes.io/name"], "MyApp");
    assert_eq!(
        services[1].spec.ports[0].target_port,
        Some(IntOrString::String("http-web-svc".into()))
    );
    assert_eq!(services[2].spec.ports.len(), 2);
    assert_eq!(services[3].spec.kind, Some(ServiceType::NodePort));
    assert_eq!(services[3].spec.ports[0].node_port, Some(30007));
}

#[test]
fn docs_probes_parse_and_http_headers_are_deferred() {
    let manifest = parse_fixture("probes.yaml");
    let pods: Vec<_> = objects(&manifest)
        .into_iter()
        .filter_map(|object| match object {
            Object::Pod(pod) => Some(pod),
            _ => None,
        })
        .collect();
    let exec = pods[0].spec.containers[0]
        .liveness_probe
        .as_ref()
        .and_then(|probe| probe.exec.as_ref());
    assert_eq!(
        exec.map(|exec| exec.command.clone()),
        Some(vec!["cat".into(), "/tmp/healthy".into()])
    );
    let http = pods[1].spec.containers[0]
        .liveness_probe
        .as_ref()
        .and_then(|probe| probe.http_get.as_ref());
    assert_eq!(
        http.and_then(|http| http.port.clone()),
        Some(IntOrString::Int(8080))
    );
    let readiness = pods[2].spec.containers[0].readiness_probe.as_ref();
    assert_eq!(readiness.and_then(|probe| probe.period_seconds), Some(10));
    let warnings: Vec<_> = manifest.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "probes.yaml:41:9: spec.containers[0].livenessProbe.httpGet.httpHeaders: stored but not yet honoured by moor"
        ]
    );
}

#[test]
fn docs_daemon_set_and_job_parse_with_tolerations_stored() {
    let manifest = parse_fixture("workloads.yaml");
    let [Object::DaemonSet(daemon_set), Object::Job(job)] = objects(&manifest)[..] else {
        panic!("two objects")
    };
    assert_eq!(
        daemon_set.metadata.namespace.as_deref(),
        Some("kube-system")
    );
    let spec = &daemon_set.spec.template.spec;
    assert_eq!(spec.containers[0].resources.limits["memory"], "200Mi");
    assert_eq!(
        spec.volumes[0]
            .host_path
            .as_ref()
            .map(|host| host.path.as_str()),
        Some("/var/log")
    );
    let tolerations = spec.tolerations.as_ref().map(|opaque| opaque.0.clone());
    assert_eq!(
        tolerations
            .as_ref()
            .and_then(|value| value[0]["effect"].as_str()),
        Some("NoSchedule")
    );
    assert_eq!(job.spec.backoff_limit, Some(4));
    assert_eq!(job.spec.template.spec.containers[0].command.len(), 4);
    let warnings: Vec<_> = manifest.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "workloads.yaml:18:7: spec.template.spec.tolerations: stored but not yet honoured by moor"
        ]
    );
}

#[test]
fn docs_config_map_and_secrets_parse_and_decode() {
    let manifest = parse_fixture("config.yaml");
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    let [
        Object::ConfigMap(config),
        Object::Secret(dotfile),
        Object::Secret(basic),
        Object::Secret(string_data),
    ] = objects(&manifest)[..]
    else {
        panic!("four objects")
    };
    assert_eq!(config.data["player_initial_lives"], "3");
    assert!(config.data["game.properties"].starts_with("enemy.types=aliens,monsters\n"));
    assert_eq!(dotfile.data[".secret-file"].0, b"value-2\r\n\r\n");
    assert_eq!(basic.data["USER_NAME"].0, b"admin");
    assert_eq!(basic.secret_type.as_deref(), Some("Opaque"));
    assert!(
        string_data.data["config.yaml"]
            .0
            .starts_with(b"apiUrl: \"https://my.api.com/api/v1\"\n")
    );
}

#[test]
fn realistic_manifest_of_every_kind_parses_without_warnings() {
    let manifest = parse_fixture("full-app.yaml");
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    let kinds: Vec<_> = objects(&manifest)
        .iter()
        .map(|object| object.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            Kind::Namespace,
            Kind::ConfigMap,
            Kind::Secret,
            Kind::Deployment,
            Kind::Service,
            Kind::Node
        ]
    );
    let Object::Deployment(deployment) = objects(&manifest)[3] else {
        panic!("deployment")
    };
    let spec = &deployment.spec.template.spec;
    assert_eq!(
        spec.volumes[2]
            .secret
            .as_ref()
            .and_then(|secret| secret.default_mode),
        Some(0o400)
    );
    assert_eq!(spec.containers[0].resources.limits["cpu"], "0.5");
    assert_eq!(
        spec.containers[0].env[2]
            .value_from
            .as_ref()
            .and_then(|from| from.secret_key_ref.as_ref())
            .map(|key| key.key.as_str()),
        Some("tls.key")
    );
    assert!(spec.volumes[0].empty_dir.is_some());
}

#[test]
fn pod_job_and_node_parse_from_realistic_manifests() {
    let text = "\
apiVersion: v1
kind: Pod
metadata: {name: one, namespace: edge}
spec:
  restartPolicy: OnFailure
  nodeName: box-1
  containers: [{name: main, image: busybox, command: [sleep, '3600']}]
---
apiVersion: v1
kind: Node
metadata: {name: box-1}
spec: {unschedulable: true}
";
    let manifest = parse("pods.yaml", text.as_bytes()).unwrap_or_else(|errors| panic!("{errors}"));
    let [Object::Pod(pod), Object::Node(node)] = objects(&manifest)[..] else {
        panic!("two objects")
    };
    assert_eq!(pod.spec.node_name.as_deref(), Some("box-1"));
    assert_eq!(node.spec.unschedulable, Some(true));
}

#[test]
fn kubectl_boilerplate_is_accepted_without_warnings() {
    let manifest = parse_fixture("kubectl-dry-run.yaml");
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    assert_eq!(manifest.objects.len(), 4);
    let Object::Deployment(deployment) = objects(&manifest)[0] else {
        panic!("deployment")
    };
    assert_eq!(deployment.spec.strategy, None);
    assert_eq!(deployment.metadata.creation_timestamp, None);
}

#[test]
fn json_input_parses() {
    let text = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-json"},
                   "data": {"a": "1"}}"#;
    let manifest = parse("cm.json", text.as_bytes()).unwrap_or_else(|errors| panic!("{errors}"));
    let [Object::ConfigMap(config)] = objects(&manifest)[..] else {
        panic!("one config map")
    };
    assert_eq!(config.data["a"], "1");
}

#[test]
fn unknown_field_names_file_line_column_and_path() {
    let text = deployment_with(
        "        - containerPort: 80",
        "        - containerPort: 80\n          hostPorts: 80",
    );
    assert_eq!(
        error_lines(&text),
        ["app.yaml:20:11: spec.template.spec.containers[0].ports[0].hostPorts: unknown field"]
    );
}

#[test]
fn rejected_field_gives_its_reason() {
    let text = deployment_with(
        "      containers:\n",
        "      volumes:\n      - name: data\n        persistentVolumeClaim: {claimName: data}\n      containers:\n",
    );
    assert_eq!(
        error_lines(&text),
        [
            "app.yaml:17:9: spec.template.spec.volumes[0].persistentVolumeClaim: not supported: persistent volumes are not supported yet; use hostPath or emptyDir"
        ]
    );
}

#[test]
fn empty_rejected_field_is_boilerplate() {
    let text = deployment_with(
        "      containers:\n",
        "      runtimeClassName: \"\"\n      containers:\n",
    );
    assert!(warning_lines(&text).is_empty());
}

#[test]
fn deferred_field_with_content_is_stored_with_a_warning() {
    let text = deployment_with(
        "  replicas: 2\n",
        "  replicas: 2\n  strategy:\n    type: Recreate\n",
    );
    assert_eq!(
        warning_lines(&text),
        ["app.yaml:7:3: spec.strategy: stored but not yet honoured by moor"]
    );
    let manifest = parse("app.yaml", text.as_bytes()).unwrap_or_else(|errors| panic!("{errors}"));
    let Object::Deployment(deployment) = &manifest.objects[0].object else {
        panic!("deployment")
    };
    let strategy = deployment
        .spec
        .strategy
        .as_ref()
        .map(|opaque| opaque.0.clone());
    assert_eq!(strategy, Some(serde_json::json!({"type": "Recreate"})));
}

#[test]
fn controller_owned_and_dropped_fields_warn() {
    let text = deployment_with("  name: web\n", "  name: web\n  uid: 1234\n")
        .replace("uid: 1234", "uid: \"1234\"")
        + "status:\n  replicas: 2\n";
    assert_eq!(
        warning_lines(&text),
        [
            "app.yaml:5:3: metadata.uid: set by the controller; the value given here is replaced when applied",
            "app.yaml:21:1: status: ignored: written by the controller; ignored in a manifest",
        ]
    );
}

#[test]
fn port_out_of_range_names_path_and_range() {
    let text = deployment_with("containerPort: 80", "containerPort: 70000");
    assert_eq!(
        error_lines(&text),
        [
            "app.yaml:19:11: spec.template.spec.containers[0].ports[0].containerPort: must be between 1 and 65535, found 70000"
        ]
    );
}

#[test]
fn wrong_type_names_expected_and_found() {
    let text = deployment_with("replicas: 2", "replicas: \"three\"");
    assert_eq!(
        error_lines(&text),
        ["app.yaml:6:13: spec.replicas: expected an integer, found \"three\""]
    );
    let text = deployment_with("replicas: 2", "replicas: 99999999999");
    assert_eq!(
        error_lines(&text),
        ["app.yaml:6:13: spec.replicas: expected an integer of at most 32 bits, found 99999999999"]
    );
    let text = deployment_with("      containers:\n", "      containers: nginx\n      x:\n");
    assert!(error_lines(&text)[0].starts_with(
        "app.yaml:15:19: spec.template.spec.containers: expected a list, found \"nginx\""
    ));
}

#[test]
fn negative_replicas_are_refused() {
    let text = deployment_with("replicas: 2", "replicas: -1");
    assert_eq!(
        error_lines(&text),
        ["app.yaml:6:3: spec.replicas: must be between 0 and 2147483647, found -1"]
    );
}

#[test]
fn selector_must_match_template_labels() {
    let text = deployment_with("      app: web\n  template", "      app: api\n  template");
    assert_eq!(
        error_lines(&text),
        [
            "app.yaml:12:7: spec.template.metadata.labels: selector does not match the template's labels"
        ]
    );
    let text = deployment_with(
        "    matchLabels:\n      app: web\n",
        "    matchLabels: {}\n",
    );
    assert_eq!(
        error_lines(&text),
        ["app.yaml:7:3: spec.selector: must not be empty"]
    );
}

#[test]
fn container_names_must_be_unique() {
    let text = deployment_with(
        "        - containerPort: 80\n",
        "        - containerPort: 80\n      - name: web\n        image: busybox\n",
    );
    assert_eq!(
        error_lines(&text),
        ["app.yaml:20:9: spec.template.spec.containers[1].name: duplicate name `web`"]
    );
}

#[test]
fn names_and_labels_follow_kubernetes_rules() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: My_Service\n  labels:\n    bad key: x\n    ok: \"-bad\"\nspec:\n  ports: [{port: 80}]\n";
    assert_eq!(
        error_lines(text),
        [
            "app.yaml:4:3: metadata.name: invalid name `My_Service`: must consist of lowercase letters, digits and '-', start with a letter and end with a letter or digit",
            "app.yaml:6:5: metadata.labels[bad key]: invalid name `bad key`: must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit",
            "app.yaml:7:5: metadata.labels[ok]: invalid name `-bad`: must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit",
        ]
    );
    let text = "apiVersion: v1\nkind: Node\nmetadata: {name: box, namespace: default}\n";
    assert_eq!(
        error_lines(text),
        ["app.yaml:3:23: metadata.namespace: a Node is cluster-scoped and takes no namespace"]
    );
}

#[test]
fn secret_data_must_be_base64_and_keys_valid() {
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  token: not base64!\n";
    assert_eq!(
        error_lines(text),
        [
            "app.yaml:5:10: data[token]: expected base64 text, found other text (not shown: it may be a secret)"
        ]
    );
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  pin: 1234\n";
    assert_eq!(
        error_lines(text),
        ["app.yaml:5:8: stringData[pin]: expected a string, found an integer"]
    );
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  bad/key: x\n";
    assert_eq!(
        error_lines(text),
        [
            "app.yaml:5:3: data[bad/key]: invalid name `bad/key`: must consist of letters, digits, '-', '_' or '.', and not be '.' or '..'"
        ]
    );
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  '..': x\n";
    assert!(error_lines(text)[0].starts_with("app.yaml:5:3: data[..]: invalid name `..`"));
}

#[test]
fn service_rules_are_checked() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - {port: 80, nodePort: 30001, protocol: SCTP}\n";
    assert_eq!(
        error_lines(text),
        ["app.yaml:6:43: spec.ports[0].protocol: expected one of \"TCP\", \"UDP\", found \"SCTP\""]
    );
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - {port: 80, nodePort: 30001}\n";
    assert_eq!(
        error_lines(text),
        ["app.yaml:6:16: spec.ports[0].nodePort: allowed only when the service type is NodePort"]
    );
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n";
    assert_eq!(
        error_lines(text),
        [
            "app.yaml:5:9: spec.type: expected one of \"ClusterIP\", \"NodePort\", found \"LoadBalancer\""
        ]
    );
}

#[test]
fn job_needs_a_restart_policy_and_mounts_need_volumes() {
    let text = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: busybox\n        volumeMounts: [{name: nope, mountPath: data}]\n";
    assert_eq!(
        error_lines(text),
        [
            "app.yaml:10:25: spec.template.spec.containers[0].volumeMounts[0].name: no volume named `nope` in the pod",
            "app.yaml:10:37: spec.template.spec.containers[0].volumeMounts[0].mountPath: must be an absolute path, found `data`",
            "app.yaml:6:5: spec.template.spec.restartPolicy: must be OnFailure or Never for a Job",
        ]
    );
}

#[test]
fn probe_named_port_must_exist() {
    let text = deployment_with(
        "        - containerPort: 80\n",
        "        - containerPort: 80\n        livenessProbe:\n          httpGet: {port: admin}\n",
    );
    assert_eq!(
        error_lines(&text),
        [
            "app.yaml:21:21: spec.template.spec.containers[0].livenessProbe.httpGet.port: no container port named `admin`"
        ]
    );
}

#[test]
fn every_document_is_checked_and_errors_are_in_order() {
    let text = "apiVersion: v1\nkind: Gadget\nmetadata: {name: a}\n---\nkind: Pod\n---\n- a list\n";
    assert_eq!(
        error_lines(text),
        [
            "app.yaml:2:1: unsupported kind Gadget (apiVersion v1); moor knows v1 Namespace, Node, Pod, Service, ConfigMap, Secret, apps/v1 Deployment, DaemonSet and batch/v1 Job",
            "app.yaml:5:1: apiVersion must be given, as a string",
            "app.yaml:7:1: expected an object with apiVersion and kind, found a list",
        ]
    );
}

#[test]
fn the_same_object_twice_is_refused() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n";
    assert_eq!(
        error_lines(text),
        ["app.yaml:5:1: Namespace a appears more than once (first at line 1)"]
    );
}

#[test]
fn a_v1_list_yields_its_items_and_errors_name_the_item() {
    let text = "\
apiVersion: v1
kind: List
metadata:
  resourceVersion: \"\"
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: a}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c, namespace: a}
  data: {k: v}
";
    let manifest = parse("list.yaml", text.as_bytes()).unwrap_or_else(|errors| panic!("{errors}"));
    let kinds: Vec<_> = objects(&manifest)
        .iter()
        .map(|object| object.kind())
        .collect();
    assert_eq!(kinds, [Kind::Namespace, Kind::ConfigMap]);
    assert_eq!(manifest.objects[1].location.line, 9);
    let bad = text
        .replace("data: {k: v}", "data: {k: v}\n  extra: 1")
        .replace("name: a}", "name: A}");
    assert_eq!(
        error_lines(&bad),
        [
            "app.yaml:8:14: items[0].metadata.name: invalid name `A`: must consist of lowercase letters, digits and '-', and start and end with a letter or digit",
            "app.yaml:13:3: items[1].extra: unknown field",
        ]
    );
}

#[test]
fn empty_documents_and_comments_are_skipped() {
    let manifest =
        parse("empty.yaml", b"# nothing\n---\n---\n").unwrap_or_else(|errors| panic!("{errors}"));
    assert!(manifest.objects.is_empty());
}

// Hostile input.

#[test]
fn duplicate_keys_are_refused_with_their_line() {
    let text = deployment_with("  replicas: 2\n", "  replicas: 2\n  replicas: 3\n");
    assert_eq!(
        error_lines(&text),
        ["app.yaml:7:3: duplicate key `replicas`"]
    );
}

#[test]
fn tabs_for_indentation_are_refused() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n\tname: a\n";
    let lines = error_lines(text);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("app.yaml:4:"), "{lines:?}");
    assert!(
        lines[0].contains("invalid YAML") && lines[0].contains("tab"),
        "{lines:?}"
    );
}

#[test]
fn non_utf8_is_refused_with_its_position() {
    let mut bytes = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ab".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    let Err(errors) = parse("bin.yaml", &bytes) else {
        panic!("must fail")
    };
    assert_eq!(
        errors.to_string(),
        "bin.yaml:4:11: input is not valid UTF-8"
    );
}

#[test]
fn random_bytes_never_panic() {
    // A fixed linear congruential generator: reproducible without a dependency.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u8
    };
    let alphabet = b"ab:- \n[]{},&*!|>'\"#%@`?\t0123456789.\\";
    for round in 0..2_000 {
        let length = usize::from(next()) % 200;
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                if round % 2 == 0 {
                    next()
                } else {
                    alphabet[usize::from(next()) % alphabet.len()]
                }
            })
            .collect();
        let _ = parse("random.yaml", &bytes);
    }
}

#[test]
fn deeply_nested_flow_sequences_stop_at_the_depth_limit() {
    // saphyr-parser bounds flow nesting itself (at 256) while scanning ahead, before our
    // own limit sees the events; either way the input is refused after a bounded amount of
    // work, with its place.
    let text = "[".repeat(100_000) + &"]".repeat(100_000);
    let Err(errors) = parse("deep.yaml", text.as_bytes()) else {
        panic!("must fail")
    };
    let message = errors.to_string();
    assert!(
        message == "deep.yaml:1:65: nesting deeper than 64 levels"
            || message == "deep.yaml:1:256: invalid YAML: recursion limit exceeded",
        "{message}"
    );
    let text = "[".repeat(70) + &"]".repeat(70);
    let Err(errors) = parse("deep.yaml", text.as_bytes()) else {
        panic!("must fail")
    };
    assert_eq!(
        errors.to_string(),
        "deep.yaml:1:65: nesting deeper than 64 levels"
    );
    let text = "a:\n".to_owned()
        + &(1..100)
            .map(|depth| format!("{}b:\n", "  ".repeat(depth)))
            .collect::<String>();
    let Err(errors) = parse("deep.yaml", text.as_bytes()) else {
        panic!("must fail")
    };
    assert!(
        errors.to_string().contains("nesting deeper than 64 levels"),
        "{errors}"
    );
}

#[test]
fn alias_bombs_stop_at_the_node_limit() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    let Err(errors) = parse("bomb.yaml", text.as_bytes()) else {
        panic!("must fail")
    };
    assert!(errors.to_string().starts_with("bomb.yaml:6:"), "{errors}");
    assert!(
        errors
            .to_string()
            .ends_with("input has more than 500000 values (aliases counted at each use)")
    );
}

#[test]
fn many_small_alias_bombs_share_one_budget() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
    let text = vec![bomb; 1_000].join("---\n");
    let Err(errors) = parse("bombs.yaml", text.as_bytes()) else {
        panic!("must fail")
    };
    assert!(
        errors
            .to_string()
            .contains("input has more than 500000 values"),
        "{errors}"
    );
}

#[test]
fn nested_anchors_over_a_large_subtree_are_charged() {
    let limits = Limits {
        max_nodes: 10_000,
        ..Limits::default()
    };
    let leaves = vec!["x"; 2_000].join(", ");
    // One anchor over 2,000 values costs 4,000: within the budget.
    let single = format!("&a [{leaves}]");
    let Err(errors) = parse_with_limits("one.yaml", single.as_bytes(), limits) else {
        panic!("a list is no object")
    };
    assert!(
        matches!(errors.0[..], [ManifestError::NotAnObject { .. }]),
        "{errors}"
    );
    // Ten nested anchors over the same values would keep ten copies.
    let nested = (0..10).fold(format!("[{leaves}]"), |inner, level| {
        format!("&a{level} [{inner}]")
    });
    let Err(errors) = parse_with_limits("nested.yaml", nested.as_bytes(), limits) else {
        panic!("must fail")
    };
    assert!(
        errors
            .to_string()
            .contains("input has more than 10000 values"),
        "{errors}"
    );
}

#[test]
fn small_aliases_are_expanded() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: &labels {app: web}\n  annotations: *labels\n";
    let manifest = parse("alias.yaml", text.as_bytes()).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(
        manifest.objects[0].object.metadata().annotations["app"],
        "web"
    );
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let limits = Limits {
        max_bytes: 1024,
        ..Limits::default()
    };
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata:\n  a: {}\n",
        "x".repeat(2000)
    );
    let Err(errors) = parse_with_limits("big.yaml", text.as_bytes(), limits) else {
        panic!("must fail")
    };
    assert_eq!(
        errors.to_string(),
        format!(
            "big.yaml: input is {} bytes, more than the limit of 1024",
            text.len()
        )
    );
    assert!(matches!(
        errors.0[0],
        ManifestError::Yaml {
            reason: YamlError::TooLarge { .. },
            ..
        }
    ));
}

#[test]
fn huge_strings_give_short_messages() {
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels: {{big: {}}}\n",
        "v".repeat(1_000_000)
    );
    let lines = error_lines(&text);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("app.yaml:5:12: metadata.labels[big]: invalid name `vvvv"),
        "{}",
        &lines[0][..80]
    );
    assert!(lines[0].len() < 300, "message is {} bytes", lines[0].len());
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [{}]\n",
        "a".repeat(1_000_000)
    );
    let lines = error_lines(&text);
    assert!(
        lines[0].len() < 300 && lines[0].contains("expected a string, found a list"),
        "{}",
        &lines[0]
    );
}

#[test]
fn custom_tags_and_complex_keys_are_refused() {
    let lines = error_lines("apiVersion: v1\nkind: Namespace\nmetadata: !custom {name: a}\n");
    assert_eq!(lines, ["app.yaml:3:11: unsupported tag `!custom`"]);
    let lines = error_lines("? [a, b]\n: value\n");
    assert_eq!(
        lines,
        ["app.yaml:1:3: mapping keys must be plain values, found a list"]
    );
}

#[test]
fn pod_spec_rules_name_the_offending_field() {
    let cases = [
        (
            "        image: nginx\n",
            "        image: nginx\n        env: [{name: A, value: x, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n",
            "app.yaml:18:15: spec.template.spec.containers[0].env[0]: value and valueFrom are mutually exclusive",
        ),
        (
            "        image: nginx\n",
            "        image: nginx\n        readinessProbe: {exec: {command: [\"true\"]}, tcpSocket: {port: 80}}\n",
            "app.yaml:18:9: spec.template.spec.containers[0].readinessProbe: exactly one of httpGet, tcpSocket, exec, grpc must be set, found 2",
        ),
        (
            "        image: nginx\n",
            "        image: nginx\n        readinessProbe: {exec: {command: [\"true\"]}, periodSeconds: 0}\n",
            "app.yaml:18:53: spec.template.spec.containers[0].readinessProbe.periodSeconds: must be between 1 and 2147483647, found 0",
        ),
        (
            "      containers:\n",
            "      volumes: [{name: v, emptyDir: {}, hostPath: {path: /x}}]\n      containers:\n",
            "app.yaml:15:17: spec.template.spec.volumes[0]: exactly one of emptyDir, configMap, secret, hostPath, projected, downwardAPI must be set, found 2",
        ),
        (
            "      app: web\n  template",
            "      app: web\n      version: 1\n  template",
            "app.yaml:10:16: spec.selector.matchLabels[version]: expected a string, found 1",
        ),
        (
            "        image: nginx\n",
            "        image: \"  \"\n",
            "app.yaml:17:9: spec.template.spec.containers[0].image: required",
        ),
        (
            "- name: web\n",
            "- name: Web\n",
            "app.yaml:16:9: spec.template.spec.containers[0].name: invalid name `Web`: must consist of lowercase letters, digits and '-', and start and end with a letter or digit",
        ),
        (
            "        - containerPort: 80\n",
            "        - containerPort: 80\n          name: Http\n",
            "app.yaml:20:11: spec.template.spec.containers[0].ports[0].name: invalid name `Http`: must consist of lowercase letters, digits and '-', contain a letter, and have no '-' at either end or twice in a row",
        ),
        (
            "        image: nginx\n",
            "        image: nginx\n        resources: {limits: {memory: lots}}\n",
            "app.yaml:18:38: spec.template.spec.containers[0].resources.limits[memory]: expected a quantity such as 500m or 128Mi, found \"lots\"",
        ),
    ];
    let mismatches: Vec<_> = cases
        .iter()
        .filter_map(|(from, to, expected)| {
            let found = error_lines(&deployment_with(from, to));
            (found != [*expected]).then(|| format!("{to}=> {found:?}"))
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn headless_services_need_no_ports_and_target_ports_are_checked() {
    let headless = "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIP: None, selector: {app: db}}\n";
    assert!(parse("svc.yaml", headless.as_bytes()).is_ok());
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  clusterIP: 10.0.0.300\n  ports: [{port: 80, targetPort: 0}, {port: 80, name: b}]\n";
    assert_eq!(
        error_lines(text),
        [
            "app.yaml:6:11: spec.ports[0].name: required when a service has more than one port",
            "app.yaml:6:22: spec.ports[0].targetPort: must be between 1 and 65535, found 0",
            "app.yaml:6:39: spec.ports[1].port: duplicate port 80/TCP",
            "app.yaml:5:3: spec.clusterIP: must be an IP address or None, found `10.0.0.300`",
        ]
    );
}
