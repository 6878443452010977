//! Service: a stable virtual address in front of the pods its selector matches.
//!
//! Owns: the Service types. Does not own: endpoints (the controller) or proxying (the
//! agent).

use serde::{Deserialize, Serialize};

use super::meta::{Labels, resource};
use super::values::{IntOrString, Opaque};
use crate::resources::Protocol;

resource! {
    /// A virtual IP (and optionally a port on every node) for a set of pods.
    Service, "v1", "Service" {
        /// Type, ports and selector.
        spec: ServiceSpec,
    }
}

/// `spec` of a Service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ServiceSpec {
    /// `None` means ClusterIP.
    #[serde(rename = "type")]
    pub kind: Option<ServiceType>,
    pub selector: Labels,
    pub ports: Vec<ServicePort>,
    /// Requested address, `None` to have one allocated, or `"None"` for a headless service.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    pub session_affinity: Option<SessionAffinity>,
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Option<Opaque>,
    pub session_affinity_config: Option<Opaque>,
    pub external_traffic_policy: Option<Opaque>,
    pub internal_traffic_policy: Option<Opaque>,
    pub ip_families: Option<Opaque>,
    pub ip_family_policy: Option<Opaque>,
    #[serde(rename = "externalIPs")]
    pub external_ips: Option<Opaque>,
    pub publish_not_ready_addresses: Option<Opaque>,
}

/// How a Service is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
}

/// Whether a client keeps going to the same pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionAffinity {
    None,
    ClientIP,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ServicePort {
    pub name: Option<String>,
    pub protocol: Option<Protocol>,
    pub port: i32,
    /// `None` means the same as `port`.
    pub target_port: Option<IntOrString>,
    pub node_port: Option<i32>,
    pub app_protocol: Option<Opaque>,
}
