//! From a digest to an image: indexes, configs, checks, summaries.

use super::super::StoreError;
use super::super::test_support::{
    config_json, index_json, layer_tar, manifest_json, platform, put_image,
};
use super::new_store;
use crate::image::digest::Digest;
use crate::image::manifest::{self, ManifestError, OCI_INDEX, OCI_MANIFEST};
use crate::image::unpack::Compression;

fn two_layers() -> Vec<Vec<u8>> {
    vec![
        layer_tar(&[("etc/os-release", b"ID=test\n")]),
        layer_tar(&[("app/run", b"#!/bin/sh\n")]),
    ]
}

#[test]
fn an_image_manifest_gives_layers_with_chain_ids() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let img = put_image(&store, &amd64, &two_layers(), true);
    let stored = store.image(&img.manifest, &amd64).unwrap();
    assert_eq!(stored.manifest_digest, img.manifest);
    assert_eq!(stored.index_digest, None);
    assert_eq!(stored.config_digest, img.config);
    assert_eq!(stored.platform, amd64);
    assert_eq!(stored.layers.len(), 2);
    let chains = manifest::chain_ids(&img.diff_ids);
    for (i, l) in stored.layers.iter().enumerate() {
        assert_eq!(l.blob_digest, img.layers[i].0);
        assert_eq!(l.diff_id, img.diff_ids[i]);
        assert_eq!(l.chain_id, chains[i]);
        assert_eq!(l.compression, Compression::Gzip);
    }
    assert_eq!(stored.chain_ids(), chains);
    assert!(store.missing_blobs(&stored).is_empty());
}

#[test]
fn an_index_is_followed_to_the_platform_manifest() {
    let (_d, store) = new_store();
    let amd = put_image(&store, &platform("linux/amd64"), &two_layers(), true);
    let arm = put_image(
        &store,
        &platform("linux/arm64/v8"),
        &two_layers()[..1],
        false,
    );
    let index = store
        .put_blob(&index_json(&[
            (
                &arm.manifest,
                arm.manifest_size,
                OCI_MANIFEST,
                "linux/arm64/v8",
            ),
            (
                &amd.manifest,
                amd.manifest_size,
                OCI_MANIFEST,
                "linux/amd64",
            ),
        ]))
        .unwrap();
    let got = store.image(&index, &platform("linux/amd64")).unwrap();
    assert_eq!(got.manifest_digest, amd.manifest);
    assert_eq!(got.index_digest, Some(index.clone()));
    let got = store.image(&index, &platform("linux/arm64")).unwrap();
    assert_eq!(got.manifest_digest, arm.manifest);
    assert_eq!(got.layers[0].compression, Compression::None);

    let e = store.image(&index, &platform("linux/arm/v7")).unwrap_err();
    match &e {
        StoreError::Manifest {
            source: ManifestError::NoMatchingPlatform { available, .. },
            ..
        } => assert_eq!(available, &["linux/arm64/v8", "linux/amd64"]),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("linux/arm64/v8, linux/amd64"), "{e}");
}

#[test]
fn an_index_naming_a_missing_manifest_or_lying_about_it_is_refused() {
    let (_d, store) = new_store();
    let amd = put_image(&store, &platform("linux/amd64"), &two_layers(), true);
    let absent = Digest::sha256(b"absent manifest");
    let index = store
        .put_blob(&index_json(&[(&absent, 10, OCI_MANIFEST, "linux/amd64")]))
        .unwrap();
    assert!(matches!(
        store.image(&index, &platform("linux/amd64")),
        Err(StoreError::BlobMissing { .. })
    ));
    // Wrong size in the descriptor.
    let index = store
        .put_blob(&index_json(&[(
            &amd.manifest,
            amd.manifest_size + 1,
            OCI_MANIFEST,
            "linux/amd64",
        )]))
        .unwrap();
    assert!(matches!(
        store.image(&index, &platform("linux/amd64")),
        Err(StoreError::SizeMismatch { .. })
    ));
    // An index that says its entry is an index, when it is a manifest.
    let index = store
        .put_blob(&index_json(&[(
            &amd.manifest,
            amd.manifest_size,
            OCI_INDEX,
            "linux/amd64",
        )]))
        .unwrap();
    assert!(matches!(
        store.image(&index, &platform("linux/amd64")),
        Err(StoreError::Manifest {
            source: ManifestError::MediaTypeMismatch { .. },
            ..
        })
    ));
}

#[test]
fn indexes_nested_too_deep_are_refused() {
    let (_d, store) = new_store();
    let amd = put_image(&store, &platform("linux/amd64"), &two_layers(), true);
    let (mut digest, mut size, mut media_type) =
        (amd.manifest.clone(), amd.manifest_size, OCI_MANIFEST);
    let mut chain = Vec::new();
    for _ in 0..6 {
        let bytes = index_json(&[(&digest, size, media_type, "linux/amd64")]);
        digest = store.put_blob(&bytes).unwrap();
        size = bytes.len() as u64;
        media_type = OCI_INDEX;
        chain.push(digest.clone());
    }
    // Four levels are followed; six are not.
    assert!(store.image(&chain[3], &platform("linux/amd64")).is_ok());
    assert!(matches!(
        store.image(&chain[5], &platform("linux/amd64")),
        Err(StoreError::IndexDepth { .. })
    ));
}

#[test]
fn config_problems_are_refused() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let tars = two_layers();
    // Config with one diff id, manifest with two layers.
    let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::sha256(t)).collect();
    let config = config_json(&amd64, &diff_ids[..1]);
    let config_d = store.put_blob(&config).unwrap();
    let layers: Vec<(Digest, Vec<u8>)> = tars
        .iter()
        .map(|t| (store.put_blob(t).unwrap(), t.clone()))
        .collect();
    let m = store
        .put_blob(&manifest_json(&config_d, config.len(), &layers, false))
        .unwrap();
    assert!(matches!(
        store.image(&m, &amd64),
        Err(StoreError::Config {
            source: ManifestError::LayerCount {
                layers: 2,
                diff_ids: 1
            },
            ..
        })
    ));
    // An arm64 image asked for as amd64.
    let arm = put_image(&store, &platform("linux/arm64"), &tars, false);
    assert!(matches!(
        store.image(&arm.manifest, &amd64),
        Err(StoreError::PlatformMismatch { .. })
    ));
    // An artifact, not an image.
    let mut v: serde_json::Value = serde_json::from_slice(&arm.manifest_bytes).unwrap();
    v["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json".into();
    let artifact = store.put_blob(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(matches!(
        store.image(&artifact, &platform("linux/arm64")),
        Err(StoreError::NotAnImage { .. })
    ));
    // An unknown layer media type.
    v["config"]["mediaType"] = manifest::OCI_CONFIG.into();
    v["layers"][0]["mediaType"] = "application/x-rar".into();
    let odd = store.put_blob(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(matches!(
        store.image(&odd, &platform("linux/arm64")),
        Err(StoreError::LayerMediaType { .. })
    ));
}

#[test]
fn missing_blobs_lists_layers_not_yet_fetched() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let tars = two_layers();
    let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::sha256(t)).collect();
    let config = config_json(&amd64, &diff_ids);
    let config_d = store.put_blob(&config).unwrap();
    let layers: Vec<(Digest, Vec<u8>)> = tars
        .iter()
        .map(|t| (Digest::sha256(t), t.clone()))
        .collect();
    store.put_blob(&tars[0]).unwrap();
    let m = store
        .put_blob(&manifest_json(&config_d, config.len(), &layers, false))
        .unwrap();
    let image = store.image(&m, &amd64).unwrap();
    let missing = store.missing_blobs(&image);
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].digest().to_string(), layers[1].0.to_string());
}

#[test]
fn usage_summarises_each_reference() {
    let (_d, store) = new_store();
    let amd64 = platform("linux/amd64");
    let img = put_image(&store, &amd64, &two_layers(), true);
    let index = index_json(&[(
        &img.manifest,
        img.manifest_size,
        OCI_MANIFEST,
        "linux/amd64",
    )]);
    let index_d = store.put_blob(&index).unwrap();
    store.tag(&"app:1".parse().unwrap(), &img.manifest).unwrap();
    store.tag(&"app:multi".parse().unwrap(), &index_d).unwrap();
    let blobs: u64 =
        img.config_bytes.len() as u64 + img.layers.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    let usage = store.usage(&amd64).unwrap();
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0].reference.to_string(), "docker.io/library/app:1");
    assert_eq!(usage[0].size, img.manifest_size + blobs);
    assert_eq!(usage[0].created.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert_eq!(usage[0].platform, Some(amd64.clone()));
    assert!(usage[0].complete);
    assert_eq!(usage[1].digest, index_d);
    assert_eq!(
        usage[1].size,
        index.len() as u64 + img.manifest_size + blobs
    );
    // For a platform the images lack, they are listed all the same.
    let other = store.usage(&platform("linux/riscv64")).unwrap();
    assert_eq!(other.len(), 2);
    assert!(other.iter().all(|s| s.platform.is_none() && !s.complete));
}
