//! References and state files.

use super::super::StoreError;
use super::new_store;
use crate::image::digest::Digest;
use crate::image::reference::Reference;

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

#[test]
fn tag_resolve_list_untag() {
    let (_d, store) = new_store();
    let m1 = store.put_blob(b"{\"manifest\":1}").unwrap();
    let m2 = store.put_blob(b"{\"manifest\":2}").unwrap();
    store.tag(&r("nginx"), &m1).unwrap();
    store.tag(&r("registry.local:5000/app:v1"), &m2).unwrap();
    assert_eq!(
        store.resolve(&r("docker.io/library/nginx:latest")).unwrap(),
        Some(m1.clone())
    );
    assert_eq!(store.resolve(&r("nginx:other")).unwrap(), None);
    // By digest: whatever is in the store, tagged or not.
    assert_eq!(
        store.resolve(&r(&format!("x@{m2}"))).unwrap(),
        Some(m2.clone())
    );
    let absent = Digest::sha256(b"absent");
    assert_eq!(store.resolve(&r(&format!("x@{absent}"))).unwrap(), None);

    // Retagging moves the tag.
    store.tag(&r("nginx"), &m2).unwrap();
    let refs = store.references().unwrap();
    assert_eq!(
        refs,
        vec![
            (r("nginx"), m2.clone()),
            (r("registry.local:5000/app:v1"), m2.clone()),
        ]
    );
    assert!(store.untag(&r("nginx")).unwrap());
    assert!(!store.untag(&r("nginx")).unwrap());
    assert!(matches!(
        store.remove(&r("nginx")),
        Err(StoreError::RefNotFound { .. })
    ));
    store.remove(&r("registry.local:5000/app:v1")).unwrap();
    assert!(store.references().unwrap().is_empty());
}

#[test]
fn digest_references_are_kept_by_name_and_digest() {
    let (_d, store) = new_store();
    let m = store.put_blob(b"m").unwrap();
    let by_digest = r(&format!("registry.local/app@{m}"));
    store.tag(&by_digest, &m).unwrap();
    assert_eq!(
        store.references().unwrap(),
        vec![(by_digest.clone(), m.clone())]
    );
    assert!(store.untag(&by_digest).unwrap());
}

#[test]
fn tag_refuses_missing_manifests_and_contradicting_digests() {
    let (_d, store) = new_store();
    let m = store.put_blob(b"m").unwrap();
    let absent = Digest::sha256(b"absent");
    assert!(matches!(
        store.tag(&r("a"), &absent),
        Err(StoreError::BlobMissing { .. })
    ));
    assert!(matches!(
        store.tag(&r(&format!("a@{absent}")), &m),
        Err(StoreError::TagDigestMismatch { .. })
    ));
    assert!(store.references().unwrap().is_empty());
}

#[test]
fn concurrent_taggers_lose_no_update() {
    let (_d, store) = new_store();
    let m = store.put_blob(b"m").unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (store, m) = (&store, &m);
            s.spawn(move || {
                for i in 0..10 {
                    store.tag(&r(&format!("app:t{t}-{i}")), m).unwrap();
                }
            });
        }
    });
    assert_eq!(store.references().unwrap().len(), 80);
}

#[test]
fn a_corrupt_refs_file_is_an_error_not_an_empty_store() {
    let (_d, store) = new_store();
    std::fs::write(store.root().join("refs.json"), b"{not json").unwrap();
    assert!(matches!(
        store.references(),
        Err(StoreError::CorruptJson { .. })
    ));
    std::fs::write(
        store.root().join("refs.json"),
        br#"{"version":1,"refs":{"../../etc":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}"#,
    )
    .unwrap();
    assert!(matches!(
        store.references(),
        Err(StoreError::CorruptRef { .. })
    ));
    std::fs::write(
        store.root().join("refs.json"),
        br#"{"version":1,"refs":{"a:b":"sha256:../../x"}}"#,
    )
    .unwrap();
    assert!(store.references().is_err());
}

#[test]
fn state_files_round_trip_and_refuse_bad_names() {
    let (_d, store) = new_store();
    {
        let f = store.state_file("preload.json").unwrap();
        assert_eq!(f.read(10).unwrap(), None);
        f.write(b"{}").unwrap();
        assert_eq!(f.read(10).unwrap(), Some(b"{}".to_vec()));
        assert!(matches!(f.read(1), Err(StoreError::FileTooLarge { .. })));
    }
    for bad in ["", "../x", ".hidden", "a/b", &"x".repeat(201)] {
        assert!(
            matches!(store.state_file(bad), Err(StoreError::InvalidName { .. })),
            "{bad:?}"
        );
    }
}
