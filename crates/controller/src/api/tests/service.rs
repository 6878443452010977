//! The service over a real single-node group: apply, get, list, delete, namespaces,
//! access rules, consistency.

use std::sync::atomic::Ordering;

use proto::api::{
    Applied as AppliedLine, ApplyOutcome, Consistency, ErrorCode, ObjectKey, Request, Response,
};
use proto::resources::Kind;

use super::*;

fn key(kind: Kind, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: namespace.map(str::to_owned),
        name: name.into(),
    }
}

fn applied(response: Response) -> (Vec<AppliedLine>, u64) {
    match response {
        Response::Applied { results, revision } => (results, revision),
        other => panic!("expected Applied, got {other:?}"),
    }
}

async fn get_as<C: Cluster>(
    service: &ApiService<C>,
    caller: &Caller,
    key: ObjectKey,
    consistency: Consistency,
) -> Response {
    service
        .handle(caller, Request::Get { key, consistency })
        .await
}

async fn get<C: Cluster>(service: &ApiService<C>, key: ObjectKey) -> Object {
    match get_as(service, &admin(), key, Consistency::Linearizable).await {
        Response::Object { object, .. } => *object,
        other => panic!("expected an object, got {other:?}"),
    }
}

async fn list_as<C: Cluster>(
    service: &ApiService<C>,
    caller: &Caller,
    kind: Kind,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Response {
    let request = Request::List {
        kind,
        namespace: namespace.map(str::to_owned),
        selector: selector.map(str::to_owned),
        consistency: Consistency::Linearizable,
    };
    service.handle(caller, request).await
}

fn names(response: Response) -> Vec<String> {
    match response {
        Response::List { objects, .. } => {
            objects.iter().map(|o| o.metadata().name.clone()).collect()
        }
        other => panic!("expected a list, got {other:?}"),
    }
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  \
    replicas: REPLICAS\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    \
    spec:\n      containers: [{name: web, image: nginx}]\n";

fn deployment(replicas: u32) -> Object {
    object(&DEPLOYMENT.replace("REPLICAS", &replicas.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_configures_and_leaves_unchanged_with_generation_rules() {
    let (_cluster, service) = service().await;
    let web = key(Kind::Deployment, Some("default"), "web");
    let (results, revision) = applied(apply(&service, vec![deployment(1)]).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Created);
    assert_eq!(results[0].resource_version, revision);
    let created = get(&service, web.clone()).await;
    let meta = created.metadata();
    assert_eq!(meta.generation, Some(1));
    assert_eq!(meta.resource_version, Some(revision.to_string()));
    let uid = meta.uid.clone().unwrap();
    assert_eq!(uid.len(), 32, "128-bit hex uid: {uid}");
    let created_at = meta.creation_timestamp.clone().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.contains('T'),
        "{created_at}"
    );

    let (results, again) = applied(apply(&service, vec![deployment(1)]).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Unchanged);
    assert_eq!(
        (results[0].resource_version, again),
        (revision, revision),
        "nothing written"
    );

    let (results, scaled) = applied(apply(&service, vec![deployment(3)]).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Configured);
    assert!(scaled > revision);
    let updated = get(&service, web.clone()).await;
    assert_eq!(updated.metadata().generation, Some(2));
    assert_eq!(updated.metadata().uid.as_deref(), Some(uid.as_str()));
    assert_eq!(updated.metadata().creation_timestamp, Some(created_at));

    let mut relabelled = deployment(3);
    relabelled
        .metadata_mut()
        .labels
        .insert("tier".into(), "front".into());
    let (results, _) = applied(apply(&service, vec![relabelled]).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Configured);
    assert_eq!(
        get(&service, web).await.metadata().generation,
        Some(2),
        "metadata only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_resource_version_is_a_conflict_naming_the_current_one() {
    let (_cluster, service) = service().await;
    let (_, first) = applied(apply(&service, vec![deployment(1)]).await);
    let (_, second) = applied(apply(&service, vec![deployment(2)]).await);
    let mut stale = deployment(5);
    stale.metadata_mut().resource_version = Some(first.to_string());
    let request = Request::Apply {
        objects: vec![stale.clone()],
        dry_run: false,
    };
    let err = error(service.handle(&admin(), request).await);
    assert_eq!(err.code, ErrorCode::Conflict { current: second });
    assert!(!err.is_retryable());
    stale.metadata_mut().resource_version = Some(second.to_string());
    let (results, _) = applied(apply(&service, vec![stale]).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Configured);
    // A delete naming an old version is refused too.
    let request = Request::Delete {
        key: key(Kind::Deployment, None, "web"),
        resource_version: Some(first),
    };
    let err = error(service.handle(&admin(), request).await);
    assert!(matches!(err.code, ErrorCode::Conflict { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invalid_object_means_nothing_is_written() {
    let (cluster, service) = service().await;
    let before = cluster.reader().revision().unwrap();
    let mut bad = config_map("bad", "default", "x", "1");
    if let Object::ConfigMap(cm) = &mut bad {
        cm.binary_data
            .insert("k".into(), proto::resources::Bytes(b"v".to_vec()));
    }
    let request = Request::Apply {
        objects: vec![deployment(1), config_map("good", "default", "x", "1"), bad],
        dry_run: false,
    };
    let err = error(service.handle(&admin(), request).await);
    assert_eq!(err.code, ErrorCode::Invalid);
    assert!(
        err.message.contains("configmap/bad in default"),
        "{}",
        err.message
    );
    assert!(err.message.contains("binaryData"), "{}", err.message);
    assert_eq!(cluster.reader().revision().unwrap(), before);
    let missing = get_as(
        &service,
        &admin(),
        key(Kind::Deployment, None, "web"),
        Consistency::Stale,
    )
    .await;
    assert_eq!(error(missing).code, ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_one_apply_share_one_revision() {
    let (_cluster, service) = service().await;
    let (results, revision) = applied(
        apply(
            &service,
            vec![
                config_map("a", "default", "x", "1"),
                config_map("b", "default", "x", "1"),
            ],
        )
        .await,
    );
    assert!(results.iter().all(|r| r.resource_version == revision));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_answers_without_writing() {
    let (cluster, service) = service().await;
    let before = cluster.reader().revision().unwrap();
    let request = Request::Apply {
        objects: vec![deployment(1)],
        dry_run: true,
    };
    let (results, revision) = applied(service.handle(&admin(), request).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Created);
    assert_eq!(revision, before);
    assert_eq!(cluster.reader().revision().unwrap(), before);
    let bad = Request::Apply {
        objects: vec![config_map("c", "missing", "x", "1")],
        dry_run: true,
    };
    assert_eq!(
        error(service.handle(&admin(), bad).await).code,
        ErrorCode::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_list_by_namespace_and_selector() {
    let (_cluster, service) = service().await;
    let edge = object("apiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n");
    apply(
        &service,
        vec![
            edge,
            config_map("a", "default", "web", "1"),
            config_map("b", "default", "db", "1"),
            config_map("c", "edge", "web", "1"),
        ],
    )
    .await;
    let all = list_as(&service, &admin(), Kind::ConfigMap, None, None).await;
    assert_eq!(names(all), ["a", "b", "c"]);
    let default = list_as(&service, &admin(), Kind::ConfigMap, Some("default"), None).await;
    assert_eq!(names(default), ["a", "b"]);
    let web = list_as(&service, &admin(), Kind::ConfigMap, None, Some("app=web")).await;
    assert_eq!(names(web), ["a", "c"]);
    let not_web = list_as(
        &service,
        &admin(),
        Kind::ConfigMap,
        None,
        Some("app notin (web)"),
    )
    .await;
    assert_eq!(names(not_web), ["b"]);
    let bad = list_as(&service, &admin(), Kind::ConfigMap, None, Some("app in (")).await;
    assert_eq!(error(bad).code, ErrorCode::Invalid);
    let c = get(&service, key(Kind::ConfigMap, Some("edge"), "c")).await;
    assert_eq!(c.metadata().namespace.as_deref(), Some("edge"));
    let stale = get_as(
        &service,
        &admin(),
        key(Kind::ConfigMap, None, "a"),
        Consistency::Stale,
    )
    .await;
    assert!(
        matches!(stale, Response::Object { .. }),
        "unset namespace reads default"
    );
    let namespaces = list_as(&service, &admin(), Kind::Namespace, Some("ignored"), None).await;
    assert_eq!(names(namespaces), ["edge"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_and_a_second_delete_is_not_found() {
    let (_cluster, service) = service().await;
    apply(&service, vec![config_map("a", "default", "web", "1")]).await;
    let a = key(Kind::ConfigMap, Some("default"), "a");
    let request = Request::Delete {
        key: a.clone(),
        resource_version: None,
    };
    let Response::Deleted { key: deleted, .. } = service.handle(&admin(), request.clone()).await
    else {
        panic!("deleted")
    };
    assert_eq!(deleted, a);
    let missing = get_as(&service, &admin(), a, Consistency::Linearizable).await;
    assert_eq!(error(missing).code, ErrorCode::NotFound);
    assert_eq!(
        error(service.handle(&admin(), request).await).code,
        ErrorCode::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_must_exist_and_cannot_be_deleted_while_they_hold_objects() {
    let (_cluster, service) = service().await;
    let request = Request::Apply {
        objects: vec![config_map("a", "edge", "web", "1")],
        dry_run: false,
    };
    let err = error(service.handle(&admin(), request.clone()).await);
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(
        err.message.contains("namespace edge does not exist"),
        "{}",
        err.message
    );
    apply(
        &service,
        vec![object(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n",
        )],
    )
    .await;
    apply(
        &service,
        vec![config_map("a", "edge", "web", "1"), pod_on("p", "n1")],
    )
    .await;
    let delete_edge = Request::Delete {
        key: key(Kind::Namespace, None, "edge"),
        resource_version: None,
    };
    let err = error(service.handle(&admin(), delete_edge.clone()).await);
    assert_eq!(err.code, ErrorCode::Invalid);
    assert_eq!(
        err.message,
        "namespace/edge: still holds 1 ConfigMap; delete them first"
    );
    let delete_a = Request::Delete {
        key: key(Kind::ConfigMap, Some("edge"), "a"),
        resource_version: None,
    };
    assert!(matches!(
        service.handle(&admin(), delete_a).await,
        Response::Deleted { .. }
    ));
    assert!(matches!(
        service.handle(&admin(), delete_edge).await,
        Response::Deleted { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_read_their_pods_and_what_they_use_and_write_only_their_node() {
    let (_cluster, service) = service().await;
    let tls =
        object("apiVersion: v1\nkind: Secret\nmetadata: {name: mine-tls}\ndata: {k: dmFsdWU=}\n");
    let other_tls =
        object("apiVersion: v1\nkind: Secret\nmetadata: {name: theirs-tls}\ndata: {k: dmFsdWU=}\n");
    let svc = object(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
    );
    apply(
        &service,
        vec![
            pod_on("mine", "n1"),
            pod_on("theirs", "n2"),
            tls,
            other_tls,
            svc,
            deployment(1),
        ],
    )
    .await;
    let n1 = agent("n1");
    assert_eq!(
        names(list_as(&service, &n1, Kind::Pod, None, None).await),
        ["mine"]
    );
    assert_eq!(
        names(list_as(&service, &n1, Kind::Secret, None, None).await),
        ["mine-tls"]
    );
    assert_eq!(
        names(list_as(&service, &n1, Kind::Service, None, None).await),
        ["web"]
    );
    let theirs = get_as(
        &service,
        &n1,
        key(Kind::Pod, None, "theirs"),
        Consistency::Stale,
    )
    .await;
    let err = error(theirs);
    assert_eq!(err.code, ErrorCode::Forbidden);
    assert_eq!(
        err.message,
        "agent n1 may not read pod/theirs in default: it is not bound to this node"
    );
    let secret = get_as(
        &service,
        &n1,
        key(Kind::Secret, None, "theirs-tls"),
        Consistency::Stale,
    )
    .await;
    assert_eq!(error(secret).code, ErrorCode::Forbidden);
    let own = get_as(
        &service,
        &n1,
        key(Kind::Secret, None, "mine-tls"),
        Consistency::Stale,
    )
    .await;
    assert!(matches!(own, Response::Object { .. }));
    let deployments = list_as(&service, &n1, Kind::Deployment, None, None).await;
    assert_eq!(error(deployments).code, ErrorCode::Forbidden);

    let node = |name: &str| {
        object(&format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n"
        ))
    };
    let write = |objects| Request::Apply {
        objects,
        dry_run: false,
    };
    let (results, _) = applied(service.handle(&n1, write(vec![node("n1")])).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Created);
    let err = error(service.handle(&n1, write(vec![node("n2")])).await);
    assert_eq!(err.code, ErrorCode::Forbidden);
    assert_eq!(err.message, "agent n1 may not write node/n2");
    let err = error(service.handle(&n1, write(vec![deployment(2)])).await);
    assert_eq!(err.code, ErrorCode::Forbidden);
    let delete = Request::Delete {
        key: key(Kind::Node, None, "n1"),
        resource_version: None,
    };
    assert_eq!(
        error(service.handle(&n1, delete).await).code,
        ErrorCode::Forbidden
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_certificates_may_not_call_the_api() {
    let (_cluster, service) = service().await;
    let peer = Caller {
        role: Role::Controller,
        name: "c2".into(),
    };
    let list = list_as(&service, &peer, Kind::Service, None, None).await;
    let err = error(list);
    assert_eq!(err.code, ErrorCode::Forbidden);
    assert!(
        err.message.starts_with("controller c2 may not"),
        "{}",
        err.message
    );
    let request = Request::Apply {
        objects: vec![deployment(1)],
        dry_run: false,
    };
    assert_eq!(
        error(service.handle(&peer, request).await).code,
        ErrorCode::Forbidden
    );
    assert!(service.watch(&peer, Kind::Service, None, None, 0).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_and_linearizable_reads_are_retryable_and_stale_reads_work() {
    let (cluster, service) = service().await;
    apply(&service, vec![config_map("a", "default", "web", "1")]).await;
    cluster.cut_off.store(true, Ordering::SeqCst);
    let a = key(Kind::ConfigMap, None, "a");
    let err = error(get_as(&service, &admin(), a.clone(), Consistency::Linearizable).await);
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.is_retryable());
    let request = Request::Apply {
        objects: vec![config_map("a", "default", "web", "2")],
        dry_run: false,
    };
    assert!(error(service.handle(&admin(), request).await).is_retryable());
    let stale = get_as(&service, &admin(), a, Consistency::Stale).await;
    assert!(matches!(stale, Response::Object { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_request_through_handle_is_invalid() {
    let (_cluster, service) = service().await;
    let request = Request::Watch {
        kind: Kind::Pod,
        namespace: None,
        selector: None,
        from_revision: 0,
    };
    assert_eq!(
        error(service.handle(&admin(), request).await).code,
        ErrorCode::Invalid
    );
}

/// A cluster where another writer gets in first: before the next write of the service, it
/// commits `race` (once).
struct Racing {
    inner: Arc<RaftCluster>,
    race: tokio::sync::Mutex<Option<crate::raft::Request>>,
}

impl Cluster for Racing {
    async fn write(
        &self,
        request: crate::raft::Request,
    ) -> Result<crate::raft::Response, ClusterError> {
        if let Some(race) = self.race.lock().await.take() {
            self.inner.write(race).await?;
        }
        self.inner.write(request).await
    }

    async fn read_barrier(&self) -> Result<(), ClusterError> {
        self.inner.read_barrier().await
    }

    fn reader(&self) -> crate::raft::StateReader {
        self.inner.reader()
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Applied> {
        self.inner.subscribe()
    }
}

/// A write of `object` as another controller client would make it.
fn put(object: &Object) -> crate::raft::Request {
    crate::raft::Request::Put {
        key: crate::api::codec::store_key(&ObjectKey::of(object)),
        value: crate::api::codec::encode(object).unwrap(),
        expected: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_that_loses_a_race_is_planned_again_unless_the_client_named_a_version() {
    let (cluster, plain) = service().await;
    apply(&plain, vec![config_map("a", "default", "web", "1")]).await;
    let stored = get(&plain, key(Kind::ConfigMap, None, "a")).await;
    let mut theirs = stored.clone();
    if let Object::ConfigMap(cm) = &mut theirs {
        cm.data.insert("k".into(), "2".into());
    }
    let racing = Arc::new(Racing {
        inner: Arc::clone(&cluster),
        race: tokio::sync::Mutex::new(Some(put(&theirs))),
    });
    let service = ApiService::start(Arc::clone(&racing), ApiOptions::default()).unwrap();
    let (results, _) = applied(apply(&service, vec![config_map("a", "default", "web", "3")]).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Configured);
    let Object::ConfigMap(now) = get(&service, key(Kind::ConfigMap, None, "a")).await else {
        panic!("config map")
    };
    assert_eq!(now.data["k"], "3");
    assert_eq!(
        now.metadata.uid,
        stored.metadata().uid,
        "planned again over theirs"
    );

    // With a version named by the client, losing the race is the client's conflict.
    let current: u64 = now
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    *racing.race.lock().await = Some(put(&theirs));
    let mut mine = config_map("a", "default", "web", "4");
    mine.metadata_mut().resource_version = Some(current.to_string());
    let request = Request::Apply {
        objects: vec![mine],
        dry_run: false,
    };
    let err = error(service.handle(&admin(), request).await);
    assert_eq!(
        err.code,
        ErrorCode::Conflict {
            current: current + 1
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_one_object_writes_none_of_the_apply() {
    let (cluster, service) = service().await;
    let (_, first) = applied(apply(&service, vec![config_map("a", "default", "web", "1")]).await);
    apply(&service, vec![config_map("a", "default", "web", "2")]).await;
    let before = cluster.reader().revision().unwrap();
    let mut stale = config_map("a", "default", "web", "3");
    stale.metadata_mut().resource_version = Some(first.to_string());
    let request = Request::Apply {
        objects: vec![config_map("b", "default", "web", "1"), stale],
        dry_run: false,
    };
    let err = error(service.handle(&admin(), request).await);
    assert!(matches!(err.code, ErrorCode::Conflict { .. }), "{err:?}");
    assert_eq!(cluster.reader().revision().unwrap(), before);
    let b = get_as(
        &service,
        &admin(),
        key(Kind::ConfigMap, None, "b"),
        Consistency::Stale,
    )
    .await;
    assert_eq!(error(b).code, ErrorCode::NotFound);
}

/// A controller whose copy lags: its reader shows `stale` (another store) until the first
/// barrier, then the group's own. Counts barriers.
struct Lagging {
    inner: Arc<RaftCluster>,
    stale: Arc<RaftCluster>,
    caught_up: std::sync::atomic::AtomicBool,
    barriers: std::sync::atomic::AtomicUsize,
}

impl Cluster for Lagging {
    async fn write(
        &self,
        request: crate::raft::Request,
    ) -> Result<crate::raft::Response, ClusterError> {
        self.inner.write(request).await
    }

    async fn read_barrier(&self) -> Result<(), ClusterError> {
        self.barriers.fetch_add(1, Ordering::SeqCst);
        self.caught_up.store(true, Ordering::SeqCst);
        self.inner.read_barrier().await
    }

    fn reader(&self) -> crate::raft::StateReader {
        if self.caught_up.load(Ordering::SeqCst) {
            self.inner.reader()
        } else {
            self.stale.reader()
        }
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Applied> {
        self.inner.subscribe()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_needs_no_barrier_but_an_unchanged_answer_comes_from_a_current_copy() {
    let (inner, current) = service().await;
    let (stale, old) = service().await;
    // The lagging copy still holds value 1; the group has since written 2.
    apply(&old, vec![config_map("a", "default", "web", "1")]).await;
    apply(&current, vec![config_map("a", "default", "web", "2")]).await;
    let lagging = Arc::new(Lagging {
        inner: Arc::clone(&inner),
        stale,
        caught_up: false.into(),
        barriers: 0.into(),
    });
    let service = ApiService::start(Arc::clone(&lagging), ApiOptions::default()).unwrap();

    // Value 1 looks unchanged to the lagging copy: the answer must come after a barrier,
    // and write it.
    let (results, _) = applied(apply(&service, vec![config_map("a", "default", "web", "1")]).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Configured);
    assert_eq!(lagging.barriers.load(Ordering::SeqCst), 1);
    let Object::ConfigMap(now) = get(&current, key(Kind::ConfigMap, None, "a")).await else {
        panic!("config map")
    };
    assert_eq!(now.data["k"], "1");

    // A change planned on a current copy writes without a barrier.
    let before = lagging.barriers.load(Ordering::SeqCst);
    let (results, _) = applied(apply(&service, vec![config_map("b", "default", "web", "1")]).await);
    assert_eq!(results[0].outcome, ApplyOutcome::Created);
    assert_eq!(lagging.barriers.load(Ordering::SeqCst), before);
}
