//! Reads for the API, and what applying requests through the state machine leaves behind.

use openraft::entry::RaftEntry;

use super::*;
use crate::raft::Entry;
use crate::raft::Request;
use crate::raft::Storage;
use crate::raft::StorageOptions;
use crate::raft::WriteOp;

fn put(index: u64, key: ObjectKey, expected: Option<u64>) -> Entry {
    let request = Request::Put {
        key,
        value: index.to_le_bytes().to_vec(),
        expected,
    };
    Entry::new_normal(log_id(1, index), request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_kind_and_namespace_at_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    let mut sm = storage.state_machine();
    let keys = [
        ObjectKey::new("Pod", "a", "web"),
        ObjectKey::new("Pod", "b", "db"),
        ObjectKey::new("Pod", "a", "api"),
        ObjectKey::new("Service", "a", "web"),
        ObjectKey::new("Node", "", "box-1"),
        ObjectKey::new("Po", "a", "prefix-of-pod"),
        ObjectKey::new("PodX", "a", "longer-kind"),
    ];
    let entries = keys
        .iter()
        .enumerate()
        .map(|(i, key)| put(i as u64 + 1, key.clone(), Some(0)))
        .collect();
    apply(&mut sm, entries).await.unwrap();
    let reader = storage.reader();

    let names = |listing: crate::raft::Listing| {
        listing
            .objects
            .into_iter()
            .map(|(key, _)| format!("{}/{}", key.namespace, key.name))
            .collect::<Vec<_>>()
    };
    let all_pods = reader.list("Pod", None).unwrap();
    assert_eq!(all_pods.revision, 7);
    assert_eq!(names(all_pods), ["a/api", "a/web", "b/db"]);
    assert_eq!(
        names(reader.list("Pod", Some("a")).unwrap()),
        ["a/api", "a/web"]
    );
    assert_eq!(
        names(reader.list("Pod", Some("c")).unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(names(reader.list("Node", None).unwrap()), ["/box-1"]);
    assert_eq!(names(reader.list("Node", Some("")).unwrap()), ["/box-1"]);

    let web = reader
        .get(&ObjectKey::new("Pod", "a", "web"))
        .unwrap()
        .unwrap();
    assert_eq!((web.create_revision, web.mod_revision), (1, 1));
    assert_eq!(
        reader.get(&ObjectKey::new("Pod", "a", "gone")).unwrap(),
        None
    );
    assert_eq!(reader.revision().unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_change_nothing_but_advance_last_applied() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    let mut sm = storage.state_machine();
    let web = ObjectKey::new("Pod", "a", "web");
    apply(&mut sm, vec![put(1, web.clone(), Some(0))])
        .await
        .unwrap();

    let stale = put(2, web.clone(), Some(0));
    let failing_batch = Entry::new_normal(
        log_id(1, 3),
        Request::Batch(vec![
            WriteOp::Put {
                key: ObjectKey::new("Pod", "a", "new"),
                value: vec![1],
                expected: None,
            },
            WriteOp::Delete {
                key: ObjectKey::new("Pod", "a", "missing"),
                expected: None,
            },
        ]),
    );
    apply(&mut sm, vec![stale, failing_batch]).await.unwrap();

    let reader = storage.reader();
    assert_eq!(reader.revision().unwrap(), 1);
    assert_eq!(reader.list("Pod", None).unwrap().objects.len(), 1);
    let (applied, _) = openraft::storage::RaftStateMachine::applied_state(&mut sm)
        .await
        .unwrap();
    assert_eq!(applied, Some(log_id(1, 3)));

    let delete = Entry::new_normal(
        log_id(1, 4),
        Request::Delete {
            key: web.clone(),
            expected: Some(1),
        },
    );
    apply(&mut sm, vec![delete]).await.unwrap();
    assert_eq!(reader.revision().unwrap(), 2);
    assert_eq!(reader.get(&web).unwrap(), None);
}
