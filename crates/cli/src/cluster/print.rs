//! What `moor get` prints: kubectl's tables (the same columns per kind, `-A` adds
//! NAMESPACE, `-o wide` adds the wide columns), or the objects as YAML or JSON.
//!
//! Owns: columns, ages and the cell texts. Does not own: fetching the objects, or the
//! YAML/JSON rendering itself (`proto::render`).

use std::time::{Duration, SystemTime};

use proto::resources::{Protocol, ServiceType};
use proto::{Kind, Object};

/// `-o` of `moor get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Wide,
    Yaml,
    Json,
    Name,
}

/// The table of `objects` (all of `kind`).
pub fn table(
    kind: Kind,
    objects: &[Object],
    all_namespaces: bool,
    wide: bool,
    now: SystemTime,
) -> String {
    let head = header(kind, all_namespaces, wide);
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|object| row(object, all_namespaces, wide, now))
        .collect();
    crate::table::render_rows(&head, &rows)
}

/// The column titles of a table of `kind`.
pub fn header(kind: Kind, all_namespaces: bool, wide: bool) -> Vec<String> {
    let (mut header, wide_header) = columns(kind);
    if wide {
        header.extend_from_slice(wide_header);
    }
    let mut head: Vec<String> = Vec::new();
    if all_namespaces && kind.is_namespaced() {
        head.push("NAMESPACE".into());
    }
    head.extend(header.iter().map(|h| h.to_string()));
    head
}

/// The cells of one object's row, matching [`header`].
pub fn row(object: &Object, all_namespaces: bool, wide: bool, now: SystemTime) -> Vec<String> {
    let mut row = Vec::new();
    if all_namespaces && object.kind().is_namespaced() {
        row.push(object.metadata().namespace_or_default().to_string());
    }
    let (cells, wide_cells) = cells(object, now);
    row.extend(cells);
    if wide {
        row.extend(wide_cells);
    }
    row
}

/// `KIND/NAME` lines (`-o name`).
pub fn names(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| format!("{}/{}\n", o.kind().name().to_lowercase(), o.metadata().name))
        .collect()
}

fn columns(kind: Kind) -> (Vec<&'static str>, &'static [&'static str]) {
    match kind {
        Kind::Namespace => (vec!["NAME", "STATUS", "AGE"], &[]),
        Kind::Node => (
            vec!["NAME", "STATUS", "ROLES", "AGE"],
            &["INTERNAL-IP", "POD-CIDR"],
        ),
        Kind::Pod => (vec!["NAME", "READY", "STATUS", "AGE"], &["IP", "NODE"]),
        Kind::Deployment => (
            vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::DaemonSet => (
            vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::Job => (
            vec!["NAME", "COMPLETIONS", "AGE"],
            &["CONTAINERS", "IMAGES"],
        ),
        Kind::Service => (
            vec!["NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"],
            &["SELECTOR"],
        ),
        Kind::ConfigMap => (vec!["NAME", "DATA", "AGE"], &[]),
        Kind::Secret => (vec!["NAME", "TYPE", "DATA", "AGE"], &[]),
    }
}

fn cells(object: &Object, now: SystemTime) -> (Vec<String>, Vec<String>) {
    let meta = object.metadata();
    let name = meta.name.clone();
    let age = age(meta.creation_timestamp.as_deref(), now);
    let or_none = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("<none>").to_string();
    match object {
        Object::Namespace(_) => (vec![name, "Active".into(), age], vec![]),
        Object::Node(node) => {
            let ready = node
                .status
                .conditions
                .iter()
                .find(|c| c.kind == "Ready")
                .map(|c| {
                    if c.status == "True" {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                })
                .unwrap_or("Unknown");
            let status = if node.spec.unschedulable == Some(true) {
                format!("{ready},SchedulingDisabled")
            } else {
                ready.to_string()
            };
            let roles: Vec<&str> = meta
                .labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect();
            let roles = if roles.is_empty() {
                "<none>".into()
            } else {
                roles.join(",")
            };
            let ip = node
                .status
                .addresses
                .iter()
                .find(|a| a.kind == "InternalIP")
                .map(|a| a.address.as_str());
            (
                vec![name, status, roles, age],
                vec![or_none(ip), or_none(node.spec.pod_cidr.as_deref())],
            )
        }
        Object::Pod(pod) => {
            let total = pod.spec.containers.len();
            let running = matches!(pod.status.phase, Some(proto::resources::PodPhase::Running));
            let ready = if running { total } else { 0 };
            let phase = pod
                .status
                .phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "Pending".into());
            (
                vec![name, format!("{ready}/{total}"), phase, age],
                vec![
                    or_none(pod.status.pod_ip.as_deref()),
                    or_none(pod.spec.node_name.as_deref()),
                ],
            )
        }
        Object::Deployment(d) => {
            let want = d.spec.replicas.unwrap_or(1);
            let s = &d.status;
            (
                vec![
                    name,
                    format!("{}/{want}", s.ready_replicas.unwrap_or(0)),
                    s.updated_replicas.unwrap_or(0).to_string(),
                    s.available_replicas.unwrap_or(0).to_string(),
                    age,
                ],
                template_cells(&d.spec.template.spec, Some(&d.spec.selector)),
            )
        }
        Object::DaemonSet(d) => (
            // Counts come with the daemon set controller (a later step).
            vec![name, "0".into(), "0".into(), "0".into(), age],
            template_cells(&d.spec.template.spec, Some(&d.spec.selector)),
        ),
        Object::Job(j) => {
            let want = j.spec.completions.unwrap_or(1);
            let done = j.status.succeeded.unwrap_or(0);
            let mut wide = template_cells(&j.spec.template.spec, None);
            wide.truncate(2);
            (vec![name, format!("{done}/{want}"), age], wide)
        }
        Object::Service(s) => {
            let kind = match s.spec.kind {
                Some(ServiceType::NodePort) => "NodePort",
                _ => "ClusterIP",
            };
            let ports: Vec<String> = s
                .spec
                .ports
                .iter()
                .map(|p| {
                    let proto = match p.protocol {
                        Some(Protocol::Udp) => "UDP",
                        _ => "TCP",
                    };
                    match p.node_port {
                        Some(np) => format!("{}:{np}/{proto}", p.port),
                        None => format!("{}/{proto}", p.port),
                    }
                })
                .collect();
            let selector: Vec<String> = s
                .spec
                .selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            (
                vec![
                    name,
                    kind.into(),
                    or_none(s.spec.cluster_ip.as_deref()),
                    if ports.is_empty() {
                        "<none>".into()
                    } else {
                        ports.join(",")
                    },
                    age,
                ],
                vec![if selector.is_empty() {
                    "<none>".into()
                } else {
                    selector.join(",")
                }],
            )
        }
        Object::ConfigMap(c) => (
            vec![name, (c.data.len() + c.binary_data.len()).to_string(), age],
            vec![],
        ),
        Object::Secret(s) => (
            vec![
                name,
                s.secret_type.clone().unwrap_or_else(|| "Opaque".into()),
                s.data.len().to_string(),
                age,
            ],
            vec![],
        ),
    }
}

fn template_cells(
    spec: &proto::resources::PodSpec,
    selector: Option<&proto::selector::LabelSelector>,
) -> Vec<String> {
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = spec.containers.iter().map(|c| c.image.as_str()).collect();
    let mut out = vec![names.join(","), images.join(",")];
    if let Some(selector) = selector {
        let mut parts: Vec<String> = selector
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &selector.match_expressions {
            parts.push(format!(
                "{} {:?} ({})",
                e.key,
                e.operator,
                e.values.join(",")
            ));
        }
        out.push(if parts.is_empty() {
            "<none>".into()
        } else {
            parts.join(",")
        });
    }
    out
}

/// kubectl's short ages: `45s`, `3m12s`, `5h`, `2d3h`, `40d`, `2y10d`.
pub fn age(created: Option<&str>, now: SystemTime) -> String {
    let Some(since) = created
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO))
    else {
        return "<unknown>".into();
    };
    let s = since.as_secs();
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    match s {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => {
            if s % 60 == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{}s", s % 60)
            }
        }
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => {
            if m % 60 == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{}m", m % 60)
            }
        }
        _ if h < 48 => format!("{h}h"),
        _ if d < 8 => {
            if h % 24 == 0 {
                format!("{d}d")
            } else {
                format!("{d}d{}h", h % 24)
            }
        }
        _ if d < 365 * 2 => format!("{d}d"),
        _ if d < 365 * 8 => {
            if d % 365 == 0 {
                format!("{}y", d / 365)
            } else {
                format!("{}y{}d", d / 365, d % 365)
            }
        }
        _ => format!("{}y", d / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Vec<Object> {
        proto::parse("t.yaml", yaml.as_bytes())
            .expect("parse")
            .objects
            .into_iter()
            .map(|o| o.object)
            .collect()
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = humantime::parse_rfc3339("2026-01-10T00:00:00Z").unwrap();
        let at = |secs: u64| humantime::format_rfc3339(now - Duration::from_secs(secs)).to_string();
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (192, "3m12s"),
            (600, "10m"),
            (5 * 3600 + 60, "5h1m"),
            (30 * 3600, "30h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (40 * 86400, "40d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
        ] {
            assert_eq!(age(Some(&at(secs)), now), want, "{secs}");
        }
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(age(Some("yesterday"), now), "<unknown>");
    }

    #[test]
    fn tables_have_kubectl_columns_and_a_namespace_with_all_namespaces() {
        let now = SystemTime::now();
        let objects = parse(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: edge}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30007}, {name: dns, port: 53, protocol: UDP}]\n",
        );
        let t = table(Kind::Service, &objects, true, true, now);
        let mut lines = t.lines();
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            [
                "NAMESPACE",
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "PORT(S)",
                "AGE",
                "SELECTOR"
            ]
        );
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            [
                "edge",
                "web",
                "NodePort",
                "<none>",
                "80:30007/TCP,53/UDP",
                "<unknown>",
                "app=web"
            ]
        );
        let narrow = table(Kind::Service, &objects, false, false, now);
        assert!(narrow.starts_with("NAME "), "{narrow}");
        assert_eq!(names(&objects), "service/web\n");
    }

    #[test]
    fn deployments_show_ready_of_wanted() {
        let objects = parse(include_str!(
            "../../../proto/fixtures/nginx-deployment.yaml"
        ));
        let t = table(Kind::Deployment, &objects, false, true, SystemTime::now());
        let row: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(&row[..4], ["nginx-deployment", "0/3", "0", "0"]);
        assert_eq!(row[5], "nginx");
        assert!(row[6].starts_with("nginx:"), "{t}");
        assert_eq!(row[7], "app=nginx");
    }
}
