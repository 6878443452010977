//! Namespace and Node: the cluster-scoped kinds.
//!
//! Owns: their types. Does not own: node liveness (the controller keeps it in memory) or
//! node registration (certificates, `wire`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::resource;
use super::values::Opaque;

resource! {
    /// A scope for names of namespaced kinds.
    Namespace, "v1", "Namespace" {}
}

resource! {
    /// A box running `moor agent`.
    Node, "v1", "Node" {
        /// What the operator decides about the node.
        spec: NodeSpec,
        /// Written by the agent and the controller.
        status: NodeStatus,
    }
}

/// `spec` of a Node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NodeSpec {
    /// No new pods are placed here when set (`moor node cordon`).
    pub unschedulable: Option<bool>,
    /// The node's pod subnet, given by the controller.
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    pub taints: Option<Opaque>,
}

/// What the agent and controller report about a node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NodeStatus {
    pub conditions: Vec<NodeCondition>,
    pub addresses: Vec<NodeAddress>,
    pub capacity: BTreeMap<String, String>,
    pub allocatable: BTreeMap<String, String>,
}

/// One condition of a node, such as `Ready`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<String>,
}

/// An address of a node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NodeAddress {
    /// `InternalIP`, `Hostname`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
}
