//! Deployment, DaemonSet and Job: kinds that make pods from a template.
//!
//! Owns: their types and statuses. Does not own: turning them into pods (the
//! controller's reconcilers) or their rules (`validate`).

use serde::{Deserialize, Serialize};

use super::meta::resource;
use super::pod::PodTemplateSpec;
use super::values::Opaque;
use crate::selector::LabelSelector;

resource! {
    /// A replicated set of identical pods.
    Deployment, "apps/v1", "Deployment" {
        /// Desired replicas, selector and template.
        spec: DeploymentSpec,
        /// Written by the controller.
        status: DeploymentStatus,
    }
}

/// `spec` of a Deployment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DeploymentSpec {
    /// `None` means 1.
    pub replicas: Option<i32>,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    pub strategy: Option<Opaque>,
    pub min_ready_seconds: Option<Opaque>,
    pub revision_history_limit: Option<Opaque>,
    pub progress_deadline_seconds: Option<Opaque>,
    pub paused: Option<Opaque>,
}

/// Counts the controller reports for a Deployment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DeploymentStatus {
    pub observed_generation: Option<i64>,
    pub replicas: Option<i32>,
    pub updated_replicas: Option<i32>,
    pub ready_replicas: Option<i32>,
    pub available_replicas: Option<i32>,
}

resource! {
    /// One pod on every node that matches.
    DaemonSet, "apps/v1", "DaemonSet" {
        /// Selector and template.
        spec: DaemonSetSpec,
    }
}

/// `spec` of a DaemonSet.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DaemonSetSpec {
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    pub update_strategy: Option<Opaque>,
    pub min_ready_seconds: Option<Opaque>,
    pub revision_history_limit: Option<Opaque>,
}

resource! {
    /// Pods that run to completion.
    Job, "batch/v1", "Job" {
        /// Template and completion policy.
        spec: JobSpec,
        /// Written by the controller.
        status: JobStatus,
    }
}

/// `spec` of a Job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct JobSpec {
    pub template: PodTemplateSpec,
    /// `None` means 1.
    pub completions: Option<i32>,
    /// `None` means 1.
    pub parallelism: Option<i32>,
    /// `None` means 6.
    pub backoff_limit: Option<i32>,
    pub active_deadline_seconds: Option<Opaque>,
    pub ttl_seconds_after_finished: Option<Opaque>,
    pub selector: Option<Opaque>,
    pub manual_selector: Option<Opaque>,
    pub completion_mode: Option<Opaque>,
    pub suspend: Option<Opaque>,
    pub pod_failure_policy: Option<Opaque>,
    pub backoff_limit_per_index: Option<Opaque>,
}

/// Counts the controller reports for a Job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct JobStatus {
    pub active: Option<i32>,
    pub succeeded: Option<i32>,
    pub failed: Option<i32>,
    pub start_time: Option<String>,
    pub completion_time: Option<String>,
}
