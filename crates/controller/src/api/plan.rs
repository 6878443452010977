//! The decision of an `Apply`, with no IO: which objects to write, with which metadata, and
//! what to answer.
//!
//! Owns: validation of incoming objects, the namespace rule on create, the controller's
//! metadata (uid, generation, creationTimestamp), status kept across applies, optimistic
//! concurrency on a client's `resourceVersion`, and Created / Configured / Unchanged.
//! Does not own: reading the stored objects or writing the plan (`service`), nor access
//! rules (`access`).
//!
//! ```text
//! (objects, stored objects + namespaces, now, uids) ─► plan_apply ─► ApplyPlan {
//!     ops: one raft Put per created or changed object (expected = revision read),
//!     items: outcome per object, in request order }
//! ```
//!
//! Rules:
//! - `uid` (given) and `creationTimestamp` (`now`) are set on create and kept on update;
//!   whatever the client sends for them, or for `generation`, is ignored.
//! - `generation` is 1 on create and goes up by one when the spec changes: everything but
//!   `metadata` and `status` (so for a ConfigMap, its data).
//! - `status` is written by agents and reconcilers: an apply without one keeps the stored one.
//! - Every write expects the revision read, so a concurrent change makes Raft answer
//!   `Conflict`; the service then plans again unless the client named that revision.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use proto::Object;
use proto::api::{ApiError, ApplyOutcome, ErrorCode, ObjectKey};
use proto::resources::Kind;

use super::codec;
use crate::raft::WriteOp;

/// The namespace every namespaced object may use without a Namespace object.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A stored object as the planner sees it: decoded, with its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub object: Object,
    pub mod_revision: u64,
}

/// What an `Apply` will do.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyPlan {
    /// The writes, in request order; empty when nothing changes.
    pub ops: Vec<WriteOp>,
    /// One line per incoming object, in request order.
    pub items: Vec<PlannedItem>,
}

/// The plan for one incoming object.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedItem {
    pub key: ObjectKey,
    pub outcome: ApplyOutcome,
    /// The stored revision (0 when the object does not exist yet).
    pub current_revision: u64,
    /// Whether the client named the revision (a conflict is then the client's answer).
    pub client_revision: bool,
    /// The index of this object's write in `ops`, unless it is unchanged.
    pub op_index: Option<usize>,
}

/// Plans `objects` against `stored` (every stored object among the objects' keys and the
/// Namespaces they use). `uids[i]` becomes the uid of object `i` if it is created; `now`
/// is an RFC 3339 time.
pub fn plan_apply(
    objects: &[Object],
    stored: &BTreeMap<ObjectKey, Current>,
    now: &str,
    uids: &[String],
) -> Result<ApplyPlan, ApiError> {
    if objects.is_empty() {
        return Err(ApiError::new(ErrorCode::Invalid, "apply names no objects"));
    }
    check_valid(objects)?;
    let keys: Vec<ObjectKey> = objects.iter().map(ObjectKey::of).collect();
    let mut seen = BTreeSet::new();
    for key in &keys {
        if !seen.insert(key) {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("{key}: given twice in one apply"),
            ));
        }
    }
    let mut ops = Vec::new();
    let mut items = Vec::with_capacity(objects.len());
    for (index, (incoming, key)) in objects.iter().zip(&keys).enumerate() {
        let current = stored.get(key);
        check_namespace(key, &keys, stored)?;
        let client_revision = client_revision(key, incoming)?;
        let current_revision = current.map_or(0, |c| c.mod_revision);
        if let Some(expected) = client_revision
            && expected != current_revision
        {
            return Err(conflict(key, expected, current_revision));
        }
        let uid = uids.get(index).cloned().unwrap_or_default();
        let (next, outcome) = next_object(incoming, key, current.map(|c| &c.object), now, uid);
        let op_index = if outcome == ApplyOutcome::Unchanged {
            None
        } else {
            let value = codec::encode(&next)
                .map_err(|err| ApiError::new(ErrorCode::Internal, format!("{key}: {err}")))?;
            ops.push(WriteOp::Put {
                key: codec::store_key(key),
                value,
                expected: Some(current_revision),
            });
            Some(ops.len() - 1)
        };
        items.push(PlannedItem {
            key: key.clone(),
            outcome,
            current_revision,
            client_revision: client_revision.is_some(),
            op_index,
        });
    }
    Ok(ApplyPlan { ops, items })
}

/// The Conflict answer for `key`.
pub fn conflict(key: &ObjectKey, expected: u64, current: u64) -> ApiError {
    let now = if current == 0 {
        "it does not exist".to_string()
    } else {
        format!("now {current}")
    };
    ApiError::new(
        ErrorCode::Conflict { current },
        format!("{key}: changed since version {expected} ({now})"),
    )
}

/// Every violation of the first invalid object, naming the object and each field.
fn check_valid(objects: &[Object]) -> Result<(), ApiError> {
    for object in objects {
        let violations = proto::validate::validate(object);
        if !violations.is_empty() {
            let fields: Vec<String> = violations
                .iter()
                .map(|v| format!("{}: {}", v.path, v.reason))
                .collect();
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("{}: {}", ObjectKey::of(object), fields.join("; ")),
            ));
        }
    }
    Ok(())
}

/// A namespaced object needs its Namespace, stored or in the same apply (`default` aside).
fn check_namespace(
    key: &ObjectKey,
    keys: &[ObjectKey],
    stored: &BTreeMap<ObjectKey, Current>,
) -> Result<(), ApiError> {
    let Some(namespace) = &key.namespace else {
        return Ok(());
    };
    if namespace == DEFAULT_NAMESPACE {
        return Ok(());
    }
    let needed = namespace_key(namespace);
    if stored.contains_key(&needed) || keys.contains(&needed) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("{key}: namespace {namespace} does not exist"),
    ))
}

/// The key of the Namespace object `name`.
pub fn namespace_key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: name.to_owned(),
    }
}

/// The revision the client named in `metadata.resourceVersion`, if any.
fn client_revision(key: &ObjectKey, object: &Object) -> Result<Option<u64>, ApiError> {
    let Some(text) = object.metadata().resource_version.as_deref() else {
        return Ok(None);
    };
    text.parse::<u64>().map(Some).map_err(|_| {
        let shown: String = text.chars().take(32).collect();
        ApiError::new(
            ErrorCode::Invalid,
            format!("{key}: metadata.resourceVersion: expected a revision number, found `{shown}`"),
        )
    })
}

/// The object to store and what applying it means.
fn next_object(
    incoming: &Object,
    key: &ObjectKey,
    current: Option<&Object>,
    now: &str,
    uid: String,
) -> (Object, ApplyOutcome) {
    let mut next = incoming.clone();
    {
        let meta = next.metadata_mut();
        meta.namespace = key.namespace.clone();
        meta.resource_version = None;
    }
    let Some(current) = current else {
        let meta = next.metadata_mut();
        meta.uid = Some(uid);
        meta.creation_timestamp = Some(now.to_owned());
        meta.generation = Some(1);
        return (next, ApplyOutcome::Created);
    };
    if !has_status(&next) {
        copy_status(current, &mut next);
    }
    let mut current = current.clone();
    current.metadata_mut().resource_version = None;
    let generation = current.metadata().generation.unwrap_or(1);
    let generation = if spec_of(&current) == spec_of(&next) {
        generation
    } else {
        generation + 1
    };
    {
        let old = current.metadata();
        let meta = next.metadata_mut();
        meta.uid = old.uid.clone();
        meta.creation_timestamp = old.creation_timestamp.clone();
        meta.generation = Some(generation);
    }
    let outcome = if next == current {
        ApplyOutcome::Unchanged
    } else {
        ApplyOutcome::Configured
    };
    (next, outcome)
}

/// The object without metadata and status: what `generation` counts changes of.
fn spec_of(object: &Object) -> Object {
    let mut spec = object.clone();
    *spec.metadata_mut() = Default::default();
    match &mut spec {
        Object::Node(node) => node.status = Default::default(),
        Object::Pod(pod) => pod.status = Default::default(),
        Object::Deployment(deployment) => deployment.status = Default::default(),
        Object::Job(job) => job.status = Default::default(),
        Object::Namespace(_)
        | Object::DaemonSet(_)
        | Object::Service(_)
        | Object::ConfigMap(_)
        | Object::Secret(_) => {}
    }
    spec
}

/// Whether `object` carries a status of its own (kinds without one always "have" theirs).
fn has_status(object: &Object) -> bool {
    match object {
        Object::Node(node) => node.status != Default::default(),
        Object::Pod(pod) => pod.status != Default::default(),
        Object::Deployment(deployment) => deployment.status != Default::default(),
        Object::Job(job) => job.status != Default::default(),
        _ => true,
    }
}

/// Copies the status of `from` into `to` when both are of the same kind.
fn copy_status(from: &Object, to: &mut Object) {
    match (from, to) {
        (Object::Node(from), Object::Node(to)) => to.status = from.status.clone(),
        (Object::Pod(from), Object::Pod(to)) => to.status = from.status.clone(),
        (Object::Deployment(from), Object::Deployment(to)) => to.status = from.status.clone(),
        (Object::Job(from), Object::Job(to)) => to.status = from.status.clone(),
        _ => {}
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
