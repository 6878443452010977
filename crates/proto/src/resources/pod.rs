//! Pod and the pod spec shared by Deployment, DaemonSet and Job templates.
//!
//! Owns: the types of Pod, PodSpec, Container, probes, volumes and pod status. Does not
//! own: which fields a manifest may set (see `manifest::schema`) or their rules
//! (`validate`). Fields typed `Option<Opaque>` are stored but not yet honoured.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{Labels, ObjectMeta, resource};
use super::values::{IntOrString, Opaque};

resource! {
    /// A group of containers sharing a network namespace and volumes, on one node.
    Pod, "v1", "Pod" {
        /// What should run.
        spec: PodSpec,
        /// Written by the agent and the controller.
        status: PodStatus,
    }
}

/// `metadata` and `spec` of pods that a controller makes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PodTemplateSpec {
    /// Labels and annotations given to each pod.
    pub metadata: ObjectMeta,
    /// The pods' spec.
    pub spec: PodSpec,
}

/// `spec` of a pod.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PodSpec {
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    pub restart_policy: Option<RestartPolicy>,
    pub node_selector: Labels,
    pub node_name: Option<String>,
    pub termination_grace_period_seconds: Option<i64>,
    pub init_containers: Option<Opaque>,
    pub hostname: Option<Opaque>,
    pub subdomain: Option<Opaque>,
    pub dns_policy: Option<Opaque>,
    pub dns_config: Option<Opaque>,
    pub host_aliases: Option<Opaque>,
    pub service_account_name: Option<Opaque>,
    pub service_account: Option<Opaque>,
    pub automount_service_account_token: Option<Opaque>,
    pub security_context: Option<Opaque>,
    pub affinity: Option<Opaque>,
    pub tolerations: Option<Opaque>,
    pub topology_spread_constraints: Option<Opaque>,
    pub priority_class_name: Option<Opaque>,
    pub priority: Option<Opaque>,
    pub scheduler_name: Option<Opaque>,
    pub image_pull_secrets: Option<Opaque>,
    pub host_network: Option<Opaque>,
    #[serde(rename = "hostPID")]
    pub host_pid: Option<Opaque>,
    #[serde(rename = "hostIPC")]
    pub host_ipc: Option<Opaque>,
    pub share_process_namespace: Option<Opaque>,
    pub active_deadline_seconds: Option<Opaque>,
    pub enable_service_links: Option<Opaque>,
    pub preemption_policy: Option<Opaque>,
    pub readiness_gates: Option<Opaque>,
    #[serde(rename = "setHostnameAsFQDN")]
    pub set_hostname_as_fqdn: Option<Opaque>,
    pub os: Option<Opaque>,
    pub host_users: Option<Opaque>,
    pub scheduling_gates: Option<Opaque>,
}

/// When the containers of a pod are restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// One container of a pod.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    pub ports: Vec<ContainerPort>,
    pub env: Vec<EnvVar>,
    pub resources: ResourceRequirements,
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
    pub startup_probe: Option<Probe>,
    pub volume_mounts: Vec<VolumeMount>,
    pub image_pull_policy: Option<PullPolicy>,
    pub env_from: Option<Opaque>,
    pub security_context: Option<Opaque>,
    pub lifecycle: Option<Opaque>,
    pub termination_message_path: Option<Opaque>,
    pub termination_message_policy: Option<Opaque>,
    pub stdin: Option<Opaque>,
    pub stdin_once: Option<Opaque>,
    pub tty: Option<Opaque>,
    pub resize_policy: Option<Opaque>,
    pub restart_policy: Option<Opaque>,
}

/// When the image is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// A port a container listens on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ContainerPort {
    pub container_port: i32,
    pub name: Option<String>,
    pub protocol: Option<Protocol>,
    pub host_port: Option<Opaque>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<Opaque>,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

/// An environment variable, given literally or taken from a ConfigMap or Secret key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct EnvVarSource {
    pub config_map_key_ref: Option<KeySelector>,
    pub secret_key_ref: Option<KeySelector>,
    pub field_ref: Option<Opaque>,
    pub resource_field_ref: Option<Opaque>,
}

/// One key of a ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct KeySelector {
    pub name: String,
    pub key: String,
    pub optional: Option<bool>,
}

/// CPU and memory requests and limits, as Kubernetes quantities (`500m`, `128Mi`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ResourceRequirements {
    pub limits: BTreeMap<String, String>,
    pub requests: BTreeMap<String, String>,
}

/// A liveness, readiness or startup check.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Probe {
    pub http_get: Option<HttpGetAction>,
    pub tcp_socket: Option<TcpSocketAction>,
    pub exec: Option<ExecAction>,
    pub grpc: Option<Opaque>,
    pub initial_delay_seconds: Option<i32>,
    pub period_seconds: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub success_threshold: Option<i32>,
    pub failure_threshold: Option<i32>,
    pub termination_grace_period_seconds: Option<Opaque>,
}

/// An HTTP GET against the pod.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct HttpGetAction {
    pub path: Option<String>,
    pub port: Option<IntOrString>,
    pub scheme: Option<Scheme>,
    pub host: Option<Opaque>,
    pub http_headers: Option<Opaque>,
}

/// Scheme of an HTTP probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheme {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

/// A TCP connect to the pod.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TcpSocketAction {
    pub port: Option<IntOrString>,
    pub host: Option<Opaque>,
}

/// A command run inside the container.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ExecAction {
    pub command: Vec<String>,
}

/// Where a volume appears in a container.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: Option<bool>,
    pub sub_path: Option<String>,
    pub mount_propagation: Option<Opaque>,
    pub sub_path_expr: Option<Opaque>,
    pub recursive_read_only: Option<Opaque>,
}

/// A volume of a pod: exactly one source is set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    pub empty_dir: Option<EmptyDirVolumeSource>,
    pub config_map: Option<ConfigMapVolumeSource>,
    pub secret: Option<SecretVolumeSource>,
    pub host_path: Option<HostPathVolumeSource>,
    pub projected: Option<Opaque>,
    #[serde(rename = "downwardAPI")]
    pub downward_api: Option<Opaque>,
}

impl Volume {
    /// How many sources are set (valid volumes have exactly one).
    pub fn source_count(&self) -> usize {
        [
            self.empty_dir.is_some(),
            self.config_map.is_some(),
            self.secret.is_some(),
            self.host_path.is_some(),
            self.projected.is_some(),
            self.downward_api.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }
}

/// A scratch directory that lives as long as the pod.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct EmptyDirVolumeSource {
    /// `""` (disk) or `Memory` (tmpfs).
    pub medium: Option<String>,
    pub size_limit: Option<String>,
}

/// Files from a ConfigMap's keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ConfigMapVolumeSource {
    pub name: String,
    pub items: Vec<KeyToPath>,
    pub default_mode: Option<i32>,
    pub optional: Option<bool>,
}

/// Files from a Secret's keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SecretVolumeSource {
    pub secret_name: String,
    pub items: Vec<KeyToPath>,
    pub default_mode: Option<i32>,
    pub optional: Option<bool>,
}

/// One key projected to one file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    pub mode: Option<i32>,
}

/// A directory of the node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct HostPathVolumeSource {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// Where a pod is in its life; written by the agent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PodStatus {
    pub phase: Option<PodPhase>,
    pub message: Option<String>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    pub start_time: Option<String>,
}

/// Coarse lifecycle of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}
