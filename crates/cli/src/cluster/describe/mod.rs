//! `moor describe KIND [NAME]`: an object as kubectl describes it, a page of `Label:
//! value` lines for people rather than the YAML for programs.
//!
//! Owns: the text: the metadata every object has, then what matters of each kind (a
//! Deployment's replicas, strategy and pod template; a Service's ports; a Node's
//! conditions; a ConfigMap's data; a Secret's keys and sizes, never its values). Does not
//! own: fetching (the command in `cluster`) or the columns of `get` (`print`).
//!
//! Layout: this file has the [`Page`] writer, the metadata and the kinds without pods;
//! `pod.rs` has pod templates, containers, probes and volumes.

mod pod;

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use proto::Object;
use proto::resources::{
    ConfigMap, DaemonSet, Deployment, Job, Node, ObjectMeta, Secret, Service, ServiceType,
};
use proto::selector::LabelSelector;

/// Lines as kubectl's describe writes them (through a tab writer): a label and a value,
/// the values of consecutive labelled lines starting in one column, two spaces after the
/// longest label; lines without a value (section titles, text) end such a run.
#[derive(Debug, Default)]
pub(crate) struct Page {
    lines: Vec<(String, Option<String>)>,
}

impl Page {
    /// `label` (with its indent) and a value.
    pub(crate) fn field(&mut self, label: &str, value: impl Into<String>) {
        self.lines.push((label.to_string(), Some(value.into())));
    }

    /// A line of its own (a section title, a value's text).
    pub(crate) fn text(&mut self, line: impl Into<String>) {
        self.lines.push((line.into(), None));
    }

    /// `label` with one value per line (`<none>` when there are none), as kubectl lists
    /// labels.
    pub(crate) fn list(&mut self, label: &str, values: Vec<String>) {
        let mut values = values.into_iter();
        match values.next() {
            None => self.field(label, "<none>"),
            Some(first) => {
                self.field(label, first);
                for more in values {
                    self.field("", more);
                }
            }
        }
    }

    /// `label` then a `key: value` line per entry, indented by `indent` (or `<none>`).
    pub(crate) fn map(&mut self, label: &str, indent: &str, entries: &BTreeMap<String, String>) {
        if entries.is_empty() {
            self.field(label, "<none>");
            return;
        }
        self.text(label);
        for (k, v) in entries {
            self.field(&format!("{indent}{k}:"), v.clone());
        }
    }

    /// The page as text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < self.lines.len() {
            let end = (i..self.lines.len())
                .find(|&j| self.lines[j].1.is_none())
                .unwrap_or(self.lines.len());
            let width = self.lines[i..end]
                .iter()
                .map(|(label, _)| label.chars().count())
                .max()
                .unwrap_or(0);
            for (label, value) in &self.lines[i..end] {
                let value = value.as_deref().unwrap_or("");
                let pad = width - label.chars().count() + 2;
                let line = format!("{label}{}{value}", " ".repeat(pad));
                out.push_str(line.trim_end());
                out.push('\n');
            }
            if let Some((text, _)) = self.lines.get(end) {
                out.push_str(text.trim_end());
                out.push('\n');
            }
            i = end + 1;
        }
        out
    }
}

/// The description of `object`.
pub(crate) fn describe(object: &Object) -> String {
    let mut page = Page::default();
    meta(&mut page, object);
    match object {
        Object::Namespace(_) => page.field("Status:", "Active"),
        Object::Node(node) => self::node(&mut page, node),
        Object::Pod(p) => pod::pod(&mut page, p),
        Object::Deployment(d) => deployment(&mut page, d),
        Object::DaemonSet(d) => daemon_set(&mut page, d),
        Object::Job(j) => job(&mut page, j),
        Object::Service(s) => service(&mut page, s),
        Object::ConfigMap(c) => config_map(&mut page, c),
        Object::Secret(s) => secret(&mut page, s),
    }
    page.render()
}

/// What every object has.
fn meta(page: &mut Page, object: &Object) {
    let m: &ObjectMeta = object.metadata();
    page.field("Name:", m.name.clone());
    if object.kind().is_namespaced() {
        page.field("Namespace:", m.namespace_or_default());
    }
    page.list("Labels:", pairs(&m.labels, "="));
    page.list("Annotations:", pairs(&m.annotations, ": "));
    page.field(
        "CreationTimestamp:",
        m.creation_timestamp
            .as_deref()
            .map(kube_time)
            .unwrap_or_else(|| "<unset>".into()),
    );
    page.field("UID:", m.uid.clone().unwrap_or_else(|| "<unset>".into()));
    page.field(
        "ResourceVersion:",
        m.resource_version
            .clone()
            .unwrap_or_else(|| "<unset>".into()),
    );
}

fn pairs(map: &BTreeMap<String, String>, between: &str) -> Vec<String> {
    map.iter()
        .map(|(k, v)| format!("{k}{between}{v}"))
        .collect()
}

/// `app=web,tier in (a,b)`, or `<none>`.
pub(crate) fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = pairs(&selector.match_labels, "=");
    for e in &selector.match_expressions {
        use proto::selector::SelectorOperator as Op;
        parts.push(match e.operator {
            Op::In => format!("{} in ({})", e.key, e.values.join(",")),
            Op::NotIn => format!("{} notin ({})", e.key, e.values.join(",")),
            Op::Exists => e.key.clone(),
            Op::DoesNotExist => format!("!{}", e.key),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn deployment(page: &mut Page, d: &Deployment) {
    let want = d.spec.replicas.unwrap_or(1);
    let s = &d.status;
    let available = s.available_replicas.unwrap_or(0);
    page.field("Selector:", selector_text(&d.spec.selector));
    page.field(
        "Replicas:",
        format!(
            "{want} desired | {} updated | {} total | {available} available | {} unavailable",
            s.updated_replicas.unwrap_or(0),
            s.replicas.unwrap_or(0),
            (want - available).max(0)
        ),
    );
    let strategy = d.spec.strategy.as_ref().map(|o| &o.0);
    let kind = strategy
        .and_then(|s| s.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("RollingUpdate");
    page.field("StrategyType:", kind);
    page.field(
        "MinReadySeconds:",
        d.spec
            .min_ready_seconds
            .as_ref()
            .map(|o| o.0.to_string())
            .unwrap_or_else(|| "0".into()),
    );
    if kind == "RollingUpdate" {
        let rolling = strategy.and_then(|s| s.get("rollingUpdate"));
        let part = |name: &str| {
            rolling
                .and_then(|r| r.get(name))
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_else(|| "25%".into())
        };
        page.field(
            "RollingUpdateStrategy:",
            format!(
                "{} max unavailable, {} max surge",
                part("maxUnavailable"),
                part("maxSurge")
            ),
        );
    }
    pod::template(page, &d.spec.template);
}

fn daemon_set(page: &mut Page, d: &DaemonSet) {
    page.field("Selector:", selector_text(&d.spec.selector));
    let node_selector = pairs(&d.spec.template.spec.node_selector, "=");
    page.field(
        "Node-Selector:",
        if node_selector.is_empty() {
            "<none>".into()
        } else {
            node_selector.join(",")
        },
    );
    pod::template(page, &d.spec.template);
}

fn job(page: &mut Page, j: &Job) {
    let s = &j.status;
    page.field("Parallelism:", j.spec.parallelism.unwrap_or(1).to_string());
    page.field("Completions:", j.spec.completions.unwrap_or(1).to_string());
    page.field(
        "Backoff Limit:",
        j.spec.backoff_limit.unwrap_or(6).to_string(),
    );
    if let Some(start) = &s.start_time {
        page.field("Start Time:", kube_time(start));
    }
    if let Some(done) = &s.completion_time {
        page.field("Completed At:", kube_time(done));
    }
    page.field(
        "Pods Statuses:",
        format!(
            "{} Active / {} Succeeded / {} Failed",
            s.active.unwrap_or(0),
            s.succeeded.unwrap_or(0),
            s.failed.unwrap_or(0)
        ),
    );
    pod::template(page, &j.spec.template);
}

fn service(page: &mut Page, s: &Service) {
    let spec = &s.spec;
    let selector = pairs(&spec.selector, "=");
    page.field(
        "Selector:",
        if selector.is_empty() {
            "<none>".into()
        } else {
            selector.join(",")
        },
    );
    page.field(
        "Type:",
        match spec.kind {
            Some(ServiceType::NodePort) => "NodePort",
            _ => "ClusterIP",
        },
    );
    page.field(
        "IP:",
        spec.cluster_ip
            .clone()
            .unwrap_or_else(|| "<pending>".into()),
    );
    if spec.ports.is_empty() {
        page.field("Port:", "<none>");
    }
    for port in &spec.ports {
        let name = port.name.clone().unwrap_or_else(|| "<unset>".into());
        let protocol = match port.protocol {
            Some(proto::resources::Protocol::Udp) => "UDP",
            _ => "TCP",
        };
        page.field("Port:", format!("{name}  {}/{protocol}", port.port));
        let target = port
            .target_port
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| port.port.to_string());
        page.field("TargetPort:", format!("{target}/{protocol}"));
        if let Some(node_port) = port.node_port {
            page.field("NodePort:", format!("{name}  {node_port}/{protocol}"));
        }
    }
    page.field(
        "Session Affinity:",
        match spec.session_affinity {
            Some(proto::resources::SessionAffinity::ClientIP) => "ClientIP",
            _ => "None",
        },
    );
}

fn node(page: &mut Page, n: &Node) {
    let roles: Vec<&str> = n
        .metadata
        .labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    page.field(
        "Roles:",
        if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        },
    );
    page.field(
        "Unschedulable:",
        n.spec.unschedulable.unwrap_or(false).to_string(),
    );
    page.field(
        "PodCIDR:",
        n.spec.pod_cidr.clone().unwrap_or_else(|| "<none>".into()),
    );
    page.field(
        "Taints:",
        n.spec
            .taints
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| "<none>".into()),
    );
    if n.status.conditions.is_empty() {
        page.field("Conditions:", "<none>");
    } else {
        page.text("Conditions:");
        let header: Vec<String> = ["Type", "Status", "LastTransitionTime", "Reason", "Message"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        let mut rows = vec![header.iter().map(|h| "-".repeat(h.len())).collect()];
        for c in &n.status.conditions {
            rows.push(vec![
                c.kind.clone(),
                c.status.clone(),
                c.last_transition_time
                    .as_deref()
                    .map(kube_time)
                    .unwrap_or_default(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            ]);
        }
        for line in crate::table::render_rows(&header, &rows).lines() {
            page.text(format!("  {line}"));
        }
    }
    if n.status.addresses.is_empty() {
        page.field("Addresses:", "<none>");
    } else {
        page.text("Addresses:");
        for a in &n.status.addresses {
            page.field(&format!("  {}:", a.kind), a.address.clone());
        }
    }
    page.map("Capacity:", "  ", &n.status.capacity);
    page.map("Allocatable:", "  ", &n.status.allocatable);
}

fn config_map(page: &mut Page, c: &ConfigMap) {
    page.text("");
    page.text("Data");
    page.text("====");
    for (key, value) in &c.data {
        page.text(format!("{key}:"));
        page.text("----");
        for line in value.lines() {
            page.text(line);
        }
        page.text("");
    }
    page.text("");
    page.text("BinaryData");
    page.text("====");
    for (key, value) in &c.binary_data {
        page.field(&format!("{key}:"), format!("{} bytes", value.0.len()));
    }
    if let Some(immutable) = c.immutable {
        page.text("");
        page.field("Immutable:", immutable.to_string());
    }
}

/// Keys and sizes only: a value never reaches the terminal (or a screen share, or a log
/// of the session).
fn secret(page: &mut Page, s: &Secret) {
    page.text("");
    page.field(
        "Type:",
        s.secret_type.clone().unwrap_or_else(|| "Opaque".into()),
    );
    page.text("");
    page.text("Data");
    page.text("====");
    for (key, value) in &s.data {
        page.field(&format!("{key}:"), format!("{} bytes", value.0.len()));
    }
}

/// An RFC 3339 time as kubectl shows it: `Sun, 22 Nov 2026 04:21:00 +0000`. Text that is
/// not a time is shown as it is.
pub(crate) fn kube_time(text: &str) -> String {
    let Some(secs) = humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
    else {
        return text.to_string();
    };
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Year, month (1–12) and day of the `days`th day after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
