//! Unit tests of `plan_apply`: outcomes, controller metadata, generation, status,
//! namespaces, validation and client revisions.

use super::*;

const NOW: &str = "2026-11-22T02:00:00Z";
const LATER: &str = "2026-11-22T03:00:00Z";

fn object(yaml: &str) -> Object {
    let mut manifest = proto::parse("t.yaml", yaml.as_bytes()).expect("parse");
    manifest.objects.remove(0).object
}

fn deployment(replicas: u32, label: &str) -> Object {
    object(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, labels: {{tier: {label}}}}}\n\
         spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
         metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: nginx}}]\n"
    ))
}

fn uids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("uid-{i}")).collect()
}

/// Stores what `plan` wrote, as the state machine would at `revision`.
fn store(plan: &ApplyPlan, revision: u64, stored: &mut BTreeMap<ObjectKey, Current>) {
    for op in &plan.ops {
        let WriteOp::Put { key, value, .. } = op else {
            panic!("apply plans only puts")
        };
        let object = codec::decode_at(key, value, revision).unwrap();
        stored.insert(
            codec::api_key(key).unwrap(),
            Current {
                object,
                mod_revision: revision,
            },
        );
    }
}

fn meta(stored: &BTreeMap<ObjectKey, Current>, object: &Object) -> proto::resources::ObjectMeta {
    stored[&ObjectKey::of(object)].object.metadata().clone()
}

#[test]
fn create_sets_uid_time_and_generation_one() {
    let mut stored = BTreeMap::new();
    let web = deployment(1, "a");
    let plan = plan_apply(std::slice::from_ref(&web), &stored, NOW, &uids(1)).unwrap();
    assert_eq!(plan.items[0].outcome, ApplyOutcome::Created);
    assert_eq!(plan.items[0].op_index, Some(0));
    let WriteOp::Put { expected, .. } = &plan.ops[0] else {
        panic!("put")
    };
    assert_eq!(*expected, Some(0));
    store(&plan, 1, &mut stored);
    let m = meta(&stored, &web);
    assert_eq!(m.uid.as_deref(), Some("uid-0"));
    assert_eq!(m.creation_timestamp.as_deref(), Some(NOW));
    assert_eq!(m.generation, Some(1));
    assert_eq!(m.namespace.as_deref(), Some("default"));
}

#[test]
fn same_object_again_is_unchanged_and_writes_nothing() {
    let mut stored = BTreeMap::new();
    let web = deployment(1, "a");
    let plan = plan_apply(std::slice::from_ref(&web), &stored, NOW, &uids(1)).unwrap();
    store(&plan, 1, &mut stored);
    let again = plan_apply(std::slice::from_ref(&web), &stored, LATER, &uids(1)).unwrap();
    assert!(again.ops.is_empty());
    assert_eq!(again.items[0].outcome, ApplyOutcome::Unchanged);
    assert_eq!(again.items[0].current_revision, 1);
}

#[test]
fn spec_change_bumps_generation_and_keeps_uid_and_creation_time() {
    let mut stored = BTreeMap::new();
    let plan = plan_apply(&[deployment(1, "a")], &stored, NOW, &uids(1)).unwrap();
    store(&plan, 1, &mut stored);
    let scaled = deployment(3, "a");
    let plan = plan_apply(
        std::slice::from_ref(&scaled),
        &stored,
        LATER,
        &["other".into()],
    )
    .unwrap();
    assert_eq!(plan.items[0].outcome, ApplyOutcome::Configured);
    let WriteOp::Put { expected, .. } = &plan.ops[0] else {
        panic!("put")
    };
    assert_eq!(*expected, Some(1), "writes expect the revision read");
    store(&plan, 2, &mut stored);
    let m = meta(&stored, &scaled);
    assert_eq!(m.generation, Some(2));
    assert_eq!(m.uid.as_deref(), Some("uid-0"));
    assert_eq!(m.creation_timestamp.as_deref(), Some(NOW));
}

#[test]
fn label_change_is_configured_without_a_new_generation() {
    let mut stored = BTreeMap::new();
    let plan = plan_apply(&[deployment(1, "a")], &stored, NOW, &uids(1)).unwrap();
    store(&plan, 1, &mut stored);
    let relabelled = deployment(1, "b");
    let plan = plan_apply(std::slice::from_ref(&relabelled), &stored, NOW, &uids(1)).unwrap();
    assert_eq!(plan.items[0].outcome, ApplyOutcome::Configured);
    store(&plan, 2, &mut stored);
    assert_eq!(meta(&stored, &relabelled).generation, Some(1));
}

#[test]
fn apply_without_status_keeps_the_stored_status_and_status_alone_keeps_generation() {
    let pod_yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n";
    let mut stored = BTreeMap::new();
    let plan = plan_apply(&[object(pod_yaml)], &stored, NOW, &uids(1)).unwrap();
    store(&plan, 1, &mut stored);
    let mut running = object(pod_yaml);
    if let Object::Pod(pod) = &mut running {
        pod.status.phase = Some(proto::resources::PodPhase::Running);
    }
    let plan = plan_apply(std::slice::from_ref(&running), &stored, NOW, &uids(1)).unwrap();
    assert_eq!(plan.items[0].outcome, ApplyOutcome::Configured);
    store(&plan, 2, &mut stored);
    assert_eq!(meta(&stored, &running).generation, Some(1));
    // The operator applies the manifest again, without status: nothing changes.
    let plan = plan_apply(&[object(pod_yaml)], &stored, NOW, &uids(1)).unwrap();
    assert_eq!(plan.items[0].outcome, ApplyOutcome::Unchanged);
}

#[test]
fn client_resource_version_must_match_the_stored_one() {
    let mut stored = BTreeMap::new();
    let plan = plan_apply(&[deployment(1, "a")], &stored, NOW, &uids(1)).unwrap();
    store(&plan, 4, &mut stored);
    let mut stale = deployment(2, "a");
    stale.metadata_mut().resource_version = Some("3".into());
    let err = plan_apply(&[stale.clone()], &stored, NOW, &uids(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict { current: 4 });
    assert!(
        err.message.contains("deployment/web in default"),
        "{}",
        err.message
    );
    stale.metadata_mut().resource_version = Some("4".into());
    let plan = plan_apply(&[stale.clone()], &stored, NOW, &uids(1)).unwrap();
    assert!(plan.items[0].client_revision);
    stale.metadata_mut().resource_version = Some("four".into());
    let err = plan_apply(&[stale], &stored, NOW, &uids(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
    assert!(
        err.message.contains("metadata.resourceVersion"),
        "{}",
        err.message
    );
}

#[test]
fn one_invalid_object_fails_the_whole_apply_naming_object_and_field() {
    let good = deployment(1, "a");
    let bad = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n");
    let mut bad = bad;
    bad.metadata_mut().name = "Not_A_Name".into();
    let err = plan_apply(&[good, bad], &BTreeMap::new(), NOW, &uids(2)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
    assert!(
        err.message.contains("configmap/Not_A_Name in default"),
        "{}",
        err.message
    );
    assert!(err.message.contains("metadata.name"), "{}", err.message);
}

#[test]
fn namespaced_objects_need_their_namespace_unless_default_or_applied_together() {
    let cm = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: edge}\n");
    let err = plan_apply(std::slice::from_ref(&cm), &BTreeMap::new(), NOW, &uids(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(
        err.message.contains("namespace edge does not exist"),
        "{}",
        err.message
    );
    let ns = object("apiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n");
    let plan = plan_apply(&[ns, cm.clone()], &BTreeMap::new(), NOW, &uids(2)).unwrap();
    assert_eq!(plan.ops.len(), 2);
    let mut stored = BTreeMap::new();
    store(&plan, 1, &mut stored);
    stored.remove(&ObjectKey::of(&cm));
    assert!(plan_apply(&[cm], &stored, NOW, &uids(1)).is_ok());
}

#[test]
fn the_same_object_twice_is_invalid() {
    let err = plan_apply(
        &[deployment(1, "a"), deployment(2, "a")],
        &BTreeMap::new(),
        NOW,
        &uids(2),
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
    assert!(err.message.contains("given twice"), "{}", err.message);
}

#[test]
fn empty_apply_is_invalid() {
    let err = plan_apply(&[], &BTreeMap::new(), NOW, &[]).unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
}
