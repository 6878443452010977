//! Watches through the service, fed by a real single-node group.

use proto::api::{ErrorCode, ObjectKey, Request, WatchEvent};
use proto::resources::Kind;

use super::*;
use crate::api::{WatchOptions, WatchStream};

async fn next(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

/// `added a 3`: what an event says, in a line.
fn describe(event: &WatchEvent) -> String {
    let (what, object, revision) = match event {
        WatchEvent::Added { object, revision } => ("added", object, revision),
        WatchEvent::Modified { object, revision } => ("modified", object, revision),
        WatchEvent::Deleted { object, revision } => ("deleted", object, revision),
        other => return format!("{other:?}"),
    };
    format!("{what} {} {revision}", object.metadata().name)
}

fn revision_of(response: &Response) -> u64 {
    match response {
        Response::Applied { revision, .. } | Response::Deleted { revision, .. } => *revision,
        other => panic!("no revision in {other:?}"),
    }
}

async fn delete<C: Cluster>(service: &ApiService<C>, name: &str) -> u64 {
    let request = Request::Delete {
        key: ObjectKey {
            kind: Kind::ConfigMap,
            namespace: None,
            name: name.into(),
        },
        resource_version: None,
    };
    revision_of(&service.handle(&admin(), request).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_from_a_revision_then_streams_live_changes() {
    let (_cluster, service) = service().await;
    let r1 = revision_of(&apply(&service, vec![config_map("a", "default", "web", "1")]).await);
    let r2 = revision_of(&apply(&service, vec![config_map("a", "default", "web", "2")]).await);
    let r3 = revision_of(&apply(&service, vec![config_map("b", "default", "web", "1")]).await);
    let mut stream = service
        .watch(&admin(), Kind::ConfigMap, None, None, r1)
        .unwrap();
    assert_eq!(
        describe(&next(&mut stream).await),
        format!("modified a {r2}")
    );
    assert_eq!(describe(&next(&mut stream).await), format!("added b {r3}"));
    let r4 = delete(&service, "a").await;
    let deleted = next(&mut stream).await;
    assert_eq!(describe(&deleted), format!("deleted a {r4}"));
    let WatchEvent::Deleted { object, .. } = deleted else {
        panic!("deleted")
    };
    assert_eq!(object.metadata().uid.as_ref().map(String::len), Some(32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_is_filtered_by_selector_and_namespace() {
    let (_cluster, service) = service().await;
    apply(
        &service,
        vec![object(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: edge}\n",
        )],
    )
    .await;
    let start = revision_of(&apply(&service, vec![config_map("x", "default", "db", "1")]).await);
    let mut web = service
        .watch(&admin(), Kind::ConfigMap, None, Some("app=web"), start)
        .unwrap();
    let mut edge = service
        .watch(&admin(), Kind::ConfigMap, Some("edge".into()), None, start)
        .unwrap();
    let r1 = revision_of(&apply(&service, vec![config_map("a", "default", "web", "1")]).await);
    let r2 = revision_of(&apply(&service, vec![config_map("b", "edge", "db", "1")]).await);
    // `a` leaves the selector: a Deleted for the web watcher.
    let r3 = revision_of(&apply(&service, vec![config_map("a", "default", "db", "1")]).await);
    assert_eq!(describe(&next(&mut web).await), format!("added a {r1}"));
    assert_eq!(describe(&next(&mut web).await), format!("deleted a {r3}"));
    assert_eq!(describe(&next(&mut edge).await), format!("added b {r2}"));
    let bad = service.watch(&admin(), Kind::ConfigMap, None, Some("a b"), 0);
    assert_eq!(bad.unwrap_err().code, ErrorCode::Invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_before_the_history_is_too_old() {
    let options = ApiOptions {
        watch: WatchOptions {
            history_revisions: 2,
            ..WatchOptions::default()
        },
    };
    let (_cluster, service) = service_with(options).await;
    let first = revision_of(&apply(&service, vec![config_map("a", "default", "web", "1")]).await);
    let mut last = first;
    for value in 2..=4 {
        let value = value.to_string();
        last = revision_of(&apply(&service, vec![config_map("a", "default", "web", &value)]).await);
    }
    history_reaches(&service, last).await;
    let mut stream = service
        .watch(&admin(), Kind::ConfigMap, None, None, first)
        .unwrap();
    let WatchEvent::TooOld { oldest } = next(&mut stream).await else {
        panic!("too old")
    };
    assert!(oldest > first, "{oldest} > {first}");
    assert_eq!(stream.next().await, None, "too old ends the stream");
    let mut resumed = service
        .watch(&admin(), Kind::ConfigMap, None, None, oldest)
        .unwrap();
    assert!(matches!(
        next(&mut resumed).await,
        WatchEvent::Modified { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_watches_only_pods_bound_to_it() {
    let (_cluster, service) = service().await;
    let start = revision_of(&apply(&service, vec![pod_on("theirs", "n2")]).await);
    let mut stream = service
        .watch(&agent("n1"), Kind::Pod, None, None, start)
        .unwrap();
    apply(&service, vec![pod_on("other", "n2")]).await;
    let mine = revision_of(&apply(&service, vec![pod_on("mine", "n1")]).await);
    assert_eq!(
        describe(&next(&mut stream).await),
        format!("added mine {mine}")
    );
    let err = service
        .watch(&agent("n1"), Kind::Secret, None, None, start)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
}

/// A cluster that only has a store to read and a feed the test drives by hand.
struct FeedOnly {
    reader: crate::raft::StateReader,
    feed: tokio::sync::broadcast::Sender<Applied>,
    _dir: tempfile::TempDir,
}

impl Cluster for FeedOnly {
    async fn write(
        &self,
        _request: crate::raft::Request,
    ) -> Result<crate::raft::Response, ClusterError> {
        Err(ClusterError::Stopped)
    }

    async fn read_barrier(&self) -> Result<(), ClusterError> {
        Err(ClusterError::Stopped)
    }

    fn reader(&self) -> crate::raft::StateReader {
        self.reader.clone()
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Applied> {
        self.feed.subscribe()
    }
}

// One thread: the feed task runs only when the test awaits, so the feed overflows first.
#[tokio::test(flavor = "current_thread")]
async fn a_feed_that_lags_restarts_the_history_and_live_watches_get_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let storage = crate::raft::Storage::open(dir.path(), &Default::default()).unwrap();
    let (feed, _) = tokio::sync::broadcast::channel(1);
    let cluster = Arc::new(FeedOnly {
        reader: storage.reader(),
        feed,
        _dir: dir,
    });
    let service = ApiService::start(Arc::clone(&cluster), ApiOptions::default()).unwrap();
    let mut stream = service
        .watch(&admin(), Kind::ConfigMap, None, None, 0)
        .unwrap();
    for revision in 1..=3 {
        let changes = Vec::new();
        cluster
            .feed
            .send(Applied::Changes { revision, changes })
            .unwrap();
    }
    assert_eq!(next(&mut stream).await, WatchEvent::TooOld { oldest: 0 });
    assert_eq!(stream.next().await, None);
}
