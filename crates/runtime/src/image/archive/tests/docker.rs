//! `docker save` archives, in the legacy layout (`<id>/layer.tar`, symlinked
//! duplicates) and the current one (`blobs/sha256/...` beside `manifest.json`).

use super::{E, new_store, r, tar_of, write, zstd_of};
use crate::image::archive::{ArchiveError, import};
use crate::image::digest::Digest;
use crate::image::manifest::{OCI_CONFIG, OCI_MANIFEST};
use crate::image::platform::Platform;
use crate::image::store::test_support::{config_json, gzip, layer_tar};

struct DockerSave {
    tar: Vec<u8>,
    config: Digest,
    diff_ids: Vec<Digest>,
}

/// A legacy `docker save` of a three-layer image whose third layer repeats the first
/// (Docker writes the repeat as a symlink).
fn docker_save(tags: &str) -> DockerSave {
    let l1 = layer_tar(&[("etc/os-release", b"ID=docker\n")]);
    let l2 = layer_tar(&[("app/bin", b"bin")]);
    let diff_ids = vec![
        Digest::sha256(&l1),
        Digest::sha256(&l2),
        Digest::sha256(&l1),
    ];
    let config = config_json(&Platform::host(), &diff_ids);
    let config_digest = Digest::sha256(&config);
    let config_name = format!("{}.json", config_digest.hex());
    let manifest = format!(
        r#"[{{"Config":"{config_name}","RepoTags":{tags},"Layers":["aaa/layer.tar","bbb/layer.tar","ccc/layer.tar"]}}]"#
    );
    let tar = tar_of(&[
        E::Dir("aaa/"),
        E::File("aaa/VERSION", b"1.0"),
        E::File("aaa/json", b"{}"),
        E::File("aaa/layer.tar", &l1),
        E::Dir("bbb/"),
        E::File("bbb/layer.tar", &l2),
        E::Dir("ccc/"),
        E::Symlink("ccc/layer.tar", "../aaa/layer.tar"),
        E::File(&config_name, &config),
        E::File("manifest.json", manifest.as_bytes()),
        E::File("repositories", b"{}"),
    ]);
    DockerSave {
        tar,
        config: config_digest,
        diff_ids,
    }
}

#[test]
fn a_docker_save_archive_becomes_an_oci_image_with_its_tags() {
    let save = docker_save(r#"["busybox:latest","registry.local/x/y:1"]"#);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.tar");
    write(&path, &save.tar);
    let (_s, store) = new_store();
    let imported = import(&store, &path, &Platform::host()).unwrap();
    assert_eq!(imported.len(), 2);
    assert_eq!(imported[0].reference, Some(r("busybox:latest")));
    assert_eq!(imported[1].reference, Some(r("registry.local/x/y:1")));
    assert_eq!(imported[0].digest, imported[1].digest);
    let manifest = imported[0].digest.clone();
    assert_eq!(
        store.resolve(&r("busybox")).unwrap(),
        Some(manifest.clone())
    );

    let raw: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&manifest, 1 << 20).unwrap()).unwrap();
    assert_eq!(raw["mediaType"], OCI_MANIFEST);
    assert_eq!(raw["config"]["mediaType"], OCI_CONFIG);
    assert_eq!(raw["config"]["digest"], save.config.to_string());
    let image = store.image(&manifest, &Platform::host()).unwrap();
    let blobs: Vec<_> = image.layers.iter().map(|l| l.blob_digest.clone()).collect();
    assert_eq!(
        blobs, save.diff_ids,
        "uncompressed layers: blob digest = diff id"
    );
    assert_eq!(image.layers[0].chain_id, image.layers[0].diff_id);
    let dirs = store.ensure_layers(&image, &mut |_| {}).unwrap();
    assert_eq!(
        std::fs::read(dirs[2].join("etc/os-release")).unwrap(),
        b"ID=docker\n"
    );

    // The same archive compressed gives the same manifest.
    for (name, bytes) in [
        ("d.tar.gz", gzip(&save.tar)),
        ("d.tar.zst", zstd_of(&save.tar)),
    ] {
        write(&dir.path().join(name), &bytes);
        let (_t, other) = new_store();
        let again = import(&other, &dir.path().join(name), &Platform::host()).unwrap();
        assert_eq!(again[0].digest, manifest, "{name}");
    }
}

#[test]
fn an_untagged_docker_save_is_imported_without_a_name() {
    let save = docker_save("null");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.tar");
    write(&path, &save.tar);
    let (_s, store) = new_store();
    let imported = import(&store, &path, &Platform::host()).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].reference, None);
    assert!(store.references().unwrap().is_empty());
}

#[test]
fn docker_save_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.tar");
    let l1 = layer_tar(&[("f", b"1")]);
    let other = layer_tar(&[("f", b"2")]);
    let config = config_json(&Platform::host(), &[Digest::sha256(&other)]);
    type Check = Box<dyn Fn(&ArchiveError) -> bool>;
    let cases: Vec<(String, Check)> = vec![
        (
            r#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["missing/layer.tar"]}]"#.into(),
            Box::new(|e| matches!(e, ArchiveError::MissingEntry { .. })),
        ),
        (
            r#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["../l.tar"]}]"#.into(),
            Box::new(|e| matches!(e, ArchiveError::BadEntry { .. })),
        ),
        (
            r#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l.tar"]}]"#.into(),
            Box::new(|e| matches!(e, ArchiveError::DiffIdMismatch { .. })),
        ),
        (
            r#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l.tar","l.tar"]}]"#.into(),
            Box::new(|e| matches!(e, ArchiveError::Manifest { .. })),
        ),
        (
            r#"[{"Config":"c.json","RepoTags":["Not A Ref"],"Layers":[]}]"#.into(),
            Box::new(|e| {
                matches!(
                    e,
                    ArchiveError::Manifest { .. } | ArchiveError::BadReference { .. }
                )
            }),
        ),
        (
            r#"{"Config":"c.json"}"#.into(),
            Box::new(|e| matches!(e, ArchiveError::Json { .. })),
        ),
    ];
    for (manifest, check) in cases {
        write(
            &path,
            &tar_of(&[
                E::File("c.json", &config),
                E::File("l.tar", &l1),
                E::File("manifest.json", manifest.as_bytes()),
            ]),
        );
        let (_s, store) = new_store();
        let e = import(&store, &path, &Platform::host()).unwrap_err();
        assert!(check(&e), "{manifest}: {e}");
        assert!(
            store.references().unwrap().is_empty(),
            "nothing tagged after {e}"
        );
    }
}
