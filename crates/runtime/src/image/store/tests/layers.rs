//! Unpacked layers and leases.

use std::sync::Mutex;

use super::super::test_support::{is_root, layer_tar, platform, put_image, require};
use super::super::{LayerEvent, StoreError};
use super::{new_store, tmp_entries};
use crate::image::digest::Digest;

fn count(events: &[LayerEvent], f: impl Fn(&LayerEvent) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

fn unpacked(e: &LayerEvent) -> bool {
    matches!(e, LayerEvent::Unpacked { .. })
}

fn reused(e: &LayerEvent) -> bool {
    matches!(e, LayerEvent::Reused { .. })
}

#[test]
fn layers_are_unpacked_once_and_shared_by_chain_id() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let base = layer_tar(&[("etc/os-release", b"ID=test\n"), ("bin/sh", b"sh")]);
    let app = layer_tar(&[("app/run", b"run")]);
    let other = layer_tar(&[("srv/data", b"data")]);
    let a = store
        .image(
            &put_image(&store, &amd64, &[base.clone(), app], true).manifest,
            &amd64,
        )
        .unwrap();

    let mut events = Vec::new();
    let dirs = store.ensure_layers(&a, &mut |e| events.push(e)).unwrap();
    assert_eq!(count(&events, unpacked), 2);
    assert_eq!(
        dirs,
        vec![
            store.layer_path(&a.layers[0].chain_id),
            store.layer_path(&a.layers[1].chain_id)
        ]
    );
    assert_eq!(
        std::fs::read(dirs[0].join("etc/os-release")).unwrap(),
        b"ID=test\n"
    );
    assert_eq!(std::fs::read(dirs[1].join("app/run")).unwrap(), b"run");
    assert!(
        !dirs[1].join("etc").exists(),
        "a layer directory holds only its own diff"
    );
    for l in &a.layers {
        assert!(store.has_layer(&l.chain_id));
        let record: serde_json::Value = serde_json::from_slice(
            &std::fs::read(store.layer_path(&l.chain_id).with_extension("json")).unwrap(),
        )
        .unwrap();
        assert_eq!(record["diff_id"], l.diff_id.to_string());
    }
    assert!(tmp_entries(&store).is_empty());

    events.clear();
    store.ensure_layers(&a, &mut |e| events.push(e)).unwrap();
    assert_eq!(count(&events, reused), 2);

    // Same base, other top: the base is reused, only the top is unpacked.
    let b = store
        .image(
            &put_image(&store, &amd64, &[base, other], false).manifest,
            &amd64,
        )
        .unwrap();
    assert_eq!(b.layers[0].chain_id, a.layers[0].chain_id);
    events.clear();
    store.ensure_layers(&b, &mut |e| events.push(e)).unwrap();
    assert_eq!((count(&events, reused), count(&events, unpacked)), (1, 1));
}

#[test]
fn two_concurrent_callers_unpack_each_layer_once() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let tars = vec![
        layer_tar(&[("big", &big[..])]),
        layer_tar(&[("a", b"a"), ("b/c", b"c")]),
        layer_tar(&[("d", b"d")]),
    ];
    let image = store
        .image(&put_image(&store, &amd64, &tars, true).manifest, &amd64)
        .unwrap();
    let events = Mutex::new(Vec::new());
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| store.ensure_layers(&image, &mut |e| events.lock().unwrap().push(e)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let dirs: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(dirs[0], dirs[1]);
    let events = events.into_inner().unwrap();
    assert_eq!(count(&events, unpacked), 3, "{events:?}");
    assert_eq!(count(&events, reused), 3, "{events:?}");
    assert_eq!(
        std::fs::read(dirs[0][0].join("big")).unwrap().len(),
        big.len()
    );
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_not_kept() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let real = layer_tar(&[("f", b"real")]);
    let mut image = store
        .image(&put_image(&store, &amd64, &[real], true).manifest, &amd64)
        .unwrap();
    // The config claims another diff id than the blob decompresses to.
    let liar = Digest::sha256(b"not the layer");
    image.layers[0].diff_id = liar.clone();
    image.layers[0].chain_id = liar.clone();
    let e = store.ensure_layers(&image, &mut |_| {}).unwrap_err();
    assert!(matches!(e, StoreError::Unpack { .. }), "{e}");
    assert!(!store.layer_path(&liar).exists());
    assert!(!store.has_layer(&liar));
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn an_incomplete_layer_is_redone_and_a_missing_blob_reported() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let made = put_image(&store, &amd64, &[layer_tar(&[("f", b"x")])], true);
    let image = store.image(&made.manifest, &amd64).unwrap();
    let chain = &image.layers[0].chain_id;
    // A crash between the rename and the record left a directory without its record.
    std::fs::create_dir_all(store.layer_path(chain).join("junk")).unwrap();
    assert!(!store.has_layer(chain));
    store.ensure_layers(&image, &mut |_| {}).unwrap();
    assert!(store.has_layer(chain));
    assert!(!store.layer_path(chain).join("junk").exists());
    assert!(store.layer_path(chain).join("f").exists());

    let mut ghost = image.clone();
    ghost.layers[0].blob_digest = Digest::sha256(b"never fetched");
    ghost.layers[0].chain_id = Digest::sha256(b"ghost chain");
    assert!(matches!(
        store.ensure_layers(&ghost, &mut |_| {}),
        Err(StoreError::BlobMissing { .. })
    ));
}

#[test]
fn whiteouts_become_overlay_character_devices() {
    require!(is_root(), "root (whiteouts are 0:0 character devices)");
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let tars = vec![
        layer_tar(&[("etc/gone", b"x"), ("etc/kept", b"y")]),
        layer_tar(&[("etc/.wh.gone", b"")]),
    ];
    let image = store
        .image(&put_image(&store, &amd64, &tars, true).manifest, &amd64)
        .unwrap();
    let dirs = store.ensure_layers(&image, &mut |_| {}).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(dirs[1].join("etc/gone")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), 0);
}

#[test]
fn leases_record_layers_in_use() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let image = store
        .image(
            &put_image(&store, &amd64, &[layer_tar(&[("f", b"x")])], true).manifest,
            &amd64,
        )
        .unwrap();
    let chains = image.chain_ids();
    assert!(matches!(
        store.lease("c1", &chains),
        Err(StoreError::LayerMissing { .. })
    ));
    store.ensure_layers(&image, &mut |_| {}).unwrap();
    store.lease("c1", &chains).unwrap();
    store.lease("c2.with-dots_and+plus", &chains).unwrap();
    let leases = store.leases().unwrap();
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0].1.iter().cloned().collect::<Vec<_>>(), chains);
    store.release("c1").unwrap();
    store.release("c1").unwrap();
    assert_eq!(store.leases().unwrap().len(), 1);
    for bad in ["", "../x", ".x", "a/b", "a\0b"] {
        assert!(matches!(
            store.lease(bad, &chains),
            Err(StoreError::InvalidName { .. })
        ));
        assert!(store.release(bad).is_err());
    }
}
