//! Garbage collection: what references and leases reach stays, the rest goes, and GC
//! waits for users of the store.

use super::super::test_support::{
    index_json, layer_tar, platform, put_image, someone_waits_on, wait_until,
};
use super::super::{GcReport, StoredImage};
use super::{new_store, tmp_entries};
use crate::image::manifest::OCI_MANIFEST;
use crate::image::reference::Reference;
use crate::image::store::Store;

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

fn all_present(store: &Store, image: &StoredImage) -> bool {
    store.has_blob(&image.manifest_digest)
        && store.has_blob(&image.config_digest)
        && image.layers.iter().all(|l| store.has_blob(&l.blob_digest))
        && image.layers.iter().all(|l| store.has_layer(&l.chain_id))
}

#[test]
fn shared_base_layers_stay_while_any_image_uses_them() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let base = layer_tar(&[("etc/os-release", b"ID=test\n")]);
    let a = put_image(
        &store,
        &amd64,
        &[base.clone(), layer_tar(&[("a", b"a")])],
        true,
    );
    let b = put_image(&store, &amd64, &[base, layer_tar(&[("b", b"b")])], true);
    let (a, b) = (
        store.image(&a.manifest, &amd64).unwrap(),
        store.image(&b.manifest, &amd64).unwrap(),
    );
    store.ensure_layers(&a, &mut |_| {}).unwrap();
    store.ensure_layers(&b, &mut |_| {}).unwrap();
    store.tag(&r("a"), &a.manifest_digest).unwrap();
    store.tag(&r("b"), &b.manifest_digest).unwrap();
    // Something nobody references.
    let stray = store.put_blob(b"stray").unwrap();

    let report = store.gc().unwrap();
    assert_eq!((report.blobs_removed, report.layers_removed), (1, 0));
    assert!(!store.has_blob(&stray));
    assert!(all_present(&store, &a) && all_present(&store, &b));

    store.remove(&r("a")).unwrap();
    let report = store.gc().unwrap();
    // a's manifest, config, top layer blob and top layer directory.
    assert_eq!((report.blobs_removed, report.layers_removed), (3, 1));
    assert!(report.bytes_freed > 0);
    assert!(all_present(&store, &b));
    assert!(!store.has_blob(&a.manifest_digest));
    assert!(!store.has_layer(&a.layers[1].chain_id));
    assert!(!store.layer_path(&a.layers[1].chain_id).exists());

    store.remove(&r("b")).unwrap();
    let report = store.gc().unwrap();
    assert_eq!((report.blobs_removed, report.layers_removed), (4, 2));
    assert!(super::super::test_support::names_in(&store.root().join("blobs/sha256")).is_empty());
    assert!(super::super::test_support::names_in(&store.root().join("layers/sha256")).is_empty());
    assert!(tmp_entries(&store).is_empty());
    assert_eq!(store.gc().unwrap(), GcReport::default());
}

#[test]
fn leased_layers_outlive_their_image() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let img = put_image(&store, &amd64, &[layer_tar(&[("f", b"x")])], true);
    let image = store.image(&img.manifest, &amd64).unwrap();
    store.ensure_layers(&image, &mut |_| {}).unwrap();
    store.tag(&r("app"), &img.manifest).unwrap();
    store.lease("container-1", &image.chain_ids()).unwrap();
    store.remove(&r("app")).unwrap();

    let report = store.gc().unwrap();
    assert_eq!((report.blobs_removed, report.layers_removed), (3, 0));
    assert!(store.has_layer(&image.layers[0].chain_id));

    store.release("container-1").unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.layers_removed, 1);
    assert!(!store.has_layer(&image.layers[0].chain_id));
}

#[test]
fn an_index_keeps_every_platform_it_lists_that_is_present() {
    let (_d, store) = new_store();
    let amd = put_image(
        &store,
        &platform("linux/amd64"),
        &[layer_tar(&[("f", b"amd")])],
        true,
    );
    let arm = put_image(
        &store,
        &platform("linux/arm64"),
        &[layer_tar(&[("f", b"arm")])],
        true,
    );
    let index = store
        .put_blob(&index_json(&[
            (
                &amd.manifest,
                amd.manifest_size,
                OCI_MANIFEST,
                "linux/amd64",
            ),
            (
                &arm.manifest,
                arm.manifest_size,
                OCI_MANIFEST,
                "linux/arm64",
            ),
        ]))
        .unwrap();
    store.tag(&r("multi"), &index).unwrap();
    assert_eq!(store.gc().unwrap().blobs_removed, 0);
    for d in [
        &index,
        &amd.manifest,
        &amd.config,
        &arm.manifest,
        &arm.config,
        &amd.layers[0].0,
        &arm.layers[0].0,
    ] {
        assert!(store.has_blob(d));
    }
}

#[test]
fn gc_waits_for_users_of_the_store() {
    let (_d, store) = new_store();
    let stray = store.put_blob(b"stray").unwrap();
    let guard = store.hold().unwrap();
    std::thread::scope(|s| {
        let gc = s.spawn(|| store.gc().unwrap());
        wait_until("gc to wait on store.lock", || {
            someone_waits_on(&store.root().join("store.lock"))
        });
        // While GC waits, the content is still there and still usable.
        assert!(store.has_blob(&stray));
        assert_eq!(store.read_blob(&stray, 10).unwrap(), b"stray");
        drop(guard);
        assert_eq!(gc.join().unwrap().blobs_removed, 1);
    });
    assert!(!store.has_blob(&stray));
}

#[test]
fn a_corrupt_lease_stops_gc_before_it_removes_anything() {
    let (_d, store) = new_store();
    let stray = store.put_blob(b"stray").unwrap();
    std::fs::write(store.root().join("leases/broken"), b"{").unwrap();
    assert!(store.gc().is_err());
    assert!(store.has_blob(&stray));
}
