//! Unit tests of the history ring, the hub and watch streams, fed by hand (no cluster).

use std::time::Duration;

use proto::resources::ConfigMap;

use super::*;
use crate::api::cluster::Change;
use crate::raft::{ObjectKey, StoredObject};

const DEADLINE: Duration = Duration::from_secs(5);

fn config_map(name: &str, label: &str, value: &str) -> Object {
    let mut cm = ConfigMap::default();
    cm.metadata.name = name.into();
    cm.metadata.namespace = Some("default".into());
    cm.metadata.labels.insert("app".into(), label.into());
    cm.data.insert("k".into(), value.into());
    Object::ConfigMap(cm)
}

fn stored(object: &Object, revision: u64) -> StoredObject {
    StoredObject {
        value: codec::encode(object).unwrap(),
        create_revision: revision,
        mod_revision: revision,
    }
}

/// A write of `new` (or a delete, with `None`) over `old` at `revision`.
fn change(revision: u64, name: &str, old: Option<&Object>, new: Option<&Object>) -> Applied {
    Applied::Changes {
        revision,
        changes: vec![Change {
            key: ObjectKey::new("ConfigMap", "default", name),
            old: old.map(|o| stored(o, revision - 1)),
            new: new.map(|o| stored(o, revision)),
        }],
    }
}

fn revision(revision: u64, bytes: usize) -> Arc<RevisionChanges> {
    Arc::new(RevisionChanges {
        revision,
        changes: Vec::new(),
        bytes,
    })
}

fn all_config_maps(selector: Option<&str>) -> WatchFilter {
    WatchFilter {
        kind: Kind::ConfigMap,
        namespace: None,
        selector: selector.map(|s| Selector::parse(s).unwrap()),
        scope: Scope::All,
    }
}

impl WatchStream {
    /// The `oldest` of a stream that starts with `TooOld` (decided when it was opened).
    fn first_too_old(&self) -> Option<u64> {
        match self.outbox.front() {
            Some(WatchEvent::TooOld { oldest }) => Some(*oldest),
            _ => None,
        }
    }
}

async fn next(stream: &mut WatchStream) -> Option<WatchEvent> {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("an event in time")
}

fn name_and_revision(event: &WatchEvent) -> (&'static str, String, u64) {
    match event {
        WatchEvent::Added { object, revision } => {
            ("added", object.metadata().name.clone(), *revision)
        }
        WatchEvent::Modified { object, revision } => {
            ("modified", object.metadata().name.clone(), *revision)
        }
        WatchEvent::Deleted { object, revision } => {
            ("deleted", object.metadata().name.clone(), *revision)
        }
        other => panic!("not a change: {other:?}"),
    }
}

#[test]
fn history_evicts_whole_revisions_by_count_and_by_bytes() {
    let mut history = History::new(10, 3, 100);
    for r in 11..=14 {
        history.push(revision(r, 10));
    }
    assert_eq!(history.oldest(), 11, "four revisions, room for three");
    assert_eq!(history.since(10).unwrap_err(), 11);
    let served: Vec<u64> = history
        .since(11)
        .unwrap()
        .iter()
        .map(|r| r.revision)
        .collect();
    assert_eq!(served, [12, 13, 14]);
    history.push(revision(15, 90));
    // 12 goes for the count, then 13 for the bytes (10 + 10 + 90 > 100).
    assert_eq!(
        history.oldest(),
        13,
        "bytes over the limit evict the oldest"
    );
    assert_eq!(history.since(13).unwrap().len(), 2);
    history.push(revision(16, 500));
    assert_eq!(
        history.oldest(),
        16,
        "an entry larger than the limit evicts itself too"
    );
    assert!(history.since(16).unwrap().is_empty());
    history.reset(40);
    assert_eq!((history.oldest(), history.latest()), (40, 40));
}

#[test]
fn filter_turns_label_changes_into_added_and_deleted() {
    let filter = all_config_maps(Some("app=web"));
    let web = config_map("c", "web", "1");
    let db = config_map("c", "db", "1");
    let entering = ObjectChange::of(Some(&db), Some(&web));
    assert!(matches!(
        filter.event(&entering, 2),
        Some(WatchEvent::Added { .. })
    ));
    let leaving = ObjectChange::of(Some(&web), Some(&db));
    let Some(WatchEvent::Deleted { object, .. }) = filter.event(&leaving, 3) else {
        panic!("deleted")
    };
    assert_eq!(
        object.metadata().labels["app"],
        "db",
        "the object as it is now"
    );
    let elsewhere = ObjectChange::of(Some(&db), Some(&db));
    assert_eq!(filter.event(&elsewhere, 4), None);
    let mut other_namespace = web.clone();
    other_namespace.metadata_mut().namespace = Some("edge".into());
    let namespaced = WatchFilter {
        namespace: Some("default".into()),
        ..all_config_maps(None)
    };
    let moved = ObjectChange::of(None, Some(&other_namespace));
    assert_eq!(namespaced.event(&moved, 5), None);
}

#[tokio::test]
async fn watch_replays_history_after_the_revision_then_streams_live() {
    let hub = Arc::new(WatchHub::new(0, WatchOptions::default()));
    let a1 = config_map("a", "web", "1");
    let a2 = config_map("a", "web", "2");
    let b = config_map("b", "web", "1");
    hub.record(change(1, "a", None, Some(&a1)));
    hub.record(change(2, "a", Some(&a1), Some(&a2)));
    hub.record(change(3, "b", None, Some(&b)));
    let mut stream = hub.watch(1, all_config_maps(None));
    hub.record(change(4, "a", Some(&a2), None));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = next(&mut stream).await.unwrap();
        let (what, name, revision) = name_and_revision(&event);
        seen.push(format!("{what} {name} {revision}"));
    }
    assert_eq!(seen, ["modified a 2", "added b 3", "deleted a 4"]);
    let Some(WatchEvent::Modified { object, .. }) =
        hub.watch(1, all_config_maps(None)).next().await
    else {
        panic!("modified")
    };
    assert_eq!(object.metadata().resource_version.as_deref(), Some("2"));
}

#[tokio::test]
async fn records_at_or_before_the_start_revision_are_skipped() {
    let hub = Arc::new(WatchHub::new(5, WatchOptions::default()));
    let a = config_map("a", "web", "1");
    hub.record(change(5, "a", None, Some(&a)));
    assert_eq!(hub.latest(), 5);
    assert_eq!(hub.watch(4, all_config_maps(None)).first_too_old(), Some(5));
    let mut stream = hub.watch(5, all_config_maps(None));
    hub.record(change(6, "a", Some(&a), None));
    assert_eq!(name_and_revision(&next(&mut stream).await.unwrap()).2, 6);
}

#[tokio::test]
async fn too_old_once_the_history_rolled_over() {
    let options = WatchOptions {
        history_revisions: 2,
        ..WatchOptions::default()
    };
    let hub = Arc::new(WatchHub::new(0, options));
    let a = config_map("a", "web", "1");
    for r in 1..=4 {
        hub.record(change(r, "a", None, Some(&a)));
    }
    assert_eq!(hub.watch(1, all_config_maps(None)).first_too_old(), Some(2));
    assert_eq!(hub.watch(2, all_config_maps(None)).first_too_old(), None);
}

#[tokio::test]
async fn a_watcher_that_overflows_its_buffer_gets_too_old_and_ends() {
    let options = WatchOptions {
        watcher_buffer: 2,
        ..WatchOptions::default()
    };
    let hub = Arc::new(WatchHub::new(0, options));
    let mut stream = hub.watch(0, all_config_maps(None));
    let a = config_map("a", "web", "1");
    // The writer never waits: five revisions into a buffer of two.
    for r in 1..=5 {
        hub.record(change(r, "a", None, Some(&a)));
    }
    assert_eq!(
        next(&mut stream).await,
        Some(WatchEvent::TooOld { oldest: 0 })
    );
    assert_eq!(next(&mut stream).await, None);
}

#[tokio::test]
async fn a_reset_of_the_state_ends_live_watches_with_too_old() {
    let hub = Arc::new(WatchHub::new(0, WatchOptions::default()));
    let mut stream = hub.watch(0, all_config_maps(None));
    hub.record(Applied::Reset { revision: 9 });
    assert_eq!(
        next(&mut stream).await,
        Some(WatchEvent::TooOld { oldest: 9 })
    );
    assert_eq!(hub.watch(3, all_config_maps(None)).first_too_old(), Some(9));
}

#[tokio::test]
async fn bookmarks_carry_the_last_revision_seen_even_when_filtered_out() {
    let options = WatchOptions {
        bookmark_interval: Duration::from_millis(20),
        ..WatchOptions::default()
    };
    let hub = Arc::new(WatchHub::new(0, options));
    let mut stream = hub.watch(0, all_config_maps(Some("app=web")));
    let db = config_map("d", "db", "1");
    hub.record(change(1, "d", None, Some(&db)));
    hub.record(change(2, "d", Some(&db), None));
    // A bookmark may come before the two revisions are taken; the one after says 2, and
    // nothing else comes: both changes are outside the selector.
    loop {
        match next(&mut stream).await {
            Some(WatchEvent::Bookmark { revision: 2 }) => break,
            Some(WatchEvent::Bookmark { revision: 0 }) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn an_undecodable_value_or_another_kind_gives_no_event() {
    let filter = all_config_maps(None);
    let web = config_map("c", "web", "1");
    let mut garbage = ObjectChange::of(None, Some(&web));
    garbage.new = Some(vec![0xff, 0x00, 0x13]);
    assert_eq!(filter.event(&garbage, 2), None);
    let mut truncated = ObjectChange::of(Some(&web), Some(&web));
    truncated.new.as_mut().unwrap().truncate(3);
    // The old side still matches: the watcher sees the object leave, as it was.
    assert!(matches!(
        filter.event(&truncated, 3),
        Some(WatchEvent::Deleted { .. })
    ));
    let mut other_kind = ObjectChange::of(None, Some(&web));
    other_kind.key.kind = "Secret".into();
    assert_eq!(filter.event(&other_kind, 4), None);
}
