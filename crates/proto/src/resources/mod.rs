//! The resource kinds moor stores, and [`Object`], one value of any kind.
//!
//! Owns: the types, in the shape Kubernetes gives them (camelCase fields, the same
//! `apiVersion`s), so manifests copied from the Kubernetes documentation read unchanged.
//! Every type encodes with postcard (no `untagged`, `flatten`, `skip_serializing_if` or
//! `deserialize_any` on the binary path) and renders back to YAML/JSON (see `render`).
//! Does not own: which manifest fields are accepted (`manifest::schema`), the rules
//! (`validate`), or what any kind does (controller, agent).

mod cluster;
mod config;
mod meta;
mod pod;
mod service;
mod values;
mod workloads;

pub use cluster::{Namespace, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus};
pub use config::{Bytes, ConfigMap, Secret};
pub use meta::{Labels, ObjectMeta};
pub use pod::{
    ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ExecAction, HostPathVolumeSource, HttpGetAction, KeySelector, KeyToPath, Pod, PodPhase,
    PodSpec, PodStatus, PodTemplateSpec, Probe, Protocol, PullPolicy, ResourceRequirements,
    RestartPolicy, Scheme, SecretVolumeSource, TcpSocketAction, Volume, VolumeMount,
};
pub use service::{Service, ServicePort, ServiceSpec, ServiceType, SessionAffinity};
pub use values::{IntOrString, Opaque};
pub use workloads::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, DeploymentStatus, Job, JobSpec, JobStatus,
};

use serde::{Deserialize, Serialize};

/// The kinds moor knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Deployment,
    DaemonSet,
    Job,
    Service,
    ConfigMap,
    Secret,
}

impl Kind {
    /// Every kind, in the order `apply` should create them (namespaces and configuration
    /// before the workloads that use them).
    pub const ALL: [Kind; 9] = [
        Kind::Namespace,
        Kind::Node,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::Service,
        Kind::Pod,
        Kind::Deployment,
        Kind::DaemonSet,
        Kind::Job,
    ];

    /// The kind written as `apiVersion` and `kind`, if moor knows it.
    pub fn from_type_meta(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|candidate| candidate.api_version() == api_version && candidate.name() == kind)
    }

    /// The `kind` string.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Namespace => Namespace::KIND,
            Kind::Node => Node::KIND,
            Kind::Pod => Pod::KIND,
            Kind::Deployment => Deployment::KIND,
            Kind::DaemonSet => DaemonSet::KIND,
            Kind::Job => Job::KIND,
            Kind::Service => Service::KIND,
            Kind::ConfigMap => ConfigMap::KIND,
            Kind::Secret => Secret::KIND,
        }
    }

    /// The `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace => Namespace::API_VERSION,
            Kind::Node => Node::API_VERSION,
            Kind::Pod => Pod::API_VERSION,
            Kind::Deployment => Deployment::API_VERSION,
            Kind::DaemonSet => DaemonSet::API_VERSION,
            Kind::Job => Job::API_VERSION,
            Kind::Service => Service::API_VERSION,
            Kind::ConfigMap => ConfigMap::API_VERSION,
            Kind::Secret => Secret::API_VERSION,
        }
    }

    /// The kind a command line names, as kubectl takes them: singular, plural or short
    /// (`deployment`, `deployments`, `deploy`), any case.
    pub fn from_resource_name(name: &str) -> Option<Kind> {
        let kind = match name.to_ascii_lowercase().as_str() {
            "namespace" | "namespaces" | "ns" => Kind::Namespace,
            "node" | "nodes" | "no" => Kind::Node,
            "pod" | "pods" | "po" => Kind::Pod,
            "deployment" | "deployments" | "deploy" => Kind::Deployment,
            "daemonset" | "daemonsets" | "ds" => Kind::DaemonSet,
            "job" | "jobs" => Kind::Job,
            "service" | "services" | "svc" => Kind::Service,
            "configmap" | "configmaps" | "cm" => Kind::ConfigMap,
            "secret" | "secrets" => Kind::Secret,
            _ => return None,
        };
        Some(kind)
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// One object of any kind, as stored and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Object {
    Namespace(Namespace),
    Node(Node),
    Pod(Pod),
    Deployment(Deployment),
    DaemonSet(DaemonSet),
    Job(Job),
    Service(Service),
    ConfigMap(ConfigMap),
    Secret(Secret),
}

/// Applies the same expression to whichever kind an [`Object`] holds.
macro_rules! each_kind {
    ($object:expr, $inner:ident => $body:expr) => {
        match $object {
            Object::Namespace($inner) => $body,
            Object::Node($inner) => $body,
            Object::Pod($inner) => $body,
            Object::Deployment($inner) => $body,
            Object::DaemonSet($inner) => $body,
            Object::Job($inner) => $body,
            Object::Service($inner) => $body,
            Object::ConfigMap($inner) => $body,
            Object::Secret($inner) => $body,
        }
    };
}
pub(crate) use each_kind;

impl Object {
    /// Which kind this is.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Node(_) => Kind::Node,
            Object::Pod(_) => Kind::Pod,
            Object::Deployment(_) => Kind::Deployment,
            Object::DaemonSet(_) => Kind::DaemonSet,
            Object::Job(_) => Kind::Job,
            Object::Service(_) => Kind::Service,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        each_kind!(self, inner => &inner.metadata)
    }

    /// The object's metadata, for the controller to fill uid, revision and times.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each_kind!(self, inner => &mut inner.metadata)
    }
}

#[cfg(test)]
mod tests;
