use super::*;

fn parse(yaml: &str) -> Vec<Object> {
    proto::parse("t.yaml", yaml.as_bytes())
        .expect("parse")
        .objects
        .into_iter()
        .map(|o| o.object)
        .collect()
}

fn named<'a>(objects: &'a [Object], name: &str) -> &'a Object {
    objects
        .iter()
        .find(|o| o.metadata().name == name)
        .unwrap_or_else(|| panic!("{name} not in the fixture"))
}

/// The value after `label` on the line that starts with it (indent included).
fn value<'a>(page: &'a str, label: &str) -> &'a str {
    page.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("{label:?} missing:\n{page}"))
        .trim()
}

#[test]
fn values_of_a_run_of_labels_start_in_one_column() {
    let mut page = Page::default();
    page.field("Name:", "web");
    page.field("CreationTimestamp:", "now");
    page.text("Section:");
    page.field("  A:", "1");
    page.list("  Longer:", vec!["x".into(), "y".into()]);
    page.list("Empty:", vec![]);
    assert_eq!(
        page.render(),
        "Name:               web\nCreationTimestamp:  now\nSection:\n  A:       1\n  Longer:  x\n           y\nEmpty:     <none>\n"
    );
}

#[test]
fn times_read_as_kubectl_shows_them() {
    assert_eq!(
        kube_time("2026-11-22T04:21:07Z"),
        "Sun, 22 Nov 2026 04:21:07 +0000"
    );
    assert_eq!(
        kube_time("1970-01-01T00:00:00Z"),
        "Thu, 01 Jan 1970 00:00:00 +0000"
    );
    assert_eq!(
        kube_time("2024-02-29T23:59:59Z"),
        "Thu, 29 Feb 2024 23:59:59 +0000"
    );
    assert_eq!(kube_time("yesterday"), "yesterday");
}

#[test]
fn a_deployment_shows_replicas_strategy_and_its_pod_template() {
    let objects = parse(include_str!("../../../../proto/fixtures/full-app.yaml"));
    let mut deploy = named(&objects, "web").clone();
    deploy.metadata_mut().uid = Some("0b5c".into());
    deploy.metadata_mut().resource_version = Some("42".into());
    deploy.metadata_mut().creation_timestamp = Some("2026-11-22T04:21:07Z".into());
    let page = describe(&deploy);
    assert_eq!(value(&page, "Name:"), "web");
    assert_eq!(value(&page, "Namespace:"), "shop");
    assert_eq!(value(&page, "UID:"), "0b5c");
    assert_eq!(value(&page, "ResourceVersion:"), "42");
    assert_eq!(
        value(&page, "CreationTimestamp:"),
        "Sun, 22 Nov 2026 04:21:07 +0000"
    );
    assert_eq!(
        value(&page, "Annotations:"),
        "example.com/owner: team-web@example.com"
    );
    assert_eq!(
        value(&page, "Selector:"),
        "app.kubernetes.io/name=web,tier in (frontend,edge)"
    );
    assert_eq!(
        value(&page, "Replicas:"),
        "2 desired | 0 updated | 0 total | 0 available | 2 unavailable"
    );
    assert_eq!(value(&page, "StrategyType:"), "RollingUpdate");
    assert!(page.contains("\nPod Template:\n"), "{page}");
    assert_eq!(value(&page, "   web:"), "");
    assert_eq!(value(&page, "    Image:"), "registry.example.com/web:1.2.3");
    assert_eq!(
        value(&page, "    Ports:"),
        "8080/TCP (http), 9100/TCP (metrics)"
    );
    assert_eq!(value(&page, "      cpu:"), "0.5", "limits come first");
    assert_eq!(
        value(&page, "    Liveness:"),
        "http-get http://:http/healthz delay=5s timeout=2s period=10s #success=1 #failure=3"
    );
    assert_eq!(
        value(&page, "    Readiness:"),
        "tcp-socket :8080 delay=0s timeout=1s period=5s #success=1 #failure=3"
    );
    assert_eq!(
        value(&page, "    Startup:"),
        "exec [cat /tmp/ready] delay=0s timeout=1s period=1s #success=1 #failure=30"
    );
    assert_eq!(value(&page, "      MODE:"), "production");
    assert_eq!(
        value(&page, "      TLS_KEY:"),
        "<set to the key 'tls.key' in secret 'web-tls'>  Optional: true"
    );
    assert!(page.contains("/var/cache/nginx from cache (rw)"), "{page}");
    assert!(page.contains("  Volumes:\n"), "{page}");
    assert_eq!(value(&page, "  Node-Selectors:"), "moor.dev/site=north");
}

#[test]
fn a_secret_shows_sizes_never_values() {
    let objects = parse(include_str!("../../../../proto/fixtures/full-app.yaml"));
    let page = describe(named(&objects, "web-tls"));
    assert_eq!(value(&page, "Type:"), "kubernetes.io/tls");
    assert_eq!(value(&page, "tls.crt:"), "4 bytes");
    assert_eq!(value(&page, "tls.key:"), "3 bytes");
    for secret in ["cert", "key\n", "Y2VydA", "a2V5"] {
        assert!(!page.contains(secret), "{secret:?} printed:\n{page}");
    }
}

#[test]
fn a_config_map_shows_its_data_as_kubectl_does() {
    let objects = parse(include_str!("../../../../proto/fixtures/full-app.yaml"));
    let page = describe(named(&objects, "web-config"));
    assert!(
        page.contains("Data\n====\nnginx.conf:\n----\nserver { listen 8080; }\n"),
        "{page}"
    );
    assert!(page.contains("BinaryData\n====\n"), "{page}");
}

#[test]
fn services_list_each_port_with_its_target_and_node_port() {
    let objects = parse(include_str!("../../../../proto/fixtures/my-service.yaml"));
    let page = describe(named(&objects, "my-nodeport-service"));
    assert_eq!(value(&page, "Type:"), "NodePort");
    assert_eq!(value(&page, "Selector:"), "app.kubernetes.io/name=MyApp");
    assert_eq!(value(&page, "Port:"), "<unset>  80/TCP");
    assert_eq!(value(&page, "TargetPort:"), "80/TCP");
    assert_eq!(value(&page, "NodePort:"), "<unset>  30007/TCP");
    let named_port = describe(named(&objects, "nginx-service"));
    assert_eq!(value(&named_port, "TargetPort:"), "http-web-svc/TCP");
}

#[test]
fn a_node_shows_conditions_as_a_table_and_its_addresses() {
    // Status is the agent's to write (manifests drop it), so it is set here.
    let mut node = proto::resources::Node::default();
    node.metadata.name = "edge-01".into();
    node.metadata
        .labels
        .insert("node-role.kubernetes.io/edge".into(), String::new());
    node.status
        .conditions
        .push(proto::resources::NodeCondition {
            kind: "Ready".into(),
            status: "True".into(),
            reason: Some("AgentReady".into()),
            message: None,
            last_transition_time: Some("2026-11-22T04:00:00Z".into()),
        });
    node.status.addresses.push(proto::resources::NodeAddress {
        kind: "InternalIP".into(),
        address: "10.0.0.9".into(),
    });
    node.status.capacity.insert("cpu".into(), "4".into());
    let node = [Object::Node(node)];
    let page = describe(&node[0]);
    assert!(!page.contains("Namespace:"), "{page}");
    assert_eq!(value(&page, "Roles:"), "edge");
    let lines: Vec<&str> = page.lines().collect();
    let at = lines.iter().position(|l| *l == "Conditions:").unwrap();
    assert_eq!(
        lines[at + 1].split_whitespace().collect::<Vec<_>>(),
        ["Type", "Status", "LastTransitionTime", "Reason", "Message"]
    );
    assert!(lines[at + 3].starts_with("  Ready "), "{page}");
    assert!(
        lines[at + 3].contains("Sun, 22 Nov 2026 04:00:00 +0000"),
        "{page}"
    );
    assert!(lines[at + 3].contains("AgentReady"), "{page}");
    assert_eq!(value(&page, "  InternalIP:"), "10.0.0.9");
    assert_eq!(value(&page, "  cpu:"), "4");
}

#[test]
fn jobs_daemon_sets_pods_and_namespaces_are_described() {
    let objects = parse(include_str!("../../../../proto/fixtures/workloads.yaml"));
    for object in &objects {
        let page = describe(object);
        assert!(page.contains("Pod Template:"), "{page}");
        assert!(page.contains("Containers:"), "{page}");
        match object {
            Object::Job(_) => assert!(value(&page, "Pods Statuses:").contains("Succeeded")),
            Object::DaemonSet(_) => assert!(page.contains("Node-Selector:")),
            _ => {}
        }
    }
    let pods = parse(include_str!("../../../../proto/fixtures/probes.yaml"));
    let page = describe(named(&pods, "liveness-exec"));
    assert_eq!(value(&page, "Status:"), "Pending");
    assert_eq!(value(&page, "Node:"), "<none>");
    assert!(page.contains("  Args:\n    /bin/sh\n    -c\n"), "{page}");
    let ns = parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n");
    assert_eq!(value(&describe(&ns[0]), "Status:"), "Active");
}
