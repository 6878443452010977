//! The pod parts of a description: a Pod's placement and status, and the pod spec every
//! workload carries (containers with image, ports, environment, resources, probes and
//! mounts; volumes), indented as kubectl indents them.
//!
//! An environment variable taken from a Secret shows the secret and key it comes from,
//! never the value (the description never reads the Secret).

use proto::resources::{
    Container, EnvVar, IntOrString, Pod, PodSpec, PodTemplateSpec, Probe, Protocol, Scheme, Volume,
};

use super::{Page, kube_time, pairs};

/// A Pod: where it runs, its status, then its spec.
pub(super) fn pod(page: &mut Page, p: &Pod) {
    let s = &p.status;
    page.field(
        "Node:",
        p.spec.node_name.clone().unwrap_or_else(|| "<none>".into()),
    );
    if let Some(start) = &s.start_time {
        page.field("Start Time:", kube_time(start));
    }
    page.field(
        "Status:",
        s.phase
            .map(|phase| format!("{phase:?}"))
            .unwrap_or_else(|| "Pending".into()),
    );
    if let Some(message) = &s.message {
        page.field("Message:", message.clone());
    }
    page.field("IP:", s.pod_ip.clone().unwrap_or_default());
    page.field("Host IP:", s.host_ip.clone().unwrap_or_default());
    spec(page, &p.spec, "");
}

/// `Pod Template:` and the template's labels and spec, one level in.
pub(super) fn template(page: &mut Page, t: &PodTemplateSpec) {
    page.text("Pod Template:");
    let labels = pairs(&t.metadata.labels, "=");
    page.list("  Labels:", labels);
    if !t.metadata.annotations.is_empty() {
        page.list("  Annotations:", pairs(&t.metadata.annotations, ": "));
    }
    spec(page, &t.spec, "  ");
}

/// Containers, restart policy, node selector and volumes, each title indented by `indent`.
fn spec(page: &mut Page, spec: &PodSpec, indent: &str) {
    if spec.containers.is_empty() {
        page.field(&format!("{indent}Containers:"), "<none>");
    } else {
        page.text(format!("{indent}Containers:"));
        for c in &spec.containers {
            container(page, c, indent);
        }
    }
    if let Some(policy) = spec.restart_policy {
        page.field(&format!("{indent}Restart Policy:"), format!("{policy:?}"));
    }
    let node_selector = pairs(&spec.node_selector, "=");
    if !node_selector.is_empty() {
        page.field(&format!("{indent}Node-Selectors:"), node_selector.join(","));
    }
    if spec.volumes.is_empty() {
        page.field(&format!("{indent}Volumes:"), "<none>");
    } else {
        page.text(format!("{indent}Volumes:"));
        for v in &spec.volumes {
            volume(page, v, indent);
        }
    }
}

fn container(page: &mut Page, c: &Container, indent: &str) {
    page.text(format!("{indent} {}:", c.name));
    let at = format!("{indent}  ");
    let label = |name: &str| format!("{at}{name}:");
    page.field(&label("Image"), c.image.clone());
    if let Some(policy) = c.image_pull_policy {
        page.field(&label("Image Pull Policy"), format!("{policy:?}"));
    }
    let ports: Vec<String> = c
        .ports
        .iter()
        .map(|p| {
            let protocol = match p.protocol {
                Some(Protocol::Udp) => "UDP",
                _ => "TCP",
            };
            match &p.name {
                Some(name) => format!("{}/{protocol} ({name})", p.container_port),
                None => format!("{}/{protocol}", p.container_port),
            }
        })
        .collect();
    match ports.as_slice() {
        [] => {}
        [one] => page.field(&label("Port"), one.clone()),
        many => page.field(&label("Ports"), many.join(", ")),
    }
    words(page, &label("Command"), &at, &c.command);
    words(page, &label("Args"), &at, &c.args);
    if let Some(dir) = &c.working_dir {
        page.field(&label("Working Dir"), dir.clone());
    }
    if !c.resources.limits.is_empty() {
        page.map(&label("Limits"), &format!("{at}  "), &c.resources.limits);
    }
    if !c.resources.requests.is_empty() {
        page.map(
            &label("Requests"),
            &format!("{at}  "),
            &c.resources.requests,
        );
    }
    for (name, probe) in [
        ("Liveness", &c.liveness_probe),
        ("Readiness", &c.readiness_probe),
        ("Startup", &c.startup_probe),
    ] {
        if let Some(probe) = probe {
            page.field(&label(name), probe_text(probe));
        }
    }
    if c.env.is_empty() {
        page.field(&label("Environment"), "<none>");
    } else {
        page.text(label("Environment"));
        for e in &c.env {
            page.field(&format!("{at}  {}:", e.name), env_text(e));
        }
    }
    if c.volume_mounts.is_empty() {
        page.field(&label("Mounts"), "<none>");
    } else {
        let mounts = c
            .volume_mounts
            .iter()
            .map(|m| {
                let mode = if m.read_only == Some(true) {
                    "ro"
                } else {
                    "rw"
                };
                let sub = m
                    .sub_path
                    .as_deref()
                    .map(|s| format!(",path={s:?}"))
                    .unwrap_or_default();
                format!("{} from {} ({mode}{sub})", m.mount_path, m.name)
            })
            .collect();
        page.list(&label("Mounts"), mounts);
    }
}

/// A command or its arguments, a word per line as kubectl shows them.
fn words(page: &mut Page, label: &str, at: &str, words: &[String]) {
    if words.is_empty() {
        return;
    }
    page.text(label);
    for w in words {
        page.text(format!("{at}  {w}"));
    }
}

/// `http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3`
pub(super) fn probe_text(p: &Probe) -> String {
    let port =
        |port: &Option<IntOrString>| port.as_ref().map(ToString::to_string).unwrap_or_default();
    let action = if let Some(h) = &p.http_get {
        let scheme = match h.scheme {
            Some(Scheme::Https) => "https",
            _ => "http",
        };
        format!(
            "http-get {scheme}://:{}{}",
            port(&h.port),
            h.path.as_deref().unwrap_or("/")
        )
    } else if let Some(t) = &p.tcp_socket {
        format!("tcp-socket :{}", port(&t.port))
    } else if let Some(e) = &p.exec {
        format!("exec [{}]", e.command.join(" "))
    } else if p.grpc.is_some() {
        "grpc".to_string()
    } else {
        "<unknown>".to_string()
    };
    format!(
        "{action} delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    )
}

/// A variable's value, or where it comes from (never a secret's value).
fn env_text(e: &EnvVar) -> String {
    if let Some(value) = &e.value {
        return value.clone();
    }
    let Some(from) = &e.value_from else {
        return String::new();
    };
    let optional = |o: Option<bool>| format!("Optional: {}", o.unwrap_or(false));
    if let Some(k) = &from.config_map_key_ref {
        format!(
            "<set to the key '{}' of config map '{}'>  {}",
            k.key,
            k.name,
            optional(k.optional)
        )
    } else if let Some(k) = &from.secret_key_ref {
        format!(
            "<set to the key '{}' in secret '{}'>  {}",
            k.key,
            k.name,
            optional(k.optional)
        )
    } else if let Some(field) = &from.field_ref {
        let path = field
            .0
            .get("fieldPath")
            .and_then(|p| p.as_str())
            .unwrap_or("?");
        format!("(v1:{path})")
    } else if from.resource_field_ref.is_some() {
        "<set from a resource field>".to_string()
    } else {
        String::new()
    }
}

fn volume(page: &mut Page, v: &Volume, indent: &str) {
    page.text(format!("{indent} {}:", v.name));
    let at = format!("{indent}  ");
    let label = |name: &str| format!("{at}{name}:");
    if let Some(e) = &v.empty_dir {
        page.field(
            &label("Type"),
            "EmptyDir (a temporary directory that shares a pod's lifetime)",
        );
        page.field(&label("Medium"), e.medium.clone().unwrap_or_default());
        page.field(
            &label("SizeLimit"),
            e.size_limit.clone().unwrap_or_else(|| "<unset>".into()),
        );
    } else if let Some(c) = &v.config_map {
        page.field(
            &label("Type"),
            "ConfigMap (a volume populated by a ConfigMap)",
        );
        page.field(&label("Name"), c.name.clone());
        page.field(&label("Optional"), c.optional.unwrap_or(false).to_string());
    } else if let Some(s) = &v.secret {
        page.field(&label("Type"), "Secret (a volume populated by a Secret)");
        page.field(&label("SecretName"), s.secret_name.clone());
        page.field(&label("Optional"), s.optional.unwrap_or(false).to_string());
    } else if let Some(h) = &v.host_path {
        page.field(&label("Type"), "HostPath (bare host directory volume)");
        page.field(&label("Path"), h.path.clone());
        page.field(&label("HostPathType"), h.kind.clone().unwrap_or_default());
    } else if v.projected.is_some() {
        page.field(
            &label("Type"),
            "Projected (a volume that contains injected data from multiple sources)",
        );
    } else if v.downward_api.is_some() {
        page.field(
            &label("Type"),
            "DownwardAPI (a volume populated by information about the pod)",
        );
    } else {
        page.field(&label("Type"), "<unknown>");
    }
}
