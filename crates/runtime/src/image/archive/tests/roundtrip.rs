//! save → import keeps every digest; saving is deterministic and atomic.

use std::io::Read;

use super::{new_store, r, tagged_image, write, zstd_of};
use crate::image::archive::{ArchiveError, import, save};
use crate::image::platform::Platform;
use crate::image::store::test_support::gzip;

#[test]
fn save_then_import_keeps_digests_and_references() {
    let (_a, source) = new_store();
    let image = tagged_image(&source, "registry.local/team/app:v1");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("app.tar");
    save(&source, &[r("registry.local/team/app:v1")], &out).unwrap();
    // Only the archive is left next to it: no temporary file.
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 1);

    let (_b, target) = new_store();
    let imported = import(&target, &out, &Platform::host()).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].reference, Some(r("registry.local/team/app:v1")));
    assert_eq!(imported[0].ref_name.as_deref(), Some("v1"));
    assert_eq!(imported[0].digest, image.manifest);
    assert_eq!(
        target.resolve(&r("registry.local/team/app:v1")).unwrap(),
        Some(image.manifest.clone())
    );
    let stored = target.image(&image.manifest, &Platform::host()).unwrap();
    assert_eq!(stored.config_digest, image.config);
    for (l, (d, _)) in stored.layers.iter().zip(&image.layers) {
        assert_eq!(&l.blob_digest, d);
        assert!(target.has_blob(d));
    }
    let dirs = target.ensure_layers(&stored, &mut |_| {}).unwrap();
    assert_eq!(
        std::fs::read(dirs[0].join("etc/os-release")).unwrap(),
        b"ID=moor-test\n"
    );
}

#[test]
fn saving_is_deterministic_and_sorted() {
    let (_a, store) = new_store();
    tagged_image(&store, "a:1");
    let b = tagged_image(&store, "b:2");
    store.tag(&r("b:also"), &b.manifest).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let refs = [r("a:1"), r("b:2"), r("b:also")];
    save(&store, &refs, &dir.path().join("one.tar")).unwrap();
    save(&store, &refs, &dir.path().join("two.tar")).unwrap();
    let one = std::fs::read(dir.path().join("one.tar")).unwrap();
    assert_eq!(one, std::fs::read(dir.path().join("two.tar")).unwrap());

    let mut archive = tar::Archive::new(&one[..]);
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(
            (h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            (0, 0, 0)
        );
        names.push(e.path().unwrap().to_string_lossy().into_owned());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.last().map(String::as_str), Some("oci-layout"));

    // index.json: one entry per reference, tag as ref.name, full name for containerd.
    let mut archive = tar::Archive::new(&one[..]);
    let mut index = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("index.json") {
            e.read_to_end(&mut index).unwrap();
        }
    }
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries[2]["annotations"]["org.opencontainers.image.ref.name"],
        "also"
    );
    assert_eq!(
        entries[2]["annotations"]["io.containerd.image.name"],
        "docker.io/library/b:also"
    );
    assert_eq!(entries[1]["digest"], entries[2]["digest"]);
}

#[test]
fn compressed_archives_import_the_same() {
    let (_a, store) = new_store();
    let image = tagged_image(&store, "app:1");
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("app.tar");
    save(&store, &[r("app:1")], &plain).unwrap();
    let bytes = std::fs::read(&plain).unwrap();
    write(&dir.path().join("app.tar.gz"), &gzip(&bytes));
    write(&dir.path().join("app.tar.zst"), &zstd_of(&bytes));
    for name in ["app.tar.gz", "app.tar.zst"] {
        let (_b, target) = new_store();
        let imported = import(&target, &dir.path().join(name), &Platform::host()).unwrap();
        assert_eq!(imported[0].digest, image.manifest, "{name}");
        assert!(target.image(&image.manifest, &Platform::host()).is_ok());
    }
}

#[test]
fn saving_an_unknown_or_incomplete_image_fails_and_writes_nothing() {
    let (_a, store) = new_store();
    let image = tagged_image(&store, "app:1");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.tar");
    assert!(matches!(
        save(&store, &[r("nothing:here")], &out),
        Err(ArchiveError::NotFound { .. })
    ));
    // Drop a layer blob behind the store's back, as a pull that never finished would.
    let layer = store.blob_path(&image.layers[1].0);
    std::fs::remove_file(&layer).unwrap();
    assert!(matches!(
        save(&store, &[r("app:1")], &out),
        Err(ArchiveError::Incomplete { .. })
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
